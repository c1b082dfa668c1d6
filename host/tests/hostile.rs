//! Hostile connectors at scale: in one hosting koppel, tenants whose connector computes for
//! ever, allocates past its memory limit, panics, overflows its stack, returns a million
//! records in one page, fetches a 100 MiB answer, or asks for a host outside its allow-list
//! all run at once beside a quiet tenant. Each fails with its own reason; the quiet tenant
//! copies everything, as it would alone.

use std::time::Duration;

use koppel::store::RunStatus;
use koppel_test_support::hosting::{
    HostingDir, ended_run, fixture_tenant, http_ok, serve, wait_for_runs,
};

/// (tenant, misbehave, what its run's error says).
const HOSTILE: &[(&str, &str, &str)] = &[
    ("looper", "loop", "ran longer than its limit of 3s"),
    ("hog", "alloc:200", "more than its memory limit of 64 MiB"),
    ("panicker", "panic", "fixture panics on purpose in read"),
    ("deep", "stack", "call stack exhausted"),
    (
        "million",
        "huge:1000000",
        "more than its memory limit of 64 MiB",
    ),
    (
        "fetcher",
        "fetch:BIG",
        "exceeds the size limit of 67108864 bytes",
    ),
    ("stranger", "denied", "example.invalid"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_connectors_fail_with_their_reasons_and_a_quiet_tenant_is_unchanged() {
    let url = http_ok().await;
    let base = url.trim_end_matches('/');
    let dir = HostingDir::new("");
    let limits = "memory_mib = 64\ncall_timeout = \"3s\"";
    dir.tenant(
        "quiet",
        &fixture_tenant(&format!("total = 200, base_url = {base:?}"), limits, ""),
    );
    for (tenant, misbehave, _) in HOSTILE {
        let misbehave = misbehave.replace("BIG", &format!("{url}big"));
        dir.tenant(
            tenant,
            &fixture_tenant(
                &format!("total = 5, misbehave = {misbehave:?}, base_url = {base:?}"),
                limits,
                "",
            ),
        );
    }
    let runtime = koppel_test_support::runtime(env!("CARGO_TARGET_TMPDIR"));
    let (app, serving) = serve(&dir.file, &runtime).await;
    let hosting = serving.hosting.clone().expect("hosting");
    let store = app.env.store.clone();
    let mut runs = hosting.subscribe_runs();
    let mut firsts: Vec<(&str, &str)> = HOSTILE.iter().map(|(t, _, _)| (*t, "copy")).collect();
    firsts.push(("quiet", "copy"));
    wait_for_runs(&store, &mut runs, &firsts, Duration::from_secs(120)).await;

    let quiet = ended_run(&store, "quiet", "copy").await.expect("ran");
    assert_eq!(quiet.status, RunStatus::Succeeded, "{quiet:?}");
    assert_eq!((quiet.read, quiet.created, quiet.failed), (200, 200, 0));
    for (tenant, _, says) in HOSTILE {
        let run = ended_run(&store, tenant, "copy").await.expect("ran");
        assert_eq!(run.status, RunStatus::Failed, "{tenant}: {run:?}");
        let error = run.error.unwrap_or_default();
        assert!(error.contains(says), "{tenant}: {error}");
        // The hostile-connector table of docs/reliability.md (`-- --nocapture`).
        eprintln!("| {tenant} | {error} |");
    }
    serving.stop().await;
    app.close().await;
}
