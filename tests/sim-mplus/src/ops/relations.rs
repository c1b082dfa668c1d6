//! Relations (customers): find by any filled field (partial, or exact with `findRelationV2`'s
//! `exactMatch`), get, list by marker, create and update. A company is a relation with a
//! `companyName` (and its contact person in `contact`); a person has none.

use super::{
    Limits, list_i64, opt_bool, opt_i32, opt_i64, opt_str, page_size, req_i64, request_of,
};
use crate::clock::write_datetime;
use crate::model::{Contact, Relation, State};
use crate::xml::{Element, Out, Payload, SoapFault};

/// The text fields of a relation that can be searched and set, with their element names.
fn text_fields(r: &mut Relation) -> [(&'static str, &mut String); 19] {
    [
        ("extRelationId", &mut r.ext_id),
        ("name", &mut r.name),
        ("address", &mut r.address),
        ("zipcode", &mut r.zipcode),
        ("city", &mut r.city),
        ("country", &mut r.country),
        ("deliveryAddress", &mut r.delivery_address),
        ("deliveryZipcode", &mut r.delivery_zipcode),
        ("deliveryCity", &mut r.delivery_city),
        ("deliveryCountry", &mut r.delivery_country),
        ("contact", &mut r.contact),
        ("telephone", &mut r.telephone),
        ("mobile", &mut r.mobile),
        ("email", &mut r.email),
        ("website", &mut r.website),
        ("vatNumber", &mut r.vat_number),
        ("commerceNumber", &mut r.commerce_number),
        ("defaultVatMethod", &mut r.default_vat_method),
        ("companyName", &mut r.company_name),
    ]
}

/// A `Relation` element as a whole relation: what it leaves out is empty (false, none).
/// `createRelation` fills defaults in afterwards; `updateRelation` replaces the stored
/// relation with it (API-NOTES 10, gap 5: whether the real server keeps fields an update
/// leaves out is undocumented, so the simulator takes the least forgiving reading).
fn read_relation(el: &Element) -> Result<Relation, SoapFault> {
    let mut relation = Relation::default();
    for (name, field) in text_fields(&mut relation) {
        if let Some(value) = opt_str(el, name) {
            *field = value;
        }
    }
    relation.active = opt_bool(el, "active")?.unwrap_or(false);
    relation.discount_percentage = opt_i32(el, "discountPercentage")?.unwrap_or(0);
    relation.price_group_number = opt_i32(el, "priceGroupNumber")?;
    relation.credit_limit = opt_i64(el, "creditLimit")?;
    relation.birth_date = match el.child("birthDate") {
        Some(date) => Some((
            super::req_i32(date, "day")?,
            super::req_i32(date, "mon")?,
            super::req_i32(date, "year")?,
        )),
        None => None,
    };
    relation.contacts = el
        .child("contactList")
        .map(|list| {
            list.children_named("relation")
                .map(|c| Contact {
                    name: opt_str(c, "name").unwrap_or_default(),
                    telephone: opt_str(c, "telephone").unwrap_or_default(),
                    email: opt_str(c, "email").unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    relation.card_numbers = el
        .children_named("cardNumbers")
        .map(|c| c.value().to_owned())
        .collect();
    Ok(relation)
}

/// One `Relation` in schema order.
pub(crate) fn write_relation(out: &mut Out, name: &str, r: &Relation) {
    out.open(name);
    out.val("relationNumber", r.number);
    if !r.ext_id.is_empty() {
        out.text("extRelationId", &r.ext_id);
    }
    out.val("syncMarker", r.sync_marker);
    write_datetime(out, "createTimestamp", r.created);
    write_datetime(out, "changeTimestamp", r.changed);
    out.bool("active", r.active);
    let texts = [
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
        ("mobile", &r.mobile),
        ("email", &r.email),
        ("website", &r.website),
    ];
    for (field, value) in texts {
        if !value.is_empty() {
            out.text(field, value);
        }
    }
    if let Some((day, mon, year)) = r.birth_date {
        out.open("birthDate");
        out.val("day", day);
        out.val("mon", mon);
        out.val("year", year);
        out.close("birthDate");
    }
    if let Some(group) = r.price_group_number {
        out.val("priceGroupNumber", group);
    }
    out.val("discountPercentage", r.discount_percentage);
    if let Some(limit) = r.credit_limit {
        out.val("creditLimit", limit);
    }
    // The real server writes the VAT number and company name even when empty.
    out.text("vatNumber", &r.vat_number);
    if !r.commerce_number.is_empty() {
        out.text("commerceNumber", &r.commerce_number);
    }
    if !r.default_vat_method.is_empty() {
        out.val("defaultVatMethod", &r.default_vat_method);
    }
    if !r.contacts.is_empty() {
        out.open("contactList");
        for c in &r.contacts {
            out.open("relation");
            out.text("name", &c.name);
            if !c.telephone.is_empty() {
                out.text("telephone", &c.telephone);
            }
            if !c.email.is_empty() {
                out.text("email", &c.email);
            }
            out.close("relation");
        }
        out.close("contactList");
    }
    out.text("companyName", &r.company_name);
    for card in &r.card_numbers {
        out.text("cardNumbers", card);
    }
    out.close(name);
}

fn empty_relation(out: &mut Out) {
    out.empty("relation");
}

/// `findRelation` / `findRelationV2`: every filled field must match, case-insensitively; as a
/// substring, or whole with `exactMatch`. At most one relation: the lowest number wins.
pub fn find(state: &State, op: &Element, v2: bool) -> Result<Payload, SoapFault> {
    let (criteria, exact, root) = if v2 {
        let r = super::required_request(op)?;
        let criteria = r
            .child("relation")
            .ok_or_else(|| SoapFault::missing("request", "relation"))?;
        (
            Some(criteria),
            opt_bool(r, "exactMatch")?.unwrap_or(false),
            "FindRelationV2Response",
        )
    } else {
        (op.child("relation"), false, "FindRelationResponse")
    };
    let mut wanted: Vec<(&'static str, String)> = Vec::new();
    if let Some(criteria) = criteria {
        let mut probe = Relation::default();
        for (name, _) in text_fields(&mut probe) {
            if let Some(value) = opt_str(criteria, name).filter(|v| !v.is_empty()) {
                wanted.push((name, value.to_lowercase()));
            }
        }
    }
    let found = if wanted.is_empty() {
        None
    } else {
        state
            .relations
            .iter()
            .filter(|r| {
                let mut r = (*r).clone();
                let fields = text_fields(&mut r);
                wanted.iter().all(|(name, value)| {
                    fields.iter().any(|(n, v)| {
                        *n == *name && {
                            let v = v.to_lowercase();
                            if exact {
                                v == *value
                            } else {
                                v.contains(value.as_str())
                            }
                        }
                    })
                })
            })
            .min_by_key(|r| r.number)
    };
    let mut out = Out::new(root);
    match found {
        Some(r) => {
            out.val("result", "FIND-RELATION-RESULT-OK");
            write_relation(&mut out, "relation", r);
        }
        None => out.val("result", "FIND-RELATION-RESULT-NOT-FOUND"),
    }
    Ok(out.finish())
}

/// `getRelation`: the schema requires a `relation` even when none is found (then empty).
pub fn get(state: &State, op: &Element) -> Result<Payload, SoapFault> {
    let number = req_i64(op, "relationNumber")?;
    let mut out = Out::new("GetRelationResponse");
    match state.relation(number) {
        Some(r) => {
            out.val("result", "GET-RELATION-RESULT-OK");
            write_relation(&mut out, "relation", r);
        }
        None => {
            out.val("result", "GET-RELATION-RESULT-NOT-FOUND");
            empty_relation(&mut out);
        }
    }
    Ok(out.finish())
}

/// `getRelations`: by number, or paged by the relation sync marker.
pub fn get_many(state: &State, limits: Limits, op: &Element) -> Result<Payload, SoapFault> {
    let r = request_of(op);
    let numbers = list_i64(&r, "relationNumbers")?;
    let marker = opt_i64(&r, "syncMarker")?;
    let page = page_size(opt_i32(&r, "syncMarkerLimit")?, limits);
    let mut chosen: Vec<&Relation> = state
        .relations
        .iter()
        .filter(|x| numbers.is_empty() || numbers.contains(&x.number))
        .filter(|x| marker.is_none_or(|m| x.sync_marker as i64 >= m))
        .collect();
    chosen.sort_by_key(|x| x.sync_marker);
    chosen.truncate(page);
    let mut out = Out::new("GetRelationsResponse");
    out.open("relationList");
    for relation in chosen {
        write_relation(&mut out, "relation", relation);
    }
    out.close("relationList");
    Ok(out.finish())
}

/// `createRelation`. A given `relationNumber` is kept (and may be taken); a relation needs a
/// name.
pub fn create(state: &mut State, op: &Element, now: i64) -> Result<Payload, SoapFault> {
    let mut out = Out::new("CreateRelationResponse");
    let Some(el) = op.child("relation") else {
        out.val("result", "CREATE-RELATION-RESULT-FAILED");
        out.val("relationNumber", 0);
        out.text("errorMessage", "No relation given.");
        return Ok(out.finish());
    };
    let mut relation = read_relation(el)?;
    relation.active = opt_bool(el, "active")?.unwrap_or(true);
    if relation.default_vat_method.is_empty() {
        relation.default_vat_method = "VAT-METHOD-INCLUSIVE".into();
    }
    relation.number = opt_i64(el, "relationNumber")?.unwrap_or(0);
    if relation.name.trim().is_empty() {
        out.val("result", "CREATE-RELATION-RESULT-FAILED");
        out.val("relationNumber", 0);
        out.text("errorMessage", "A relation needs a name.");
        return Ok(out.finish());
    }
    match state.insert_relation(relation, now) {
        Ok(number) => {
            let marker = state.relation(number).map_or(0, |r| r.sync_marker);
            tracing::debug!(relation = number, "Relation created.");
            out.val("result", "CREATE-RELATION-RESULT-OK");
            out.val("relationNumber", number);
            write_datetime(&mut out, "changeTimestamp", now);
            out.val("syncMarker", marker);
            out.text("errorMessage", "");
        }
        Err(_) => {
            out.val(
                "result",
                "CREATE-RELATION-RESULT-FAILED-RELATION-NUMBER-ALREADY-TAKEN",
            );
            out.val("relationNumber", 0);
            out.text("errorMessage", "The relation number is already taken.");
        }
    }
    Ok(out.finish())
}

/// `updateRelation`: the relation sent replaces the stored one whole; what it leaves out is
/// cleared (see `read_relation`). Number, external id... all come from the request; only the
/// creation time stays.
pub fn update(state: &mut State, op: &Element, now: i64) -> Result<Payload, SoapFault> {
    let mut out = Out::new("UpdateRelationResponse");
    let el = op.child("relation");
    let number = match el {
        Some(el) => opt_i64(el, "relationNumber")?,
        None => None,
    };
    let (Some(el), Some(number)) = (el, number) else {
        out.val("result", "UPDATE-RELATION-RESULT-FAILED");
        out.text(
            "errorMessage",
            "The relation to update needs its relationNumber.",
        );
        return Ok(out.finish());
    };
    let Some(existing) = state.relation(number) else {
        out.val("result", "UPDATE-RELATION-RESULT-NOT-FOUND");
        out.text("errorMessage", &format!("Relation {number} not found."));
        return Ok(out.finish());
    };
    let created = existing.created;
    let mut changed = read_relation(el)?;
    changed.created = created;
    match state.update_relation(number, now, |r| *r = changed) {
        Some((marker, at)) => {
            out.val("result", "UPDATE-RELATION-RESULT-OK");
            out.text("errorMessage", "");
            write_datetime(&mut out, "changeTimestamp", at);
            out.val("syncMarker", marker);
        }
        None => {
            out.val("result", "UPDATE-RELATION-RESULT-NOT-FOUND");
            out.text("errorMessage", &format!("Relation {number} not found."));
        }
    }
    Ok(out.finish())
}
