//! Section 7 of the contract: the sandbox — no secret in anything the connector said or
//! sent.

use super::*;

impl Suite {
    pub(super) fn secret_checks(&mut self) {
        let secrets: Vec<&String> = self.secrets.iter().filter(|s| s.len() >= 4).collect();
        let leaked_said = self
            .said
            .iter()
            .chain(self.report.checks.iter().map(|c| &c.detail))
            .any(|text| secrets.iter().any(|s| text.contains(s.as_str())));
        let dump = self.sink.dump();
        let leaked_log = secrets.iter().any(|s| dump.contains(s.as_str()));
        let mut problems = Vec::new();
        if leaked_said {
            problems.push("a secret value is in an error, outcome message or state".to_owned());
        }
        if leaked_log {
            problems.push("a secret value reached the activity log".to_owned());
        }
        self.pass_or_fail(
            "6.3",
            "no secret in messages, states or the activity log",
            problems,
            format!("{} secret values looked for", secrets.len()),
        );
        // Messages reach the suite redacted (the session redacts them): a redaction mark in
        // one means the connector put a secret there and relied on the host (rule 6.3).
        let redacted: Vec<&String> = self
            .said
            .iter()
            .filter(|text| text.contains(crate::runtime::redact::REDACTED))
            .collect();
        if let Some(first) = redacted.first() {
            let detail = format!(
                "the host had to redact {} message(s), e.g. {first:?}: keep secrets out of what the connector says",
                redacted.len()
            );
            self.add("6.3", "messages need no redaction", Status::Warn, detail);
        }
        let exchanges = self.sink.exchanges();
        self.report.requests = exchanges.len() as u64;
        let limits = self.options.limits.clone();
        let problems: Vec<String> = exchanges
            .iter()
            .filter(|e| {
                e.request_bytes as usize > limits.max_request_bytes
                    || e.response_bytes as usize > limits.max_response_bytes
            })
            .map(|e| {
                format!(
                    "{} {}: {} bytes out, {} in",
                    e.method, e.url, e.request_bytes, e.response_bytes
                )
            })
            .collect();
        self.pass_or_fail(
            "7.5",
            "requests and answers within the size caps",
            problems,
            format!("{} requests", exchanges.len()),
        );
        if self.report.peak_memory_bytes <= limits.memory_bytes {
            let detail = format!(
                "peak {:.1} MiB of {} MiB",
                self.report.peak_memory_bytes as f64 / 1048576.0,
                limits.memory_bytes >> 20
            );
            self.add("7.4", "memory within the cap", Status::Pass, detail);
        }
        if self.report.longest_call_ms <= self.report.call_limit_ms {
            let detail = format!(
                "longest call {} ms of {} ms",
                self.report.longest_call_ms, self.report.call_limit_ms
            );
            self.add(
                "7.5",
                "every call within the time limit",
                Status::Pass,
                detail,
            );
        }
    }
}
