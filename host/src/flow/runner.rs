//! The stages of one run, as a pipeline: a reader task reads the source page by page (one
//! page ahead of the writes); each page is mapped and diffed against the id map (`prepare`);
//! what changed is written in batches, up to `write_concurrency` at once, each in its own
//! session of the target; and every batch is committed **in order**, so the cursor moves past
//! a page only when all its batches, and all batches before them, are committed. A key never
//! has two writes in flight: a page with a key still in flight waits for it to commit.
//!
//! With `write_concurrency = 1` nothing overlaps: a page is read after the one before is
//! committed, as before the pipeline.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use tokio::sync::mpsc;

use super::definition::{Combine, Delivery, FlowDef};
use super::engine::{Environment, RunOptions, StageTimes};
use super::side::Side;
use crate::mapping::{Mapped, Mapper};
use crate::model::{Record, StockLevel, codec, decimal, key_of};
use crate::runtime::CallError;
use crate::runtime::bindings::{OutcomeStatus, WriteOptions, WriteOutcome};
use crate::store::{Batch, Counts, RecordResult};

const MAX_FAILURES_SHOWN: usize = 20;

/// How a run that was carried out ended.
pub(super) enum Finish {
    Done,
    Cancelled,
}

/// Why a run stopped early.
pub(super) enum Abort {
    Store(crate::store::StoreError),
    /// Stopped on request between batches; what was written is committed.
    Cancelled,
    /// The source or target could not be used; the cursor stays where it was.
    Call(String),
}

impl From<crate::store::StoreError> for Abort {
    fn from(error: crate::store::StoreError) -> Self {
        Abort::Store(error)
    }
}

/// Whether a failed call is worth trying again later as a whole (the system is away or
/// throttling), rather than failing the records it carried.
fn transient(error: &CallError) -> bool {
    match error {
        CallError::Connector(e) => e.retryable,
        CallError::Timeout { .. } => true,
        _ => false,
    }
}

/// A reason with its numbers and ids left out, so the same reason for many records counts
/// once: `no product with number 1000052` → `no product with number …`.
pub(super) fn reason_shape(reason: &str) -> String {
    static IDS: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"\b[0-9a-fA-F-]*[0-9][0-9a-fA-F-]{2,}\b").expect("valid regex")
    });
    IDS.replace_all(reason, "…").into_owned()
}

/// A record of a page, or the key of one that could not be combined, and why.
type Item = Result<Record, (String, String)>;

/// Adds up the stock levels of one key (several branches) into one, in first-seen order
/// (`combine = "sum-by-key"`, which a flow may set only on a stock stream). A key whose sum
/// does not fit comes back as an error naming it, for that record alone to fail.
pub(super) fn sum_by_key(records: Vec<Record>) -> Vec<Item> {
    let mut order: Vec<String> = Vec::new();
    let mut sums: HashMap<String, Option<StockLevel>> = HashMap::new();
    let mut others = Vec::new();
    for record in records {
        match record {
            Record::Stock(stock) => match sums.get_mut(&stock.key) {
                Some(slot) => {
                    *slot = slot.take().and_then(|sum| {
                        Some(StockLevel {
                            on_hand: decimal::checked_add(sum.on_hand, stock.on_hand)?,
                            reserved: decimal::checked_add(sum.reserved, stock.reserved)?,
                            available: decimal::checked_add(sum.available, stock.available)?,
                            ..sum
                        })
                    });
                }
                None => {
                    order.push(stock.key.clone());
                    sums.insert(
                        stock.key.clone(),
                        Some(StockLevel {
                            location: None,
                            ..stock
                        }),
                    );
                }
            },
            other => others.push(Ok(other)),
        }
    }
    let mut combined: Vec<Item> = order
        .into_iter()
        .map(|key| match sums.remove(&key).flatten() {
            Some(sum) => Ok(Record::Stock(sum)),
            None => Err((
                key,
                "combining its locations (sum-by-key): the total is too large".to_owned(),
            )),
        })
        .collect();
    combined.extend(others);
    combined
}

/// A page the reader task read.
struct ReadPage {
    items: Vec<Item>,
    read: u64,
    state: Option<String>,
    /// The last page: the source has no more, or its state did not move.
    last: bool,
}

/// Reads the source page by page, one page per request, from `state`.
/// Returns the source, the time spent waiting for it and the pages read.
async fn read_pages(
    mut source: Box<dyn Side>,
    flow: FlowDef,
    mut state: Option<String>,
    mut asks: mpsc::Receiver<()>,
    pages: mpsc::Sender<Result<ReadPage, String>>,
) -> (Box<dyn Side>, Duration, u64) {
    let stream = flow.source.stream.clone();
    let mut reading = Duration::ZERO;
    let mut count = 0;
    while asks.recv().await.is_some() {
        let started = Instant::now();
        let read = source.read(&stream, state.as_deref(), flow.page_size).await;
        reading += started.elapsed();
        count += 1;
        let page = match read {
            Ok(page) => page,
            Err(error) => {
                let _ = pages
                    .send(Err(format!("reading `{stream}`: {error}")))
                    .await;
                break;
            }
        };
        let stuck = page.has_more && page.state == state;
        if stuck {
            tracing::warn!(flow = %flow.name, "The source says it has more but its state did not move; stopping this run.");
        }
        let last = !page.has_more || stuck;
        let read = page.records.len() as u64;
        let items = match flow.combine {
            Some(Combine::SumByKey) => sum_by_key(page.records),
            None => page.records.into_iter().map(Ok).collect(),
        };
        state = page.state.clone();
        let sent = pages
            .send(Ok(ReadPage {
                items,
                read,
                state: page.state,
                last,
            }))
            .await;
        if sent.is_err() || last {
            break;
        }
    }
    (source, reading, count)
}

/// What one commit carries: results, the records read, and the cursor to move to.
struct Pending {
    results: Vec<RecordResult>,
    read: u64,
    /// Some: move the cursor there (the last batch of a page).
    state: Option<Option<String>>,
    /// Every key in it, in flight until it is committed.
    keys: Vec<String>,
}

/// A batch back from the target.
struct Written {
    seq: u64,
    side: Box<dyn Side>,
    bases: Vec<RecordResult>,
    outcome: Result<Vec<WriteOutcome>, CallError>,
    /// How long the target took.
    took: Duration,
    /// What rides with the batch to its commit.
    pending: Pending,
}

/// A page mapped and diffed: what needs no write, and what does.
struct Prepared {
    settled: Vec<RecordResult>,
    to_write: Vec<(Record, RecordResult)>,
}

pub(super) struct Runner<'a> {
    pub env: &'a Environment,
    pub flow: &'a FlowDef,
    pub mapper: Mapper,
    pub options: &'a RunOptions,
    pub run_id: i64,
    pub write_options: WriteOptions,
    pub settings_hash: String,
    pub source: Option<Box<dyn Side>>,
    /// The target side lookups use; writes take sides from `idle` (forks of it).
    pub target: Box<dyn Side>,
    pub counts: Counts,
    pub skipped: BTreeMap<String, u64>,
    pub failures: Vec<(String, String)>,
    pub stages: StageTimes,
    /// Pages read and batches sent.
    pub pages: u64,
    pub batches: u64,
    idle: Vec<Box<dyn Side>>,
    in_flight: FuturesUnordered<BoxFuture<'static, Written>>,
    /// Answered batches (and pages that needed no write) waiting for those before them.
    ready: BTreeMap<u64, Pending>,
    next_seq: u64,
    next_commit: u64,
    /// Keys launched or answered and not committed yet, with how many times.
    open_keys: HashMap<String, usize>,
    /// The first reason to stop: nothing more is launched, what is in flight is committed
    /// without moving the cursor.
    broken: Option<Abort>,
}

impl<'a> Runner<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        env: &'a Environment,
        flow: &'a FlowDef,
        mapper: Mapper,
        options: &'a RunOptions,
        run_id: i64,
        source: Box<dyn Side>,
        target: Box<dyn Side>,
    ) -> Runner<'a> {
        Runner {
            env,
            flow,
            mapper,
            options,
            run_id,
            write_options: flow.write_options(),
            settings_hash: codec::hash_of(&flow.write_options()),
            source: Some(source),
            target,
            counts: Counts::default(),
            skipped: BTreeMap::new(),
            failures: Vec::new(),
            stages: StageTimes::default(),
            pages: 0,
            batches: 0,
            idle: Vec::new(),
            in_flight: FuturesUnordered::new(),
            ready: BTreeMap::new(),
            next_seq: 0,
            next_commit: 0,
            open_keys: HashMap::new(),
            broken: None,
        }
    }

    /// HTTP exchanges with both systems.
    pub fn exchanges(&self) -> u64 {
        self.source.as_ref().map_or(0, |s| s.exchanges()) + self.target.exchanges()
    }

    fn concurrency(&self) -> usize {
        self.flow.write_concurrency.max(1) as usize
    }

    /// The whole run: failed records first, then the source from its cursor.
    pub async fn go(&mut self) -> Result<Finish, Abort> {
        let state = self
            .env
            .store
            .stream_state(&self.env.tenant, &self.flow.name)
            .await?;
        let (ask, asks) = mpsc::channel(1);
        let (pages_out, mut pages) = mpsc::channel(1);
        let source = self
            .source
            .take()
            .expect("the source is here until the run");
        let reader = tokio::spawn(read_pages(
            source,
            self.flow.clone(),
            state,
            asks,
            pages_out,
        ));
        let outcome = self.pipeline(&ask, &mut pages).await;
        drop(ask);
        drop(pages);
        if let Ok((source, reading, pages)) = reader.await {
            self.source = Some(source);
            self.stages.read = reading;
            self.pages = pages;
        }
        outcome
    }

    async fn pipeline(
        &mut self,
        ask: &mpsc::Sender<()>,
        pages: &mut mpsc::Receiver<Result<ReadPage, String>>,
    ) -> Result<Finish, Abort> {
        let overlap = self.concurrency() > 1;
        if overlap {
            // The first page is read while the failed records are retried.
            let _ = ask.send(()).await;
        }
        self.retry_failed().await?;
        if !overlap {
            let _ = ask.send(()).await;
        }
        loop {
            if self.options.cancel.is_cancelled() {
                self.drain().await?;
                return Ok(Finish::Cancelled);
            }
            let page = tokio::select! {
                page = pages.recv() => page,
                Some(written) = self.in_flight.next(), if !self.in_flight.is_empty() => {
                    self.answered(written).await?;
                    continue;
                }
            };
            let page = match page {
                Some(Ok(page)) => page,
                Some(Err(message)) => {
                    self.drain().await?;
                    return Err(Abort::Call(message));
                }
                // The reader stopped after the last page.
                None => break,
            };
            if overlap && !page.last {
                let _ = ask.send(()).await;
            }
            let last = page.last;
            self.page(page.items, page.read, Some(page.state)).await?;
            if self.broken.is_some() {
                self.drain().await?;
                return Err(self.broken.take().unwrap_or(Abort::Cancelled));
            }
            if last {
                break;
            }
            if !overlap {
                self.drain().await?;
                let _ = ask.send(()).await;
            }
        }
        self.drain().await?;
        match self.broken.take() {
            Some(abort) => Err(abort),
            None => Ok(Finish::Done),
        }
    }

    /// Records that failed in earlier runs, tried again first.
    async fn retry_failed(&mut self) -> Result<(), Abort> {
        let failed = self
            .env
            .store
            .failed_to_retry(&self.env.tenant, &self.flow.name, 10_000)
            .await?;
        let mut records: Vec<Item> = failed
            .iter()
            .filter(|f| f.attempts < i64::from(self.flow.max_attempts))
            .filter_map(|f| match codec::decode(&f.record) {
                Ok(record) => Some(Ok(record)),
                Err(error) => {
                    tracing::warn!(flow = %self.flow.name, key = %f.key, %error, "A failed record cannot be read back; skipping its retry.");
                    None
                }
            })
            .collect();
        if records.is_empty() {
            return Ok(());
        }
        tracing::info!(flow = %self.flow.name, count = records.len(), "Retrying failed records.");
        while !records.is_empty() {
            let rest = records.split_off(records.len().min(self.flow.page_size.max(1) as usize));
            let chunk = std::mem::replace(&mut records, rest);
            self.page(chunk, 0, None).await?;
            if let Some(abort) = self.broken.take() {
                self.drain().await?;
                return Err(abort);
            }
        }
        Ok(())
    }

    /// One page: wait out keys still in flight, prepare, then launch its batches (or commit
    /// it at once when nothing needs writing). `state`: where the cursor goes once the whole
    /// page is committed (None: a retry, the cursor stays).
    async fn page(
        &mut self,
        items: Vec<Item>,
        read: u64,
        state: Option<Option<String>>,
    ) -> Result<(), Abort> {
        // Memory stays bounded by what is in flight: at most `write_concurrency` batches
        // answered or not, and this page.
        while self.in_flight.len() + self.ready.len() > self.concurrency() {
            if !self.complete_one().await? {
                break;
            }
        }
        // A key never has two writes open: wait until its earlier one is committed.
        while items
            .iter()
            .any(|item| self.open_keys.contains_key(item_key(item)))
        {
            if !self.complete_one().await? {
                break;
            }
        }
        let Prepared { settled, to_write } = self.prepare(items).await?;
        let size = self.flow.batch_size.max(1) as usize;
        let mut batches: VecDeque<Vec<(Record, RecordResult)>> = VecDeque::new();
        let mut rest = to_write;
        while !rest.is_empty() {
            let tail = rest.split_off(rest.len().min(size));
            batches.push_back(std::mem::replace(&mut rest, tail));
        }
        let mut carried = Pending {
            keys: settled.iter().map(|r| r.key.clone()).collect(),
            results: settled,
            read,
            state: None,
        };
        if batches.is_empty() {
            carried.state = state;
            let seq = self.take_seq();
            self.open(&carried.keys);
            self.ready.insert(seq, carried);
            return self.commit_ready().await;
        }
        let mut first = true;
        while let Some(batch) = batches.pop_front() {
            if !first && self.options.cancel.is_cancelled() {
                // Stop between batches: what was written is committed, the cursor stays.
                self.broken.get_or_insert(Abort::Cancelled);
                return Ok(());
            }
            first = false;
            while self.in_flight.len() >= self.concurrency() {
                self.complete_one().await?;
            }
            if self.broken.is_some() {
                return Ok(());
            }
            let mut pending = std::mem::replace(
                &mut carried,
                Pending {
                    results: Vec::new(),
                    read: 0,
                    state: None,
                    keys: Vec::new(),
                },
            );
            if batches.is_empty() {
                pending.state = state.clone();
            }
            self.launch(batch, pending).await?;
        }
        Ok(())
    }

    fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    fn open(&mut self, keys: &[String]) {
        for key in keys {
            *self.open_keys.entry(key.clone()).or_default() += 1;
        }
    }

    fn close(&mut self, keys: &[String]) {
        for key in keys {
            if let Some(count) = self.open_keys.get_mut(key) {
                *count -= 1;
                if *count == 0 {
                    self.open_keys.remove(key);
                }
            }
        }
    }

    /// Maps and diffs a page: each record once encoded, hashed with the write settings, and
    /// compared with the id map (or, for once-delivery, the ledger).
    async fn prepare(&mut self, items: Vec<Item>) -> Result<Prepared, Abort> {
        let tenant = self.env.tenant.clone();
        let flow = self.flow.name.clone();
        let store = self.env.store.clone();
        let once = self.flow.delivery == Delivery::Once;
        let keys: Vec<&str> = items.iter().map(item_key).collect();
        let looking = Instant::now();
        let mapped_before = if once {
            HashMap::new()
        } else {
            store.mapped(&tenant, &flow, &keys).await?
        };
        let ledger = if once {
            store.ledger(&tenant, &flow, &keys).await?
        } else {
            HashMap::new()
        };
        self.stages.lookup += looking.elapsed();

        let mut settled: Vec<RecordResult> = Vec::new();
        let mut to_write: Vec<(Record, RecordResult)> = Vec::new();
        for item in &items {
            let record = match item {
                Ok(record) => record,
                Err((key, message)) => {
                    settled.push(RecordResult {
                        message: Some(message.clone()),
                        stage: Some("mapping"),
                        keep_row: true,
                        ..RecordResult::new(key.clone(), OutcomeStatus::Failed)
                    });
                    continue;
                }
            };
            let mapping = Instant::now();
            let key = key_of(record).to_owned();
            // Each record is encoded once: its source form, and (when the mapper changed
            // nothing) the same bytes as what the target receives, hashed as they are.
            let source = codec::encode(record);
            // Every path below sets the outcome; one that did not would count as failed.
            let base = RecordResult {
                source: Some(source.clone()),
                keep_row: true,
                ledger: once,
                ..RecordResult::new(key.clone(), OutcomeStatus::Failed)
            };
            let applied = self.mapper.apply(record);
            let (mapped, target_json) = match applied {
                Ok(Mapped::Same) => (record.clone(), source),
                Ok(Mapped::Keep(mapped)) => {
                    let encoded = codec::encode(&mapped);
                    (*mapped, encoded)
                }
                Ok(Mapped::Skip(reason)) => {
                    settled.push(RecordResult {
                        outcome: OutcomeStatus::Skipped,
                        message: Some(reason),
                        ledger: false,
                        ..base
                    });
                    continue;
                }
                Err(error) => {
                    settled.push(RecordResult {
                        outcome: OutcomeStatus::Failed,
                        message: Some(format!("mapping: {error}")),
                        field: Some(error.field.clone()).filter(|f| !f.is_empty()),
                        stage: Some("mapping"),
                        ledger: false,
                        ..base
                    });
                    continue;
                }
            };
            let hashing = Instant::now();
            self.stages.map += hashing - mapping;
            let hash = codec::content_hash(&target_json, &self.settings_hash);
            self.stages.hash += hashing.elapsed();
            let target_json = Some(target_json);
            if once {
                match ledger.get(&key) {
                    Some(entry) if !entry.pending => {
                        settled.push(RecordResult {
                            outcome: OutcomeStatus::Skipped,
                            message: Some("already in the target".into()),
                            target_id: entry.target_id.clone(),
                            ledger: false,
                            keep_row: false,
                            ..base
                        });
                        continue;
                    }
                    Some(_) => {
                        // Asked before, answer unknown (a crash or a lost response): look first.
                        let stream = self.flow.target.stream.clone();
                        self.target
                            .ready()
                            .await
                            .map_err(|e| Abort::Call(format!("looking up `{key}`: {e}")))?;
                        // Ask by the key the target knows the record under (the mapped one).
                        match self.target.lookup(&stream, key_of(&mapped)).await {
                            Ok(Some(found)) => {
                                settled.push(RecordResult {
                                    outcome: OutcomeStatus::Unchanged,
                                    message: Some(
                                        "found in the target after an interrupted write".into(),
                                    ),
                                    target_id: Some(found.id),
                                    target: target_json,
                                    hash: Some(hash),
                                    ..base
                                });
                                continue;
                            }
                            Ok(None) => {}
                            Err(error) if transient(&error) => {
                                return Err(Abort::Call(format!("looking up `{key}`: {error}")));
                            }
                            Err(error) => {
                                settled.push(RecordResult {
                                    outcome: OutcomeStatus::Failed,
                                    message: Some(format!("looking it up in the target: {error}")),
                                    stage: Some("writing"),
                                    retryable: true,
                                    ..base
                                });
                                continue;
                            }
                        }
                    }
                    None => {}
                }
            } else if mapped_before.get(&key).is_some_and(|m| m.hash == hash) {
                settled.push(RecordResult {
                    outcome: OutcomeStatus::Unchanged,
                    keep_row: false,
                    ledger: false,
                    ..base
                });
                continue;
            }
            to_write.push((
                mapped,
                RecordResult {
                    target: target_json,
                    hash: Some(hash),
                    ..base
                },
            ));
        }
        Ok(Prepared { settled, to_write })
    }

    /// Starts writing a batch in a session of its own; `pending` rides along to its commit.
    async fn launch(
        &mut self,
        batch: Vec<(Record, RecordResult)>,
        mut pending: Pending,
    ) -> Result<(), Abort> {
        let tenant = self.env.tenant.clone();
        let flow = self.flow.name.clone();
        if self.flow.delivery == Delivery::Once {
            let keys: Vec<&str> = batch.iter().map(|(_, r)| r.key.as_str()).collect();
            self.env.store.ledger_begin(&tenant, &flow, &keys).await?;
        }
        let (records, bases): (Vec<Record>, Vec<RecordResult>) = batch.into_iter().unzip();
        pending.keys.extend(bases.iter().map(|b| b.key.clone()));
        self.open(&pending.keys);
        let seq = self.take_seq();
        self.batches += 1;
        let mut side = match self.idle.pop() {
            Some(side) => side,
            None => self.target.fork(),
        };
        let stream = self.flow.target.stream.clone();
        let options = self.write_options.clone();
        self.in_flight.push(Box::pin(async move {
            let started = Instant::now();
            let outcome = side.write(&stream, &records, &options).await;
            Written {
                seq,
                side,
                bases,
                outcome,
                took: started.elapsed(),
                pending,
            }
        }));
        Ok(())
    }

    /// Waits for the next batch to come back and commits what can be; false when nothing
    /// was in flight.
    async fn complete_one(&mut self) -> Result<bool, Abort> {
        match self.in_flight.next().await {
            Some(written) => {
                self.answered(written).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// A batch is back: its outcomes become results, and it waits for its turn to commit.
    async fn answered(&mut self, written: Written) -> Result<(), Abort> {
        let Written {
            seq,
            side,
            bases,
            outcome,
            took,
            mut pending,
        } = written;
        self.stages.write += took;
        self.idle.push(side);
        let stream = &self.flow.target.stream;
        match outcome {
            Ok(outcomes) => {
                if let Some(progress) = &self.options.progress {
                    progress.written(&self.flow.name, outcomes.len());
                }
                pending
                    .results
                    .extend(bases.into_iter().zip(outcomes).map(|(base, outcome)| {
                        let failed = outcome.status == OutcomeStatus::Failed;
                        RecordResult {
                            outcome: outcome.status,
                            message: outcome.message,
                            field: outcome.field,
                            target_id: outcome.target_id,
                            hash: if failed { None } else { base.hash.clone() },
                            stage: failed.then_some("writing"),
                            retryable: outcome.retryable,
                            ..base
                        }
                    }));
            }
            Err(error) if transient(&error) => {
                // The system is away: this batch's records stay unacknowledged (read again
                // from the cursor next run); nothing more is launched.
                self.broken
                    .get_or_insert(Abort::Call(format!("writing `{stream}`: {error}")));
                pending.state = None;
            }
            Err(error) => {
                // The connector broke on this batch: its records wait in the queue, the run
                // goes on.
                let message = format!("writing `{stream}`: {error}");
                pending
                    .results
                    .extend(bases.into_iter().map(|base| RecordResult {
                        outcome: OutcomeStatus::Failed,
                        message: Some(message.clone()),
                        stage: Some("writing"),
                        retryable: true,
                        hash: None,
                        ..base
                    }));
            }
        }
        self.ready.insert(seq, pending);
        self.commit_ready().await
    }

    /// Commits, in order, every answered batch whose predecessors are committed. Once the run
    /// is broken, the cursor no longer moves: what comes after an unacknowledged batch is
    /// committed without its page's state.
    async fn commit_ready(&mut self) -> Result<(), Abort> {
        while let Some(mut pending) = self.ready.remove(&self.next_commit) {
            self.next_commit += 1;
            if self.broken.is_some() {
                pending.state = None;
            }
            self.close(&pending.keys);
            for result in &pending.results {
                self.note(result);
            }
            let batch = Batch {
                run_id: self.run_id,
                results: pending.results,
                new_state: pending.state,
                read: pending.read,
            };
            let committing = Instant::now();
            let counts = self
                .env
                .store
                .commit(&self.env.tenant, &self.flow.name, &batch)
                .await?;
            self.stages.commit += committing.elapsed();
            self.counts.add(counts);
            if let Some(progress) = &self.options.progress {
                progress.update(&self.flow.name, &self.counts);
            }
        }
        Ok(())
    }

    /// Waits for every batch in flight and commits them.
    async fn drain(&mut self) -> Result<(), Abort> {
        while self.complete_one().await? {}
        self.commit_ready().await
    }

    fn note(&mut self, result: &RecordResult) {
        match result.outcome {
            OutcomeStatus::Skipped => {
                let reason = reason_shape(result.message.as_deref().unwrap_or("skipped"));
                *self.skipped.entry(reason).or_default() += 1;
            }
            OutcomeStatus::Failed if self.failures.len() < MAX_FAILURES_SHOWN => {
                self.failures.push((
                    result.key.clone(),
                    result.message.clone().unwrap_or_default(),
                ));
            }
            _ => {}
        }
    }
}

fn item_key(item: &Item) -> &str {
    match item {
        Ok(record) => key_of(record),
        Err((key, _)) => key.as_str(),
    }
}

#[cfg(test)]
mod tests {
    use super::{reason_shape, sum_by_key};
    use crate::model::{Decimal, Record, StockLevel};

    fn level(key: &str, location: &str, available: i64) -> Record {
        let d = |units| Decimal { units, scale: 0 };
        Record::Stock(StockLevel {
            key: key.into(),
            on_hand: d(available),
            reserved: d(0),
            available: d(available),
            location: Some(location.into()),
            extra: vec![],
        })
    }

    #[test]
    fn stock_of_one_key_adds_up_and_a_sum_too_large_fails_that_key_alone() {
        let combined = sum_by_key(vec![
            level("A", "1", 3),
            level("B", "1", i64::MAX),
            level("A", "2", 4),
            level("B", "2", 1),
        ]);
        assert_eq!(combined.len(), 2);
        let Ok(Record::Stock(a)) = &combined[0] else {
            panic!("A adds up: {combined:?}")
        };
        assert_eq!((a.available.units, a.location.as_deref()), (7, None));
        let Err((key, message)) = &combined[1] else {
            panic!("B overflows: {combined:?}")
        };
        assert_eq!(key, "B");
        assert!(message.contains("too large"), "{message}");
    }

    #[test]
    fn reasons_group_without_their_numbers_and_ids() {
        assert_eq!(
            reason_shape(
                "Shopware has no product with number 1000052; the products flow creates it"
            ),
            "Shopware has no product with number …; the products flow creates it"
        );
        assert_eq!(
            reason_shape("filtered out: `extra.webshop` is false"),
            "filtered out: `extra.webshop` is false"
        );
        assert_eq!(
            reason_shape("as 9143a0bde6c9c15e2d331d9c8ebfafcf here"),
            "as … here"
        );
        assert_eq!(
            reason_shape("`extra.group` is 12, not one of [1,2]"),
            "`extra.group` is 12, not one of [1,2]"
        );
    }
}
