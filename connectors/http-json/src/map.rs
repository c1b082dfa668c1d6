//! Canonical records to and from JSON items, by the JSON pointers of a stream's `fields`.
//! Decimals are read from numbers or strings and written as the config says; money in
//! minor units is written in major units (`1995` → `19.95`).

use koppel_sdk::*;
use serde_json::{Map, Value};

use crate::spec::{Decimals, StreamSpec};

/// The canonical field an item field of the config writes (`price`, `net_price`, `tax_rate`
/// and `currency` all come from `prices`), for create-only rules (contract rule 4.7).
pub fn canonical_field(field: &str) -> &str {
    match field {
        "price" | "net_price" | "tax_rate" | "currency" => "prices",
        other => other,
    }
}

/// `body` without the fields `create_only` names (for an update: the target keeps its own).
pub fn without_create_only(spec: &StreamSpec, body: &Value, create_only: &CreateOnly) -> Value {
    let mut body = body.clone();
    for (field, pointer) in &spec.fields {
        if field != "key" && create_only.has(canonical_field(field)) {
            remove(&mut body, pointer);
        }
    }
    body
}

/// Removes the value at `pointer`, if there is one.
fn remove(target: &mut Value, pointer: &str) {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return;
    };
    let last = last.replace("~1", "/").replace("~0", "~");
    let holder = if parent.is_empty() {
        Some(target)
    } else {
        target.pointer_mut(parent)
    };
    if let Some(Value::Object(map)) = holder {
        map.remove(&last);
    }
}

/// The value at `pointer`, treating JSON null as absent.
fn at<'a>(item: &'a Value, pointer: &str) -> Option<&'a Value> {
    item.pointer(pointer).filter(|v| !v.is_null())
}

/// Sets `value` at `pointer`, creating objects on the way.
pub fn set(target: &mut Value, pointer: &str, value: Value) {
    if pointer.is_empty() {
        *target = value;
        return;
    }
    let mut current = target;
    let parts: Vec<String> = pointer
        .split('/')
        .skip(1)
        .map(|p| p.replace("~1", "/").replace("~0", "~"))
        .collect();
    for (i, part) in parts.iter().enumerate() {
        if !current.is_object() {
            *current = Value::Object(Map::new());
        }
        let Value::Object(map) = current else {
            return;
        };
        if i == parts.len() - 1 {
            map.insert(part.clone(), value);
            return;
        }
        current = map.entry(part.clone()).or_insert(Value::Null);
    }
}

/// Reads one stream's canonical fields from an item.
pub struct Reader<'a> {
    pub spec: &'a StreamSpec,
    pub item: &'a Value,
}

impl Reader<'_> {
    fn raw(&self, field: &str) -> Option<&Value> {
        match self.spec.fields.get(field) {
            Some(pointer) => at(self.item, pointer),
            None => self.spec.defaults.get(field).filter(|v| !v.is_null()),
        }
    }

    pub fn text(&self, field: &str) -> Result<Option<String>> {
        match self.raw(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(other) => Err(
                ConnectorError::protocol(format!("`{field}` is {other}, not text"))
                    .with_field(field),
            ),
        }
    }

    pub fn required_text(&self, field: &str) -> Result<String> {
        self.text(field)?
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| {
                ConnectorError::protocol(format!(
                    "an item has no `{field}` at {}",
                    self.spec
                        .fields
                        .get(field)
                        .map_or("(no pointer)", String::as_str)
                ))
                .with_field(field)
            })
    }

    pub fn decimal(&self, field: &str) -> Result<Option<Decimal>> {
        let Some(text) = self.text(field)? else {
            return Ok(None);
        };
        Decimal::parse(&text).map(Some).ok_or_else(|| {
            ConnectorError::protocol(format!("`{field}` = {text:?} is not a decimal"))
                .with_field(field)
        })
    }

    pub fn flag(&self, field: &str, default: bool) -> Result<bool> {
        match self.raw(field) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(Value::String(s)) if matches!(s.as_str(), "true" | "1" | "yes") => Ok(true),
            Some(Value::String(s)) if matches!(s.as_str(), "false" | "0" | "no") => Ok(false),
            Some(Value::Number(n)) => Ok(n.as_f64().is_some_and(|f| f != 0.0)),
            Some(other) => Err(ConnectorError::protocol(format!(
                "`{field}` is {other}, not true or false"
            ))
            .with_field(field)),
        }
    }
}

/// The net amount of `gross` minor units at `rate` percent, rounded half away from zero.
pub fn net_of(gross: i64, rate: Decimal) -> Option<i64> {
    let rate = rate.rescale(4)?.units;
    let divisor = i128::from(1_000_000 + rate);
    let scaled = i128::from(gross) * 1_000_000;
    let rounded = if scaled >= 0 {
        (scaled + divisor / 2) / divisor
    } else {
        (scaled - divisor / 2) / divisor
    };
    i64::try_from(rounded).ok()
}

pub fn product(spec: &StreamSpec, item: &Value) -> Result<Product> {
    let r = Reader { spec, item };
    let key = r.required_text("key")?;
    let mut prices = Vec::new();
    if let Some(gross) = r.decimal("price")? {
        let gross = gross.to_minor(2).ok_or_else(|| {
            ConnectorError::protocol(format!("the price of {key} does not fit")).with_field("price")
        })?;
        let tax_rate = r.decimal("tax_rate")?.unwrap_or(Decimal::ZERO);
        let net = match r.decimal("net_price")? {
            Some(net) => net.to_minor(2),
            None => net_of(gross, tax_rate),
        }
        .ok_or_else(|| {
            ConnectorError::protocol(format!("the net price of {key} does not fit"))
                .with_field("net_price")
        })?;
        prices.push(Price {
            currency: r.text("currency")?.unwrap_or_else(|| "EUR".into()),
            net,
            gross,
            tax_rate,
        });
    }
    Ok(Product {
        name: r.required_text("name")?,
        description: r.text("description")?,
        short_description: None,
        ean: r.text("ean")?,
        prices,
        categories: vec![],
        properties: vec![],
        variants: vec![],
        active: r.flag("active", true)?,
        extra: vec![],
        key,
    })
}

pub fn stock(spec: &StreamSpec, item: &Value) -> Result<StockLevel> {
    let r = Reader { spec, item };
    let on_hand = r.decimal("on_hand")?.unwrap_or(Decimal::ZERO);
    let reserved = r.decimal("reserved")?.unwrap_or(Decimal::ZERO);
    let available = match r.decimal("available")? {
        Some(a) => a,
        None => on_hand.checked_sub(reserved).ok_or_else(|| {
            ConnectorError::protocol("on_hand − reserved does not fit").with_field("available")
        })?,
    };
    Ok(StockLevel {
        key: r.required_text("key")?,
        on_hand,
        reserved,
        available,
        location: r.text("location")?,
        extra: vec![],
    })
}

/// Writes canonical fields into a new item.
pub struct Writer<'a> {
    pub spec: &'a StreamSpec,
    pub decimals: Decimals,
    pub item: Value,
}

impl<'a> Writer<'a> {
    pub fn new(spec: &'a StreamSpec, decimals: Decimals) -> Self {
        Writer {
            spec,
            decimals,
            item: Value::Object(Map::new()),
        }
    }

    fn put(&mut self, field: &str, value: Value) {
        if let Some(pointer) = self.spec.fields.get(field) {
            set(&mut self.item, pointer, value);
        }
    }

    pub fn text(&mut self, field: &str, value: Option<&str>) {
        if let Some(value) = value {
            self.put(field, Value::String(value.to_owned()));
        }
    }

    pub fn flag(&mut self, field: &str, value: bool) {
        self.put(field, Value::Bool(value));
    }

    pub fn decimal(&mut self, field: &str, value: Decimal) {
        let value = decimal_value(value.normalize(), self.decimals);
        self.put(field, value);
    }

    pub fn money(&mut self, field: &str, minor: i64) {
        self.decimal(field, Decimal::from_minor(minor, 2));
    }

    /// Defaults for fields the record did not set.
    pub fn finish(mut self) -> Value {
        for (field, value) in &self.spec.defaults {
            if let Some(pointer) = self.spec.fields.get(field)
                && self.item.pointer(pointer).is_none()
            {
                set(&mut self.item, pointer, value.clone());
            }
        }
        self.item
    }
}

pub fn decimal_value(value: Decimal, decimals: Decimals) -> Value {
    let text = value.to_string();
    match decimals {
        Decimals::Text => Value::String(text),
        Decimals::Number => serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

pub fn product_item(spec: &StreamSpec, decimals: Decimals, p: &Product) -> Result<Value> {
    if p.name.trim().is_empty() {
        return Err(
            ConnectorError::rejected(format!("product {} has no name", p.key)).with_field("name"),
        );
    }
    let mut w = Writer::new(spec, decimals);
    w.text("key", Some(&p.key));
    w.text("name", Some(&p.name));
    w.text("description", p.description.as_deref());
    w.text("ean", p.ean.as_deref());
    w.flag("active", p.active);
    if let Some(price) = p.prices.first() {
        w.money("price", price.gross);
        w.money("net_price", price.net);
        w.decimal("tax_rate", price.tax_rate);
        w.text("currency", Some(&price.currency));
    } else if spec.fields.contains_key("price") {
        return Err(
            ConnectorError::rejected(format!("product {} has no price", p.key))
                .with_field("prices"),
        );
    }
    Ok(w.finish())
}

pub fn stock_item(spec: &StreamSpec, decimals: Decimals, s: &StockLevel) -> Value {
    let mut w = Writer::new(spec, decimals);
    w.text("key", Some(&s.key));
    w.decimal("on_hand", s.on_hand);
    w.decimal("reserved", s.reserved);
    w.decimal("available", s.available);
    w.text("location", s.location.as_deref());
    w.finish()
}

fn state_name(state: PaymentState) -> &'static str {
    match state {
        PaymentState::Open => "open",
        PaymentState::Authorized => "authorized",
        PaymentState::PartiallyPaid => "partially-paid",
        PaymentState::Paid => "paid",
        PaymentState::Refunded => "refunded",
        PaymentState::Failed => "failed",
        PaymentState::Cancelled => "cancelled",
    }
}

pub fn order_item(spec: &StreamSpec, decimals: Decimals, o: &Order) -> Result<Value> {
    let line_spec = StreamSpec {
        fields: spec
            .fields
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("line.").map(|k| (k.to_owned(), v.clone())))
            .collect(),
        ..StreamSpec::default()
    };
    let mut lines = Vec::new();
    for line in &o.lines {
        if line.sku.trim().is_empty() {
            return Err(ConnectorError::rejected(format!(
                "order {} has a line without a SKU",
                o.number
            ))
            .with_field("lines.sku"));
        }
        let mut w = Writer::new(&line_spec, decimals);
        w.text("sku", Some(&line.sku));
        w.text("name", Some(&line.name));
        w.decimal("quantity", line.quantity);
        w.money("unit_price", line.unit_price.gross);
        w.money("total", line.total.gross);
        w.decimal("tax_rate", line.tax_rate);
        lines.push(w.finish());
    }
    let mut w = Writer::new(spec, decimals);
    w.text("key", Some(&o.key));
    w.text("number", Some(&o.number));
    w.text("placed_at", Some(&o.placed_at));
    w.text("currency", Some(&o.currency));
    w.money("total", o.totals.gross);
    w.money("total_net", o.totals.net);
    w.text("email", Some(&o.customer.email));
    let address = &o.billing_address;
    w.text(
        "first_name",
        address
            .first_name
            .as_deref()
            .or(o.customer.first_name.as_deref()),
    );
    w.text(
        "last_name",
        address
            .last_name
            .as_deref()
            .or(o.customer.last_name.as_deref()),
    );
    w.text(
        "company",
        address
            .company
            .as_deref()
            .or(o.customer.company_name.as_deref()),
    );
    w.text(
        "phone",
        address.phone.as_deref().or(o.customer.phone.as_deref()),
    );
    w.text("street", Some(&address.street));
    w.text("house_number", address.house_number.as_deref());
    w.text("postal_code", Some(&address.postal_code));
    w.text("city", Some(&address.city));
    w.text("country", Some(&o.country));
    w.text("payment_method", o.payment_method.as_deref());
    w.text("payment_state", Some(state_name(o.payment_state)));
    if let Some(shipping) = &o.shipping {
        w.text("shipping_method", Some(&shipping.method));
        w.money("shipping_cost", shipping.cost.gross);
    }
    w.put("lines", Value::Array(lines));
    Ok(w.finish())
}

/// Whether `current` (the item in the remote system) already holds every value of `wanted`.
pub fn holds(current: &Value, wanted: &Value) -> bool {
    match (current, wanted) {
        (Value::Object(have), Value::Object(want)) => want
            .iter()
            .all(|(k, v)| have.get(k).is_some_and(|h| holds(h, v))),
        (Value::Array(have), Value::Array(want)) => {
            have.len() == want.len() && have.iter().zip(want).all(|(h, w)| holds(h, w))
        }
        (a, b) if a == b => true,
        (a, b) => match (number_text(a), number_text(b)) {
            (Some(x), Some(y)) => match (Decimal::parse(&x), Decimal::parse(&y)) {
                (Some(x), Some(y)) => x.same_value(y),
                _ => false,
            },
            _ => false,
        },
    }
}

fn number_text(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(fields: &[(&str, &str)]) -> StreamSpec {
        StreamSpec {
            fields: fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..StreamSpec::default()
        }
    }

    fn product_spec() -> StreamSpec {
        spec(&[
            ("key", "/sku"),
            ("name", "/title"),
            ("price", "/price/amount"),
            ("currency", "/price/currency"),
            ("tax_rate", "/vat"),
            ("active", "/active"),
        ])
    }

    #[test]
    fn an_update_leaves_out_the_create_only_fields() {
        let spec: StreamSpec = serde_json::from_value(serde_json::json!({
            "fields": {"key": "/sku", "name": "/title", "price": "/pricing/gross", "ean": "/ean"}
        }))
        .expect("spec");
        let body = serde_json::json!({"sku": "A1", "title": "Shirt", "pricing": {"gross": 19.95}, "ean": "871"});
        let create_only = CreateOnly::new(&["name", "prices", "key"]);
        assert_eq!(
            without_create_only(&spec, &body, &create_only),
            serde_json::json!({"sku": "A1", "pricing": {}, "ean": "871"}),
            "the key stays: it names the item"
        );
        assert_eq!(
            without_create_only(&spec, &body, &CreateOnly::default()),
            body
        );
    }

    #[test]
    fn an_item_becomes_a_product_with_net_from_gross() {
        let item = json!({"sku": "A1", "title": "Cup", "price": {"amount": "12.10", "currency": "EUR"}, "vat": 21, "active": false});
        let p = product(&product_spec(), &item).expect("valid");
        assert_eq!(
            (p.key.as_str(), p.name.as_str(), p.active),
            ("A1", "Cup", false)
        );
        assert_eq!((p.prices[0].gross, p.prices[0].net), (1210, 1000));
    }

    #[test]
    fn a_missing_key_names_the_field_and_pointer() {
        let error = product(&product_spec(), &json!({"title": "x"})).expect_err("no key");
        assert_eq!(error.field.as_deref(), Some("key"));
        assert!(error.message.contains("/sku"), "{}", error.message);
    }

    #[test]
    fn a_product_written_and_read_back_is_the_same() {
        let item = json!({"sku": "A1", "title": "Cup", "price": {"amount": 12.1, "currency": "EUR"}, "vat": 21, "active": true});
        let p = product(&product_spec(), &item).expect("valid");
        let written = product_item(&product_spec(), Decimals::Number, &p).expect("valid");
        assert!(holds(&item, &written), "{written}");
        assert_eq!(written.pointer("/price/amount"), Some(&json!(12.1)));
        let again = product(&product_spec(), &written).expect("valid");
        assert_eq!(format!("{again:?}"), format!("{p:?}"));
    }

    #[test]
    fn holds_compares_numbers_across_forms_and_ignores_extra_fields() {
        assert!(holds(
            &json!({"a": "2.50", "b": 1, "id": 7}),
            &json!({"a": 2.5, "b": "1"})
        ));
        assert!(!holds(&json!({"a": "2.51"}), &json!({"a": 2.5})));
        assert!(!holds(&json!({}), &json!({"a": 1})));
    }

    #[test]
    fn stock_available_defaults_to_on_hand_minus_reserved() {
        let s = spec(&[
            ("key", "/sku"),
            ("on_hand", "/qty"),
            ("reserved", "/reserved"),
        ]);
        let level = stock(&s, &json!({"sku": "A", "qty": "7", "reserved": 2})).expect("valid");
        assert!(level.available.same_value(Decimal::integer(5)));
    }

    #[test]
    fn set_creates_objects_on_the_way() {
        let mut v = json!({});
        set(&mut v, "/a/b~1c", json!(1));
        assert_eq!(v, json!({"a": {"b/c": 1}}));
    }

    #[test]
    fn state_names_are_lower_case_with_dashes() {
        assert_eq!(state_name(PaymentState::PartiallyPaid), "partially-paid");
    }
}
