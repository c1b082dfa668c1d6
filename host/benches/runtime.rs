//! Figures for the runtime (issue 2): instantiation from `InstancePre`, 1,000 products across
//! the component boundary each way, `koppel` start-up with a warm compile cache, and the
//! guests' `.wasm` sizes.
//!
//! Run: `cargo bench -p koppel --bench runtime`

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use koppel::runtime::bindings::{Record, WriteOptions};
use koppel::runtime::{ConnectionSpec, Runtime, RuntimeOptions};

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    rt.block_on(run());
}

async fn run() {
    let cache = tempfile::tempdir().expect("tempdir");
    let runtime = Runtime::new(RuntimeOptions {
        cache_dir: Some(cache.path().to_owned()),
        ..RuntimeOptions::default()
    })
    .expect("runtime");
    let path = koppel::connectors::test_guest("fixture").expect("fixture built");

    let started = Instant::now();
    let connector = runtime.load_file(path).await.expect("load");
    println!(
        "compile (cold cache):               {:>10.2?}",
        started.elapsed()
    );
    let warm = Runtime::new(RuntimeOptions {
        cache_dir: Some(cache.path().to_owned()),
        ..RuntimeOptions::default()
    })
    .expect("runtime");
    let started = Instant::now();
    warm.load_file(path).await.expect("load");
    println!(
        "load precompiled (warm cache):      {:>10.2?}",
        started.elapsed()
    );

    let config: BTreeMap<String, String> = [("total".to_owned(), "1000".to_owned())].into();
    let connection = connector
        .connect(ConnectionSpec::new("bench", "fixture", config))
        .expect("config");

    // Instantiation from InstancePre: a fresh store and instance, nothing called.
    for _ in 0..200 {
        drop(connection.instantiate().await.expect("instantiate"));
    }
    let samples: Vec<Duration> = (0..5000)
        .map(|_| {
            let started = Instant::now();
            let session = futures_lite(connection.instantiate());
            let elapsed = started.elapsed();
            drop(session);
            elapsed
        })
        .collect();
    println!(
        "instantiate from InstancePre (median of 5000): {:>8.2?}",
        median(samples)
    );

    // 1,000 products guest → host (read) and host → guest (write).
    let mut session = connection.session().await.expect("session");
    let mut reads = Vec::new();
    let mut products = Vec::new();
    for _ in 0..50 {
        let started = Instant::now();
        let page = session.read("products", None, 1000).await.expect("read");
        reads.push(started.elapsed());
        products = page.records;
    }
    assert_eq!(products.len(), 1000);
    println!(
        "read 1,000 products (guest builds + passes them, median of 50): {:>8.2?}",
        median(reads)
    );
    let options = WriteOptions {
        create_only: vec![],
        settings: vec![],
    };
    let mut writes = Vec::new();
    for _ in 0..50 {
        let started = Instant::now();
        let outcomes = session
            .write("products", &products, &options)
            .await
            .expect("write");
        writes.push(started.elapsed());
        assert_eq!(outcomes.len(), 1000);
    }
    println!(
        "write 1,000 products (host passes them, guest answers, median of 50): {:>8.2?}",
        median(writes)
    );
    let bytes = serde_json::to_vec(
        &products
            .iter()
            .filter_map(|r| match r {
                Record::Product(p) => Some(p),
                _ => None,
            })
            .collect::<Vec<_>>(),
    )
    .map(|b| b.len())
    .unwrap_or(0);
    println!("  (those 1,000 products are {} KiB as JSON)", bytes / 1024);

    // koppel start-up with a warm cache: the process, end to end.
    let exe = env!("CARGO_BIN_EXE_koppel");
    let run = || {
        let started = Instant::now();
        let status = std::process::Command::new(exe)
            .args(["connector", "inspect", &path.display().to_string()])
            .env("KOPPEL_CACHE_DIR", cache.path())
            .stdout(std::process::Stdio::null())
            .status()
            .expect("run koppel");
        assert!(status.success());
        started.elapsed()
    };
    run();
    let samples: Vec<Duration> = (0..20).map(|_| run()).collect();
    println!(
        "`koppel connector inspect` process, warm cache (median of 20): {:>8.2?}",
        median(samples)
    );

    println!("guest component sizes:");
    for builtin in koppel::connectors::builtin() {
        println!("  {:<12} {:>8} bytes", builtin.id, builtin.wasm.len());
    }
    let fixture_size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    println!(
        "  {:<12} {:>8} bytes (test fixture)",
        "fixture", fixture_size
    );
}

/// Polls a future that completes without waiting (instantiation does not suspend).
fn futures_lite<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    loop {
        if let std::task::Poll::Ready(value) = future.as_mut().poll(&mut cx) {
            return value;
        }
    }
}
