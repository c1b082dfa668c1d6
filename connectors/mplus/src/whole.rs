//! A relation as MplusKASSA sent it, kept whole to be sent back whole. Whether `updateRelation`
//! keeps the fields a request leaves out or clears them is undocumented (API-NOTES 10, gap 5),
//! so an update never leaves anything out: every child element of the relation as read (birth
//! date, price group, discount, cards, credit limit, contact persons, and whatever a newer API
//! version adds) goes back as it came, with only the fields an order or a customer brings
//! changed in place.

use quick_xml::Reader;
use quick_xml::Writer;
use quick_xml::events::{BytesEnd, BytesStart, Event};

use koppel_sdk::{ConnectorError, Result};

/// The elements of `Relation`, in the WSDL's `xsd:sequence` order (API 67.1.3): where a field
/// the relation did not have goes.
pub const RELATION_ORDER: &[&str] = &[
    "relationNumber",
    "extRelationId",
    "syncMarker",
    "createTimestamp",
    "changeTimestamp",
    "active",
    "name",
    "address",
    "zipcode",
    "city",
    "country",
    "deliveryAddress",
    "deliveryZipcode",
    "deliveryCity",
    "deliveryCountry",
    "contact",
    "telephone",
    "mobile",
    "email",
    "website",
    "birthDate",
    "relationCode",
    "points",
    "balance",
    "priceGroupNumber",
    "discountPercentage",
    "categoryId",
    "categoryIds",
    "cardNumber",
    "bankAccountNumber",
    "creditLimit",
    "paymentWithinDays",
    "vatNumber",
    "commerceNumber",
    "extraText",
    "defaultVatMethod",
    "neverPrintOrEmailReceipt",
    "alwaysPrintReceipt",
    "alwaysPrintLargeFormatReceipt",
    "alwaysEmailReceipt",
    "condenseCombinedInvoice",
    "imageList",
    "customFieldList",
    "contactList",
    "relationArticleDiscountList",
    "companyName",
    "branchesNonPurchasable",
    "cardNumbers",
    "invoiceCredit",
    "accountBalance",
    "salePromotionIds",
    "directDebit",
    "reminderEmail",
    "canEarnPoints",
    "canRedeemPoints",
    "cantRedeemPointsReason",
];

/// The children of a relation element, each written out again with the request prefix.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawRelation {
    /// (local name, the element as XML with the `ns1` prefix).
    pub children: Vec<(String, Vec<u8>)>,
}

/// The prefix requests use for `urn:mplusqapi` (see [`crate::soap`]).
const P: &str = "ns1";

fn position(name: &str) -> Option<usize> {
    RELATION_ORDER.iter().position(|n| *n == name)
}

impl RawRelation {
    /// The first `relation` element of an answer (`FindRelationV2Response/relation`), if any.
    /// Every element of the schema is in `urn:mplusqapi` (`elementFormDefault="qualified"`), so
    /// each is written back under the request prefix; attributes (namespace declarations) are
    /// dropped, text and references kept as they came (still escaped).
    pub fn read(body: &[u8]) -> Result<Option<RawRelation>> {
        let bad = |why: String| {
            ConnectorError::protocol(format!("unexpected relation in the answer: {why}"))
        };
        let text = std::str::from_utf8(body).map_err(|_| bad("not UTF-8".into()))?;
        let mut reader = Reader::from_str(text.trim_start_matches('\u{feff}'));
        // Find the relation.
        loop {
            match reader.read_event().map_err(|e| bad(e.to_string()))? {
                Event::Start(e) if e.local_name().as_ref() == b"relation" => break,
                Event::Empty(e) if e.local_name().as_ref() == b"relation" => {
                    return Ok(Some(RawRelation::default()));
                }
                Event::Eof => return Ok(None),
                _ => {}
            }
        }
        let mut raw = RawRelation::default();
        let mut depth = 0usize;
        let mut current: Option<(String, Writer<Vec<u8>>)> = None;
        loop {
            let event = reader.read_event().map_err(|e| bad(e.to_string()))?;
            let renamed = |name: &[u8]| format!("{P}:{}", String::from_utf8_lossy(name));
            match event {
                Event::Start(e) => {
                    let local = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                    if depth == 0 {
                        current = Some((local.clone(), Writer::new(Vec::new())));
                    }
                    depth += 1;
                    if let Some((_, w)) = current.as_mut() {
                        let _ = w.write_event(Event::Start(BytesStart::new(renamed(
                            e.local_name().as_ref(),
                        ))));
                    }
                }
                Event::Empty(e) => {
                    let local = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                    let element = BytesStart::new(renamed(e.local_name().as_ref()));
                    if depth == 0 {
                        let mut w = Writer::new(Vec::new());
                        let _ = w.write_event(Event::Empty(element));
                        raw.children.push((local, w.into_inner()));
                    } else if let Some((_, w)) = current.as_mut() {
                        let _ = w.write_event(Event::Empty(element));
                    }
                }
                Event::End(e) => {
                    if depth == 0 {
                        // The relation's own end.
                        return Ok(Some(raw));
                    }
                    depth -= 1;
                    if let Some((_, w)) = current.as_mut() {
                        let _ = w.write_event(Event::End(BytesEnd::new(renamed(
                            e.local_name().as_ref(),
                        ))));
                    }
                    if depth == 0
                        && let Some((local, w)) = current.take()
                    {
                        raw.children.push((local, w.into_inner()));
                    }
                }
                Event::Text(t) => {
                    if let Some((_, w)) = current.as_mut() {
                        let _ = w.write_event(Event::Text(t));
                    }
                }
                Event::GeneralRef(r) => {
                    if let Some((_, w)) = current.as_mut() {
                        let _ = w.write_event(Event::GeneralRef(r));
                    }
                }
                Event::CData(c) => {
                    if let Some((_, w)) = current.as_mut() {
                        let _ = w.write_event(Event::CData(c));
                    }
                }
                Event::Eof => return Err(bad("it ends inside the relation".into())),
                _ => {}
            }
        }
    }

    /// The children to send: the relation as read, with each of `changes` (element name,
    /// value) put in place of the element of that name, or, when the relation had none, where
    /// the schema puts it.
    pub fn with_changes(&self, changes: &[(&'static str, String)]) -> Vec<Piece> {
        let mut pieces: Vec<Piece> = Vec::with_capacity(self.children.len() + changes.len());
        let mut pending: Vec<&(&'static str, String)> = changes
            .iter()
            .filter(|(name, _)| !self.children.iter().any(|(n, _)| n == name))
            .collect();
        pending.sort_by_key(|(name, _)| position(name));
        for (name, xml) in &self.children {
            // Fields the relation lacked that come before this one in the schema.
            if let Some(here) = position(name) {
                while let Some((missing, value)) = pending.first().copied() {
                    if position(missing).is_some_and(|p| p < here) {
                        pieces.push(Piece::Text(missing, value.clone()));
                        pending.remove(0);
                    } else {
                        break;
                    }
                }
            }
            match changes.iter().find(|(n, _)| n == name) {
                Some((n, value)) => pieces.push(Piece::Text(n, value.clone())),
                None => pieces.push(Piece::Raw(xml.clone())),
            }
        }
        pieces.extend(pending.into_iter().map(|(n, v)| Piece::Text(n, v.clone())));
        pieces
    }
}

/// One child of a relation being written: as read, or a text element set anew.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    Raw(Vec<u8>),
    Text(&'static str, String),
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = r#"<S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/" xmlns:ns="urn:mplusqapi"><S:Body><ns:FindRelationV2Response><ns:result>FIND-RELATION-RESULT-OK</ns:result><ns:relation>
        <ns:relationNumber>2045</ns:relationNumber><ns:active>true</ns:active><ns:name>J. &amp; M. de Vries</ns:name>
        <ns:email>j@example.nl</ns:email><ns:birthDate><ns:day>14</ns:day><ns:mon>2</ns:mon><ns:year>1981</ns:year></ns:birthDate>
        <ns:priceGroupNumber>2</ns:priceGroupNumber><ns:vatNumber/>
        <ns:contactList><ns:relation><ns:name>Bram</ns:name></ns:relation></ns:contactList>
        <ns:cardNumbers>200012</ns:cardNumbers><ns:cardNumbers>200034</ns:cardNumbers><ns:newerField>x</ns:newerField>
        </ns:relation></ns:FindRelationV2Response></S:Body></S:Envelope>"#;

    fn names(raw: &RawRelation) -> Vec<&str> {
        raw.children.iter().map(|(n, _)| n.as_str()).collect()
    }

    #[test]
    fn every_child_is_kept_under_the_request_prefix() {
        let raw = RawRelation::read(ANSWER.as_bytes())
            .expect("reads")
            .expect("a relation");
        assert_eq!(
            names(&raw),
            vec![
                "relationNumber",
                "active",
                "name",
                "email",
                "birthDate",
                "priceGroupNumber",
                "vatNumber",
                "contactList",
                "cardNumbers",
                "cardNumbers",
                "newerField"
            ]
        );
        let xml = |i: usize| String::from_utf8(raw.children[i].1.clone()).expect("utf-8");
        assert_eq!(xml(2), "<ns1:name>J. &amp; M. de Vries</ns1:name>");
        assert_eq!(
            xml(4),
            "<ns1:birthDate><ns1:day>14</ns1:day><ns1:mon>2</ns1:mon><ns1:year>1981</ns1:year></ns1:birthDate>"
        );
        assert_eq!(xml(6), "<ns1:vatNumber/>");
        assert_eq!(
            xml(7),
            "<ns1:contactList><ns1:relation><ns1:name>Bram</ns1:name></ns1:relation></ns1:contactList>"
        );
        assert!(RawRelation::read(b"<a><b/></a>").expect("reads").is_none());
    }

    #[test]
    fn changes_replace_in_place_or_go_where_the_schema_puts_them() {
        let raw = RawRelation::read(ANSWER.as_bytes())
            .expect("reads")
            .expect("a relation");
        let pieces = raw.with_changes(&[
            ("name", "Anna".into()),
            ("address", "Neude 3".into()),
            ("companyName", "".into()),
            ("telephone", "030".into()),
        ]);
        let order: Vec<String> = pieces
            .iter()
            .map(|p| match p {
                Piece::Raw(xml) => String::from_utf8_lossy(xml)
                    .trim_start_matches("<ns1:")
                    .split(['>', '/'])
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
                Piece::Text(name, value) => format!("{name}={value}"),
            })
            .collect();
        assert_eq!(
            order,
            vec![
                "relationNumber",
                "active",
                "name=Anna",
                "address=Neude 3",
                "telephone=030",
                "email",
                "birthDate",
                "priceGroupNumber",
                "vatNumber",
                "contactList",
                "companyName=",
                "cardNumbers",
                "cardNumbers",
                "newerField"
            ]
        );
    }
}
