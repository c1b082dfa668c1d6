//! The real Admin API OpenAPI file of the selected version, adapted to JSON Schema and
//! compiled on demand: it types every write, lists each entity's fields, and (in validation
//! mode) checks every request and response body the simulator handles.
//!
//! Adaptation (OpenAPI 3.0 → JSON Schema 2020-12): `nullable: true` becomes a `null` type;
//! in entity schemas (those with a `…JsonApi` sibling) every property may be `null` (the
//! server writes `null` for unset fields) and `required` is dropped, because those lists
//! hold for *create* only (the writer checks them itself) and `includes` trims responses.
//! `format` stays an annotation. Loaded files are cached per process.
//!
//! Three defects of the 6.4 and 6.5 files' generator are corrected, because the wire format
//! they contradict is certain (API-NOTES §6.1 [H], Shopware's `Api/Sync/SyncService.php`):
//! price lists (`price`, `purchasePrices`, …) are typed `object` there but are JSON lists, so
//! they accept both; 6.4 declares to-many associations as a single `$ref`, so those accept a
//! list of it; and 6.4's sync answer `data` is a list when the operation keys are `0..n-1`.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{Draft, JsonType, Registry, Validator};
use serde::Serialize;
use serde_json::{Value, json};

use crate::Version;

const BASE: &str = "urn:koppel:shopware-admin-api";

/// What the schema says about one entity.
#[derive(Debug, Default)]
pub struct EntityMeta {
    /// All properties, in schema order.
    pub properties: Vec<String>,
    /// Properties that are not associations, in schema order: what a read renders.
    pub scalars: Vec<String>,
    pub read_only: HashSet<String>,
    /// `required` as the file has it (for create).
    pub required: Vec<String>,
    /// The adapted schema of the non-association properties only: what a write's fields are
    /// type-checked against (nested records are checked against their own schemas).
    pub shallow: String,
}

impl EntityMeta {
    pub fn has(&self, field: &str) -> bool {
        self.properties.iter().any(|p| p == field)
    }
}

#[derive(Debug)]
struct Operation {
    segments: Vec<Option<String>>,
    method: String,
    request: Option<String>,
    /// status → content type → schema pointer.
    responses: HashMap<String, HashMap<String, String>>,
}

/// One loaded OpenAPI file.
pub struct Reference {
    pub file: PathBuf,
    registry: Registry<'static>,
    entities: HashMap<String, EntityMeta>,
    operations: Vec<Operation>,
    components: HashSet<String>,
    validators: Mutex<HashMap<String, Option<Arc<Validator>>>>,
}

impl std::fmt::Debug for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reference")
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

/// A way a value broke its schema.
#[derive(Clone, Debug, PartialEq)]
pub enum Broken {
    /// Wrong JSON type; the Shopware type word (`int`, `string`, …).
    Type(&'static str),
    /// An id that is not 32 lowercase hex characters.
    Uuid,
    Enum,
    Other(String),
}

/// One schema violation of a value: where and how.
#[derive(Clone, Debug)]
pub struct Problem {
    pub pointer: String,
    pub broken: Broken,
    pub message: String,
}

/// Which way a body went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Request,
    Response,
}

/// A body that broke its schema. In a response this is a simulator bug; in a request it is
/// the client sending what the OpenAPI file does not describe.
#[derive(Clone, Debug, Serialize)]
pub struct Violation {
    pub direction: Direction,
    pub method: String,
    pub path: String,
    pub status: u16,
    /// The schema that was applied, as a JSON pointer into the OpenAPI file.
    pub schema: String,
    /// Where in the body.
    pub instance_path: String,
    pub message: String,
}

fn cache() -> &'static Mutex<HashMap<PathBuf, Option<Arc<Reference>>>> {
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, Option<Arc<Reference>>>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Where the Shopware reference folder is: the explicit option, `KOPPEL_REFERENCE_DIR`
/// (the `reference` folder), or `../shared/reference/shopware` beside the repository.
pub fn reference_dir(explicit: Option<&Path>) -> PathBuf {
    if let Some(dir) = explicit {
        return dir.to_path_buf();
    }
    if let Ok(dir) = std::env::var("KOPPEL_REFERENCE_DIR")
        && !dir.is_empty()
    {
        return PathBuf::from(dir).join("shopware");
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference/shopware")
}

/// Loads (once per process) the OpenAPI file of `version` from `dir`; `None` when it is
/// missing or unreadable, which turns schema checks off.
pub fn load(dir: &Path, version: Version) -> Option<Arc<Reference>> {
    let file = dir.join("openapi").join(version.openapi_file());
    let mut cache = cache().lock().unwrap_or_else(|p| p.into_inner());
    if let Some(hit) = cache.get(&file) {
        return hit.clone();
    }
    let loaded = match Reference::load(&file) {
        Ok(reference) => Some(Arc::new(reference)),
        Err(error) => {
            tracing::warn!(
                file = %file.display(),
                %error,
                "Shopware OpenAPI file not loaded: schema checks and validation are off."
            );
            None
        }
    };
    cache.insert(file, loaded.clone());
    loaded
}

impl Reference {
    fn load(file: &Path) -> anyhow::Result<Reference> {
        let text = std::fs::read_to_string(file)?;
        let mut doc: Value = serde_json::from_str(&text)?;
        let names: Vec<String> = doc
            .pointer("/components/schemas")
            .and_then(Value::as_object)
            .map(|schemas| schemas.keys().cloned().collect())
            .unwrap_or_default();
        let components: HashSet<String> = names.iter().cloned().collect();
        let entity_names: Vec<String> = names
            .iter()
            .filter(|n| components.contains(&format!("{n}JsonApi")))
            .cloned()
            .collect();
        let mut entities = HashMap::new();
        for name in names.iter().filter(|n| !n.ends_with("JsonApi")) {
            if let Some(schema) = doc.pointer(&format!("/components/schemas/{name}")) {
                entities.insert(name.clone(), entity_meta(schema));
            }
        }
        let legacy_refs = doc
            .pointer("/components/schemas/Product/properties/children/$ref")
            .is_some();
        for name in &entity_names {
            if let Some(schema) = doc.pointer_mut(&format!("/components/schemas/{name}")) {
                relax(schema, legacy_refs);
            }
            if let Some(parts) = doc
                .pointer_mut(&format!("/components/schemas/{name}JsonApi/allOf"))
                .and_then(Value::as_array_mut)
            {
                for part in parts.iter_mut().skip(1) {
                    relax(part, legacy_refs);
                }
            }
        }
        adapt_nullable(&mut doc);
        // 6.4's sync answer (the file has `success` there): `data` holds each operation's
        // result under its key in a PHP array (`SyncService::sync`), which `json_encode`
        // writes as a list when the keys are "0", "1", … in order. The file says `object`.
        if let Some(data) = doc.pointer_mut(
            "/paths/~1_action~1sync/post/responses/200/content/application~1json/schema/properties",
        ) && data.get("success").is_some()
            && let Some(data) = data.get_mut("data")
        {
            data["type"] = json!(["object", "array"]);
        }
        for (name, meta) in entities.iter_mut() {
            let props = doc
                .pointer(&format!("/components/schemas/{name}/properties"))
                .and_then(Value::as_object)
                .map(|props| {
                    props
                        .iter()
                        .filter(|(k, _)| meta.scalars.contains(k))
                        .map(|(k, v)| {
                            let mut v = v.clone();
                            absolute_refs(&mut v);
                            (k.clone(), v)
                        })
                        .collect::<serde_json::Map<String, Value>>()
                })
                .unwrap_or_default();
            meta.shallow = json!({ "type": "object", "properties": props }).to_string();
        }
        let operations = operations(&doc);
        let registry = Registry::new()
            .draft(Draft::Draft202012)
            .add(BASE, doc)?
            .prepare()?;
        Ok(Reference {
            file: file.to_path_buf(),
            registry,
            entities,
            operations,
            components,
            validators: Mutex::new(HashMap::new()),
        })
    }

    pub fn entity(&self, schema_name: &str) -> Option<&EntityMeta> {
        self.entities.get(schema_name)
    }

    pub fn has_component(&self, name: &str) -> bool {
        self.components.contains(name)
    }

    /// The compiled validator for a schema given by pointer into the file
    /// (`#/components/schemas/Product`), by `shallow:<Entity>` for an entity's
    /// non-association fields, or for an inline schema given as JSON text.
    pub fn validator(&self, key: &str) -> Option<Arc<Validator>> {
        let mut cache = self.validators.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(hit) = cache.get(key) {
            return hit.clone();
        }
        let schema = if key.starts_with('#') {
            // A pointer is a URI fragment here: characters a URI may not hold (the braces of
            // `/paths/~1product~1{id}`) are percent-encoded, or the reference does not resolve.
            json!({ "$ref": format!("{BASE}{}", fragment(key)) })
        } else if let Some(name) = key.strip_prefix("shallow:") {
            let text = self
                .entities
                .get(name)
                .map(|m| m.shallow.as_str())
                .unwrap_or("true");
            serde_json::from_str(text).unwrap_or(Value::Bool(true))
        } else {
            serde_json::from_str(key).unwrap_or(Value::Bool(true))
        };
        let built = jsonschema::options()
            .with_draft(Draft::Draft202012)
            .with_registry(&self.registry)
            .build(&schema);
        let validator = match built {
            Ok(v) => Some(Arc::new(v)),
            Err(error) => {
                tracing::warn!(schema = key, %error, "Schema did not compile; not validated.");
                None
            }
        };
        cache.insert(key.to_string(), validator.clone());
        validator
    }

    /// Checks `value` against the schema `key`; empty when it conforms.
    pub fn check(&self, key: &str, value: &Value) -> Vec<Problem> {
        let Some(validator) = self.validator(key) else {
            return Vec::new();
        };
        validator
            .iter_errors(value)
            .map(|error| Problem {
                pointer: error.instance_path().to_string(),
                broken: broken(error.kind()),
                message: error.to_string(),
            })
            .collect()
    }

    /// The request-body schema of an operation, if the file has one.
    pub fn request_schema(&self, method: &str, path: &str) -> Option<String> {
        self.operation(method, path)?.request.clone()
    }

    /// The response schema of an operation for a status and content type, if the file has one.
    pub fn response_schema(
        &self,
        method: &str,
        path: &str,
        status: u16,
        content_type: &str,
    ) -> Option<String> {
        let operation = self.operation(method, path)?;
        let by_type = operation
            .responses
            .get(&status.to_string())
            .or_else(|| operation.responses.get("default"))?;
        by_type.get(content_type).cloned()
    }

    fn operation(&self, method: &str, path: &str) -> Option<&Operation> {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        self.operations
            .iter()
            .filter(|op| op.method == method && op.segments.len() == segments.len())
            .filter(|op| {
                op.segments
                    .iter()
                    .zip(&segments)
                    .all(|(template, actual)| template.as_deref().is_none_or(|t| t == *actual))
            })
            .max_by_key(|op| op.segments.iter().filter(|s| s.is_some()).count())
    }
}

fn entity_meta(schema: &Value) -> EntityMeta {
    let mut meta = EntityMeta::default();
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, prop) in props {
            meta.properties.push(name.clone());
            if !is_association(prop) {
                meta.scalars.push(name.clone());
            }
            if prop.get("readOnly") == Some(&Value::Bool(true)) {
                meta.read_only.insert(name.clone());
            }
        }
    }
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        meta.required = required
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
    }
    meta
}

/// An association property points at another entity schema.
fn is_association(prop: &Value) -> bool {
    let is_entity_ref = |v: &Value| {
        v.get("$ref").and_then(Value::as_str).is_some_and(|r| {
            r.starts_with("#/components/schemas/") && r != "#/components/schemas/Price"
        })
    };
    is_entity_ref(prop) || prop.get("items").is_some_and(is_entity_ref)
}

/// JSON fields holding price lists.
const PRICE_LISTS: &[&str] = &[
    "price",
    "purchasePrices",
    "listPrice",
    "regulationPrice",
    "currencyPrice",
];

/// Drops `required` and lets every property be `null` (see the module docs for the
/// corrections of older files).
fn relax(schema: &mut Value, legacy_refs: bool) {
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    object.remove("required");
    if let Some(props) = object.get_mut("properties").and_then(Value::as_object_mut) {
        for (name, prop) in props.iter_mut() {
            let mut taken = std::mem::take(prop);
            let untyped_object =
                taken.get("type") == Some(&json!("object")) && taken.get("properties").is_none();
            if PRICE_LISTS.contains(&name.as_str()) && untyped_object {
                taken["type"] = json!(["object", "array"]);
            }
            if legacy_refs
                && taken.get("$ref").is_some()
                && taken.as_object().is_some_and(|o| o.len() == 1)
            {
                taken = json!({ "anyOf": [taken.clone(), { "type": "array", "items": taken }] });
            }
            *prop = nullable(taken);
        }
    }
}

fn nullable(mut prop: Value) -> Value {
    if let Some(object) = prop.as_object_mut() {
        if let Some(Value::Array(mut types)) = object.get("type").cloned() {
            types.push(json!("null"));
            object.insert("type".into(), Value::Array(types));
            return prop;
        }
        if let Some(Value::String(t)) = object.get("type").cloned() {
            object.insert("type".into(), json!([t, "null"]));
            if let Some(Value::Array(options)) = object.get_mut("enum") {
                options.push(Value::Null);
            }
            return prop;
        }
        if object.contains_key("$ref")
            || object.contains_key("allOf")
            || object.contains_key("oneOf")
            || object.contains_key("anyOf")
        {
            return json!({ "anyOf": [{ "type": "null" }, prop] });
        }
    }
    prop
}

/// OpenAPI 3.0's `nullable: true` → a `null` type.
fn adapt_nullable(value: &mut Value) {
    match value {
        Value::Object(object) => {
            if object.remove("nullable") == Some(Value::Bool(true)) {
                match object.get("type").cloned() {
                    Some(Value::String(t)) => {
                        object.insert("type".into(), json!([t, "null"]));
                    }
                    Some(_) => {}
                    None => {
                        let inner = Value::Object(std::mem::take(object));
                        object.insert("anyOf".into(), json!([{ "type": "null" }, inner]));
                    }
                }
            }
            for child in object.values_mut() {
                adapt_nullable(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(adapt_nullable),
        _ => {}
    }
}

fn absolute_refs(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get_mut("$ref")
                && r.starts_with('#')
            {
                *r = format!("{BASE}{r}");
            }
            map.values_mut().for_each(absolute_refs);
        }
        Value::Array(items) => items.iter_mut().for_each(absolute_refs),
        _ => {}
    }
}

/// A JSON pointer (`#/paths/...`) as a URI fragment: `{`, `}`, spaces and the like
/// percent-encoded (RFC 6901, section 6).
fn fragment(pointer: &str) -> String {
    let mut out = String::with_capacity(pointer.len());
    for c in pointer.chars() {
        match c {
            'A'..='Z'
            | 'a'..='z'
            | '0'..='9'
            | '-'
            | '.'
            | '_'
            | '~'
            | '/'
            | '#'
            | ':'
            | '@'
            | '!'
            | '$'
            | '&'
            | '\''
            | '('
            | ')'
            | '*'
            | '+'
            | ','
            | ';'
            | '=' => out.push(c),
            other => {
                let mut buf = [0u8; 4];
                for byte in other.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("%{byte:02X}"));
                }
            }
        }
    }
    out
}

fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

fn operations(doc: &Value) -> Vec<Operation> {
    let mut out = Vec::new();
    let Some(paths) = doc.get("paths").and_then(Value::as_object) else {
        return out;
    };
    for (path, item) in paths {
        let Some(item) = item.as_object() else {
            continue;
        };
        let segments = path
            .trim_matches('/')
            .split('/')
            .map(|s| (!s.starts_with('{')).then(|| s.to_string()))
            .collect::<Vec<_>>();
        for (method, op) in item {
            let base = format!("#/paths/{}/{method}", escape(path));
            let request = op
                .pointer("/requestBody/content/application~1json/schema")
                .map(|_| format!("{base}/requestBody/content/application~1json/schema"));
            let mut responses = HashMap::new();
            if let Some(map) = op.get("responses").and_then(Value::as_object) {
                for (status, response) in map {
                    let (response, pointer) = match response.get("$ref").and_then(Value::as_str) {
                        Some(r) => (
                            doc.pointer(r.trim_start_matches('#'))
                                .unwrap_or(&Value::Null),
                            r.to_string(),
                        ),
                        None => (response, format!("{base}/responses/{}", escape(status))),
                    };
                    let mut by_type = HashMap::new();
                    if let Some(content) = response.get("content").and_then(Value::as_object) {
                        for (ctype, media) in content {
                            if media.get("schema").is_some() {
                                by_type.insert(
                                    ctype.clone(),
                                    format!("{pointer}/content/{}/schema", escape(ctype)),
                                );
                            }
                        }
                    }
                    responses.insert(status.clone(), by_type);
                }
            }
            out.push(Operation {
                segments: segments.clone(),
                method: method.to_uppercase(),
                request,
                responses,
            });
        }
    }
    out
}

fn broken(kind: &ValidationErrorKind) -> Broken {
    match kind {
        ValidationErrorKind::Type { kind } => {
            let has = |t| match kind {
                TypeKind::Single(single) => *single == t,
                TypeKind::Multiple(set) => set.contains(t),
            };
            Broken::Type(if has(JsonType::Integer) {
                "int"
            } else if has(JsonType::Number) {
                "numeric"
            } else if has(JsonType::String) {
                "string"
            } else if has(JsonType::Boolean) {
                "bool"
            } else {
                "array"
            })
        }
        ValidationErrorKind::Pattern { pattern } if pattern == "^[0-9a-f]{32}$" => Broken::Uuid,
        ValidationErrorKind::Enum { .. } => Broken::Enum,
        other => Broken::Other(other.keyword().to_string()),
    }
}

/// A schema for a value the file gives no operation for: `{total, data: [Entity]}`.
pub fn list_schema(schema_name: &str) -> String {
    json!({
        "type": "object",
        "properties": {
            "total": { "type": "integer" },
            "data": { "type": "array", "items": { "$ref": format!("{BASE}#/components/schemas/{schema_name}") } }
        }
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nullable_and_relax_adapt_openapi_schemas() {
        let mut doc = json!({"type": "string", "nullable": true});
        adapt_nullable(&mut doc);
        assert_eq!(doc, json!({"type": ["string", "null"]}));
        let mut schema = json!({"required": ["a"], "properties": {
            "a": {"type": "integer"}, "b": {"$ref": "#/x"}, "c": {"type": "string", "enum": ["x"]}}});
        relax(&mut schema, false);
        assert_eq!(
            schema["properties"]["a"]["type"],
            json!(["integer", "null"])
        );
        assert_eq!(
            schema["properties"]["b"]["anyOf"][0],
            json!({"type": "null"})
        );
        assert_eq!(schema["properties"]["c"]["enum"], json!(["x", null]));
        assert!(schema.get("required").is_none());
    }
}
