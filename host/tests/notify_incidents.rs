//! Monitoring: a failing flow, records that keep failing and a stale flow each produce one
//! notification per incident (a signed webhook to a local receiver and an e-mail to a local
//! SMTP listener), however many runs show the problem; recovery produces one more. A
//! delivery that fails for a passing reason is tried again, and arrives once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderMap;
use koppel::config::Secret;
use koppel::config::{EmailChannel, NotifyConfig, SmtpTls, WebhookChannel};
use koppel::flow::definition::FlowDef;
use koppel::flow::{Environment, RunOptions, run_flow};
use koppel::mapping::MapRule;
use koppel::notify::{Monitor, Notifier};
use koppel::signature::verify_koppel;
use koppel::store::{RunStatus, now_ms};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

const HOOK_SECRET: &str = "notify-secret";

/// A local HTTP receiver: every POST body (with its headers) goes to the channel.
async fn receiver() -> (String, mpsc::UnboundedReceiver<(HeaderMap, Bytes)>) {
    let (send, receive) = mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let send = send.clone();
            async move {
                let _ = send.send((headers, body));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), receive)
}

/// A receiver that answers `status` to the first `failures` calls, then takes them as
/// [`receiver`] does; every call is counted.
async fn flaky_receiver(
    failures: usize,
    status: u16,
) -> (
    String,
    Arc<AtomicUsize>,
    mpsc::UnboundedReceiver<(HeaderMap, Bytes)>,
) {
    let (send, receive) = mpsc::unbounded_channel();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let send = send.clone();
            let n = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < failures {
                    return (
                        axum::http::StatusCode::from_u16(status).expect("status"),
                        "not now",
                    );
                }
                let _ = send.send((headers, body));
                (axum::http::StatusCode::OK, "ok")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), calls, receive)
}

/// A tiny SMTP server on 127.0.0.1: accepts every message and sends its DATA to the channel.
async fn smtp_sink() -> (u16, mpsc::UnboundedReceiver<String>) {
    let (port, _, receive) = flaky_smtp_sink(0).await;
    (port, receive)
}

/// [`smtp_sink`] that answers the first `failures` messages with `451` (try again later);
/// every message offered is counted.
async fn flaky_smtp_sink(
    failures: usize,
) -> (u16, Arc<AtomicUsize>, mpsc::UnboundedReceiver<String>) {
    let (send, receive) = mpsc::unbounded_channel();
    let offered = Arc::new(AtomicUsize::new(0));
    let counted = offered.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let send = send.clone();
            let counted = counted.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                let _ = write.write_all(b"220 sink ESMTP\r\n").await;
                let mut data: Option<String> = None;
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(message) = data.as_mut() {
                        if line == "." {
                            let message = std::mem::take(message);
                            data = None;
                            if counted.fetch_add(1, Ordering::SeqCst) < failures {
                                let _ = write.write_all(b"451 4.3.0 try again later\r\n").await;
                            } else {
                                let _ = send.send(message);
                                let _ = write.write_all(b"250 queued\r\n").await;
                            }
                        } else {
                            message.push_str(&line);
                            message.push('\n');
                        }
                        continue;
                    }
                    let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" => b"250-sink\r\n250 8BITMIME\r\n",
                        "DATA" => {
                            data = Some(String::new());
                            b"354 go on\r\n"
                        }
                        "QUIT" => {
                            let _ = write.write_all(b"221 bye\r\n").await;
                            break;
                        }
                        _ => b"250 ok\r\n",
                    };
                    let _ = write.write_all(reply).await;
                }
            });
        }
    });
    (port, offered, receive)
}

async fn environment(dir: &tempfile::TempDir) -> Environment {
    koppel_test_support::fixture_environment(env!("CARGO_TARGET_TMPDIR"), dir, 4).await
}

/// The products flow; reading `stream` (an unknown stream fails the run).
fn flow(stream: &str) -> FlowDef {
    let mut flow: FlowDef = toml::from_str(&format!(
        "source = {{ connection = \"src\", stream = \"{stream}\" }}\ntarget = {{ connection = \"dst\", stream = \"products\" }}\ninterval = \"15m\"\nstale_after = \"1h\"\n"
    ))
    .expect("valid");
    flow.name = "products".into();
    flow
}

async fn monitor(
    env: &Environment,
    record_attempts: u32,
) -> (
    Monitor,
    mpsc::UnboundedReceiver<(HeaderMap, Bytes)>,
    mpsc::UnboundedReceiver<String>,
) {
    let (url, hooks) = receiver().await;
    let (port, mails) = smtp_sink().await;
    let config = NotifyConfig {
        record_attempts: Some(record_attempts),
        webhook: Some(WebhookChannel {
            url,
            secret: Secret::plain(HOOK_SECRET),
        }),
        email: Some(EmailChannel {
            host: "127.0.0.1".into(),
            port: Some(port),
            tls: SmtpTls::None,
            username: None,
            password: None,
            from: "koppel <koppel@example.test>".into(),
            to: vec!["owner@example.test".into()],
        }),
    };
    let notifier = Arc::new(Notifier::from_config(&config).expect("channels"));
    let monitor = Monitor::new(
        &env.tenant,
        env.store.clone(),
        vec![flow("products")],
        notifier,
        config.record_attempts(),
    )
    .with_public_url(Some("https://koppel.example.test".into()));
    (monitor, hooks, mails)
}

fn options() -> RunOptions {
    RunOptions {
        trigger: "test".into(),
        ..RunOptions::default()
    }
}

/// The webhook's JSON after checking its signature.
fn signed_json(headers: &HeaderMap, body: &Bytes) -> Value {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    verify_koppel(
        HOOK_SECRET.as_bytes(),
        header("x-koppel-timestamp"),
        header("x-koppel-signature"),
        body,
        now_ms() / 1000,
        300,
    )
    .expect("a valid signature");
    serde_json::from_slice(body).expect("JSON")
}

#[tokio::test]
async fn a_failing_flow_is_notified_once_and_its_recovery_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = environment(&dir).await;
    let (monitor, mut hooks, mut mails) = monitor(&env, 100).await;

    for _ in 0..3 {
        let failed = run_flow(&env, &flow("nope"), &options())
            .await
            .expect("run");
        assert_eq!(failed.status, RunStatus::Failed);
        monitor.on_run(&failed).await.expect("monitor");
    }
    let (headers, body) = hooks.try_recv().expect("one webhook");
    let notice = signed_json(&headers, &body);
    assert_eq!(notice["event"], "opened");
    assert_eq!(notice["tenant"], "t1");
    assert_eq!(notice["incident"]["kind"], "flow-failed");
    assert!(
        notice["incident"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("no stream \"nope\""),
        "the reason: {notice}"
    );
    assert!(
        notice["url"]
            .as_str()
            .unwrap_or("")
            .starts_with("https://koppel.example.test/runs/")
    );
    let mail = mails.try_recv().expect("one e-mail");
    assert!(
        mail.contains("Subject: [koppel t1] flow failed: products"),
        "{mail}"
    );
    assert!(mail.contains("nope"), "the reason is in the mail: {mail}");
    assert!(hooks.try_recv().is_err(), "three failed runs, one webhook");
    assert!(mails.try_recv().is_err(), "three failed runs, one e-mail");

    let ok = run_flow(&env, &flow("products"), &options())
        .await
        .expect("run");
    assert_eq!(ok.status, RunStatus::Succeeded);
    monitor.on_run(&ok).await.expect("monitor");
    let (headers, body) = hooks.try_recv().expect("recovery webhook");
    let notice = signed_json(&headers, &body);
    assert_eq!(notice["event"], "resolved");
    assert_eq!(notice["incident"]["kind"], "flow-failed");
    assert!(notice["incident"]["resolved_at"].as_i64().is_some());
    let mail = mails.try_recv().expect("recovery e-mail");
    assert!(
        mail.contains("Subject: [koppel t1] resolved: products"),
        "{mail}"
    );
    assert!(hooks.try_recv().is_err() && mails.try_recv().is_err());

    let again = run_flow(&env, &flow("products"), &options())
        .await
        .expect("run");
    monitor.on_run(&again).await.expect("monitor");
    assert!(hooks.try_recv().is_err(), "nothing more to say");

    let incidents = env
        .store
        .incidents("t1", false, 10)
        .await
        .expect("incidents");
    assert_eq!(incidents.len(), 1);
    let sent = env
        .store
        .notifications("t1", incidents[0].id)
        .await
        .expect("notifications");
    let shown: Vec<(&str, &str, bool)> = sent
        .iter()
        .map(|n| (n.event.as_str(), n.channel.as_str(), n.ok))
        .collect();
    assert_eq!(
        shown,
        [
            ("opened", "webhook", true),
            ("opened", "email", true),
            ("resolved", "webhook", true),
            ("resolved", "email", true)
        ]
    );
}

#[tokio::test]
async fn records_that_keep_failing_are_one_incident_until_they_stop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = environment(&dir).await;
    let (monitor, mut hooks, mut mails) = monitor(&env, 2).await;
    let mut bad = flow("products");
    bad.map.push(MapRule {
        to: "key".into(),
        from: Some("key".into()),
        lookup: Some(BTreeMap::from([("SKU-000002".to_owned(), json!("bad"))])),
        ..MapRule::default()
    });

    let first = run_flow(&env, &bad, &options()).await.expect("run");
    assert_eq!(first.status, RunStatus::Partial);
    monitor.on_run(&first).await.expect("monitor");
    assert!(
        hooks.try_recv().is_err(),
        "one failure is not yet an incident"
    );
    for _ in 0..2 {
        let again = run_flow(&env, &bad, &options()).await.expect("run");
        monitor.on_run(&again).await.expect("monitor");
    }
    let (headers, body) = hooks.try_recv().expect("one webhook");
    let notice = signed_json(&headers, &body);
    assert_eq!(notice["incident"]["kind"], "records-failing");
    let message = notice["incident"]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("bad") && message.contains("this record is bad"),
        "{message}"
    );
    assert!(mails.try_recv().is_ok());
    assert!(hooks.try_recv().is_err() && mails.try_recv().is_err());

    env.store
        .dismiss_failed("t1", "products", "bad")
        .await
        .expect("dismiss");
    let after = run_flow(&env, &flow("products"), &options())
        .await
        .expect("run");
    monitor.on_run(&after).await.expect("monitor");
    let (headers, body) = hooks.try_recv().expect("recovery");
    assert_eq!(signed_json(&headers, &body)["event"], "resolved");
    assert!(mails.try_recv().is_ok());
}

#[tokio::test]
async fn a_flow_without_success_for_too_long_is_stale_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = environment(&dir).await;
    let (monitor, mut hooks, mut mails) = monitor(&env, 100).await;
    let ok = run_flow(&env, &flow("products"), &options())
        .await
        .expect("run");
    monitor.on_run(&ok).await.expect("monitor");
    monitor.check_stale().await.expect("check");
    assert!(hooks.try_recv().is_err(), "fresh");

    let later = now_ms() + 2 * 3600 * 1000;
    monitor.check_stale_at(later).await.expect("check");
    monitor.check_stale_at(later + 60_000).await.expect("check");
    let (headers, body) = hooks.try_recv().expect("stale webhook");
    let notice = signed_json(&headers, &body);
    assert_eq!(notice["incident"]["kind"], "stale");
    assert!(
        notice["incident"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("has not succeeded for 2 h"),
        "{notice}"
    );
    assert!(mails.try_recv().is_ok());
    assert!(hooks.try_recv().is_err(), "checked twice, notified once");

    let next = run_flow(&env, &flow("products"), &options())
        .await
        .expect("run");
    monitor.on_run(&next).await.expect("monitor");
    let (headers, body) = hooks.try_recv().expect("recovery");
    let notice = signed_json(&headers, &body);
    assert_eq!(
        (
            notice["event"].as_str(),
            notice["incident"]["kind"].as_str()
        ),
        (Some("resolved"), Some("stale"))
    );
    assert!(mails.try_recv().is_ok());
}

fn channels(url: String, smtp_port: u16) -> NotifyConfig {
    NotifyConfig {
        record_attempts: None,
        webhook: Some(WebhookChannel {
            url,
            secret: Secret::plain(HOOK_SECRET),
        }),
        email: Some(EmailChannel {
            host: "127.0.0.1".into(),
            port: Some(smtp_port),
            tls: SmtpTls::None,
            username: None,
            password: None,
            from: "koppel <koppel@example.test>".into(),
            to: vec!["owner@example.test".into()],
        }),
    }
}

#[tokio::test]
async fn a_delivery_that_fails_at_first_is_tried_again_and_arrives_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = environment(&dir).await;
    let (url, calls, mut hooks) = flaky_receiver(1, 503).await;
    let (port, offered, mut mails) = flaky_smtp_sink(1).await;
    let notifier = Notifier::from_config(&channels(url, port))
        .expect("channels")
        .with_backoff(Duration::from_millis(10));
    let monitor = Monitor::new(
        &env.tenant,
        env.store.clone(),
        vec![flow("products")],
        Arc::new(notifier),
        3,
    );

    let failed = run_flow(&env, &flow("nope"), &options())
        .await
        .expect("run");
    monitor.on_run(&failed).await.expect("monitor");
    assert_eq!(calls.load(Ordering::SeqCst), 2, "503, then delivered");
    let (headers, body) = hooks.try_recv().expect("the webhook, delivered");
    assert_eq!(signed_json(&headers, &body)["event"], "opened");
    assert!(hooks.try_recv().is_err(), "delivered once");
    assert_eq!(offered.load(Ordering::SeqCst), 2, "451, then accepted");
    let mail = mails.try_recv().expect("the e-mail, delivered");
    assert!(mail.contains("flow failed: products"), "{mail}");
    assert!(mails.try_recv().is_err(), "delivered once");

    let incidents = env
        .store
        .incidents("t1", false, 10)
        .await
        .expect("incidents");
    let sent = env
        .store
        .notifications("t1", incidents[0].id)
        .await
        .expect("notifications");
    let shown: Vec<(&str, &str, bool)> = sent
        .iter()
        .map(|n| (n.event.as_str(), n.channel.as_str(), n.ok))
        .collect();
    assert_eq!(
        shown,
        [("opened", "webhook", true), ("opened", "email", true)],
        "one notification per channel, delivered"
    );
}

#[tokio::test]
async fn a_delivery_is_tried_a_bounded_number_of_times_and_a_refusal_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = environment(&dir).await;
    let (down, down_calls, mut down_hooks) = flaky_receiver(usize::MAX, 503).await;
    let (refusing, refused_calls, _) = flaky_receiver(usize::MAX, 400).await;
    let (port, offered, mut mails) = flaky_smtp_sink(usize::MAX).await;
    let failed = run_flow(&env, &flow("nope"), &options())
        .await
        .expect("run");

    let monitor = |url: String| {
        let notifier = Notifier::from_config(&channels(url, port))
            .expect("channels")
            .with_backoff(Duration::from_millis(10));
        Monitor::new(
            &env.tenant,
            env.store.clone(),
            vec![flow("products")],
            Arc::new(notifier),
            3,
        )
    };
    monitor(down).on_run(&failed).await.expect("monitor");
    assert_eq!(
        down_calls.load(Ordering::SeqCst),
        koppel::notify::channels::ATTEMPTS as usize
    );
    assert!(down_hooks.try_recv().is_err());
    assert_eq!(
        offered.load(Ordering::SeqCst),
        koppel::notify::channels::ATTEMPTS as usize
    );
    assert!(mails.try_recv().is_err());
    let incident = env
        .store
        .incidents("t1", false, 10)
        .await
        .expect("incidents")[0]
        .clone();
    let sent = env
        .store
        .notifications("t1", incident.id)
        .await
        .expect("notifications");
    assert_eq!(sent.len(), 2, "one row per channel: {sent:?}");
    assert!(sent.iter().all(|n| !n.ok));

    // A refusal (HTTP 400) is not tried again. The incident is open already: resolve it and
    // fail again to have something to send.
    let ok = run_flow(&env, &flow("products"), &options())
        .await
        .expect("run");
    let refusing_monitor = monitor(refusing);
    refusing_monitor.on_run(&ok).await.expect("monitor");
    assert_eq!(
        refused_calls.load(Ordering::SeqCst),
        1,
        "the resolution, once"
    );
}
