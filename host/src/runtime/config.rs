//! A connection's config checked against its connector's manifest: unknown keys refused,
//! required keys present, values of the declared kind, defaults filled in, secrets known.

use std::collections::BTreeMap;
use std::fmt;

use super::bindings::{ConfigKind, Manifest, Value};

/// One thing wrong with a config, naming the key and the fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigProblem {
    pub key: String,
    pub message: String,
}

/// Everything wrong with a config at once, so the user fixes it in one go.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub connector: String,
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid config for connector `{}`: ", self.connector)?;
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "`{}`: {}", problem.key, problem.message)?;
        }
        Ok(())
    }
}

/// A config that passed [`validate`]: every manifest key with a value is present.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ConnectionConfig {
    values: BTreeMap<String, String>,
    secret_keys: Vec<String>,
}

impl fmt::Debug for ConnectionConfig {
    /// Secrets are shown as set or not set, never their value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (key, value) in &self.values {
            if self.secret_keys.contains(key) {
                map.entry(key, &"<secret: set>");
            } else {
                map.entry(key, value);
            }
        }
        map.finish()
    }
}

impl ConnectionConfig {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// The values of the secret fields (for the redactor).
    pub fn secret_values(&self) -> Vec<String> {
        self.secret_keys
            .iter()
            .filter_map(|k| self.values.get(k).cloned())
            .collect()
    }

    pub fn is_secret(&self, key: &str) -> bool {
        self.secret_keys.iter().any(|k| k == key)
    }

    /// The config as the guest receives it.
    pub fn to_guest(&self) -> Vec<(String, String)> {
        self.values
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Keys and values safe to show: secrets as `set`.
    pub fn redacted(&self) -> BTreeMap<String, String> {
        self.values
            .iter()
            .map(|(k, v)| {
                let shown = if self.is_secret(k) {
                    "<set>".to_owned()
                } else {
                    v.clone()
                };
                (k.clone(), shown)
            })
            .collect()
    }
}

/// A manifest default as the text the guest receives.
pub fn value_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::Text(s) | Value::Json(s) => Some(s.clone()),
        Value::Integer(i) => Some(i.to_string()),
        Value::Number(d) => Some(super::decimal_text(d)),
        Value::Boolean(b) => Some(b.to_string()),
    }
}

/// Checks `raw` against the manifest's config schema.
pub fn validate(
    manifest: &Manifest,
    raw: &BTreeMap<String, String>,
) -> Result<ConnectionConfig, ConfigError> {
    let mut problems = Vec::new();
    let known: Vec<&str> = manifest.config.iter().map(|f| f.name.as_str()).collect();
    for key in raw.keys() {
        if !known.contains(&key.as_str()) {
            problems.push(ConfigProblem {
                key: key.clone(),
                message: format!("unknown key; `{}` takes: {}", manifest.id, known.join(", ")),
            });
        }
    }

    let mut values = BTreeMap::new();
    let mut secret_keys = Vec::new();
    for field in &manifest.config {
        if field.kind == ConfigKind::Secret {
            secret_keys.push(field.name.clone());
        }
        let given = raw
            .get(&field.name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty());
        let value = match given.or_else(|| field.default.as_ref().and_then(value_text)) {
            Some(value) => value,
            None if field.required => {
                problems.push(ConfigProblem {
                    key: field.name.clone(),
                    message: format!("required ({}): {}", field.label, field.description),
                });
                continue;
            }
            None => continue,
        };
        if let Err(message) = check_kind(field.kind, &field.choices, &value) {
            problems.push(ConfigProblem {
                key: field.name.clone(),
                message,
            });
            continue;
        }
        values.insert(field.name.clone(), value);
    }

    if problems.is_empty() {
        Ok(ConnectionConfig {
            values,
            secret_keys,
        })
    } else {
        Err(ConfigError {
            connector: manifest.id.clone(),
            problems,
        })
    }
}

fn check_kind(kind: ConfigKind, choices: &[String], value: &str) -> Result<(), String> {
    match kind {
        ConfigKind::Text | ConfigKind::Secret => Ok(()),
        ConfigKind::Integer => value
            .parse::<i64>()
            .map(|_| ())
            .map_err(|_| format!("{value:?} is not a whole number")),
        ConfigKind::Boolean => match value {
            "true" | "false" => Ok(()),
            _ => Err(format!("{value:?} must be true or false")),
        },
        ConfigKind::Url => match url::Url::parse(value) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => {
                Ok(())
            }
            Ok(_) => Err(format!(
                "{value:?} must be an http:// or https:// URL with a host"
            )),
            Err(error) => Err(format!(
                "{value:?} is not a URL ({error}); write it like https://shop.example.com"
            )),
        },
        ConfigKind::Choice => {
            if choices.iter().any(|c| c == value) {
                Ok(())
            } else {
                Err(format!("{value:?} is not one of: {}", choices.join(", ")))
            }
        }
        ConfigKind::Json => serde_json::from_str::<serde_json::Value>(value)
            .map(|_| ())
            .map_err(|error| format!("not valid JSON: {error}")),
    }
}

#[cfg(test)]
mod tests {
    use super::super::bindings::{ConfigField, StreamAccess};
    use super::*;

    fn field(name: &str, kind: ConfigKind, required: bool, default: Option<Value>) -> ConfigField {
        ConfigField {
            name: name.into(),
            label: name.into(),
            description: format!("the {name}"),
            kind,
            required,
            default,
            choices: vec!["order".into(), "invoice".into()],
        }
    }

    fn manifest() -> Manifest {
        let _ = StreamAccess::READ;
        Manifest {
            id: "demo".into(),
            name: "Demo".into(),
            version: "1.0.0".into(),
            description: String::new(),
            streams: vec![],
            config: vec![
                field("base_url", ConfigKind::Url, true, None),
                field("secret", ConfigKind::Secret, true, None),
                field(
                    "employee",
                    ConfigKind::Integer,
                    false,
                    Some(Value::Integer(999999)),
                ),
                field(
                    "mode",
                    ConfigKind::Choice,
                    false,
                    Some(Value::Text("order".into())),
                ),
            ],
            outbound_hosts: vec!["{base_url}".into()],
        }
    }

    fn raw(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn fills_defaults_and_keeps_secrets_out_of_debug() {
        let config = validate(
            &manifest(),
            &raw(&[("base_url", "https://h:4443/"), ("secret", "hunter2")]),
        )
        .expect("valid");
        assert_eq!(config.get("employee"), Some("999999"));
        assert_eq!(config.get("mode"), Some("order"));
        assert_eq!(config.secret_values(), vec!["hunter2".to_owned()]);
        assert!(!format!("{config:?}").contains("hunter2"));
        assert_eq!(
            config.redacted().get("secret").map(String::as_str),
            Some("<set>")
        );
    }

    #[test]
    fn reports_every_problem_with_its_key() {
        let error = validate(
            &manifest(),
            &raw(&[
                ("base_url", "api.example"),
                ("employe", "1"),
                ("employee", "x"),
                ("mode", "quote"),
            ]),
        )
        .expect_err("invalid");
        let keys: Vec<&str> = error.problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            vec!["employe", "base_url", "secret", "employee", "mode"]
        );
        let text = error.to_string();
        assert!(
            text.contains("unknown key; `demo` takes: base_url, secret, employee, mode"),
            "{text}"
        );
        assert!(
            text.contains("\"quote\" is not one of: order, invoice"),
            "{text}"
        );
    }
}
