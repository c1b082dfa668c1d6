//! Keeps secrets out of everything the host records or prints: URLs (MplusKASSA sends its
//! secret in the query string), headers (`Authorization`), bodies (OAuth token requests and
//! answers) and guest log lines.
//!
//! Two nets, both always on:
//! 1. every value of a config field marked `secret`, in the forms it travels in (plain,
//!    percent-encoded, JSON- and XML-escaped), wherever it appears;
//! 2. values under names that mean "secret" (`secret`, `password`, `access_token`,
//!    `client_secret`, `api_key`, ...) in query strings, headers, JSON, form and XML bodies,
//!    which also catches tokens the connector obtained at run time.

use std::sync::LazyLock;

use regex::Regex;

/// What replaces a secret.
pub const REDACTED: &str = "[REDACTED]";

/// Parts of names that mark a value as secret (compared in lower case).
const SENSITIVE_NAMES: &[&str] = &[
    "secret",
    "password",
    "passwd",
    "token",
    "apikey",
    "api_key",
    "api-key",
    "signature",
    "credential",
    "authorization",
    "cookie",
    "private_key",
];

/// Whether a field, header or parameter of this name carries a secret.
pub fn is_sensitive_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SENSITIVE_NAMES.iter().any(|s| name.contains(s))
}

const NAME_PATTERN: &str = r"[A-Za-z0-9_\-]*(?i:secret|password|passwd|token|apikey|api_key|api-key|signature|credential|private_key)[A-Za-z0-9_\-]*";

static JSON_FIELD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r#"("{NAME_PATTERN}"\s*:\s*")((?:[^"\\]|\\.)*)"#)).expect("valid regex")
});
static FORM_FIELD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r"((?:^|[&?])(?:{NAME_PATTERN})=)([^&\s]*)")).expect("valid regex")
});
static XML_ELEMENT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(<(?:[A-Za-z0-9_\-]+:)?{NAME_PATTERN}(?:\s[^>]*)?>)([^<]*)"
    ))
    .expect("valid regex")
});

/// Redacts the secrets of one connection.
#[derive(Clone, Debug, Default)]
pub struct Redactor {
    /// Every form of every secret value, longest first so a longer form wins.
    needles: Vec<String>,
}

impl Redactor {
    /// A redactor for these secret values (empty values are ignored).
    pub fn new<I, S>(secrets: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut needles = Vec::new();
        for secret in secrets {
            let secret = secret.as_ref();
            if secret.is_empty() {
                continue;
            }
            needles.push(secret.to_owned());
            needles.push(
                percent_encoding::utf8_percent_encode(secret, percent_encoding::NON_ALPHANUMERIC)
                    .to_string(),
            );
            needles.push(form_encode(secret));
            let json = serde_json::to_string(secret).unwrap_or_default();
            needles.push(json.trim_matches('"').to_owned());
            needles.push(xml_escape(secret));
        }
        needles.retain(|n| !n.is_empty());
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        needles.dedup();
        Redactor { needles }
    }

    /// The longest form of a secret, so a caller truncating text can keep enough context.
    pub fn longest(&self) -> usize {
        self.needles.first().map_or(0, String::len)
    }

    /// Replaces every known secret value in `text`.
    pub fn values(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for needle in &self.needles {
            if out.contains(needle.as_str()) {
                out = out.replace(needle.as_str(), REDACTED);
            }
        }
        out
    }

    /// Redacts a URL: secret-named query parameters, a password in the user info, and every
    /// secret value.
    pub fn url(&self, url: &str) -> String {
        let redacted = match url::Url::parse(url) {
            Ok(mut parsed) => {
                if parsed.password().is_some() {
                    let _ = parsed.set_password(Some(REDACTED));
                }
                if parsed.query().is_some() {
                    let pairs: Vec<(String, String)> = parsed
                        .query_pairs()
                        .map(|(k, v)| {
                            let v = if is_sensitive_name(&k) {
                                REDACTED.to_owned()
                            } else {
                                v.into_owned()
                            };
                            (k.into_owned(), v)
                        })
                        .collect();
                    parsed.query_pairs_mut().clear().extend_pairs(pairs);
                }
                parsed.to_string()
            }
            Err(_) => FORM_FIELD
                .replace_all(url, format!("${{1}}{REDACTED}"))
                .into_owned(),
        };
        self.values(&redacted)
    }

    /// Redacts one header value, by the header's name and by secret values.
    pub fn header(&self, name: &str, value: &str) -> String {
        if name.eq_ignore_ascii_case("authorization")
            || name.eq_ignore_ascii_case("proxy-authorization")
        {
            return match value.split_once(' ') {
                Some((scheme, _)) => format!("{scheme} {REDACTED}"),
                None => REDACTED.to_owned(),
            };
        }
        if is_sensitive_name(name) {
            return REDACTED.to_owned();
        }
        self.values(value)
    }

    /// Redacts a text body: secret-named JSON fields, form fields and XML elements (also when
    /// the text was cut off inside the value), then every secret value.
    pub fn text(&self, text: &str) -> String {
        let replacement = format!("${{1}}{REDACTED}");
        let text = JSON_FIELD.replace_all(text, replacement.as_str());
        let text = FORM_FIELD.replace_all(&text, replacement.as_str());
        let text = XML_ELEMENT.replace_all(&text, replacement.as_str());
        self.values(&text)
    }

    /// A body as the activity log keeps it: redacted, cut to `limit` bytes, binary described
    /// rather than shown.
    pub fn body(&self, body: &[u8], limit: usize) -> String {
        if body.is_empty() {
            return String::new();
        }
        // Redact a little more than is kept, so a secret cut at the edge is still found.
        let window = body
            .len()
            .min(limit.saturating_add(self.longest()).saturating_add(64));
        let text = match std::str::from_utf8(&body[..window]) {
            Ok(text) => text.to_owned(),
            Err(error) if error.valid_up_to() + 4 >= window => {
                String::from_utf8_lossy(&body[..error.valid_up_to()]).into_owned()
            }
            Err(_) => return format!("[{} bytes of binary data]", body.len()),
        };
        let mut redacted = self.text(&text);
        if redacted.len() > limit || body.len() > window {
            let mut cut = limit.min(redacted.len());
            while !redacted.is_char_boundary(cut) {
                cut -= 1;
            }
            redacted.truncate(cut);
            redacted.push_str(&format!("… [{} bytes in all]", body.len()));
        }
        redacted
    }
}

fn form_encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

fn xml_escape(value: &str) -> String {
    value
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_string_secrets_are_redacted_by_name_and_by_value() {
        let r = Redactor::new(["s3cr3t&+/x"]);
        let url = "https://api.mpluskassa.nl:44123/?ident=shop1&secret=s3cr3t%26%2B%2Fx";
        let out = r.url(url);
        assert!(!out.contains("s3cr3t"), "{out}");
        assert!(
            out.contains("ident=shop1"),
            "non-secret parameters stay: {out}"
        );
        assert!(
            out.contains("secret=%5BREDACTED%5D") || out.contains("secret=[REDACTED]"),
            "{out}"
        );
        // A secret under a harmless name is still caught by value.
        let out = r.url("https://h/?q=s3cr3t%26%2B%2Fx");
        assert!(!out.contains("s3cr3t"), "{out}");
    }

    #[test]
    fn authorization_headers_keep_only_their_scheme() {
        let r = Redactor::default();
        assert_eq!(
            r.header("Authorization", "Bearer eyJhbGciOi.abc"),
            "Bearer [REDACTED]"
        );
        assert_eq!(r.header("x-api-key", "k"), REDACTED);
        assert_eq!(r.header("Accept", "application/json"), "application/json");
    }

    #[test]
    fn bodies_lose_tokens_passwords_and_secret_values() {
        let r = Redactor::new(["topsecret"]);
        let json = r#"{"grant_type":"client_credentials","client_id":"SWIA1","client_secret":"topsecret"}"#;
        let out = r.text(json);
        assert!(!out.contains("topsecret"), "{out}");
        assert!(out.contains(r#""client_id":"SWIA1""#), "{out}");

        let answer = r#"{"token_type":"Bearer","expires_in":600,"access_token":"eyJ0eXAi\"x"}"#;
        let out = r.text(answer);
        assert!(!out.contains("eyJ0eXAi"), "{out}");
        assert!(out.contains(r#""expires_in":600"#), "{out}");

        let form = "grant_type=password&username=admin&password=hunter2";
        assert_eq!(
            r.text(form),
            "grant_type=password&username=admin&password=[REDACTED]"
        );

        let xml = "<ns1:password>hunter2</ns1:password><ns1:name>Jan</ns1:name>";
        let out = r.text(xml);
        assert!(!out.contains("hunter2") && out.contains("Jan"), "{out}");
    }

    #[test]
    fn a_secret_cut_by_truncation_is_still_redacted() {
        let r = Redactor::new(["abcdefghijklmnop"]);
        let body = format!("{}abcdefghijklmnop and more", "x".repeat(95));
        let out = r.body(body.as_bytes(), 100);
        assert!(!out.contains("abcde"), "{out}");
        let token = format!(
            r#"{{"pad":"{}","access_token":"{}"}}"#,
            "p".repeat(80),
            "t".repeat(200)
        );
        let out = r.body(token.as_bytes(), 120);
        assert!(
            !out.contains("tttt"),
            "a token cut off before its closing quote is redacted: {out}"
        );
    }

    #[test]
    fn binary_bodies_are_described_not_shown() {
        let r = Redactor::default();
        assert_eq!(
            r.body(&[0xff, 0xfe, 0x00, 0x01, 0x80, 0x80, 0x80, 0x80, 1, 2], 100),
            "[10 bytes of binary data]"
        );
    }
}
