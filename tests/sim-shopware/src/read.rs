//! Rendering rows the way the Admin API does: plain JSON (flat camelCase objects with every
//! field of the version's schema, `translated`, `apiAlias`, requested associations, trimmed
//! by `includes`) or JSON:API (resources with `attributes`, associations as `included`).

use std::collections::HashSet;

use serde_json::{Map, Value, json};

use crate::criteria::{self, Criteria};
use crate::entities::{self, Kind};
use crate::ids::Id;
use crate::model::Val;
use crate::shop::{LIVE_VERSION, Shop, inheritable};

/// How to read: `sw-inheritance` and the criteria's includes and excludes, which apply at
/// every depth by `apiAlias`.
pub struct View<'a> {
    pub inheritance: bool,
    pub root: &'a Criteria,
}

impl Shop {
    /// One row as a plain JSON object, with the associations `criteria` asks for.
    pub fn render(&self, view: &View, entity: usize, id: Id, criteria: &Criteria) -> Value {
        let Some(record) = self.table(entity).get(id) else {
            return Value::Null;
        };
        let def = entities::def(entity);
        let parent = (view.inheritance && def.name == "product")
            .then(|| {
                self.get_id(record, "parentId")
                    .and_then(|p| self.table(entity).get(p))
            })
            .flatten();
        let mut out = Map::new();
        let fields: Vec<String> = match self.meta(entity) {
            Some(meta) => meta.scalars.clone(),
            None => {
                let mut names: Vec<String> = record
                    .fields()
                    .map(|(f, _)| self.store.names.name(f).to_string())
                    .collect();
                names.insert(0, "id".into());
                if def.versioned {
                    names.push("versionId".into());
                }
                names.push("translated".into());
                names
            }
        };
        let value_of = |field: &str| -> Value {
            let own = self.get(record, field).filter(|v| !v.is_null());
            match own {
                Some(v) => v.to_json(),
                None => match parent {
                    Some(p) if inheritable(field) => {
                        self.get(p, field).map(Val::to_json).unwrap_or(Value::Null)
                    }
                    _ => Value::Null,
                },
            }
        };
        for field in &fields {
            let value = match field.as_str() {
                "id" => json!(id.hex()),
                "versionId" => json!(LIVE_VERSION),
                "translated" => {
                    let translated: Map<String, Value> = def
                        .translated
                        .iter()
                        .filter(|f| fields.iter().any(|g| g == *f))
                        .map(|f| (f.to_string(), value_of(f)))
                        .collect();
                    Value::Object(translated)
                }
                other if other.ends_with("VersionId") => {
                    let base = format!("{}Id", other.trim_end_matches("VersionId"));
                    match self.get(record, &base) {
                        Some(v) if !v.is_null() => json!(LIVE_VERSION),
                        _ => Value::Null,
                    }
                }
                other => value_of(other),
            };
            out.insert(field.clone(), value);
        }
        for (name, sub) in &criteria.associations {
            let Some(assoc) = def.assoc(name) else {
                continue;
            };
            let Some(target) = entities::index_of(assoc.target) else {
                continue;
            };
            let mut related = criteria::related_ids(self, id, record, assoc);
            if related.is_empty()
                && let Some(p) = parent
                && inheritable(name)
                && let Some(pid) = self.get_id(record, "parentId")
            {
                related = criteria::related_ids(self, pid, p, assoc);
            }
            let value = match assoc.kind {
                Kind::ManyToOne { .. } | Kind::OneToOne { .. } => related
                    .first()
                    .filter(|rid| self.table(target).get(**rid).is_some())
                    .map(|rid| self.render(view, target, *rid, sub))
                    .unwrap_or(Value::Null),
                Kind::OneToMany { .. } | Kind::ManyToMany { .. } => {
                    let hits = criteria::search(self, target, sub, Some(related));
                    Value::Array(
                        hits.ids
                            .iter()
                            .map(|rid| self.render(view, target, *rid, sub))
                            .collect(),
                    )
                }
            };
            out.insert(name.clone(), value);
        }
        out.insert("apiAlias".into(), json!(def.name));
        if let Some(keep) = view.root.includes.get(def.name) {
            out.retain(|k, _| k == "apiAlias" || keep.contains(k));
        }
        if let Some(drop) = view.root.excludes.get(def.name) {
            out.retain(|k, _| k == "apiAlias" || !drop.contains(k));
        }
        Value::Object(out)
    }
}

/// Turns a plain entity object into a JSON:API resource; loaded associations become
/// `included` resources.
pub fn resource(
    plain: &Value,
    base_url: &str,
    included: &mut Vec<Value>,
    seen: &mut HashSet<(String, String)>,
) -> Value {
    let Some(object) = plain.as_object() else {
        return Value::Null;
    };
    let alias = object
        .get("apiAlias")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let id = object
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let def = entities::index_of(&alias).map(entities::def);
    let mut attributes = Map::new();
    for (key, value) in object {
        if key == "id" || key == "apiAlias" {
            continue;
        }
        if def.is_some_and(|d| d.assoc(key).is_some()) {
            let nested: Vec<&Value> = match value {
                Value::Array(items) => items.iter().collect(),
                Value::Object(_) => vec![value],
                _ => Vec::new(),
            };
            for item in nested {
                let resource = resource(item, base_url, included, seen);
                let key = (
                    resource
                        .get("type")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    resource
                        .get("id")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                );
                if seen.insert(key) {
                    included.push(resource);
                }
            }
            continue;
        }
        attributes.insert(key.clone(), value.clone());
    }
    let mut out = json!({
        "id": id,
        "type": alias,
        "attributes": attributes,
    });
    if !id.is_empty() {
        out["links"] =
            json!({ "self": format!("{base_url}/api/{}/{id}", alias.replace('_', "-")) });
    }
    out
}
