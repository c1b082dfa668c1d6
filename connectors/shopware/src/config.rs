//! The connection's settings: the manifest's config fields, and the typed [`Config`] they are
//! checked into once, with errors that name the key and the fix.

use koppel_sdk::time::parse_millis;
use koppel_sdk::{ConfigField, ConfigKind, ConnectorError, Result, Settings, Value};

use crate::machines::Machine;
use crate::time;

/// Rows (products and variants) per sync request. Chosen from the batch-size measurement in
/// `tests/e2e/benches/shopware.rs` (see the README): throughput levels off above ~100 rows
/// while smaller requests keep a rejected batch cheap to split.
pub const DEFAULT_BATCH_SIZE: u32 = 250;
/// Stock rows per sync request (flat `{id, stock}` updates).
pub const DEFAULT_STOCK_BATCH_SIZE: u32 = 500;

/// What to do when a product's tax rate does not exist in the shop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaxMissing {
    Create,
    Fail,
}

/// Where a product's short description goes: Shopware has no such field.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ShortDescription {
    /// Not written (the default): `metaDescription` is the SEO text of search results.
    #[default]
    Skip,
    /// Into `metaDescription`.
    MetaDescription,
    /// Into this custom field.
    CustomField(String),
}

/// The checked config.
#[derive(Clone, Debug)]
pub struct Config {
    /// Without trailing slash and without `/api`.
    pub shop_url: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Names or ids; empty: every storefront and headless sales channel.
    pub sales_channels: Vec<String>,
    /// 30 (everywhere), 20 (search and link), 10 (link only).
    pub visibility: u8,
    pub default_currency: String,
    /// A language id or locale code (`de-DE`) to write translated fields in.
    pub language: Option<String>,
    pub batch_size: usize,
    pub stock_batch_size: usize,
    pub tax_missing: TaxMissing,
    /// A category id or name under which category paths start.
    pub category_root: Option<String>,
    pub order_states: Vec<String>,
    pub payment_states: Vec<String>,
    pub delivery_states: Vec<String>,
    /// Shopware timestamp; orders changed earlier are not read on the first run.
    pub orders_since: Option<String>,
    pub send_status_mails: bool,
    pub queue_indexing: bool,
    pub short_description: ShortDescription,
}

fn field(
    name: &str,
    label: &str,
    description: &str,
    kind: ConfigKind,
    required: bool,
    default: Option<Value>,
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

fn text(value: &str) -> Option<Value> {
    Some(Value::Text(value.into()))
}

/// The manifest's config fields.
pub fn fields() -> Vec<ConfigField> {
    let mut visibility = field(
        "visibility",
        "Visibility",
        "How visible written products are in the sales channels: all (listings and search), \
         search (search and direct link) or link (direct link only).",
        ConfigKind::Choice,
        false,
        text("all"),
    );
    visibility.choices = vec!["all".into(), "search".into(), "link".into()];
    let mut tax_missing = field(
        "tax_missing",
        "Missing tax rate",
        "When a product's tax rate does not exist in the shop: create it, or fail the product \
         with a clear error.",
        ConfigKind::Choice,
        false,
        text("create"),
    );
    tax_missing.choices = vec!["create".into(), "fail".into()];
    vec![
        field(
            "shop_url",
            "Shop URL",
            "The shop's address, e.g. https://shop.example.com (the Admin API is below /api).",
            ConfigKind::Url,
            true,
            None,
        ),
        field(
            "access_key_id",
            "Access key ID",
            "The integration's access key ID (Settings → System → Integrations; starts with SWIA).",
            ConfigKind::Text,
            true,
            None,
        ),
        field(
            "secret_access_key",
            "Secret access key",
            "The integration's secret access key.",
            ConfigKind::Secret,
            true,
            None,
        ),
        field(
            "sales_channels",
            "Sales channels",
            "Comma-separated names or ids of the sales channels products are made visible in; \
             empty: every storefront and headless sales channel.",
            ConfigKind::Text,
            false,
            None,
        ),
        visibility,
        field(
            "default_currency",
            "Default currency",
            "ISO code of the shop's default currency; every product needs a price in it.",
            ConfigKind::Text,
            false,
            text("EUR"),
        ),
        field(
            "language",
            "Language",
            "Language id or locale code (de-DE) to write names and descriptions in; empty: the \
             shop's system language.",
            ConfigKind::Text,
            false,
            None,
        ),
        field(
            "batch_size",
            "Batch size",
            "Products and variants per sync request.",
            ConfigKind::Integer,
            false,
            Some(Value::Integer(i64::from(DEFAULT_BATCH_SIZE))),
        ),
        field(
            "stock_batch_size",
            "Stock batch size",
            "Stock updates per sync request.",
            ConfigKind::Integer,
            false,
            Some(Value::Integer(i64::from(DEFAULT_STOCK_BATCH_SIZE))),
        ),
        tax_missing,
        field(
            "category_root",
            "Category root",
            "Id or name of the category that category paths start below; empty: the first sales \
             channel's navigation category.",
            ConfigKind::Text,
            false,
            None,
        ),
        field(
            "order_states",
            "Order states to read",
            "Comma-separated order states (open, in_progress, completed, cancelled) of the orders \
             read; empty: any.",
            ConfigKind::Text,
            false,
            None,
        ),
        field(
            "payment_states",
            "Payment states to read",
            "Comma-separated payment states (e.g. paid, authorized) of the orders read; empty: any.",
            ConfigKind::Text,
            false,
            text("paid"),
        ),
        field(
            "delivery_states",
            "Delivery states to read",
            "Comma-separated delivery states (e.g. open) of the orders read; empty: any.",
            ConfigKind::Text,
            false,
            None,
        ),
        field(
            "orders_since",
            "Orders since",
            "Date (2024-01-01) or timestamp before which orders are not read on the first run.",
            ConfigKind::Text,
            false,
            None,
        ),
        field(
            "short_description_field",
            "Short description goes to",
            "Where a product's short description is written: empty (not written; Shopware has \
             no short description), metaDescription (the SEO description of search results), \
             or customFields.<name>.",
            ConfigKind::Text,
            false,
            None,
        ),
        field(
            "send_status_mails",
            "Send status mails",
            "Let Shopware mail the customer when koppel changes an order's state.",
            ConfigKind::Boolean,
            false,
            Some(Value::Boolean(false)),
        ),
        field(
            "queue_indexing",
            "Queue indexing",
            "Let Shopware's message queue index what a sync wrote (indexing-behavior: \
             use-queue-indexing; the shop's queue workers must run). Off: the shop indexes in \
             the request, which on 6.4 means once per record.",
            ConfigKind::Boolean,
            false,
            Some(Value::Boolean(true)),
        ),
    ]
}

fn list(settings: &Settings, name: &str) -> Vec<String> {
    settings
        .get(name)
        .unwrap_or("")
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

fn states(settings: &Settings, name: &str, machine: Machine) -> Result<Vec<String>> {
    let known = machine.states();
    let mut out = Vec::new();
    for state in list(settings, name) {
        let state = state.to_lowercase().replace([' ', '-'], "_");
        if !known.contains(&state.as_str()) {
            return Err(ConnectorError::config(
                name,
                format!(
                    "`{name}`: {state:?} is not a Shopware {} state; use one of {}",
                    machine.label(),
                    known.join(", ")
                ),
            ));
        }
        out.push(state);
    }
    Ok(out)
}

fn size(settings: &Settings, name: &str, default: u32) -> Result<usize> {
    let value: u32 = settings.parse_or(name, default)?;
    if !(1..=5000).contains(&value) {
        return Err(ConnectorError::config(
            name,
            format!("`{name}` = {value} must be between 1 and 5000"),
        ));
    }
    Ok(value as usize)
}

impl Config {
    /// Checks the settings the host passed.
    pub fn from_settings(settings: &Settings) -> Result<Config> {
        let shop_url = settings.base_url("shop_url")?;
        let shop_url = shop_url
            .strip_suffix("/api")
            .unwrap_or(&shop_url)
            .to_owned();
        let access_key_id = settings.require("access_key_id")?.trim().to_owned();
        let secret_access_key = settings.require("secret_access_key")?.to_owned();
        let visibility = match settings.get("visibility").unwrap_or("all").trim() {
            "all" | "30" => 30,
            "search" | "20" => 20,
            "link" | "10" => 10,
            other => {
                return Err(ConnectorError::config(
                    "visibility",
                    format!("`visibility` = {other:?}: use all, search or link"),
                ));
            }
        };
        let default_currency = settings
            .get("default_currency")
            .unwrap_or("EUR")
            .trim()
            .to_ascii_uppercase();
        if default_currency.len() != 3 || !default_currency.bytes().all(|b| b.is_ascii_uppercase())
        {
            return Err(ConnectorError::config(
                "default_currency",
                format!(
                    "`default_currency` = {default_currency:?} is not an ISO 4217 code like EUR"
                ),
            ));
        }
        let tax_missing = match settings.get("tax_missing").unwrap_or("create").trim() {
            "create" => TaxMissing::Create,
            "fail" => TaxMissing::Fail,
            other => {
                return Err(ConnectorError::config(
                    "tax_missing",
                    format!("`tax_missing` = {other:?}: use create or fail"),
                ));
            }
        };
        let orders_since = match settings.get("orders_since") {
            None => None,
            Some(raw) => Some(time::shopware(parse_millis(raw).ok_or_else(|| {
                ConnectorError::config(
                    "orders_since",
                    format!("`orders_since` = {raw:?} is not a date like 2024-01-01"),
                )
            })?)),
        };
        let short_description = match settings.get("short_description_field").map(str::trim) {
            None | Some("") => ShortDescription::Skip,
            Some("metaDescription" | "meta_description") => ShortDescription::MetaDescription,
            Some(other) => match other
                .strip_prefix("customFields.")
                .or_else(|| other.strip_prefix("custom_fields."))
                .map(str::trim)
                .filter(|name| !name.is_empty())
            {
                Some(name) => ShortDescription::CustomField(name.to_owned()),
                None => {
                    return Err(ConnectorError::config(
                        "short_description_field",
                        format!(
                            "`short_description_field` = {other:?}: use metaDescription, \
                             customFields.<name>, or leave it empty"
                        ),
                    ));
                }
            },
        };
        Ok(Config {
            shop_url,
            access_key_id,
            secret_access_key,
            sales_channels: list(settings, "sales_channels"),
            visibility,
            default_currency,
            language: settings.get("language").map(|s| s.trim().to_owned()),
            batch_size: size(settings, "batch_size", DEFAULT_BATCH_SIZE)?,
            stock_batch_size: size(settings, "stock_batch_size", DEFAULT_STOCK_BATCH_SIZE)?,
            tax_missing,
            category_root: settings.get("category_root").map(|s| s.trim().to_owned()),
            order_states: states(settings, "order_states", Machine::Order)?,
            payment_states: states(settings, "payment_states", Machine::Payment)?,
            delivery_states: states(settings, "delivery_states", Machine::Delivery)?,
            orders_since,
            send_status_mails: settings.flag("send_status_mails", false)?,
            queue_indexing: settings.flag("queue_indexing", true)?,
            short_description,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(entries: &[(&str, &str)]) -> Settings {
        Settings::from(
            entries
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>(),
        )
    }

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![
            ("shop_url", "https://shop.example/api/"),
            ("access_key_id", "SWIA1"),
            ("secret_access_key", "s3cret"),
        ]
    }

    #[test]
    fn defaults_and_lists() {
        let mut entries = base();
        entries.push(("sales_channels", "Storefront, Headless ,"));
        entries.push(("payment_states", "paid, Authorized"));
        let config = Config::from_settings(&settings(&entries)).expect("valid");
        assert_eq!(config.shop_url, "https://shop.example");
        assert_eq!(config.sales_channels, vec!["Storefront", "Headless"]);
        assert_eq!(config.payment_states, vec!["paid", "authorized"]);
        assert_eq!(config.batch_size, DEFAULT_BATCH_SIZE as usize);
        assert_eq!(config.visibility, 30);
        assert_eq!(config.default_currency, "EUR");
        assert_eq!(config.tax_missing, TaxMissing::Create);
        assert!(!config.send_status_mails);
        assert_eq!(config.short_description, ShortDescription::Skip);
        assert!(
            config.queue_indexing,
            "every supported version queues indexing"
        );

        let mut entries = base();
        entries.push(("short_description_field", "customFields.teaser"));
        let config = Config::from_settings(&settings(&entries)).expect("valid");
        assert_eq!(
            config.short_description,
            ShortDescription::CustomField("teaser".into())
        );
        let mut entries = base();
        entries.push(("short_description_field", "description"));
        let error = Config::from_settings(&settings(&entries)).expect_err("no such target");
        assert_eq!(error.field.as_deref(), Some("short_description_field"));
    }

    #[test]
    fn errors_name_the_key_and_never_the_secret() {
        let mut entries = base();
        entries.push(("payment_states", "payed"));
        let error = Config::from_settings(&settings(&entries)).expect_err("typo");
        assert_eq!(error.field.as_deref(), Some("payment_states"));
        assert!(error.message.contains("paid"), "{}", error.message);

        let mut entries = base();
        entries.push(("batch_size", "0"));
        let error = Config::from_settings(&settings(&entries)).expect_err("zero");
        assert_eq!(error.field.as_deref(), Some("batch_size"));

        let mut entries = base();
        entries.push(("orders_since", "last week"));
        let error = Config::from_settings(&settings(&entries)).expect_err("date");
        assert_eq!(error.field.as_deref(), Some("orders_since"));
        assert!(!error.message.contains("s3cret"));

        let error = Config::from_settings(&settings(&base()[..2])).expect_err("no secret");
        assert_eq!(error.field.as_deref(), Some("secret_access_key"));
    }

    #[test]
    fn every_field_has_a_description() {
        for field in fields() {
            assert!(!field.description.is_empty(), "{}", field.name);
        }
        assert!(
            fields()
                .iter()
                .any(|f| f.name == "secret_access_key" && f.kind == ConfigKind::Secret)
        );
    }
}
