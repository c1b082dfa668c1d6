//! A faithful, stateful simulator of MplusKASSA's SOAP API (MplusQapi 67.1.3) for koppel's
//! tests, demo and benchmarks. Built from `../shared/reference/mplus/` (the real WSDL and the
//! API notes), which it reads at run time: with it, `GET /?wsdl` serves the real WSDL and every
//! request and response can be validated against the embedded schema by libxml2; without it
//! the simulator still runs, unvalidated.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use koppel_sim_mplus::{MplusOptions, MplusSimulator};
//! let sim = MplusSimulator::start(MplusOptions { products: 500, validate: true, ..Default::default() }).await?;
//! let endpoint = format!("{}/?ident={}&secret={}", sim.url(), sim.ident(), sim.secret());
//! # let _ = endpoint; Ok(()) }
//! ```

mod clock;
mod generate;
mod model;
mod ops;
mod schema;
mod server;
mod xml;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use anyhow::Context as _;
use koppel_sim_faults::Faults;

pub use generate::{SHIPPING_ARTICLE, ean13};
pub use model::{
    Address, Branch, CancelState, CompleteState, Contact, DeliveryState, Employee, Invoice,
    Markers, Order, OrderLine, Payment, Relation, StateError, StockLevel,
};
pub use ops::OPERATIONS;
pub use schema::default_reference_dir;
pub use server::{Direction, Omission, Violation};
pub use xml::Element;

/// A request envelope the way the official clients write it (`SOAP-ENV` envelope, empty
/// Header, `ns1` for `urn:mplusqapi`) around a payload that uses the `ns1` prefix.
pub fn request_envelope(payload: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<SOAP-ENV:Envelope \
         xmlns:SOAP-ENV=\"http://schemas.xmlsoap.org/soap/envelope/\" \
         xmlns:ns1=\"urn:mplusqapi\"><SOAP-ENV:Header/><SOAP-ENV:Body>{payload}\
         </SOAP-ENV:Body></SOAP-ENV:Envelope>"
    )
}

/// The payload of a SOAP response (the Body's first child: an operation response or a
/// `Fault`).
pub fn response_payload(body: &[u8]) -> Result<Element, String> {
    xml::body_payload(Element::parse(body)?)
}

use model::{
    Article, ArticleTexts, PaymentInput, State, StockChangeKind, excl_from_incl, vat_percentage,
};
use server::Inner;

/// How to start a simulator.
#[derive(Clone, Debug)]
pub struct MplusOptions {
    /// Seed of the data generator (and of generated ids).
    pub seed: u64,
    /// Number of generated products (articles are more: families have 2 to 8).
    pub products: usize,
    /// Share of products that are size/colour families (0.0 to 1.0).
    pub variant_share: f64,
    /// Number of generated relations (persons and companies).
    pub relations: usize,
    /// Number of branches (each with workplaces and its own stock).
    pub branches: usize,
    /// Number of orders already in the till (some delivered, some paid and invoiced).
    pub orders: usize,
    /// The API credentials clients must send as `ident`/`secret` query parameters.
    pub ident: String,
    pub secret: String,
    /// Validate every request and response against the WSDL's schema (needs the reference).
    pub validate: bool,
    /// The folder holding `MplusQapi.wsdl`; `None` looks in `KOPPEL_REFERENCE_DIR/mplus` or
    /// `../shared/reference/mplus` beside the repository.
    pub reference_dir: Option<PathBuf>,
    /// The first value of every sync marker counter (a shop with history starts high).
    pub first_sync_marker: u64,
    /// The hard cap on items per marker-paged read, whatever the client asks.
    pub max_page: usize,
    /// The `faultstring` for wrong credentials (the real text is unknown).
    pub auth_faultstring: String,
}

impl Default for MplusOptions {
    fn default() -> Self {
        Self {
            seed: 1,
            products: 100,
            variant_share: 0.3,
            relations: 50,
            branches: 2,
            orders: 0,
            ident: "koppel".into(),
            secret: "sim-secret".into(),
            validate: false,
            reference_dir: None,
            first_sync_marker: 1,
            max_page: 1000,
            auth_faultstring: "Authentication failed".into(),
        }
    }
}

/// A new product for [`MplusSimulator::add_product`].
#[derive(Clone, Debug, Default)]
pub struct NewProduct {
    pub number: i64,
    pub description: String,
    pub extra_text: String,
    pub group_numbers: Vec<i32>,
    pub articles: Vec<NewArticle>,
}

/// A new article; prices in cents (`price_excl` derived from `price_incl` when `None`).
#[derive(Clone, Debug)]
pub struct NewArticle {
    pub number: i64,
    pub ext_id: String,
    /// Defaults to the article number.
    pub plu: Option<String>,
    pub description: String,
    pub colour: String,
    pub size: String,
    pub invoice_text: Option<String>,
    pub receipt_text: Option<String>,
    pub display_text: Option<String>,
    pub barcode: String,
    pub turnover_group: i32,
    pub vat_code: i32,
    pub purchase_price: i64,
    pub price_incl: i64,
    pub price_excl: Option<i64>,
    pub webshop: bool,
    pub active: bool,
    pub stock_article: bool,
    pub category_ids: Vec<i32>,
}

impl Default for NewArticle {
    fn default() -> Self {
        Self {
            number: 0,
            ext_id: String::new(),
            plu: None,
            description: String::new(),
            colour: String::new(),
            size: String::new(),
            invoice_text: None,
            receipt_text: None,
            display_text: None,
            barcode: String::new(),
            turnover_group: 10,
            vat_code: 1,
            purchase_price: 0,
            price_incl: 0,
            price_excl: None,
            webshop: true,
            active: true,
            stock_article: true,
            category_ids: Vec::new(),
        }
    }
}

/// A change to an article for [`MplusSimulator::change_article`]; `None` keeps the value.
#[derive(Clone, Debug, Default)]
pub struct ArticleChange {
    pub description: Option<String>,
    /// Cents incl. VAT; the price excl. VAT follows.
    pub price_incl: Option<i64>,
    pub active: Option<bool>,
    pub webshop: Option<bool>,
    pub barcode: Option<String>,
    pub vat_code: Option<i32>,
}

/// A change to a product itself (not its articles) for [`MplusSimulator::change_product`];
/// `None` keeps the value.
#[derive(Clone, Debug, Default)]
pub struct ProductChange {
    pub description: Option<String>,
    pub extra_text: Option<String>,
    pub group_numbers: Option<Vec<i32>>,
}

/// An article as the till holds it, with its product: what tests compare a shop against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArticleView {
    pub number: i64,
    pub product_number: i64,
    pub product_description: String,
    /// Articles of the product (more than one: a size/colour family).
    pub product_articles: usize,
    pub description: String,
    pub colour: String,
    pub size: String,
    pub barcode: String,
    /// Cents.
    pub price_incl: i64,
    pub price_excl: i64,
    pub vat_code: i32,
    /// The VAT code's percentage in the branch's table.
    pub vat_percentage: i64,
    pub turnover_group: i32,
    pub active: bool,
    pub webshop: bool,
    pub stock_article: bool,
    /// The product's article groups.
    pub group_numbers: Vec<i32>,
    /// Per group of the product, the group names from the top group down.
    pub group_paths: Vec<Vec<String>>,
}

/// A running simulator. Dropping it stops the server.
pub struct MplusSimulator {
    inner: Arc<Inner>,
    faults: Faults,
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MplusSimulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MplusSimulator {
    /// Generates the data and serves on `127.0.0.1` with a random port.
    pub async fn start(options: MplusOptions) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding 127.0.0.1:0")?;
        Self::start_on(listener, options).await
    }

    /// Generates the data and serves on a listener the caller bound.
    pub async fn start_on(
        listener: tokio::net::TcpListener,
        options: MplusOptions,
    ) -> anyhow::Result<Self> {
        let addr = listener.local_addr()?;
        let seed = options.seed;
        let inner = tokio::task::spawn_blocking(move || build(options)).await??;
        let inner = Arc::new(inner);
        let faults = Faults::new(seed);
        // A throttled SOAP client gets a SOAP fault, like every other refusal of this server
        // (the notes know no rate limit of the real one: section 10, gap 9).
        faults.set_throttle_body(
            "text/xml; charset=utf-8",
            xml::SoapFault::server("Too many requests: try again later.").to_envelope(),
        );
        let router = axum::Router::new()
            .fallback(server::handle)
            .with_state(inner.clone());
        let router = faults.layer(router);
        let task = tokio::spawn(async move {
            if let Err(error) =
                koppel_sim_faults::serve(listener, router, std::future::pending()).await
            {
                tracing::error!(%error, "The MplusKASSA simulator stopped.");
            }
        });
        tracing::info!(%addr, validate = inner.validate && inner.reference.is_some() && schema::Validator::AVAILABLE, "MplusKASSA simulator listening.");
        Ok(Self {
            inner,
            faults,
            addr,
            task,
        })
    }

    /// `http://127.0.0.1:PORT` (append `/?ident=..&secret=..` for SOAP calls).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The full SOAP endpoint with credentials.
    pub fn endpoint(&self) -> String {
        format!(
            "{}/?ident={}&secret={}",
            self.url(),
            self.inner.ident,
            self.inner.secret
        )
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn ident(&self) -> &str {
        &self.inner.ident
    }

    pub fn secret(&self) -> &str {
        &self.inner.secret
    }

    /// The fault injection handle of this server.
    pub fn faults(&self) -> Faults {
        self.faults.clone()
    }

    /// Whether requests and responses are being validated against the schema.
    pub fn validating(&self) -> bool {
        self.inner.validate && self.inner.reference.is_some() && schema::Validator::AVAILABLE
    }

    /// Requests seen for an operation (counted after the credentials check).
    pub fn request_count(&self, operation: &str) -> u64 {
        self.lock_counts().get(operation).copied().unwrap_or(0)
    }

    /// Requests seen per operation.
    pub fn request_counts(&self) -> HashMap<String, u64> {
        self.lock_counts().clone()
    }

    fn lock_counts(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.inner.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every schema violation seen so far, requests and responses.
    pub fn violations(&self) -> Vec<Violation> {
        self.inner
            .violations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Requests that broke the schema as sent but passed with what real clients omit filled
    /// in (API-NOTES section 2): tolerated, but a sign the client leaves something out.
    pub fn omissions(&self) -> Vec<Omission> {
        self.inner
            .omissions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Request and response payloads validated against the schema so far (0 when not
    /// validating).
    pub fn validated_bodies(&self) -> u64 {
        self.inner
            .validated
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Panics, listing them, if the simulator wrote any response the schema rejects, or if a
    /// request broke the schema (pass the number of invalid requests a test sent on purpose).
    pub fn assert_no_violations(&self, expected_invalid_requests: usize) {
        let violations = self.violations();
        let responses: Vec<_> = violations
            .iter()
            .filter(|v| v.direction == Direction::Response)
            .collect();
        assert!(
            responses.is_empty(),
            "the simulator wrote responses that violate the schema: {responses:#?}"
        );
        let requests = violations.len() - responses.len();
        assert_eq!(
            requests, expected_invalid_requests,
            "invalid requests: {violations:#?}"
        );
        if self.validating() {
            assert!(
                self.validated_bodies() > 0,
                "validation is on, yet no request or response was validated"
            );
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.inner.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.inner.state.write().unwrap_or_else(|p| p.into_inner())
    }

    // ----- catalogue -----

    /// Number of products and of articles.
    pub fn catalogue_size(&self) -> (usize, usize) {
        let state = self.read();
        (state.products.len(), state.articles.len())
    }

    /// Every article number, in catalogue order.
    pub fn article_numbers(&self) -> Vec<i64> {
        self.read().articles.iter().map(|a| a.number).collect()
    }

    /// Article numbers of a product (empty when unknown).
    pub fn articles_of(&self, product: i64) -> Vec<i64> {
        let state = self.read();
        state
            .product_index
            .get(&product)
            .map(|&p| {
                state.products[p as usize]
                    .articles
                    .iter()
                    .map(|&i| state.articles[i as usize].number)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Products with more than one article (size/colour families).
    pub fn variant_products(&self) -> Vec<i64> {
        let state = self.read();
        state
            .products
            .iter()
            .filter(|p| p.articles.len() > 1)
            .map(|p| p.number)
            .collect()
    }

    /// An article with its product and group names, as the till holds it.
    pub fn article_view(&self, number: i64) -> Option<ArticleView> {
        let state = self.read();
        let idx = *state.article_index.get(&number)?;
        let article = state.articles.get(idx as usize)?;
        let product = state.products.get(article.product as usize)?;
        let path = |group: i32| {
            let mut names = Vec::new();
            let mut at = Some(group);
            while let Some(number) = at {
                let Some(node) = state.groups.iter().find(|g| g.number == number) else {
                    break;
                };
                names.push(node.name.clone());
                at = node.parent;
                if names.len() > 32 {
                    break;
                }
            }
            names.reverse();
            names
        };
        Some(ArticleView {
            number: article.number,
            product_number: product.number,
            product_description: product.description.to_string(),
            product_articles: product.articles.len(),
            description: article.description.to_string(),
            colour: article.colour.to_string(),
            size: article.size.to_string(),
            barcode: article.barcode.to_string(),
            price_incl: article.price_incl,
            price_excl: article.price_excl,
            vat_code: article.vat_code,
            vat_percentage: vat_percentage(article.vat_code),
            turnover_group: article.turnover_group,
            active: article.active,
            webshop: article.webshop,
            stock_article: article.stock_article,
            group_numbers: product.groups.iter().map(|(g, _)| *g).collect(),
            group_paths: product.groups.iter().map(|(g, _)| path(*g)).collect(),
        })
    }

    /// An article's current sync marker.
    pub fn article_marker(&self, number: i64) -> Option<u64> {
        self.read().article(number).map(|a| a.sync_marker)
    }

    /// The current value of every sync marker counter.
    pub fn sync_markers(&self) -> Markers {
        self.read().markers.clone()
    }

    /// Adds a product; its articles get new sync markers and (empty) stock in every branch.
    pub fn add_product(&self, product: NewProduct) -> Result<(), StateError> {
        let now = clock::now();
        let groups: Box<[(i32, i32)]> = product.group_numbers.iter().map(|&g| (g, 1)).collect();
        let articles = product
            .articles
            .into_iter()
            .map(|a| {
                let texts = ArticleTexts {
                    plu: a.plu.map(Into::into),
                    invoice_text: a.invoice_text.map(Into::into),
                    receipt_text: a.receipt_text.map(Into::into),
                    display_text: a.display_text.map(Into::into),
                    extra_text: None,
                    category_ids: a.category_ids,
                };
                let has_texts = texts.plu.is_some()
                    || texts.invoice_text.is_some()
                    || texts.receipt_text.is_some()
                    || texts.display_text.is_some()
                    || !texts.category_ids.is_empty();
                Article {
                    number: a.number,
                    product: 0,
                    sync_marker: 0,
                    created: now,
                    changed: now,
                    description: a.description.into(),
                    ext_id: a.ext_id.into(),
                    colour: a.colour.into(),
                    size: a.size.into(),
                    barcode: a.barcode.into(),
                    texts: has_texts.then(|| Box::new(texts)),
                    purchase_price: a.purchase_price,
                    price_incl: a.price_incl,
                    price_excl: a.price_excl.unwrap_or_else(|| {
                        excl_from_incl(a.price_incl, vat_percentage(a.vat_code))
                    }),
                    turnover_group: a.turnover_group,
                    vat_code: a.vat_code,
                    barcode_id: 0,
                    active: a.active,
                    webshop: a.webshop,
                    stock_article: a.stock_article,
                }
            })
            .collect();
        self.write().insert_product(
            product.number,
            product.description.into(),
            product.extra_text.into(),
            groups,
            articles,
            now,
        )
    }

    /// Changes an article; it gets a new sync marker, which is returned.
    pub fn change_article(&self, number: i64, change: ArticleChange) -> Result<u64, StateError> {
        let mut state = self.write();
        let idx = *state
            .article_index
            .get(&number)
            .ok_or(StateError::UnknownArticle(number))?;
        let article = &mut state.articles[idx as usize];
        if let Some(d) = change.description {
            article.description = d.into();
        }
        if let Some(code) = change.vat_code {
            article.vat_code = code;
        }
        if let Some(price) = change.price_incl {
            article.price_incl = price;
        }
        article.price_excl = excl_from_incl(article.price_incl, vat_percentage(article.vat_code));
        if let Some(active) = change.active {
            article.active = active;
        }
        if let Some(webshop) = change.webshop {
            article.webshop = webshop;
        }
        if let Some(barcode) = change.barcode {
            article.barcode = barcode.into();
        }
        Ok(state.touch_article(idx, clock::now()))
    }

    /// Changes a product itself (description, extra text, groups): the product gets a new
    /// sync marker, which is returned; its articles keep theirs.
    pub fn change_product(&self, number: i64, change: ProductChange) -> Result<u64, StateError> {
        let mut state = self.write();
        let idx = *state
            .product_index
            .get(&number)
            .ok_or(StateError::UnknownProduct(number))?;
        let product = &mut state.products[idx as usize];
        if let Some(d) = change.description {
            product.description = d.into();
        }
        if let Some(t) = change.extra_text {
            product.extra_text = t.into();
        }
        if let Some(groups) = change.group_numbers {
            product.groups = groups.iter().map(|&g| (g, 1)).collect();
        }
        Ok(state.touch_product(idx))
    }

    /// A product's own sync marker.
    pub fn product_marker(&self, number: i64) -> Option<u64> {
        let state = self.read();
        let idx = *state.product_index.get(&number)?;
        state.products.get(idx as usize).map(|p| p.sync_marker)
    }

    // ----- stock -----

    /// Sets free and reserved stock (whole units) of an article in a branch; returns the new
    /// stock marker.
    pub fn set_stock(
        &self,
        article: i64,
        branch: i32,
        free: i64,
        reserved: i64,
    ) -> Result<u64, StateError> {
        self.write().set_stock_levels(
            article,
            branch,
            free * model::MILLI,
            reserved * model::MILLI,
            clock::now(),
        )
    }

    /// Sets the stock on purchase orders (whole units).
    pub fn set_incoming(
        &self,
        article: i64,
        branch: i32,
        incoming: i64,
    ) -> Result<u64, StateError> {
        self.write()
            .set_incoming(article, branch, incoming * model::MILLI, clock::now())
    }

    /// Stock of an article in a branch.
    pub fn stock(&self, article: i64, branch: i32) -> Option<StockLevel> {
        self.read().stock_level(article, branch)
    }

    /// A correction at the till: adds `amount` (whole units, negative takes away).
    pub fn correct_stock(&self, article: i64, branch: i32, amount: i64) -> Result<u64, StateError> {
        self.write().adjust_stock(
            article,
            branch,
            amount * model::MILLI,
            StockChangeKind::Correction,
            None,
            None,
            clock::now(),
        )
    }

    // ----- relations -----

    /// Adds a relation (number 0 assigns one); returns its number.
    pub fn add_relation(&self, relation: Relation) -> Result<i64, StateError> {
        self.write().insert_relation(relation, clock::now())
    }

    pub fn relations(&self) -> Vec<Relation> {
        self.read().relations.clone()
    }

    pub fn relation(&self, number: i64) -> Option<Relation> {
        self.read().relation(number).cloned()
    }

    // ----- orders and invoices -----

    pub fn orders(&self) -> Vec<Order> {
        self.read().orders.clone()
    }

    pub fn order(&self, id: &str) -> Option<Order> {
        let state = self.read();
        state.order_idx(id).map(|i| state.orders[i].clone())
    }

    pub fn order_by_ext_id(&self, ext_id: &str) -> Option<Order> {
        let state = self.read();
        state
            .ext_order_index
            .get(ext_id)
            .map(|&i| state.orders[i].clone())
    }

    pub fn invoices(&self) -> Vec<Invoice> {
        self.read().invoices.clone()
    }

    /// Delivers an order at the till (as `deliverOrder`); returns the packing slip id.
    pub fn deliver_order(&self, id: &str) -> Result<String, StateError> {
        let mut state = self.write();
        let idx = state
            .order_idx(id)
            .ok_or_else(|| StateError::UnknownOrder(id.into()))?;
        state
            .deliver(idx, clock::now())
            .map_err(|result| StateError::Refused(result.into()))
    }

    /// Pays an order at the till (as `payOrder`): `prepay` registers a deposit, otherwise the
    /// order is delivered and invoiced too. Returns the invoice id, if one was made.
    pub fn pay_order(
        &self,
        id: &str,
        method: &str,
        amount_cents: i64,
        prepay: bool,
    ) -> Result<Option<String>, StateError> {
        let payment = PaymentInput {
            method: method.into(),
            amount: amount_cents,
            external_reference: String::new(),
        };
        let outcome = self
            .write()
            .pay_order(id, prepay, vec![payment], clock::now());
        if outcome.result == "PAY-ORDER-RESULT-OK" {
            Ok(outcome.invoice_id)
        } else {
            Err(StateError::Refused(format!(
                "{}: {}",
                outcome.result, outcome.error_message
            )))
        }
    }

    /// Cancels an order at the till (as `cancelOrder`).
    pub fn cancel_order(&self, id: &str) -> Result<(), StateError> {
        let mut state = self.write();
        let idx = state
            .order_idx(id)
            .ok_or_else(|| StateError::UnknownOrder(id.into()))?;
        state
            .cancel(idx, clock::now())
            .map_err(|(result, message)| StateError::Refused(format!("{result}: {message}")))
    }

    // ----- reference data -----

    pub fn branches(&self) -> Vec<Branch> {
        self.read().branches.clone()
    }

    pub fn employees(&self) -> Vec<Employee> {
        self.read().employees.clone()
    }
}

/// Builds the state and loads the reference (blocking: generation and schema compilation).
fn build(options: MplusOptions) -> anyhow::Result<Inner> {
    let reference_dir = options.reference_dir.clone().or_else(default_reference_dir);
    let reference = match &reference_dir {
        Some(dir) if dir.join("MplusQapi.wsdl").is_file() => Some(schema::load(dir)?),
        Some(dir) => {
            tracing::warn!(dir = %dir.display(), "No MplusQapi.wsdl there: no WSDL, no validation.");
            None
        }
        None => {
            tracing::warn!(
                "The MplusKASSA reference folder was not found: no WSDL, no validation."
            );
            None
        }
    };
    let mut state = State::new(options.seed, options.first_sync_marker.max(1));
    generate::populate(
        &mut state,
        &generate::Shape {
            seed: options.seed,
            products: options.products,
            variant_share: options.variant_share,
            relations: options.relations,
            branches: options.branches,
            orders: options.orders,
        },
    );
    state.shrink();
    Ok(Inner {
        state: RwLock::new(state),
        reference,
        validate: options.validate,
        ident: options.ident,
        secret: options.secret,
        auth_fault: options.auth_faultstring,
        limits: ops::Limits {
            max_page: options.max_page.max(1),
        },
        counts: Mutex::new(HashMap::new()),
        violations: Mutex::new(Vec::new()),
        omissions: Mutex::new(Vec::new()),
        validated: std::sync::atomic::AtomicU64::new(0),
    })
}
