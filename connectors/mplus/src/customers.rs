//! The `customers` stream: relations. Found by e-mail (`findRelationV2`, exact match, and the
//! answer's e-mail compared again); written as a company relation (name = company, contact =
//! the person) when there is a company name, else as a person relation. Read by the relation
//! sync marker (state: the next marker).

use koppel_sdk::{
    Address, ConnectorError, CreateOnly, Customer, Found, NamedValue, Page, Record, Result,
    WriteOutcome,
};

use crate::connector::{Mplus, marker_state, page_size};
use crate::ops;
use crate::soap::Transport;
use crate::whole::RawRelation;
use crate::wire::{
    CreateRelationResponse, FindRelationResponse, GetRelationsResponse, Relation,
    UpdateRelationResponse,
};

pub fn read<T: Transport>(m: &mut Mplus<T>, state: Option<&str>, limit: u32) -> Result<Page> {
    let from = marker_state("customers", state)?;
    let want = page_size(limit);
    let answer: GetRelationsResponse = m.client.call(ops::get_relations_since(from, want), true)?;
    let relations = answer.relation_list.relation;
    let highest = relations.iter().filter_map(|r| r.sync_marker).max();
    let next = highest.map_or(from, |h| (h + 1).max(from));
    Ok(Page {
        has_more: relations.len() >= want as usize && highest.is_some(),
        records: relations
            .iter()
            .map(|r| Record::Customer(to_customer(r)))
            .collect(),
        state: Some(next.to_string()),
    })
}

/// A relation found in MplusKASSA: the fields this connector reads, and the whole element as
/// it came, to be sent back whole on an update.
#[derive(Clone, Debug)]
pub struct Known {
    pub relation: Relation,
    pub raw: RawRelation,
}

/// The relation with exactly this e-mail address, if any.
pub fn find<T: Transport>(m: &mut Mplus<T>, email: &str) -> Result<Option<Known>> {
    let email = email.trim();
    if email.is_empty() {
        return Ok(None);
    }
    let body = m
        .client
        .call_raw(ops::find_relation_by_email(email), true)?;
    let answer: FindRelationResponse = crate::soap::parse("findRelationV2", &body)?;
    match answer.result.as_str() {
        "FIND-RELATION-RESULT-OK" => {
            let Some(relation) = answer.relation.filter(|r| {
                r.email
                    .as_deref()
                    .is_some_and(|e| e.trim().eq_ignore_ascii_case(email))
            }) else {
                return Ok(None);
            };
            let raw = RawRelation::read(&body)?.unwrap_or_default();
            Ok(Some(Known { relation, raw }))
        }
        "FIND-RELATION-RESULT-NOT-FOUND" => Ok(None),
        other => Err(ConnectorError::protocol(format!(
            "findRelationV2 answered {other:?}"
        ))),
    }
}

pub fn lookup<T: Transport>(m: &mut Mplus<T>, email: &str) -> Result<Option<Found>> {
    Ok(find(m, email)?.map(|k| k.relation).and_then(|r| {
        r.relation_number.map(|n| Found {
            id: n.to_string(),
            record: Some(Record::Customer(to_customer(&r))),
        })
    }))
}

/// What a write did to one customer.
pub enum Written {
    Created(i64),
    Updated(i64),
    Unchanged(i64),
}

impl Written {
    pub fn number(&self) -> i64 {
        match self {
            Written::Created(n) | Written::Updated(n) | Written::Unchanged(n) => *n,
        }
    }

    pub fn outcome(&self, key: &str) -> WriteOutcome {
        match self {
            Written::Created(n) => WriteOutcome::created(key, n.to_string()),
            Written::Updated(n) => WriteOutcome::updated(key, n.to_string()),
            Written::Unchanged(n) => WriteOutcome::unchanged(key, Some(n.to_string())),
        }
    }
}

/// Creates the relation of a customer, or updates the one with its e-mail address; an update
/// leaves the relation's fields that come from `create_only` customer fields as they are.
pub fn upsert<T: Transport>(
    m: &mut Mplus<T>,
    c: &Customer,
    create_only: &CreateOnly,
) -> Result<Written> {
    let email = c.email.trim();
    if email.is_empty() {
        return Err(ConnectorError::rejected(format!(
            "customer {} has no e-mail address, which MplusKASSA relations are found by",
            c.key
        ))
        .with_field("email"));
    }
    match find(m, email)? {
        Some(existing) => {
            let number = existing.relation.relation_number.ok_or_else(|| {
                ConnectorError::protocol("findRelationV2 returned a relation without a number")
            })?;
            let merged = keep_create_only(
                &existing.relation,
                merge(&existing.relation, c),
                create_only,
            );
            update(m, number, &existing, merged)
        }
        None => create(m, c).map(Written::Created),
    }
}

/// Brings a relation found for an order's customer up to date: the fields the order fills
/// replace the relation's, the ones it leaves empty are kept (an order without a phone
/// number does not wipe the till's). Nothing is sent when nothing differs.
pub fn update_from_order<T: Transport>(
    m: &mut Mplus<T>,
    existing: &Known,
    c: &Customer,
) -> Result<Written> {
    let number = existing.relation.relation_number.unwrap_or_default();
    let merged = overlay_present(&existing.relation, c);
    update(m, number, existing, merged)
}

/// Sends the relation as read, whole, with the managed fields of `merged` in place
/// (idempotent), when they differ from what MplusKASSA has.
fn update<T: Transport>(
    m: &mut Mplus<T>,
    number: i64,
    existing: &Known,
    merged: Relation,
) -> Result<Written> {
    if same_managed(&merged, &existing.relation) {
        return Ok(Written::Unchanged(number));
    }
    let mut changes = vec![("relationNumber", number.to_string())];
    changes.extend(
        managed_fields(&merged)
            .into_iter()
            .filter_map(|(name, value)| value.clone().map(|v| (name, v))),
    );
    let answer: UpdateRelationResponse = m
        .client
        .call(ops::update_relation(&existing.raw, &changes), true)?;
    match answer.result.as_str() {
        "UPDATE-RELATION-RESULT-OK" => Ok(Written::Updated(number)),
        other => Err(ConnectorError::rejected(format!(
            "MplusKASSA did not update relation {number} ({other}): {}",
            answer.error_message
        ))),
    }
}

/// The existing relation with the customer's non-empty fields laid over it.
pub fn overlay_present(existing: &Relation, c: &Customer) -> Relation {
    let d = desired(c);
    let pick = |new: Option<String>, old: &Option<String>| match new {
        Some(text) if !text.trim().is_empty() => Some(text),
        _ => old.clone(),
    };
    Relation {
        name: pick(d.name, &existing.name),
        address: pick(d.address, &existing.address),
        zipcode: pick(d.zipcode, &existing.zipcode),
        city: pick(d.city, &existing.city),
        country: pick(d.country, &existing.country),
        delivery_address: pick(d.delivery_address, &existing.delivery_address),
        delivery_zipcode: pick(d.delivery_zipcode, &existing.delivery_zipcode),
        delivery_city: pick(d.delivery_city, &existing.delivery_city),
        delivery_country: pick(d.delivery_country, &existing.delivery_country),
        contact: pick(d.contact, &existing.contact),
        telephone: pick(d.telephone, &existing.telephone),
        email: existing.email.clone(),
        vat_number: pick(d.vat_number, &existing.vat_number),
        company_name: pick(d.company_name, &existing.company_name),
        ..existing.clone()
    }
}

/// Creates the relation of a customer; returns its number.
pub fn create<T: Transport>(m: &mut Mplus<T>, c: &Customer) -> Result<i64> {
    let mut relation = desired(c);
    relation.ext_relation_id = Some(c.key.clone()).filter(|k| !k.is_empty());
    relation.active = Some(true);
    // A create is not idempotent: never retried by the host. After a lost answer the next
    // write finds the relation by e-mail and updates it instead of creating another.
    let answer: CreateRelationResponse = m.client.call(ops::create_relation(&relation), false)?;
    match (answer.result.as_str(), answer.relation_number) {
        ("CREATE-RELATION-RESULT-OK", Some(n)) if n > 0 => Ok(n),
        (other, _) => Err(ConnectorError::rejected(format!(
            "MplusKASSA did not create a relation for {} ({other}): {}",
            c.email.trim(),
            answer.error_message
        ))),
    }
}

pub fn write<T: Transport>(
    m: &mut Mplus<T>,
    records: &[Record],
    create_only: &CreateOnly,
) -> Result<Vec<WriteOutcome>> {
    let mut outcomes = Vec::with_capacity(records.len());
    for record in records {
        let Record::Customer(c) = record else {
            outcomes.push(WriteOutcome::failed(
                record.key(),
                "the customers stream takes customer records",
                None,
            ));
            continue;
        };
        outcomes.push(match upsert(m, c, create_only) {
            Ok(written) => written.outcome(&c.key),
            Err(error) if crate::aborts_batch(&error) => return Err(error),
            Err(error) => WriteOutcome::from_error(&c.key, &error),
        });
    }
    Ok(outcomes)
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn join_name(first: &Option<String>, last: &Option<String>) -> Option<String> {
    let name = [non_empty(first), non_empty(last)]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    Some(name).filter(|n| !n.is_empty())
}

/// `Dorpsstraat` + `12` + `bis` on one line, as MplusKASSA keeps it.
fn street_line(a: &Address) -> String {
    [
        Some(a.street.trim()),
        a.house_number.as_deref().map(str::trim),
        a.additional.as_deref().map(str::trim),
    ]
    .into_iter()
    .flatten()
    .filter(|s| !s.is_empty())
    .collect::<Vec<_>>()
    .join(" ")
}

/// The relation fields a customer determines (empty text clears a field).
pub fn desired(c: &Customer) -> Relation {
    let billing = c.billing_address.as_ref();
    let person = join_name(&c.first_name, &c.last_name)
        .or_else(|| billing.and_then(|a| join_name(&a.first_name, &a.last_name)));
    let company = non_empty(&c.company_name)
        .or_else(|| billing.and_then(|a| non_empty(&a.company)))
        .map(str::to_owned);
    let name = company
        .clone()
        .or_else(|| person.clone())
        .unwrap_or_else(|| c.email.trim().to_owned());
    let phone = non_empty(&c.phone)
        .or_else(|| billing.and_then(|a| non_empty(&a.phone)))
        .unwrap_or_default();
    let shipping = c.shipping_address.as_ref().filter(|s| {
        billing.is_none_or(|b| street_line(b) != street_line(s) || b.postal_code != s.postal_code)
    });
    let text = |s: &str| Some(s.trim().to_owned());
    Relation {
        name: Some(name),
        address: text(&billing.map(street_line).unwrap_or_default()),
        zipcode: text(billing.map_or("", |a| &a.postal_code)),
        city: text(billing.map_or("", |a| &a.city)),
        country: text(billing.map_or("", |a| &a.country)),
        delivery_address: text(&shipping.map(street_line).unwrap_or_default()),
        delivery_zipcode: text(shipping.map_or("", |a| &a.postal_code)),
        delivery_city: text(shipping.map_or("", |a| &a.city)),
        delivery_country: text(shipping.map_or("", |a| &a.country)),
        contact: Some(if company.is_some() {
            person.unwrap_or_default()
        } else {
            String::new()
        }),
        telephone: text(phone),
        email: text(&c.email),
        vat_number: text(non_empty(&c.vat_id).unwrap_or_default()),
        company_name: Some(company.unwrap_or_default()),
        ..Relation::default()
    }
}

/// The existing relation with the customer's fields laid over it.
pub fn merge(existing: &Relation, c: &Customer) -> Relation {
    let d = desired(c);
    Relation {
        name: d.name,
        address: d.address,
        zipcode: d.zipcode,
        city: d.city,
        country: d.country,
        delivery_address: d.delivery_address,
        delivery_zipcode: d.delivery_zipcode,
        delivery_city: d.delivery_city,
        delivery_country: d.delivery_country,
        contact: d.contact,
        telephone: d.telephone,
        email: d.email,
        vat_number: d.vat_number,
        company_name: d.company_name,
        ..existing.clone()
    }
}

/// Each relation field a customer determines, with the customer fields it comes from.
const SOURCES: [(&str, &[&str]); 14] = [
    (
        "name",
        &["company_name", "first_name", "last_name", "billing_address"],
    ),
    ("address", &["billing_address"]),
    ("zipcode", &["billing_address"]),
    ("city", &["billing_address"]),
    ("country", &["billing_address"]),
    ("deliveryAddress", &["shipping_address"]),
    ("deliveryZipcode", &["shipping_address"]),
    ("deliveryCity", &["shipping_address"]),
    ("deliveryCountry", &["shipping_address"]),
    (
        "contact",
        &["company_name", "first_name", "last_name", "billing_address"],
    ),
    ("telephone", &["phone", "billing_address"]),
    ("email", &["email"]),
    ("vatNumber", &["vat_id"]),
    ("companyName", &["company_name", "billing_address"]),
];

/// `merged` with every relation field that comes from a create-only customer field put back
/// as the till has it (contract rule 4.7).
pub fn keep_create_only(
    existing: &Relation,
    mut merged: Relation,
    create_only: &CreateOnly,
) -> Relation {
    if create_only.is_empty() {
        return merged;
    }
    let kept = |name: &str| {
        SOURCES
            .iter()
            .find(|(field, _)| *field == name)
            .is_some_and(|(_, sources)| sources.iter().any(|s| create_only.has(s)))
    };
    let pairs: [(&str, &mut Option<String>, &Option<String>); 14] = [
        ("name", &mut merged.name, &existing.name),
        ("address", &mut merged.address, &existing.address),
        ("zipcode", &mut merged.zipcode, &existing.zipcode),
        ("city", &mut merged.city, &existing.city),
        ("country", &mut merged.country, &existing.country),
        (
            "deliveryAddress",
            &mut merged.delivery_address,
            &existing.delivery_address,
        ),
        (
            "deliveryZipcode",
            &mut merged.delivery_zipcode,
            &existing.delivery_zipcode,
        ),
        (
            "deliveryCity",
            &mut merged.delivery_city,
            &existing.delivery_city,
        ),
        (
            "deliveryCountry",
            &mut merged.delivery_country,
            &existing.delivery_country,
        ),
        ("contact", &mut merged.contact, &existing.contact),
        ("telephone", &mut merged.telephone, &existing.telephone),
        ("email", &mut merged.email, &existing.email),
        ("vatNumber", &mut merged.vat_number, &existing.vat_number),
        (
            "companyName",
            &mut merged.company_name,
            &existing.company_name,
        ),
    ];
    for (name, slot, held) in pairs {
        if kept(name) {
            *slot = held.clone();
        }
    }
    merged
}

/// The fields a customer determines, by their element names.
fn managed_fields(r: &Relation) -> [(&'static str, &Option<String>); 14] {
    [
        ("name", &r.name),
        ("address", &r.address),
        ("zipcode", &r.zipcode),
        ("city", &r.city),
        ("country", &r.country),
        ("deliveryAddress", &r.delivery_address),
        ("deliveryZipcode", &r.delivery_zipcode),
        ("deliveryCity", &r.delivery_city),
        ("deliveryCountry", &r.delivery_country),
        ("contact", &r.contact),
        ("telephone", &r.telephone),
        ("email", &r.email),
        ("vatNumber", &r.vat_number),
        ("companyName", &r.company_name),
    ]
}

/// Whether two relations agree on every field a customer determines (absent = empty).
pub fn same_managed(a: &Relation, b: &Relation) -> bool {
    let fields = |r: &Relation| {
        managed_fields(r).map(|(name, value)| {
            let text = value.as_deref().unwrap_or("").trim();
            if name == "email" {
                text.to_lowercase()
            } else {
                text.to_owned()
            }
        })
    };
    fields(a) == fields(b)
}

/// `Jan de Vries` → (`Jan`, `de Vries`).
fn split_name(name: &str) -> (Option<String>, Option<String>) {
    let name = name.trim();
    match name.split_once(' ') {
        Some((first, last)) => (Some(first.to_owned()), Some(last.trim().to_owned())),
        None if name.is_empty() => (None, None),
        None => (None, Some(name.to_owned())),
    }
}

/// A relation as a canonical customer.
pub fn to_customer(r: &Relation) -> Customer {
    let company = non_empty(&r.company_name).map(str::to_owned);
    let person = if company.is_some() {
        non_empty(&r.contact).unwrap_or_default()
    } else {
        non_empty(&r.name).unwrap_or_default()
    };
    let (first_name, last_name) = split_name(person);
    let phone = non_empty(&r.telephone)
        .or(non_empty(&r.mobile))
        .map(str::to_owned);
    let address = |street: &Option<String>,
                   zip: &Option<String>,
                   city: &Option<String>,
                   country: &Option<String>| {
        (non_empty(street).is_some() || non_empty(zip).is_some() || non_empty(city).is_some()).then(
            || Address {
                company: company.clone(),
                first_name: first_name.clone(),
                last_name: last_name.clone(),
                street: non_empty(street).unwrap_or_default().to_owned(),
                house_number: None,
                additional: None,
                postal_code: non_empty(zip).unwrap_or_default().to_owned(),
                city: non_empty(city).unwrap_or_default().to_owned(),
                country: non_empty(country).unwrap_or_default().to_owned(),
                phone: phone.clone(),
            },
        )
    };
    let mut extra = Vec::new();
    if let Some(n) = r.relation_number {
        extra.push(NamedValue::integer("relation_number", n));
    }
    if let Some(id) = non_empty(&r.ext_relation_id) {
        extra.push(NamedValue::text("ext_relation_id", id));
    }
    if let Some(n) = non_empty(&r.commerce_number) {
        extra.push(NamedValue::text("commerce_number", n));
    }
    if let Some(active) = r.active {
        extra.push(NamedValue::boolean("active", active));
    }
    if let Some(marker) = r.sync_marker {
        extra.push(NamedValue::integer("sync_marker", marker));
    }
    Customer {
        key: r.relation_number.map(|n| n.to_string()).unwrap_or_default(),
        email: non_empty(&r.email).unwrap_or_default().to_owned(),
        company_name: company.clone(),
        billing_address: address(&r.address, &r.zipcode, &r.city, &r.country),
        shipping_address: address(
            &r.delivery_address,
            &r.delivery_zipcode,
            &r.delivery_city,
            &r.delivery_country,
        ),
        first_name,
        last_name,
        phone,
        vat_id: non_empty(&r.vat_number).map(str::to_owned),
        external_ids: Vec::new(),
        extra,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(street: &str, number: &str) -> Address {
        Address {
            company: None,
            first_name: Some("Jan".into()),
            last_name: Some("de Vries".into()),
            street: street.into(),
            house_number: Some(number.into()),
            additional: None,
            postal_code: "1234 AB".into(),
            city: "Utrecht".into(),
            country: "NL".into(),
            phone: None,
        }
    }

    pub fn customer(company: Option<&str>) -> Customer {
        Customer {
            key: "c-1".into(),
            email: "J.deVries@example.nl".into(),
            company_name: company.map(str::to_owned),
            first_name: Some("Jan".into()),
            last_name: Some("de Vries".into()),
            phone: Some("030-1234567".into()),
            vat_id: company.map(|_| "NL001B01".to_owned()),
            billing_address: Some(address("Dorpsstraat", "12")),
            shipping_address: None,
            external_ids: Vec::new(),
            extra: Vec::new(),
        }
    }

    #[test]
    fn a_person_is_a_person_relation() {
        let r = desired(&customer(None));
        assert_eq!(r.name.as_deref(), Some("Jan de Vries"));
        assert_eq!(r.company_name.as_deref(), Some(""));
        assert_eq!(r.contact.as_deref(), Some(""));
        assert_eq!(r.address.as_deref(), Some("Dorpsstraat 12"));
        assert_eq!(r.delivery_address.as_deref(), Some(""));
    }

    #[test]
    fn a_company_name_makes_a_company_with_the_person_as_contact() {
        let r = desired(&customer(Some("Bakkerij de Vries B.V.")));
        assert_eq!(r.name.as_deref(), Some("Bakkerij de Vries B.V."));
        assert_eq!(r.company_name.as_deref(), Some("Bakkerij de Vries B.V."));
        assert_eq!(r.contact.as_deref(), Some("Jan de Vries"));
        assert_eq!(r.vat_number.as_deref(), Some("NL001B01"));
        let back = to_customer(&Relation {
            relation_number: Some(9),
            ..r
        });
        assert_eq!(back.company_name.as_deref(), Some("Bakkerij de Vries B.V."));
        assert_eq!(
            (back.first_name.as_deref(), back.last_name.as_deref()),
            (Some("Jan"), Some("de Vries"))
        );
        assert_eq!(back.key, "9");
    }

    #[test]
    fn an_unchanged_customer_needs_no_update() {
        let c = customer(None);
        let stored = Relation {
            relation_number: Some(3),
            email: Some("j.devries@example.nl".into()),
            contact: None,
            delivery_address: None,
            ..desired(&c)
        };
        assert!(same_managed(&merge(&stored, &c), &stored));
        let mut moved = c.clone();
        moved.billing_address = Some(address("Kerkweg", "1"));
        let merged = merge(&stored, &moved);
        assert!(!same_managed(&merged, &stored));
        assert_eq!(merged.relation_number, Some(3), "the rest is kept");
    }

    #[test]
    fn create_only_customer_fields_leave_their_relation_fields_as_the_till_has_them() {
        let c = customer(None);
        let stored = Relation {
            relation_number: Some(5),
            ..desired(&c)
        };
        let mut renamed = c.clone();
        renamed.first_name = Some("Johanna".into());
        renamed.billing_address = Some(address("Kerkweg", "1"));
        let merged = merge(&stored, &renamed);
        assert!(
            !same_managed(&merged, &stored),
            "without create-only it changes"
        );
        let kept = keep_create_only(
            &stored,
            merged.clone(),
            &CreateOnly::new(&["first_name", "billing_address"]),
        );
        assert!(same_managed(&kept, &stored), "the name and address stay");
        let only_name = keep_create_only(&stored, merged, &CreateOnly::new(&["first_name"]));
        assert_eq!(only_name.name, stored.name);
        assert_ne!(
            only_name.address, stored.address,
            "the address is not create-only"
        );
    }

    #[test]
    fn an_order_overlays_what_it_fills_and_keeps_the_rest() {
        let stored = Relation {
            relation_number: Some(4),
            email: Some("J.deVries@example.nl".into()),
            ..desired(&customer(None))
        };
        let mut ordered = customer(None);
        ordered.phone = None;
        ordered.email = "j.devries@EXAMPLE.nl".into();
        ordered.billing_address = Some(address("Kerkweg", "1"));
        let merged = overlay_present(&stored, &ordered);
        assert_eq!(
            merged.address.as_deref(),
            Some("Kerkweg 1"),
            "the new address"
        );
        assert_eq!(
            merged.telephone.as_deref(),
            Some("030-1234567"),
            "no phone on the order: the till's stays"
        );
        assert_eq!(
            merged.email, stored.email,
            "found by it, kept as the till spells it"
        );
        assert_eq!(merged.relation_number, Some(4));
        assert!(!same_managed(&merged, &stored));
        let same = overlay_present(&stored, &customer(None));
        assert!(same_managed(&same, &stored), "nothing to send");
    }
}
