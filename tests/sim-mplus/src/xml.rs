//! SOAP envelopes in and out: a small namespace-aware element tree for requests (quick-xml),
//! an escaping writer for responses, and the SOAP 1.1 fault shape the real server sends.

use std::fmt::{self, Display, Write as _};

use quick_xml::escape::{partial_escape, resolve_predefined_entity};
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

/// The SOAP 1.1 envelope namespace.
pub const SOAP_ENV_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// The MplusQapi target namespace.
pub const MPLUS_NS: &str = "urn:mplusqapi";

/// Requests nest no deeper than this; deeper input is refused rather than recursed into.
const MAX_DEPTH: usize = 64;

/// One element of a request: local name, namespace, text content and child elements.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Element {
    /// Local name, without prefix.
    pub name: String,
    /// Namespace URI the prefix resolved to (`None` when unqualified).
    pub ns: Option<String>,
    /// Concatenated text content (entity references resolved).
    pub text: String,
    /// Child elements in document order.
    pub children: Vec<Element>,
}

impl Element {
    /// A new empty element in the MplusQapi namespace.
    pub fn mplus(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            ns: Some(MPLUS_NS.to_owned()),
            ..Self::default()
        }
    }

    /// The first child with this local name.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child with this local name.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The trimmed text content.
    pub fn value(&self) -> &str {
        self.text.trim()
    }

    /// Parses a whole document into its root element.
    pub fn parse(input: &[u8]) -> Result<Element, String> {
        let input = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
        let text = std::str::from_utf8(input).map_err(|e| format!("not UTF-8: {e}"))?;
        let mut reader = NsReader::from_str(text);
        let mut stack: Vec<Element> = Vec::new();
        let mut root: Option<Element> = None;
        loop {
            let (ns, event) = match reader.read_resolved_event() {
                Ok(read) => read,
                Err(e) => return Err(format!("at byte {}: {e}", reader.error_position())),
            };
            let ns = match ns {
                ResolveResult::Bound(ns) => Some(String::from_utf8_lossy(ns.as_ref()).into_owned()),
                ResolveResult::Unbound => None,
                ResolveResult::Unknown(prefix) => {
                    return Err(format!(
                        "undeclared namespace prefix '{}'",
                        String::from_utf8_lossy(&prefix)
                    ));
                }
            };
            let is_empty = matches!(event, Event::Empty(_));
            match event {
                Event::Start(start) | Event::Empty(start) => {
                    let element = Element {
                        name: String::from_utf8_lossy(start.local_name().as_ref()).into_owned(),
                        ns,
                        ..Element::default()
                    };
                    if root.is_some() {
                        return Err("content after the root element".into());
                    }
                    if stack.len() >= MAX_DEPTH {
                        return Err(format!("nested deeper than {MAX_DEPTH} elements"));
                    }
                    stack.push(element);
                    if is_empty {
                        close(&mut stack, &mut root);
                    }
                }
                Event::End(_) => close(&mut stack, &mut root),
                Event::Text(t) => {
                    let t = t.decode().map_err(|e| e.to_string())?;
                    push_text(&mut stack, &t)?;
                }
                Event::CData(t) => {
                    let t = t.decode().map_err(|e| e.to_string())?;
                    push_text(&mut stack, &t)?;
                }
                Event::GeneralRef(r) => {
                    let resolved = if r.is_char_ref() {
                        r.resolve_char_ref()
                            .map_err(|e| e.to_string())?
                            .map(String::from)
                    } else {
                        let name = r.decode().map_err(|e| e.to_string())?;
                        resolve_predefined_entity(&name).map(String::from)
                    };
                    let Some(resolved) = resolved else {
                        return Err("unknown entity reference".into());
                    };
                    push_text(&mut stack, &resolved)?;
                }
                Event::DocType(_) => return Err("DOCTYPE is not allowed".into()),
                Event::Eof => break,
                Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            }
        }
        if !stack.is_empty() {
            return Err("unexpected end of document".into());
        }
        root.ok_or_else(|| "no root element".into())
    }

    /// Writes this element as a standalone document whose MplusQapi elements carry the `ns`
    /// prefix, declared on the root; elements of other namespaces declare theirs inline.
    pub fn to_document(&self) -> String {
        let mut out = String::with_capacity(256);
        out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
        self.write_into(&mut out, true);
        out
    }

    fn write_into(&self, out: &mut String, root: bool) {
        let mplus = self.ns.as_deref() == Some(MPLUS_NS);
        let name = if mplus {
            format!("ns:{}", self.name)
        } else {
            self.name.clone()
        };
        out.push('<');
        out.push_str(&name);
        if root {
            out.push_str(" xmlns:ns=\"urn:mplusqapi\"");
        }
        if !mplus {
            let _ = write!(
                out,
                " xmlns=\"{}\"",
                quick_xml::escape::escape(self.ns.as_deref().unwrap_or(""))
            );
        }
        if self.children.is_empty() && self.text.is_empty() {
            out.push_str("/>");
            return;
        }
        out.push('>');
        out.push_str(&partial_escape(self.text.as_str()));
        for child in &self.children {
            child.write_into(out, false);
        }
        out.push_str("</");
        out.push_str(&name);
        out.push('>');
    }
}

fn close(stack: &mut Vec<Element>, root: &mut Option<Element>) {
    if let Some(done) = stack.pop() {
        match stack.last_mut() {
            Some(parent) => parent.children.push(done),
            None => *root = Some(done),
        }
    }
}

fn push_text(stack: &mut [Element], text: &str) -> Result<(), String> {
    match stack.last_mut() {
        Some(top) => {
            // Whitespace between child elements is formatting, not content.
            if top.children.is_empty() || !text.trim().is_empty() {
                top.text.push_str(text);
            }
            Ok(())
        }
        None if text.trim().is_empty() => Ok(()),
        None => Err("text outside the root element".into()),
    }
}

/// The payload element of a SOAP request: the first child of `Envelope/Body`.
pub fn body_payload(envelope: Element) -> Result<Element, String> {
    if envelope.name != "Envelope" || envelope.ns.as_deref() != Some(SOAP_ENV_NS) {
        return Err(format!(
            "expected a SOAP 1.1 Envelope ({SOAP_ENV_NS}), found '{}'",
            envelope.name
        ));
    }
    let body = envelope
        .children
        .into_iter()
        .find(|c| c.name == "Body" && c.ns.as_deref() == Some(SOAP_ENV_NS))
        .ok_or("the Envelope has no Body")?;
    body.children
        .into_iter()
        .next()
        .ok_or_else(|| "the Body is empty".into())
}

/// Who is to blame for a fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultCode {
    /// The request is wrong: fix it before trying again.
    Client,
    /// The server failed: may be retried.
    Server,
}

/// A SOAP 1.1 fault, answered with HTTP 500.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code:?}: {string}")]
pub struct SoapFault {
    pub code: FaultCode,
    pub string: String,
}

impl SoapFault {
    pub fn client(string: impl Into<String>) -> Self {
        Self {
            code: FaultCode::Client,
            string: string.into(),
        }
    }

    pub fn server(string: impl Into<String>) -> Self {
        Self {
            code: FaultCode::Server,
            string: string.into(),
        }
    }

    /// The fault for a mandatory element that is missing.
    pub fn missing(parent: &str, name: &str) -> Self {
        Self::client(format!(
            "Validation constraint violation: missing mandatory element '{name}' in element '{parent}'"
        ))
    }

    /// The fault for an element whose value is not of its schema type.
    pub fn invalid(name: &str, value: &str, expected: &str) -> Self {
        Self::client(format!(
            "Validation constraint violation: value '{value}' of element '{name}' is not a valid {expected}"
        ))
    }

    /// The whole fault envelope.
    pub fn to_envelope(&self) -> String {
        let code = match self.code {
            FaultCode::Client => "SOAP-ENV:Client",
            FaultCode::Server => "SOAP-ENV:Server",
        };
        let mut out = String::with_capacity(512);
        out.push_str(ENVELOPE_OPEN);
        out.push_str("<SOAP-ENV:Fault><faultcode>");
        out.push_str(code);
        out.push_str("</faultcode><faultstring>");
        out.push_str(&partial_escape(self.string.as_str()));
        out.push_str("</faultstring></SOAP-ENV:Fault>");
        out.push_str(ENVELOPE_CLOSE);
        out
    }
}

/// The envelope start the real (gSOAP) server writes: fixed prefixes, no Header.
pub const ENVELOPE_OPEN: &str = concat!(
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
    "<SOAP-ENV:Envelope xmlns:SOAP-ENV=\"http://schemas.xmlsoap.org/soap/envelope/\"",
    " xmlns:SOAP-ENC=\"http://schemas.xmlsoap.org/soap/encoding/\"",
    " xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"",
    " xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\"",
    " xmlns:ns=\"urn:mplusqapi\"><SOAP-ENV:Body>"
);
/// The matching envelope end.
pub const ENVELOPE_CLOSE: &str = "</SOAP-ENV:Body></SOAP-ENV:Envelope>\n";

/// Writes a response payload: every element in the `ns` prefix, text escaped by quick-xml.
#[derive(Debug)]
pub struct Out {
    buf: String,
    root_len: usize,
}

impl Out {
    /// Starts the payload with its root element (e.g. `GetProductsResponse`).
    pub fn new(root: &'static str) -> Self {
        let mut out = Self {
            buf: String::with_capacity(1024),
            root_len: root.len(),
        };
        out.open(root);
        out
    }

    /// The name of the root element.
    pub fn root(&self) -> &str {
        &self.buf[4..4 + self.root_len]
    }

    pub fn open(&mut self, name: &str) {
        self.buf.push_str("<ns:");
        self.buf.push_str(name);
        self.buf.push('>');
    }

    pub fn close(&mut self, name: &str) {
        self.buf.push_str("</ns:");
        self.buf.push_str(name);
        self.buf.push('>');
    }

    /// An element without content.
    pub fn empty(&mut self, name: &str) {
        self.buf.push_str("<ns:");
        self.buf.push_str(name);
        self.buf.push_str("/>");
    }

    /// A text element; the text is escaped.
    pub fn text(&mut self, name: &str, value: &str) {
        self.open(name);
        self.buf.push_str(&partial_escape(value));
        self.close(name);
    }

    /// A text element, only when there is a value.
    pub fn opt_text(&mut self, name: &str, value: Option<&str>) {
        if let Some(value) = value {
            self.text(name, value);
        }
    }

    /// A number, boolean or enumeration value (never user text).
    pub fn val(&mut self, name: &str, value: impl Display) {
        self.open(name);
        let _ = write!(self.buf, "{value}");
        self.close(name);
    }

    pub fn bool(&mut self, name: &str, value: bool) {
        self.val(name, if value { "true" } else { "false" });
    }

    /// Ends the root element and returns the payload.
    pub fn finish(mut self) -> Payload {
        let root = self.root().to_owned();
        self.close(&root);
        Payload {
            xml: self.buf,
            root_len: self.root_len,
        }
    }
}

/// A finished response payload (the Body's only child).
#[derive(Clone, Debug)]
pub struct Payload {
    xml: String,
    root_len: usize,
}

impl Payload {
    /// The payload inside a SOAP envelope.
    pub fn to_envelope(&self) -> String {
        let mut out = String::with_capacity(ENVELOPE_OPEN.len() + self.xml.len() + 64);
        out.push_str(ENVELOPE_OPEN);
        out.push_str(&self.xml);
        out.push_str(ENVELOPE_CLOSE);
        out
    }

    /// The payload as a document of its own, with the `ns` prefix declared (for validation).
    pub fn to_document(&self) -> String {
        let cut = 4 + self.root_len;
        let mut out = String::with_capacity(self.xml.len() + 80);
        out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
        out.push_str(&self.xml[..cut]);
        out.push_str(" xmlns:ns=\"urn:mplusqapi\"");
        out.push_str(&self.xml[cut..]);
        out
    }

    pub fn root(&self) -> &str {
        &self.xml[4..4 + self.root_len]
    }
}

impl fmt::Display for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.xml)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_any_prefix_entities_and_cdata() {
        let doc = br#"<?xml version="1.0"?><e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/" xmlns:u="urn:mplusqapi"><e:Header/><e:Body><u:findOrder>
          <u:extOrderId>A &amp; B&#33;<![CDATA[<x>]]></u:extOrderId></u:findOrder></e:Body></e:Envelope>"#;
        let payload = body_payload(Element::parse(doc).expect("parse")).expect("payload");
        assert_eq!(payload.name, "findOrder");
        assert_eq!(payload.ns.as_deref(), Some(MPLUS_NS));
        assert_eq!(
            payload.child("extOrderId").map(Element::value),
            Some("A & B!<x>")
        );
    }

    #[test]
    fn refuses_broken_and_hostile_input() {
        assert!(Element::parse(b"<a><b></a>").is_err());
        assert!(Element::parse(b"<!DOCTYPE a [<!ENTITY x 'y'>]><a>&x;</a>").is_err());
        assert!(Element::parse(b"<p:a/>").is_err());
        let deep = "<a>".repeat(100) + &"</a>".repeat(100);
        assert!(Element::parse(deep.as_bytes()).is_err());
    }

    #[test]
    fn writes_escaped_text_and_a_standalone_document() {
        let mut out = Out::new("GetOrderResponse");
        out.text("result", "a<b&c");
        let payload = out.finish();
        assert_eq!(
            payload.to_string(),
            "<ns:GetOrderResponse><ns:result>a&lt;b&amp;c</ns:result></ns:GetOrderResponse>"
        );
        assert!(
            payload
                .to_document()
                .contains("<ns:GetOrderResponse xmlns:ns=\"urn:mplusqapi\">")
        );
        let reparsed = Element::parse(payload.to_document().as_bytes()).expect("parse");
        assert_eq!(reparsed.child("result").map(Element::value), Some("a<b&c"));
    }
}
