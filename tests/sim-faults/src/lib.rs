//! Fault injection for the simulators: an axum middleware that, on command of a test, delays,
//! throttles, fails, loses or garbles responses, so connectors and flows can be tested against
//! the failures real servers produce.
//!
//! Faults come from two places, checked in this order for every request that matches:
//! 1. a queue of one-shot faults (`push`): "the next 3 requests get a 429";
//! 2. rates (`set_rate`): "5% of requests get a 503", drawn from a seeded RNG so runs repeat.
//!
//! A fixed `latency` is added to every request on top.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

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
}

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
    let request = Request::from_parts(parts, Body::from(body));
    let Some(fault) = fault else {
        return next.run(request).await;
    };
    tracing::debug!(?fault, "Injecting fault.");
    match fault {
        Fault::TooManyRequests { retry_after_secs } => {
            let mut response = (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::CONTENT_TYPE, "application/json")],
                r#"{"errors":[{"status":"429","code":"0","title":"Too Many Requests","detail":"Rate limit exceeded."}]}"#,
            )
                .into_response();
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
            broken(response.status())
        }
        Fault::DropConnection => broken(StatusCode::OK),
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

/// A response whose body fails after the headers: hyper aborts the connection, and the client
/// sees the exchange break off without an answer it can use.
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

    async fn serve(faults: &Faults, hits: Arc<AtomicU32>) -> String {
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
        tokio::spawn(async move { axum::serve(listener, router).await });
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
        let url = serve(&faults, hits.clone()).await;
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
        let url = serve(&faults, hits.clone()).await;
        faults.push(Matcher::body("createOrderV3"), Fault::LoseResponse);

        let result = async {
            let response = client()
                .post(format!("{url}/"))
                .body("<createOrderV3/>")
                .send()
                .await?;
            response.bytes().await
        }
        .await;
        assert!(
            result.is_err(),
            "the client must not get an answer: {result:?}"
        );
        assert_eq!(hits.load(Ordering::SeqCst), 1, "the write happened");

        faults.push(Matcher::any(), Fault::DropConnection);
        let result = async { client().post(format!("{url}/")).send().await?.bytes().await }.await;
        assert!(result.is_err());
        assert_eq!(
            hits.load(Ordering::SeqCst),
            1,
            "a dropped connection is not handled"
        );
    }

    #[tokio::test]
    async fn rates_are_repeatable_for_a_seed() {
        let count = |seed| async move {
            let faults = Faults::new(seed);
            let url = serve(&faults, Arc::new(AtomicU32::new(0))).await;
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
        let url = serve(&faults, Arc::new(AtomicU32::new(0))).await;
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
