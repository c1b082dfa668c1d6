//! Masking of personal fields (`[retention] mask_fields`) in activity bodies and URLs: JSON
//! values under those keys, XML elements of those names (any namespace prefix), and query
//! parameters of those names become `***`.

use std::borrow::Cow;
use std::sync::Arc;

use regex::Regex;

pub const MASK: &str = "***";

struct Field {
    name: String,
    xml: Regex,
    json: Regex,
}

/// Masks the configured fields; with none configured it changes nothing.
#[derive(Clone, Default)]
pub struct Masker {
    fields: Arc<Vec<Field>>,
}

impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.fields.iter().map(|f| &f.name))
            .finish()
    }
}

impl Masker {
    pub fn new(names: &[String]) -> Masker {
        let fields = names
            .iter()
            .filter(|n| !n.trim().is_empty())
            .filter_map(|name| {
                let name = name.trim();
                let quoted = regex::escape(name);
                let xml = Regex::new(&format!(
                    r"(?i)(<(?:[\w.-]+:)?{quoted}(?:\s[^>]*)?>)([^<]*)(</(?:[\w.-]+:)?{quoted}\s*>)"
                ))
                .ok()?;
                let json = Regex::new(&format!(
                    r#"(?i)("{quoted}"\s*:\s*)("(?:[^"\\]|\\.)*"|-?[0-9][0-9.eE+-]*)"#
                ))
                .ok()?;
                Some(Field {
                    name: name.to_lowercase(),
                    xml,
                    json,
                })
            })
            .collect();
        Masker {
            fields: Arc::new(fields),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    fn matches(&self, key: &str) -> bool {
        let key = key.to_lowercase();
        self.fields.iter().any(|f| f.name == key)
    }

    /// A body with the fields masked (JSON is re-serialised compactly when it parses).
    pub fn body<'a>(&self, text: &'a str) -> Cow<'a, str> {
        if self.is_empty() || text.is_empty() {
            return Cow::Borrowed(text);
        }
        let trimmed = text.trim_start();
        if (trimmed.starts_with('{') || trimmed.starts_with('['))
            && let Ok(mut value) = serde_json::from_str::<serde_json::Value>(text)
        {
            return if self.json_value(&mut value) {
                Cow::Owned(serde_json::to_string(&value).unwrap_or_default())
            } else {
                Cow::Borrowed(text)
            };
        }
        // XML, or JSON cut short by the body cap.
        let mut out = Cow::Borrowed(text);
        for field in self.fields.iter() {
            if field.xml.is_match(&out) {
                out = Cow::Owned(
                    field
                        .xml
                        .replace_all(&out, format!("${{1}}{MASK}${{3}}"))
                        .into_owned(),
                );
            }
            if field.json.is_match(&out) {
                out = Cow::Owned(
                    field
                        .json
                        .replace_all(&out, format!("${{1}}\"{MASK}\""))
                        .into_owned(),
                );
            }
        }
        out
    }

    fn json_value(&self, value: &mut serde_json::Value) -> bool {
        let mut changed = false;
        match value {
            serde_json::Value::Object(map) => {
                for (key, inner) in map.iter_mut() {
                    if self.matches(key) && !inner.is_null() && !inner.is_object() {
                        if inner.as_str() != Some(MASK) {
                            *inner = serde_json::Value::String(MASK.into());
                            changed = true;
                        }
                    } else {
                        changed |= self.json_value(inner);
                    }
                }
            }
            serde_json::Value::Array(items) => {
                for item in items {
                    changed |= self.json_value(item);
                }
            }
            _ => {}
        }
        changed
    }

    /// A URL with the values of matching query parameters masked.
    pub fn url<'a>(&self, url: &'a str) -> Cow<'a, str> {
        if self.is_empty() {
            return Cow::Borrowed(url);
        }
        let Some((base, query)) = url.split_once('?') else {
            return Cow::Borrowed(url);
        };
        let mut changed = false;
        let parts: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, value)) if value != MASK && self.matches(&decode(name)) => {
                    changed = true;
                    format!("{name}={MASK}")
                }
                _ => pair.to_owned(),
            })
            .collect();
        if changed {
            Cow::Owned(format!("{base}?{}", parts.join("&")))
        } else {
            Cow::Borrowed(url)
        }
    }
}

fn decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masker() -> Masker {
        Masker::new(&["email".into(), "lastName".into(), "phone".into()])
    }

    #[test]
    fn masks_json_xml_and_query_parameters() {
        let m = masker();
        assert_eq!(
            m.body(r#"{"customer":{"email":"a@b.nl","lastName":"Jansen","id":7},"items":[{"phone":"06"}]}"#),
            r#"{"customer":{"email":"***","id":7,"lastName":"***"},"items":[{"phone":"***"}]}"#
        );
        assert_eq!(
            m.body("<ns1:relation><ns1:email>a@b.nl</ns1:email><name>X</name><Email x=\"1\">c@d</Email></ns1:relation>"),
            "<ns1:relation><ns1:email>***</ns1:email><name>X</name><Email x=\"1\">***</Email></ns1:relation>"
        );
        assert_eq!(
            m.body(r#"{"email": "a@b.nl", "name": "cut sho"#),
            r#"{"email": "***", "name": "cut sho"#,
            "a truncated JSON body is masked by pattern"
        );
        assert_eq!(
            m.url("https://shop/api/search/customer?filter=1&email=a%40b.nl"),
            "https://shop/api/search/customer?filter=1&email=***"
        );
        assert_eq!(m.body("nothing personal"), "nothing personal");
        assert_eq!(
            Masker::default().body(r#"{"email":"x"}"#),
            r#"{"email":"x"}"#
        );
    }
}
