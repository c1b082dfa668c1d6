//! The sandboxed component host, tested through the fixture connector
//! (`tests/connectors/fixture`): the contract round trip, the allow-list, the limits, the
//! redaction of secrets and the compile cache.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use koppel::runtime::bindings::{OutcomeStatus, Record, WriteOptions};
use koppel::runtime::{
    CallError, Connection, ConnectionSpec, Connector, EngineOptions, KvStore, Limits, MemoryKv,
    MemorySink, NetworkGuard, Runtime, RuntimeOptions,
};

const TOKEN: &str = "tok-Zq81!xX";

fn cache_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache")
}

fn runtime() -> Runtime {
    koppel_test_support::runtime(env!("CARGO_TARGET_TMPDIR"))
}

async fn fixture(runtime: &Runtime) -> Arc<Connector> {
    koppel_test_support::fixture(runtime).await
}

fn spec(config: &[(&str, &str)]) -> ConnectionSpec {
    let config: BTreeMap<String, String> = config
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    ConnectionSpec::new("tenant-a", "conn", config)
}

/// A local server: `/ok` answers, `/busy` answers 429 twice then 200, `/big` is large.
async fn server() -> (SocketAddr, Arc<AtomicU32>) {
    let busy = Arc::new(AtomicU32::new(0));
    let counter = busy.clone();
    let app = Router::new()
        .route(
            "/ok",
            get(|headers: HeaderMap| async move {
                format!("hello {}", headers.contains_key("authorization"))
            }),
        )
        .route(
            "/busy",
            get(move || {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n < 2 {
                        (
                            StatusCode::TOO_MANY_REQUESTS,
                            [("retry-after", "0")],
                            "slow down",
                        )
                            .into_response()
                    } else {
                        "finally".into_response()
                    }
                }
            }),
        )
        .route(
            "/busy-post",
            post(|| async {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [("retry-after", "0")],
                    "later",
                )
            }),
        )
        .route("/big", get(|| async { "x".repeat(2 * 1024 * 1024) }))
        .route(
            "/echo-secret",
            get(|| async { format!(r#"{{"access_token":"{TOKEN}","expires_in":600}}"#) }),
        );
    (serve(app).await, busy)
}

#[tokio::test]
async fn manifest_read_and_write_round_trip_through_the_component() {
    let runtime = runtime();
    let connector = fixture(&runtime).await;
    assert_eq!(connector.id(), "fixture");
    assert_eq!(connector.manifest().streams[0].name, "products");

    let connection = connector.connect(spec(&[("total", "25")])).expect("config");
    let mut session = connection.session().await.expect("session");
    let mut state = None;
    let mut keys = Vec::new();
    loop {
        let page = session
            .read("products", state.as_deref(), 10)
            .await
            .expect("read");
        keys.extend(page.records.iter().map(|r| match r {
            Record::Product(p) => p.key.clone(),
            other => panic!("unexpected record {other:?}"),
        }));
        state = page.state;
        if !page.has_more {
            break;
        }
    }
    assert_eq!(keys.len(), 25);
    assert_eq!(keys[24], "SKU-000024");
    let Record::Product(first) = session
        .read("products", None, 1)
        .await
        .expect("read")
        .records
        .remove(0)
    else {
        panic!("not a product")
    };
    assert_eq!(first.variants.len(), 2);
    assert_eq!(first.variants[1].options[0].option, "L");
    assert_eq!(first.prices[0].gross, 1210);

    let mut bad = first.clone();
    bad.key = "bad".into();
    let records = vec![Record::Product(first), Record::Product(bad)];
    let outcomes = session
        .write(
            "products",
            &records,
            &WriteOptions {
                create_only: vec![],
                settings: vec![],
            },
        )
        .await
        .expect("write");
    assert_eq!(outcomes[0].status, OutcomeStatus::Created);
    assert_eq!(outcomes[0].target_id.as_deref(), Some("id-SKU-000000"));
    assert_eq!(outcomes[1].status, OutcomeStatus::Failed);
    assert_eq!(outcomes[1].field.as_deref(), Some("name"));

    let error = session
        .read("nope", None, 1)
        .await
        .expect_err("unknown stream");
    assert!(matches!(error, CallError::Connector(_)), "{error:?}");
    assert!(
        session.is_alive(),
        "a connector error does not kill the instance"
    );
}

#[tokio::test]
async fn a_host_outside_the_allow_list_is_refused_by_name() {
    let (addr, _) = server().await;
    let runtime = runtime();
    let connector = fixture(&runtime).await;
    let connection = connector
        .connect(spec(&[("base_url", &format!("http://{addr}"))]))
        .expect("config");
    let mut session = connection.session().await.expect("session");

    let found = session
        .lookup("http", &format!("http://{addr}/ok"))
        .await
        .expect("allowed");
    assert_eq!(found.map(|f| f.id).as_deref(), Some("200 hello true"));

    let error = session
        .lookup("http", "http://evil.example:8080/steal")
        .await
        .expect_err("denied");
    let text = error.to_string();
    assert!(
        text.contains("http://evil.example:8080"),
        "the error names the refused host: {text}"
    );
    assert!(
        text.contains("not in this connection's allowed hosts"),
        "{text}"
    );

    let other_port = format!("http://127.0.0.1:{}/ok", addr.port() + 1);
    let error = session
        .lookup("http", &other_port)
        .await
        .expect_err("another port is another origin");
    assert!(
        error
            .to_string()
            .contains(&format!("127.0.0.1:{}", addr.port() + 1)),
        "{error}"
    );

    // No base_url: an empty allow-list, no network at all.
    let closed = connector.connect(spec(&[])).expect("config");
    let mut session = closed.session().await.expect("session");
    let error = session
        .lookup("http", &format!("http://{addr}/ok"))
        .await
        .expect_err("denied");
    assert!(error.to_string().contains(&addr.to_string()), "{error}");
}

/// A key-value store that signals the first `set`: the fixture's `loop` sets a key just
/// before it starts spinning.
struct Started(Mutex<Option<tokio::sync::oneshot::Sender<()>>>);

type Boxed<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

impl KvStore for Started {
    fn get<'a>(&'a self, _: &'a str, _: &'a str) -> Boxed<'a, Option<Vec<u8>>> {
        Box::pin(async { None })
    }
    fn set<'a>(&'a self, _: &'a str, _: &'a str, _: Vec<u8>, _: Option<Duration>) -> Boxed<'a, ()> {
        if let Some(tx) = self.0.lock().expect("lock").take() {
            let _ = tx.send(());
        }
        Box::pin(async {})
    }
    fn delete<'a>(&'a self, _: &'a str, _: &'a str) -> Boxed<'a, ()> {
        Box::pin(async {})
    }
}

/// One thread only: a guest that held it while spinning would starve everything else until
/// its deadline. Here the healthy calls are served while the loop is still running, the loop
/// is stopped at its deadline, and the connector works on afterwards.
#[tokio::test(flavor = "current_thread")]
async fn an_endless_loop_is_stopped_and_the_host_serves_others_meanwhile() {
    let runtime = runtime();
    let connector = fixture(&runtime).await;
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let limit = Duration::from_secs(2);
    let looping = connector
        .connect(ConnectionSpec {
            limits: Limits {
                call_timeout: limit,
                ..Limits::default()
            },
            kv: Arc::new(Started(Mutex::new(Some(started_tx)))),
            ..spec(&[("total", "3")])
        })
        .expect("config");
    let healthy = connector.connect(spec(&[("total", "3")])).expect("config");

    let mut stuck = looping.session().await.expect("session");
    let spinning = tokio::spawn(async move {
        let started = std::time::Instant::now();
        let error = stuck.lookup("loop", "").await.expect_err("must be stopped");
        (error, started.elapsed(), stuck)
    });
    // The guest set its key and went on into the loop, with no host call left to make: from
    // now on only its yields at the epoch ticks give this task the thread back.
    started_rx.await.expect("the guest reached its loop");

    for _ in 0..3 {
        let mut session = healthy.session().await.expect("session");
        let page = session.read("products", None, 3).await.expect("read");
        assert_eq!(page.records.len(), 3);
        assert!(
            !spinning.is_finished(),
            "served while the loop still runs, not after its deadline"
        );
        // Let the spinning guest have the thread again between two calls.
        tokio::task::yield_now().await;
    }

    let (error, elapsed, mut stuck) = spinning.await.expect("join");
    assert!(matches!(error, CallError::Timeout { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .contains("ran longer than its limit of 2s in `lookup` and was stopped"),
        "{error}"
    );
    assert!(
        elapsed >= limit && elapsed < limit + Duration::from_secs(5),
        "stopped at its deadline, took {elapsed:?}"
    );
    assert!(!stuck.is_alive());
    let again = stuck
        .read("products", None, 1)
        .await
        .expect_err("a stopped instance is not reused");
    assert!(matches!(again, CallError::Dead { .. }), "{again:?}");

    // And after it: the same connection in a fresh session works, and so do the others.
    let mut session = looping.session().await.expect("session");
    let page = session.read("products", None, 3).await.expect("read");
    assert_eq!(page.records.len(), 3);
    let mut session = healthy.session().await.expect("session");
    assert!(
        session
            .lookup("products", "k")
            .await
            .expect("lookup")
            .is_some()
    );
}

#[tokio::test]
async fn a_guest_asking_for_a_gibibyte_is_refused() {
    let runtime = runtime();
    let connector = fixture(&runtime).await;
    let connection = connector.connect(spec(&[])).expect("config");
    let mut session = connection.session().await.expect("session");
    let error = session.lookup("alloc", "1024").await.expect_err("refused");
    assert!(
        matches!(error, CallError::Memory { limit_mib: 64, .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("memory limit of 64 MiB"),
        "{error}"
    );

    // A modest allocation is fine in a fresh instance.
    let mut session = connection.session().await.expect("session");
    let found = session.lookup("alloc", "8").await.expect("8 MiB fits");
    assert!(found.is_some());
}

#[tokio::test]
async fn a_guest_panic_is_an_error_not_a_crash() {
    let runtime = runtime();
    let connector = fixture(&runtime).await;
    let connection = connector.connect(spec(&[])).expect("config");
    let mut session = connection.session().await.expect("session");
    let error = session.lookup("panic", "boom").await.expect_err("panics");
    let CallError::Trap { ref message, .. } = error else {
        panic!("expected a trap: {error:?}")
    };
    assert!(
        message.contains("fixture panics on purpose: boom"),
        "the panic message is kept: {message}"
    );
    assert!(!session.is_alive());
    let again = session
        .lookup("products", "k")
        .await
        .expect_err("a trapped instance is not entered again");
    assert!(matches!(again, CallError::Dead { .. }), "{again:?}");
    let text = again.to_string();
    assert!(
        text.contains("stopped after an earlier failure")
            && text.contains("fixture panics on purpose: boom")
            && text.contains("start a new session"),
        "the error says why and what to do: {text}"
    );
    // The connector still works in a new instance.
    let mut session = connection.session().await.expect("session");
    assert!(
        session
            .lookup("products", "k")
            .await
            .expect("lookup")
            .is_some()
    );
}

/// A trapped session gives its store back at once: with a pool of four instances, four
/// trapped sessions still held by their owner leave room for a fifth that works.
#[tokio::test]
async fn a_trapped_store_is_dropped_and_its_pool_slot_freed() {
    let runtime = Runtime::new(RuntimeOptions {
        cache_dir: Some(cache_dir()),
        engine: EngineOptions {
            max_instances: 4,
            ..EngineOptions::default()
        },
        ..RuntimeOptions::default()
    })
    .expect("runtime");
    let connector = fixture(&runtime).await;
    let connection = connector.connect(spec(&[])).expect("config");
    let mut trapped = Vec::new();
    for n in 0..4 {
        let mut session = connection.session().await.expect("session");
        let error = session
            .lookup("panic", &n.to_string())
            .await
            .expect_err("panics");
        assert!(matches!(error, CallError::Trap { .. }), "{error:?}");
        trapped.push(session);
    }
    let mut fresh = connection
        .session()
        .await
        .expect("the trapped stores were dropped, so the pool has room");
    assert_eq!(
        fresh
            .read("products", None, 2)
            .await
            .expect("read")
            .records
            .len(),
        2
    );
    for mut session in trapped {
        let error = session.read("products", None, 1).await.expect_err("dead");
        assert!(matches!(error, CallError::Dead { .. }), "{error:?}");
    }
}

/// Captures everything logged on this thread.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("lock")).into_owned()
    }
}

#[tokio::test]
async fn secrets_never_reach_the_activity_log_or_the_logs() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let (addr, _) = server().await;
    let runtime = runtime();
    let connector = fixture(&runtime).await;
    let sink = MemorySink::new();
    let connection: Connection = connector
        .connect(ConnectionSpec {
            activity: Arc::new(sink.clone()),
            ..spec(&[("base_url", &format!("http://{addr}")), ("token", TOKEN)])
        })
        .expect("config");
    let mut session = connection.session().await.expect("session");
    // The fixture sends the token as `?secret=` (like MplusKASSA) and as a Bearer header.
    session
        .lookup("http", &format!("http://{addr}/ok"))
        .await
        .expect("ok");
    // The answer carries the token in a JSON body (like an OAuth token response).
    session
        .lookup("http", &format!("http://{addr}/echo-secret"))
        .await
        .expect("ok");
    // The guest logs it and prints it.
    session.lookup("log", TOKEN).await.expect("log");
    session.lookup("print", TOKEN).await.expect("print");
    // And it appears in an error.
    let _ = session
        .lookup("http", &format!("http://nowhere.invalid/?secret={TOKEN}"))
        .await;

    let activity = sink.dump();
    let exchanges = sink.exchanges();
    assert_eq!(exchanges.len(), 2, "both exchanges are recorded");
    assert!(
        exchanges[0].url.contains("secret=%5BREDACTED%5D"),
        "{}",
        exchanges[0].url
    );
    assert!(
        exchanges[0]
            .request_headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("authorization") && v == "Bearer [REDACTED]"),
        "{:?}",
        exchanges[0].request_headers
    );
    assert!(
        exchanges[1].response_body.contains("expires_in"),
        "bodies are kept, redacted: {}",
        exchanges[1].response_body
    );
    let logs = captured.text();
    assert!(
        logs.contains("log says [REDACTED]"),
        "guest log lines arrive, redacted: {logs}"
    );
    assert!(
        logs.contains("to stdout: [REDACTED]"),
        "guest stdout goes to the log: {logs}"
    );
    for (what, text) in [("activity", &activity), ("logs", &logs)] {
        assert!(
            !text.contains(TOKEN),
            "the secret leaked into the {what}: {text}"
        );
        let encoded: String = url::form_urlencoded::byte_serialize(TOKEN.as_bytes()).collect();
        assert!(
            !text.contains(&encoded),
            "the encoded secret leaked into the {what}"
        );
    }
}

/// A connector that puts its secret into an error or an outcome message does not leak it:
/// the session redacts what the connector says before anyone (flow, store, CLI) sees it.
#[tokio::test]
async fn secrets_in_connector_errors_and_outcome_messages_are_redacted() {
    let runtime = runtime();
    let connector = fixture(&runtime).await;
    let connection = connector
        .connect(spec(&[("token", TOKEN)]))
        .expect("config");
    let mut session = connection.session().await.expect("session");
    let encoded: String = url::form_urlencoded::byte_serialize(TOKEN.as_bytes()).collect();
    let clean = |what: &str, text: &str| {
        assert!(
            !text.contains(TOKEN) && !text.contains(&encoded),
            "the secret leaked through {what}: {text}"
        );
        assert!(text.contains("[REDACTED]"), "{what}: {text}");
    };

    let error = session.lookup("leak", "").await.expect_err("an error");
    let CallError::Connector(ref inner) = error else {
        panic!("a connector error: {error:?}")
    };
    clean("a lookup error's message", &inner.message);
    clean(
        "a lookup error's field",
        inner.field.as_deref().unwrap_or(""),
    );
    clean("a lookup error as text", &error.to_string());
    assert!(
        inner
            .message
            .starts_with("the remote refused token [REDACTED]"),
        "the rest of the message stays: {}",
        inner.message
    );

    let error = session.read("leak", None, 1).await.expect_err("an error");
    clean("a read error", &error.to_string());

    let mut leak = fixture_product("leak");
    let skipped = fixture_product("leak-skipped");
    let good = fixture_product("SKU-1");
    leak.name = "leaky".into();
    let outcomes = session
        .write(
            "products",
            &[
                Record::Product(good),
                Record::Product(leak),
                Record::Product(skipped),
            ],
            &WriteOptions {
                create_only: vec![],
                settings: vec![],
            },
        )
        .await
        .expect("write");
    assert_eq!(outcomes[0].status, OutcomeStatus::Created);
    assert_eq!(outcomes[1].status, OutcomeStatus::Failed);
    clean(
        "a failed outcome's message",
        outcomes[1].message.as_deref().unwrap_or(""),
    );
    clean(
        "a failed outcome's field",
        outcomes[1].field.as_deref().unwrap_or(""),
    );
    assert_eq!(outcomes[2].status, OutcomeStatus::Skipped);
    clean(
        "a skipped outcome's message",
        outcomes[2].message.as_deref().unwrap_or(""),
    );
    assert!(session.is_alive());
}

fn fixture_product(key: &str) -> koppel::runtime::bindings::Product {
    koppel::runtime::bindings::Product {
        key: key.into(),
        name: format!("Product {key}"),
        description: None,
        short_description: None,
        ean: None,
        prices: vec![],
        categories: vec![],
        properties: vec![],
        variants: vec![],
        active: true,
        extra: vec![],
    }
}

#[tokio::test]
async fn retry_safe_requests_are_retried_on_429_and_writes_are_not() {
    let (addr, busy) = server().await;
    let runtime = runtime();
    let connector = fixture(&runtime).await;
    let sink = MemorySink::new();
    let limits = Limits {
        retry_backoff: Duration::from_millis(1),
        ..Limits::default()
    };
    let connection = connector
        .connect(ConnectionSpec {
            limits,
            activity: Arc::new(sink.clone()),
            ..spec(&[("base_url", &format!("http://{addr}"))])
        })
        .expect("config");
    let mut session = connection.session().await.expect("session");
    let found = session
        .lookup("http", &format!("http://{addr}/busy"))
        .await
        .expect("retried");
    assert_eq!(found.map(|f| f.id).as_deref(), Some("200 finally"));
    assert_eq!(busy.load(Ordering::SeqCst), 3, "two 429s, then the answer");
    let statuses: Vec<Option<u16>> = sink.exchanges().iter().map(|e| e.status).collect();
    assert_eq!(
        statuses,
        vec![Some(429), Some(429), Some(200)],
        "every attempt is recorded"
    );

    let found = session
        .lookup("http-post", &format!("http://{addr}/busy-post"))
        .await
        .expect("answered");
    assert_eq!(
        found.map(|f| f.id).as_deref(),
        Some("503"),
        "a write not marked retry-safe is sent once"
    );
    assert_eq!(sink.exchanges().len(), 4);
}

/// A 429 means the server did not handle the request (RFC 6585 §4), so the host repeats even
/// a write not marked retry-safe after the wait it asks for; a 503 may come after the write
/// was done, so that write is sent once and the guest sees the 503.
#[tokio::test]
async fn a_write_refused_with_429_is_repeated_and_one_with_503_is_not() {
    let throttled = Arc::new(AtomicU32::new(0));
    let unavailable = Arc::new(AtomicU32::new(0));
    let (t, u) = (throttled.clone(), unavailable.clone());
    let addr = serve(
        Router::new()
            .route(
                "/limited",
                post(move || {
                    let n = t.fetch_add(1, Ordering::SeqCst);
                    async move {
                        if n == 0 {
                            (
                                StatusCode::TOO_MANY_REQUESTS,
                                [("retry-after", "0")],
                                "slow down",
                            )
                                .into_response()
                        } else {
                            "created".into_response()
                        }
                    }
                }),
            )
            .route(
                "/unavailable",
                post(move || {
                    u.fetch_add(1, Ordering::SeqCst);
                    async {
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            [("retry-after", "0")],
                            "later",
                        )
                    }
                }),
            ),
    )
    .await;
    let runtime = runtime();
    let connector = fixture(&runtime).await;
    let sink = MemorySink::new();
    let connection = connector
        .connect(ConnectionSpec {
            limits: Limits {
                retry_backoff: Duration::from_millis(1),
                ..Limits::default()
            },
            activity: Arc::new(sink.clone()),
            ..spec(&[("base_url", &format!("http://{addr}"))])
        })
        .expect("config");
    let mut session = connection.session().await.expect("session");

    let found = session
        .lookup("http-post", &format!("http://{addr}/limited"))
        .await
        .expect("answered");
    assert_eq!(
        found.map(|f| f.id).as_deref(),
        Some("200"),
        "the write landed"
    );
    assert_eq!(
        throttled.load(Ordering::SeqCst),
        2,
        "one 429, then the write"
    );

    let found = session
        .lookup("http-post", &format!("http://{addr}/unavailable"))
        .await
        .expect("answered");
    assert_eq!(found.map(|f| f.id).as_deref(), Some("503"));
    assert_eq!(
        unavailable.load(Ordering::SeqCst),
        1,
        "a 503 write is sent once"
    );
    let statuses: Vec<Option<u16>> = sink.exchanges().iter().map(|e| e.status).collect();
    assert_eq!(statuses, vec![Some(429), Some(200), Some(503)]);
}

#[tokio::test]
async fn responses_over_the_size_cap_are_refused() {
    let (addr, _) = server().await;
    let runtime = runtime();
    let connector = fixture(&runtime).await;
    let limits = Limits {
        max_response_bytes: 1024 * 1024,
        ..Limits::default()
    };
    let connection = connector
        .connect(ConnectionSpec {
            limits,
            ..spec(&[("base_url", &format!("http://{addr}"))])
        })
        .expect("config");
    let mut session = connection.session().await.expect("session");
    let error = session
        .lookup("http", &format!("http://{addr}/big"))
        .await
        .expect_err("too large");
    assert!(
        error.to_string().contains("size limit of 1048576 bytes"),
        "{error}"
    );
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test]
async fn requests_over_the_size_cap_are_refused_before_they_are_sent() {
    let received = Arc::new(AtomicU32::new(0));
    let counter = received.clone();
    let addr = serve(Router::new().route(
        "/upload",
        post(move |body: axum::body::Bytes| {
            counter.fetch_add(1, Ordering::SeqCst);
            async move { format!("{} bytes", body.len()) }
        }),
    ))
    .await;
    let runtime = runtime();
    let connector = fixture(&runtime).await;
    let sink = MemorySink::new();
    let connection = connector
        .connect(ConnectionSpec {
            limits: Limits {
                max_request_bytes: 1024 * 1024,
                ..Limits::default()
            },
            activity: Arc::new(sink.clone()),
            ..spec(&[("base_url", &format!("http://{addr}"))])
        })
        .expect("config");
    let mut session = connection.session().await.expect("session");
    let error = session
        .lookup("http-post-big", &format!("http://{addr}/upload 2"))
        .await
        .expect_err("2 MiB is over the 1 MiB cap");
    assert!(
        error.to_string().contains("size limit of 1048576 bytes"),
        "the error names the cap: {error}"
    );
    assert_eq!(received.load(Ordering::SeqCst), 0, "nothing was sent");
    assert!(session.is_alive(), "a refused request is the guest's error");

    // Under the cap, the same request goes out.
    let found = session
        .lookup("http-post-big", &format!("http://{addr}/upload 0"))
        .await
        .expect("an empty body fits");
    assert_eq!(found.map(|f| f.id).as_deref(), Some("200"));
    assert_eq!(received.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let arrivals: Arc<Mutex<Vec<std::time::Instant>>> = Arc::default();
    let seen = arrivals.clone();
    let addr = serve(Router::new().route(
        "/busy-once",
        get(move || {
            let mut seen = seen.lock().expect("lock");
            seen.push(std::time::Instant::now());
            let first = seen.len() == 1;
            async move {
                if first {
                    (
                        StatusCode::TOO_MANY_REQUESTS,
                        [("retry-after", "1")],
                        "slow down",
                    )
                        .into_response()
                } else {
                    "now".into_response()
                }
            }
        }),
    ))
    .await;
    let runtime = runtime();
    let connector = fixture(&runtime).await;
    let connection = connector
        .connect(ConnectionSpec {
            // Without Retry-After the host would wait a millisecond.
            limits: Limits {
                retry_backoff: Duration::from_millis(1),
                ..Limits::default()
            },
            ..spec(&[("base_url", &format!("http://{addr}"))])
        })
        .expect("config");
    let mut session = connection.session().await.expect("session");
    let found = session
        .lookup("http", &format!("http://{addr}/busy-once"))
        .await
        .expect("retried");
    assert_eq!(found.map(|f| f.id).as_deref(), Some("200 now"));
    let arrivals = arrivals.lock().expect("lock").clone();
    assert_eq!(arrivals.len(), 2, "one 429, then the answer");
    let waited = arrivals[1] - arrivals[0];
    assert!(
        waited >= Duration::from_secs(1),
        "the retry waited the second the server asked for, not {waited:?}"
    );
}

#[tokio::test]
async fn the_guest_sees_no_environment_and_no_files() {
    // SAFETY: set before anything reads the environment in this test binary's thread.
    unsafe { std::env::set_var("KOPPEL_TEST_LEAK", "host secret") };
    let runtime = runtime();
    let connector = fixture(&runtime).await;
    let connection = connector.connect(spec(&[])).expect("config");
    let mut session = connection.session().await.expect("session");
    let env = session
        .lookup("env", "")
        .await
        .expect("env")
        .expect("found")
        .id;
    assert_eq!(env, "0 vars, 0 args");
    let fs = session
        .lookup("fs", "")
        .await
        .expect("fs")
        .expect("found")
        .id;
    assert!(fs.starts_with("refused"), "{fs}");
}

#[tokio::test]
async fn the_key_value_store_is_per_connection_and_outlives_instances() {
    let runtime = runtime();
    let connector = fixture(&runtime).await;
    let kv = Arc::new(MemoryKv::new());
    let a = connector
        .connect(ConnectionSpec {
            kv: kv.clone(),
            ..spec(&[])
        })
        .expect("config");
    let b = connector
        .connect(ConnectionSpec {
            kv: kv.clone(),
            name: "other".into(),
            ..spec(&[])
        })
        .expect("config");
    for expected in ["1", "2"] {
        let mut session = a.session().await.expect("session");
        assert_eq!(
            session
                .lookup("kv", "n")
                .await
                .expect("kv")
                .expect("found")
                .id,
            expected
        );
    }
    let mut session = b.session().await.expect("session");
    assert_eq!(
        session
            .lookup("kv", "n")
            .await
            .expect("kv")
            .expect("found")
            .id,
        "1",
        "another connection starts at 1"
    );
}

#[tokio::test]
async fn a_bad_config_is_refused_naming_the_key() {
    let runtime = runtime();
    let connector = fixture(&runtime).await;
    let error = connector
        .connect(spec(&[("total", "many"), ("colour", "red")]))
        .expect_err("invalid");
    let text = error.to_string();
    assert!(text.contains("`colour`: unknown key"), "{text}");
    assert!(
        text.contains("`total`: \"many\" is not a whole number"),
        "{text}"
    );

    let connection = connector.connect(spec(&[])).expect("config");
    let error = connection.check().await.expect_err("check needs base_url");
    assert!(error.to_string().contains("base_url"), "{error}");
}

#[tokio::test]
async fn the_second_start_loads_the_precompiled_component() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = || RuntimeOptions {
        cache_dir: Some(dir.path().to_owned()),
        ..RuntimeOptions::default()
    };
    let path = koppel::connectors::test_guest("fixture").expect("built");

    let first = Runtime::new(options()).expect("runtime");
    first.load_file(path).await.expect("load");
    assert_eq!(
        (first.cache_stats().compiled, first.cache_stats().loaded),
        (1, 0)
    );

    let second = Runtime::new(options()).expect("runtime");
    let connector = second.load_file(path).await.expect("load");
    assert_eq!(
        (second.cache_stats().compiled, second.cache_stats().loaded),
        (0, 1),
        "no recompilation"
    );
    let connection = connector.connect(spec(&[])).expect("config");
    let mut session = connection.session().await.expect("session");
    assert_eq!(
        session
            .read("products", None, 2)
            .await
            .expect("read")
            .records
            .len(),
        2,
        "the cached code runs"
    );
}

/// Hosting mode: a connection's config cannot point a connector at the operator's own
/// network. Each address (and a name that resolves to loopback) is refused before anything
/// is sent, naming the tenant, the host and why; an address the operator opened passes.
#[tokio::test]
async fn a_hosted_connector_reaches_public_addresses_only() {
    let (addr, _) = server().await;
    let hosted = |allowed: &[&str]| {
        Runtime::new(RuntimeOptions {
            cache_dir: Some(cache_dir()),
            network: NetworkGuard::public_only(
                &allowed.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>(),
            ),
            ..RuntimeOptions::default()
        })
        .expect("runtime")
    };
    let runtime = hosted(&[]);
    let connector = fixture(&runtime).await;
    let sink = MemorySink::new();
    let port = addr.port();
    for base in [
        format!("http://127.0.0.1:{port}"),
        "http://10.0.0.1".to_owned(),
        "http://169.254.169.254".to_owned(),
        format!("http://[::1]:{port}"),
        format!("http://[::ffff:127.0.0.1]:{port}"),
        format!("http://localhost:{port}"),
    ] {
        let connection = connector
            .connect(ConnectionSpec {
                activity: Arc::new(sink.clone()),
                ..spec(&[("base_url", &base)])
            })
            .expect("config");
        let mut session = connection.session().await.expect("session");
        let error = session
            .lookup("http", &format!("{base}/latest/meta-data"))
            .await
            .expect_err(&base);
        let text = error.to_string();
        assert!(
            text.contains("tenant `tenant-a`") && text.contains("public addresses only"),
            "{base}: {text}"
        );
        let host = url::Url::parse(&base).expect("url");
        let host = host.host_str().expect("host").trim_matches(['[', ']']);
        assert!(
            text.contains(host),
            "{base}: the error names the host: {text}"
        );
    }
    assert!(
        sink.exchanges().is_empty(),
        "nothing was sent: {:?}",
        sink.exchanges()
    );

    // The operator opens the local address: the same request goes through.
    let runtime = hosted(&["127.0.0.1"]);
    let connector = fixture(&runtime).await;
    let connection = connector
        .connect(spec(&[("base_url", &format!("http://127.0.0.1:{port}"))]))
        .expect("config");
    let mut session = connection.session().await.expect("session");
    let found = session
        .lookup("http", &format!("http://127.0.0.1:{port}/ok"))
        .await
        .expect("allowed");
    assert_eq!(found.map(|f| f.id).as_deref(), Some("200 hello true"));
}

#[tokio::test]
async fn a_component_loaded_again_is_the_one_already_loaded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime = Runtime::new(RuntimeOptions {
        cache_dir: Some(dir.path().to_owned()),
        ..RuntimeOptions::default()
    })
    .expect("runtime");
    let path = koppel::connectors::test_guest("fixture").expect("built");
    let first = runtime.load_file(path).await.expect("load");
    let again = runtime.load_file(path).await.expect("load again");
    assert!(
        Arc::ptr_eq(&first, &again),
        "a thousand tenants share one loaded connector"
    );
    assert_eq!(
        (runtime.cache_stats().compiled, runtime.cache_stats().loaded),
        (1, 0),
        "neither compiled nor read from the cache again"
    );
    // Once nobody holds it, it is loaded anew.
    drop((first, again));
    let _third = runtime.load_file(path).await.expect("load a third time");
    assert_eq!(runtime.cache_stats().loaded, 1);
}
