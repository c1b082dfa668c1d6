//! A connector's conformance settings: the `[suite]` table of its `conformance.toml` (the file
//! beside its crate that also holds the connection's config for `koppel connector test`):
//! the checks it cannot exercise, each with why. With them the suite is strict: a skip not
//! listed is a problem, and so is a listed skip that no longer happens, so the list cannot
//! outlive its reason.

use std::path::Path;

use serde::Deserialize;

use super::{Report, Status};

/// The `[suite]` table of `conformance.toml`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Checks the suite may skip for this connector.
    #[serde(default, rename = "allowed_skip")]
    pub allowed_skips: Vec<AllowedSkip>,
}

/// One check the suite may skip: its rule, a part of its name, and why.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowedSkip {
    /// The rule of `docs/connector-contract.md` (`3.4`).
    pub rule: String,
    /// A part of the check's name as the report prints it (`read vat-groups`).
    pub check: String,
    /// Why the check cannot run for this connector.
    pub reason: String,
}

/// A settings file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct SettingsError {
    pub path: String,
    pub message: String,
}

impl Settings {
    /// The `[suite]` table of a `conformance.toml` file (none: no settings, nothing allowed).
    pub fn from_file(path: &Path) -> Result<Settings, SettingsError> {
        let error = |message: String| SettingsError {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
        let table: toml::Table = toml::from_str(&text).map_err(|e| error(e.to_string()))?;
        match table.get("suite") {
            Some(suite) => Settings::from_value(suite.clone()).map_err(error),
            None => Ok(Settings::default()),
        }
    }

    /// The `[suite]` table; a typo or an entry without a reason names the key.
    pub fn from_value(suite: toml::Value) -> Result<Settings, String> {
        let settings: Settings = suite
            .try_into()
            .map_err(|e: toml::de::Error| format!("[suite]: {}", e.message()))?;
        for (n, skip) in settings.allowed_skips.iter().enumerate() {
            if skip.rule.trim().is_empty() || skip.check.trim().is_empty() {
                return Err(format!(
                    "[suite] allowed_skip[{n}]: `rule` and `check` must name the skipped check (rule = \"3.4\", check = \"read vat-groups\")"
                ));
            }
            if skip.reason.trim().is_empty() {
                return Err(format!(
                    "[suite] allowed_skip[{n}] ({} {}): `reason` must say why the check cannot run",
                    skip.rule, skip.check
                ));
            }
        }
        Ok(settings)
    }

    fn allows(&self, rule: &str, name: &str) -> bool {
        self.allowed_skips
            .iter()
            .any(|s| s.rule == rule && name.contains(&s.check))
    }
}

impl Report {
    /// What keeps this report from passing under `settings`: failed checks, skips the
    /// settings do not allow, and allowed skips that did not happen. Empty: it passes.
    pub fn problems(&self, settings: &Settings) -> Vec<String> {
        let mut problems: Vec<String> = self
            .failed()
            .iter()
            .map(|c| format!("FAIL {} {}: {}", c.rule, c.name, c.detail))
            .collect();
        let skips: Vec<_> = self
            .checks
            .iter()
            .filter(|c| c.status == Status::Skip)
            .collect();
        for skip in &skips {
            if !settings.allows(skip.rule, &skip.name) {
                problems.push(format!(
                    "SKIP {} {} ({}) is not an allowed skip: exercise the rule, or list it in conformance.toml with a reason",
                    skip.rule, skip.name, skip.detail
                ));
            }
        }
        for allowed in &settings.allowed_skips {
            let happened = skips
                .iter()
                .any(|c| c.rule == allowed.rule && c.name.contains(&allowed.check));
            if !happened {
                problems.push(format!(
                    "the allowed skip {} {:?} no longer happens: drop it from conformance.toml",
                    allowed.rule, allowed.check
                ));
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::super::Check;
    use super::*;

    fn parse(text: &str) -> Result<Settings, String> {
        let table: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
        Settings::from_value(table["suite"].clone())
    }

    fn report(checks: &[(&'static str, &str, Status)]) -> Report {
        Report {
            checks: checks
                .iter()
                .map(|(rule, name, status)| Check {
                    rule,
                    name: (*name).to_owned(),
                    status: *status,
                    detail: String::new(),
                })
                .collect(),
            ..Report::default()
        }
    }

    #[test]
    fn a_listed_skip_passes_an_unlisted_one_and_a_stale_entry_do_not() {
        let settings = parse(
            r#"
            base_url = "http://127.0.0.1:8080"

            [[suite.allowed_skip]]
            rule = "3.4"
            check = "read vat-groups"
            reason = "a full-refresh stream has no last state"

            [[suite.allowed_skip]]
            rule = "5.1"
            check = "lookup customers"
            reason = "lookup-only"
            "#,
        )
        .expect("parses");
        let checks = report(&[
            (
                "3.4",
                "read vat-groups: reads on from the last state",
                Status::Skip,
            ),
            ("3.3", "read order-status: resumes", Status::Skip),
            ("1.1", "manifest", Status::Pass),
        ]);
        let problems = checks.problems(&settings);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].starts_with("SKIP 3.3 read order-status"),
            "{problems:?}"
        );
        assert!(
            problems[1].contains("5.1 \"lookup customers\" no longer happens"),
            "{problems:?}"
        );
    }

    #[test]
    fn an_entry_without_a_reason_or_with_a_typo_is_refused_by_name() {
        let error =
            parse("[[suite.allowed_skip]]\nrule = \"3.4\"\ncheck = \"read x\"\nreason = \"\"\n")
                .expect_err("refused");
        assert!(
            error.contains("[suite] allowed_skip[0] (3.4 read x): `reason`"),
            "{error}"
        );
        let error = parse("[[suite.allowed_skips]]\nrule = \"3.4\"\n").expect_err("refused");
        assert!(error.contains("allowed_skips"), "{error}");
    }
}
