//! The flow engine against the fixture connector (which generates products and echoes
//! writes): paging and cursors, the hash diff, filters, failed records and their retry,
//! exactly-once delivery with its ledger, and stopping.

use std::collections::BTreeMap;

use koppel::flow::definition::{Delivery, Endpoint, FlowDef};
use std::sync::Arc;

use koppel::flow::{Environment, Progress, RunOptions, run_flow};
use koppel::mapping::{Filter, MapRule};
use koppel::store::{Counts, RunStatus};
use serde_json::json;

async fn environment(dir: &tempfile::TempDir, total: u32) -> Environment {
    koppel_test_support::fixture_environment(env!("CARGO_TARGET_TMPDIR"), dir, total).await
}

fn flow(name: &str) -> FlowDef {
    let mut flow: FlowDef = toml::from_str(
        "source = { connection = \"src\", stream = \"products\" }\ntarget = { connection = \"dst\", stream = \"products\" }\npage_size = 7\nbatch_size = 3\n",
    )
    .expect("valid");
    flow.name = name.into();
    flow
}

fn manual() -> RunOptions {
    RunOptions {
        trigger: "test".into(),
        ..RunOptions::default()
    }
}

#[tokio::test]
async fn pages_to_the_end_commits_the_cursor_and_writes_nothing_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = environment(&dir, 25).await;
    let products = flow("products");

    let first = run_flow(&env, &products, &manual()).await.expect("run");
    assert_eq!(first.status, RunStatus::Succeeded, "{first:?}");
    assert_eq!((first.counts.read, first.counts.created), (25, 25));
    assert_eq!(
        env.store
            .stream_state("t1", "products")
            .await
            .expect("state"),
        Some("25".into())
    );
    assert_eq!(
        env.store
            .mapped_count("t1", "products")
            .await
            .expect("count"),
        25
    );

    let again = run_flow(&env, &products, &manual()).await.expect("run");
    assert_eq!(
        (again.counts.read, again.counts.created),
        (0, 0),
        "the cursor is at the end: {again:?}"
    );

    let full = run_flow(
        &env,
        &products,
        &RunOptions {
            full: true,
            ..manual()
        },
    )
    .await
    .expect("run");
    assert_eq!(full.counts.read, 25);
    assert_eq!(
        full.counts.unchanged, 25,
        "same content, same hash: nothing written: {full:?}"
    );
    assert_eq!(full.counts.created + full.counts.updated, 0);

    let records = env
        .store
        .run_records("t1", first.run_id, Some("created"), 100)
        .await
        .expect("records");
    assert_eq!(records.len(), 25);
    let source: serde_json::Value =
        serde_json::from_str(records[0].source.as_deref().expect("payload")).expect("JSON");
    assert_eq!(
        source["Product"]["key"], "SKU-000000",
        "the payload read is kept"
    );
    assert!(records[0].target.is_some(), "the payload written is kept");
    let runs = env
        .store
        .runs("t1", Some("products"), 10)
        .await
        .expect("runs");
    assert_eq!(runs.len(), 3);
    assert_eq!(runs[2].created, 25);
    let other_tenant = env.store.runs("t2", None, 10).await.expect("runs");
    assert!(other_tenant.is_empty(), "rows are scoped by tenant");
}

#[tokio::test]
async fn filters_skip_with_a_reason_and_changed_mappings_rewrite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = environment(&dir, 10).await;
    let mut products = flow("products");
    products.filter.push(Filter {
        field: "key".into(),
        not_in: Some(vec![json!("SKU-000001"), json!("SKU-000002")]),
        ..Filter::default()
    });
    let first = run_flow(&env, &products, &manual()).await.expect("run");
    assert_eq!((first.counts.created, first.counts.skipped), (8, 2));
    // The summary groups reasons by their shape; each record keeps its own.
    assert_eq!(first.skipped.len(), 1, "{:?}", first.skipped);
    assert_eq!(first.skipped.values().sum::<u64>(), 2);
    assert!(
        first
            .skipped
            .keys()
            .next()
            .expect("reason")
            .contains("`key` is \"SKU…\""),
        "{:?}",
        first.skipped
    );
    let skipped = env
        .store
        .run_records("t1", first.run_id, Some("skipped"), 10)
        .await
        .expect("records");
    let mut messages: Vec<String> = skipped.into_iter().filter_map(|r| r.message).collect();
    messages.sort();
    assert_eq!(messages.len(), 2);
    assert!(
        messages[0].contains("`key` is \"SKU-000001\""),
        "{messages:?}"
    );
    assert!(
        messages[1].contains("`key` is \"SKU-000002\""),
        "{messages:?}"
    );

    products.map.push(MapRule {
        to: "name".into(),
        from: Some("name".into()),
        transform: vec!["upper".into()],
        ..MapRule::default()
    });
    let second = run_flow(
        &env,
        &products,
        &RunOptions {
            full: true,
            ..manual()
        },
    )
    .await
    .expect("run");
    assert_eq!(
        second.counts.created, 8,
        "a new mapping changes the content, so everything is written again"
    );
}

#[tokio::test]
async fn failed_records_wait_in_the_queue_and_are_retried_until_they_pass() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = environment(&dir, 10).await;
    let mut products = flow("products");
    // The fixture refuses records keyed "bad".
    products.map.push(MapRule {
        to: "key".into(),
        from: Some("key".into()),
        lookup: Some(BTreeMap::from([("SKU-000004".to_owned(), json!("bad"))])),
        default: None,
        ..MapRule::default()
    });
    let first = run_flow(&env, &products, &manual()).await.expect("run");
    assert_eq!(first.status, RunStatus::Partial);
    assert_eq!(
        (first.counts.created, first.counts.failed),
        (9, 1),
        "one bad record does not stop the rest"
    );
    assert_eq!(
        first.failures,
        vec![("SKU-000004".to_owned(), "this record is bad".to_owned())]
    );
    let failed = env
        .store
        .failed_records("t1", None, false)
        .await
        .expect("queue");
    assert_eq!(failed.len(), 1);
    assert_eq!(
        (
            failed[0].key.as_str(),
            failed[0].field.as_deref(),
            failed[0].attempts
        ),
        ("SKU-000004", Some("name"), 1)
    );
    assert_eq!(
        env.store
            .stream_state("t1", "products")
            .await
            .expect("state"),
        Some("10".into()),
        "the cursor moved on"
    );

    let second = run_flow(&env, &products, &manual()).await.expect("run");
    assert_eq!(
        (second.counts.read, second.counts.failed),
        (0, 1),
        "the failed record is retried"
    );
    assert_eq!(
        env.store
            .failed_records("t1", None, false)
            .await
            .expect("queue")[0]
            .attempts,
        2
    );

    products.map.clear();
    let third = run_flow(&env, &products, &manual()).await.expect("run");
    assert_eq!((third.counts.created, third.counts.failed), (1, 0));
    assert!(
        env.store
            .failed_records("t1", None, false)
            .await
            .expect("queue")
            .is_empty(),
        "it passed and left the queue"
    );
}

#[tokio::test]
async fn exactly_once_flows_never_write_a_record_twice_and_look_up_after_a_crash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = environment(&dir, 6).await;
    let mut orders = flow("orders");
    orders.delivery = Delivery::Once;
    // A crash earlier left two keys pending: asked, answer unknown.
    env.store
        .ledger_begin("t1", "orders", &["SKU-000000", "SKU-000001"])
        .await
        .expect("ledger");

    let first = run_flow(&env, &orders, &manual()).await.expect("run");
    assert_eq!(first.counts.created, 4);
    assert_eq!(
        first.counts.unchanged, 2,
        "the pending ones were found in the target (lookup), not written again: {first:?}"
    );
    let history = env
        .store
        .record_history("t1", "orders", "SKU-000000", 5)
        .await
        .expect("history");
    assert_eq!(
        history[0].message.as_deref(),
        Some("found in the target after an interrupted write")
    );

    let again = run_flow(
        &env,
        &orders,
        &RunOptions {
            full: true,
            ..manual()
        },
    )
    .await
    .expect("run");
    assert_eq!(
        (again.counts.created, again.counts.skipped),
        (0, 6),
        "{again:?}"
    );
    assert!(
        again
            .skipped
            .keys()
            .all(|reason| reason.starts_with("already in the target")),
        "{:?}",
        again.skipped
    );
}

#[tokio::test]
async fn a_stop_request_ends_the_run_cleanly_and_nothing_is_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = environment(&dir, 20).await;
    let products = flow("products");
    let options = manual();
    options.cancel.cancel();
    let stopped = run_flow(&env, &products, &options).await.expect("run");
    assert_eq!(stopped.status, RunStatus::Interrupted);
    assert_eq!(stopped.counts.read, 0);
    let resumed = run_flow(&env, &products, &manual()).await.expect("run");
    assert_eq!(resumed.counts.created, 20);
}

/// Reports every event of a run on a channel, so a test can stop the run at an exact point.
struct Events(tokio::sync::mpsc::UnboundedSender<&'static str>);

impl Progress for Events {
    fn update(&self, _flow: &str, _counts: &Counts) {
        let _ = self.0.send("committed");
    }
    fn written(&self, _flow: &str, _records: usize) {
        let _ = self.0.send("written");
    }
}

#[tokio::test]
async fn a_run_killed_between_any_two_steps_loses_nothing_and_repeats_nothing() {
    // 30 records, batches of 3: 10 writes and 10 commits. Dropping the run future at the
    // first pause after an event stops it as a kill would: after a write but before its
    // commit ("written"), or right after a commit ("committed").
    let mut cuts_with_partial_state = 0;
    for cut in 1..=20 {
        let dir = tempfile::tempdir().expect("tempdir");
        let env = environment(&dir, 30).await;
        let products = flow("products");
        let (sender, mut events) = tokio::sync::mpsc::unbounded_channel();
        let options = RunOptions {
            progress: Some(Arc::new(Events(sender))),
            ..manual()
        };
        let mut run = Box::pin(run_flow(&env, &products, &options));
        let mut seen = 0;
        let mut last = "";
        let finished = loop {
            tokio::select! {
                biased;
                Some(event) = events.recv() => {
                    seen += 1;
                    last = event;
                    if seen == cut {
                        break false;
                    }
                }
                _ = &mut run => break true,
            }
        };
        assert!(!finished, "cut {cut} must land inside the run");
        drop(run);
        // The restart: a new process opens the same database file.
        env.store.close().await;
        drop(env);
        let env = environment(&dir, 30).await;
        env.store.mark_interrupted_runs().await.expect("mark");
        let committed = env
            .store
            .mapped_count("t1", "products")
            .await
            .expect("count");
        // Pages of 7 in batches of 3: 3, 3, 1, 3, 3, 1, ... Only whole batches may be there.
        let whole_batches = [0, 3, 6, 7, 10, 13, 14, 17, 20, 21, 24, 27, 28, 30];
        assert!(
            whole_batches.contains(&committed),
            "cut {cut} after {last}: a batch is half there ({committed})"
        );
        cuts_with_partial_state += usize::from((3..30).contains(&committed));

        let after = run_flow(&env, &products, &manual()).await.expect("run");
        assert_eq!(after.status, RunStatus::Succeeded);
        assert_eq!(
            env.store
                .mapped_count("t1", "products")
                .await
                .expect("count"),
            30,
            "cut {cut}: every record is there"
        );
        let runs = env.store.runs("t1", None, 10).await.expect("runs");
        assert_eq!(runs[1].status, RunStatus::Interrupted);
        let created: i64 = runs.iter().map(|r| r.created).sum();
        assert_eq!(
            created, 30,
            "cut {cut}: each record counted as created once across both runs: {runs:?}"
        );
    }
    assert!(
        cuts_with_partial_state >= 5,
        "the cuts must land mid-run, {cuts_with_partial_state} did"
    );
}

#[tokio::test]
async fn a_flow_needs_its_connections() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = environment(&dir, 1).await;
    let mut products = flow("products");
    products.target = Endpoint {
        connection: "shop".into(),
        stream: "products".into(),
    };
    let error = run_flow(&env, &products, &manual())
        .await
        .expect_err("no shop");
    assert!(
        error.to_string().contains("add [connections.shop]"),
        "{error}"
    );
}
