//! Reading a connection's config: typed getters whose errors name the key.

use crate::error::Result;
use crate::{Config, ConnectorError};

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
    fn base_urls_need_a_scheme_and_lose_the_trailing_slash() {
        let s = settings(&[("a", "https://shop.example/"), ("b", "shop.example")]);
        assert_eq!(
            s.base_url("a").ok().as_deref(),
            Some("https://shop.example")
        );
        assert!(s.base_url("b").is_err());
    }
}
