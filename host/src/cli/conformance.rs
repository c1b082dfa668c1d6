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

use crate::mapping::key_of;
use crate::runtime::bindings::{
    ConfigKind, ErrorKind, OutcomeStatus, Record, RecordKind, ReferenceEntry, StreamAccess,
    WriteOptions,
};
use crate::runtime::{
    CallError, Connection, ConnectionSpec, Connector, Limits, MemoryKv, MemorySink, Session,
    validate_manifest,
};

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

fn status_name(status: OutcomeStatus) -> &'static str {
    match status {
        OutcomeStatus::Created => "created",
        OutcomeStatus::Updated => "updated",
        OutcomeStatus::Unchanged => "unchanged",
        OutcomeStatus::Skipped => "skipped",
        OutcomeStatus::Failed => "failed",
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

fn kind_of(record: &Record) -> RecordKind {
    match record {
        Record::Product(_) => RecordKind::Product,
        Record::Stock(_) => RecordKind::Stock,
        Record::Customer(_) => RecordKind::Customer,
        Record::Order(_) => RecordKind::Order,
        Record::OrderStatus(_) => RecordKind::OrderStatus,
        Record::Reference(_) => RecordKind::Reference,
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

    fn manifest_checks(&mut self) {
        let manifest = self.connector.manifest().clone();
        let types = self.connector.config_types().to_vec();
        match validate_manifest(&manifest) {
            Ok(()) => self.add(
                "1.1",
                "manifest is valid",
                Status::Pass,
                format!(
                    "id `{}`, {} streams, {} config keys",
                    manifest.id,
                    manifest.streams.len(),
                    manifest.config.len()
                ),
            ),
            Err(e) => self.add("1.1", "manifest is valid", Status::Fail, e),
        }
        let mut problems = Vec::new();
        for field in &manifest.config {
            if field.label.trim().is_empty() {
                problems.push(format!("config key `{}` has no label", field.name));
            }
            if field.description.trim().is_empty() {
                problems.push(format!("config key `{}` has no description", field.name));
            }
            if field.kind == ConfigKind::Choice && field.choices.is_empty() {
                problems.push(format!("choice `{}` lists no choices", field.name));
            }
            if let Some(default) = field
                .default
                .as_ref()
                .and_then(crate::runtime::config::value_text)
            {
                let mut one = BTreeMap::new();
                one.insert(field.name.clone(), default.clone());
                let check = crate::runtime::config::validate(&manifest, &types, &one);
                if let Err(e) = check
                    && let Some(p) = e.problems.iter().find(|p| p.key == field.name)
                {
                    problems.push(format!(
                        "the default of `{}` ({default:?}) is not valid: {}",
                        field.name, p.message
                    ));
                }
            }
            if field.kind != ConfigKind::Secret
                && crate::runtime::redact::is_sensitive_name(&field.name)
            {
                problems.push(format!(
                    "`{}` sounds secret but is of kind {}: make it `secret` so it is never shown",
                    field.name,
                    field.kind.name()
                ));
            }
        }
        // Each typed key's example must be a value of its type (it is shown to users who
        // wrote the wrong type).
        for typed in &types {
            let example =
                toml::from_str::<toml::Table>(&format!("{} = {}", typed.name, typed.example));
            let converted = example
                .as_ref()
                .map_err(ToString::to_string)
                .and_then(|table| {
                    crate::runtime::config::from_toml(&manifest, &types, table)
                        .map_err(|e| e.to_string())
                });
            if let Err(error) = converted {
                problems.push(format!(
                    "the example of `{}` ({}) is not a {}: {error}",
                    typed.name,
                    typed.example,
                    typed.type_.name()
                ));
            }
        }
        for template in &manifest.outbound_hosts {
            for name in crate::runtime::http::placeholders(template) {
                if let Some(field) = manifest.config.iter().find(|f| f.name == name)
                    && !field.required
                    && field.default.is_none()
                {
                    problems.push(format!("outbound host {template:?} needs `{name}`, which is neither required nor defaulted"));
                }
            }
        }
        self.pass_or_fail("1.2", "config schema is complete", problems, "every key has a label and a description; kinds, choices and defaults agree; secrets are `secret`");
        let mut problems = Vec::new();
        if manifest.streams.is_empty() {
            problems.push("no streams".to_owned());
        }
        for stream in &manifest.streams {
            if stream.description.trim().is_empty() {
                problems.push(format!("stream `{}` has no description", stream.name));
            }
            if stream.access == StreamAccess::empty() {
                problems.push(format!(
                    "stream `{}` allows neither read, write nor lookup",
                    stream.name
                ));
            }
        }
        self.pass_or_fail(
            "1.3",
            "streams are declared",
            problems,
            "every stream has a kind, an access and a description",
        );
        let semver = manifest.version.split('.').count() == 3
            && manifest
                .version
                .split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        if manifest.name.trim().is_empty() || !semver {
            self.add(
                "1.4",
                "name and version",
                Status::Warn,
                format!(
                    "name {:?}, version {:?}: give a name and an x.y.z version",
                    manifest.name, manifest.version
                ),
            );
        } else {
            self.add(
                "1.4",
                "name and version",
                Status::Pass,
                format!("{} {}", manifest.name, manifest.version),
            );
        }
    }

    async fn check_checks(&mut self) -> bool {
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

    fn selected(&self, stream: &str) -> bool {
        self.options.streams.is_empty() || self.options.streams.iter().any(|s| s == stream)
    }

    /// Reads `stream` from `state` to its end (or `max_records`).
    async fn read_all(
        &mut self,
        stream: &str,
        state: Option<String>,
        label: &str,
    ) -> Result<ReadResult, String> {
        let Some(mut session) = self.session(label).await else {
            return Err("no session".into());
        };
        let mut result = ReadResult::default();
        let mut state = state;
        let mut stuck = 0;
        loop {
            let page = {
                let call = session.read(stream, state.as_deref(), self.options.page_size);
                let started = Instant::now();
                let outcome = call.await;
                let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                self.report.calls += 1;
                self.report.longest_call_ms = self.report.longest_call_ms.max(ms);
                self.report.peak_memory_bytes =
                    self.report.peak_memory_bytes.max(session.peak_memory());
                outcome
            };
            let page = match page {
                Ok(page) => page,
                Err(error) => {
                    let rule = match &error {
                        CallError::Timeout { .. } => "7.5",
                        CallError::Memory { .. } => "7.4",
                        CallError::Trap { .. } => "6.2",
                        _ => "3.2",
                    };
                    self.add(
                        rule,
                        format!("{label}: every page reads"),
                        Status::Fail,
                        format!("after {} records: {error}", result.len()),
                    );
                    return Err(error.to_string());
                }
            };
            if let Some(s) = &page.state {
                self.said.push(s.clone());
            }
            let progressed = page.state != state || !page.records.is_empty();
            result.pages.push((page.records, page.state.clone()));
            if !page.has_more {
                result.finished = true;
                break;
            }
            if page.state.is_none() {
                self.add(
                    "3.2",
                    format!("{label}: a page with more to come carries a state"),
                    Status::Fail,
                    format!(
                        "page {} has has-more but no state, so the host cannot go on",
                        result.pages.len()
                    ),
                );
                break;
            }
            stuck = if progressed { 0 } else { stuck + 1 };
            if stuck >= 3 {
                self.add(
                    "3.2",
                    format!("{label}: paging makes progress"),
                    Status::Fail,
                    "three empty pages with the same state and has-more",
                );
                break;
            }
            state = page.state;
            if result.len() >= self.options.max_records {
                break;
            }
        }
        Ok(result)
    }

    async fn read_checks(&mut self, stream: &str, kind: RecordKind) -> Option<ReadResult> {
        let label = format!("read {stream}");
        let Ok(result) = self.read_all(stream, None, &label).await else {
            return None;
        };
        let limit = self.options.page_size as usize;
        let mut problems = Vec::new();
        for (i, (records, _)) in result.pages.iter().enumerate() {
            if records.len() > limit {
                problems.push(format!(
                    "page {} has {} records, the limit was {limit}",
                    i + 1,
                    records.len()
                ));
            }
            for record in records {
                if kind_of(record) != kind {
                    problems.push(format!(
                        "record {} is a {}, the stream holds {}",
                        identity(record),
                        kind_of(record).name(),
                        kind.name()
                    ));
                }
            }
        }
        self.pass_or_fail(
            "3.1",
            format!("{label}: pages hold at most `limit` records of the stream's kind"),
            problems,
            format!(
                "{} records in {} pages of at most {limit}",
                result.len(),
                result.pages.len()
            ),
        );
        if result.finished {
            self.add(
                "3.2",
                format!("{label}: paging reaches the end"),
                Status::Pass,
                format!("has-more false after {} pages", result.pages.len()),
            );
        } else if result.len() >= self.options.max_records {
            self.add(
                "3.2",
                format!("{label}: paging reaches the end"),
                Status::Skip,
                format!("stopped after {} records (--max-records)", result.len()),
            );
        }
        let mut problems = Vec::new();
        let mut seen = BTreeSet::new();
        for record in result.records() {
            let id = identity(record);
            if id.trim().is_empty() {
                problems.push("a record with an empty key".to_owned());
            } else if !seen.insert(id.clone()) {
                problems.push(format!("{id} came twice"));
            }
        }
        self.pass_or_fail(
            "3.5",
            format!("{label}: keys are set and unique"),
            problems,
            format!("{} distinct keys", seen.len()),
        );
        let too_big: Vec<String> = result
            .pages
            .iter()
            .filter_map(|(_, s)| s.as_ref())
            .filter(|s| s.len() > 4096)
            .map(|s| format!("a state of {} bytes", s.len()))
            .collect();
        if too_big.is_empty() {
            self.add(
                "3.6",
                format!("{label}: states are small"),
                Status::Pass,
                "",
            );
        } else {
            self.add(
                "3.6",
                format!("{label}: states are small"),
                Status::Warn,
                too_big.join("; "),
            );
        }
        if result.finished && result.pages.len() >= 2 {
            self.resume_check(stream, &label, &result).await;
        } else if result.finished {
            self.add(
                "3.3",
                format!("{label}: resuming skips and repeats nothing"),
                Status::Skip,
                format!(
                    "one page only ({} records); a smaller --page-size makes more",
                    result.len()
                ),
            );
        }
        if result.finished {
            self.final_state_check(stream, &label, &result).await;
        }
        Some(result)
    }

    /// 3.3: from the state after page 1, the rest comes exactly: nothing skipped or repeated.
    async fn resume_check(&mut self, stream: &str, label: &str, first: &ReadResult) {
        let name = format!("{label}: resuming from a page's state skips and repeats nothing");
        let state = first.pages[0].1.clone();
        let Ok(rest) = self
            .read_all(stream, state, &format!("{label} (resumed)"))
            .await
        else {
            return;
        };
        let before: BTreeSet<String> = first.pages[0].0.iter().map(identity).collect();
        let expected: BTreeSet<String> = first.pages[1..]
            .iter()
            .flat_map(|(r, _)| r.iter().map(identity))
            .collect();
        let got: BTreeSet<String> = rest.records().map(identity).collect();
        let mut problems = Vec::new();
        for id in expected.difference(&got) {
            problems.push(format!("{id} was skipped"));
        }
        for id in got.intersection(&before) {
            problems.push(format!("{id} from page 1 came again"));
        }
        self.pass_or_fail(
            "3.3",
            name,
            problems,
            format!("{} records after page 1, as in the first read", got.len()),
        );
    }

    /// 3.4: from the last state, nothing already read comes again unchanged.
    async fn final_state_check(&mut self, stream: &str, label: &str, first: &ReadResult) {
        let name = format!("{label}: the last state returns nothing already returned");
        let Some(last) = first.pages.last().and_then(|(_, s)| s.clone()) else {
            self.add(
                "3.4",
                name,
                Status::Skip,
                "a full-refresh stream: its last page has no state, so the next read starts over",
            );
            return;
        };
        let Some(mut session) = self.session(label).await else {
            return;
        };
        let limit = self.options.page_size;
        let outcome = self
            .call(
                &format!("{label} (from the last state)"),
                session.read(stream, Some(&last), limit),
            )
            .await;
        let page = match outcome {
            Ok(page) => page,
            Err(error) => {
                self.add("3.4", name, Status::Fail, error.to_string());
                return;
            }
        };
        let already: BTreeMap<String, String> = first
            .records()
            .map(|r| (identity(r), serde_json::to_string(r).unwrap_or_default()))
            .collect();
        let problems: Vec<String> = page
            .records
            .iter()
            .filter(|r| {
                already.get(&identity(r)) == Some(&serde_json::to_string(r).unwrap_or_default())
            })
            .map(|r| format!("{} came again, unchanged", identity(r)))
            .collect();
        let detail = if page.records.is_empty() {
            "nothing new".to_owned()
        } else {
            format!("{} changed records", page.records.len())
        };
        self.pass_or_fail("3.4", name, problems, detail);
    }

    async fn unsupported_check(&mut self) {
        let name = "a stream that does not exist is `unsupported`";
        let Some(mut session) = self.session("read (no such stream)").await else {
            return;
        };
        match self
            .call("read (no such stream)", session.read(NO_STREAM, None, 1))
            .await
        {
            Err(CallError::Connector(e)) if e.kind == ErrorKind::Unsupported => {
                self.add("3.7", name, Status::Pass, e.message)
            }
            Err(CallError::Connector(e)) => self.add(
                "3.7",
                name,
                Status::Fail,
                format!(
                    "wanted `unsupported`, got {}: {}",
                    kind_name(e.kind),
                    e.message
                ),
            ),
            Err(other) => self.add("3.7", name, Status::Fail, other.to_string()),
            Ok(page) => self.add(
                "3.7",
                name,
                Status::Fail,
                format!("read answered {} records", page.records.len()),
            ),
        }
    }

    async fn write_stream(&mut self, stream: &str, kind: RecordKind, records: Vec<Record>) {
        let label = format!("write {stream}");
        let records: Vec<Record> = records.into_iter().take(self.options.write_batch).collect();
        let options = WriteOptions {
            create_only: vec![],
            settings: vec![],
        };
        let Some(mut session) = self.session(&label).await else {
            return;
        };
        // First write: one outcome per record, in order; none failed.
        let first = self
            .call(&label, session.write(stream, &records, &options))
            .await;
        let first = match first {
            Ok(outcomes) => outcomes,
            Err(error) => {
                self.add(
                    "4.1",
                    format!("{label}: one outcome per record"),
                    Status::Fail,
                    error.to_string(),
                );
                return;
            }
        };
        self.report.peak_memory_bytes = self.report.peak_memory_bytes.max(session.peak_memory());
        let mut problems = Vec::new();
        for (record, outcome) in records.iter().zip(&first) {
            let key = key_of(record);
            if outcome.key != key {
                problems.push(format!("the outcome for {key} says {}", outcome.key));
            }
            if let Some(m) = &outcome.message {
                self.said.push(m.clone());
            }
            if outcome.status == OutcomeStatus::Failed {
                problems.push(format!(
                    "{key} failed: {}",
                    outcome.message.clone().unwrap_or_default()
                ));
            }
        }
        if let Some((record, _)) = records
            .iter()
            .zip(&first)
            .find(|(_, o)| o.status != OutcomeStatus::Failed)
        {
            self.written.insert(stream.to_owned(), record.clone());
        }
        let tally = tally(&first.iter().map(|o| o.status).collect::<Vec<_>>());
        self.pass_or_fail(
            "4.1",
            format!("{label}: one outcome per record, in order"),
            problems,
            format!("{} records: {tally}", records.len()),
        );
        // Second write of the same records: nothing changes.
        let second = self
            .call(
                &format!("{label} (again)"),
                session.write(stream, &records, &options),
            )
            .await;
        match second {
            Ok(outcomes) => {
                let problems: Vec<String> = records
                    .iter()
                    .zip(&outcomes)
                    .filter(|(_, o)| o.status != OutcomeStatus::Unchanged)
                    .map(|(r, o)| {
                        format!(
                            "{} was {} the second time",
                            key_of(r),
                            status_name(o.status)
                        )
                    })
                    .collect();
                self.pass_or_fail(
                    "4.2",
                    format!("{label}: the same records twice are unchanged"),
                    problems,
                    format!("{} unchanged", outcomes.len()),
                );
            }
            Err(error) => self.add(
                "4.2",
                format!("{label}: the same records twice are unchanged"),
                Status::Fail,
                error.to_string(),
            ),
        }
        // A bad record among good ones fails alone.
        let mut batch: Vec<Record> = records.iter().take(2).cloned().collect();
        let at = batch.len().min(1);
        batch.insert(at, bad_record(kind));
        let name = format!("{label}: a bad record fails alone");
        match self
            .call(
                &format!("{label} (a bad record)"),
                session.write(stream, &batch, &options),
            )
            .await
        {
            Ok(outcomes) => {
                let mut problems = Vec::new();
                for (i, (record, outcome)) in batch.iter().zip(&outcomes).enumerate() {
                    if let Some(m) = &outcome.message {
                        self.said.push(m.clone());
                    }
                    let key = key_of(record);
                    if i == at && outcome.status != OutcomeStatus::Failed {
                        problems.push(format!(
                            "the {} record was {}",
                            kind_of(record).name(),
                            status_name(outcome.status)
                        ));
                    } else if i == at
                        && outcome
                            .message
                            .as_deref()
                            .is_none_or(|m| m.trim().is_empty())
                    {
                        problems.push("the failed outcome has no message".to_owned());
                    } else if i != at && outcome.status == OutcomeStatus::Failed {
                        problems.push(format!(
                            "{key} failed with it: {}",
                            outcome.message.clone().unwrap_or_default()
                        ));
                    }
                }
                let message = outcomes
                    .get(at)
                    .and_then(|o| o.message.clone())
                    .unwrap_or_default();
                self.pass_or_fail("4.3", name, problems, format!("failed: {message}"));
            }
            Err(error) => self.add(
                "4.3",
                name,
                Status::Fail,
                format!("the whole call failed: {error}"),
            ),
        }
        self.report.peak_memory_bytes = self.report.peak_memory_bytes.max(session.peak_memory());
    }

    async fn lookup_checks(&mut self, stream: &str, read: Option<&ReadResult>) {
        let label = format!("lookup {stream}");
        let Some(mut session) = self.session(&label).await else {
            return;
        };
        let (record, how) = match read.and_then(|r| r.records().next()) {
            Some(record) => (Some(record.clone()), "read"),
            None => (self.written.get(stream).cloned(), "written"),
        };
        match record {
            Some(record) => {
                // Customers are looked up by e-mail (wit/connector.wit), everything else by key.
                let key = match &record {
                    Record::Customer(c) => c.email.clone(),
                    other => key_of(other).to_owned(),
                };
                let name = format!("{label}: a key that was {how} is found");
                match self.call(&label, session.lookup(stream, &key)).await {
                    Ok(Some(found)) => {
                        self.add("5.1", name, Status::Pass, format!("{key} → {}", found.id))
                    }
                    Ok(None) => self.add("5.1", name, Status::Fail, format!("{key} was not found")),
                    Err(error) => self.add("5.1", name, Status::Fail, error.to_string()),
                }
            }
            None => self.add(
                "5.1",
                format!("{label}: a key the stream holds is found"),
                Status::Skip,
                "nothing read from or written to this stream",
            ),
        }
        let name = format!("{label}: a key that does not exist is none, not an error");
        match self.call(&label, session.lookup(stream, MISSING_KEY)).await {
            Ok(None) => self.add("5.2", name, Status::Pass, ""),
            Ok(Some(found)) => self.add(
                "5.2",
                name,
                Status::Fail,
                format!("{MISSING_KEY} was found as {}", found.id),
            ),
            Err(error) => self.add("5.2", name, Status::Fail, error.to_string()),
        }
        self.report.peak_memory_bytes = self.report.peak_memory_bytes.max(session.peak_memory());
    }

    fn secret_checks(&mut self) {
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

fn tally(statuses: &[OutcomeStatus]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for s in statuses {
        *counts.entry(status_name(*s)).or_default() += 1;
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
