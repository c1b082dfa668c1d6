//! Section 1 of the contract: the manifest and its config schema.

use super::*;

impl Suite {
    pub(super) fn manifest_checks(&mut self) {
        let manifest = self.connector.manifest().clone();
        let types = self.connector.config_types().to_vec();
        match validate_manifest(&manifest) {
            Ok(()) => self.add(
                "1.1",
                "manifest is valid",
                Status::Pass,
                format!(
                    "id `{}`, {} streams, {} config keys",
                    manifest.id,
                    manifest.streams.len(),
                    manifest.config.len()
                ),
            ),
            Err(e) => self.add("1.1", "manifest is valid", Status::Fail, e),
        }
        let mut problems = Vec::new();
        for field in &manifest.config {
            if field.label.trim().is_empty() {
                problems.push(format!("config key `{}` has no label", field.name));
            }
            if field.description.trim().is_empty() {
                problems.push(format!("config key `{}` has no description", field.name));
            }
            if field.kind == ConfigKind::Choice && field.choices.is_empty() {
                problems.push(format!("choice `{}` lists no choices", field.name));
            }
            if let Some(default) = field
                .default
                .as_ref()
                .and_then(crate::runtime::config::value_text)
            {
                let mut one = BTreeMap::new();
                one.insert(field.name.clone(), default.clone());
                let check = crate::runtime::config::validate(&manifest, &types, &one);
                if let Err(e) = check
                    && let Some(p) = e.problems.iter().find(|p| p.key == field.name)
                {
                    problems.push(format!(
                        "the default of `{}` ({default:?}) is not valid: {}",
                        field.name, p.message
                    ));
                }
            }
            if field.kind != ConfigKind::Secret
                && crate::runtime::redact::is_sensitive_name(&field.name)
            {
                problems.push(format!(
                    "`{}` sounds secret but is of kind {}: make it `secret` so it is never shown",
                    field.name,
                    field.kind.name()
                ));
            }
        }
        // Each typed key's example must be a value of its type (it is shown to users who
        // wrote the wrong type).
        for typed in &types {
            let example =
                toml::from_str::<toml::Table>(&format!("{} = {}", typed.name, typed.example));
            let converted = example
                .as_ref()
                .map_err(ToString::to_string)
                .and_then(|table| {
                    crate::runtime::config::from_toml(&manifest, &types, table)
                        .map_err(|e| e.to_string())
                });
            if let Err(error) = converted {
                problems.push(format!(
                    "the example of `{}` ({}) is not a {}: {error}",
                    typed.name,
                    typed.example,
                    typed.type_.name()
                ));
            }
        }
        for template in &manifest.outbound_hosts {
            for name in crate::runtime::http::placeholders(template) {
                if let Some(field) = manifest.config.iter().find(|f| f.name == name)
                    && !field.required
                    && field.default.is_none()
                {
                    problems.push(format!("outbound host {template:?} needs `{name}`, which is neither required nor defaulted"));
                }
            }
        }
        self.pass_or_fail("1.2", "config schema is complete", problems, "every key has a label and a description; kinds, choices and defaults agree; secrets are `secret`");
        let mut problems = Vec::new();
        if manifest.streams.is_empty() {
            problems.push("no streams".to_owned());
        }
        for stream in &manifest.streams {
            if stream.description.trim().is_empty() {
                problems.push(format!("stream `{}` has no description", stream.name));
            }
            if stream.access == StreamAccess::empty() {
                problems.push(format!(
                    "stream `{}` allows neither read, write nor lookup",
                    stream.name
                ));
            }
        }
        self.pass_or_fail(
            "1.3",
            "streams are declared",
            problems,
            "every stream has a kind, an access and a description",
        );
        let semver = manifest.version.split('.').count() == 3
            && manifest
                .version
                .split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        if manifest.name.trim().is_empty() || !semver {
            self.add(
                "1.4",
                "name and version",
                Status::Warn,
                format!(
                    "name {:?}, version {:?}: give a name and an x.y.z version",
                    manifest.name, manifest.version
                ),
            );
        } else {
            self.add(
                "1.4",
                "name and version",
                Status::Pass,
                format!("{} {}", manifest.name, manifest.version),
            );
        }
    }
}
