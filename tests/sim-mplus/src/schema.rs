//! The real WSDL at run time: found in the reference folder (never copied into the crate), its
//! embedded XML Schema handed to libxml2's XSD validator, and a small model of its sequences
//! used to tolerate what real clients omit (empty list wrappers, a missing `request`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use quick_xml::events::Event;
use quick_xml::reader::Reader;

use crate::xml::{Element, MPLUS_NS};

/// Where the reference folder is: `KOPPEL_REFERENCE_DIR`, else `../shared/reference` beside
/// the repository. Returns the `mplus` folder inside it when it holds the WSDL.
pub fn default_reference_dir() -> Option<PathBuf> {
    let base = match std::env::var_os("KOPPEL_REFERENCE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference"),
    };
    let dir = base.join("mplus");
    dir.join("MplusQapi.wsdl").is_file().then_some(dir)
}

/// The loaded reference: WSDL bytes, the schema model and a validator.
pub struct Reference {
    /// The WSDL exactly as stored (BOM and CRLF included).
    pub wsdl: Arc<[u8]>,
    pub model: SchemaModel,
    pub validator: Validator,
}

/// Loads (once per process and folder) the WSDL in `dir`.
pub fn load(dir: &Path) -> anyhow::Result<Arc<Reference>> {
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, Arc<Reference>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(found) = cache.get(&key) {
        return Ok(found.clone());
    }
    let path = key.join("MplusQapi.wsdl");
    let wsdl: Arc<[u8]> = std::fs::read(&path)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?
        .into();
    let text = std::str::from_utf8(&wsdl)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let started = std::time::Instant::now();
    let xsd = extract_schema(text)?;
    let model = SchemaModel::parse(&xsd)?;
    let validator = Validator::start(xsd)?;
    tracing::debug!(
        path = %path.display(),
        types = model.types.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "Loaded the MplusQapi schema."
    );
    let reference = Arc::new(Reference {
        wsdl,
        model,
        validator,
    });
    cache.insert(key, reference.clone());
    Ok(reference)
}

/// The `<xsd:schema>` embedded in the WSDL as a schema document of its own: the WSDL root's
/// namespace declarations carried onto it, and the one SOAP-encoding type (`SOAP-ENC:base64`)
/// mapped to `xsd:base64Binary` so no external schema has to be fetched.
pub fn extract_schema(wsdl: &str) -> anyhow::Result<String> {
    let root_start = wsdl
        .find("<definitions")
        .ok_or_else(|| anyhow::anyhow!("no <definitions> in the WSDL"))?;
    let root_end = root_start
        + wsdl[root_start..]
            .find('>')
            .ok_or_else(|| anyhow::anyhow!("unterminated <definitions>"))?;
    let root_tag = &wsdl[root_start..root_end];
    let start = wsdl
        .find("<xsd:schema")
        .ok_or_else(|| anyhow::anyhow!("no <xsd:schema> in the WSDL"))?;
    let end = wsdl
        .find("</xsd:schema>")
        .ok_or_else(|| anyhow::anyhow!("no </xsd:schema> in the WSDL"))?
        + "</xsd:schema>".len();
    let schema = &wsdl[start..end];
    let open_end = schema
        .find('>')
        .ok_or_else(|| anyhow::anyhow!("unterminated <xsd:schema>"))?;
    let own = &schema[..open_end];
    let mut decls = String::new();
    for part in root_tag.split_whitespace() {
        // xmlns:p="..." declarations of the root that the schema element lacks (the default
        // namespace of the WSDL is not carried: the schema declares its own).
        if let Some(rest) = part.strip_prefix("xmlns:") {
            let prefix = rest.split('=').next().unwrap_or_default();
            if !own.contains(&format!("xmlns:{prefix}=")) {
                decls.push(' ');
                decls.push_str(part.trim_end_matches('/'));
            }
        }
    }
    let mut out = String::with_capacity(schema.len() + decls.len());
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(own);
    out.push_str(&decls);
    out.push_str(&schema[open_end..]);
    let out = out
        .replace(
            "<import namespace=\"http://schemas.xmlsoap.org/soap/encoding/\" />",
            "",
        )
        .replace("type=\"SOAP-ENC:base64\"", "type=\"xsd:base64Binary\"");
    Ok(out)
}

/// One element of a `sequence`.
#[derive(Clone, Debug)]
pub struct Field {
    pub name: String,
    /// Type name without prefix (`TextList`, `string`); an anonymous type gets `Parent/name`.
    pub ty: String,
    pub min: u32,
}

#[derive(Clone, Debug, Default)]
struct TypeDef {
    base: Option<String>,
    fields: Vec<Field>,
}

/// The sequences of the schema's complex types, and the global elements' types.
#[derive(Debug, Default)]
pub struct SchemaModel {
    types: HashMap<String, TypeDef>,
    elements: HashMap<String, String>,
}

impl SchemaModel {
    /// Reads `complexType`/`element`/`extension` declarations from the schema text.
    pub fn parse(xsd: &str) -> anyhow::Result<Self> {
        let mut reader = Reader::from_str(xsd);
        let mut model = SchemaModel::default();
        // The stack of open elements: (local name, type being defined if it is a complexType).
        let mut stack: Vec<(String, Option<String>)> = Vec::new();
        // The name of the last element opened at each depth, for anonymous types.
        loop {
            let event = reader.read_event()?;
            let (start, empty) = match &event {
                Event::Start(s) => (s, false),
                Event::Empty(s) => (s, true),
                Event::End(_) => {
                    stack.pop();
                    continue;
                }
                Event::Eof => break,
                _ => continue,
            };
            let local = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
            let mut name = None;
            let mut ty = None;
            let mut base = None;
            let mut min = 1;
            for attr in start.attributes().flatten() {
                let value = attr.unescape_value()?.into_owned();
                match attr.key.local_name().as_ref() {
                    b"name" => name = Some(value),
                    b"type" => ty = Some(strip_prefix(&value)),
                    b"base" => base = Some(strip_prefix(&value)),
                    b"minOccurs" => min = value.parse().unwrap_or(1),
                    _ => {}
                }
            }
            let current_type = stack.iter().rev().find_map(|(_, t)| t.clone());
            let mut defines = None;
            match local.as_str() {
                "complexType" => {
                    let type_name = match (&name, stack.last()) {
                        (Some(n), _) => Some(n.clone()),
                        // Anonymous: named after the element that holds it.
                        (None, Some((_, _))) => stack
                            .iter()
                            .rev()
                            .find(|(l, _)| l.starts_with("element:"))
                            .map(|(l, _)| l.trim_start_matches("element:").to_owned()),
                        (None, None) => None,
                    };
                    if let Some(t) = &type_name {
                        model.types.entry(t.clone()).or_default();
                    }
                    defines = type_name;
                }
                "extension" => {
                    if let (Some(t), Some(b)) = (&current_type, base) {
                        model.types.entry(t.clone()).or_default().base = Some(b);
                    }
                }
                "element" => {
                    if let Some(n) = &name {
                        match &current_type {
                            Some(t) => {
                                let field_ty = ty.clone().unwrap_or_else(|| format!("{t}/{n}"));
                                model
                                    .types
                                    .entry(t.clone())
                                    .or_default()
                                    .fields
                                    .push(Field {
                                        name: n.clone(),
                                        ty: field_ty,
                                        min,
                                    });
                            }
                            None => {
                                model
                                    .elements
                                    .insert(n.clone(), ty.clone().unwrap_or_else(|| n.clone()));
                            }
                        }
                    }
                }
                _ => {}
            }
            if !empty {
                let label = if local == "element" {
                    // Anonymous types inside a field are named `Type/field`.
                    match (&name, &current_type) {
                        (Some(n), Some(t)) => format!("element:{t}/{n}"),
                        (Some(n), None) => format!("element:{n}"),
                        _ => local.clone(),
                    }
                } else {
                    local.clone()
                };
                stack.push((label, defines));
            }
        }
        anyhow::ensure!(
            model.elements.contains_key("getProducts"),
            "the schema has no getProducts element"
        );
        Ok(model)
    }

    /// The fields of a complex type, base type's first.
    pub fn fields(&self, ty: &str) -> Vec<&Field> {
        let mut chain = Vec::new();
        let mut next = Some(ty);
        while let Some(t) = next {
            let Some(def) = self.types.get(t) else { break };
            chain.push(def);
            next = def.base.as_deref();
            if chain.len() > 16 {
                break;
            }
        }
        chain
            .iter()
            .rev()
            .flat_map(|def| def.fields.iter())
            .collect()
    }

    /// The type of a global element.
    pub fn element_type(&self, name: &str) -> Option<&str> {
        self.elements.get(name).map(String::as_str)
    }

    /// Whether a global element exists (the name of a request or response payload).
    pub fn has_element(&self, name: &str) -> bool {
        self.elements.contains_key(name)
    }

    fn is_complex(&self, ty: &str) -> bool {
        self.types.contains_key(ty)
    }

    /// A required element a client may leave out because it can be empty: a complex type
    /// whose required children can all be left out in turn (list wrappers such as `TextList`,
    /// a request whose fields are all optional).
    fn can_be_empty(&self, ty: &str, depth: usize) -> bool {
        depth < 8
            && self.is_complex(ty)
            && self
                .fields(ty)
                .iter()
                .filter(|f| f.min > 0)
                .all(|f| self.can_be_empty(&f.ty, depth + 1))
    }

    /// Adds what real clients omit and the real server tolerates (API-NOTES section 2):
    /// required but empty list wrappers, a missing `request` whose fields are all optional,
    /// and an omitted `Order.orderId` on create. Children are put in schema order; anything
    /// else stays as sent, for the validator to judge.
    pub fn fill_omitted(&self, payload: &mut Element) {
        if let Some(ty) = self.element_type(&payload.name).map(str::to_owned) {
            self.fill(payload, &ty, 0);
        }
    }

    fn fill(&self, element: &mut Element, ty: &str, depth: usize) {
        if depth > 32 || !self.is_complex(ty) {
            return;
        }
        let fields = self.fields(ty);
        let kids = std::mem::take(&mut element.children);
        let mut kids = kids.into_iter().peekable();
        let mut out = Vec::with_capacity(fields.len());
        for field in fields {
            let mut matched = false;
            while let Some(kid) = kids.next_if(|k| k.name == field.name) {
                let mut kid = kid;
                self.fill(&mut kid, &field.ty, depth + 1);
                out.push(kid);
                matched = true;
            }
            if matched || field.min == 0 {
                continue;
            }
            let tolerated_simple = ty == "Order" && field.name == "orderId";
            if tolerated_simple || self.can_be_empty(&field.ty, 0) {
                let mut filler = Element::mplus(&field.name);
                self.fill(&mut filler, &field.ty, depth + 1);
                out.push(filler);
            }
        }
        out.extend(kids);
        element.children = out;
        if element.ns.is_none() {
            element.ns = Some(MPLUS_NS.to_owned());
        }
    }
}

fn strip_prefix(value: &str) -> String {
    value.rsplit(':').next().unwrap_or(value).to_owned()
}

#[cfg(feature = "xsd")]
pub use xsd::Validator;

#[cfg(feature = "xsd")]
mod xsd {
    use std::sync::mpsc;

    struct Job {
        document: String,
        reply: tokio::sync::oneshot::Sender<Result<(), Vec<String>>>,
    }

    /// libxml2's XSD validator on a thread of its own: its contexts are not thread-safe, so every
    /// validation goes through this one thread, one at a time.
    #[derive(Clone)]
    pub struct Validator {
        jobs: mpsc::Sender<Job>,
    }

    impl Validator {
        pub const AVAILABLE: bool = true;

        /// Compiles the schema (on the validator's thread) and waits until it is ready.
        pub fn start(xsd: String) -> anyhow::Result<Self> {
            let (jobs, inbox) = mpsc::channel::<Job>();
            let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
            std::thread::Builder::new()
                .name("mplus-xsd".into())
                .spawn(move || {
                    let mut parser =
                        libxml::schemas::SchemaParserContext::from_buffer(xsd.as_bytes());
                    let mut context =
                        match libxml::schemas::SchemaValidationContext::from_parser(&mut parser) {
                            Ok(context) => {
                                let _ = ready_tx.send(Ok(()));
                                context
                            }
                            Err(errors) => {
                                let _ = ready_tx.send(Err(join_errors(&errors)));
                                return;
                            }
                        };
                    let xml = libxml::parser::Parser::default();
                    while let Ok(job) = inbox.recv() {
                        let result = match xml.parse_string(job.document.as_bytes()) {
                            Ok(doc) => context
                                .validate_document(&doc)
                                .map_err(|errors| errors.iter().map(describe).collect()),
                            Err(error) => Err(vec![format!("not well-formed: {error:?}")]),
                        };
                        let _ = job.reply.send(result);
                    }
                })?;
            ready_rx
                .recv()
                .map_err(|_| anyhow::anyhow!("the XSD validator thread died"))?
                .map_err(|e| anyhow::anyhow!("the WSDL's schema does not compile: {e}"))?;
            Ok(Self { jobs })
        }

        /// Validates a standalone document; `Err` holds libxml2's messages.
        pub async fn validate(&self, document: String) -> Result<(), Vec<String>> {
            let (reply, answer) = tokio::sync::oneshot::channel();
            if self.jobs.send(Job { document, reply }).is_err() {
                return Err(vec!["the XSD validator is gone".into()]);
            }
            answer
                .await
                .unwrap_or_else(|_| Err(vec!["the XSD validator is gone".into()]))
        }
    }

    fn describe(error: &libxml::error::StructuredError) -> String {
        let message = error
            .message
            .as_deref()
            .unwrap_or("unknown error")
            .trim()
            .to_owned();
        match error.line {
            Some(line) if line > 0 => format!("line {line}: {message}"),
            _ => message,
        }
    }

    fn join_errors(errors: &[libxml::error::StructuredError]) -> String {
        errors.iter().map(describe).collect::<Vec<_>>().join("; ")
    }
}

/// Without the `xsd` feature there is no validator: the simulator runs unvalidated.
#[cfg(not(feature = "xsd"))]
#[derive(Clone)]
pub struct Validator;

#[cfg(not(feature = "xsd"))]
impl Validator {
    pub const AVAILABLE: bool = false;

    pub fn start(_xsd: String) -> anyhow::Result<Self> {
        Ok(Validator)
    }

    pub async fn validate(&self, _document: String) -> Result<(), Vec<String>> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference() -> Option<Arc<Reference>> {
        let dir = default_reference_dir()?;
        Some(load(&dir).expect("load the reference WSDL"))
    }

    #[test]
    fn models_sequences_with_extensions() {
        let Some(r) = reference() else { return };
        let names: Vec<_> = r
            .model
            .fields("CreateOrderV3Request")
            .iter()
            .map(|f| f.name.clone())
            .collect();
        assert_eq!(names[..2], ["idempotencyKey", "order"]);
        assert_eq!(r.model.element_type("getProducts"), Some("getProducts"));
        assert_eq!(
            r.model.element_type("GetProductsResponse"),
            Some("GetProductsResponse")
        );
    }

    #[tokio::test]
    async fn the_validator_rejects_what_the_schema_rejects() {
        let Some(r) = reference() else { return };
        let ns = "xmlns:ns=\"urn:mplusqapi\"";
        let good = format!(
            "<ns:GetRelationResponse {ns}><ns:result>GET-RELATION-RESULT-NOT-FOUND</ns:result><ns:relation/></ns:GetRelationResponse>"
        );
        assert_eq!(r.validator.validate(good).await, Ok(()));
        let missing = format!(
            "<ns:GetRelationResponse {ns}><ns:result>GET-RELATION-RESULT-NOT-FOUND</ns:result></ns:GetRelationResponse>"
        );
        let errors = r
            .validator
            .validate(missing)
            .await
            .expect_err("relation is required");
        assert!(errors.iter().any(|e| e.contains("relation")), "{errors:?}");
        let bad_enum = format!(
            "<ns:GetRelationResponse {ns}><ns:result>OK</ns:result><ns:relation/></ns:GetRelationResponse>"
        );
        assert!(r.validator.validate(bad_enum).await.is_err());
        let unknown_root = format!("<ns:Nothing {ns}/>");
        assert!(r.validator.validate(unknown_root).await.is_err());
    }

    #[test]
    fn fills_omitted_wrappers_in_schema_order() {
        let Some(r) = reference() else { return };
        let mut payload = Element::mplus("getProducts");
        r.model.fill_omitted(&mut payload);
        let request = payload.child("request").expect("request added");
        assert_eq!(request.children.len(), 1);
        assert_eq!(request.children[0].name, "pluNumbers");

        let mut request = Element::mplus("request");
        let mut marker = Element::mplus("syncMarker");
        marker.text = "5".into();
        let mut article = Element::mplus("articleNumbers");
        article.text = "1".into();
        request.children = vec![article, marker];
        let mut payload = Element::mplus("getProducts");
        payload.children.push(request);
        r.model.fill_omitted(&mut payload);
        let names: Vec<_> = payload.children[0]
            .children
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(names, ["articleNumbers", "pluNumbers", "syncMarker"]);
    }
}
