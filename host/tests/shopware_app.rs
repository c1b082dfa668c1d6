//! koppel as a Shopware app's backend, over real HTTP on 127.0.0.1, with the test playing
//! the shop exactly as Shopware's `AppRegistrationService` / `PrivateHandshake` and
//! `WebhookDispatcher` do: the registration signed with the app secret, the proof, the
//! confirmation with the credentials signed with the shop secret, signed events. Refused:
//! wrong signatures, stale calls, another shop. Also `koppel shopware app-manifest`.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;

use koppel::config::ShopwareApp;
use koppel::flow::definition::FlowDef;
use koppel::flow::{ConnectionSetup, Environment, Supplied};
use koppel::runtime::{Connector, Limits, TenantQuota};
use koppel::server::{FlowControl, ServerState, TenantState, serve};
use koppel::signature::hmac_hex;
use koppel::store::{ActivityWriter, Sealer, Store, now_ms};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const APP_SECRET: &str = "app-secret-0123456789abcdef0123456789abcdef";
const SHOP_URL: &str = "https://shop.example.com";

async fn fixture() -> Arc<Connector> {
    koppel_test_support::fixture(&koppel_test_support::runtime(env!("CARGO_TARGET_TMPDIR"))).await
}

/// Records the flows asked to run.
struct Control(mpsc::UnboundedSender<String>);

impl FlowControl for Control {
    fn run_now(&self, flow: &str) -> bool {
        self.0.send(flow.to_owned()).is_ok()
    }
}

struct Harness {
    _dir: tempfile::TempDir,
    base: String,
    client: reqwest::Client,
    store: Store,
    supplied: Supplied,
    asked: mpsc::UnboundedReceiver<String>,
    cancel: CancellationToken,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

fn orders_flow() -> FlowDef {
    let mut flow: FlowDef = toml::from_str(
        "source = { connection = \"shop\", stream = \"orders\" }\n\
         target = { connection = \"till\", stream = \"orders\" }\ninterval = \"1h\"\n",
    )
    .expect("valid");
    flow.name = "orders".into();
    flow
}

/// Tenant `t` with connection `shop` (its credentials left to the app) served as a
/// Shopware app.
async fn start() -> Harness {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("koppel.db"))
        .await
        .expect("store");
    let activity = ActivityWriter::start(store.clone());
    let connector = fixture().await;
    let supplied = Supplied::awaiting(
        ShopwareApp::SUPPLIED_KEYS.map(String::from).to_vec(),
        "the app",
    );
    let shop = ConnectionSetup {
        connector: connector.clone(),
        config: BTreeMap::from([("shop_url".to_owned(), format!("{SHOP_URL}/"))]),
        limits: Limits::default(),
        supplied: supplied.clone(),
    };
    let till = ConnectionSetup {
        connector,
        config: BTreeMap::new(),
        limits: Limits::default(),
        supplied: Supplied::default(),
    };
    let env = Environment {
        tenant: "t".into(),
        store: store.clone(),
        activity,
        connections: BTreeMap::from([("shop".to_owned(), shop), ("till".to_owned(), till)]),
        quota: TenantQuota::unlimited("t"),
    };
    let (send, asked) = mpsc::unbounded_channel();
    let mut tenant =
        TenantState::new(env, vec![orders_flow()]).with_control(Arc::new(Control(send)));
    let app: ShopwareApp = toml::from_str(&format!(
        "secret = \"{APP_SECRET}\"\nname = \"KoppelTest\"\n"
    ))
    .expect("app");
    tenant
        .set_shopware_apps(&BTreeMap::from([("shop".to_owned(), app)]))
        .expect("app");
    let state = ServerState::new();
    state
        .add_tenant(tenant, &["token".into()])
        .await
        .expect("tenant");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let cancel = CancellationToken::new();
    tokio::spawn(serve(listener, Arc::new(state), cancel.clone()));
    Harness {
        _dir: dir,
        base: format!("http://{addr}"),
        client: reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client"),
        store,
        supplied,
        asked,
        cancel,
    }
}

fn now() -> i64 {
    now_ms() / 1000
}

/// PHP's `json_encode` with its default flags, as Shopware signs and sends bodies: `/` as
/// `\/`, every character beyond ASCII as `\uXXXX`.
fn php_json(value: &Value) -> String {
    let mut out = String::new();
    for c in value.to_string().chars() {
        match c {
            '/' => out.push_str("\\/"),
            c if (c as u32) < 0x80 => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out
}

/// The shop's side of the handshake.
struct Shop {
    id: String,
    url: String,
}

impl Shop {
    fn new(id: &str) -> Shop {
        Shop {
            id: id.into(),
            url: SHOP_URL.into(),
        }
    }

    /// `PrivateHandshake::assembleRequest`: the query (Guzzle's `withQueryValues`) and its
    /// signature with `secret`.
    async fn register(&self, h: &Harness, secret: &str, timestamp: i64) -> (u16, Value) {
        let query = format!(
            "shop-id={}&shop-url={}&timestamp={timestamp}",
            self.id, self.url
        );
        let response = h
            .client
            .get(format!("{}/shopware/app/t/shop/register?{query}", h.base))
            .header(
                "shopware-app-signature",
                hmac_hex(secret.as_bytes(), &[query.as_bytes()]),
            )
            .header("sw-version", "6.6.10.13")
            .send()
            .await
            .expect("register");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// `AppRegistrationService::confirmRegistration`.
    async fn confirm(&self, h: &Harness, url: &str, shop_secret: &str, timestamp: i64) -> u16 {
        let body = php_json(&json!({
            "apiKey": "SWIAAPPINTEGRATION0000000000",
            "secretKey": "app-integration-secret-key",
            "timestamp": timestamp.to_string(),
            "shopUrl": self.url,
            "shopId": self.id,
        }));
        h.client
            .post(url)
            .header(
                "shopware-shop-signature",
                hmac_hex(shop_secret.as_bytes(), &[body.as_bytes()]),
            )
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("confirm")
            .status()
            .as_u16()
    }

    /// `WebhookEventMessageHandler`: the payload with a fresh `timestamp`, signed.
    async fn event(
        &self,
        h: &Harness,
        path: &str,
        event: &str,
        event_id: &str,
        shop_secret: &str,
    ) -> u16 {
        let body = php_json(&json!({
            "data": {"payload": {"order": {"id": "0189bf2a", "orderNumber": "10001"}}, "event": event},
            "source": {"url": self.url, "eventId": event_id, "shopId": self.id, "appVersion": "0.1.0"},
            "timestamp": now(),
        }));
        h.client
            .post(format!("{}{path}", h.base))
            .header(
                "shopware-shop-signature",
                hmac_hex(shop_secret.as_bytes(), &[body.as_bytes()]),
            )
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("event")
            .status()
            .as_u16()
    }
}

#[tokio::test]
async fn a_shop_registers_confirms_and_then_its_signed_events_start_the_orders_flow() {
    let mut h = start().await;
    let shop = Shop::new("shop-1");
    let now = now();

    // Refused registrations change nothing.
    let (status, body) = shop
        .register(&h, "not-the-app-secret-0000000000000000", now)
        .await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["error"].as_str().unwrap_or("").contains("signature"),
        "{body}"
    );
    let (status, body) = shop.register(&h, APP_SECRET, now - 3600).await;
    assert_eq!(status, 401, "an hour old: {body}");
    let staging = Shop {
        id: "shop-2".into(),
        url: "https://staging.shop.example.com".into(),
    };
    let (status, body) = staging.register(&h, APP_SECRET, now).await;
    assert_eq!(status, 400, "another shop: {body}");
    assert!(
        body["error"].as_str().unwrap_or("").contains(SHOP_URL),
        "the error names the shop koppel serves: {body}"
    );
    let unknown = h
        .client
        .get(format!(
            "{}/shopware/app/t/other/register?shop-id=x",
            h.base
        ))
        .send()
        .await
        .expect("send");
    assert_eq!(unknown.status().as_u16(), 404, "no app for that connection");
    let sealer = Sealer::new(APP_SECRET, "t", "shop");
    assert!(
        h.store
            .app_registration("t", "shop", &sealer)
            .await
            .expect("read")
            .is_none()
    );

    // The registration: the proof is the HMAC of shop id, shop URL and app name.
    let (status, answer) = shop.register(&h, APP_SECRET, now).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["proof"],
        hmac_hex(
            APP_SECRET.as_bytes(),
            &[shop.id.as_bytes(), SHOP_URL.as_bytes(), b"KoppelTest"]
        )
    );
    let shop_secret = answer["secret"].as_str().expect("a shop secret").to_owned();
    assert!(shop_secret.len() >= 32);
    let confirmation_url = answer["confirmation_url"].as_str().expect("url").to_owned();
    assert_eq!(
        confirmation_url,
        format!("{}/shopware/app/t/shop/confirm", h.base)
    );
    assert!(
        !h.supplied.is_complete(),
        "no credentials before the confirmation"
    );

    // A confirmation signed with anything but the shop secret is refused.
    assert_eq!(
        shop.confirm(&h, &confirmation_url, APP_SECRET, now).await,
        401
    );
    assert_eq!(
        Shop::new("shop-9")
            .confirm(&h, &confirmation_url, &shop_secret, now)
            .await,
        401,
        "a shop that did not register"
    );
    assert!(!h.supplied.is_complete());
    assert_eq!(
        shop.confirm(&h, &confirmation_url, &shop_secret, now).await,
        204
    );
    // The connection now runs with the app integration's credentials.
    assert!(h.supplied.is_complete());
    let registration = h
        .store
        .app_registration("t", "shop", &sealer)
        .await
        .expect("read")
        .expect("registered");
    assert_eq!(
        registration.credentials.expect("confirmed")["access_key_id"],
        "SWIAAPPINTEGRATION0000000000"
    );

    // Events: signed with the shop secret they start the flow; otherwise nothing.
    let path = "/shopware/app/t/shop/event";
    assert_eq!(
        shop.event(&h, path, "checkout.order.placed", "e1", APP_SECRET)
            .await,
        401,
        "signed with the app secret"
    );
    assert_eq!(
        Shop::new("shop-9")
            .event(&h, path, "checkout.order.placed", "e1", &shop_secret)
            .await,
        401,
        "another shop id"
    );
    assert!(h.asked.try_recv().is_err());
    assert_eq!(
        shop.event(&h, path, "checkout.order.placed", "e1", &shop_secret)
            .await,
        202
    );
    assert_eq!(h.asked.recv().await.as_deref(), Some("orders"));
    assert_eq!(
        shop.event(
            &h,
            path,
            "state_enter.order_transaction.state.paid",
            "e2",
            &shop_secret
        )
        .await,
        202
    );
    assert_eq!(h.asked.recv().await.as_deref(), Some("orders"));
    assert_eq!(
        shop.event(&h, path, "product.written", "e3", &shop_secret)
            .await,
        200,
        "an event not subscribed to starts nothing"
    );
    assert!(h.asked.try_recv().is_err());

    // The shop removes the app: koppel forgets its secret and credentials.
    assert_eq!(
        shop.event(&h, path, "app.deleted", "e4", &shop_secret)
            .await,
        200
    );
    assert!(!h.supplied.is_complete());
    assert!(
        h.store
            .app_registration("t", "shop", &sealer)
            .await
            .expect("read")
            .is_none()
    );
    assert_eq!(
        shop.event(&h, path, "checkout.order.placed", "e5", &shop_secret)
            .await,
        401,
        "a removed shop's events are refused"
    );
    assert!(h.asked.try_recv().is_err());
}

#[test]
fn app_manifest_writes_the_manifest_for_the_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("koppel.toml");
    let write = |public_url: &str| {
        std::fs::write(
            &config,
            format!(
                "tenant = \"shop-1\"\n{public_url}\
                 [connections.shop]\nconnector = \"shopware\"\n\
                 [connections.shop.config]\nshop_url = \"{SHOP_URL}\"\n\
                 [shopware_app.shop]\nsecret = \"{APP_SECRET}\"\nname = \"KoppelSync\"\n"
            ),
        )
        .expect("config");
    };
    let koppel = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_koppel"))
            .args(args)
            .arg("--config")
            .arg(&config)
            .current_dir(dir.path())
            .output()
            .expect("run koppel")
    };

    write("");
    let output = koppel(&["shopware", "app-manifest"]);
    assert!(!output.status.success());
    let text = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(text.contains("public_url"), "names the fix: {text}");

    write("[server]\npublic_url = \"https://koppel.example.com/\"\n");
    let output = koppel(&["shopware", "app-manifest"]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{said}");
    assert!(
        !said.contains(APP_SECRET),
        "the secret is not printed: {said}"
    );
    let path = dir.path().join("KoppelSync").join("manifest.xml");
    let xml = std::fs::read_to_string(&path).expect("written in the app's folder");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o077, 0, "only its owner reads it: {mode:o}");
    }
    for part in [
        "<name>KoppelSync</name>",
        "<registrationUrl>https://koppel.example.com/shopware/app/shop-1/shop/register</registrationUrl>",
        &format!("<secret>{APP_SECRET}</secret>"),
        "url=\"https://koppel.example.com/shopware/app/shop-1/shop/event\" event=\"checkout.order.placed\"",
        "event=\"state_enter.order_transaction.state.paid\"",
        "event=\"app.deleted\"",
        "<read>order</read>",
        "<create>product</create>",
        "<update>order_delivery</update>",
        "<delete>product_category</delete>",
    ] {
        assert!(xml.contains(part), "{part} in\n{xml}");
    }
}
