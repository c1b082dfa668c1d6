//! The simulator's state: catalogue, stock, relations, orders and invoices, kept compact (an
//! article is a fixed-size record with boxed strings) and indexed by number and sync marker.
//! Every change bumps the sync marker of its entity type, as MplusKASSA does.

use std::collections::{BTreeMap, HashMap};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::clock;

/// Quantities are kept in thousandths (scale 3) and money in cents, never as floats.
pub const MILLI: i64 = 1000;

/// A VAT table: code → percent.
pub type VatTable = [(i32, i64); 3];

/// The VAT table of the Netherlands, the branches' country.
pub const VAT_CODES: VatTable = [(1, 21), (2, 9), (3, 0)];

/// The VAT tables per country (ISO 3166 numeric, alpha-3) a Dutch till selling across the EU
/// holds (one-stop shop): `getVatGroupList` has an entry per branch and country (API-NOTES
/// 6.6), the same codes with each country's rates; an order names its country with
/// `vatCountryIso3`.
pub const VAT_TABLES: [(i32, &str, VatTable); 3] = [
    (528, "NLD", VAT_CODES),
    (276, "DEU", [(1, 19), (2, 7), (3, 0)]),
    (56, "BEL", [(1, 21), (2, 6), (3, 0)]),
];

/// The percentage of a VAT code in the branches' own country (0 when unknown).
pub fn vat_percentage(code: i32) -> i64 {
    VAT_CODES
        .iter()
        .find(|(c, _)| *c == code)
        .map_or(0, |(_, p)| *p)
}

/// The VAT table of a country by its alpha-3 code.
pub fn vat_table(iso3: &str) -> Option<&'static VatTable> {
    VAT_TABLES
        .iter()
        .find(|(_, code, _)| code.eq_ignore_ascii_case(iso3))
        .map(|(_, _, table)| table)
}

/// `incl / (1 + pct/100)` in cents, rounded half away from zero.
pub fn excl_from_incl(incl: i64, pct: i64) -> i64 {
    div_round(i128::from(incl) * 100, i128::from(100 + pct))
}

/// `excl * (1 + pct/100)` in cents, rounded half away from zero.
pub fn incl_from_excl(excl: i64, pct: i64) -> i64 {
    div_round(i128::from(excl) * i128::from(100 + pct), 100)
}

/// `price * quantity` for a quantity in thousandths, rounded half away from zero.
pub fn line_total(price: i64, quantity_milli: i64) -> i64 {
    div_round(i128::from(price) * i128::from(quantity_milli), 1000)
}

fn div_round(n: i128, d: i128) -> i64 {
    if d == 0 {
        return 0;
    }
    let q = n / d;
    let r = n % d;
    let q = if (r.abs() * 2) >= d.abs() {
        q + if (n < 0) ^ (d < 0) { -1 } else { 1 }
    } else {
        q
    };
    i64::try_from(q).unwrap_or(if q < 0 { i64::MIN } else { i64::MAX })
}

/// An amount with `decimal_places` → thousandths. `None` when it does not fit exactly.
pub fn to_milli(amount: i64, decimal_places: u32) -> Option<i64> {
    match decimal_places {
        0..=3 => amount.checked_mul(10_i64.pow(3 - decimal_places)),
        4..=18 => {
            let div = 10_i64.pow(decimal_places - 3);
            (amount % div == 0).then_some(amount / div)
        }
        _ => None,
    }
}

/// Thousandths → (amount, decimalPlaces) with the smallest scale that is exact.
pub fn from_milli(milli: i64) -> (i64, u32) {
    if milli % 1000 == 0 {
        (milli / 1000, 0)
    } else if milli % 100 == 0 {
        (milli / 100, 1)
    } else if milli % 10 == 0 {
        (milli / 10, 2)
    } else {
        (milli, 3)
    }
}

/// The sync marker counters, one per entity type (products share the articles').
#[derive(Clone, Debug, Default)]
pub struct Markers {
    pub article: u64,
    pub article_group: u64,
    pub relation: u64,
    pub employee: u64,
    pub order: u64,
    pub invoice: u64,
    pub receipt: u64,
    pub stock: u64,
}

/// Texts an article rarely has; boxed so the common article stays small.
#[derive(Clone, Debug, Default)]
pub(crate) struct ArticleTexts {
    pub plu: Option<Box<str>>,
    pub invoice_text: Option<Box<str>>,
    pub receipt_text: Option<Box<str>>,
    pub display_text: Option<Box<str>>,
    pub extra_text: Option<Box<str>>,
    pub category_ids: Vec<i32>,
}

/// One article (the thing that is sold: a size/colour of a product).
#[derive(Clone, Debug)]
pub(crate) struct Article {
    pub number: i64,
    pub product: u32,
    pub sync_marker: u64,
    pub created: i64,
    pub changed: i64,
    pub description: Box<str>,
    pub ext_id: Box<str>,
    pub colour: Box<str>,
    pub size: Box<str>,
    pub barcode: Box<str>,
    pub texts: Option<Box<ArticleTexts>>,
    pub purchase_price: i64,
    pub price_incl: i64,
    pub price_excl: i64,
    pub turnover_group: i32,
    pub vat_code: i32,
    pub barcode_id: u32,
    pub active: bool,
    pub webshop: bool,
    pub stock_article: bool,
}

/// A product: a group of articles with shared description and group membership. It has a
/// sync marker of its own, from the articles' sequence (API-NOTES 5: `getCurrentSyncMarkers`
/// has one `articleSyncMarker`), which moves when the product itself changes (its
/// description, extra text or groups) while its articles keep theirs.
#[derive(Clone, Debug)]
pub(crate) struct Product {
    pub number: i64,
    pub sync_marker: u64,
    pub description: Box<str>,
    pub extra_text: Box<str>,
    /// (group number, sort order in that group).
    pub groups: Box<[(i32, i32)]>,
    pub articles: Vec<u32>,
}

/// A node of the article group tree.
#[derive(Clone, Debug)]
pub(crate) struct ArticleGroup {
    pub number: i32,
    pub parent: Option<i32>,
    pub name: String,
    pub sort_order: i32,
    pub sync_marker: u64,
}

/// A revenue (turnover) group.
#[derive(Clone, Debug)]
pub(crate) struct TurnoverGroup {
    pub number: i32,
    pub name: String,
    pub vat_code: i32,
    pub account: i32,
}

/// A branch with its workplaces.
#[derive(Clone, Debug)]
pub struct Branch {
    pub number: i32,
    pub name: String,
    pub abbreviation: String,
    pub workplaces: Vec<(i32, String)>,
}

/// An employee (999999 is the super-user integrators use).
#[derive(Clone, Debug)]
pub struct Employee {
    pub number: i64,
    pub name: String,
    pub email: String,
    pub active: bool,
    pub sync_marker: u64,
}

/// A payment method code.
#[derive(Clone, Debug)]
pub(crate) struct PaymentMethod {
    pub method: String,
    pub description: String,
    pub kind: &'static str,
}

/// Stock of one article in one branch, in thousandths.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct StockRec {
    pub on_hand: i64,
    pub reserved: i64,
    pub incoming: i64,
    pub stock_id: u64,
    pub changed: i64,
}

/// Stock of one article in one branch as the test side sees it, in thousandths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StockLevel {
    /// What can be sold: on hand minus reserved.
    pub free_milli: i64,
    pub reserved_milli: i64,
    pub incoming_milli: i64,
    /// The record's stock marker.
    pub stock_id: u64,
}

/// The cause of a stock change (`StockHistoryType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StockChangeKind {
    Api,
    Correction,
    Sales,
    Manual,
}

impl StockChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "STOCK-HISTORY-TYPE-API",
            Self::Correction => "STOCK-HISTORY-TYPE-CORRECTION",
            Self::Sales => "STOCK-HISTORY-TYPE-SALES",
            Self::Manual => "STOCK-HISTORY-TYPE-MANUAL",
        }
    }
}

/// One entry of the stock history feed.
#[derive(Clone, Debug)]
pub(crate) struct StockChange {
    pub stock_id: u64,
    pub at: i64,
    pub branch: i32,
    pub article: i64,
    pub amount_milli: i64,
    pub kind: StockChangeKind,
    pub order_id: Option<String>,
    pub packing_slip_id: Option<String>,
}

/// A relation (customer): a person, or a company with a contact person.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Relation {
    pub number: i64,
    pub ext_id: String,
    pub sync_marker: u64,
    pub created: i64,
    pub changed: i64,
    pub active: bool,
    pub name: String,
    pub address: String,
    pub zipcode: String,
    pub city: String,
    pub country: String,
    pub delivery_address: String,
    pub delivery_zipcode: String,
    pub delivery_city: String,
    pub delivery_country: String,
    pub contact: String,
    pub telephone: String,
    pub mobile: String,
    pub email: String,
    pub website: String,
    /// (day, month, year).
    pub birth_date: Option<(i32, i32, i32)>,
    pub price_group_number: Option<i32>,
    pub discount_percentage: i32,
    /// Cents.
    pub credit_limit: Option<i64>,
    pub vat_number: String,
    pub commerce_number: String,
    pub default_vat_method: String,
    /// Contact persons (`contactList`).
    pub contacts: Vec<Contact>,
    /// Empty for a person; the company name for a company.
    pub company_name: String,
    /// Loyalty and customer cards (`cardNumbers`).
    pub card_numbers: Vec<String>,
}

/// A contact person of a relation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Contact {
    pub name: String,
    pub telephone: String,
    pub email: String,
}

impl Relation {
    /// A company relation has a company name.
    pub fn is_company(&self) -> bool {
        !self.company_name.is_empty()
    }
}

/// An address on an order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Address {
    pub name: String,
    pub contact: String,
    pub address: String,
    pub zipcode: String,
    pub city: String,
    pub country: String,
    pub company_name: String,
}

/// `deliveryState` of an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryState {
    Nothing,
    Partial,
    Complete,
}

/// `cancelState` of an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelState {
    Nothing,
    Partial,
    Complete,
}

/// `completeState` of an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompleteState {
    Nothing,
    Partial,
    Complete,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nothing => "ORDER-DELIVERY-STATE-NOTHING",
            Self::Partial => "ORDER-DELIVERY-STATE-PARTIAL",
            Self::Complete => "ORDER-DELIVERY-STATE-COMPLETE",
        }
    }
}

impl CancelState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nothing => "ORDER-CANCEL-STATE-NOTHING",
            Self::Partial => "ORDER-CANCEL-STATE-PARTIAL",
            Self::Complete => "ORDER-CANCEL-STATE-COMPLETE",
        }
    }
}

impl CompleteState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nothing => "ORDER-COMPLETE-STATE-NOTHING",
            Self::Partial => "ORDER-COMPLETE-STATE-PARTIAL",
            Self::Complete => "ORDER-COMPLETE-STATE-COMPLETE",
        }
    }
}

/// One order line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderLine {
    pub id: String,
    pub article_number: i64,
    pub text: String,
    pub quantity_milli: i64,
    pub delivered_milli: i64,
    pub cancelled_milli: i64,
    /// Unit price in cents as sent (incl. VAT under the inclusive method).
    pub price: i64,
    pub price_excl: i64,
    pub vat_code: i32,
    pub vat_percentage: i64,
    pub turnover_group: i32,
    /// `DiscountType` of the line (`DISCOUNT-TYPE-EXTERNAL-DISCOUNT` as sent,
    /// `DISCOUNT-TYPE-CUSTOMER-DISCOUNT` applied by the till), `None` without a discount.
    pub discount_type: Option<&'static str>,
    pub discount_percentage: i32,
    /// Cents off the line (incl. VAT).
    pub discount_amount: i64,
    pub total_incl: i64,
    pub total_excl: i64,
}

/// A payment on an order or invoice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payment {
    pub id: String,
    pub method: String,
    /// Cents.
    pub amount: i64,
    pub external_reference: String,
    pub at: i64,
    pub branch: i32,
}

/// An order as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Order {
    pub id: String,
    pub ext_id: String,
    pub year: i32,
    pub number: i64,
    pub sync_marker: u64,
    pub entry_branch: i32,
    pub financial_branch: i32,
    pub workplace: Option<i32>,
    pub employee_number: i64,
    pub relation_number: i64,
    pub created: i64,
    pub reference: String,
    pub vat_method: String,
    /// `vatCountryIso3` as sent (empty: the branch's country).
    pub vat_country: String,
    pub delivery_method: String,
    pub delivery_address: Option<Address>,
    pub invoice_address: Option<Address>,
    pub lines: Vec<OrderLine>,
    pub payments: Vec<Payment>,
    pub total_incl: i64,
    pub total_excl: i64,
    pub prepaid: i64,
    pub fully_paid: bool,
    pub delivery_state: DeliveryState,
    pub cancel_state: CancelState,
    pub complete_state: CompleteState,
    pub invoice_ids: Vec<String>,
    pub packing_slip_ids: Vec<String>,
    pub change_counter: i32,
}

impl Order {
    /// `orderString`: year and number, as `2025-000731`.
    pub fn order_string(&self) -> String {
        format!("{}-{:06}", self.year, self.number)
    }

    fn update_complete_state(&mut self) {
        self.complete_state = match (self.delivery_state, self.fully_paid) {
            _ if self.cancel_state == CancelState::Complete => CompleteState::Complete,
            (DeliveryState::Complete, true) => CompleteState::Complete,
            (DeliveryState::Nothing, false) => CompleteState::Nothing,
            _ => CompleteState::Partial,
        };
    }
}

/// An invoice as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invoice {
    pub id: String,
    pub ext_id: String,
    pub order_ids: Vec<String>,
    pub ext_order_ids: Vec<String>,
    pub year: i32,
    pub number: i64,
    pub sync_marker: u64,
    pub employee_number: i64,
    pub relation_number: i64,
    pub branch: i32,
    pub created: i64,
    pub total_incl: i64,
    pub total_excl: i64,
    pub paid: i64,
    pub vat_method: String,
    pub lines: Vec<OrderLine>,
    pub payments: Vec<Payment>,
}

impl Invoice {
    pub fn state(&self) -> &'static str {
        if self.paid >= self.total_incl {
            "INVOICE-STATE-PAID"
        } else if self.paid > 0 {
            "INVOICE-STATE-PARTLY-PAID"
        } else {
            "INVOICE-STATE-OUTSTANDING"
        }
    }
}

/// What a client sends for one order line.
#[derive(Clone, Debug, Default)]
pub(crate) struct LineInput {
    pub article_number: i64,
    pub text: Option<String>,
    pub quantity_milli: i64,
    pub price: Option<i64>,
    /// Sent by the client: these win over the article's own.
    pub turnover_group: Option<i32>,
    pub vat_code: Option<i32>,
    /// `discountType`, `discountAmount`, `discountAmountExcl` as sent.
    pub discount_type: Option<String>,
    pub discount_amount: Option<i64>,
    pub discount_amount_excl: Option<i64>,
}

/// What a client sends for one payment.
#[derive(Clone, Debug, Default)]
pub(crate) struct PaymentInput {
    pub method: String,
    pub amount: i64,
    pub external_reference: String,
}

/// What a client sends to create an order.
#[derive(Clone, Debug, Default)]
pub(crate) struct OrderInput {
    pub ext_id: String,
    pub entry_branch: Option<i32>,
    pub financial_branch: Option<i32>,
    pub workplace: Option<i32>,
    pub employee_number: Option<i64>,
    pub relation_number: Option<i64>,
    pub reference: String,
    pub vat_method: Option<String>,
    /// `vatCountryIso3`: whose VAT table the lines' codes are in (none: the branch's).
    pub vat_country: Option<String>,
    pub delivery_method: String,
    pub delivery_address: Option<Address>,
    pub invoice_address: Option<Address>,
    pub lines: Vec<LineInput>,
    /// What the till may apply of its own (`createOrderV2/V3`'s `apply…` flags; absent means
    /// apply: the least forgiving reading, as the WSDL gives no default).
    pub pricing: Pricing,
}

/// The till's own pricing a create may apply. The WSDL's flags are `applySalesAndActions`,
/// `applySalesPrices` and `applyPriceGroups`; the simulator models what the last one stands
/// for (sale promotions and sales prices it has none of).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pricing {
    /// `applyPriceGroups`: the relation's price group and discount percentage
    /// (`DISCOUNT-TYPE-CUSTOMER-DISCOUNT`).
    pub price_groups: bool,
}

impl Default for Pricing {
    fn default() -> Self {
        Self { price_groups: true }
    }
}

/// The outcome of a create-order call, kept for idempotent replay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CreateOutcome {
    pub result: &'static str,
    pub error_message: String,
    pub order_id: String,
    pub order_string: String,
    pub pay_result: Option<&'static str>,
    pub invoice_id: Option<String>,
}

/// The outcome of a pay-order call, kept for idempotent replay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PayOutcome {
    pub result: &'static str,
    pub invoice_id: Option<String>,
    pub error_message: String,
}

/// The whole state of one simulated MplusKASSA installation.
#[derive(Debug)]
pub(crate) struct State {
    pub rng: StdRng,
    pub markers: Markers,
    pub products: Vec<Product>,
    pub product_index: HashMap<i64, u32>,
    pub articles: Vec<Article>,
    pub article_index: HashMap<i64, u32>,
    /// Article marker → article index, for paging by sync marker.
    pub by_marker: BTreeMap<u64, u32>,
    /// Product marker → product index (the same sequence as the articles').
    pub product_by_marker: BTreeMap<u64, u32>,
    pub groups: Vec<ArticleGroup>,
    pub turnover_groups: Vec<TurnoverGroup>,
    pub branches: Vec<Branch>,
    /// `stock[article_index * branches.len() + branch_index]`.
    pub stock: Vec<StockRec>,
    /// Stock marker → index into `stock`.
    pub stock_by_id: BTreeMap<u64, u32>,
    pub stock_history: Vec<StockChange>,
    pub relations: Vec<Relation>,
    pub relation_index: HashMap<i64, usize>,
    pub employees: Vec<Employee>,
    pub payment_methods: Vec<PaymentMethod>,
    pub orders: Vec<Order>,
    pub order_index: HashMap<String, usize>,
    pub ext_order_index: HashMap<String, usize>,
    pub order_by_marker: BTreeMap<u64, usize>,
    pub invoices: Vec<Invoice>,
    pub invoice_index: HashMap<String, usize>,
    pub invoice_by_marker: BTreeMap<u64, usize>,
    pub idempotent_creates: HashMap<String, CreateOutcome>,
    pub idempotent_payments: HashMap<String, PayOutcome>,
    pub next_relation: i64,
    pub next_order_number: i64,
    pub next_invoice_number: i64,
    pub next_packing_slip: u64,
    pub next_line: u64,
}

/// Why a change to the state was refused (test-side API).
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("article {0} does not exist")]
    UnknownArticle(i64),
    #[error("product {0} does not exist")]
    UnknownProduct(i64),
    #[error("branch {0} does not exist")]
    UnknownBranch(i32),
    #[error("order {0} does not exist")]
    UnknownOrder(String),
    #[error("number {0} is already taken")]
    Taken(i64),
    #[error("{0}")]
    Refused(String),
}

impl State {
    pub fn new(seed: u64, first_marker: u64) -> Self {
        let start = first_marker.saturating_sub(1);
        Self {
            rng: StdRng::seed_from_u64(seed ^ 0x6d70_6c75_735f_7369),
            markers: Markers {
                article: start,
                article_group: start,
                relation: start,
                employee: start,
                order: start,
                invoice: start,
                receipt: start,
                stock: start,
            },
            products: Vec::new(),
            product_index: HashMap::new(),
            articles: Vec::new(),
            article_index: HashMap::new(),
            by_marker: BTreeMap::new(),
            product_by_marker: BTreeMap::new(),
            groups: Vec::new(),
            turnover_groups: Vec::new(),
            branches: Vec::new(),
            stock: Vec::new(),
            stock_by_id: BTreeMap::new(),
            stock_history: Vec::new(),
            relations: Vec::new(),
            relation_index: HashMap::new(),
            employees: Vec::new(),
            payment_methods: Vec::new(),
            orders: Vec::new(),
            order_index: HashMap::new(),
            ext_order_index: HashMap::new(),
            order_by_marker: BTreeMap::new(),
            invoices: Vec::new(),
            invoice_index: HashMap::new(),
            invoice_by_marker: BTreeMap::new(),
            idempotent_creates: HashMap::new(),
            idempotent_payments: HashMap::new(),
            next_relation: 10_001,
            next_order_number: 1,
            next_invoice_number: 1,
            next_packing_slip: 1,
            next_line: 1,
        }
    }

    /// Gives back the slack of the growing vectors and maps (after generation).
    pub fn shrink(&mut self) {
        self.articles.shrink_to_fit();
        self.products.shrink_to_fit();
        self.stock.shrink_to_fit();
        self.article_index.shrink_to_fit();
        self.product_index.shrink_to_fit();
        self.relations.shrink_to_fit();
        self.relation_index.shrink_to_fit();
    }

    /// A fresh 32-hex-digit id (the shape MplusKASSA uses for orders).
    pub fn hex_id(&mut self) -> String {
        let value: u128 = self.rng.random();
        format!("{value:032x}")
    }

    /// A fresh dashed UUID-shaped id (the shape used for invoices).
    pub fn uuid(&mut self) -> String {
        let h = self.hex_id();
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }

    fn next_marker(counter: &mut u64) -> u64 {
        *counter += 1;
        *counter
    }

    pub fn branch_index(&self, number: i32) -> Option<usize> {
        self.branches.iter().position(|b| b.number == number)
    }

    // ----- catalogue -----

    /// Adds a product with its articles; every article gets a new marker and stock records.
    pub fn insert_product(
        &mut self,
        number: i64,
        description: Box<str>,
        extra_text: Box<str>,
        groups: Box<[(i32, i32)]>,
        articles: Vec<Article>,
        at: i64,
    ) -> Result<(), StateError> {
        if self.product_index.contains_key(&number) {
            return Err(StateError::Taken(number));
        }
        for a in &articles {
            if self.article_index.contains_key(&a.number) {
                return Err(StateError::Taken(a.number));
            }
        }
        let product_idx = self.products.len() as u32;
        let mut indices = Vec::with_capacity(articles.len());
        for mut article in articles {
            let idx = self.articles.len() as u32;
            article.product = product_idx;
            article.sync_marker = Self::next_marker(&mut self.markers.article);
            article.barcode_id = idx + 1;
            article.created = at;
            article.changed = at;
            self.by_marker.insert(article.sync_marker, idx);
            self.article_index.insert(article.number, idx);
            self.articles.push(article);
            indices.push(idx);
            for _ in 0..self.branches.len() {
                let rec = self.stock.len() as u32;
                let stock_id = Self::next_marker(&mut self.markers.stock);
                self.stock.push(StockRec {
                    stock_id,
                    changed: at,
                    ..StockRec::default()
                });
                self.stock_by_id.insert(stock_id, rec);
            }
        }
        self.product_index.insert(number, product_idx);
        let sync_marker = Self::next_marker(&mut self.markers.article);
        self.product_by_marker.insert(sync_marker, product_idx);
        self.products.push(Product {
            number,
            sync_marker,
            description,
            extra_text,
            groups,
            articles: indices,
        });
        Ok(())
    }

    /// Gives an article a new sync marker (after a change).
    pub fn touch_article(&mut self, idx: u32, at: i64) -> u64 {
        let marker = Self::next_marker(&mut self.markers.article);
        let article = &mut self.articles[idx as usize];
        self.by_marker.remove(&article.sync_marker);
        article.sync_marker = marker;
        article.changed = at;
        self.by_marker.insert(marker, idx);
        marker
    }

    /// Gives a product a new sync marker (after a change to the product itself); its
    /// articles keep theirs.
    pub fn touch_product(&mut self, idx: u32) -> u64 {
        let marker = Self::next_marker(&mut self.markers.article);
        let product = &mut self.products[idx as usize];
        self.product_by_marker.remove(&product.sync_marker);
        product.sync_marker = marker;
        self.product_by_marker.insert(marker, idx);
        marker
    }

    pub fn article(&self, number: i64) -> Option<&Article> {
        self.article_index
            .get(&number)
            .map(|&i| &self.articles[i as usize])
    }

    // ----- stock -----

    fn stock_slot(&self, article: i64, branch: i32) -> Option<usize> {
        let a = *self.article_index.get(&article)? as usize;
        let b = self.branch_index(branch)?;
        Some(a * self.branches.len() + b)
    }

    pub fn stock_level(&self, article: i64, branch: i32) -> Option<StockLevel> {
        let rec = self.stock[self.stock_slot(article, branch)?];
        Some(StockLevel {
            free_milli: rec.on_hand - rec.reserved,
            reserved_milli: rec.reserved,
            incoming_milli: rec.incoming,
            stock_id: rec.stock_id,
        })
    }

    /// Changes a stock record through `change` and gives it a new stock marker.
    fn change_stock(&mut self, slot: usize, at: i64, change: impl FnOnce(&mut StockRec)) -> u64 {
        let stock_id = Self::next_marker(&mut self.markers.stock);
        let rec = &mut self.stock[slot];
        self.stock_by_id.remove(&rec.stock_id);
        change(rec);
        rec.stock_id = stock_id;
        rec.changed = at;
        self.stock_by_id.insert(stock_id, slot as u32);
        stock_id
    }

    /// Adds `amount_milli` to what is on hand (negative takes away), with a history entry.
    #[allow(clippy::too_many_arguments)]
    pub fn adjust_stock(
        &mut self,
        article: i64,
        branch: i32,
        amount_milli: i64,
        kind: StockChangeKind,
        order_id: Option<String>,
        packing_slip_id: Option<String>,
        at: i64,
    ) -> Result<u64, StateError> {
        let slot = self.stock_slot_checked(article, branch)?;
        let stock_id = self.change_stock(slot, at, |rec| rec.on_hand += amount_milli);
        self.stock_history.push(StockChange {
            stock_id,
            at,
            branch,
            article,
            amount_milli,
            kind,
            order_id,
            packing_slip_id,
        });
        Ok(stock_id)
    }

    /// Sets what is on hand, recording the difference in the history.
    pub fn set_on_hand(
        &mut self,
        article: i64,
        branch: i32,
        on_hand_milli: i64,
        kind: StockChangeKind,
        at: i64,
    ) -> Result<u64, StateError> {
        let slot = self.stock_slot_checked(article, branch)?;
        let diff = on_hand_milli - self.stock[slot].on_hand;
        self.adjust_stock(article, branch, diff, kind, None, None, at)
    }

    /// Test side: free and reserved as given (on hand = free + reserved).
    pub fn set_stock_levels(
        &mut self,
        article: i64,
        branch: i32,
        free_milli: i64,
        reserved_milli: i64,
        at: i64,
    ) -> Result<u64, StateError> {
        let slot = self.stock_slot_checked(article, branch)?;
        let on_hand = free_milli + reserved_milli;
        let diff = on_hand - self.stock[slot].on_hand;
        let stock_id = self.change_stock(slot, at, |rec| {
            rec.on_hand = on_hand;
            rec.reserved = reserved_milli;
        });
        if diff != 0 {
            self.stock_history.push(StockChange {
                stock_id,
                at,
                branch,
                article,
                amount_milli: diff,
                kind: StockChangeKind::Manual,
                order_id: None,
                packing_slip_id: None,
            });
        }
        Ok(stock_id)
    }

    pub fn set_incoming(
        &mut self,
        article: i64,
        branch: i32,
        incoming_milli: i64,
        at: i64,
    ) -> Result<u64, StateError> {
        let slot = self.stock_slot_checked(article, branch)?;
        Ok(self.change_stock(slot, at, |rec| rec.incoming = incoming_milli))
    }

    fn stock_slot_checked(&self, article: i64, branch: i32) -> Result<usize, StateError> {
        if !self.article_index.contains_key(&article) {
            return Err(StateError::UnknownArticle(article));
        }
        self.stock_slot(article, branch)
            .ok_or(StateError::UnknownBranch(branch))
    }

    fn reserve(&mut self, article: i64, branch: i32, amount_milli: i64, at: i64) {
        let stock_article = self.article(article).is_some_and(|a| a.stock_article);
        if let (true, Some(slot)) = (stock_article, self.stock_slot(article, branch)) {
            self.change_stock(slot, at, |rec| rec.reserved += amount_milli);
        }
    }

    // ----- relations -----

    pub fn relation_mut(&mut self, number: i64) -> Option<&mut Relation> {
        let idx = *self.relation_index.get(&number)?;
        self.relations.get_mut(idx)
    }

    pub fn relation(&self, number: i64) -> Option<&Relation> {
        self.relation_index
            .get(&number)
            .and_then(|&i| self.relations.get(i))
    }

    /// Stores a new relation; number 0 means "assign one".
    pub fn insert_relation(&mut self, mut relation: Relation, at: i64) -> Result<i64, StateError> {
        if relation.number == 0 {
            while self.relation_index.contains_key(&self.next_relation) {
                self.next_relation += 1;
            }
            relation.number = self.next_relation;
            self.next_relation += 1;
        } else if self.relation_index.contains_key(&relation.number) {
            return Err(StateError::Taken(relation.number));
        }
        relation.sync_marker = Self::next_marker(&mut self.markers.relation);
        relation.created = at;
        relation.changed = at;
        let number = relation.number;
        self.relation_index.insert(number, self.relations.len());
        self.relations.push(relation);
        Ok(number)
    }

    /// Changes a relation through `change` and bumps its marker.
    pub fn update_relation(
        &mut self,
        number: i64,
        at: i64,
        change: impl FnOnce(&mut Relation),
    ) -> Option<(u64, i64)> {
        let marker = Self::next_marker(&mut self.markers.relation);
        let relation = self.relation_mut(number)?;
        change(relation);
        relation.number = number;
        relation.sync_marker = marker;
        relation.changed = at;
        Some((marker, at))
    }

    // ----- orders -----

    fn bump_order(&mut self, idx: usize) {
        let marker = Self::next_marker(&mut self.markers.order);
        let order = &mut self.orders[idx];
        self.order_by_marker.remove(&order.sync_marker);
        order.sync_marker = marker;
        order.change_counter += 1;
        self.order_by_marker.insert(marker, idx);
    }

    pub fn order_idx(&self, id: &str) -> Option<usize> {
        self.order_index.get(id).copied()
    }

    pub fn employee(&self, number: i64) -> Option<&Employee> {
        self.employees.iter().find(|e| e.number == number)
    }

    /// Creates an order the way `createOrder*` does, with an optional payment.
    pub fn create_order(
        &mut self,
        input: OrderInput,
        prepay: Option<bool>,
        payments: Vec<PaymentInput>,
        at: i64,
    ) -> CreateOutcome {
        let failed = |message: String| CreateOutcome {
            result: "CREATE-ORDER-RESULT-FAILED",
            error_message: message,
            order_id: String::new(),
            order_string: String::new(),
            pay_result: None,
            invoice_id: None,
        };
        if !input.ext_id.is_empty() && self.ext_order_index.contains_key(&input.ext_id) {
            return CreateOutcome {
                result: "CREATE-ORDER-RESULT-EXT-ORDER-ID-ALREADY-EXISTS",
                error_message: format!("Order with extOrderId {} already exists.", input.ext_id),
                ..failed(String::new())
            };
        }
        let employee = input.employee_number.unwrap_or(0);
        if self.employee(employee).is_none() {
            return failed(format!("Employee {employee} not found."));
        }
        let default_branch = self.branches.first().map_or(1, |b| b.number);
        let entry_branch = input
            .entry_branch
            .or(input.financial_branch)
            .unwrap_or(default_branch);
        let financial_branch = input.financial_branch.unwrap_or(entry_branch);
        for branch in [entry_branch, financial_branch] {
            if self.branch_index(branch).is_none() {
                return failed(format!("Branch {branch} not found."));
            }
        }
        let relation_number = match input.relation_number {
            None | Some(0) => return failed("An order needs a relation (relationNumber).".into()),
            Some(n) => n,
        };
        if self.relation(relation_number).is_none() {
            return failed(format!("Relation {relation_number} not found."));
        }
        if let Some(line) = input
            .lines
            .iter()
            .find(|l| !self.article_index.contains_key(&l.article_number))
        {
            return failed(format!("Article {} not found.", line.article_number));
        }
        if let Some(p) = payments
            .iter()
            .find(|p| !self.payment_methods.iter().any(|m| m.method == p.method))
        {
            return failed(format!("Payment method {} not found.", p.method));
        }
        let table = match input.vat_country.as_deref().filter(|c| !c.is_empty()) {
            None => &VAT_CODES,
            Some(country) => match vat_table(country) {
                Some(table) => table,
                None => return failed(format!("No VAT table for country {country}.")),
            },
        };
        if let Some(code) = input
            .lines
            .iter()
            .filter_map(|l| l.vat_code)
            .find(|code| !table.iter().any(|(c, _)| c == code))
        {
            return failed(format!("VAT code {code} not found."));
        }
        if let Some(group) = input
            .lines
            .iter()
            .filter_map(|l| l.turnover_group)
            .find(|group| !self.turnover_groups.iter().any(|t| t.number == *group))
        {
            return failed(format!("Turnover group {group} not found."));
        }
        let vat_method = input
            .vat_method
            .clone()
            .unwrap_or_else(|| "VAT-METHOD-INCLUSIVE".into());
        let customer_discount = self
            .relation(relation_number)
            .map_or(0, |r| r.discount_percentage);
        let mut lines = Vec::with_capacity(input.lines.len());
        for line in &input.lines {
            let Some(article) = self.article(line.article_number).cloned() else {
                continue;
            };
            let vat_code = line.vat_code.unwrap_or(article.vat_code);
            let pct = match vat_method.as_str() {
                "VAT-METHOD-SHIFTED" | "VAT-METHOD-NONE" => 0,
                _ => table
                    .iter()
                    .find(|(c, _)| *c == vat_code)
                    .map_or(0, |(_, p)| *p),
            };
            let price = line.price.unwrap_or(article.price_incl);
            let exclusive = vat_method == "VAT-METHOD-EXCLUSIVE";
            let (price_incl, price_excl) = if exclusive {
                (incl_from_excl(price, pct), price)
            } else {
                (price, excl_from_incl(price, pct))
            };
            let gross = line_total(price_incl, line.quantity_milli);
            // A discount the client sends (the shop's own) is taken as given; otherwise the
            // till applies the relation's discount unless told not to (`applyPriceGroups`).
            let (discount_type, discount_percentage, discount_amount) =
                match line.discount_type.as_deref() {
                    Some("DISCOUNT-TYPE-EXTERNAL-DISCOUNT") => {
                        let amount = match (exclusive, line.discount_amount_excl) {
                            (true, Some(excl)) => incl_from_excl(excl, pct),
                            _ => line.discount_amount.unwrap_or(0),
                        };
                        (Some("DISCOUNT-TYPE-EXTERNAL-DISCOUNT"), 0, amount)
                    }
                    _ if input.pricing.price_groups
                        && customer_discount > 0
                        && gross > 0
                        && article.number != crate::generate::SHIPPING_ARTICLE =>
                    {
                        (
                            Some("DISCOUNT-TYPE-CUSTOMER-DISCOUNT"),
                            customer_discount,
                            div_round(i128::from(gross) * i128::from(customer_discount), 100),
                        )
                    }
                    _ => (None, 0, 0),
                };
            let total_incl = gross - discount_amount;
            let total_excl = excl_from_incl(total_incl, pct);
            let id = format!("{:016x}", self.next_line);
            self.next_line += 1;
            lines.push(OrderLine {
                id,
                article_number: line.article_number,
                text: line
                    .text
                    .clone()
                    .unwrap_or_else(|| article.description.to_string()),
                quantity_milli: line.quantity_milli,
                delivered_milli: 0,
                cancelled_milli: 0,
                price,
                price_excl,
                vat_code,
                vat_percentage: pct,
                turnover_group: line.turnover_group.unwrap_or(article.turnover_group),
                discount_type,
                discount_percentage,
                discount_amount,
                total_incl,
                total_excl,
            });
        }
        let id = self.hex_id();
        let year = clock::local(at).year;
        let number = self.next_order_number;
        self.next_order_number += 1;
        let order = Order {
            id: id.clone(),
            ext_id: input.ext_id.clone(),
            year,
            number,
            sync_marker: 0,
            entry_branch,
            financial_branch,
            workplace: input.workplace,
            employee_number: employee,
            relation_number,
            created: at,
            reference: input.reference,
            vat_method,
            vat_country: input.vat_country.clone().unwrap_or_default(),
            delivery_method: input.delivery_method,
            delivery_address: input.delivery_address,
            invoice_address: input.invoice_address,
            total_incl: lines.iter().map(|l| l.total_incl).sum(),
            total_excl: lines.iter().map(|l| l.total_excl).sum(),
            lines,
            payments: Vec::new(),
            prepaid: 0,
            fully_paid: false,
            delivery_state: DeliveryState::Nothing,
            cancel_state: CancelState::Nothing,
            complete_state: CompleteState::Nothing,
            invoice_ids: Vec::new(),
            packing_slip_ids: Vec::new(),
            change_counter: 0,
        };
        let idx = self.orders.len();
        let reservations: Vec<(i64, i64)> = order
            .lines
            .iter()
            .map(|l| (l.article_number, l.quantity_milli))
            .collect();
        self.order_index.insert(id.clone(), idx);
        if !order.ext_id.is_empty() {
            self.ext_order_index.insert(order.ext_id.clone(), idx);
        }
        let order_string = order.order_string();
        self.orders.push(order);
        self.bump_order(idx);
        self.orders[idx].change_counter = 0;
        for (article, quantity) in reservations {
            self.reserve(article, financial_branch, quantity, at);
        }
        let mut outcome = CreateOutcome {
            result: "CREATE-ORDER-RESULT-OK",
            error_message: String::new(),
            order_id: id.clone(),
            order_string,
            pay_result: None,
            invoice_id: None,
        };
        if let Some(prepay) = prepay.filter(|_| !payments.is_empty()) {
            let paid = self.pay_order(&id, prepay, payments, at);
            outcome.pay_result = Some(paid.result);
            outcome.invoice_id = paid.invoice_id;
            if paid.result != "PAY-ORDER-RESULT-OK" {
                outcome.result = "CREATE-ORDER-RESULT-PAYMENT-FAILED";
                outcome.error_message = paid.error_message;
            }
        }
        outcome
    }

    /// Pays an order: `prepay` registers a deposit; otherwise it delivers and invoices too.
    pub fn pay_order(
        &mut self,
        id: &str,
        prepay: bool,
        payments: Vec<PaymentInput>,
        at: i64,
    ) -> PayOutcome {
        let fail = |result: &'static str, message: String| PayOutcome {
            result,
            invoice_id: None,
            error_message: message,
        };
        let Some(idx) = self.order_idx(id) else {
            return fail("PAY-ORDER-RESULT-FAILED", format!("Order {id} not found."));
        };
        if let Some(p) = payments
            .iter()
            .find(|p| !self.payment_methods.iter().any(|m| m.method == p.method))
        {
            return fail(
                "PAY-ORDER-RESULT-FAILED",
                format!("Payment method {} not found.", p.method),
            );
        }
        let order = &self.orders[idx];
        if order.cancel_state == CancelState::Complete {
            return fail(
                "PAY-ORDER-RESULT-FAILED",
                format!("Order {id} is cancelled."),
            );
        }
        if !order.invoice_ids.is_empty() {
            return fail(
                "PAY-ORDER-RESULT-ORDER-ALREADY-INVOICED",
                format!("Order {id} is already invoiced."),
            );
        }
        let amount: i64 = payments.iter().map(|p| p.amount).sum();
        if !prepay && order.prepaid + amount < order.total_incl {
            return fail(
                "PAY-ORDER-RESULT-PAYMENT-INSUFFICIENT",
                format!(
                    "Payments of {} cents do not cover the open {} cents.",
                    amount,
                    order.total_incl - order.prepaid
                ),
            );
        }
        let branch = order.financial_branch;
        let mut stored = Vec::with_capacity(payments.len());
        for p in payments {
            stored.push(Payment {
                id: self.hex_id(),
                method: p.method,
                amount: p.amount,
                external_reference: p.external_reference,
                at,
                branch,
            });
        }
        let order = &mut self.orders[idx];
        order.payments.extend(stored);
        order.prepaid += amount;
        order.fully_paid = order.prepaid >= order.total_incl;
        order.update_complete_state();
        self.bump_order(idx);
        let mut invoice_id = None;
        if !prepay {
            if self.orders[idx].delivery_state != DeliveryState::Complete {
                let _ = self.deliver(idx, at);
            }
            invoice_id = Some(self.invoice_order(idx, at));
        }
        PayOutcome {
            result: "PAY-ORDER-RESULT-OK",
            invoice_id,
            error_message: String::new(),
        }
    }

    /// Delivers what is still open on an order: a packing slip, stock leaves the branch.
    pub fn deliver(&mut self, idx: usize, at: i64) -> Result<String, &'static str> {
        let order = &self.orders[idx];
        if order.delivery_state == DeliveryState::Complete {
            return Err("DELIVER-ORDER-RESULT-ALREADY-DELIVERED");
        }
        if order.cancel_state == CancelState::Complete {
            return Err("DELIVER-ORDER-RESULT-FAILED");
        }
        let packing_slip = format!(
            "{:032x}",
            0x5000_0000_0000_u128 + u128::from(self.next_packing_slip)
        );
        self.next_packing_slip += 1;
        let branch = order.financial_branch;
        let order_id = order.id.clone();
        let open: Vec<(i64, i64)> = order
            .lines
            .iter()
            .map(|l| {
                (
                    l.article_number,
                    l.quantity_milli - l.delivered_milli - l.cancelled_milli,
                )
            })
            .collect();
        for (article, quantity) in open {
            if quantity == 0 || !self.article(article).is_some_and(|a| a.stock_article) {
                continue;
            }
            self.reserve(article, branch, -quantity, at);
            let _ = self.adjust_stock(
                article,
                branch,
                -quantity,
                StockChangeKind::Sales,
                Some(order_id.clone()),
                Some(packing_slip.clone()),
                at,
            );
        }
        let order = &mut self.orders[idx];
        for line in &mut order.lines {
            line.delivered_milli = line.quantity_milli - line.cancelled_milli;
        }
        order.delivery_state = DeliveryState::Complete;
        order.packing_slip_ids.push(packing_slip.clone());
        order.update_complete_state();
        self.bump_order(idx);
        Ok(packing_slip)
    }

    /// Cancels an order: reservations are released.
    pub fn cancel(&mut self, idx: usize, at: i64) -> Result<(), (&'static str, String)> {
        let order = &self.orders[idx];
        if order.cancel_state == CancelState::Complete {
            return Err((
                "CANCEL-ORDER-RESULT-ALREADY-CANCELLED",
                format!("Order {} is already cancelled.", order.id),
            ));
        }
        if order.delivery_state != DeliveryState::Nothing || !order.invoice_ids.is_empty() {
            return Err((
                "CANCEL-ORDER-RESULT-FAILED",
                format!("Order {} is already delivered or invoiced.", order.id),
            ));
        }
        let branch = order.financial_branch;
        let open: Vec<(i64, i64)> = order
            .lines
            .iter()
            .map(|l| {
                (
                    l.article_number,
                    l.quantity_milli - l.delivered_milli - l.cancelled_milli,
                )
            })
            .collect();
        for (article, quantity) in open {
            self.reserve(article, branch, -quantity, at);
        }
        let order = &mut self.orders[idx];
        for line in &mut order.lines {
            line.cancelled_milli = line.quantity_milli - line.delivered_milli;
        }
        order.cancel_state = CancelState::Complete;
        order.update_complete_state();
        self.bump_order(idx);
        Ok(())
    }

    /// Makes an invoice of an order; returns its id.
    pub fn invoice_order(&mut self, idx: usize, at: i64) -> String {
        let id = self.uuid();
        let marker = Self::next_marker(&mut self.markers.invoice);
        let number = self.next_invoice_number;
        self.next_invoice_number += 1;
        let order = &self.orders[idx];
        let invoice = Invoice {
            id: id.clone(),
            ext_id: String::new(),
            order_ids: vec![order.id.clone()],
            ext_order_ids: if order.ext_id.is_empty() {
                Vec::new()
            } else {
                vec![order.ext_id.clone()]
            },
            year: clock::local(at).year,
            number,
            sync_marker: marker,
            employee_number: order.employee_number,
            relation_number: order.relation_number,
            branch: order.financial_branch,
            created: at,
            total_incl: order.total_incl,
            total_excl: order.total_excl,
            paid: order.prepaid.min(order.total_incl),
            vat_method: order.vat_method.clone(),
            lines: order.lines.clone(),
            payments: order.payments.clone(),
        };
        self.invoice_index.insert(id.clone(), self.invoices.len());
        self.invoice_by_marker.insert(marker, self.invoices.len());
        self.invoices.push(invoice);
        self.orders[idx].invoice_ids.push(id.clone());
        self.bump_order(idx);
        id
    }

    /// The VAT groups of a list of lines: (code, percent, excl, vat).
    pub fn vat_groups(lines: &[OrderLine]) -> Vec<(i32, i64, i64, i64)> {
        let mut groups: Vec<(i32, i64, i64, i64)> = Vec::new();
        for line in lines {
            match groups.iter_mut().find(|g| g.0 == line.vat_code) {
                Some(g) => {
                    g.2 += line.total_excl;
                    g.3 += line.total_incl - line.total_excl;
                }
                None => groups.push((
                    line.vat_code,
                    line.vat_percentage,
                    line.total_excl,
                    line.total_incl - line.total_excl,
                )),
            }
        }
        groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_and_quantities_stay_exact() {
        assert_eq!(excl_from_incl(7995, 21), 6607);
        assert_eq!(incl_from_excl(6607, 21), 7994);
        assert_eq!(excl_from_incl(-7995, 21), -6607);
        assert_eq!(line_total(7995, 1500), 11_993);
        assert_eq!(to_milli(530, 3), Some(530));
        assert_eq!(to_milli(7, 0), Some(7000));
        assert_eq!(to_milli(12_345, 4), None);
        assert_eq!(from_milli(7000), (7, 0));
        assert_eq!(from_milli(530), (53, 2));
        assert_eq!(from_milli(-1500), (-15, 1));
    }
}
