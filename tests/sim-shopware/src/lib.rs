//! A stateful simulator of the Shopware 6 Admin API (6.4 to 6.7) for koppel's tests, demo
//! and benchmarks, built from the real OpenAPI files, state machines and API notes in
//! `../shared/reference/shopware/`.
//!
//! Start one with [`ShopwareSimulator::start`]; it listens on `127.0.0.1` on a random port.
//! The handle reads and changes the shop's state, places storefront orders, expires tokens,
//! injects faults and reports schema violations.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use koppel_sim_shopware::{ShopwareOptions, ShopwareSimulator, Version};
//! let sim = ShopwareSimulator::start(ShopwareOptions {
//!     version: Version::V6_6,
//!     products: 100,
//!     validate: true,
//!     ..ShopwareOptions::default()
//! })
//! .await?;
//! println!("{} {} {}", sim.url(), sim.client_id(), sim.client_secret());
//! # Ok(()) }
//! ```

mod app;
mod auth;
mod criteria;
mod entities;
mod errors;
mod http;
mod ids;
mod model;
mod read;
mod schema;
mod seed;
mod shop;
mod state;
mod storefront;
mod sync;
mod write;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use koppel_sim_faults::Faults;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use app::{AppInfo, AppManifest, Delivery, Webhook};
pub use ids::Id;
pub use schema::{Direction, Violation};
pub use seed::ShopIds;
pub use storefront::{OrderCustomer, OrderLine, PlacedOrder, StorefrontOrder};

use crate::criteria::Criteria;
use crate::http::{App, Inner};
use crate::read::View;
use crate::shop::Shop;

/// The Shopware version the simulator behaves as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Version {
    V6_4,
    V6_5,
    V6_6,
    V6_7,
}

impl Version {
    pub const ALL: [Version; 4] = [Version::V6_4, Version::V6_5, Version::V6_6, Version::V6_7];

    /// The full version `/api/_info/version` reports (the version of the OpenAPI file).
    pub fn full(self) -> &'static str {
        match self {
            Version::V6_4 => "6.4.20.2",
            Version::V6_5 => "6.5.6.1",
            Version::V6_6 => "6.6.10.13",
            Version::V6_7 => "6.7.9.1",
        }
    }

    /// The file name of this version's OpenAPI document in the reference folder.
    pub fn openapi_file(self) -> String {
        format!("adminapi-{}.json", self.full())
    }

    /// 6.6+: placing an order lowers `stock`, `availableStock` mirrors it.
    pub fn realtime_stock(self) -> bool {
        self >= Version::V6_6
    }

    /// 6.5+: one-transaction sync with the flat answer, FK resolvers, delete by criteria.
    pub fn sync_resolvers(self) -> bool {
        self >= Version::V6_5
    }

    /// 6.7: the wider set of sync FK resolvers (`currency.iso_code`, `tax.tax_rate`, …).
    pub fn all_resolvers(self) -> bool {
        self >= Version::V6_7
    }
}

impl FromStr for Version {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> anyhow::Result<Version> {
        let text = text.trim();
        Version::ALL
            .into_iter()
            .find(|v| v.full().starts_with(text) || text.starts_with(&v.full()[..3]))
            .with_context(|| format!("unknown Shopware version {text:?}; use 6.4, 6.5, 6.6 or 6.7"))
    }
}

/// How to start a simulator.
#[derive(Clone, Debug)]
pub struct ShopwareOptions {
    pub version: Version,
    /// Drives every generated id and value: the same seed gives the same shop.
    pub seed: u64,
    /// Product rows to generate (parents and variants count alike).
    pub products: usize,
    /// Share (0.0 to 1.0) of generated products that belong to variant families.
    pub variant_share: f64,
    pub customers: usize,
    pub orders: usize,
    /// The integration's access key id and secret (client_credentials grant).
    pub client_id: String,
    pub client_secret: String,
    /// The admin user (password grant).
    pub admin_user: String,
    pub admin_password: String,
    /// Access-token lifetime, reported as `expires_in`.
    pub token_ttl: Duration,
    /// Check every request and response body against the version's OpenAPI file and log
    /// violations (tests turn this on; benchmarks leave it off).
    pub validate: bool,
    /// The `shopware` reference folder; default: `KOPPEL_REFERENCE_DIR`/shopware, else
    /// `../shared/reference/shopware` beside the repository.
    pub reference_dir: Option<PathBuf>,
    /// What one synchronous indexing of a sync's written data costs (the sync answers that
    /// much later). 6.4 writes and indexes each record of a sync on its own
    /// (`SyncService::upsertRecords`), 6.5+ a whole sync at once; nothing with
    /// `indexing-behavior: use-queue-indexing` or `disable-indexing`. Zero by default;
    /// benchmarks set it to model a real shop.
    pub index_delay: Duration,
}

impl Default for ShopwareOptions {
    fn default() -> Self {
        ShopwareOptions {
            version: Version::V6_6,
            seed: 1,
            products: 0,
            variant_share: 0.2,
            customers: 0,
            orders: 0,
            client_id: "SWIAKOPPELSIMULATOR0000000000".into(),
            client_secret: "a29wcGVsLXNpbXVsYXRvci1zZWNyZXQ".into(),
            admin_user: "admin".into(),
            admin_password: "shopware".into(),
            token_ttl: Duration::from_secs(600),
            validate: false,
            reference_dir: None,
            index_delay: Duration::ZERO,
        }
    }
}

/// A running simulator. Dropping it stops the server.
pub struct ShopwareSimulator {
    app: App,
    addr: SocketAddr,
    ids: ShopIds,
    client_id: String,
    client_secret: String,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl ShopwareSimulator {
    /// Builds the shop and serves it on `127.0.0.1` at a random port.
    pub async fn start(options: ShopwareOptions) -> anyhow::Result<ShopwareSimulator> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding 127.0.0.1")?;
        ShopwareSimulator::serve(options, listener).await
    }

    /// Builds the shop and serves it on `listener` (for the `koppel-sim` binary).
    pub async fn serve(
        options: ShopwareOptions,
        listener: TcpListener,
    ) -> anyhow::Result<ShopwareSimulator> {
        let addr = listener.local_addr()?;
        let dir = schema::reference_dir(options.reference_dir.as_deref());
        let version = options.version;
        let (shop, ids) = tokio::task::spawn_blocking({
            let options = options.clone();
            move || build_shop(&options, &dir)
        })
        .await??;
        let reference = shop.reference.clone();
        let app: App = Arc::new(Inner {
            shop: RwLock::new(shop),
            auth: Mutex::new(auth::Auth::new(
                options.client_id.clone(),
                options.client_secret.clone(),
                options.admin_user.clone(),
                options.admin_password.clone(),
                options.token_ttl,
            )),
            version,
            validate: options.validate,
            reference,
            counts: Mutex::new(BTreeMap::new()),
            violations: Mutex::new(Vec::new()),
            validated: Mutex::new(0),
            unvalidated: Mutex::new(BTreeMap::new()),
            faults: Faults::new(options.seed),
            base_url: RwLock::new(format!("http://{addr}")),
            apps: app::Apps::new(),
            index_delay: options.index_delay,
            indexings: std::sync::atomic::AtomicU64::new(0),
        });
        let router = http::router(app.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = koppel_sim_faults::serve(listener, router, async {
                let _ = rx.await;
            })
            .await;
            if let Err(error) = served {
                tracing::error!(%error, "Shopware simulator stopped.");
            }
        });
        tracing::info!(url = %format!("http://{addr}"), version = version.full(), "Shopware simulator listening.");
        Ok(ShopwareSimulator {
            app,
            addr,
            ids,
            client_id: options.client_id,
            client_secret: options.client_secret,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT` (the Admin API is under `/api`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn version(&self) -> Version {
        self.app.version
    }

    /// The integration's access key id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The integration's secret access key.
    pub fn client_secret(&self) -> &str {
        &self.client_secret
    }

    /// The ids of the base data (sales channel, taxes, countries, methods, …).
    pub fn ids(&self) -> &ShopIds {
        &self.ids
    }

    /// The fault injector wrapped around the whole server.
    pub fn faults(&self) -> Faults {
        self.app.faults.clone()
    }

    /// Whether the version's OpenAPI file was loaded (schema checks and validation on).
    pub fn schema_loaded(&self) -> bool {
        self.app.reference.is_some()
    }

    /// Every schema violation seen so far.
    pub fn violations(&self) -> Vec<Violation> {
        self.app
            .violations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Violations in responses: simulator bugs; tests assert this is empty.
    pub fn response_violations(&self) -> Vec<Violation> {
        self.violations()
            .into_iter()
            .filter(|v| v.direction == Direction::Response)
            .collect()
    }

    /// Violations in requests: the client sent what the OpenAPI file does not describe.
    pub fn request_violations(&self) -> Vec<Violation> {
        self.violations()
            .into_iter()
            .filter(|v| v.direction == Direction::Request)
            .collect()
    }

    /// Request and response bodies checked against a schema of the OpenAPI file so far.
    pub fn validated_bodies(&self) -> u64 {
        *self.app.validated.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bodies that went unchecked because the OpenAPI file has no schema for them, per
    /// `"request POST /api/oauth/token"` or `"response 200 GET /api/_info/version"` (ids as
    /// `{id}`). Counted in validation mode only.
    pub fn unvalidated_bodies(&self) -> BTreeMap<String, u64> {
        self.app
            .unvalidated
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn clear_violations(&self) {
        self.app
            .violations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Every token issued so far stops working; the next request with one gets a 401.
    pub fn expire_tokens(&self) {
        self.app
            .auth
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .expire_all();
    }

    /// Requests per route, e.g. `"POST /api/search/product"` or `"GET /api/product/{id}"`.
    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        self.app
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn request_count(&self, route: &str) -> u64 {
        self.request_counts().get(route).copied().unwrap_or(0)
    }

    /// How often a sync made the shop index written data within the request: once per record
    /// on 6.4, once per sync from 6.5; never with `indexing-behavior: use-queue-indexing` or
    /// `disable-indexing`.
    pub fn synchronous_indexings(&self) -> u64 {
        self.app
            .indexings
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Requests to `POST /api/oauth/token`.
    pub fn token_requests(&self) -> u64 {
        self.request_count("POST /api/oauth/token")
    }

    // --- Reading state ----------------------------------------------------------------------

    /// Rows of an entity (`"product"`, `"order"`, …).
    pub fn count(&self, entity: &str) -> usize {
        entities::index_of(entity).map_or(0, |e| self.app.shop_read().table(e).len())
    }

    /// One row as plain JSON, with associations (`{"lineItems": {}}` style, as in criteria).
    pub fn entity(&self, entity: &str, id: &str, associations: Value) -> Option<Value> {
        let e = entities::index_of(entity)?;
        let id = Id::parse(id)?;
        let shop = self.app.shop_read();
        shop.table(e).get(id)?;
        let criteria = Criteria::parse(
            &shop,
            e,
            &serde_json::json!({ "associations": associations }),
        )
        .ok()?;
        let view = View {
            inheritance: false,
            root: &criteria,
        };
        Some(shop.render(&view, e, id, &criteria))
    }

    /// A product by its number, with its options, visibilities and categories.
    pub fn product_by_number(&self, number: &str) -> Option<Value> {
        let id = self.app.shop_read().find_by(0, "productNumber", number)?;
        self.entity("product", &id.hex(), serde_json::json!({"options": {}, "visibilities": {}, "categories": {}, "configuratorSettings": {}}))
    }

    /// Every product (plain JSON, without associations), in insertion order.
    pub fn products(&self) -> Vec<Value> {
        self.all("product", serde_json::json!({}))
    }

    /// Every order with line items, deliveries, transactions, customer, addresses and states.
    pub fn orders(&self) -> Vec<Value> {
        self.all("order", storefront::order_associations())
    }

    fn all(&self, entity: &str, associations: Value) -> Vec<Value> {
        let Some(e) = entities::index_of(entity) else {
            return Vec::new();
        };
        let shop = self.app.shop_read();
        let Ok(criteria) = Criteria::parse(
            &shop,
            e,
            &serde_json::json!({ "associations": associations }),
        ) else {
            return Vec::new();
        };
        let view = View {
            inheritance: false,
            root: &criteria,
        };
        shop.table(e)
            .iter()
            .map(|(_, id, _)| shop.render(&view, e, id, &criteria))
            .collect()
    }

    // --- Changing state ---------------------------------------------------------------------

    /// Moves an order to a state directly (like an admin would), with the version's stock
    /// effects and a history row.
    pub fn set_order_state(&self, order_id: &str, state: &str) -> anyhow::Result<()> {
        self.force("order", order_id, state)
    }

    /// Sets the state of an order's newest transaction (`paid`, `cancelled`, …).
    pub fn set_payment_state(&self, order_id: &str, state: &str) -> anyhow::Result<()> {
        let transaction = self.child_of(order_id, "order_transaction")?;
        self.force("order_transaction", &transaction, state)
    }

    /// Sets the state of an order's delivery (`shipped`, …).
    pub fn set_delivery_state(&self, order_id: &str, state: &str) -> anyhow::Result<()> {
        let delivery = self.child_of(order_id, "order_delivery")?;
        self.force("order_delivery", &delivery, state)
    }

    fn child_of(&self, order_id: &str, entity: &str) -> anyhow::Result<String> {
        let order = Id::parse(order_id).context("order id")?;
        let shop = self.app.shop_read();
        shop.referencing(Shop::entity_index(entity), "orderId", order)
            .last()
            .map(Id::hex)
            .with_context(|| format!("order {order_id} has no {entity}"))
    }

    fn force(&self, entity: &str, id: &str, state: &str) -> anyhow::Result<()> {
        let id = Id::parse(id).context("id")?;
        self.app
            .shop_write()
            .force_state(entity, id, state)
            .map_err(|e| anyhow::anyhow!("{}: {}", e.code, e.detail))?;
        app::Apps::pump(&self.app);
        Ok(())
    }

    /// Sets a product's stock, as a shop owner editing it in the Administration would.
    pub fn set_stock(&self, number: &str, stock: i64) -> anyhow::Result<()> {
        self.edit_product_field(number, "stock", Value::from(stock))
    }

    /// Changes one field of a product through the normal write path (checks included), as
    /// a shop owner's edit in the Administration.
    pub fn edit_product_field(
        &self,
        number: &str,
        field: &str,
        value: Value,
    ) -> anyhow::Result<()> {
        let mut shop = self.app.shop_write();
        let id = shop
            .find_by(0, "productNumber", number)
            .with_context(|| format!("no product {number}"))?;
        let mut payload = serde_json::Map::new();
        payload.insert("id".into(), Value::String(id.hex()));
        payload.insert(field.into(), value);
        shop.store.begin();
        let mut batch = write::Batch::default();
        shop.write(
            &mut batch,
            0,
            &Value::Object(payload),
            write::Mode::Update,
            "/0",
            None,
        );
        if let Some(error) = batch.errors.first() {
            shop.store.rollback();
            anyhow::bail!("{}: {} at {:?}", error.code, error.detail, error.pointer);
        }
        shop.store.commit();
        Ok(())
    }

    /// Creates a row through the normal write path (checks included), as a shop owner in the
    /// Administration would; its id.
    pub fn create(&self, entity: &str, payload: Value) -> anyhow::Result<String> {
        let e = entities::index_of(entity).with_context(|| format!("no entity {entity}"))?;
        let mut shop = self.app.shop_write();
        shop.store.begin();
        let mut batch = write::Batch::default();
        let id = shop.write(&mut batch, e, &payload, write::Mode::Create, "/0", None);
        match (id, batch.errors.first()) {
            (Some(id), None) => {
                shop.store.commit();
                Ok(id.hex())
            }
            (_, error) => {
                shop.store.rollback();
                match error {
                    Some(error) => {
                        anyhow::bail!("{}: {} at {:?}", error.code, error.detail, error.pointer)
                    }
                    None => anyhow::bail!("{entity} was not written"),
                }
            }
        }
    }

    /// Takes a privilege (`"product_category:delete"`) from the integration's role, as a shop
    /// owner editing the role would: writes that need it are refused with
    /// `FRAMEWORK__MISSING_PRIVILEGE_ERROR` (`AclWriteValidator`).
    pub fn revoke(&self, privilege: &str) {
        let mut shop = self.app.shop_write();
        if !shop.revoked.iter().any(|p| p == privilege) {
            shop.revoked.push(privilege.to_string());
        }
    }

    /// Places an order the way the storefront checkout does (see [`StorefrontOrder`]);
    /// installed apps hear of it (`checkout.order.placed`).
    pub fn place_order(&self, order: &StorefrontOrder) -> anyhow::Result<PlacedOrder> {
        let placed = {
            let mut shop = self.app.shop_write();
            storefront::place(&mut shop, &self.ids, order)?
        };
        app::Apps::order_placed(&self.app, &placed.id);
        app::Apps::pump(&self.app);
        Ok(placed)
    }

    // --- Apps -------------------------------------------------------------------------------

    /// The shop's id, as apps know it (`source.shopId`).
    pub fn shop_id(&self) -> &str {
        &self.app.apps.shop_id
    }

    /// Installs an app from its `manifest.xml` as Shopware does: the registration handshake
    /// with the app's backend, the app's integration, then its webhooks. An error is
    /// Shopware's ("App registration for \"X\" failed: …"); the app is then not installed.
    pub async fn install_app(&self, manifest_xml: &str) -> anyhow::Result<AppInfo> {
        app::Apps::install(&self.app, manifest_xml).await
    }

    /// Removes an app: `app.deleted` goes to its backend first; its integration is deleted.
    pub async fn uninstall_app(&self, name: &str) -> anyhow::Result<()> {
        app::Apps::uninstall(&self.app, name).await
    }

    /// The installed apps.
    pub fn apps(&self) -> Vec<AppInfo> {
        self.app.apps.installed()
    }

    /// Every webhook delivery attempt so far.
    pub fn app_deliveries(&self) -> Vec<Delivery> {
        self.app.apps.deliveries()
    }

    /// Webhook delivery attempts as they happen.
    pub fn subscribe_app_deliveries(&self) -> tokio::sync::broadcast::Receiver<Delivery> {
        self.app.apps.subscribe()
    }

    /// The wait before the first retry of a failed webhook (Shopware: 1 s, doubling, three
    /// retries).
    pub fn set_app_retry_delay(&self, delay: Duration) {
        self.app.apps.set_retry_delay(delay);
    }

    /// A test hook: sign webhooks with `secret` instead of the app's (none: the app's).
    pub fn sign_app_events_with(&self, secret: Option<&str>) {
        self.app.apps.sign_with(secret.map(str::to_owned));
    }

    /// Stops the server and waits for it.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ShopwareSimulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

fn build_shop(options: &ShopwareOptions, dir: &std::path::Path) -> anyhow::Result<(Shop, ShopIds)> {
    let reference = schema::load(dir, options.version);
    let machines = state::Machines::load(dir);
    let mut shop = Shop::new(options.version, options.seed, reference, machines);
    let ids = seed::seed(&mut shop, options)?;
    Ok((shop, ids))
}
