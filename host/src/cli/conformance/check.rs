//! Section 2 of the contract: config and `check`, with good, wrong and unreachable config.

use super::*;

impl Suite {
    pub(super) async fn check_checks(&mut self) -> bool {
        let good = match self.connection(self.config.clone()) {
            Ok(c) => c,
            Err(error) => {
                self.add(
                    "2.1",
                    "check passes with the given config",
                    Status::Fail,
                    error,
                );
                return false;
            }
        };
        let ok = match self.check_call("check", &good).await {
            Ok(()) => {
                self.add(
                    "2.1",
                    "check passes with the given config",
                    Status::Pass,
                    "",
                );
                true
            }
            Err(error) => {
                self.add(
                    "2.1",
                    "check passes with the given config",
                    Status::Fail,
                    error.to_string(),
                );
                false
            }
        };
        let manifest = self.connector.manifest().clone();
        // A wrong secret: auth (or config naming the key), not a trap, not retryable.
        let secrets: Vec<String> = manifest
            .config
            .iter()
            .filter(|f| f.kind == ConfigKind::Secret && self.config.contains_key(&f.name))
            .map(|f| f.name.clone())
            .collect();
        if secrets.is_empty() {
            self.add(
                "2.2",
                "check fails cleanly with a wrong secret",
                Status::Skip,
                "the config sets no `secret` key",
            );
        }
        for key in secrets {
            let mut config = self.config.clone();
            let wrong = format!("koppel-conformance-wrong-{key}");
            self.secrets.push(wrong.clone());
            config.insert(key.clone(), wrong);
            let name = format!("check fails cleanly with a wrong `{key}`");
            let connection = match self.connection(config) {
                Ok(c) => c,
                Err(e) => {
                    self.add("2.2", name, Status::Fail, e);
                    continue;
                }
            };
            match self.check_call("check (wrong secret)", &connection).await {
                Ok(()) => self.add(
                    "2.2",
                    name,
                    Status::Fail,
                    "check passed with a made-up secret",
                ),
                Err(CallError::Connector(e))
                    if matches!(e.kind, ErrorKind::Auth | ErrorKind::Config) && !e.retryable =>
                {
                    self.add(
                        "2.2",
                        name,
                        Status::Pass,
                        format!("{}: {}", kind_name(e.kind), e.message),
                    )
                }
                Err(CallError::Connector(e)) => self.add(
                    "2.2",
                    name,
                    Status::Fail,
                    format!(
                        "wanted an `auth` error, not retryable; got {} (retryable {}): {}",
                        kind_name(e.kind),
                        e.retryable,
                        e.message
                    ),
                ),
                Err(other) => self.add("2.2", name, Status::Fail, other.to_string()),
            }
        }
        // An address nothing answers on: unreachable, retryable.
        let url_key = manifest
            .config
            .iter()
            .filter(|f| f.kind == ConfigKind::Url)
            .map(|f| f.name.clone())
            .find(|name| {
                manifest
                    .outbound_hosts
                    .iter()
                    .any(|t| crate::runtime::http::placeholders(t).contains(&name.as_str()))
            });
        match url_key {
            None => self.add(
                "2.3",
                "check fails cleanly when the system is unreachable",
                Status::Skip,
                "no `url` key names an outbound host",
            ),
            Some(key) => {
                let mut config = self.config.clone();
                config.insert(key.clone(), UNREACHABLE_URL.into());
                let name = format!("check fails cleanly when `{key}` does not answer");
                match self.connection(config) {
                    Err(e) => self.add("2.3", name, Status::Fail, e),
                    Ok(connection) => {
                        match self.check_call("check (unreachable)", &connection).await {
                            Ok(()) => self.add(
                                "2.3",
                                name,
                                Status::Fail,
                                format!("check passed against {UNREACHABLE_URL}"),
                            ),
                            Err(CallError::Connector(e)) if e.kind == ErrorKind::Unreachable => {
                                self.add(
                                    "2.3",
                                    name,
                                    Status::Pass,
                                    format!("unreachable: {}", e.message),
                                )
                            }
                            Err(CallError::Connector(e)) => self.add(
                                "2.3",
                                name,
                                Status::Fail,
                                format!(
                                    "wanted an `unreachable` error; got {}: {}",
                                    kind_name(e.kind),
                                    e.message
                                ),
                            ),
                            Err(other) => self.add("2.3", name, Status::Fail, other.to_string()),
                        }
                    }
                }
            }
        }
        ok
    }
}
