//! The engine against in-memory sides ([`super::fake`]): no WebAssembly, no HTTP. What a run
//! writes, what it commits, what it retries, and what it never writes twice.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::definition::FlowDef;
use super::engine::{Environment, RunOptions, RunSummary, run_between};
use super::fake::{FakeSource, FakeTarget, TargetState, lock};
use super::side::Side;
use crate::model::{Decimal, Record, StockLevel};
use crate::store::{ActivityWriter, RunStatus, Store};

fn level(key: usize, available: i64) -> Record {
    let d = |units| Decimal { units, scale: 0 };
    Record::Stock(StockLevel {
        key: format!("A{key:04}"),
        on_hand: d(available),
        reserved: d(0),
        available: d(available),
        location: None,
        extra: vec![],
    })
}

struct Bench {
    env: Environment,
    flow: FlowDef,
    source: Arc<Mutex<Vec<Record>>>,
    target: Arc<Mutex<TargetState>>,
}

impl Bench {
    async fn new(records: usize, extra: &str) -> Bench {
        let store = Store::open_in_memory().await.expect("store");
        let activity = ActivityWriter::start(store.clone());
        let mut flow: FlowDef = toml::from_str(&format!(
            "source = {{ connection = \"till\", stream = \"stock\" }}\n\
             target = {{ connection = \"shop\", stream = \"stock\" }}\n\
             page_size = 10\nbatch_size = 4\n{extra}"
        ))
        .expect("flow");
        flow.name = "stock".into();
        Bench {
            env: Environment {
                tenant: "t".into(),
                store,
                activity,
                connections: BTreeMap::new(),
                quota: crate::runtime::TenantQuota::unlimited("t"),
            },
            flow,
            source: Arc::new(Mutex::new((0..records).map(|n| level(n, 5)).collect())),
            target: Arc::new(Mutex::new(TargetState::default())),
        }
    }

    async fn run(&self, full: bool) -> RunSummary {
        let (source, target) = (self.source.clone(), self.target.clone());
        let options = RunOptions {
            full,
            ..RunOptions::default()
        };
        run_between(&self.env, &self.flow, &options, move |_| {
            Ok((
                Box::new(FakeSource { records: source }) as Box<dyn Side>,
                Box::new(FakeTarget { state: target }) as Box<dyn Side>,
            ))
        })
        .await
        .expect("run")
    }

    fn written(&self) -> usize {
        lock(&self.target).writes.iter().map(Vec::len).sum()
    }
}

#[tokio::test]
async fn a_first_run_writes_everything_in_batches_and_a_full_rerun_writes_nothing() {
    let bench = Bench::new(25, "").await;
    let first = bench.run(false).await;
    assert_eq!(first.status, RunStatus::Succeeded);
    assert_eq!((first.counts.read, first.counts.created), (25, 25));
    let writes = lock(&bench.target).writes.clone();
    assert!(
        writes.iter().all(|w| w.len() <= 4),
        "batches of 4: {writes:?}"
    );
    assert_eq!(lock(&bench.target).held.len(), 25);
    assert_eq!(
        (first.pages, first.batches),
        (3, 8),
        "pages of 10 and batches of up to 4 within each page (4+4+2, 4+4+2, 4+1)"
    );
    assert_eq!(first.batches as usize, writes.len());

    let again = bench.run(true).await;
    assert_eq!((again.counts.read, again.counts.unchanged), (25, 25));
    assert_eq!(bench.written(), 25, "nothing written again");
    assert_eq!((again.pages, again.batches), (3, 0));

    // One level changes at the source: only that one is written.
    lock(&bench.source)[7] = level(7, 9);
    let changed = bench.run(true).await;
    assert_eq!((changed.counts.updated, changed.counts.unchanged), (1, 24));
    assert_eq!(bench.written(), 26);
}

#[tokio::test]
async fn a_refused_record_waits_in_the_queue_and_is_retried_until_it_goes() {
    let bench = Bench::new(12, "").await;
    lock(&bench.target).refuse.insert("A0003".into());
    let first = bench.run(false).await;
    assert_eq!(first.status, RunStatus::Partial);
    assert_eq!((first.counts.created, first.counts.failed), (11, 1));
    assert_eq!(first.failures[0].0, "A0003");
    let waiting = bench
        .env
        .store
        .failed_to_retry("t", "stock", 100)
        .await
        .expect("failed");
    assert_eq!(waiting.len(), 1);

    // Still refused: tried again (the cursor is at the end, so nothing else is read).
    let second = bench.run(false).await;
    assert_eq!((second.counts.read, second.counts.failed), (0, 1));

    lock(&bench.target).refuse.clear();
    let third = bench.run(false).await;
    assert_eq!((third.counts.created, third.counts.failed), (1, 0));
    assert!(lock(&bench.target).held.contains_key("A0003"));
    let waiting = bench
        .env
        .store
        .failed_to_retry("t", "stock", 100)
        .await
        .expect("failed");
    assert!(waiting.is_empty(), "the queue is empty once it went");
}

#[tokio::test]
async fn a_target_that_is_away_stops_the_run_with_the_cursor_where_it_was() {
    for concurrency in [1, 2, 4] {
        let bench = Bench::new(10, &format!("write_concurrency = {concurrency}")).await;
        lock(&bench.target).away = true;
        let failed = bench.run(false).await;
        assert_eq!(failed.status, RunStatus::Failed);
        assert!(
            failed
                .error
                .as_deref()
                .unwrap_or("")
                .contains("the system is away"),
            "{failed:?}"
        );
        assert_eq!(
            bench
                .env
                .store
                .stream_state("t", "stock")
                .await
                .expect("state"),
            None,
            "the cursor did not move"
        );
        // Batches beside the refused one went through and were committed (without the
        // cursor): the next run writes only what is not acknowledged yet.
        let acknowledged = failed.counts.created;
        assert_eq!(
            acknowledged,
            // Batches of 4, 4 and 2: the first is refused; those launched beside it go.
            match concurrency {
                1 => 0,
                2 => 4,
                _ => 6,
            },
            "concurrency {concurrency}: {failed:?}"
        );
        let writes_before = bench.written();
        let next = bench.run(false).await;
        assert_eq!(next.counts.read, 10);
        assert_eq!(
            (next.counts.created, next.counts.unchanged),
            (10 - acknowledged, acknowledged),
            "concurrency {concurrency}: nothing acknowledged is written again"
        );
        assert_eq!(
            bench.written() - writes_before,
            (10 - acknowledged) as usize
        );
        assert_eq!(lock(&bench.target).held.len(), 10);
    }
}

/// Pages overlap writes, batches go several at once, and still: commits in order, the cursor
/// at the end, every record written once.
#[tokio::test]
async fn concurrent_batches_commit_in_order_and_write_each_record_once() {
    for concurrency in [1, 3, 8] {
        let bench = Bench::new(103, &format!("write_concurrency = {concurrency}")).await;
        let first = bench.run(false).await;
        assert_eq!(first.status, RunStatus::Succeeded, "{first:?}");
        assert_eq!((first.counts.read, first.counts.created), (103, 103));
        let writes = lock(&bench.target).writes.clone();
        let mut keys: Vec<String> = writes.into_iter().flatten().collect();
        keys.sort();
        let before = keys.len();
        keys.dedup();
        assert_eq!((before, keys.len()), (103, 103), "each record written once");
        assert_eq!(
            bench
                .env
                .store
                .stream_state("t", "stock")
                .await
                .expect("state"),
            Some("103".to_owned()),
            "the cursor is past the last page"
        );
        let again = bench.run(false).await;
        assert_eq!(again.counts.read, 0, "nothing new");
    }
}

#[tokio::test]
async fn once_delivery_asks_the_target_after_a_lost_answer_and_writes_nothing_twice() {
    let bench = Bench::new(3, "delivery = \"once\"").await;
    lock(&bench.target).lose_answer = true;
    let lost = bench.run(false).await;
    assert_eq!(lost.status, RunStatus::Failed, "{lost:?}");
    assert_eq!(lock(&bench.target).held.len(), 3, "written, answer lost");
    let writes_before = bench.written();

    let next = bench.run(false).await;
    assert_eq!(next.counts.unchanged, 3, "{next:?}");
    assert_eq!(bench.written(), writes_before, "not written again");
    assert_eq!(
        lock(&bench.target).lookups,
        3,
        "each pending key looked up once"
    );

    let again = bench.run(true).await;
    assert_eq!(again.counts.skipped, 3, "already in the target");
    assert_eq!(bench.written(), writes_before);
}
