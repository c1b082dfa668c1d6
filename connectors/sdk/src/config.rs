//! Reading a connection's config: typed getters whose errors name the key.
//!
//! Values arrive as strings (contract rule 2.4): tables and lists as JSON, numbers as
//! decimal text. [`Settings::get`] gives the string; [`Settings::table`], [`Settings::list`],
//! [`Settings::number`] and [`Settings::json`] give it typed, and accept the forms a user
//! wrote before typed config values (JSON text, comma-separated lists) the same way.

use crate::error::Result;
use crate::{Config, ConnectorError, Decimal, TypedKey};

/// For [`crate::export!`] without `config_types`: no key has a type beyond its kind.
pub fn no_types() -> Vec<TypedKey> {
    Vec::new()
}

/// A connection's config as the host passed it (defaults filled, kinds checked).
#[derive(Clone, Debug, Default)]
pub struct Settings {
    entries: Vec<(String, String)>,
}

impl From<Config> for Settings {
    fn from(entries: Config) -> Self {
        Settings { entries }
    }
}

impl Settings {
    /// The value of `name`, if set and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .filter(|value| !value.is_empty())
    }

    /// The value of `name`, or a config error saying it must be set.
    pub fn require(&self, name: &str) -> Result<&str> {
        self.get(name).ok_or_else(|| {
            ConnectorError::config(
                name,
                format!("`{name}` is required: set it in the connection's config"),
            )
        })
    }

    /// `name` parsed as `T`, or `default` when not set.
    pub fn parse_or<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T> {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => raw.trim().parse().map_err(|_| {
                ConnectorError::config(
                    name,
                    format!(
                        "`{name}` = {raw:?} is not a valid {}",
                        std::any::type_name::<T>()
                    ),
                )
            }),
        }
    }

    /// `name` parsed as `T`; it must be set.
    pub fn parse<T: std::str::FromStr>(&self, name: &str) -> Result<T> {
        let raw = self.require(name)?;
        raw.trim().parse().map_err(|_| {
            ConnectorError::config(
                name,
                format!(
                    "`{name}` = {raw:?} is not a valid {}",
                    std::any::type_name::<T>()
                ),
            )
        })
    }

    /// `name` as a boolean (`true`/`false`), or `default`.
    pub fn flag(&self, name: &str, default: bool) -> Result<bool> {
        match self.get(name).map(str::trim) {
            None => Ok(default),
            Some("true" | "1" | "yes") => Ok(true),
            Some("false" | "0" | "no") => Ok(false),
            Some(raw) => Err(ConnectorError::config(
                name,
                format!("`{name}` = {raw:?} must be true or false"),
            )),
        }
    }

    /// `name` as a JSON document deserialised to `T`, or `T::default()` when not set.
    pub fn json<T: serde::de::DeserializeOwned + Default>(&self, name: &str) -> Result<T> {
        match self.get(name) {
            None => Ok(T::default()),
            Some(raw) => serde_json::from_str(raw).map_err(|error| {
                ConnectorError::config(
                    name,
                    format!("`{name}` is not valid JSON for this setting: {error}"),
                )
            }),
        }
    }

    /// `name` as a table (a TOML table in `koppel.toml`, passed as a JSON object; JSON text
    /// written in a string arrives the same), or an empty one when not set.
    pub fn table(&self, name: &str) -> Result<serde_json::Map<String, serde_json::Value>> {
        match self.get(name) {
            None => Ok(serde_json::Map::new()),
            Some(raw) => match serde_json::from_str(raw) {
                Ok(serde_json::Value::Object(map)) => Ok(map),
                _ => Err(ConnectorError::config(
                    name,
                    format!("`{name}` must be a table, like {name} = {{ key = \"value\" }}"),
                )),
            },
        }
    }

    /// `name` as a list (a TOML array, passed as a JSON array), or, as lists were written
    /// before, comma-separated text (`"1,2"`, each item a string). Empty when not set.
    pub fn list(&self, name: &str) -> Result<Vec<serde_json::Value>> {
        let Some(raw) = self.get(name) else {
            return Ok(Vec::new());
        };
        if raw.trim_start().starts_with('[') {
            return serde_json::from_str(raw).map_err(|error| {
                ConnectorError::config(
                    name,
                    format!(
                        "`{name}` is not a list ({error}); write it like {name} = [\"a\", \"b\"]"
                    ),
                )
            });
        }
        Ok(raw
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| serde_json::Value::String(item.to_owned()))
            .collect())
    }

    /// `name` as a decimal number (`12.5`, `"12.50"`), or none when not set.
    pub fn number(&self, name: &str) -> Result<Option<Decimal>> {
        match self.get(name) {
            None => Ok(None),
            Some(raw) => Decimal::parse(raw.trim()).map(Some).ok_or_else(|| {
                ConnectorError::config(
                    name,
                    format!("`{name}` = {raw:?} is not a number; write it like {name} = 12.5"),
                )
            }),
        }
    }

    /// A URL setting without its trailing slash.
    pub fn base_url(&self, name: &str) -> Result<String> {
        let raw = self.require(name)?.trim();
        if !(raw.starts_with("http://") || raw.starts_with("https://")) {
            return Err(ConnectorError::config(
                name,
                format!(
                    "`{name}` = {raw:?} must start with https:// (or http:// for a local test server)"
                ),
            ));
        }
        Ok(raw.trim_end_matches('/').to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(entries: &[(&str, &str)]) -> Settings {
        Settings::from(
            entries
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn errors_name_the_key() {
        let s = settings(&[("port", "x"), ("empty", "")]);
        let error = s.require("empty").expect_err("empty counts as unset");
        assert_eq!(error.field.as_deref(), Some("empty"));
        let error = s.parse::<u16>("port").expect_err("not a number");
        assert_eq!(error.field.as_deref(), Some("port"));
        assert!(error.message.contains("\"x\""), "{}", error.message);
        assert_eq!(s.parse_or::<u16>("missing", 7).ok(), Some(7));
    }

    #[test]
    fn typed_values_read_in_the_new_and_the_old_form() {
        let s = settings(&[
            ("vat", r#"{"21":1,"DE":{"21":3}}"#),
            ("branches", "[1,2]"),
            ("old_branches", "1, 2"),
            ("rate", "5.50"),
            ("text", "plain"),
        ]);
        let vat = s.table("vat").expect("a table");
        assert_eq!(vat["21"], 1);
        assert_eq!(vat["DE"]["21"], 3);
        assert!(s.table("missing").expect("unset").is_empty());
        let error = s.table("text").expect_err("not a table");
        assert_eq!(error.field.as_deref(), Some("text"));
        assert_eq!(s.list("branches").expect("list"), vec![1, 2]);
        assert_eq!(s.list("old_branches").expect("list"), vec!["1", "2"]);
        assert_eq!(
            s.number("rate").expect("number").map(|d| d.to_string()),
            Some("5.50".to_owned())
        );
        assert!(s.number("text").is_err());
    }

    #[test]
    fn base_urls_need_a_scheme_and_lose_the_trailing_slash() {
        let s = settings(&[("a", "https://shop.example/"), ("b", "shop.example")]);
        assert_eq!(
            s.base_url("a").ok().as_deref(),
            Some("https://shop.example")
        );
        assert!(s.base_url("b").is_err());
    }
}
