//! SOAP 1.1 the way MplusQapi speaks it: request envelopes written with quick-xml (children in
//! the order the code writes them, which is the schema's), the endpoint with its credentials,
//! and a client that turns answers, faults and HTTP failures into [`ConnectorError`]s.

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use serde::de::DeserializeOwned;

use koppel_sdk::{ConnectorError, Result};

use crate::wire::{ApiVersion, Envelope as ResponseEnvelope, Fault, FaultPayload};

pub const MPLUS_NS: &str = "urn:mplusqapi";
pub const SOAP_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// The prefix requests use for `urn:mplusqapi` (as the official clients do).
const P: &str = "ns1";

/// A request envelope being written: `SOAP-ENV:Envelope`, an empty Header, the Body and the
/// operation element, whose children the caller writes in schema order.
pub struct Envelope {
    writer: Writer<Vec<u8>>,
    operation: &'static str,
}

impl Envelope {
    pub fn new(operation: &'static str) -> Self {
        let mut envelope = Envelope {
            writer: Writer::new(Vec::with_capacity(512)),
            operation,
        };
        envelope.emit(Event::Decl(BytesDecl::new("1.0", Some("utf-8"), None)));
        envelope.emit(Event::Start(
            BytesStart::new("SOAP-ENV:Envelope")
                .with_attributes([("xmlns:SOAP-ENV", SOAP_NS), ("xmlns:ns1", MPLUS_NS)]),
        ));
        envelope.emit(Event::Empty(BytesStart::new("SOAP-ENV:Header")));
        envelope.emit(Event::Start(BytesStart::new("SOAP-ENV:Body")));
        envelope.open(operation);
        envelope
    }

    pub fn operation(&self) -> &'static str {
        self.operation
    }

    fn emit(&mut self, event: Event<'_>) {
        // Writing into a Vec cannot fail.
        let _ = self.writer.write_event(event);
    }

    pub fn open(&mut self, name: &str) -> &mut Self {
        self.emit(Event::Start(BytesStart::new(format!("{P}:{name}"))));
        self
    }

    pub fn close(&mut self, name: &str) -> &mut Self {
        self.emit(Event::End(BytesEnd::new(format!("{P}:{name}"))));
        self
    }

    /// `<ns1:name/>`.
    pub fn empty(&mut self, name: &str) -> &mut Self {
        self.emit(Event::Empty(BytesStart::new(format!("{P}:{name}"))));
        self
    }

    /// An element with text (escaped; characters XML 1.0 cannot carry are dropped).
    pub fn text(&mut self, name: &str, value: &str) -> &mut Self {
        let clean: std::borrow::Cow<'_, str> = if value.chars().all(xml_char) {
            value.into()
        } else {
            value
                .chars()
                .filter(|c| xml_char(*c))
                .collect::<String>()
                .into()
        };
        self.open(name);
        self.emit(Event::Text(BytesText::new(&clean)));
        self.close(name)
    }

    pub fn opt_text(&mut self, name: &str, value: Option<&str>) -> &mut Self {
        if let Some(value) = value {
            self.text(name, value);
        }
        self
    }

    pub fn num(&mut self, name: &str, value: impl Into<i64>) -> &mut Self {
        self.text(name, &value.into().to_string())
    }

    pub fn opt_num(&mut self, name: &str, value: Option<impl Into<i64>>) -> &mut Self {
        if let Some(value) = value {
            self.num(name, value);
        }
        self
    }

    /// XML written as it is: an element read from an answer and re-prefixed for a request
    /// ([`crate::whole`]).
    pub fn raw(&mut self, xml: &[u8]) -> &mut Self {
        self.writer.get_mut().extend_from_slice(xml);
        self
    }

    pub fn flag(&mut self, name: &str, value: bool) -> &mut Self {
        self.text(name, if value { "true" } else { "false" })
    }

    /// Closes the operation, Body and Envelope.
    pub fn finish(mut self) -> Vec<u8> {
        let operation = self.operation;
        self.close(operation);
        self.emit(Event::End(BytesEnd::new("SOAP-ENV:Body")));
        self.emit(Event::End(BytesEnd::new("SOAP-ENV:Envelope")));
        self.writer.into_inner()
    }
}

/// Characters XML 1.0 allows in text.
fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// The SOAP endpoint: the base URL (a root gets its `/`), then `ident` and `secret` as query
/// parameters, as every MplusQapi client sends them. The result holds the secret: never print
/// it; use [`koppel_sdk::http::host_of`] for messages.
pub fn endpoint(base_url: &str, ident: &str, secret: &str) -> String {
    let base = base_url.trim();
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let has_path = base[after_scheme..].contains('/');
    let mut url = base.to_owned();
    if !has_path {
        url.push('/');
    }
    url.push(if url.contains('?') { '&' } else { '?' });
    url.push_str("ident=");
    url.push_str(&koppel_sdk::http::encode(ident));
    url.push_str("&secret=");
    url.push_str(&koppel_sdk::http::encode(secret));
    url
}

/// One SOAP call on the wire.
#[derive(Debug)]
pub struct Call {
    pub operation: &'static str,
    pub body: Vec<u8>,
    /// Safe to send twice: reads, and writes that are idempotent (`createOrderV3` by its key,
    /// `updateRelation` with the full relation). Never a plain create.
    pub retry_safe: bool,
}

/// The raw answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

/// How calls reach MplusKASSA: through the host in the component, scripted in native tests.
pub trait Transport {
    fn send(&mut self, call: Call) -> Result<Reply>;
    /// `scheme://host:port` of the endpoint, for messages.
    fn host(&self) -> &str;
}

/// Calls operations and reads their answers.
pub struct Client<T> {
    transport: T,
}

impl<T: Transport> Client<T> {
    pub fn new(transport: T) -> Self {
        Client { transport }
    }

    /// Sends `envelope` and reads the answer as `R`. A `Client` fault is probed once with
    /// `getApiVersion`: if that is refused too, the credentials are wrong.
    pub fn call<R: DeserializeOwned>(&mut self, envelope: Envelope, retry_safe: bool) -> Result<R> {
        let operation = envelope.operation();
        let body = self.call_raw(envelope, retry_safe)?;
        parse(operation, &body)
    }

    /// Sends `envelope`; the body of a 200 answer, for callers that read it themselves.
    pub fn call_raw(&mut self, envelope: Envelope, retry_safe: bool) -> Result<Vec<u8>> {
        let operation = envelope.operation();
        match self.exchange(operation, envelope.finish(), retry_safe)? {
            Answer::Payload(body) => Ok(body),
            Answer::Fault(fault) if fault.is_client() => {
                if operation != "getApiVersion" && self.credentials_refused()? {
                    return Err(self.auth_error(&fault));
                }
                Err(ConnectorError::rejected(format!(
                    "MplusKASSA refused {operation}: {} (SOAP fault {})",
                    fault.faultstring.trim(),
                    fault.faultcode
                )))
            }
            Answer::Fault(fault) => Err(ConnectorError::protocol(format!(
                "MplusKASSA failed on {operation}: {} (SOAP fault {}); it may pass later",
                fault.faultstring.trim(),
                fault.faultcode
            ))
            .retryable(true)),
        }
    }

    /// The connection check: `getApiVersion`, the cheapest authenticated call.
    pub fn check(&mut self) -> Result<ApiVersion> {
        match self.exchange("getApiVersion", crate::ops::get_api_version(), true)? {
            Answer::Payload(body) => parse("getApiVersion", &body),
            Answer::Fault(fault) if fault.is_client() => Err(self.auth_error(&fault)),
            Answer::Fault(fault) => Err(ConnectorError::protocol(format!(
                "MplusKASSA at {} answered getApiVersion with a server fault: {}",
                self.transport.host(),
                fault.faultstring.trim()
            ))
            .retryable(true)),
        }
    }

    fn credentials_refused(&mut self) -> Result<bool> {
        match self.exchange("getApiVersion", crate::ops::get_api_version(), true)? {
            Answer::Fault(fault) => Ok(fault.is_client()),
            Answer::Payload(_) => Ok(false),
        }
    }

    fn auth_error(&self, fault: &Fault) -> ConnectorError {
        ConnectorError::auth(format!(
            "credentials refused: MplusKASSA at {} answered `{}`; check `ident` and `secret`",
            self.transport.host(),
            fault.faultstring.trim()
        ))
        .with_field("secret")
    }

    fn exchange(
        &mut self,
        operation: &'static str,
        body: Vec<u8>,
        retry_safe: bool,
    ) -> Result<Answer> {
        let host = self.transport.host().to_owned();
        let reply = self.transport.send(Call {
            operation,
            body,
            retry_safe,
        })?;
        // MplusKASSA's own: a SOAP fault rides on a 500, a 401/403 names the keys, a 404 is a
        // wrong path in `base_url`.
        match reply.status {
            200 => Ok(Answer::Payload(reply.body)),
            500 => match read_fault(&reply.body) {
                Some(fault) => Ok(Answer::Fault(fault)),
                None => Err(ConnectorError::protocol(format!(
                    "MplusKASSA at {host} answered HTTP 500 to {operation} without a SOAP fault: {}",
                    koppel_sdk::http::snippet(&reply.body)
                ))
                .retryable(true)),
            },
            401 | 403 => Err(ConnectorError::auth(format!(
                "credentials refused: MplusKASSA at {host} answered HTTP {}; check `ident` and `secret`",
                reply.status
            ))
            .with_field("secret")),
            404 => Err(ConnectorError::config(
                "base_url",
                format!(
                    "MplusKASSA at {host} answered HTTP 404 to {operation}: check the path in `base_url`"
                ),
            )),
            // Everything else by the SDK's one table (429/503 throttled, 408/502/504
            // unreachable, other 5xx rejected: all retryable; other 4xx rejected).
            status => {
                let error = koppel_sdk::http::status_error(
                    status,
                    &koppel_sdk::http::snippet(&reply.body),
                );
                Err(ConnectorError {
                    message: format!(
                        "MplusKASSA at {host}, answering {operation}: {}",
                        error.message
                    ),
                    ..error
                })
            }
        }
    }
}

enum Answer {
    Payload(Vec<u8>),
    Fault(Fault),
}

/// Reads the payload of a 200 answer as `R`.
pub fn parse<R: DeserializeOwned>(operation: &str, body: &[u8]) -> Result<R> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ConnectorError::protocol(format!("the answer to {operation} is not UTF-8")))?;
    let text = text.trim_start_matches('\u{feff}');
    quick_xml::de::from_str::<ResponseEnvelope<R>>(text)
        .map(|envelope| envelope.body.payload)
        .map_err(|error| {
            ConnectorError::protocol(format!(
                "unexpected answer to {operation} ({error}): {}",
                koppel_sdk::http::snippet(body)
            ))
        })
}

/// The fault in a 500 answer, if it holds one.
pub fn read_fault(body: &[u8]) -> Option<Fault> {
    let text = std::str::from_utf8(body)
        .ok()?
        .trim_start_matches('\u{feff}');
    match quick_xml::de::from_str::<ResponseEnvelope<FaultPayload>>(text) {
        Ok(ResponseEnvelope {
            body:
                crate::wire::Body {
                    payload: FaultPayload::Fault(fault),
                },
        }) => Some(fault),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_carries_the_credentials_encoded() {
        assert_eq!(
            endpoint("https://api.mpluskassa.nl:44123", "shop 1", "s&e=c/r"),
            "https://api.mpluskassa.nl:44123/?ident=shop%201&secret=s%26e%3Dc%2Fr"
        );
        assert_eq!(
            endpoint("https://api.example:4443/mplus", "i", "s"),
            "https://api.example:4443/mplus?ident=i&secret=s"
        );
        assert_eq!(
            endpoint("http://127.0.0.1:9/", "i", "s"),
            "http://127.0.0.1:9/?ident=i&secret=s"
        );
    }

    #[test]
    fn text_is_escaped_and_cleaned() {
        let mut e = Envelope::new("findOrder");
        e.text("extOrderId", "a<b & \"c\"\u{1}");
        let xml = String::from_utf8(e.finish()).expect("utf-8");
        assert!(
            xml.contains("<ns1:extOrderId>a&lt;b &amp; &quot;c&quot;</ns1:extOrderId>")
                || xml.contains("<ns1:extOrderId>a&lt;b &amp; \"c\"</ns1:extOrderId>"),
            "{xml}"
        );
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?>"));
        assert!(xml.ends_with("</ns1:findOrder></SOAP-ENV:Body></SOAP-ENV:Envelope>"));
    }

    #[test]
    fn faults_are_read_and_classified() {
        let body = std::fs::read(crate::tests::example("06-fault.response.xml")).expect("example");
        let fault = read_fault(&body).expect("a fault");
        assert!(fault.is_client());
        assert_eq!(fault.faultstring, "Authentication failed");
        let server = Fault {
            faultcode: "SOAP-ENV:Server".into(),
            faultstring: String::new(),
        };
        assert!(!server.is_client());
        assert!(read_fault(b"<html>oops</html>").is_none());
    }

    /// Answers every call with one status and body.
    struct Fixed(u16, &'static str);

    impl Transport for Fixed {
        fn send(&mut self, _call: Call) -> Result<Reply> {
            Ok(Reply {
                status: self.0,
                body: self.1.as_bytes().to_vec(),
            })
        }

        fn host(&self) -> &str {
            "till.example"
        }
    }

    #[test]
    fn statuses_are_the_sdks_table_with_mpluskassas_own_first() {
        use koppel_sdk::ErrorKind;
        let error = |status, body| {
            Client::new(Fixed(status, body))
                .check()
                .expect_err("not a 200")
        };
        let of = |status| {
            let e = error(status, "busy");
            (e.kind, e.retryable)
        };
        assert_eq!(of(429), (ErrorKind::Throttled, true));
        assert_eq!(of(503), (ErrorKind::Throttled, true));
        assert_eq!(of(502), (ErrorKind::Unreachable, true));
        assert_eq!(of(504), (ErrorKind::Unreachable, true));
        assert_eq!(of(501), (ErrorKind::Rejected, true));
        assert_eq!(of(400), (ErrorKind::Rejected, false));
        let busy = error(503, "busy");
        assert!(
            busy.message
                .starts_with("MplusKASSA at till.example, answering getApiVersion: "),
            "{}",
            busy.message
        );
        // MplusKASSA's own: the keys to check, the path, a 500 that is not a SOAP fault.
        let refused = error(401, "");
        assert_eq!(refused.kind, ErrorKind::Auth);
        assert_eq!(refused.field.as_deref(), Some("secret"));
        let wrong_path = error(404, "");
        assert_eq!(wrong_path.kind, ErrorKind::Config);
        assert_eq!(wrong_path.field.as_deref(), Some("base_url"));
        let no_fault = error(500, "<html>oops</html>");
        assert_eq!(
            (no_fault.kind, no_fault.retryable),
            (ErrorKind::Protocol, true)
        );
    }
}
