//! The canonical model: the records connectors exchange (generated from `wit/types.wit`),
//! their kinds, keys and field names, decimals ([`decimal`]), and the one JSON form the host
//! stores and hashes them in ([`codec`]). Everything else in the host reads records through
//! here.

pub mod codec;
pub mod decimal;
#[cfg(test)]
mod samples;

pub use crate::runtime::bindings::{
    Address, Amount, Customer, Decimal, DeliveryState, ExternalId, NamedValue, Order, OrderLine,
    OrderState, OrderStatus, PaymentState, Price, Product, Property, Record, RecordKind,
    ReferenceEntry, Shipping, StockLevel, Value, Variant,
};

/// The kind of a record.
pub fn kind_of(record: &Record) -> RecordKind {
    match record {
        Record::Product(_) => RecordKind::Product,
        Record::Stock(_) => RecordKind::Stock,
        Record::Customer(_) => RecordKind::Customer,
        Record::Order(_) => RecordKind::Order,
        Record::OrderStatus(_) => RecordKind::OrderStatus,
        Record::Reference(_) => RecordKind::Reference,
    }
}

/// A record's key: what the id map, the order ledger and the failed queue know it by.
pub fn key_of(record: &Record) -> &str {
    match record {
        Record::Product(p) => &p.key,
        Record::Stock(s) => &s.key,
        Record::Customer(c) => &c.key,
        Record::Order(o) => &o.key,
        Record::OrderStatus(s) => &s.key,
        Record::Reference(r) => &r.key,
    }
}

/// The tag a record of `kind` carries in its stored JSON form (`{"Product": {…}}`).
pub fn tag(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::Product => "Product",
        RecordKind::Stock => "Stock",
        RecordKind::Customer => "Customer",
        RecordKind::Order => "Order",
        RecordKind::OrderStatus => "OrderStatus",
        RecordKind::Reference => "Reference",
    }
}

/// The top-level field names of a record of `kind`, spelled as in `koppel.toml` (map rules,
/// filters, `create_only`) and in the stored JSON: the WIT names with `_` for `-`.
pub fn field_names(kind: RecordKind) -> &'static [&'static str] {
    match kind {
        RecordKind::Product => &[
            "key",
            "name",
            "description",
            "short_description",
            "ean",
            "prices",
            "categories",
            "properties",
            "variants",
            "active",
            "extra",
        ],
        RecordKind::Stock => &[
            "key",
            "on_hand",
            "reserved",
            "available",
            "location",
            "extra",
        ],
        RecordKind::Customer => &[
            "key",
            "email",
            "company_name",
            "first_name",
            "last_name",
            "phone",
            "vat_id",
            "billing_address",
            "shipping_address",
            "external_ids",
            "extra",
        ],
        RecordKind::Order => &[
            "key",
            "number",
            "external_id",
            "placed_at",
            "state",
            "payment_state",
            "delivery_state",
            "customer",
            "billing_address",
            "shipping_address",
            "lines",
            "shipping",
            "payment_method",
            "totals",
            "currency",
            "country",
            "extra",
        ],
        RecordKind::OrderStatus => &[
            "key",
            "state",
            "payment_state",
            "delivery_state",
            "tracking_codes",
            "extra",
        ],
        RecordKind::Reference => &["key", "name", "fields"],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_are_the_stored_forms_fields_in_order() {
        for record in samples::all() {
            let kind = kind_of(&record);
            let stored: serde_json::Value =
                serde_json::from_str(&codec::encode(&record)).expect("json");
            let body = stored[tag(kind)].as_object().expect("tagged object");
            let names: Vec<&str> = body.keys().map(String::as_str).collect();
            let mut expected = field_names(kind).to_vec();
            expected.sort_unstable();
            let mut names_sorted = names.clone();
            names_sorted.sort_unstable();
            assert_eq!(names_sorted, expected, "{}", kind.name());
        }
    }

    #[test]
    fn every_kind_has_a_sample_and_a_key() {
        let kinds: Vec<RecordKind> = samples::all().iter().map(kind_of).collect();
        for kind in [
            RecordKind::Product,
            RecordKind::Stock,
            RecordKind::Customer,
            RecordKind::Order,
            RecordKind::OrderStatus,
            RecordKind::Reference,
        ] {
            assert!(kinds.contains(&kind), "{}", kind.name());
        }
        assert_eq!(key_of(&samples::all()[0]), "P1000");
    }
}
