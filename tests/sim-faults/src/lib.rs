//! Fault injection for the simulators: an axum middleware that, on command of a test, delays,
//! throttles, fails, loses or garbles responses, so connectors and flows can be tested against
//! the failures real servers produce.
//!
//! Faults come from two places, checked in this order for every request that matches:
//! 1. a queue of one-shot faults (`push`): "the next 3 requests get a 429";
//! 2. rates (`set_rate`): "5% of requests get a 503", drawn from a seeded RNG so runs repeat.
//!
//! A fixed `latency` is added to every request on top.
//!
//! A lost response and a dropped connection must reach the client as a broken connection with
//! no status line at all. That takes the connection itself: serve the router with [`serve`],
//! whose listener hands every request a handle on its connection ([`Connection`]); the
//! middleware dooms the connection, and from then on every write to it fails, so hyper closes
//! it without having written a byte of the answer.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::serve::{IncomingStream, Listener};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// One kind of failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer 429 with `Retry-After` (whole seconds) without handling the request.
    TooManyRequests { retry_after_secs: u64 },
    /// Answer this status (500, 502, 503, 504) without handling the request.
    Status(u16),
    /// Handle the request (the write is committed), then drop the connection instead of
    /// answering: the client cannot know whether it happened.
    LoseResponse,
    /// Handle the request, then send a body that is not what the protocol promises.
    Malformed,
    /// Drop the connection without handling the request.
    DropConnection,
    /// Wait this long before handling the request.
    Delay(Duration),
}

/// Which requests a fault applies to.
#[derive(Clone, Debug, Default)]
pub struct Matcher {
    /// The request path starts with this (`/api/_action/sync`).
    pub path_prefix: Option<String>,
    /// The request body contains this (`createOrderV3`).
    pub body_contains: Option<String>,
}

impl Matcher {
    pub fn any() -> Self {
        Self::default()
    }

    pub fn path(prefix: impl Into<String>) -> Self {
        Self {
            path_prefix: Some(prefix.into()),
            body_contains: None,
        }
    }

    pub fn body(needle: impl Into<String>) -> Self {
        Self {
            path_prefix: None,
            body_contains: Some(needle.into()),
        }
    }

    fn matches(&self, path: &str, body: &[u8]) -> bool {
        if let Some(prefix) = &self.path_prefix
            && !path.starts_with(prefix.as_str())
        {
            return false;
        }
        if let Some(needle) = &self.body_contains {
            let needle = needle.as_bytes();
            if needle.is_empty() {
                return true;
            }
            return body.windows(needle.len()).any(|w| w == needle);
        }
        true
    }
}

#[derive(Debug)]
struct Plan {
    queue: VecDeque<(Matcher, Fault)>,
    rates: Vec<(Matcher, Fault, f64)>,
    latency: Duration,
    rng: StdRng,
    injected: u64,
    /// `Content-Type` and body of an injected 429.
    throttle: (String, String),
}

/// The 429 body when the server sets none: a generic JSON error.
const THROTTLE_JSON: &str = r#"{"errors":[{"status":"429","code":"0","title":"Too Many Requests","detail":"Rate limit exceeded."}]}"#;

/// A shared handle on a server's faults. Clone it into the test; changes apply to the next
/// request.
#[derive(Clone, Debug)]
pub struct Faults {
    plan: Arc<Mutex<Plan>>,
}

impl Default for Faults {
    fn default() -> Self {
        Self::new(0)
    }
}

impl Faults {
    /// No faults; `seed` drives the rates.
    pub fn new(seed: u64) -> Self {
        Self {
            plan: Arc::new(Mutex::new(Plan {
                queue: VecDeque::new(),
                rates: Vec::new(),
                latency: Duration::ZERO,
                rng: StdRng::seed_from_u64(seed),
                injected: 0,
                throttle: ("application/json".into(), THROTTLE_JSON.into()),
            })),
        }
    }

    fn plan(&self) -> MutexGuard<'_, Plan> {
        // A panic while holding this lock cannot leave the plan half-changed.
        self.plan
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The next request that matches gets `fault`.
    pub fn push(&self, matcher: Matcher, fault: Fault) {
        self.plan().queue.push_back((matcher, fault));
    }

    /// The next `n` requests that match get `fault`.
    pub fn push_n(&self, matcher: Matcher, fault: Fault, n: usize) {
        let mut plan = self.plan();
        for _ in 0..n {
            plan.queue.push_back((matcher.clone(), fault.clone()));
        }
    }

    /// A share (0.0 to 1.0) of the matching requests get `fault`.
    pub fn set_rate(&self, matcher: Matcher, fault: Fault, share: f64) {
        self.plan()
            .rates
            .push((matcher, fault, share.clamp(0.0, 1.0)));
    }

    /// What an injected 429 carries, in the protocol of the server (a SOAP fault for a SOAP
    /// server); the default is a JSON error.
    pub fn set_throttle_body(&self, content_type: impl Into<String>, body: impl Into<String>) {
        self.plan().throttle = (content_type.into(), body.into());
    }

    /// Every request waits this long first.
    pub fn set_latency(&self, latency: Duration) {
        self.plan().latency = latency;
    }

    /// Removes every fault and the latency.
    pub fn clear(&self) {
        let mut plan = self.plan();
        plan.queue.clear();
        plan.rates.clear();
        plan.latency = Duration::ZERO;
    }

    /// How many faults were injected so far.
    pub fn injected(&self) -> u64 {
        self.plan().injected
    }

    /// One-shot faults not used yet.
    pub fn pending(&self) -> usize {
        self.plan().queue.len()
    }

    fn throttle(&self) -> (String, String) {
        self.plan().throttle.clone()
    }

    fn pick(&self, path: &str, body: &[u8]) -> (Duration, Option<Fault>) {
        let mut plan = self.plan();
        let latency = plan.latency;
        let queued = plan.queue.iter().position(|(m, _)| m.matches(path, body));
        let fault = match queued {
            Some(index) => plan.queue.remove(index).map(|(_, fault)| fault),
            None => {
                let Plan { rates, rng, .. } = &mut *plan;
                rates
                    .iter()
                    .filter(|(m, _, _)| m.matches(path, body))
                    .find(|(_, _, share)| rng.random_bool(*share))
                    .map(|(_, fault, _)| fault.clone())
            }
        };
        if fault.is_some() {
            plan.injected += 1;
        }
        (latency, fault)
    }

    /// Wraps a router so every request passes through the faults.
    pub fn layer<S: Clone + Send + Sync + 'static>(&self, router: Router<S>) -> Router<S> {
        router.layer(middleware::from_fn_with_state(self.clone(), inject))
    }
}

/// The most a body may be when the middleware buffers it to match on.
const MAX_BODY: usize = 64 * 1024 * 1024;

async fn inject(State(faults): State<Faults>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(body) => body,
        Err(error) => {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body: {error}"),
            )
                .into_response();
        }
    };
    let (latency, fault) = faults.pick(parts.uri.path(), &body);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let connection = parts
        .extensions
        .get::<ConnectInfo<Connection>>()
        .map(|info| info.0.clone());
    let request = Request::from_parts(parts, Body::from(body));
    let Some(fault) = fault else {
        return next.run(request).await;
    };
    tracing::debug!(?fault, "Injecting fault.");
    match fault {
        Fault::TooManyRequests { retry_after_secs } => {
            let (content_type, body) = faults.throttle();
            let mut response = (StatusCode::TOO_MANY_REQUESTS, body).into_response();
            if let Ok(value) = HeaderValue::from_str(&content_type) {
                response.headers_mut().insert(header::CONTENT_TYPE, value);
            }
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            response
        }
        Fault::Status(status) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (
                status,
                [(header::CONTENT_TYPE, "text/html")],
                format!("<html><body>{status}</body></html>"),
            )
                .into_response()
        }
        Fault::Delay(delay) => {
            tokio::time::sleep(delay).await;
            next.run(request).await
        }
        Fault::LoseResponse => {
            let response = next.run(request).await;
            match connection {
                Some(connection) => {
                    connection.doom();
                    response
                }
                None => broken(response.status()),
            }
        }
        Fault::DropConnection => match connection {
            Some(connection) => {
                connection.doom();
                StatusCode::OK.into_response()
            }
            None => broken(StatusCode::OK),
        },
        Fault::Malformed => {
            let response = next.run(request).await;
            let (mut parts, _) = response.into_parts();
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(
                parts,
                Body::from(Bytes::from_static(
                    b"<<<garbled \x00 not the promised format",
                )),
            )
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, so that lost responses and
/// dropped connections break the connection before a byte of the answer is written. (A router
/// served otherwise still gets them, as an answer whose body breaks off after the headers.)
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    axum::serve(
        FaultListener(listener),
        router.into_make_service_with_connect_info::<Connection>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// A TCP listener whose connections can be doomed by the fault middleware.
#[derive(Debug)]
pub struct FaultListener(pub TcpListener);

impl Listener for FaultListener {
    type Io = FaultStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, addr) = Listener::accept(&mut self.0).await;
        (
            FaultStream {
                inner: stream,
                doomed: Arc::new(AtomicBool::new(false)),
            },
            addr,
        )
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// One accepted connection: writes fail once it is doomed.
#[derive(Debug)]
pub struct FaultStream {
    inner: TcpStream,
    doomed: Arc<AtomicBool>,
}

impl FaultStream {
    fn check(&self) -> io::Result<()> {
        if self.doomed.load(Ordering::SeqCst) {
            Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "fault: connection dropped",
            ))
        } else {
            Ok(())
        }
    }
}

impl AsyncRead for FaultStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for FaultStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The connection a request arrived on, as [`serve`] puts it in the request's extensions
/// (`ConnectInfo<Connection>`).
#[derive(Clone, Debug)]
pub struct Connection {
    doomed: Arc<AtomicBool>,
}

impl Connection {
    /// From now on nothing more is written to this connection: the answer being prepared is
    /// lost and hyper closes the connection.
    pub fn doom(&self) {
        self.doomed.store(true, Ordering::SeqCst);
    }
}

impl Connected<IncomingStream<'_, FaultListener>> for Connection {
    fn connect_info(stream: IncomingStream<'_, FaultListener>) -> Self {
        Connection {
            doomed: stream.io().doomed.clone(),
        }
    }
}

/// A response whose body fails after the headers: hyper aborts the connection, and the client
/// sees the exchange break off without an answer it can use. Only for routers not served by
/// [`serve`].
fn broken(status: StatusCode) -> Response {
    let stream = futures::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "fault: connection dropped",
        ))
    });
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(1_000_000u32));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    async fn start(faults: &Faults, hits: Arc<AtomicU32>) -> String {
        let router = Router::new().fallback(move || {
            let hits = hits.clone();
            async move {
                hits.fetch_add(1, Ordering::SeqCst);
                "ok"
            }
        });
        let router = faults.layer(router);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(super::serve(listener, router, std::future::pending()));
        url
    }

    fn client() -> reqwest::Client {
        // reqwest's TLS comes without a crypto provider in this workspace (the host picks ring).
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client")
    }

    #[tokio::test]
    async fn queued_faults_apply_in_order_to_matching_requests_only() {
        let faults = Faults::new(1);
        let hits = Arc::new(AtomicU32::new(0));
        let url = start(&faults, hits.clone()).await;
        faults.push_n(
            Matcher::path("/sync"),
            Fault::TooManyRequests {
                retry_after_secs: 2,
            },
            2,
        );

        let other = client()
            .post(format!("{url}/other"))
            .send()
            .await
            .expect("send");
        assert_eq!(other.status(), 200, "a request that does not match passes");

        for _ in 0..2 {
            let response = client()
                .post(format!("{url}/sync"))
                .send()
                .await
                .expect("send");
            assert_eq!(response.status(), 429);
            assert_eq!(response.headers()["retry-after"], "2");
        }
        let response = client()
            .post(format!("{url}/sync"))
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 200);
        assert_eq!(
            hits.load(Ordering::SeqCst),
            2,
            "throttled requests never reach the handler"
        );
        assert_eq!(faults.injected(), 2);
    }

    #[tokio::test]
    async fn a_lost_response_is_handled_but_never_answered() {
        let faults = Faults::new(1);
        let hits = Arc::new(AtomicU32::new(0));
        let url = start(&faults, hits.clone()).await;
        faults.push(Matcher::body("createOrderV3"), Fault::LoseResponse);

        // Not even a status line: `send` itself fails.
        let result = client()
            .post(format!("{url}/"))
            .body("<createOrderV3/>")
            .send()
            .await;
        assert!(
            result.is_err(),
            "the client must not get a status: {result:?}"
        );
        assert_eq!(hits.load(Ordering::SeqCst), 1, "the write happened");

        faults.push(Matcher::any(), Fault::DropConnection);
        let result = client().post(format!("{url}/")).send().await;
        assert!(result.is_err(), "{result:?}");
        assert_eq!(
            hits.load(Ordering::SeqCst),
            1,
            "a dropped connection is not handled"
        );

        // The next request, on a new connection, is answered.
        let response = client().post(format!("{url}/")).send().await.expect("send");
        assert_eq!(response.status(), 200);
        assert_eq!(hits.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_lost_empty_answer_is_lost_too() {
        // A 204 has no body to break: the connection must break before the status line.
        let faults = Faults::new(1);
        let hits = Arc::new(AtomicU32::new(0));
        let router = Router::new().fallback({
            let hits = hits.clone();
            move || {
                let hits = hits.clone();
                async move {
                    hits.fetch_add(1, Ordering::SeqCst);
                    StatusCode::NO_CONTENT
                }
            }
        });
        let router = faults.layer(router);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(super::serve(listener, router, std::future::pending()));
        faults.push(Matcher::any(), Fault::LoseResponse);
        let result = client().delete(format!("{url}/x")).send().await;
        assert!(result.is_err(), "{result:?}");
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        let response = client()
            .delete(format!("{url}/x"))
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 204);
    }

    #[tokio::test]
    async fn latency_delays_every_request_at_least_that_long() {
        let faults = Faults::new(1);
        let url = start(&faults, Arc::new(AtomicU32::new(0))).await;
        let latency = Duration::from_millis(150);
        faults.set_latency(latency);
        let started = std::time::Instant::now();
        let response = client()
            .post(format!("{url}/x"))
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 200);
        assert!(
            started.elapsed() >= latency,
            "answered after {:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn a_throttle_body_set_by_the_server_is_sent() {
        let faults = Faults::new(1);
        let url = start(&faults, Arc::new(AtomicU32::new(0))).await;
        faults.set_throttle_body("text/xml; charset=utf-8", "<Envelope/>");
        faults.push(
            Matcher::any(),
            Fault::TooManyRequests {
                retry_after_secs: 3,
            },
        );
        let response = client()
            .post(format!("{url}/x"))
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["retry-after"], "3");
        assert_eq!(
            response.headers()["content-type"],
            "text/xml; charset=utf-8"
        );
        assert_eq!(response.text().await.expect("body"), "<Envelope/>");
    }

    #[tokio::test]
    async fn rates_are_repeatable_for_a_seed() {
        let count = |seed| async move {
            let faults = Faults::new(seed);
            let url = start(&faults, Arc::new(AtomicU32::new(0))).await;
            faults.set_rate(Matcher::any(), Fault::Status(503), 0.3);
            let mut failed = Vec::new();
            for i in 0..40 {
                let status = client()
                    .post(format!("{url}/x"))
                    .send()
                    .await
                    .expect("send")
                    .status();
                if status == 503 {
                    failed.push(i);
                }
            }
            failed
        };
        let first = count(7).await;
        assert_eq!(first, count(7).await);
        assert!(
            !first.is_empty() && first.len() < 40,
            "about 30% fail: {}",
            first.len()
        );
    }

    #[tokio::test]
    async fn malformed_bodies_replace_the_answer() {
        let faults = Faults::new(1);
        let url = start(&faults, Arc::new(AtomicU32::new(0))).await;
        faults.push(Matcher::any(), Fault::Malformed);
        let body = client()
            .post(format!("{url}/x"))
            .send()
            .await
            .expect("send")
            .text()
            .await
            .expect("body");
        assert!(body.starts_with("<<<garbled"), "{body}");
    }
}
