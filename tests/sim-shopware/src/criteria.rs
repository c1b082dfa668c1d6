//! Search criteria (API-NOTES §4.2): parsing with Shopware's errors, filters along dotted
//! association paths, sorting, paging, total-count modes. Equality filters on indexed fields
//! (`id`, `productNumber`, foreign keys) use the indexes, so lookups over 100,000 products
//! stay cheap.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{Map, Value};

use crate::entities::{self, Assoc, Kind};
use crate::errors::ApiError;
use crate::ids::Id;
use crate::model::{Key, Record, Val};
use crate::shop::Shop;

#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    Equals(String, Value),
    EqualsAny(String, Vec<Value>),
    EqualsAll(String, Vec<Value>),
    Contains(String, String),
    Prefix(String, String),
    Suffix(String, String),
    Range(String, Vec<(String, Value)>),
    Multi { and: bool, queries: Vec<Filter> },
    Not { and: bool, queries: Vec<Filter> },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Sort {
    pub field: String,
    pub descending: bool,
    pub natural: bool,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Criteria {
    pub page: Option<u64>,
    pub limit: Option<u64>,
    pub ids: Option<Vec<Id>>,
    pub filters: Vec<Filter>,
    pub post_filters: Vec<Filter>,
    pub sort: Vec<Sort>,
    pub associations: BTreeMap<String, Criteria>,
    /// apiAlias → fields kept.
    pub includes: HashMap<String, HashSet<String>>,
    pub excludes: HashMap<String, HashSet<String>>,
    /// 0 none, 1 exact, 2 next-pages.
    pub total_count_mode: u8,
    pub term: Option<String>,
}

fn positive(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64().filter(|n| *n >= 1),
        Value::String(s) => s.parse::<u64>().ok().filter(|n| *n >= 1),
        _ => None,
    }
}

/// `shopware.api.max_limit` of a default install: 500 from 6.6 on; none before (the Admin
/// API's `api.request_criteria_builder` got `null` in 6.5 and no argument in 6.4).
pub fn max_limit(version: crate::Version) -> Option<u64> {
    (version >= crate::Version::V6_6).then_some(500)
}

impl Criteria {
    /// `RequestCriteriaBuilder::parse` on an Admin API search or list: a `limit` above the
    /// shop's maximum is refused (`FRAMEWORK__QUERY_LIMIT_EXCEEDED`), and without a limit the
    /// maximum applies. With `ids` there is no limit at all.
    pub fn cap_limit(&mut self, version: crate::Version) -> Result<(), ApiError> {
        let Some(max) = max_limit(version) else {
            return Ok(());
        };
        if self.ids.is_some() {
            return Ok(());
        }
        match self.limit {
            Some(limit) if limit > max => Err(ApiError::limit_exceeded(max, limit)),
            Some(_) => Ok(()),
            None => {
                self.limit = Some(max);
                Ok(())
            }
        }
    }

    /// Parses a criteria body for `entity`; errors name the bad part.
    pub fn parse(shop: &Shop, entity: usize, body: &Value) -> Result<Criteria, ApiError> {
        let mut criteria = Criteria::default();
        let Some(object) = body.as_object() else {
            return Ok(criteria);
        };
        if let Some(limit) = object.get("limit").filter(|v| !v.is_null()) {
            criteria.limit = Some(positive(limit).ok_or_else(|| ApiError::invalid_limit(limit))?);
        }
        if let Some(page) = object.get("page").filter(|v| !v.is_null()) {
            criteria.page = Some(positive(page).ok_or_else(|| ApiError::invalid_page(page))?);
        }
        if let Some(ids) = object.get("ids") {
            let list: Vec<Value> = match ids {
                Value::Array(list) => list.clone(),
                Value::String(s) => s.split('|').map(|s| Value::String(s.to_string())).collect(),
                _ => Vec::new(),
            };
            let mut parsed = Vec::new();
            for id in &list {
                let id = id
                    .as_str()
                    .and_then(Id::parse)
                    .ok_or_else(|| ApiError::invalid_uuid("/ids".into(), id))?;
                parsed.push(id);
            }
            criteria.ids = Some(parsed);
        }
        for (key, target) in [
            ("filter", &mut criteria.filters),
            ("post-filter", &mut criteria.post_filters),
        ] {
            if let Some(filters) = object.get(key) {
                let Some(list) = filters.as_array() else {
                    return Err(ApiError::invalid_filter(
                        "The filter parameter has to be a list of filters.",
                        format!("/{key}"),
                    ));
                };
                for (i, filter) in list.iter().enumerate() {
                    target.push(parse_filter(shop, entity, filter, &format!("/{key}/{i}"))?);
                }
            }
        }
        if let Some(sorts) = object.get("sort") {
            let list: Vec<Value> = match sorts {
                Value::Array(list) => list.clone(),
                Value::String(s) => s
                    .split(',')
                    .map(|f| match f.strip_prefix('-') {
                        Some(f) => serde_json::json!({"field": f, "order": "DESC"}),
                        None => serde_json::json!({"field": f, "order": "ASC"}),
                    })
                    .collect(),
                _ => Vec::new(),
            };
            for sort in list {
                let field = sort
                    .get("field")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                check_field(shop, entity, &field)?;
                criteria.sort.push(Sort {
                    descending: sort
                        .get("order")
                        .and_then(Value::as_str)
                        .is_some_and(|o| o.eq_ignore_ascii_case("desc")),
                    natural: sort.get("naturalSorting") == Some(&Value::Bool(true)),
                    field,
                });
            }
        }
        if let Some(associations) = object.get("associations").and_then(Value::as_object) {
            let def = entities::def(entity);
            for (name, sub) in associations {
                let Some(assoc) = def.assoc(name) else {
                    return Err(ApiError::association_not_found(name));
                };
                let target = entities::index_of(assoc.target)
                    .ok_or_else(|| ApiError::association_not_found(name))?;
                criteria
                    .associations
                    .insert(name.clone(), Criteria::parse(shop, target, sub)?);
            }
        }
        for (key, target) in [
            ("includes", &mut criteria.includes),
            ("excludes", &mut criteria.excludes),
        ] {
            if let Some(map) = object.get(key).and_then(Value::as_object) {
                for (alias, fields) in map {
                    let fields = match fields {
                        Value::Array(list) => list
                            .iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect(),
                        Value::String(s) => s.split(',').map(str::to_string).collect(),
                        _ => HashSet::new(),
                    };
                    target.insert(alias.clone(), fields);
                }
            }
        }
        criteria.total_count_mode = match object.get("total-count-mode") {
            Some(Value::Number(n)) => n.as_u64().unwrap_or(0).min(2) as u8,
            Some(Value::String(s)) => match s.as_str() {
                "exact" | "1" => 1,
                "next-pages" | "2" => 2,
                _ => 0,
            },
            _ => 0,
        };
        criteria.term = object
            .get("term")
            .and_then(Value::as_str)
            .map(str::to_string);
        Ok(criteria)
    }

    /// Criteria from a GET list's query string (`limit`, `page`, `sort`, `term`).
    pub fn from_query(
        shop: &Shop,
        entity: usize,
        query: &HashMap<String, String>,
    ) -> Result<Criteria, ApiError> {
        let mut body = Map::new();
        for key in ["limit", "page", "sort", "term", "total-count-mode"] {
            if let Some(value) = query.get(key) {
                body.insert(key.into(), Value::String(value.clone()));
            }
        }
        Criteria::parse(shop, entity, &Value::Object(body))
    }
}

fn parse_filter(shop: &Shop, entity: usize, filter: &Value, at: &str) -> Result<Filter, ApiError> {
    let kind = filter
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let field = || -> Result<String, ApiError> {
        let field = filter.get("field").and_then(Value::as_str).ok_or_else(|| {
            ApiError::invalid_filter(
                format!("Parameter \"field\" for {kind} filter is missing."),
                format!("{at}/field"),
            )
        })?;
        let field = field
            .strip_prefix(&format!("{}.", entities::def(entity).name))
            .unwrap_or(field);
        check_field(shop, entity, field)?;
        Ok(field.to_string())
    };
    let value = filter.get("value").cloned().unwrap_or(Value::Null);
    let text = || {
        value
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| value.to_string())
    };
    let list = || match &value {
        Value::Array(items) => items.clone(),
        Value::String(s) => s.split('|').map(|s| Value::String(s.to_string())).collect(),
        other => vec![other.clone()],
    };
    let queries = |shop: &Shop| -> Result<Vec<Filter>, ApiError> {
        filter
            .get("queries")
            .and_then(Value::as_array)
            .map(|qs| {
                qs.iter()
                    .enumerate()
                    .map(|(i, q)| parse_filter(shop, entity, q, &format!("{at}/queries/{i}")))
                    .collect()
            })
            .unwrap_or_else(|| Ok(Vec::new()))
    };
    let and = !filter
        .get("operator")
        .and_then(Value::as_str)
        .is_some_and(|o| o.eq_ignore_ascii_case("or"));
    Ok(match kind {
        "equals" => Filter::Equals(field()?, value),
        "equalsAny" => Filter::EqualsAny(field()?, list()),
        "equalsAll" => Filter::EqualsAll(field()?, list()),
        "contains" => Filter::Contains(field()?, text()),
        "prefix" => Filter::Prefix(field()?, text()),
        "suffix" => Filter::Suffix(field()?, text()),
        "range" => {
            let params = filter
                .get("parameters")
                .and_then(Value::as_object)
                .map(|p| p.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default();
            Filter::Range(field()?, params)
        }
        "multi" => Filter::Multi {
            and,
            queries: queries(shop)?,
        },
        "not" => Filter::Not {
            and,
            queries: queries(shop)?,
        },
        other => {
            return Err(ApiError::invalid_filter(
                format!("Unsupported filter type: {other}"),
                format!("{at}/type"),
            ));
        }
    })
}

/// A dotted field must exist: each segment an association or, at the end, a field (JSON
/// fields such as `customFields` and `price` may be followed by keys).
fn check_field(shop: &Shop, entity: usize, path: &str) -> Result<(), ApiError> {
    let mut current = entity;
    for segment in path.split('.') {
        let def = entities::def(current);
        if let Some(assoc) = def.assoc(segment) {
            current = entities::index_of(assoc.target).unwrap_or(current);
            continue;
        }
        let known = segment == "id"
            || match shop.meta(current) {
                Some(meta) => meta.has(segment),
                None => true,
            };
        if !known {
            return Err(ApiError::unmapped_field(path, def.name));
        }
        return Ok(());
    }
    Ok(())
}

/// Every value a dotted path reaches from a row (several through to-many associations).
pub fn values(shop: &Shop, entity: usize, id: Id, record: &Record, path: &str) -> Vec<Val> {
    let (head, rest) = match path.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (path, None),
    };
    if head == "id" && rest.is_none() {
        return vec![Val::Id(id)];
    }
    let def = entities::def(entity);
    if let Some(assoc) = def.assoc(head) {
        let Some(target) = entities::index_of(assoc.target) else {
            return Vec::new();
        };
        let rest = rest.unwrap_or("id");
        let related = related_ids(shop, id, record, assoc);
        return related
            .into_iter()
            .filter_map(|rid| shop.table(target).get(rid).map(|r| (rid, r)))
            .flat_map(|(rid, r)| values(shop, target, rid, r, rest))
            .collect();
    }
    let value = shop.get(record, head).cloned().unwrap_or(Val::Null);
    match (rest, &value) {
        (None, _) => vec![value],
        (Some(rest), Val::Json(text)) => {
            let json: Value = serde_json::from_str(text).unwrap_or(Value::Null);
            let mut out = Vec::new();
            dig(&json, &rest.split('.').collect::<Vec<_>>(), &mut out);
            out
        }
        _ => vec![Val::Null],
    }
}

fn dig(value: &Value, keys: &[&str], out: &mut Vec<Val>) {
    match (value, keys.split_first()) {
        (Value::Array(items), _) => items.iter().for_each(|item| dig(item, keys, out)),
        (_, None) => out.push(Val::from_json(value)),
        (Value::Object(map), Some((key, rest))) => match map.get(*key) {
            Some(v) => dig(v, rest, out),
            None => out.push(Val::Null),
        },
        _ => out.push(Val::Null),
    }
}

/// The ids an association of a row points at.
pub fn related_ids(shop: &Shop, id: Id, record: &Record, assoc: &Assoc) -> Vec<Id> {
    match assoc.kind {
        Kind::ManyToOne { fk } => shop.get_id(record, fk).into_iter().collect(),
        Kind::OneToOne { fk } | Kind::OneToMany { fk } => {
            shop.referencing(Shop::entity_index(assoc.target), fk, id)
        }
        Kind::ManyToMany {
            mapping,
            local,
            remote,
        } => {
            let m = Shop::entity_index(mapping);
            shop.referencing(m, local, id)
                .into_iter()
                .filter_map(|row| shop.table(m).get(row).and_then(|r| shop.get_id(r, remote)))
                .collect()
        }
    }
}

fn equal(a: &Val, b: &Value) -> bool {
    let b = Val::from_json(b);
    match (a, &b) {
        (Val::Null, Val::Null) => true,
        (Val::Null, _) | (_, Val::Null) => false,
        (Val::Bool(x), other) | (other, Val::Bool(x)) if !matches!(other, Val::Bool(_)) => {
            other.as_i64() == Some(i64::from(*x))
        }
        _ => a.compare(&b) == Ordering::Equal,
    }
}

impl Filter {
    pub fn matches(&self, shop: &Shop, entity: usize, id: Id, record: &Record) -> bool {
        let get = |field: &str| values(shop, entity, id, record, field);
        let any_text = |field: &str, test: &dyn Fn(&str) -> bool| {
            get(field)
                .iter()
                .any(|v| v.text().is_some_and(|t| test(&t.to_lowercase())))
        };
        match self {
            Filter::Equals(field, value) => {
                let found = get(field);
                if value.is_null() {
                    found.is_empty() || found.iter().any(Val::is_null)
                } else {
                    found.iter().any(|v| equal(v, value))
                }
            }
            Filter::EqualsAny(field, list) => {
                get(field).iter().any(|v| list.iter().any(|w| equal(v, w)))
            }
            Filter::EqualsAll(field, list) => {
                let found = get(field);
                list.iter().all(|w| found.iter().any(|v| equal(v, w)))
            }
            Filter::Contains(field, needle) => {
                let needle = needle.to_lowercase();
                any_text(field, &|t| t.contains(&needle))
            }
            Filter::Prefix(field, needle) => {
                let needle = needle.to_lowercase();
                any_text(field, &|t| t.starts_with(&needle))
            }
            Filter::Suffix(field, needle) => {
                let needle = needle.to_lowercase();
                any_text(field, &|t| t.ends_with(&needle))
            }
            Filter::Range(field, params) => get(field).iter().any(|v| {
                !v.is_null()
                    && params.iter().all(|(op, bound)| {
                        let order = v.compare(&Val::from_json(bound));
                        match op.as_str() {
                            "gt" => order == Ordering::Greater,
                            "gte" => order != Ordering::Less,
                            "lt" => order == Ordering::Less,
                            "lte" => order != Ordering::Greater,
                            _ => true,
                        }
                    })
            }),
            Filter::Multi { and, queries } => {
                if *and {
                    queries.iter().all(|q| q.matches(shop, entity, id, record))
                } else {
                    queries.iter().any(|q| q.matches(shop, entity, id, record))
                }
            }
            Filter::Not { and, queries } => {
                let inner = if *and {
                    queries.iter().all(|q| q.matches(shop, entity, id, record))
                } else {
                    queries.iter().any(|q| q.matches(shop, entity, id, record))
                };
                !inner
            }
        }
    }
}

/// The result of a search: ids of the page, and the total.
pub struct Hits {
    pub ids: Vec<Id>,
    pub total: usize,
}

/// Runs criteria over a table (or over `scope`, a given set of rows such as an association).
pub fn search(shop: &Shop, entity: usize, criteria: &Criteria, scope: Option<Vec<Id>>) -> Hits {
    let table = shop.table(entity);
    let candidates: Vec<Id> = match (&criteria.ids, scope) {
        (Some(ids), Some(scope)) => ids
            .iter()
            .copied()
            .filter(|id| scope.contains(id))
            .collect(),
        (Some(ids), None) => ids
            .iter()
            .copied()
            .filter(|id| table.get(*id).is_some())
            .collect(),
        (None, Some(scope)) => scope,
        (None, None) => match indexed_candidates(shop, entity, &criteria.filters) {
            Some(ids) => ids,
            None => table.iter().map(|(_, id, _)| id).collect(),
        },
    };
    let mut matched: Vec<Id> = candidates
        .into_iter()
        .filter(|id| {
            let Some(record) = table.get(*id) else {
                return false;
            };
            criteria
                .filters
                .iter()
                .all(|f| f.matches(shop, entity, *id, record))
                && criteria
                    .post_filters
                    .iter()
                    .all(|f| f.matches(shop, entity, *id, record))
                && criteria
                    .term
                    .as_ref()
                    .is_none_or(|term| term_matches(shop, record, term))
        })
        .collect();
    if !criteria.sort.is_empty() {
        // Direct fields sort on borrowed values; dotted paths resolve once per row.
        let direct: Vec<Option<crate::model::FieldId>> = criteria
            .sort
            .iter()
            .map(|s| {
                if s.field.contains('.') || s.field == "id" {
                    None
                } else {
                    shop.store.names.get(&s.field)
                }
            })
            .collect();
        let null = Val::Null;
        let mut keyed: Vec<(Vec<std::borrow::Cow<'_, Val>>, Id)> = matched
            .iter()
            .map(|id| {
                let record = table.get(*id);
                let key = criteria
                    .sort
                    .iter()
                    .zip(&direct)
                    .map(|(s, field)| match (record, field) {
                        (Some(r), Some(f)) => {
                            std::borrow::Cow::Borrowed(r.get(*f).unwrap_or(&null))
                        }
                        (Some(r), None) => std::borrow::Cow::Owned(
                            values(shop, entity, *id, r, &s.field)
                                .into_iter()
                                .next()
                                .unwrap_or(Val::Null),
                        ),
                        (None, _) => std::borrow::Cow::Borrowed(&null),
                    })
                    .collect();
                (key, *id)
            })
            .collect();
        keyed.sort_by(|(a, _), (b, _)| {
            for (i, sort) in criteria.sort.iter().enumerate() {
                let (x, y) = (&*a[i], &*b[i]);
                let order = if sort.natural {
                    natural(x, y)
                } else {
                    x.compare(y)
                };
                let order = if sort.descending {
                    order.reverse()
                } else {
                    order
                };
                if order != Ordering::Equal {
                    return order;
                }
            }
            Ordering::Equal
        });
        matched = keyed.into_iter().map(|(_, id)| id).collect();
    }
    let count = matched.len();
    // With `ids` the limit is ignored (API-NOTES §4.2).
    let limit = if criteria.ids.is_some() {
        None
    } else {
        criteria.limit
    };
    let (offset, page) = match limit {
        Some(limit) => {
            let offset = ((criteria.page.unwrap_or(1) - 1) * limit) as usize;
            let page: Vec<Id> = matched
                .iter()
                .skip(offset)
                .take(limit as usize)
                .copied()
                .collect();
            (offset, page)
        }
        None => (0, matched),
    };
    let total = match criteria.total_count_mode {
        1 => count,
        2 => {
            let limit = limit.map(|l| l as usize).unwrap_or(count);
            offset + count.saturating_sub(offset).min(limit * 5 + 1)
        }
        _ => page.len(),
    };
    Hits { ids: page, total }
}

fn term_matches(shop: &Shop, record: &Record, term: &str) -> bool {
    let term = term.to_lowercase();
    [
        "name",
        "productNumber",
        "ean",
        "email",
        "orderNumber",
        "technicalName",
        "customerNumber",
    ]
    .iter()
    .any(|f| {
        shop.get(record, f)
            .and_then(Val::text)
            .is_some_and(|t| t.to_lowercase().contains(&term))
    })
}

fn natural(a: &Val, b: &Val) -> Ordering {
    let (Some(x), Some(y)) = (a.text(), b.text()) else {
        return a.compare(b);
    };
    let split = |s: &str| -> Vec<(bool, String)> {
        let mut parts: Vec<(bool, String)> = Vec::new();
        for c in s.chars() {
            let digit = c.is_ascii_digit();
            match parts.last_mut() {
                Some((d, part)) if *d == digit => part.push(c),
                _ => parts.push((digit, c.to_string())),
            }
        }
        parts
    };
    for (p, q) in split(&x).iter().zip(split(&y).iter()) {
        let order = match (p.0 && q.0, p.1.parse::<u128>(), q.1.parse::<u128>()) {
            (true, Ok(m), Ok(n)) => m.cmp(&n),
            _ => p.1.to_lowercase().cmp(&q.1.to_lowercase()),
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    x.len().cmp(&y.len())
}

/// Rows an AND-ed top-level equality filter on an indexed field (or `id`) narrows to.
fn indexed_candidates(shop: &Shop, entity: usize, filters: &[Filter]) -> Option<Vec<Id>> {
    let table = shop.table(entity);
    for filter in filters {
        let (field, list) = match filter {
            Filter::Equals(field, value) if !value.is_null() => (field, vec![value.clone()]),
            Filter::EqualsAny(field, list) => (field, list.clone()),
            _ => continue,
        };
        if field == "id" {
            return Some(
                list.iter()
                    .filter_map(|v| v.as_str().and_then(Id::parse))
                    .filter(|id| table.get(*id).is_some())
                    .collect(),
            );
        }
        let Some(f) = shop.store.names.get(field) else {
            continue;
        };
        if !table.has_index(f) {
            continue;
        }
        let mut slots: Vec<u32> = list
            .iter()
            .filter_map(Key::from_json)
            .flat_map(|key| {
                table
                    .lookup(f, &key)
                    .map(<[u32]>::to_vec)
                    .unwrap_or_default()
            })
            .collect();
        slots.sort_unstable();
        slots.dedup();
        return Some(
            slots
                .into_iter()
                .filter_map(|s| table.row(s).map(|(id, _)| id))
                .collect(),
        );
    }
    None
}
