//! The answers of MplusQapi as Rust types, read with quick-xml's serde deserializer. Names are
//! the schema's local names (prefixes do not matter); unknown elements are ignored, so newer
//! API versions that add fields still parse. Money stays in integer cents, quantities in an
//! integer plus its scale, `xsd:decimal` fields as text: nothing goes through a float.

use serde::Deserialize;

/// `Envelope/Body/<payload>`.
#[derive(Debug, Deserialize)]
pub struct Envelope<T> {
    #[serde(rename = "Body")]
    pub body: Body<T>,
}

#[derive(Debug, Deserialize)]
pub struct Body<T> {
    #[serde(rename = "$value")]
    pub payload: T,
}

/// A SOAP 1.1 fault (`faultcode`, `faultstring` are unqualified).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct Fault {
    #[serde(default)]
    pub faultcode: String,
    #[serde(default)]
    pub faultstring: String,
}

impl Fault {
    /// `Client` (fix the request) or `Server` (may pass later), without the prefix.
    pub fn is_client(&self) -> bool {
        let code = self.faultcode.rsplit(':').next().unwrap_or("");
        code.starts_with("Client")
    }
}

/// What a 500 answer holds: a fault, or something else.
#[derive(Debug, Deserialize)]
pub enum FaultPayload {
    Fault(Fault),
    #[serde(other)]
    Other,
}

// ----- dates -----

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct DateTime {
    #[serde(default)]
    pub sec: i32,
    #[serde(default)]
    pub min: i32,
    #[serde(default)]
    pub hour: i32,
    #[serde(default)]
    pub day: i32,
    #[serde(default)]
    pub mon: i32,
    #[serde(default)]
    pub year: i32,
    /// Offset from UTC in minutes.
    #[serde(default)]
    pub timezone: i32,
}

// ----- version, markers -----

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiVersion {
    #[serde(default)]
    pub major_number: i64,
    #[serde(default)]
    pub minor_number: i64,
    #[serde(default)]
    pub revision_number: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncMarkers {
    pub article_sync_marker: Option<i64>,
    pub article_group_sync_marker: Option<i64>,
    pub relation_sync_marker: Option<i64>,
    pub employee_sync_marker: Option<i64>,
    pub order_sync_marker: Option<i64>,
    pub stock_id: Option<i64>,
}

// ----- products -----

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetProductsResponse {
    #[serde(default)]
    pub product_list: ProductList,
}

#[derive(Debug, Default, Deserialize)]
pub struct ProductList {
    #[serde(default)]
    pub product: Vec<Product>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Product {
    pub product_number: i64,
    pub sync_marker: Option<i64>,
    pub description: Option<String>,
    pub extra_text: Option<String>,
    #[serde(default)]
    pub article_list: ArticleList,
    #[serde(default)]
    pub group_numbers: Vec<i32>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct ArticleList {
    #[serde(default)]
    pub article: Vec<Article>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Article {
    pub article_number: i64,
    pub ext_article_id: Option<String>,
    pub plu_number: Option<String>,
    pub sync_marker: Option<i64>,
    pub active: Option<bool>,
    pub description: Option<String>,
    pub colour: Option<String>,
    pub size: Option<String>,
    pub invoice_text: Option<String>,
    pub receipt_text: Option<String>,
    pub display_text: Option<String>,
    pub barcode: Option<String>,
    pub brand_name: Option<String>,
    pub extra_text: Option<String>,
    pub turnover_group: Option<i32>,
    pub vat_code: Option<i32>,
    pub vat_percentage: Option<i64>,
    pub purchase_price: Option<i64>,
    pub price_incl: Option<i64>,
    pub price_excl: Option<i64>,
    pub webshop: Option<bool>,
    pub stock_article: Option<bool>,
    pub discontinued: Option<bool>,
    #[serde(default)]
    pub barcode_list: BarcodeList,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct BarcodeList {
    #[serde(default)]
    pub barcode: Vec<Barcode>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Barcode {
    pub barcode: Option<String>,
    pub is_current: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetArticleGroupsResponse {
    #[serde(default)]
    pub article_group_list: ArticleGroupList,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArticleGroupList {
    #[serde(default)]
    pub article_groups: Vec<ArticleGroup>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArticleGroup {
    pub group_number: i32,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub sub_group_list: ArticleGroupList,
    pub is_deleted: Option<bool>,
}

// ----- stock -----

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetStockResponse {
    #[serde(default)]
    pub article_stocks: Vec<ArticleStock>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArticleStock {
    pub branch_number: Option<i32>,
    pub article_number: i64,
    pub stock_id: i64,
    pub amount_free: i64,
    pub decimal_places_free: Option<i32>,
    pub amount_reserved: i64,
    pub decimal_places_reserved: Option<i32>,
    pub amount_incoming: Option<i64>,
    pub decimal_places_incoming: Option<i32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetStockHistoryResponse {
    #[serde(default)]
    pub article_stock_history: Vec<ArticleStockHistory>,
}

/// One stock change of the history feed; only what paging and the re-read need.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArticleStockHistory {
    pub stock_id: i64,
    pub branch_number: Option<i32>,
    pub article_number: i64,
}

// ----- relations -----

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FindRelationResponse {
    #[serde(default)]
    pub result: String,
    pub relation: Option<Relation>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetRelationsResponse {
    #[serde(default)]
    pub relation_list: RelationList,
}

#[derive(Debug, Default, Deserialize)]
pub struct RelationList {
    #[serde(default)]
    pub relation: Vec<Relation>,
}

/// The relation fields this connector reads and writes back (in schema order when written).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Relation {
    pub relation_number: Option<i64>,
    pub ext_relation_id: Option<String>,
    pub sync_marker: Option<i64>,
    pub active: Option<bool>,
    pub name: Option<String>,
    pub address: Option<String>,
    pub zipcode: Option<String>,
    pub city: Option<String>,
    pub country: Option<String>,
    pub delivery_address: Option<String>,
    pub delivery_zipcode: Option<String>,
    pub delivery_city: Option<String>,
    pub delivery_country: Option<String>,
    pub contact: Option<String>,
    pub telephone: Option<String>,
    pub mobile: Option<String>,
    pub email: Option<String>,
    pub website: Option<String>,
    pub vat_number: Option<String>,
    pub commerce_number: Option<String>,
    pub company_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateRelationResponse {
    #[serde(default)]
    pub result: String,
    pub relation_number: Option<i64>,
    #[serde(default)]
    pub error_message: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateRelationResponse {
    #[serde(default)]
    pub result: String,
    #[serde(default)]
    pub error_message: String,
}

// ----- orders -----

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateOrderV3Response {
    #[serde(default)]
    pub idempotency_result: String,
    #[serde(default)]
    pub result: String,
    /// The order as stored (`CreateOrderV3Response.order`).
    pub order: Option<Order>,
    #[serde(default)]
    pub error_message: String,
    pub info: Option<CreateOrderInfo>,
    pub pay_result: Option<String>,
    pub invoice_id: Option<String>,
}

impl CreateOrderV3Response {
    pub fn replayed(&self) -> bool {
        self.idempotency_result == "IDEMPOTENCY-RESULT-REPLAY-RESPONSE"
    }

    pub fn order_id(&self) -> Option<&str> {
        self.info
            .as_ref()
            .map(|i| i.order_id.as_str())
            .filter(|id| !id.is_empty())
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateOrderInfo {
    #[serde(default)]
    pub order_id: String,
    #[serde(default)]
    pub order_string: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetOrderResponse {
    #[serde(default)]
    pub result: String,
    pub order: Option<Order>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetOrdersResponse {
    #[serde(default)]
    pub order_list: OrderList,
}

#[derive(Debug, Default, Deserialize)]
pub struct OrderList {
    #[serde(default)]
    pub order: Vec<Order>,
}

/// The order fields the status stream and the lookup need.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    #[serde(default)]
    pub order_id: String,
    pub ext_order_id: Option<String>,
    #[serde(default)]
    pub invoice_ids: IdList,
    pub sync_marker: Option<i64>,
    pub relation_number: Option<i64>,
    pub financial_branch_number: Option<i32>,
    pub total_incl_amount: Option<i64>,
    pub total_excl_amount: Option<i64>,
    pub prepaid_amount: Option<i64>,
    pub fully_paid: Option<bool>,
    pub delivery_state: Option<String>,
    pub cancel_state: Option<String>,
    pub complete_state: Option<String>,
    pub change_counter: Option<i64>,
    pub order_number: Option<YearNumber>,
    #[serde(default)]
    pub packing_slip_ids: IdList,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct IdList {
    #[serde(default)]
    pub id: Vec<String>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize)]
pub struct YearNumber {
    #[serde(default)]
    pub year: i64,
    #[serde(default)]
    pub number: i64,
}

// ----- reference data -----

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VatGroupListResponse {
    #[serde(default)]
    pub vat_group: Vec<VatGroup>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VatGroup {
    pub branch_number: Option<i32>,
    pub country_iso3: Option<String>,
    pub vat_code: i32,
    pub vat_percentage: i64,
    pub account_number: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetTurnoverGroupsResponse {
    #[serde(default)]
    pub turnover_group_list: TurnoverGroupList,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnoverGroupList {
    #[serde(default)]
    pub turnover_group: Vec<TurnoverGroup>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnoverGroup {
    pub turnover_group_type: Option<String>,
    pub turnover_group: i32,
    #[serde(default)]
    pub turnover_group_name: String,
    pub account_number: Option<i64>,
    pub default_vat_code: Option<i32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetPaymentMethodsResponse {
    #[serde(default)]
    pub payment_method_list: PaymentMethodList,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentMethodList {
    #[serde(default)]
    pub payment_method: Vec<PaymentMethod>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentMethod {
    #[serde(default)]
    pub method: String,
    #[serde(default)]
    pub description: String,
    pub active: Option<bool>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub allow_negative_amount: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
pub struct BranchesResponse {
    #[serde(default)]
    pub branches: BranchList,
}

#[derive(Debug, Default, Deserialize)]
pub struct BranchList {
    #[serde(default)]
    pub branch: Vec<Branch>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Branch {
    pub branch_number: i32,
    #[serde(default)]
    pub branch_name: String,
    pub abbreviation: Option<String>,
    pub ext_branch_id: Option<String>,
    #[serde(default)]
    pub workplaces: WorkplaceList,
    pub country_iso3: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct WorkplaceList {
    #[serde(default)]
    pub workplace: Vec<Workplace>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Workplace {
    pub workplace_number: i32,
    #[serde(default)]
    pub workplace_name: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetEmployeesResponse {
    #[serde(default)]
    pub employee_list: EmployeeList,
}

#[derive(Debug, Default, Deserialize)]
pub struct EmployeeList {
    #[serde(default)]
    pub employee: Vec<Employee>,
}

/// An employee; the schema also carries a `password`, which is deliberately not read.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Employee {
    pub employee_number: Option<i64>,
    pub ext_employee_id: Option<String>,
    pub sync_marker: Option<i64>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub active: Option<bool>,
}
