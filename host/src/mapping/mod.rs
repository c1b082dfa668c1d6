//! The datamapper: which records go (filters), and what the target receives (map rules: any
//! source field or `extra` value to any target field, constants, defaults, trim, case,
//! prefix/suffix, lookup tables, number scale, concatenation, sums and differences).
//! Per-field create-only rules travel to the target connector with the write.

mod fields;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

pub use fields::{Doc, extra_of};

use crate::model::{Decimal, Record, decimal};

/// Keeps a record when its `field` passes the one test given.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    pub field: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub equals: Option<Json>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_equals: Option<Json>,
    #[serde(rename = "in", skip_serializing_if = "Option::is_none")]
    pub one_of: Option<Vec<Json>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_in: Option<Vec<Json>>,
    /// Text contains, or a list (such as `categories`) has an element that is or contains it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contains: Option<Json>,
    /// The field is set (true) or not set (false).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exists: Option<bool>,
}

/// How a target field gets its value. Steps, in order: the source (`from`, `concat`,
/// `value`, `sum`/`subtract`), `default` when empty, `transform`s, `prefix`/`suffix`,
/// `scale`, `lookup`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MapRule {
    /// The target field (`name`, `extra.vat_code`, `available`).
    pub to: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// A constant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Json>,
    /// Several fields joined by `separator` (default one space); empty ones left out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concat: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub separator: Option<String>,
    /// Decimal fields added up (`sum = ["on_hand"]`) …
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sum: Option<Vec<String>>,
    /// … minus these (`subtract = ["reserved"]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subtract: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<Json>,
    /// `trim`, `upper`, `lower`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transform: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
    /// Multiplies a number by 10^scale (2: euros → cents; -2: cents → euros).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale: Option<i8>,
    /// Replaces the value by its entry here (`{ NL = "1", DE = "4" }`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lookup: Option<BTreeMap<String, Json>>,
    /// Without a value (or a lookup entry) the record fails with a message naming this rule,
    /// instead of going on without it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub required: bool,
}

/// Why a record did not get through the mapper.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct MappingError {
    /// The target field of the rule at fault.
    pub field: String,
    pub message: String,
}

/// What the mapper did with a record.
#[derive(Clone, Debug, PartialEq)]
pub enum Mapped {
    /// Goes to the target as it came (no map rules).
    Same,
    /// Goes to the target as this.
    Keep(Box<Record>),
    /// Filtered out, with the reason.
    Skip(String),
}

/// The compiled filters and rules of a flow.
#[derive(Clone, Debug, Default)]
pub struct Mapper {
    filters: Vec<Filter>,
    rules: Vec<MapRule>,
}

impl Filter {
    /// The operator's name and operand, or an error when there is not exactly one.
    pub fn check(&self) -> Result<(), String> {
        let count = [
            self.equals.is_some(),
            self.not_equals.is_some(),
            self.one_of.is_some(),
            self.not_in.is_some(),
            self.contains.is_some(),
            self.exists.is_some(),
        ]
        .into_iter()
        .filter(|set| *set)
        .count();
        match count {
            1 => Ok(()),
            0 => Err(format!(
                "filter on `{}` needs one test: equals, not_equals, in, not_in, contains or exists",
                self.field
            )),
            _ => Err(format!(
                "filter on `{}` has {count} tests; give one per filter (add another filter for more)",
                self.field
            )),
        }
    }

    /// None when the record passes; otherwise why not. `get` reads a field's plain value.
    fn reject(&self, get: &mut dyn FnMut(&str) -> Option<Json>) -> Option<String> {
        let value = get(&self.field).filter(|v| !v.is_null());
        let shown = value
            .as_ref()
            .map_or_else(|| "not set".to_owned(), |v| v.to_string());
        let field = &self.field;
        if let Some(expected) = &self.equals {
            return (!value.as_ref().is_some_and(|v| same(v, expected)))
                .then(|| format!("`{field}` is {shown}, the filter wants {expected}"));
        }
        if let Some(unwanted) = &self.not_equals {
            return value
                .as_ref()
                .is_some_and(|v| same(v, unwanted))
                .then(|| format!("`{field}` is {shown}"));
        }
        if let Some(allowed) = &self.one_of {
            return (!value
                .as_ref()
                .is_some_and(|v| allowed.iter().any(|a| same(v, a))))
            .then(|| {
                format!(
                    "`{field}` is {shown}, not one of {}",
                    Json::Array(allowed.clone())
                )
            });
        }
        if let Some(refused) = &self.not_in {
            return value
                .as_ref()
                .is_some_and(|v| refused.iter().any(|r| same(v, r)))
                .then(|| format!("`{field}` is {shown}, which the filter leaves out"));
        }
        if let Some(needle) = &self.contains {
            return (!value.as_ref().is_some_and(|v| contains(v, needle)))
                .then(|| format!("`{field}` ({shown}) does not contain {needle}"));
        }
        if let Some(wanted) = self.exists {
            let present = value.is_some();
            return (present != wanted).then(|| {
                if wanted {
                    format!("`{field}` is not set")
                } else {
                    format!("`{field}` is set")
                }
            });
        }
        None
    }
}

/// Equality that forgives `"1"` vs `1` and `"true"` vs `true` (config files and APIs differ).
fn same(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::String(x), Json::String(y)) => x == y,
        (Json::String(s), other) | (other, Json::String(s)) => s == &other.to_string(),
        _ => a == b,
    }
}

fn contains(haystack: &Json, needle: &Json) -> bool {
    match haystack {
        Json::String(text) => needle.as_str().is_some_and(|n| text.contains(n)),
        Json::Array(items) => items
            .iter()
            .any(|item| same(item, needle) || contains(item, needle)),
        _ => false,
    }
}

fn text_of(value: &Json) -> Option<String> {
    match value {
        Json::Null => None,
        Json::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn decimal_of(value: &Json) -> Option<Decimal> {
    match value {
        Json::Number(n) => decimal::parse(&n.to_string()),
        Json::String(s) => decimal::parse(s),
        _ => None,
    }
}

impl MapRule {
    /// Checks the rule's shape: one source at most, known transforms.
    pub fn check(&self) -> Result<(), String> {
        let sources = [
            self.from.is_some(),
            self.value.is_some(),
            self.concat.is_some(),
            self.sum.is_some(),
        ]
        .into_iter()
        .filter(|s| *s)
        .count();
        if sources > 1 {
            return Err(format!(
                "rule for `{}` has {sources} sources; give one of from, value, concat, sum",
                self.to
            ));
        }
        if self.subtract.is_some() && self.sum.is_none() {
            return Err(format!("rule for `{}`: subtract needs sum", self.to));
        }
        for t in &self.transform {
            if !matches!(t.as_str(), "trim" | "upper" | "lower") {
                return Err(format!(
                    "rule for `{}`: unknown transform {t:?}; use trim, upper or lower",
                    self.to
                ));
            }
        }
        if sources == 0 && self.default.is_none() && self.lookup.is_none() {
            return Err(format!(
                "rule for `{}` has no source: give from, value, concat, sum or default",
                self.to
            ));
        }
        Ok(())
    }

    fn value(&self, doc: &Doc) -> Result<Option<Json>, MappingError> {
        let fail = |message: String| MappingError {
            field: self.to.clone(),
            message,
        };
        let mut value: Option<Json> = if let Some(from) = &self.from {
            doc.get(from)
        } else if let Some(constant) = &self.value {
            Some(constant.clone())
        } else if let Some(parts) = &self.concat {
            let separator = self.separator.as_deref().unwrap_or(" ");
            let texts: Vec<String> = parts
                .iter()
                .filter_map(|p| doc.get(p).as_ref().and_then(text_of))
                .filter(|t| !t.is_empty())
                .collect();
            (!texts.is_empty()).then(|| Json::String(texts.join(separator)))
        } else if let Some(sum) = &self.sum {
            let mut total = Decimal { units: 0, scale: 0 };
            for (field, sign) in sum
                .iter()
                .map(|f| (f, 1))
                .chain(self.subtract.iter().flatten().map(|f| (f, -1)))
            {
                let part = doc
                    .get(field)
                    .as_ref()
                    .and_then(decimal_of)
                    .ok_or_else(|| fail(format!("`{}`: `{field}` is not a number", self.to)))?;
                let next = if sign > 0 {
                    decimal::checked_add(total, part)
                } else {
                    decimal::checked_sub(total, part)
                };
                total =
                    next.ok_or_else(|| fail(format!("`{}`: the result is too large", self.to)))?;
            }
            Some(Json::String(decimal::text(&total)))
        } else {
            doc.get(&self.to)
        };
        if value
            .as_ref()
            .is_none_or(|v| v.is_null() || v.as_str() == Some(""))
        {
            value = self.default.clone();
        }
        let Some(mut value) = value else {
            return Ok(None);
        };
        if let Json::String(text) = &mut value {
            for t in &self.transform {
                *text = match t.as_str() {
                    "trim" => text.trim().to_owned(),
                    "upper" => text.to_uppercase(),
                    "lower" => text.to_lowercase(),
                    _ => text.clone(),
                };
            }
        }
        if self.prefix.is_some() || self.suffix.is_some() {
            let text = text_of(&value).unwrap_or_default();
            value = Json::String(format!(
                "{}{text}{}",
                self.prefix.as_deref().unwrap_or(""),
                self.suffix.as_deref().unwrap_or("")
            ));
        }
        if let Some(scale) = self.scale {
            let decimal = decimal_of(&value)
                .ok_or_else(|| fail(format!("`{}`: {value} is not a number to scale", self.to)))?;
            let shifted = if scale >= 0 {
                Decimal {
                    units: decimal
                        .units
                        .checked_mul(10i64.pow(u32::from(scale.unsigned_abs())))
                        .ok_or_else(|| fail("number too large".into()))?,
                    scale: decimal.scale,
                }
            } else {
                Decimal {
                    units: decimal.units,
                    scale: decimal.scale.saturating_add(scale.unsigned_abs()),
                }
            };
            let text = decimal::text(&shifted);
            value = match decimal::parse(&text) {
                Some(d) if d.scale == 0 => json!(d.units),
                _ => Json::String(text),
            };
        }
        if let Some(table) = &self.lookup {
            let key = text_of(&value).unwrap_or_default();
            value = match table.get(&key) {
                Some(mapped) => mapped.clone(),
                None if self.required => {
                    let known: Vec<&str> = table.keys().map(String::as_str).collect();
                    return Err(fail(format!(
                        "no mapping for {key:?} into `{}`: add it to the lookup table (known: {})",
                        self.to,
                        known.join(", ")
                    )));
                }
                None => match &self.default {
                    Some(default) => default.clone(),
                    None => return Ok(None),
                },
            };
        }
        Ok(Some(value))
    }
}

impl Mapper {
    /// Checks every filter and rule; the errors name them.
    pub fn new(filters: Vec<Filter>, rules: Vec<MapRule>) -> Result<Mapper, String> {
        for filter in &filters {
            filter.check()?;
        }
        for rule in &rules {
            rule.check()?;
        }
        Ok(Mapper { filters, rules })
    }

    /// Filters, then maps one record. The record becomes JSON only when a map rule or a
    /// filter on a canonical field needs it; filters on `extra.<name>` read the typed record.
    pub fn apply(&self, record: &Record) -> Result<Mapped, MappingError> {
        let mut doc: Option<Doc> = None;
        for filter in &self.filters {
            let mut get = |path: &str| match path.strip_prefix("extra.") {
                Some(name) => extra_of(record, name),
                None => doc
                    .get_or_insert_with(|| Doc::from_record(record))
                    .get(path),
            };
            if let Some(reason) = filter.reject(&mut get) {
                return Ok(Mapped::Skip(format!("filtered out: {reason}")));
            }
        }
        if self.rules.is_empty() {
            return Ok(Mapped::Same);
        }
        let source = doc.unwrap_or_else(|| Doc::from_record(record));
        let mut target = source.clone();
        for rule in &self.rules {
            match rule.value(&source)? {
                Some(value) => target
                    .set(&rule.to, value)
                    .map_err(|message| MappingError {
                        field: rule.to.clone(),
                        message,
                    })?,
                None if rule.required => {
                    return Err(MappingError {
                        field: rule.to.clone(),
                        message: format!("`{}` has no value and is required", rule.to),
                    });
                }
                None => {}
            }
        }
        target
            .into_record()
            .map(|record| Mapped::Keep(Box::new(record)))
            .map_err(|message| MappingError {
                field: String::new(),
                message: format!("the mapped record is not valid: {message}"),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::bindings::{
        Address, Amount, Customer, DeliveryState, NamedValue, Order, OrderState, PaymentState,
        Product, StockLevel, Value,
    };

    fn product() -> Record {
        Record::Product(Product {
            key: "1001".into(),
            name: "  Shirt ".into(),
            description: None,
            short_description: None,
            ean: Some("8712345000011".into()),
            prices: vec![],
            categories: vec![vec!["Clothing".into(), "Shirts".into()]],
            properties: vec![],
            variants: vec![],
            active: true,
            extra: vec![
                NamedValue {
                    name: "webshop".into(),
                    value: Value::Boolean(true),
                },
                NamedValue {
                    name: "brand".into(),
                    value: Value::Text("acme".into()),
                },
                NamedValue {
                    name: "group".into(),
                    value: Value::Integer(12),
                },
            ],
        })
    }

    fn rules(toml: &str) -> Mapper {
        #[derive(Deserialize)]
        struct Spec {
            #[serde(default)]
            filter: Vec<Filter>,
            #[serde(default)]
            map: Vec<MapRule>,
        }
        let spec: Spec = toml::from_str(toml).expect("valid TOML");
        Mapper::new(spec.filter, spec.map).expect("valid rules")
    }

    fn kept(mapped: Mapped) -> Doc {
        match mapped {
            Mapped::Keep(record) => Doc::from_record(&record),
            Mapped::Same => panic!("the rules should have changed the record"),
            Mapped::Skip(reason) => panic!("skipped: {reason}"),
        }
    }

    #[test]
    fn filters_keep_and_skip_with_a_reason() {
        let mapper = rules(
            "[[filter]]\nfield = \"extra.webshop\"\nequals = true\n[[filter]]\nfield = \"extra.group\"\nin = [12, 13]\n",
        );
        assert!(matches!(mapper.apply(&product()), Ok(Mapped::Same)));
        let mapper = rules("[[filter]]\nfield = \"extra.group\"\nin = [\"1\", \"2\"]\n");
        let Ok(Mapped::Skip(reason)) = mapper.apply(&product()) else {
            panic!("should skip")
        };
        assert_eq!(
            reason,
            r#"filtered out: `extra.group` is 12, not one of ["1","2"]"#
        );
        let mapper = rules("[[filter]]\nfield = \"categories\"\ncontains = \"Shirts\"\n");
        assert!(matches!(mapper.apply(&product()), Ok(Mapped::Same)));
        let mapper = rules("[[filter]]\nfield = \"description\"\nexists = true\n");
        assert!(matches!(mapper.apply(&product()), Ok(Mapped::Skip(_))));
    }

    #[test]
    fn rules_move_trim_case_concat_and_constant() {
        let mapper = rules(
            r#"
            [[map]]
            to = "name"
            concat = ["extra.brand", "name"]
            transform = ["trim", "upper"]
            [[map]]
            to = "description"
            from = "extra.missing"
            default = "No description yet."
            [[map]]
            to = "extra.channel"
            value = "web"
            [[map]]
            to = "key"
            from = "key"
            prefix = "MP-"
            "#,
        );
        let doc = kept(mapper.apply(&product()).expect("maps"));
        assert_eq!(doc.get("name"), Some(json!("ACME   SHIRT")));
        assert_eq!(doc.get("description"), Some(json!("No description yet.")));
        assert_eq!(doc.get("extra.channel"), Some(json!("web")));
        assert_eq!(doc.get("key"), Some(json!("MP-1001")));
    }

    #[test]
    fn sums_differences_and_scales_never_use_floats() {
        let stock = Record::Stock(StockLevel {
            key: "1".into(),
            on_hand: Decimal {
                units: 10,
                scale: 0,
            },
            reserved: Decimal {
                units: 2500,
                scale: 3,
            },
            available: Decimal { units: 0, scale: 0 },
            location: None,
            extra: vec![NamedValue {
                name: "cents".into(),
                value: Value::Integer(1995),
            }],
        });
        let mapper = rules(
            "[[map]]\nto = \"available\"\nsum = [\"on_hand\"]\nsubtract = [\"reserved\"]\n[[map]]\nto = \"extra.euros\"\nfrom = \"extra.cents\"\nscale = -2\n",
        );
        let doc = kept(mapper.apply(&stock).expect("maps"));
        assert_eq!(doc.get("available"), Some(json!("7.500")));
        assert_eq!(doc.get("extra.euros"), Some(json!("19.95")));
    }

    fn order(country: &str) -> Record {
        let address = Address {
            company: None,
            first_name: Some("Jan".into()),
            last_name: Some("Jansen".into()),
            street: "Dorpsstraat 1".into(),
            house_number: None,
            additional: None,
            postal_code: "1234 AB".into(),
            city: "Utrecht".into(),
            country: country.into(),
            phone: None,
        };
        Record::Order(Order {
            key: "o1".into(),
            number: "10001".into(),
            external_id: None,
            placed_at: "2026-11-29T10:00:00Z".into(),
            state: OrderState::Open,
            payment_state: PaymentState::Paid,
            delivery_state: DeliveryState::Open,
            customer: Customer {
                key: "c1".into(),
                email: "jan@example.nl".into(),
                company_name: None,
                first_name: Some("Jan".into()),
                last_name: Some("Jansen".into()),
                phone: None,
                vat_id: None,
                billing_address: None,
                shipping_address: None,
                external_ids: vec![],
                extra: vec![],
            },
            billing_address: address,
            shipping_address: None,
            lines: vec![],
            shipping: None,
            payment_method: Some("paypal".into()),
            totals: Amount {
                net: 1000,
                gross: 1210,
            },
            currency: "EUR".into(),
            country: country.into(),
            extra: vec![],
        })
    }

    #[test]
    fn a_missing_lookup_entry_fails_the_record_naming_the_rule_and_the_fix() {
        let mapper = rules(
            r#"
            [[filter]]
            field = "payment_state"
            equals = "paid"
            [[map]]
            to = "extra.vat_code"
            from = "country"
            lookup = { NL = 1, BE = 5 }
            required = true
            "#,
        );
        let doc = kept(mapper.apply(&order("NL")).expect("maps"));
        assert_eq!(doc.get("extra.vat_code"), Some(json!(1)));
        assert_eq!(doc.get("state"), Some(json!("open")));
        let mut set = doc.clone();
        set.set("state", json!("in-progress"))
            .expect("enum from kebab case");
        let Record::Order(o) = set.into_record().expect("valid") else {
            panic!("kind")
        };
        assert_eq!(o.state, OrderState::InProgress);
        let error = mapper.apply(&order("DE")).expect_err("no entry for DE");
        assert_eq!(error.field, "extra.vat_code");
        assert!(
            error.message.contains("no mapping for \"DE\"")
                && error.message.contains("known: BE, NL"),
            "{error}"
        );
    }

    #[test]
    fn bad_rules_are_refused_with_the_reason() {
        let rule = MapRule {
            to: "name".into(),
            from: Some("a".into()),
            value: Some(json!(1)),
            ..MapRule::default()
        };
        assert!(
            Mapper::new(vec![], vec![rule])
                .expect_err("two sources")
                .contains("2 sources")
        );
        let filter = Filter {
            field: "x".into(),
            ..Filter::default()
        };
        assert!(
            Mapper::new(vec![filter], vec![])
                .expect_err("no test")
                .contains("needs one test")
        );
    }
}
