//! The connection's settings: the manifest's config schema, and the typed config read from it
//! once per instance, with errors that name the key and the fix.

use std::collections::BTreeMap;

use koppel_sdk::{
    ConfigField, ConfigKind, ConnectorError, Result, Settings, TypedKey, Value, ValueType,
};

/// Whether a web order becomes an open order or is invoiced at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderKind {
    /// An open order in the POS; a payment is registered as a prepayment (deposit).
    Order,
    /// Paid orders are paid, delivered and invoiced at once (`prepay=false`).
    Invoice,
}

impl OrderKind {
    pub fn parse(field: &str, value: &str) -> Result<Self> {
        match value.trim() {
            "order" => Ok(OrderKind::Order),
            "invoice" => Ok(OrderKind::Invoice),
            other => Err(ConnectorError::config(
                field,
                format!("`{field}` = {other:?} must be `order` or `invoice`"),
            )),
        }
    }
}

/// `vatMethod` of orders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VatMethod {
    Inclusive,
    Exclusive,
    Shifted,
    None,
}

impl VatMethod {
    pub fn wire(self) -> &'static str {
        match self {
            VatMethod::Inclusive => "VAT-METHOD-INCLUSIVE",
            VatMethod::Exclusive => "VAT-METHOD-EXCLUSIVE",
            VatMethod::Shifted => "VAT-METHOD-SHIFTED",
            VatMethod::None => "VAT-METHOD-NONE",
        }
    }

    /// Prices on lines include VAT.
    pub fn gross_prices(self) -> bool {
        self == VatMethod::Inclusive
    }
}

/// VAT codes by tax rate, per country (`*` for any country).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VatCodes {
    /// country (upper case, or `*`) → rate text (normalised, `21`, `5.5`) → code.
    pub by_country: BTreeMap<String, BTreeMap<String, i32>>,
}

impl VatCodes {
    /// `{"21": 1, "9": 2}` for every country, or `{"NL": {"21": 1}, "DE": {"19": 4}}`, or both
    /// (`{"*": {...}, "DE": {...}}`).
    pub fn parse(field: &str, json: &str) -> Result<Self> {
        let bad = |why: String| {
            ConnectorError::config(
                field,
                format!(
                    "`{field}` {why}; write it like {field} = {{ \"21\" = 1, \"9\" = 2 }} or {field} = {{ DE = {{ \"19\" = 4 }} }}"
                ),
            )
        };
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| bad(format!("is not JSON ({e})")))?;
        let object = value
            .as_object()
            .ok_or_else(|| bad("must be a JSON object".into()))?;
        let mut codes = VatCodes::default();
        for (key, value) in object {
            let code = |v: &serde_json::Value, rate: &str| -> Result<i32> {
                v.as_i64()
                    .and_then(|c| i32::try_from(c).ok())
                    .ok_or_else(|| bad(format!("gives {v} for rate {rate}, not a VAT code number")))
            };
            match value {
                serde_json::Value::Object(rates) => {
                    let country = key.trim().to_ascii_uppercase();
                    for (rate, v) in rates {
                        let rate = normalise_rate(rate)
                            .ok_or_else(|| bad(format!("has {rate:?}, which is not a tax rate")))?;
                        let code = code(v, &rate)?;
                        codes
                            .by_country
                            .entry(country.clone())
                            .or_default()
                            .insert(rate, code);
                    }
                }
                v => {
                    let rate = normalise_rate(key)
                        .ok_or_else(|| bad(format!("has {key:?}, which is not a tax rate")))?;
                    let code = code(v, &rate)?;
                    codes
                        .by_country
                        .entry("*".into())
                        .or_default()
                        .insert(rate, code);
                }
            }
        }
        Ok(codes)
    }

    /// The code for a rate in a country: the country's own table, else `*`. `None` when
    /// neither is configured for that country; `Some(None)` when configured without that rate.
    pub fn lookup(&self, country: &str, rate: &str) -> Option<Option<i32>> {
        let table = self
            .by_country
            .get(&country.to_ascii_uppercase())
            .or_else(|| self.by_country.get("*"))?;
        Some(table.get(rate).copied())
    }
}

/// `"21.00"` → `"21"`, `"5.50"` → `"5.5"`; `None` for anything that is not a number.
pub fn normalise_rate(text: &str) -> Option<String> {
    koppel_sdk::Decimal::parse(text.trim().trim_end_matches('%')).map(|d| d.normalize().to_string())
}

/// The branch MplusKASSA enters orders in when none is named; any other needs a workplace.
pub const DEFAULT_BRANCH: i32 = 1;

/// The typed config of a connection.
pub struct MplusConfig {
    /// The SOAP endpoint with the credentials: never print it.
    pub endpoint: String,
    /// `scheme://host:port` of the endpoint, for messages.
    pub host: String,
    pub branch: i32,
    pub stock_branches: Vec<i32>,
    pub employee: i64,
    pub workplace: Option<i32>,
    pub decimal_places: u8,
    pub currency: String,
    pub order_kind: OrderKind,
    pub vat_method: VatMethod,
    pub shipping_article: i64,
    pub discount_article: Option<i64>,
    pub turnover_group: Option<i32>,
    pub turnover_groups: BTreeMap<String, i32>,
    pub vat_codes: VatCodes,
    pub payment_methods: BTreeMap<String, String>,
    pub default_payment_method: Option<String>,
    pub delivery_methods: BTreeMap<String, String>,
    pub default_relation: Option<i64>,
    pub always_default_relation: bool,
    /// A known customer's relation takes the order's name, addresses, phone and VAT number.
    pub update_relations: bool,
    /// Put before the shop's order number in `extOrderId` (and the idempotency key), so that
    /// several shops (or a shop whose numbers restart) share one till; order status is read
    /// back for this prefix's orders only.
    pub order_prefix: String,
}

impl MplusConfig {
    pub fn from_settings(s: &Settings) -> Result<Self> {
        let base_url = s.require("base_url")?.trim();
        if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
            return Err(ConnectorError::config(
                "base_url",
                format!(
                    "`base_url` = {base_url:?} must be a URL like https://api.mpluskassa.nl:44123 (with your port)"
                ),
            ));
        }
        let ident = s.require("ident")?;
        let secret = s.require("secret")?;
        let endpoint = crate::soap::endpoint(base_url, ident, secret);
        let host = koppel_sdk::http::host_of(&endpoint).to_owned();
        let branch: i32 = s.parse_or("branch_number", 1)?;
        let stock_branches = match s.get("stock_branches") {
            None => vec![branch],
            Some(raw) => raw
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| {
                    p.parse::<i32>().map_err(|_| {
                        ConnectorError::config(
                            "stock_branches",
                            format!(
                                "`stock_branches` = {raw:?}: {p:?} is not a branch number; write them like 1,2"
                            ),
                        )
                    })
                })
                .collect::<Result<Vec<_>>>()?,
        };
        if stock_branches.is_empty() {
            return Err(ConnectorError::config(
                "stock_branches",
                "`stock_branches` names no branch; leave it out for the order branch",
            ));
        }
        let decimal_places: u8 = s.parse_or("decimal_places", 0)?;
        if decimal_places > 3 {
            return Err(ConnectorError::config(
                "decimal_places",
                format!("`decimal_places` = {decimal_places} must be 0 to 3"),
            ));
        }
        let vat_method = match s.get("vat_method").unwrap_or("inclusive") {
            "inclusive" => VatMethod::Inclusive,
            "exclusive" => VatMethod::Exclusive,
            "shifted" => VatMethod::Shifted,
            "none" => VatMethod::None,
            other => {
                return Err(ConnectorError::config(
                    "vat_method",
                    format!(
                        "`vat_method` = {other:?} must be inclusive, exclusive, shifted or none"
                    ),
                ));
            }
        };
        let vat_codes = match s.get("vat_codes") {
            Some(json) => VatCodes::parse("vat_codes", json)?,
            None => VatCodes::default(),
        };
        let turnover_groups: BTreeMap<String, i32> = s.json("turnover_groups")?;
        let relation_mode = s.get("relation_mode").unwrap_or("customer");
        let always_default_relation = match relation_mode {
            "customer" => false,
            "default" => true,
            other => {
                return Err(ConnectorError::config(
                    "relation_mode",
                    format!("`relation_mode` = {other:?} must be customer or default"),
                ));
            }
        };
        let default_relation = s
            .get("default_relation")
            .map(|_| s.parse("default_relation"))
            .transpose()?;
        if always_default_relation && default_relation.is_none() {
            return Err(ConnectorError::config(
                "default_relation",
                "`relation_mode` = default needs `default_relation` (the relation number every order is booked on)",
            ));
        }
        let workplace: Option<i32> = s
            .get("workplace_number")
            .map(|_| s.parse("workplace_number"))
            .transpose()?;
        // API-NOTES section 5: "Sending a non-default `entryBranchNumber` also requires a
        // `workplaceNumber`". The default is branch 1, the one the notes' order example enters
        // without a workplace (and this connector's default).
        if branch != DEFAULT_BRANCH && workplace.is_none() {
            return Err(ConnectorError::config(
                "workplace_number",
                format!(
                    "`branch_number` = {branch} is not the default branch ({DEFAULT_BRANCH}), so \
                     MplusKASSA needs the workplace (till) orders are entered on: set \
                     `workplace_number` to one of branch {branch}'s workplaces (the `branches` \
                     stream lists them), or use branch {DEFAULT_BRANCH}"
                ),
            ));
        }
        let order_prefix = s.get("order_prefix").unwrap_or("").trim().to_owned();
        if order_prefix.chars().count() > 20
            || order_prefix
                .chars()
                .any(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/')))
        {
            return Err(ConnectorError::config(
                "order_prefix",
                format!(
                    "`order_prefix` = {order_prefix:?} must be at most 20 letters, digits or - _ . : /, like \"NL-\""
                ),
            ));
        }
        Ok(MplusConfig {
            endpoint,
            host,
            branch,
            stock_branches,
            employee: s.parse_or("employee_number", 999_999)?,
            workplace,
            decimal_places,
            currency: s
                .get("currency")
                .unwrap_or("EUR")
                .trim()
                .to_ascii_uppercase(),
            order_kind: OrderKind::parse("order_type", s.get("order_type").unwrap_or("order"))?,
            vat_method,
            shipping_article: s.parse_or("shipping_article", 999)?,
            discount_article: s
                .get("discount_article")
                .map(|_| s.parse("discount_article"))
                .transpose()?,
            turnover_group: s
                .get("turnover_group")
                .map(|_| s.parse("turnover_group"))
                .transpose()?,
            turnover_groups: turnover_groups
                .into_iter()
                .map(|(k, v)| (k.trim().to_ascii_uppercase(), v))
                .collect(),
            vat_codes,
            payment_methods: s.json("payment_methods")?,
            default_payment_method: s.get("default_payment_method").map(str::to_owned),
            delivery_methods: s.json("delivery_methods")?,
            default_relation,
            always_default_relation,
            update_relations: s.flag("update_relations", true)?,
            order_prefix,
        })
    }

    /// The turnover group for lines of an order taxed in `country`.
    pub fn turnover_group_for(&self, country: &str) -> Option<i32> {
        self.turnover_groups
            .get(&country.to_ascii_uppercase())
            .copied()
            .or(self.turnover_group)
    }
}

fn field(
    name: &str,
    label: &str,
    kind: ConfigKind,
    required: bool,
    default: Option<Value>,
    description: &str,
) -> ConfigField {
    ConfigField {
        name: name.into(),
        label: label.into(),
        description: description.into(),
        kind,
        required,
        default,
        choices: Vec::new(),
    }
}

fn choice(
    name: &str,
    label: &str,
    default: &str,
    choices: &[&str],
    description: &str,
) -> ConfigField {
    ConfigField {
        choices: choices.iter().map(|c| (*c).to_owned()).collect(),
        ..field(
            name,
            label,
            ConfigKind::Choice,
            false,
            Some(Value::Text(default.into())),
            description,
        )
    }
}

/// The keys written as TOML tables in `koppel.toml` (contract 0.1.1); the host passes them
/// as JSON, which `from_settings` reads as before.
pub fn types() -> Vec<TypedKey> {
    vec![
        TypedKey::new(
            "vat_codes",
            ValueType::Table,
            r#"{ "21" = 1, "9" = 2, DE = { "19" = 4 } }"#,
        ),
        TypedKey::new(
            "turnover_groups",
            ValueType::Table,
            "{ NL = 10, DE = 11, BE = 12 }",
        ),
        TypedKey::new(
            "payment_methods",
            ValueType::Table,
            r#"{ payment_invoice = "OPREKENING", iDEAL = "IDEAL" }"#,
        ),
        TypedKey::new("delivery_methods", ValueType::Table, r#"{ DHL = "POST" }"#),
    ]
}

/// The manifest's config schema.
pub fn schema() -> Vec<ConfigField> {
    use ConfigKind::*;
    vec![
        field(
            "base_url",
            "API address",
            Url,
            true,
            None,
            "The MplusQapi address with your customer-specific port and, if you were given one, a path: https://api.mpluskassa.nl:44123",
        ),
        field(
            "ident",
            "API ident",
            Text,
            true,
            None,
            "The API ident MplusKASSA gave you (sent as the `ident` query parameter).",
        ),
        field(
            "secret",
            "API secret",
            Secret,
            true,
            None,
            "The API secret MplusKASSA gave you (sent as the `secret` query parameter; never logged).",
        ),
        field(
            "branch_number",
            "Branch",
            Integer,
            false,
            Some(Value::Integer(1)),
            "The branch (filiaal) orders are entered and booked in, and whose stock is read.",
        ),
        field(
            "stock_branches",
            "Stock branches",
            Text,
            false,
            None,
            "Branches whose stock is read, comma-separated (1,2); default: the order branch.",
        ),
        field(
            "employee_number",
            "Employee",
            Integer,
            false,
            Some(Value::Integer(999_999)),
            "The employee orders are entered by; 999999 is the super-user integrators use.",
        ),
        field(
            "workplace_number",
            "Workplace",
            Integer,
            false,
            None,
            "The workplace (kassa) of the branch; required when the branch is not the default branch 1.",
        ),
        field(
            "decimal_places",
            "Quantity decimals",
            Integer,
            false,
            Some(Value::Integer(0)),
            "Decimals of the quantities sent on order lines (0 to 3); a quantity with more decimals fails its order.",
        ),
        field(
            "currency",
            "Currency",
            Text,
            false,
            Some(Value::Text("EUR".into())),
            "The installation's currency (MplusKASSA amounts carry none).",
        ),
        choice(
            "order_type",
            "Order or invoice",
            "order",
            &["order", "invoice"],
            "`order`: web orders become open orders, a payment is a prepayment; `invoice`: paid orders are delivered and invoiced at once. A write option `order_type` overrides it.",
        ),
        choice(
            "vat_method",
            "VAT method",
            "inclusive",
            &["inclusive", "exclusive", "shifted", "none"],
            "Whether line prices include VAT (inclusive: gross prices are sent) or not (net prices are sent).",
        ),
        field(
            "vat_codes",
            "VAT codes",
            Json,
            false,
            None,
            "VAT code per tax rate, for every country or per country: a table like { \"21\" = 1, \"9\" = 2, DE = { \"19\" = 4 } }. Default: the branch's VAT table (getVatGroupList).",
        ),
        field(
            "turnover_group",
            "Turnover group",
            Integer,
            false,
            None,
            "Turnover (revenue) group for every web order line; default: each article's own.",
        ),
        field(
            "turnover_groups",
            "Turnover group per country",
            Json,
            false,
            None,
            "Turnover group per country of the order, overriding `turnover_group`: a table like { DE = 11, BE = 12 }.",
        ),
        field(
            "shipping_article",
            "Shipping article",
            Integer,
            false,
            Some(Value::Integer(999)),
            "The article number shipping costs are booked on.",
        ),
        field(
            "discount_article",
            "Discount article",
            Integer,
            false,
            None,
            "The article number a shop's lines that are no product (promotions, discounts, credits) are booked on; without it an order with such a line worth something fails.",
        ),
        field(
            "payment_methods",
            "Payment methods",
            Json,
            false,
            None,
            "Shop payment method → MplusKASSA payment method code: a table like { iDEAL = \"IDEAL\", PayPal = \"PAYPAL\" }.",
        ),
        field(
            "default_payment_method",
            "Default payment method",
            Text,
            false,
            None,
            "The MplusKASSA payment method code for paid orders whose method is not in `payment_methods`.",
        ),
        field(
            "delivery_methods",
            "Delivery methods",
            Json,
            false,
            None,
            "Shop shipping method → MplusKASSA delivery method code: a table like { DHL = \"POST\" }.",
        ),
        choice(
            "relation_mode",
            "Customer of an order",
            "customer",
            &["customer", "default"],
            "`customer`: find the relation by e-mail, create it when missing; `default`: book every order on `default_relation`.",
        ),
        field(
            "update_relations",
            "Update known customers",
            Boolean,
            false,
            Some(Value::Boolean(true)),
            "When an order's customer is found by e-mail, bring the relation's name, addresses, phone and VAT number up to date from the order (what the order leaves empty is kept); false: the till keeps the relation as it is.",
        ),
        field(
            "order_prefix",
            "Order number prefix",
            Text,
            false,
            None,
            "Put before the shop's order number in MplusKASSA's external order id (NL-10001), so that several shops, or a shop whose order numbers start over, share one till; each shop's connection gets its own. Order status is read back for this prefix's orders only. Default: none.",
        ),
        field(
            "default_relation",
            "Default relation",
            Integer,
            false,
            None,
            "The relation number for orders without an e-mail address (and for all orders with relation_mode = default).",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        Settings::from(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>(),
        )
    }

    const BASE: [(&str, &str); 3] = [
        ("base_url", "https://api.mpluskassa.nl:44123"),
        ("ident", "shop"),
        ("secret", "s3cret!"),
    ];

    #[test]
    fn defaults_and_the_endpoint() {
        let c = MplusConfig::from_settings(&settings(&BASE)).expect("valid");
        assert_eq!(c.employee, 999_999);
        assert_eq!((c.branch, c.stock_branches.clone()), (1, vec![1]));
        assert_eq!(c.shipping_article, 999);
        assert_eq!(c.order_kind, OrderKind::Order);
        assert_eq!(c.host, "https://api.mpluskassa.nl:44123");
        assert!(!c.host.contains("s3cret"));
        assert!(c.endpoint.ends_with("/?ident=shop&secret=s3cret%21"));
    }

    #[test]
    fn a_branch_other_than_the_default_needs_a_workplace() {
        let mut pairs = BASE.to_vec();
        pairs.push(("branch_number", "2"));
        let error = MplusConfig::from_settings(&settings(&pairs))
            .err()
            .expect("branch 2 without a workplace");
        assert_eq!(error.field.as_deref(), Some("workplace_number"));
        assert!(
            error.message.contains("`workplace_number`")
                && error.message.contains("branch_number` = 2")
                && error.message.contains("set `workplace_number`"),
            "{}",
            error.message
        );
        pairs.push(("workplace_number", "3"));
        let c = MplusConfig::from_settings(&settings(&pairs)).expect("with a workplace");
        assert_eq!((c.branch, c.workplace), (2, Some(3)));
        // The default branch needs none, but may have one.
        let c = MplusConfig::from_settings(&settings(&BASE)).expect("default branch");
        assert_eq!((c.branch, c.workplace), (1, None));
        let mut pairs = BASE.to_vec();
        pairs.push(("branch_number", "1"));
        pairs.push(("workplace_number", "5"));
        let c = MplusConfig::from_settings(&settings(&pairs)).expect("default with workplace");
        assert_eq!(c.workplace, Some(5));
    }

    #[test]
    fn errors_name_the_key() {
        let mut pairs = BASE.to_vec();
        pairs.push(("stock_branches", "1,x"));
        let error = MplusConfig::from_settings(&settings(&pairs))
            .err()
            .expect("invalid");
        assert_eq!(error.field.as_deref(), Some("stock_branches"));
        let mut pairs = BASE.to_vec();
        pairs.push(("vat_codes", "{\"DE\": {\"19\": \"x\"}}"));
        let error = MplusConfig::from_settings(&settings(&pairs))
            .err()
            .expect("invalid");
        assert_eq!(error.field.as_deref(), Some("vat_codes"));
        let mut pairs = BASE.to_vec();
        pairs.push(("relation_mode", "default"));
        let error = MplusConfig::from_settings(&settings(&pairs))
            .err()
            .expect("invalid");
        assert_eq!(error.field.as_deref(), Some("default_relation"));
        let error = MplusConfig::from_settings(&settings(&BASE[..2]))
            .err()
            .expect("invalid");
        assert_eq!(error.field.as_deref(), Some("secret"));
    }

    #[test]
    fn vat_codes_per_country_with_a_fallback() {
        let codes = VatCodes::parse(
            "vat_codes",
            r#"{"21": 1, "9.0": 2, "DE": {"19": 4, "7%": 5}}"#,
        )
        .expect("valid");
        assert_eq!(codes.lookup("NL", "21"), Some(Some(1)));
        assert_eq!(codes.lookup("nl", "9"), Some(Some(2)));
        assert_eq!(codes.lookup("DE", "7"), Some(Some(5)));
        assert_eq!(codes.lookup("DE", "21"), Some(None), "DE has its own table");
        assert_eq!(VatCodes::default().lookup("NL", "21"), None);
        assert_eq!(normalise_rate("21.00").as_deref(), Some("21"));
        assert_eq!(normalise_rate("5.50").as_deref(), Some("5.5"));
    }
}
