//! The write path every write takes (single CRUD and each sync record): id and type checks
//! against the version's schema, unknown and write-protected fields, required fields on
//! create, Shopware's own rules (default-currency price, unique product numbers and
//! visibilities, foreign keys), nested associations, derived fields, and deletes with
//! CASCADE / RESTRICT / SET NULL.

use std::collections::HashSet;

use serde_json::{Map, Value, json};

use crate::entities::{self, Kind, OnDelete};
use crate::errors::ApiError;
use crate::ids::Id;
use crate::model::{Record, Val};
use crate::schema::Broken;
use crate::shop::{DEFAULT_CURRENCY, SYSTEM_LANGUAGE, Shop, inheritable};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Upsert,
    Create,
    Update,
}

/// What one write or sync produced: errors, and the rows written or deleted per entity.
#[derive(Debug, Default)]
pub struct Batch {
    pub errors: Vec<ApiError>,
    pub written: Vec<(String, Vec<Value>)>,
    pub deleted: Vec<(String, Vec<Value>)>,
    pub not_found: Vec<(String, Vec<Value>)>,
    /// 6.5+ sync: foreign key resolvers are allowed.
    pub resolvers: bool,
    /// Generated data the simulator writes itself: the schema checks are skipped.
    pub trusted: bool,
    pub(crate) deleting: HashSet<(usize, Id)>,
}

fn note(list: &mut Vec<(String, Vec<Value>)>, entity: &str, value: Value) {
    match list.iter_mut().find(|(e, _)| e == entity) {
        Some((_, values)) => {
            if !values.contains(&value) {
                values.push(value);
            }
        }
        None => list.push((entity.to_string(), vec![value])),
    }
}

impl Batch {
    pub fn note_written(&mut self, entity: &str, value: Value) {
        note(&mut self.written, entity, value);
    }

    /// The lists as an object keyed by entity. PHP encodes an empty one as `[]` (API-NOTES
    /// §13.2), but the OpenAPI files type these members `object`, and the schema wins: `{}`.
    pub fn object(list: &[(String, Vec<Value>)]) -> Value {
        Value::Object(
            list.iter()
                .map(|(k, v)| (k.clone(), Value::Array(v.clone())))
                .collect(),
        )
    }
}

impl Shop {
    /// Writes one record of `entity`; returns its id when it was written.
    pub fn write(
        &mut self,
        batch: &mut Batch,
        entity: usize,
        payload: &Value,
        mode: Mode,
        pointer: &str,
        parent: Option<(&'static str, Id)>,
    ) -> Option<Id> {
        let def = entities::def(entity);
        let Some(object) = payload.as_object() else {
            batch
                .errors
                .push(ApiError::malformed_input(pointer.to_string()));
            return None;
        };
        let mut object = object.clone();
        if batch.resolvers {
            self.resolve_foreign_keys(batch, &mut object, pointer);
        }
        if let Some((fk, parent_id)) = parent {
            object.insert(fk.to_string(), json!(parent_id.hex()));
        }
        let errors_before = batch.errors.len();
        self.sanitize_strings(batch, def.name, &mut object, pointer);

        // The primary key.
        let id = match def.mapping {
            Some((local, remote)) => {
                let mut ids = Vec::new();
                for field in [local, remote] {
                    match object.get(field) {
                        Some(Value::String(s)) if Id::parse(s).is_some() => {
                            ids.extend(Id::parse(s))
                        }
                        None | Some(Value::Null) => batch
                            .errors
                            .push(ApiError::blank(format!("{pointer}/{field}"))),
                        Some(other) => batch
                            .errors
                            .push(ApiError::invalid_uuid(format!("{pointer}/{field}"), other)),
                    }
                }
                if ids.len() != 2 {
                    return None;
                }
                Id::pair(ids[0], ids[1])
            }
            None => match object.get("id") {
                None | Some(Value::Null) => self.random_id(),
                Some(Value::String(s)) => match Id::parse(s) {
                    Some(id) => id,
                    None => {
                        batch
                            .errors
                            .push(ApiError::invalid_uuid(format!("{pointer}/id"), &json!(s)));
                        return None;
                    }
                },
                Some(other) => {
                    batch
                        .errors
                        .push(ApiError::invalid_uuid(format!("{pointer}/id"), other));
                    return None;
                }
            },
        };
        let existing = self.table(entity).get(id).cloned();
        match (mode, &existing) {
            (Mode::Create, Some(_)) => {
                batch.errors.push(ApiError::integrity(format!(
                    "1062 Duplicate entry '{}' for key '{}.PRIMARY'",
                    id.hex(),
                    def.name
                )));
                return None;
            }
            (Mode::Update, None) => {
                batch.errors.push(ApiError::not_found(def.name, &id.hex()));
                return None;
            }
            _ => {}
        }
        if def.mapping.is_some() && existing.is_some() {
            return Some(id);
        }
        let creating = existing.is_none();
        let privilege = format!(
            "{}:{}",
            def.name,
            if creating { "create" } else { "update" }
        );
        if self.revoked.contains(&privilege) {
            batch.errors.push(ApiError::missing_privilege(&[privilege]));
            return None;
        }
        let is_variant = def.name == "product"
            && match object.get("parentId") {
                Some(v) => !v.is_null(),
                None => existing
                    .as_ref()
                    .and_then(|r| self.get_id(r, "parentId"))
                    .is_some(),
            };

        if !batch.trusted {
            self.check_against_schema(
                batch, entity, &object, creating, is_variant, pointer, parent,
            );
        }
        if def.name == "product" {
            self.check_product(batch, id, &object, creating, is_variant, pointer);
        }
        if def.name == "product_visibility" {
            self.check_visibility(batch, id, &object, existing.as_ref());
        }
        if batch.errors.len() > errors_before {
            return None;
        }

        // To-one associations written inline come first: their id fills the foreign key.
        for assoc in def.assocs {
            if let Kind::ManyToOne { fk } = assoc.kind
                && let Some(nested) = object.get(assoc.name)
                && nested.is_object()
            {
                let target = entities::index_of(assoc.target)?;
                let nested_id = self.write(
                    batch,
                    target,
                    nested,
                    Mode::Upsert,
                    &format!("{pointer}/{}", assoc.name),
                    None,
                )?;
                object.insert(fk.to_string(), json!(nested_id.hex()));
            }
        }
        if !self.check_foreign_keys(batch, entity, &object) {
            return None;
        }

        let now = self.now();
        let meta_scalars: Option<Vec<String>> = self.meta(entity).map(|m| m.scalars.clone());
        let mut record = existing.clone().unwrap_or_default();
        if creating {
            for (field, value) in def.defaults {
                if !object.contains_key(*field) {
                    let value: Value = serde_json::from_str(value).unwrap_or(Value::Null);
                    self.set(&mut record, field, Val::from_json(&value));
                }
            }
            self.set(&mut record, "createdAt", Val::Str(now.as_str().into()));
        } else {
            self.set(&mut record, "updatedAt", Val::Str(now.as_str().into()));
        }
        let mut translated_written = false;
        if let Some(Value::Object(translations)) = object.get("translations") {
            // The system language wins: apply it last.
            let mut entries: Vec<(&String, &Value)> = translations.iter().collect();
            entries.sort_by_key(|(k, _)| *k == SYSTEM_LANGUAGE || *k == "en-GB");
            for (_, fields) in entries {
                if let Some(fields) = fields.as_object() {
                    for (field, value) in fields {
                        if !object.contains_key(field) {
                            self.set(&mut record, field, Val::from_json(value));
                            translated_written = true;
                        }
                    }
                }
            }
        }
        for (field, value) in &object {
            if field == "id"
                || field == "translations"
                || field == "extensions"
                || def.assoc(field).is_some()
            {
                continue;
            }
            let is_scalar = meta_scalars.as_ref().is_none_or(|s| s.contains(field));
            if is_scalar {
                self.set(&mut record, field, Val::from_json(value));
                translated_written |= def.is_translated(field);
            }
        }
        self.derive(entity, id, &mut record, creating);
        self.store.save(entity, id, record);
        match def.mapping {
            Some((local, remote)) => batch.note_written(
                def.name,
                json!({ local: object.get(local), remote: object.get(remote) }),
            ),
            None => batch.note_written(def.name, json!(id.hex())),
        }
        if translated_written {
            let key = format!("{}Id", entities::camel(def.name));
            batch.note_written(
                &format!("{}_translation", def.name),
                json!({ key: id.hex(), "languageId": SYSTEM_LANGUAGE }),
            );
        }

        // To-many associations after the row exists.
        for assoc in def.assocs {
            let Some(nested) = object.get(assoc.name) else {
                continue;
            };
            let Some(target) = entities::index_of(assoc.target) else {
                continue;
            };
            let items: Vec<&Value> = match (assoc.kind, nested) {
                (Kind::ManyToOne { .. }, _) => continue,
                (Kind::OneToOne { .. }, Value::Object(_)) => vec![nested],
                (_, Value::Array(items)) => items.iter().collect(),
                (_, Value::Null) => continue,
                _ => {
                    batch.errors.push(ApiError::malformed_input(format!(
                        "{pointer}/{}",
                        assoc.name
                    )));
                    continue;
                }
            };
            for (i, item) in items.into_iter().enumerate() {
                let at = format!("{pointer}/{}/{i}", assoc.name);
                match assoc.kind {
                    Kind::OneToMany { fk } | Kind::OneToOne { fk } => {
                        self.write(batch, target, item, Mode::Upsert, &at, Some((fk, id)));
                    }
                    Kind::ManyToMany {
                        mapping,
                        local,
                        remote,
                    } => {
                        let only_id = item
                            .as_object()
                            .is_some_and(|o| o.len() == 1 && o.contains_key("id"));
                        let target_id = if only_id {
                            match item.get("id").and_then(Value::as_str).and_then(Id::parse) {
                                Some(tid) if self.table(target).get(tid).is_some() => Some(tid),
                                Some(_) => {
                                    batch.errors.push(ApiError::foreign_key(
                                        mapping,
                                        remote,
                                        assoc.target,
                                    ));
                                    None
                                }
                                None => {
                                    batch.errors.push(ApiError::invalid_uuid(
                                        format!("{at}/id"),
                                        item.get("id").unwrap_or(&Value::Null),
                                    ));
                                    None
                                }
                            }
                        } else {
                            self.write(batch, target, item, Mode::Upsert, &at, None)
                        };
                        if let (Some(tid), Some(m)) = (target_id, entities::index_of(mapping)) {
                            let link = json!({ local: id.hex(), remote: tid.hex() });
                            self.write(batch, m, &link, Mode::Upsert, &at, None);
                        }
                    }
                    Kind::ManyToOne { .. } => {}
                }
            }
        }
        if def.name == "product" {
            self.refresh_product(id);
        }
        Some(id)
    }

    /// `StringFieldSerializer::encode` on the string fields of `entity` (plain and in
    /// `translations`): an empty value (6.5+: blank after `trim`) becomes `null`; a value of
    /// more than 255 characters is refused (Symfony's `Length`); HTML tags are stripped
    /// (`strip_tags`, these fields do not allow HTML), and what is left must not be empty
    /// (`NotBlank`). The value is stored as given otherwise: not trimmed. A violation in a
    /// translated field points into `translations/<language id>/`, where the DAL writes it.
    fn sanitize_strings(
        &self,
        batch: &mut Batch,
        entity: &str,
        object: &mut Map<String, Value>,
        pointer: &str,
    ) {
        let fields: Vec<(&str, bool)> = STRING_FIELDS
            .iter()
            .filter(|(e, _, _)| *e == entity)
            .map(|(_, f, t)| (*f, *t))
            .collect();
        if fields.is_empty() {
            return;
        }
        let trims = self.version >= crate::Version::V6_5;
        let mut sanitize = |value: &mut Value, at: String| {
            let Value::String(text) = value else {
                return;
            };
            let empty = if trims {
                text.trim().is_empty()
            } else {
                text.is_empty()
            };
            if empty {
                *value = Value::Null;
                return;
            }
            if text.chars().count() > MAX_STRING {
                batch.errors.push(ApiError::too_long(at, text, MAX_STRING));
                return;
            }
            let stripped = strip_tags(text);
            if stripped.is_empty() {
                batch
                    .errors
                    .push(ApiError::blank(at).with_parameters(json!({"{{ value }}": "\"\""})));
                return;
            }
            *text = stripped;
        };
        for (field, translated) in &fields {
            if let Some(value) = object.get_mut(*field) {
                let at = match translated {
                    true => format!("{pointer}/translations/{SYSTEM_LANGUAGE}/{field}"),
                    false => format!("{pointer}/{field}"),
                };
                sanitize(value, at);
            }
        }
        if let Some(Value::Object(translations)) = object.get_mut("translations") {
            for (language, values) in translations.iter_mut() {
                for (field, translated) in &fields {
                    if let (true, Some(value)) = (*translated, values.get_mut(*field)) {
                        sanitize(value, format!("{pointer}/translations/{language}/{field}"));
                    }
                }
            }
        }
    }

    /// Unknown and write-protected fields, types (the version's schema) and required fields.
    #[allow(clippy::too_many_arguments)]
    fn check_against_schema(
        &self,
        batch: &mut Batch,
        entity: usize,
        object: &Map<String, Value>,
        creating: bool,
        is_variant: bool,
        pointer: &str,
        parent: Option<(&'static str, Id)>,
    ) {
        let def = entities::def(entity);
        let (Some(reference), Some(meta)) = (self.reference.as_ref(), self.meta(entity)) else {
            return;
        };
        for (field, value) in object {
            if field == "translations" || field == "extensions" {
                continue;
            }
            if !meta.has(field) {
                batch.errors.push(ApiError::unexpected_field(
                    format!("{pointer}/{field}"),
                    field,
                ));
            } else if meta.read_only.contains(field)
                && !(def.name == "product" && field == "availableStock" && value.is_null())
            {
                batch
                    .errors
                    .push(ApiError::write_protected(format!("{pointer}/{field}")));
            }
        }
        let scalars: Map<String, Value> = object
            .iter()
            .filter(|(k, _)| meta.scalars.contains(k) && !meta.read_only.contains(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let shallow = format!("shallow:{}", def.schema_name());
        for problem in reference.check(&shallow, &Value::Object(scalars.clone())) {
            let at = format!("{pointer}{}", problem.pointer);
            let value = Value::Object(scalars.clone())
                .pointer(&problem.pointer)
                .cloned()
                .unwrap_or(Value::Null);
            batch.errors.push(match problem.broken {
                Broken::Type(expected) => ApiError::wrong_type(at, expected, &value),
                Broken::Uuid => ApiError::invalid_uuid(at, &value),
                Broken::Enum => ApiError::bad_choice(at, &value),
                Broken::Other(_) => ApiError::constraint(at, problem.message),
            });
        }
        if !creating {
            return;
        }
        let translations = object.get("translations").and_then(Value::as_object);
        for field in &meta.required {
            let skip = field == "id"
                || field == "createdAt"
                || field.ends_with("VersionId")
                || meta.read_only.contains(field)
                || !meta.scalars.contains(field)
                || def.defaults.iter().any(|(f, _)| f == field)
                || parent.is_some_and(|(fk, _)| fk == field)
                || (is_variant && inheritable(field))
                || (def.is_translated(field)
                    && translations.is_some_and(|t| {
                        t.values()
                            .any(|l| l.get(field).is_some_and(|v| !v.is_null()))
                    }));
            if skip {
                continue;
            }
            let blank = match object.get(field) {
                None | Some(Value::Null) => true,
                Some(Value::String(s)) => s.trim().is_empty(),
                Some(_) => false,
            };
            if blank {
                batch
                    .errors
                    .push(ApiError::blank(format!("{pointer}/{field}")));
            }
        }
    }

    fn check_product(
        &self,
        batch: &mut Batch,
        id: Id,
        object: &Map<String, Value>,
        creating: bool,
        is_variant: bool,
        pointer: &str,
    ) {
        let price = object.get("price");
        let needs_price = (creating && !is_variant) || price.is_some_and(|p| !p.is_null());
        if needs_price
            && let Some(Value::Array(prices)) = price
            && !prices
                .iter()
                .any(|p| p.get("currencyId").and_then(Value::as_str) == Some(DEFAULT_CURRENCY))
        {
            batch.errors.push(ApiError::constraint(
                format!("{pointer}/price"),
                "No price for default currency defined",
            ));
        }
        if let Some(Value::String(number)) = object.get("productNumber")
            && let Some(other) = self.find_by(0, "productNumber", number)
            && other != id
        {
            batch.errors.push(ApiError::duplicate_number(number));
        }
    }

    fn check_visibility(
        &self,
        batch: &mut Batch,
        id: Id,
        object: &Map<String, Value>,
        existing: Option<&Record>,
    ) {
        let field = |name: &str| {
            object
                .get(name)
                .and_then(Value::as_str)
                .and_then(Id::parse)
                .or_else(|| existing.and_then(|r| self.get_id(r, name)))
        };
        let (Some(product), Some(channel)) = (field("productId"), field("salesChannelId")) else {
            return;
        };
        let visibilities = Shop::entity_index("product_visibility");
        for other in self.referencing(visibilities, "productId", product) {
            if other == id {
                continue;
            }
            let same_channel = self
                .table(visibilities)
                .get(other)
                .and_then(|r| self.get_id(r, "salesChannelId"))
                == Some(channel);
            if same_channel {
                batch.errors.push(ApiError::integrity(format!(
                    "1062 Duplicate entry '{}-{}' for key 'product_visibility.uniq.product_id__sales_channel_id'",
                    product.hex(),
                    channel.hex()
                )));
            }
        }
    }

    /// Every many-to-one foreign key must point at an existing row (MySQL's FK constraints).
    fn check_foreign_keys(
        &self,
        batch: &mut Batch,
        entity: usize,
        object: &Map<String, Value>,
    ) -> bool {
        let def = entities::def(entity);
        let mut ok = true;
        let mut checks: Vec<(&str, &str)> = def
            .assocs
            .iter()
            .filter_map(|a| match a.kind {
                Kind::ManyToOne { fk } => Some((fk, a.target)),
                _ => None,
            })
            .collect();
        if let Some((local, remote)) = def.mapping {
            checks.extend(
                mapping_targets(def.name)
                    .map(|(l, r)| [(local, l), (remote, r)])
                    .into_iter()
                    .flatten(),
            );
        }
        for (fk, target) in checks {
            // Circular references inside one aggregate have no constraint in the database.
            if matches!(
                (def.name, fk),
                ("order", "billingAddressId")
                    | ("customer", "defaultBillingAddressId")
                    | ("customer", "defaultShippingAddressId")
            ) {
                continue;
            }
            let Some(target_id) = object.get(fk).and_then(Value::as_str).and_then(Id::parse) else {
                continue;
            };
            let Some(target_index) = entities::index_of(target) else {
                continue;
            };
            if self.table(target_index).get(target_id).is_none() {
                batch
                    .errors
                    .push(ApiError::foreign_key(def.name, fk, target));
                ok = false;
            }
        }
        ok
    }

    /// 6.5+ sync: `{"resolver": "product.number", "value": "SW1"}` wherever an id goes.
    fn resolve_foreign_keys(
        &self,
        batch: &mut Batch,
        object: &mut Map<String, Value>,
        pointer: &str,
    ) {
        for (field, value) in object.iter_mut() {
            let Some(resolver) = value
                .get("resolver")
                .and_then(Value::as_str)
                .map(str::to_string)
            else {
                continue;
            };
            let wanted = value.get("value").cloned().unwrap_or(Value::Null);
            let null_on_missing = value.get("nullOnMissing") == Some(&Value::Bool(true));
            let text = wanted
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| wanted.to_string());
            let found = match resolver.as_str() {
                "product.number" => self.find_by(0, "productNumber", &text),
                "currency.iso_code" if self.version.all_resolvers() => {
                    self.find_by(Shop::entity_index("currency"), "isoCode", &text)
                }
                "payment_method.technical_name" if self.version.all_resolvers() => {
                    self.find_by(Shop::entity_index("payment_method"), "technicalName", &text)
                }
                "shipping_method.technical_name" if self.version.all_resolvers() => self.find_by(
                    Shop::entity_index("shipping_method"),
                    "technicalName",
                    &text,
                ),
                "salutation.salutation_key" if self.version.all_resolvers() => {
                    self.find_by(Shop::entity_index("salutation"), "salutationKey", &text)
                }
                "locale.code" if self.version.all_resolvers() => {
                    self.find_by(Shop::entity_index("locale"), "code", &text)
                }
                "tax.tax_rate" if self.version.all_resolvers() => {
                    wanted.as_f64().and_then(|r| self.tax_by_rate(r))
                }
                _ => None,
            };
            match found {
                Some(id) => *value = json!(id.hex()),
                None if null_on_missing => *value = Value::Null,
                None => batch.errors.push(ApiError::unresolved(
                    &resolver,
                    &wanted,
                    format!("{pointer}/{field}"),
                )),
            }
        }
    }

    /// Fields the DAL computes on write.
    fn derive(&mut self, entity: usize, id: Id, record: &mut Record, creating: bool) {
        let def = entities::def(entity);
        match def.name {
            "product" => self.derive_stock(id, record),
            "category" => {
                let parent = self.get_id(record, "parentId");
                let (path, level) =
                    match parent.and_then(|p| self.table(entity).get(p).map(|r| (p, r))) {
                        Some((parent_id, parent_row)) => {
                            let parent_path = self
                                .get(parent_row, "path")
                                .and_then(Val::as_str)
                                .unwrap_or("|")
                                .to_string();
                            let level = self
                                .get(parent_row, "level")
                                .and_then(Val::as_i64)
                                .unwrap_or(1);
                            (
                                Val::Str(format!("{parent_path}{}|", parent_id.hex()).into()),
                                level + 1,
                            )
                        }
                        None => (Val::Null, 1),
                    };
                if !self.indexing_disabled {
                    self.set(record, "path", path);
                    self.set(record, "level", Val::Int(level));
                }
            }
            "order" => {
                if creating {
                    let next = self.next_auto_increment;
                    self.next_auto_increment += 1;
                    self.set(record, "autoIncrement", Val::Int(next));
                }
                if let Some(date) = self
                    .get(record, "orderDateTime")
                    .and_then(Val::as_str)
                    .map(|d| d.chars().take(10).collect::<String>())
                {
                    self.set(record, "orderDate", Val::Str(date.into()));
                }
                let price = self.json_field(record, "price");
                for (field, from) in [
                    ("amountTotal", "totalPrice"),
                    ("amountNet", "netPrice"),
                    ("positionPrice", "positionPrice"),
                ] {
                    if let Some(v) = price.get(from) {
                        self.set(record, field, Val::from_json(v));
                    }
                }
                if let Some(v) = price.get("taxStatus") {
                    self.set(record, "taxStatus", Val::from_json(v));
                }
                let shipping = self.json_field(record, "shippingCosts");
                if let Some(v) = shipping.get("totalPrice") {
                    self.set(record, "shippingTotal", Val::from_json(v));
                }
            }
            "order_line_item" => {
                let price = self.json_field(record, "price");
                for field in ["unitPrice", "totalPrice"] {
                    if let Some(v) = price.get(field) {
                        self.set(record, field, Val::from_json(v));
                    }
                }
            }
            _ => {}
        }
    }

    /// Derived product data kept by indexers: childCount of the parent, ids of linked
    /// options, properties and categories.
    pub fn refresh_product(&mut self, id: Id) {
        if self.indexing_disabled {
            return;
        }
        let Some(mut record) = self.table(0).get(id).cloned() else {
            return;
        };
        let mapped = |shop: &Shop, mapping: &str, remote: &str| -> Option<Val> {
            let m = Shop::entity_index(mapping);
            let ids: Vec<Value> = shop
                .referencing(m, "productId", id)
                .into_iter()
                .filter_map(|row| shop.table(m).get(row).and_then(|r| shop.get_id(r, remote)))
                .map(|i| json!(i.hex()))
                .collect();
            (!ids.is_empty()).then(|| Val::Json(Value::Array(ids).to_string().into()))
        };
        let mut changed = false;
        for (field, mapping, remote) in [
            ("optionIds", "product_option", "optionId"),
            ("propertyIds", "product_property", "optionId"),
            ("categoryIds", "product_category", "categoryId"),
            ("tagIds", "product_tag", "tagId"),
        ] {
            if let Some(value) = mapped(self, mapping, remote) {
                let f = self.store.field(field);
                if record.get(f) != Some(&value) {
                    record.set(f, value);
                    changed = true;
                }
            }
        }
        if let Some(Val::Json(categories)) = self.get(&record, "categoryIds").cloned() {
            let categories: Vec<String> = serde_json::from_str(&categories).unwrap_or_default();
            let category_ix = Shop::entity_index("category");
            let mut tree: Vec<String> = Vec::new();
            for category in categories {
                if let Some(row) = Id::parse(&category).and_then(|c| self.table(category_ix).get(c))
                {
                    let path = self.get(row, "path").and_then(Val::as_str).unwrap_or("");
                    tree.extend(
                        path.split('|')
                            .filter(|s| !s.is_empty())
                            .map(str::to_string),
                    );
                }
                tree.push(category);
            }
            tree.dedup();
            let value = Val::Json(json!(tree).to_string().into());
            if self.get(&record, "categoryTree") != Some(&value) {
                self.set(&mut record, "categoryTree", value);
                changed = true;
            }
        }
        let children = self.referencing(0, "parentId", id).len() as i64;
        let count = Val::Int(children);
        if self.get(&record, "childCount") != Some(&count) {
            self.set(&mut record, "childCount", count);
            changed = true;
        }
        if changed {
            self.store.save(0, id, record.clone());
        }
        if let Some(parent) = self.get_id(&record, "parentId")
            && let Some(mut parent_row) = self.table(0).get(parent).cloned()
        {
            let count = Val::Int(self.referencing(0, "parentId", parent).len() as i64);
            if self.get(&parent_row, "childCount") != Some(&count) {
                self.set(&mut parent_row, "childCount", count);
                self.store.save(0, parent, parent_row);
            }
        }
    }

    /// Deletes by a sync/REST key (`{"id": …}`, or both foreign keys of a mapping).
    pub fn delete_key(&mut self, batch: &mut Batch, entity: usize, key: &Value, pointer: &str) {
        let def = entities::def(entity);
        let id = match def.mapping {
            Some((local, remote)) => {
                let a = key.get(local).and_then(Value::as_str).and_then(Id::parse);
                let b = key.get(remote).and_then(Value::as_str).and_then(Id::parse);
                match (a, b) {
                    (Some(a), Some(b)) => Id::pair(a, b),
                    _ => {
                        batch
                            .errors
                            .push(ApiError::invalid_uuid(format!("{pointer}/{local}"), key));
                        return;
                    }
                }
            }
            None => match key.get("id").and_then(Value::as_str).and_then(Id::parse) {
                Some(id) => id,
                None => {
                    batch.errors.push(ApiError::invalid_uuid(
                        format!("{pointer}/id"),
                        key.get("id").unwrap_or(&Value::Null),
                    ));
                    return;
                }
            },
        };
        if self.table(entity).get(id).is_none() {
            note(&mut batch.not_found, def.name, key_json(def, key, id));
            return;
        }
        let privilege = format!("{}:delete", def.name);
        if self.revoked.contains(&privilege) {
            batch.errors.push(ApiError::missing_privilege(&[privilege]));
            return;
        }
        let savepoint = self.store.savepoint();
        if let Err(error) = self.delete_row(batch, entity, id) {
            self.store.rollback_to(savepoint);
            batch.errors.push(error);
        }
    }

    /// Deletes a row and what depends on it; a RESTRICT reference refuses.
    pub fn delete_row(&mut self, batch: &mut Batch, entity: usize, id: Id) -> Result<(), ApiError> {
        let def = entities::def(entity);
        batch.deleting.insert((entity, id));
        let product_parent = (def.name == "product")
            .then(|| {
                self.table(0)
                    .get(id)
                    .and_then(|r| self.get_id(r, "parentId"))
            })
            .flatten();
        let mapping_product = def
            .mapping
            .filter(|(local, _)| *local == "productId")
            .and_then(|(local, _)| {
                self.table(entity)
                    .get(id)
                    .and_then(|r| self.get_id(r, local))
            });
        for (holder, fk, rule) in self.referrers[entity].clone() {
            let rows: Vec<Id> = self
                .referencing(holder, fk, id)
                .into_iter()
                .filter(|row| !batch.deleting.contains(&(holder, *row)))
                .collect();
            if rows.is_empty() {
                continue;
            }
            match rule {
                OnDelete::Restrict => {
                    return Err(ApiError::delete_restricted(
                        def.name,
                        id,
                        entities::def(holder).name,
                    ));
                }
                OnDelete::Cascade => {
                    for row in rows {
                        self.delete_row(batch, holder, row)?;
                    }
                }
                OnDelete::SetNull => {
                    for row in rows {
                        if let Some(mut record) = self.table(holder).get(row).cloned() {
                            self.set(&mut record, fk, Val::Null);
                            self.store.save(holder, row, record);
                        }
                    }
                }
            }
        }
        let record = self.table(entity).get(id).cloned();
        self.store.remove(entity, id);
        let value = match (def.mapping, record) {
            (Some((local, remote)), Some(record)) => json!({
                local: self.get_id(&record, local).map(|i| i.hex()),
                remote: self.get_id(&record, remote).map(|i| i.hex()),
            }),
            _ => json!(id.hex()),
        };
        note(&mut batch.deleted, def.name, value);
        if let Some(product) = product_parent.or(mapping_product) {
            self.refresh_product(product);
        }
        Ok(())
    }
}

fn key_json(def: &entities::EntityDef, key: &Value, id: Id) -> Value {
    match def.mapping {
        Some(_) => key.clone(),
        None => json!(id.hex()),
    }
}

/// The longest a `StringField` may be (`StringField::$maxLength`, 255 by default).
const MAX_STRING: usize = 255;

/// `StringField`s the simulator writes, (entity, field, translated), from the entity
/// definitions (`ProductDefinition`, `ProductTranslationDefinition`,
/// `CategoryTranslationDefinition`, `PropertyGroup(Option)TranslationDefinition`).
const STRING_FIELDS: &[(&str, &str, bool)] = &[
    ("product", "name", true),
    ("product", "metaDescription", true),
    ("product", "metaTitle", true),
    ("product", "packUnit", true),
    ("product", "packUnitPlural", true),
    ("product", "ean", false),
    ("product", "manufacturerNumber", false),
    ("category", "name", true),
    ("property_group", "name", true),
    ("property_group_option", "name", true),
];

/// PHP's `strip_tags`: tags (`<` followed by no white space, up to the matching `>`, quotes
/// respected), comments and an unclosed tag at the end are removed; the rest stays as is.
pub fn strip_tags(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c != '<' || chars.get(i + 1).is_none_or(|n| n.is_whitespace()) {
            out.push(c);
            i += 1;
            continue;
        }
        if chars[i + 1..].starts_with(&['!', '-', '-']) {
            let rest: String = chars[i + 4..].iter().collect();
            match rest.find("-->") {
                Some(end) => i += 4 + rest[..end].chars().count() + 3,
                None => i = chars.len(),
            }
            continue;
        }
        let mut depth = 0;
        let mut quote: Option<char> = None;
        while i < chars.len() {
            let c = chars[i];
            i += 1;
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '"' | '\'') => quote = Some(c),
                (None, '<') => depth += 1,
                (None, '>') => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    out
}

/// The entities on both sides of a mapping: (local, remote).
pub fn mapping_targets(mapping: &str) -> Option<(&'static str, &'static str)> {
    entities::ENTITIES.iter().find_map(|def| {
        def.assocs.iter().find_map(|a| match a.kind {
            Kind::ManyToMany { mapping: m, .. } if m == mapping => Some((def.name, a.target)),
            _ => None,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::strip_tags;

    #[test]
    fn tags_go_and_text_stays() {
        assert_eq!(strip_tags("<b>Shirt</b> blue"), "Shirt blue");
        assert_eq!(strip_tags("a < b and c > d"), "a < b and c > d");
        assert_eq!(strip_tags("x<br/>y<!-- note -->z"), "xyz");
        assert_eq!(strip_tags("<a title=\">\">link</a>"), "link");
        assert_eq!(strip_tags("  spaced  "), "  spaced  ");
        assert_eq!(strip_tags("cut <b"), "cut ");
    }
}
