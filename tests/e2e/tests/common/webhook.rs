//! `koppel run` in this process for the orders flow: the scheduler on a long interval and the
//! HTTP server with a signed Shopware webhook, started from a `koppel.toml` the way the
//! command starts them; a placed order is announced the way Shopware announces it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use koppel::flow::schedule::Scheduler;
use koppel::server::{FlowControl, Started};
use koppel_sim_mplus::MplusSimulator;
use koppel_sim_shopware::PlacedOrder;
use serde_json::json;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::{Koppel, ORDER_SETTINGS, Systems, config_text};

pub const SHOP_SECRET: &str = "app-shop-secret-7";

pub struct Hooked {
    pub koppel: Koppel,
    scheduler: Arc<Scheduler>,
    runs: broadcast::Receiver<koppel::flow::RunSummary>,
    cancel: CancellationToken,
    server: Started,
    client: reqwest::Client,
    sent: std::sync::atomic::AtomicU64,
}

impl Hooked {
    /// Starts the schedule (orders every `interval`) and the server; returns after the first
    /// scheduled run, so that what follows is the webhook's doing.
    pub async fn start(systems: &Systems, interval: &str) -> Hooked {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let koppel = Koppel::start(&config_text(
            systems,
            ORDER_SETTINGS,
            "",
            &format!(
                "[flows.orders]\ninterval = \"{interval}\"\n\n[server]\nlisten = \"127.0.0.1:0\"\ntokens = [\"e2e-token\"]\n\n[webhooks.shop]\nscheme = \"shopware\"\nsecret = \"{SHOP_SECRET}\"\n"
            ),
        ))
        .await;
        let cancel = CancellationToken::new();
        let scheduler = koppel.schedule(&cancel);
        let mut runs = scheduler.subscribe();
        let control: Arc<dyn FlowControl> = scheduler.clone();
        let server = koppel::server::start(
            &koppel.loaded,
            koppel.env.clone(),
            Some(control),
            scheduler.subscribe(),
            cancel.clone(),
        )
        .await
        .expect("server");
        let first = runs.recv().await.expect("the first scheduled run");
        assert_eq!(first.flow, "orders");
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        Hooked {
            koppel,
            scheduler,
            runs,
            cancel,
            server,
            client,
            sent: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Announces the order as Shopware's `checkout.order.placed` webhook would, with the
    /// body's `timestamp` and the signature keyed with `secret`; returns the status.
    pub async fn announce(&self, placed: &PlacedOrder, secret: &str, timestamp: i64) -> u16 {
        let n = self.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let body = json!({
            "data": {
                "payload": [{ "entity": "order", "operation": "insert", "primaryKey": placed.id }],
                "event": "checkout.order.placed"
            },
            "source": { "url": "http://shop.test", "appVersion": "1.0.0", "shopId": "e2e", "eventId": format!("e2e-{n}-{}", placed.id) },
            "timestamp": timestamp
        })
        .to_string();
        let signature = koppel::signature::hmac_hex(secret.as_bytes(), &[body.as_bytes()]);
        let response = self
            .client
            .post(format!(
                "http://{}/webhooks/{}/shop",
                self.server.addr, self.koppel.env.tenant
            ))
            .header("shopware-shop-signature", signature)
            .body(body)
            .send()
            .await
            .expect("send the webhook");
        response.status().as_u16()
    }

    /// Whether a run of the orders flow waits to start.
    pub fn run_queued(&self) -> bool {
        self.scheduler.is_queued("orders")
    }

    /// Announces the order as Shopware's `checkout.order.placed` webhook, and returns how
    /// long it took from the call until the run that brought it into the till had finished
    /// (the order is in the till a little before that).
    pub async fn deliver(&mut self, placed: &PlacedOrder, till: &MplusSimulator) -> Duration {
        let started = Instant::now();
        let status = self
            .announce(placed, SHOP_SECRET, koppel::store::now_ms() / 1000)
            .await;
        assert_eq!(status, 202, "accepted");
        loop {
            let run = tokio::time::timeout(Duration::from_secs(30), self.runs.recv())
                .await
                .expect("a run within 30 s")
                .expect("a summary");
            if run.flow == "orders" && till.order_by_ext_id(&placed.order_number).is_some() {
                return started.elapsed();
            }
        }
    }

    pub async fn stop(self) {
        self.cancel.cancel();
        drop(self.runs);
        self.server.wait().await;
        if let Ok(scheduler) = Arc::try_unwrap(self.scheduler) {
            scheduler.stop().await;
        }
        self.koppel.close().await;
    }
}
