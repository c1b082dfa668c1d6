//! The `log` host import: a guest's log lines go to the host's log, redacted, under the
//! `koppel::guest` target, with a cap on how many one instance may write.

use super::bindings;
use super::host::CallContext;
use super::redact;

/// Most guest log lines one instance may write.
const MAX_LOG_LINES: u32 = 10_000;

/// The log of one instance: counts its lines against the cap.
#[derive(Debug, Default)]
pub(crate) struct GuestLog {
    lines: u32,
}

impl GuestLog {
    /// Writes one line of the guest's, with its secrets and sensitive fields redacted.
    pub(crate) fn write(
        &mut self,
        ctx: &CallContext,
        level: bindings::Level,
        message: &str,
        fields: &[(String, String)],
    ) {
        self.lines += 1;
        if self.lines > MAX_LOG_LINES {
            if self.lines == MAX_LOG_LINES + 1 {
                tracing::warn!(connection = %ctx.connection, "Connector logs too much; further lines are dropped.");
            }
            return;
        }
        let redactor = &ctx.redactor;
        let message = redactor.text(message);
        let fields = fields
            .iter()
            .map(|(k, v)| {
                let v = if redact::is_sensitive_name(k) {
                    redact::REDACTED.to_owned()
                } else {
                    redactor.text(v)
                };
                format!("{k}={v}")
            })
            .collect::<Vec<_>>()
            .join(" ");
        let (tenant, connection) = (&ctx.tenant, &ctx.connection);
        match level {
            bindings::Level::Trace => {
                tracing::trace!(target: "koppel::guest", %tenant, %connection, %fields, "{message}")
            }
            bindings::Level::Debug => {
                tracing::debug!(target: "koppel::guest", %tenant, %connection, %fields, "{message}")
            }
            bindings::Level::Info => {
                tracing::info!(target: "koppel::guest", %tenant, %connection, %fields, "{message}")
            }
            bindings::Level::Warn => {
                tracing::warn!(target: "koppel::guest", %tenant, %connection, %fields, "{message}")
            }
            bindings::Level::Error => {
                tracing::error!(target: "koppel::guest", %tenant, %connection, %fields, "{message}")
            }
        }
    }
}
