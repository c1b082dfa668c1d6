//! A connection's config checked against its connector's manifest: unknown keys refused,
//! required keys present, values of the declared kind and type, defaults filled in, secrets
//! known. [`from_toml`] turns the values as written in `koppel.toml` (tables, lists, numbers,
//! booleans) into the strings the contract carries, by the type each key has (declared in
//! `config-types` since contract 0.1.1, else implied by its kind).

use std::collections::BTreeMap;
use std::fmt;

use super::bindings::{ConfigField, ConfigKind, Manifest, TypedKey, Value, ValueType};

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
        Value::Number(d) => Some(d.to_string()),
        Value::Boolean(b) => Some(b.to_string()),
    }
}

/// The TOML type a key takes: declared in `config-types`, else implied by its kind. `None`
/// for a `json` key without a declaration: a table, a list or JSON text.
pub fn value_type(field: &ConfigField, types: &[TypedKey]) -> Option<ValueType> {
    if let Some(declared) = types.iter().find(|t| t.name == field.name) {
        return Some(declared.type_);
    }
    match field.kind {
        ConfigKind::Text | ConfigKind::Secret | ConfigKind::Url | ConfigKind::Choice => {
            Some(ValueType::Text)
        }
        ConfigKind::Integer => Some(ValueType::Integer),
        ConfigKind::Boolean => Some(ValueType::Boolean),
        ConfigKind::Json => None,
    }
}

/// What `koppel connector inspect` shows as a key's type: the declared type, else its kind.
pub fn type_name(field: &ConfigField, types: &[TypedKey]) -> &'static str {
    match types.iter().find(|t| t.name == field.name) {
        Some(declared) => declared.type_.name(),
        None => field.kind.name(),
    }
}

/// How a value of the type is written, for messages: the connector's example, else ours.
fn example(field: &ConfigField, types: &[TypedKey]) -> String {
    let given = types
        .iter()
        .find(|t| t.name == field.name)
        .map(|t| t.example.trim())
        .filter(|e| !e.is_empty());
    let example = match given {
        Some(example) => example.to_owned(),
        None => match value_type(field, types) {
            Some(ValueType::Text) => match field.choices.first() {
                Some(choice) if field.kind == ConfigKind::Choice => format!("{choice:?}"),
                _ => "\"…\"".to_owned(),
            },
            Some(ValueType::Integer) => "1".to_owned(),
            Some(ValueType::Number) => "12.5".to_owned(),
            Some(ValueType::Boolean) => "true".to_owned(),
            Some(ValueType::List) => "[\"a\", \"b\"]".to_owned(),
            Some(ValueType::Table) | None => "{ key = \"value\" }".to_owned(),
        },
    };
    format!("{} = {example}", field.name)
}

fn expected(ty: Option<ValueType>) -> &'static str {
    match ty {
        Some(ValueType::Text) => "text",
        Some(ValueType::Integer) => "a whole number",
        Some(ValueType::Number) => "a number",
        Some(ValueType::Boolean) => "true or false",
        Some(ValueType::List) => "a list",
        Some(ValueType::Table) => "a table",
        None => "a table or a list",
    }
}

fn written_as(value: &toml::Value) -> &'static str {
    match value {
        toml::Value::String(_) => "text",
        toml::Value::Integer(_) => "a whole number",
        toml::Value::Float(_) => "a decimal number",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a date",
        toml::Value::Array(_) => "a list",
        toml::Value::Table(_) => "a table",
    }
}

/// A TOML value as JSON (dates as text).
fn toml_json(value: &toml::Value) -> Result<serde_json::Value, String> {
    Ok(match value {
        toml::Value::String(s) => serde_json::Value::String(s.clone()),
        toml::Value::Integer(i) => serde_json::Value::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(serde_json::Value::Number)
            .ok_or_else(|| format!("{f} is not a number JSON can carry"))?,
        toml::Value::Boolean(b) => serde_json::Value::Bool(*b),
        toml::Value::Datetime(d) => serde_json::Value::String(d.to_string()),
        toml::Value::Array(items) => {
            serde_json::Value::Array(items.iter().map(toml_json).collect::<Result<_, _>>()?)
        }
        toml::Value::Table(table) => serde_json::Value::Object(
            table
                .iter()
                .map(|(k, v)| Ok((k.clone(), toml_json(v)?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}

/// JSON as TOML, for the warning that shows the old form rewritten (`None` when JSON has
/// what TOML cannot write, a `null`).
fn json_toml(value: &serde_json::Value) -> Option<toml::Value> {
    Some(match value {
        serde_json::Value::Null => return None,
        serde_json::Value::Bool(b) => toml::Value::Boolean(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => toml::Value::Integer(i),
            None => toml::Value::Float(n.as_f64()?),
        },
        serde_json::Value::String(s) => toml::Value::String(s.clone()),
        serde_json::Value::Array(items) => {
            toml::Value::Array(items.iter().map(json_toml).collect::<Option<_>>()?)
        }
        serde_json::Value::Object(map) => toml::Value::Table(
            map.iter()
                .map(|(k, v)| Some((k.clone(), json_toml(v)?)))
                .collect::<Option<_>>()?,
        ),
    })
}

/// The text of a scalar as the guest receives it.
fn scalar_text(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Datetime(d) => Some(d.to_string()),
        toml::Value::Float(f) if f.is_finite() => Some(f.to_string()),
        _ => None,
    }
}

/// A config as the guest receives it, converted from `koppel.toml`, with what was accepted
/// only in its pre-0.1.1 form (JSON text for a table or a list).
#[derive(Clone, Debug, Default)]
pub struct GuestConfig {
    pub values: BTreeMap<String, String>,
    /// Each names the key and the TOML form to write instead.
    pub warnings: Vec<ConfigProblem>,
}

/// Converts a config as written (values from the environment already read) into the strings
/// the contract carries, checking each value against its key's type. Keys the manifest does
/// not have are passed on as text, for [`validate`] to refuse by name.
pub fn from_toml(
    manifest: &Manifest,
    types: &[TypedKey],
    table: &toml::Table,
) -> Result<GuestConfig, ConfigError> {
    let mut config = GuestConfig::default();
    let mut problems = Vec::new();
    for (key, value) in table {
        let Some(field) = manifest.config.iter().find(|f| &f.name == key) else {
            config
                .values
                .insert(key.clone(), scalar_text(value).unwrap_or_default());
            continue;
        };
        let ty = value_type(field, types);
        let wrong = || ConfigProblem {
            key: key.clone(),
            message: format!(
                "must be {}, not {}; write it like {}",
                expected(ty),
                written_as(value),
                example(field, types)
            ),
        };
        let text = match (ty, value) {
            (Some(ValueType::List), toml::Value::Array(_))
            | (Some(ValueType::Table) | None, toml::Value::Table(_))
            | (None, toml::Value::Array(_)) => match toml_json(value) {
                Ok(json) => json.to_string(),
                Err(message) => {
                    problems.push(ConfigProblem {
                        key: key.clone(),
                        message,
                    });
                    continue;
                }
            },
            // The form from before 0.1.1: JSON in a string.
            (Some(kind @ (ValueType::List | ValueType::Table)), toml::Value::String(text)) => {
                let parsed: Option<serde_json::Value> = serde_json::from_str(text).ok();
                let fits = matches!(
                    (&parsed, kind),
                    (Some(serde_json::Value::Array(_)), ValueType::List)
                        | (Some(serde_json::Value::Object(_)), ValueType::Table)
                );
                if !fits {
                    problems.push(wrong());
                    continue;
                }
                let rewritten = parsed
                    .as_ref()
                    .and_then(json_toml)
                    .map(|v| format!("{key} = {v}"))
                    .unwrap_or_else(|| example(field, types));
                config.warnings.push(ConfigProblem {
                    key: key.clone(),
                    message: format!(
                        "{} written as JSON text is still read, but write it as TOML: {rewritten}",
                        expected(Some(kind))
                    ),
                });
                text.clone()
            }
            (Some(ValueType::List | ValueType::Table), _) => {
                problems.push(wrong());
                continue;
            }
            (None, toml::Value::String(text)) => text.clone(),
            (Some(ValueType::Text), toml::Value::Float(_)) => {
                problems.push(ConfigProblem {
                    key: key.clone(),
                    message: format!(
                        "must be text, not a decimal number; write it like {key} = \"12.50\""
                    ),
                });
                continue;
            }
            (Some(ValueType::Text), toml::Value::Integer(_) | toml::Value::Boolean(_))
            | (Some(ValueType::Integer), toml::Value::Integer(_) | toml::Value::String(_))
            | (Some(ValueType::Boolean), toml::Value::Boolean(_) | toml::Value::String(_))
            | (
                Some(ValueType::Number),
                toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::String(_),
            )
            | (Some(ValueType::Text), toml::Value::String(_) | toml::Value::Datetime(_)) => {
                match scalar_text(value) {
                    Some(text) => text,
                    None => {
                        problems.push(wrong());
                        continue;
                    }
                }
            }
            _ => {
                problems.push(wrong());
                continue;
            }
        };
        config.values.insert(key.clone(), text);
    }
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError {
            connector: manifest.id.clone(),
            problems,
        })
    }
}

/// Checks the `config-types` of a manifest: each names a config key once, with a type its
/// kind can carry (rule 1.1).
pub fn validate_types(manifest: &Manifest, types: &[TypedKey]) -> Result<(), String> {
    let mut seen = std::collections::HashSet::new();
    for typed in types {
        let Some(field) = manifest.config.iter().find(|f| f.name == typed.name) else {
            return Err(format!(
                "config-types names `{}`, which is not a config key",
                typed.name
            ));
        };
        if !seen.insert(typed.name.as_str()) {
            return Err(format!("config-types names `{}` twice", typed.name));
        }
        let fits = match typed.type_ {
            ValueType::Text => !matches!(
                field.kind,
                ConfigKind::Integer | ConfigKind::Boolean | ConfigKind::Json
            ),
            ValueType::Integer => field.kind == ConfigKind::Integer,
            ValueType::Boolean => field.kind == ConfigKind::Boolean,
            ValueType::Number => field.kind == ConfigKind::Text,
            ValueType::List | ValueType::Table => {
                matches!(field.kind, ConfigKind::Json | ConfigKind::Text)
            }
        };
        if !fits {
            return Err(format!(
                "config-types gives `{}` the type {}, which a key of kind {} cannot carry",
                typed.name,
                typed.type_.name(),
                field.kind.name()
            ));
        }
    }
    Ok(())
}

/// Checks `raw` (the strings the guest receives) against the manifest's config schema and
/// the keys' types.
pub fn validate(
    manifest: &Manifest,
    types: &[TypedKey],
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
        let ty = value_type(field, types);
        let by_kind = match ty {
            // A typed table or list says what it must be better than "not valid JSON".
            Some(ValueType::List | ValueType::Table) => Ok(()),
            _ => check_kind(field.kind, &field.choices, &value),
        };
        let checked = by_kind
            .and_then(|()| check_type(ty, &value))
            .map_err(|message| match ty {
                Some(ValueType::List | ValueType::Table | ValueType::Number) => {
                    format!("{message}; write it like {}", example(field, types))
                }
                _ => message,
            });
        if let Err(message) = checked {
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

/// `12`, `-0.5`, `12.50`.
fn is_decimal(text: &str) -> bool {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, "0"));
    !whole.is_empty()
        && !fraction.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.bytes().all(|b| b.is_ascii_digit())
}

/// The string form of a typed value: JSON of the right shape, a decimal.
fn check_type(ty: Option<ValueType>, value: &str) -> Result<(), String> {
    let json = || serde_json::from_str::<serde_json::Value>(value).ok();
    match ty {
        Some(ValueType::Table) => match json() {
            Some(serde_json::Value::Object(_)) => Ok(()),
            _ => Err(format!("{value:?} is not a table")),
        },
        Some(ValueType::List) => match json() {
            Some(serde_json::Value::Array(_)) => Ok(()),
            _ => Err(format!("{value:?} is not a list")),
        },
        Some(ValueType::Number) if is_decimal(value.trim()) => Ok(()),
        Some(ValueType::Number) => Err(format!("{value:?} is not a number")),
        _ => Ok(()),
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
    use super::super::bindings::StreamAccess;
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
            &[],
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
            &[],
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

    /// A manifest with typed keys: a table, a list, a number; and a `json` key without a type.
    fn typed() -> (Manifest, Vec<TypedKey>) {
        let mut manifest = manifest();
        manifest.config.extend([
            field("vat_codes", ConfigKind::Json, false, None),
            field("branches", ConfigKind::Json, false, None),
            field("rate", ConfigKind::Text, false, None),
            field("mapping", ConfigKind::Json, false, None),
        ]);
        let types = vec![
            TypedKey {
                name: "vat_codes".into(),
                type_: ValueType::Table,
                example: r#"{ "21" = 1, DE = { "21" = 3 } }"#.into(),
            },
            TypedKey {
                name: "branches".into(),
                type_: ValueType::List,
                example: "[1, 2]".into(),
            },
            TypedKey {
                name: "rate".into(),
                type_: ValueType::Number,
                example: "5.5".into(),
            },
        ];
        (manifest, types)
    }

    fn toml(text: &str) -> toml::Table {
        toml::from_str(text).expect("valid TOML")
    }

    #[test]
    fn tables_lists_and_numbers_written_as_toml_reach_the_guest_as_json_and_text() {
        let (manifest, types) = typed();
        let guest = from_toml(
            &manifest,
            &types,
            &toml(
                r#"
                base_url = "https://h"
                secret = "s"
                employee = 12
                branches = [1, 2]
                rate = 5.5
                mapping = { a = [1, "x"] }
                [vat_codes]
                "21" = 1
                DE = { "21" = 3 }
                "#,
            ),
        )
        .expect("valid");
        assert!(guest.warnings.is_empty(), "{:?}", guest.warnings);
        let values = &guest.values;
        assert_eq!(values["vat_codes"], r#"{"21":1,"DE":{"21":3}}"#);
        assert_eq!(values["branches"], "[1,2]");
        assert_eq!(values["rate"], "5.5");
        assert_eq!(values["employee"], "12");
        assert_eq!(values["mapping"], r#"{"a":[1,"x"]}"#);
        let config = validate(&manifest, &types, values).expect("the guest form validates");
        assert_eq!(config.get("rate"), Some("5.5"));
    }

    #[test]
    fn json_text_for_a_table_is_still_read_with_a_warning_naming_the_toml_form() {
        let (manifest, types) = typed();
        let guest = from_toml(
            &manifest,
            &types,
            &toml(r#"vat_codes = '{"21": 1, "DE": {"21": 3}}'"#),
        )
        .expect("the old form is accepted");
        assert_eq!(guest.values["vat_codes"], r#"{"21": 1, "DE": {"21": 3}}"#);
        assert_eq!(guest.warnings.len(), 1);
        let warning = &guest.warnings[0];
        assert_eq!(warning.key, "vat_codes");
        assert!(
            warning
                .message
                .contains("write it as TOML: vat_codes = { 21 = 1, DE = { 21 = 3 } }"),
            "{}",
            warning.message
        );
        // A json key without a declared type takes JSON text as it always did.
        let guest =
            from_toml(&manifest, &types, &toml(r#"mapping = '{"a": 1}'"#)).expect("json text");
        assert!(guest.warnings.is_empty());
    }

    #[test]
    fn a_wrong_type_names_the_key_the_type_and_an_example() {
        let (manifest, types) = typed();
        let error = from_toml(
            &manifest,
            &types,
            &toml(
                "vat_codes = [1, 2]
branches = \"1,2\"
rate = true
employee = { a = 1 }
",
            ),
        )
        .expect_err("wrong types");
        let text = error.to_string();
        for expected in [
            r#"`vat_codes`: must be a table, not a list; write it like vat_codes = { "21" = 1, DE = { "21" = 3 } }"#,
            "`branches`: must be a list, not text; write it like branches = [1, 2]",
            "`rate`: must be a number, not a boolean; write it like rate = 5.5",
            "`employee`: must be a whole number, not a table; write it like employee = 1",
        ] {
            assert!(text.contains(expected), "{expected}\nnot in\n{text}");
        }
        // Strings the guest would receive are checked too (a spec built in code).
        let error = validate(
            &manifest,
            &types,
            &raw(&[
                ("base_url", "https://h"),
                ("secret", "s"),
                ("vat_codes", "21=1"),
            ]),
        )
        .expect_err("not a table");
        assert!(
            error
                .to_string()
                .contains("is not a table; write it like vat_codes = "),
            "{error}"
        );
    }

    #[test]
    fn types_must_name_keys_their_kind_can_carry() {
        let (manifest, mut types) = typed();
        assert_eq!(validate_types(&manifest, &types), Ok(()));
        types.push(TypedKey {
            name: "employee".into(),
            type_: ValueType::Table,
            example: String::new(),
        });
        assert!(
            validate_types(&manifest, &types)
                .expect_err("an integer key cannot be a table")
                .contains("`employee` the type table, which a key of kind integer cannot carry")
        );
        types.pop();
        types.push(TypedKey {
            name: "nope".into(),
            type_: ValueType::Text,
            example: String::new(),
        });
        assert!(validate_types(&manifest, &types).is_err());
    }
}
