//! Quotas per tenant: a connector that computes for ever, one that allocates past its
//! tenant's memory, one that floods requests and one that sends too many bytes each stop at
//! their tenant's quota, naming it, while another tenant's calls go through; and in a
//! hosting koppel, noisy tenants' runs fail with their quota named while a quiet tenant's
//! flow copies everything, and `/metrics` counts each quota reached.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use koppel::runtime::{
    CallError, Connection, ConnectionSpec, Connector, Limits, Quota, QuotaLimits, TenantQuota,
};
use koppel::store::RunStatus;
use koppel_test_support::hosting::{
    HostingDir, assert_stopped_at_quotas, ended_run, fixture_tenant, http_ok, serve, wait_for_runs,
};

async fn fixture() -> Arc<Connector> {
    koppel_test_support::fixture(&koppel_test_support::runtime(env!("CARGO_TARGET_TMPDIR"))).await
}

fn connect(
    connector: &Arc<Connector>,
    quota: &Arc<TenantQuota>,
    config: &[(&str, &str)],
    limits: Limits,
) -> Connection {
    let config: BTreeMap<String, String> = config
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let mut spec = ConnectionSpec::new(quota.tenant(), "src", config);
    spec.limits = limits;
    spec.quota = quota.clone();
    connector.connect(spec).expect("config")
}

fn quota(tenant: &str, limits: QuotaLimits) -> Arc<TenantQuota> {
    TenantQuota::new(tenant, limits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_computing_for_ever_stops_at_its_tenants_cpu_time_not_at_its_call_limit() {
    let connector = fixture().await;
    let noisy = quota(
        "noisy",
        QuotaLimits {
            cpu_per_hour: Some(Duration::from_millis(300)),
            ..QuotaLimits::default()
        },
    );
    let quiet = TenantQuota::unlimited("quiet");
    let long = Limits {
        call_timeout: Duration::from_secs(120),
        ..Limits::default()
    };
    let looping = connect(&connector, &noisy, &[], long.clone());
    let healthy = connect(&connector, &quiet, &[("total", "3")], long);

    let started = std::time::Instant::now();
    let spinning = tokio::spawn(async move {
        let mut session = looping.session().await.expect("session");
        session.lookup("loop", "").await
    });
    for _ in 0..3 {
        let mut session = healthy.session().await.expect("session");
        let page = session.read("products", None, 3).await.expect("read");
        assert_eq!(page.records.len(), 3, "the other tenant's calls go through");
    }
    let error = spinning.await.expect("join").expect_err("stopped");
    match &error {
        CallError::Quota { quota, message, .. } => {
            assert_eq!(*quota, Quota::Cpu);
            assert!(
                message.contains("tenant `noisy`") && message.contains("CPU time"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "stopped by the quota, not the call's limit"
    );
    assert!(noisy.hits(Quota::Cpu) >= 1);
    // The hour's time is spent: the next call stops at once, too.
    let again = connect(&connector, &noisy, &[], Limits::default());
    let mut session = again.session().await.expect("session");
    let error = session.lookup("loop", "").await.expect_err("stopped");
    assert!(
        matches!(
            error,
            CallError::Quota {
                quota: Quota::Cpu,
                ..
            }
        ),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_past_its_tenants_cpu_share_is_slowed_not_stopped() {
    let connector = fixture().await;
    let slowed = quota(
        "slowed",
        QuotaLimits {
            cpu_share: Some(0.05),
            // Counts the guest time (an hour's worth: never reached).
            cpu_per_hour: Some(Duration::from_secs(3600)),
            ..QuotaLimits::default()
        },
    );
    let limits = Limits {
        call_timeout: Duration::from_millis(1500),
        ..Limits::default()
    };
    let looping = connect(&connector, &slowed, &[], limits);
    let mut session = looping.session().await.expect("session");
    let error = session
        .lookup("loop", "")
        .await
        .expect_err("stopped at its call limit");
    assert!(matches!(error, CallError::Timeout { .. }), "{error:?}");
    // 1.5 s of a loop, of which 50 ms a second were its share: a little over 100 ms ran.
    let ran = slowed.used(Quota::Cpu);
    assert!(
        ran < 500,
        "the guest computed {ran} ms in 1.5 s at a share of 0.05"
    );
    assert!(slowed.hits(Quota::CpuShare) >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_together_stop_at_their_tenants_memory() {
    let connector = fixture().await;
    let tenant = quota(
        "hog",
        QuotaLimits {
            memory_bytes: Some(96 << 20),
            ..QuotaLimits::default()
        },
    );
    let roomy = Limits {
        memory_bytes: 128 << 20,
        ..Limits::default()
    };
    let first = connect(&connector, &tenant, &[], roomy.clone());
    let second = connect(&connector, &tenant, &[], roomy.clone());
    let mut a = first.session().await.expect("session");
    a.lookup("alloc", "50").await.expect("50 MiB fit the quota");
    let mut b = second.session().await.expect("session");
    let error = b
        .lookup("alloc", "50")
        .await
        .expect_err("100 MiB together do not");
    match &error {
        CallError::Quota { quota, message, .. } => {
            assert_eq!(*quota, Quota::Memory);
            assert!(
                message.contains("tenant `hog`") && message.contains("96 MiB"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    // Another tenant is not counted against this one.
    let other = connect(
        &connector,
        &TenantQuota::unlimited("other"),
        &[],
        roomy.clone(),
    );
    other
        .session()
        .await
        .expect("session")
        .lookup("alloc", "50")
        .await
        .expect("another tenant allocates");
    // The first instance ends: its memory is the tenant's again.
    drop(a);
    let mut c = second.session().await.expect("session");
    c.lookup("alloc", "50").await.expect("fits again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_requests_stops_at_its_tenants_requests_per_minute_and_bytes() {
    let connector = fixture().await;
    let url = http_ok().await;
    let flood = quota(
        "flood",
        QuotaLimits {
            requests_per_minute: Some(3),
            ..QuotaLimits::default()
        },
    );
    let short = Limits {
        call_timeout: Duration::from_secs(5),
        ..Limits::default()
    };
    let base = url.trim_end_matches('/').to_owned();
    let flooding = connect(&connector, &flood, &[("base_url", &base)], short.clone());
    let mut session = flooding.session().await.expect("session");
    for _ in 0..3 {
        let found = session
            .lookup("http", &url)
            .await
            .expect("within the quota");
        assert!(found.is_some_and(|f| f.id.starts_with("200")));
    }
    // The fourth would have to wait for the next minute, past the call's 5 s.
    let error = session.lookup("http", &url).await.expect_err("refused");
    let text = error.to_string();
    assert!(
        text.contains("tenant `flood`") && text.contains("3 requests this minute"),
        "{text}"
    );
    assert!(flood.hits(Quota::Requests) >= 1);
    // Another tenant's requests go.
    let other = connect(
        &connector,
        &TenantQuota::unlimited("other"),
        &[("base_url", &base)],
        short.clone(),
    );
    let found = other
        .session()
        .await
        .expect("session")
        .lookup("http", &url)
        .await
        .expect("another tenant's request");
    assert!(found.is_some_and(|f| f.id.starts_with("200")));

    // Bytes out per hour: a 2 MiB body past a 1 MiB quota is refused before it is sent.
    let bytes = quota(
        "bytes",
        QuotaLimits {
            bytes_out_per_hour: Some(1 << 20),
            ..QuotaLimits::default()
        },
    );
    let sending = connect(&connector, &bytes, &[("base_url", &base)], short);
    let error = sending
        .session()
        .await
        .expect("session")
        .lookup("http-post-big", &format!("{url} 2"))
        .await
        .expect_err("refused");
    let text = error.to_string();
    assert!(
        text.contains("tenant `bytes`") && text.contains("1 MiB per hour"),
        "{text}"
    );
    assert_eq!(bytes.hits(Quota::BytesOut), 1);
}

/// A hosted tenant file of the fixture: `total` products copied by flow `copy`, the read
/// misbehaving as `misbehave` says.
fn tenant_file(total: u32, misbehave: &str, base_url: &str, extra: &str) -> String {
    fixture_tenant(
        &format!("total = {total}, misbehave = {misbehave:?}, base_url = {base_url:?}"),
        "memory_mib = 256\ncall_timeout = \"20s\"",
        extra,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noisy_hosted_tenants_stop_at_their_quotas_and_a_quiet_one_copies_everything() {
    let url = http_ok().await;
    let base = url.trim_end_matches('/');
    let dir = HostingDir::new(
        "[hosting.quotas]\ncpu_per_hour = \"1s\"\nmemory_mib = 128\nrequests_per_minute = 1000",
    );
    dir.tenant(
        "quiet",
        &tenant_file(50, "", base, "[server]\ntokens = [\"quiet-token-01\"]\n"),
    );
    dir.tenant(
        "looper",
        &tenant_file(5, "loop", base, "[server]\ntokens = [\"looper-token-1\"]\n"),
    );
    dir.tenant("hog", &tenant_file(5, "alloc:200", base, ""));
    // Its own quota, over the operator's default.
    dir.tenant(
        "flood",
        &tenant_file(
            5,
            &format!("flood:{url}"),
            base,
            "[quotas]\nrequests_per_minute = 10\n",
        ),
    );
    let runtime = koppel_test_support::runtime(env!("CARGO_TARGET_TMPDIR"));
    let (app, serving) = serve(&dir.file, &runtime).await;
    let hosting = serving.hosting.clone().expect("hosting");
    let store = app.env.store.clone();
    let mut runs = hosting.subscribe_runs();
    let tenants = ["quiet", "looper", "hog", "flood"];
    let firsts: Vec<(&str, &str)> = tenants.iter().map(|t| (*t, "copy")).collect();
    wait_for_runs(&store, &mut runs, &firsts, Duration::from_secs(90)).await;

    let quiet = ended_run(&store, "quiet", "copy").await.expect("ran");
    assert_eq!(quiet.status, RunStatus::Succeeded, "{quiet:?}");
    assert_eq!(quiet.created, 50);
    assert_stopped_at_quotas(
        &store,
        "copy",
        &[
            ("looper", "CPU time"),
            ("hog", "memory quota of 128 MiB"),
            ("flood", "10 requests this minute"),
        ],
    )
    .await;

    // /metrics names the quota reached.
    let http = koppel_test_support::client_builder()
        .build()
        .expect("client");
    let metrics = http
        .get(format!("http://{}/metrics", serving.server.addr))
        .bearer_auth("looper-token-1")
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains(
            "koppel_tenant_quota_limit{tenant=\"looper\",quota=\"cpu\",unit=\"milliseconds\"} 1000"
        ),
        "{metrics}"
    );
    let cpu_hits = metrics
        .lines()
        .find(|l| l.starts_with("koppel_tenant_quota_hits_total{tenant=\"looper\",quota=\"cpu\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<u64>().ok())
        .expect("the cpu hits line");
    assert!(cpu_hits >= 1, "{metrics}");
    serving.stop().await;
    app.close().await;
}
