//! Values read from the environment (`{ env = "NAME" }`, allowed wherever a value is) and
//! [`Secret`], a value written in the file or read from the environment that never shows in
//! `Debug`.

use std::fmt;

use serde::Deserialize;

/// The variable `value` names when it is written `{ env = "NAME" }`.
pub fn env_name(value: &toml::Value) -> Option<&str> {
    match value {
        toml::Value::Table(t) if t.len() == 1 => t.get("env").and_then(toml::Value::as_str),
        _ => None,
    }
}

/// `value`, or the environment variable's text when it is written `{ env = "NAME" }`.
pub fn resolve_env(value: &toml::Value) -> Result<toml::Value, String> {
    match env_name(value) {
        Some(var) => std::env::var(var).map(toml::Value::String).map_err(|_| {
            format!(
                "is read from the environment variable {var}, which is not set; set it or write the value here"
            )
        }),
        None => Ok(value.clone()),
    }
}

/// A single value as text (a secret, a token): text, a whole number or a boolean, or
/// `{ env = "NAME" }`.
pub fn scalar_text(value: &toml::Value) -> Result<String, String> {
    match resolve_env(value)? {
        toml::Value::String(s) => Ok(s),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        toml::Value::Float(_) => Err("write numbers with decimals as text (\"12.50\")".into()),
        toml::Value::Datetime(d) => Ok(d.to_string()),
        toml::Value::Table(_) => Err("a table here must be { env = \"VARIABLE\" }".into()),
        toml::Value::Array(_) => Err("must be one value, not a list".into()),
    }
}

/// A secret: `"value"` in the file, or `{ env = "NAME" }` to read the environment.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(transparent)]
pub struct Secret(toml::Value);

impl Secret {
    /// A secret written as a value (for tests and the setup wizard).
    pub fn plain(value: &str) -> Secret {
        Secret(toml::Value::String(value.to_owned()))
    }

    /// The value, read from the environment when so written.
    pub fn resolve(&self) -> Result<String, String> {
        let value = scalar_text(&self.0)?;
        if value.is_empty() {
            return Err("is empty".into());
        }
        Ok(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            toml::Value::Table(t) => match t.get("env") {
                Some(var) => write!(f, "<secret from env {var}>"),
                None => f.write_str("<secret>"),
            },
            _ => f.write_str("<secret: set>"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_resolve_from_the_environment_and_never_show() {
        // SAFETY: only this test sets this variable.
        unsafe { std::env::set_var("KOPPEL_TEST_SECRET_ENV", "hunter2") };
        let secret = Secret::deserialize(toml::Value::Table(
            toml::toml! { env = "KOPPEL_TEST_SECRET_ENV" },
        ))
        .expect("a table");
        assert_eq!(secret.resolve().as_deref(), Ok("hunter2"));
        assert!(!format!("{secret:?}").contains("hunter2"));
        assert!(!format!("{:?}", Secret::plain("hunter2")).contains("hunter2"));
        let unset = scalar_text(&toml::Value::Table(
            toml::toml! { env = "KOPPEL_NOT_SET_ANYWHERE" },
        ))
        .expect_err("unset");
        assert!(
            unset.contains("KOPPEL_NOT_SET_ANYWHERE, which is not set"),
            "{unset}"
        );
    }
}
