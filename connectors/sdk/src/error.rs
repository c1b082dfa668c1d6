//! Building [`ConnectorError`]s that name the field and the fix.

use crate::{ConnectorError, ErrorKind};

/// The result type of connector code.
pub type Result<T, E = ConnectorError> = std::result::Result<T, E>;

impl ConnectorError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        let retryable = matches!(kind, ErrorKind::Unreachable | ErrorKind::Throttled);
        ConnectorError {
            kind,
            message: message.into(),
            field: None,
            retryable,
        }
    }

    /// A config key is missing or wrong: say which and how to fix it.
    pub fn config(field: &str, message: impl Into<String>) -> Self {
        ConnectorError {
            field: Some(field.to_owned()),
            ..Self::new(ErrorKind::Config, message)
        }
    }

    pub fn auth(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Auth, message)
    }

    pub fn unreachable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unreachable, message)
    }

    pub fn protocol(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Protocol, message)
    }

    pub fn rejected(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Rejected, message)
    }

    pub fn throttled(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Throttled, message)
    }

    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// Names the field at fault.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }
}

impl ConnectorError {
    /// The message with the field at fault, for people.
    pub fn describe(&self) -> String {
        match &self.field {
            Some(field) => format!("{} (field `{field}`)", self.message),
            None => self.message.clone(),
        }
    }
}

impl From<serde_json::Error> for ConnectorError {
    fn from(error: serde_json::Error) -> Self {
        ConnectorError::protocol(format!("unexpected JSON: {error}"))
    }
}
