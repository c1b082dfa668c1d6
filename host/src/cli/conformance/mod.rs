//! The conformance suite (`koppel connector test`): runs a connector against a live system or
//! a simulator and checks it keeps `docs/connector-contract.md`, each check naming its rule.
//! In the spirit of Airbyte's acceptance tests: the manifest and its config schema, `check`
//! with good and bad config, reading every stream to the end and resuming from its states,
//! idempotent writes with a bad record among good ones, lookups, and the sandbox's limits.
//!
//! Writes change the system, so the suite writes only records it was given (`records`) or
//! records it just read from the same stream (writing them back changes nothing).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::model::{key_of, kind_of};
use crate::runtime::bindings::{
    ConfigKind, ErrorKind, OutcomeStatus, Record, RecordKind, ReferenceEntry, StreamAccess,
    WriteOptions,
};
use crate::runtime::{
    CallError, Connection, ConnectionSpec, Connector, Limits, MemoryKv, MemorySink, Session,
    validate_manifest,
};

mod check;
mod lookup;
mod manifest;
mod read;
mod sandbox;
mod settings;
mod write;

pub use settings::{AllowedSkip, Settings, SettingsError};

/// What a check came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    /// A SHOULD rule not kept: reported, but the suite still passes.
    Warn,
    Fail,
    /// Not applicable, or nothing to check it with (the detail says which).
    Skip,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
            Status::Skip => "SKIP",
        }
    }
}

/// One check: the rule of `docs/connector-contract.md` it tests, and what was found.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub rule: &'static str,
    pub name: String,
    pub status: Status,
    pub detail: String,
}

/// The whole run.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub connector: String,
    pub version: String,
    pub checks: Vec<Check>,
    /// Calls into the connector, HTTP requests it sent, and the extremes seen.
    pub calls: u64,
    pub requests: u64,
    pub longest_call_ms: u64,
    pub call_limit_ms: u64,
    pub peak_memory_bytes: usize,
    pub memory_limit_bytes: usize,
    pub duration_ms: u64,
}

impl Report {
    pub fn failed(&self) -> Vec<&Check> {
        self.checks
            .iter()
            .filter(|c| c.status == Status::Fail)
            .collect()
    }

    pub fn passed(&self) -> bool {
        self.failed().is_empty()
    }

    fn count(&self, status: Status) -> usize {
        self.checks.iter().filter(|c| c.status == status).count()
    }

    /// One line per check, then the figures and the verdict.
    pub fn text(&self) -> String {
        let mut out = format!(
            "Conformance of `{}` {} (rules: docs/connector-contract.md)\n\n",
            self.connector, self.version
        );
        for check in &self.checks {
            out.push_str(&format!(
                "{} {:<4} {}",
                check.status.label(),
                check.rule,
                check.name
            ));
            if !check.detail.is_empty() {
                out.push_str(&format!(": {}", check.detail));
            }
            out.push('\n');
        }
        out.push_str(&format!(
            "\n{} calls, {} HTTP requests; longest call {} ms (limit {} ms); peak memory {:.1} MiB (limit {} MiB); {:.1} s.\n",
            self.calls,
            self.requests,
            self.longest_call_ms,
            self.call_limit_ms,
            self.peak_memory_bytes as f64 / (1024.0 * 1024.0),
            self.memory_limit_bytes >> 20,
            self.duration_ms as f64 / 1000.0
        ));
        out.push_str(&format!(
            "{}: {} passed, {} failed, {} warnings, {} skipped.\n",
            if self.passed() { "PASSED" } else { "FAILED" },
            self.count(Status::Pass),
            self.count(Status::Fail),
            self.count(Status::Warn),
            self.count(Status::Skip)
        ));
        out
    }
}

/// How the suite runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Records per `read` call.
    pub page_size: u32,
    /// Records read per stream at most; a longer stream is cut there (and the checks that
    /// need its end are skipped).
    pub max_records: usize,
    /// Only these streams (all when empty).
    pub streams: Vec<String>,
    /// Records to write, per stream. A writable stream without records here is written with
    /// what was read from it (when it is readable), else skipped.
    pub records: BTreeMap<String, Vec<Record>>,
    /// Records per write batch at most.
    pub write_batch: usize,
    /// Whether to write at all.
    pub write: bool,
    /// The limits every call runs under.
    pub limits: Limits,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            page_size: 25,
            max_records: 5_000,
            streams: Vec::new(),
            records: BTreeMap::new(),
            write_batch: 20,
            write: true,
            limits: Limits {
                retry_backoff: Duration::from_millis(20),
                ..Limits::default()
            },
        }
    }
}

/// The key that must not be found, and of the record that must fail.
pub const MISSING_KEY: &str = "koppel-conformance-missing";
pub const BAD_KEY: &str = "koppel-conformance-bad-record";
const NO_STREAM: &str = "koppel-conformance-no-such-stream";
/// An address nothing answers on (the discard port of this machine).
const UNREACHABLE_URL: &str = "http://127.0.0.1:9";

struct Suite {
    connector: Arc<Connector>,
    config: BTreeMap<String, String>,
    options: Options,
    report: Report,
    sink: MemorySink,
    /// Every secret value seen (the config's and the wrong ones the suite made up).
    secrets: Vec<String>,
    /// Everything the connector said (messages, states), for the secret check.
    said: Vec<String>,
    /// Per stream, a record the connector wrote (for the lookup checks).
    written: BTreeMap<String, Record>,
}

fn kind_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Config => "config",
        ErrorKind::Auth => "auth",
        ErrorKind::Unreachable => "unreachable",
        ErrorKind::Protocol => "protocol",
        ErrorKind::Rejected => "rejected",
        ErrorKind::Throttled => "throttled",
        ErrorKind::Unsupported => "unsupported",
        ErrorKind::Internal => "internal",
    }
}

/// A record's identity within a read: its key, and for stock its location.
fn identity(record: &Record) -> String {
    match record {
        Record::Stock(level) => match &level.location {
            Some(location) => format!("{}@{location}", level.key),
            None => level.key.clone(),
        },
        other => key_of(other).to_owned(),
    }
}

/// A record no stream of kind `kind` can take: the wrong kind, with a telling key.
fn bad_record(kind: RecordKind) -> Record {
    let entry = ReferenceEntry {
        key: BAD_KEY.into(),
        name: "A record of the wrong kind".into(),
        fields: vec![],
    };
    match kind {
        RecordKind::Reference => Record::Stock(crate::runtime::bindings::StockLevel {
            key: BAD_KEY.into(),
            on_hand: crate::runtime::Decimal { units: 0, scale: 0 },
            reserved: crate::runtime::Decimal { units: 0, scale: 0 },
            available: crate::runtime::Decimal { units: 0, scale: 0 },
            location: None,
            extra: vec![],
        }),
        _ => Record::Reference(entry),
    }
}

/// What a read of one stream gave.
#[derive(Default)]
struct ReadResult {
    /// Records per page, with the state after that page.
    pages: Vec<(Vec<Record>, Option<String>)>,
    /// The stream was read to its end (`has-more` false).
    finished: bool,
}

impl ReadResult {
    fn records(&self) -> impl Iterator<Item = &Record> {
        self.pages.iter().flat_map(|(records, _)| records.iter())
    }

    fn len(&self) -> usize {
        self.pages.iter().map(|(r, _)| r.len()).sum()
    }
}

impl Suite {
    fn add(
        &mut self,
        rule: &'static str,
        name: impl Into<String>,
        status: Status,
        detail: impl Into<String>,
    ) {
        self.report.checks.push(Check {
            rule,
            name: name.into(),
            status,
            detail: detail.into(),
        });
    }

    fn pass_or_fail(
        &mut self,
        rule: &'static str,
        name: impl Into<String>,
        problems: Vec<String>,
        ok: impl Into<String>,
    ) {
        if problems.is_empty() {
            self.add(rule, name, Status::Pass, ok);
        } else {
            let shown: Vec<String> = problems.iter().take(5).cloned().collect();
            let more = problems.len().saturating_sub(5);
            let mut detail = shown.join("; ");
            if more > 0 {
                detail.push_str(&format!("; and {more} more"));
            }
            self.add(rule, name, Status::Fail, detail);
        }
    }

    fn connection(&self, config: BTreeMap<String, String>) -> Result<Connection, String> {
        let mut spec = ConnectionSpec::new("conformance", "conformance", config);
        spec.limits = self.options.limits.clone();
        spec.activity = Arc::new(self.sink.clone());
        spec.kv = Arc::new(MemoryKv::new());
        self.connector.connect(spec).map_err(|e| e.to_string())
    }

    /// Times a call and keeps the sandbox figures; a trap, timeout or memory overrun is a
    /// failed check of its own (6.2, 7.4, 7.5).
    async fn call<T>(
        &mut self,
        what: &str,
        call: impl std::future::Future<Output = Result<T, CallError>>,
    ) -> Result<T, CallError> {
        let started = Instant::now();
        let outcome = call.await;
        let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.report.calls += 1;
        self.report.longest_call_ms = self.report.longest_call_ms.max(ms);
        match &outcome {
            Err(error @ CallError::Timeout { .. }) => self.add(
                "7.5",
                format!("{what}: within the time limit"),
                Status::Fail,
                error.to_string(),
            ),
            Err(error @ CallError::Memory { .. }) => self.add(
                "7.4",
                format!("{what}: within the memory limit"),
                Status::Fail,
                error.to_string(),
            ),
            Err(error @ CallError::Trap { .. }) => self.add(
                "6.2",
                format!("{what}: no trap"),
                Status::Fail,
                error.to_string(),
            ),
            Err(CallError::Connector(error)) => self.said.push(error.message.clone()),
            _ => {}
        }
        outcome
    }

    /// `check` in an instance of its own, through [`Suite::call`], keeping its peak memory.
    async fn check_call(&mut self, what: &str, connection: &Connection) -> Result<(), CallError> {
        let mut peak = 0;
        let outcome = self
            .call(what, async {
                let (outcome, used) = connection.check_measured().await;
                peak = used;
                outcome
            })
            .await;
        self.report.peak_memory_bytes = self.report.peak_memory_bytes.max(peak);
        outcome
    }

    async fn session(&mut self, what: &str) -> Option<Session> {
        let connection = match self.connection(self.config.clone()) {
            Ok(c) => c,
            Err(error) => {
                self.add("2.5", format!("{what}: configure"), Status::Fail, error);
                return None;
            }
        };
        match self
            .call(&format!("{what}: configure"), connection.session())
            .await
        {
            Ok(session) => Some(session),
            Err(error) => {
                if matches!(error, CallError::Connector(_)) {
                    self.add(
                        "2.5",
                        format!("{what}: configure accepts the config"),
                        Status::Fail,
                        error.to_string(),
                    );
                }
                None
            }
        }
    }
}

fn tally(statuses: &[OutcomeStatus]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for s in statuses {
        *counts.entry(s.name()).or_default() += 1;
    }
    counts
        .iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs the suite against `connector` with the connection config `config`.
pub async fn run(
    connector: Arc<Connector>,
    config: BTreeMap<String, String>,
    options: Options,
) -> Report {
    let started = Instant::now();
    let manifest = connector.manifest().clone();
    let secrets = manifest
        .config
        .iter()
        .filter(|f| f.kind == ConfigKind::Secret)
        .filter_map(|f| config.get(&f.name).cloned())
        .collect();
    let mut suite = Suite {
        report: Report {
            connector: manifest.id.clone(),
            version: manifest.version.clone(),
            call_limit_ms: u64::try_from(options.limits.call_timeout.as_millis())
                .unwrap_or(u64::MAX),
            memory_limit_bytes: options.limits.memory_bytes,
            ..Report::default()
        },
        connector,
        config,
        options,
        sink: MemorySink::new(),
        secrets,
        said: Vec::new(),
        written: BTreeMap::new(),
    };
    // 7.1 is checked by loading: a component importing anything else never gets here.
    suite.add(
        "7.1",
        "imports only the contract",
        Status::Pass,
        "the component loaded",
    );
    suite.manifest_checks();
    if let Err(error) = suite.connection(suite.config.clone()) {
        suite.add("2.5", "the config fits the manifest", Status::Fail, error);
        suite.report.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        return suite.report;
    }
    let check_ok = suite.check_checks().await;
    if check_ok {
        let mut reads: BTreeMap<String, ReadResult> = BTreeMap::new();
        let streams: Vec<_> = manifest
            .streams
            .iter()
            .filter(|s| suite.selected(&s.name))
            .cloned()
            .collect();
        for stream in streams
            .iter()
            .filter(|s| s.access.contains(StreamAccess::READ))
        {
            if let Some(result) = suite.read_checks(&stream.name, stream.kind).await {
                reads.insert(stream.name.clone(), result);
            }
        }
        suite.unsupported_check().await;
        for stream in streams
            .iter()
            .filter(|s| s.access.contains(StreamAccess::WRITE))
        {
            let label = format!("write {}", stream.name);
            if !suite.options.write {
                suite.add("4.1", label, Status::Skip, "writes are off (--no-write)");
                continue;
            }
            let given = suite.options.records.get(&stream.name).cloned();
            let records = given.or_else(|| {
                reads
                    .get(&stream.name)
                    .map(|r| r.records().cloned().collect::<Vec<_>>())
            });
            match records {
                Some(records) if !records.is_empty() => suite.write_stream(&stream.name, stream.kind, records).await,
                _ => suite.add("4.1", label, Status::Skip, "no records to write: give some with --records (writing them changes the system)"),
            }
        }
        for stream in streams
            .iter()
            .filter(|s| s.access.contains(StreamAccess::LOOKUP))
        {
            suite
                .lookup_checks(&stream.name, reads.get(&stream.name))
                .await;
        }
    } else {
        suite.add(
            "3.1",
            "reads, writes and lookups",
            Status::Skip,
            "check failed: fix the config or the connection first",
        );
    }
    suite.secret_checks();
    suite.report.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    suite.report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_fails_on_any_failed_check_and_says_which_rule() {
        let mut report = Report {
            connector: "x".into(),
            version: "1.0.0".into(),
            ..Report::default()
        };
        report.checks.push(Check {
            rule: "1.1",
            name: "manifest is valid".into(),
            status: Status::Pass,
            detail: String::new(),
        });
        report.checks.push(Check {
            rule: "3.6",
            name: "states are small".into(),
            status: Status::Warn,
            detail: "big".into(),
        });
        assert!(report.passed(), "a warning does not fail");
        report.checks.push(Check {
            rule: "4.2",
            name: "write twice".into(),
            status: Status::Fail,
            detail: "SKU-1 was updated".into(),
        });
        assert!(!report.passed());
        let text = report.text();
        assert!(
            text.contains("FAIL 4.2  write twice: SKU-1 was updated"),
            "{text}"
        );
        assert!(
            text.contains("FAILED: 1 passed, 1 failed, 1 warnings, 0 skipped."),
            "{text}"
        );
    }

    #[test]
    fn a_bad_record_is_of_another_kind() {
        assert_eq!(
            kind_of(&bad_record(RecordKind::Product)),
            RecordKind::Reference
        );
        assert_eq!(
            kind_of(&bad_record(RecordKind::Reference)),
            RecordKind::Stock
        );
    }
}

#[cfg(test)]
mod records_file {
    use super::*;

    /// The `--records` format the help and docs show: records as koppel stores them.
    #[test]
    fn records_are_tagged_with_their_kind() {
        let text = r#"{"vat-groups": [{"Reference": {"key": "1", "name": "21%", "fields": []}}]}"#;
        let parsed: BTreeMap<String, Vec<Record>> =
            serde_json::from_str(text).expect("the documented format parses");
        assert_eq!(parsed["vat-groups"].len(), 1);
        assert_eq!(kind_of(&parsed["vat-groups"][0]), RecordKind::Reference);
    }
}
