//! HMAC-SHA256 signatures: Shopware's (`shopware-shop-signature`, hex of the HMAC of the
//! body) and koppel's own scheme, used for inbound webhooks of `scheme = "koppel"` and for the
//! notifications koppel sends:
//!
//! ```text
//! X-Koppel-Timestamp: 1767225600                      (unix seconds)
//! X-Koppel-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>
//! ```
//!
//! The timestamp is inside the signed text, so a captured call cannot be replayed later
//! with a fresh timestamp; the receiver refuses timestamps outside its window.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

pub const TIMESTAMP_HEADER: &str = "x-koppel-timestamp";
pub const SIGNATURE_HEADER: &str = "x-koppel-signature";
pub const SHOPWARE_HEADER: &str = "shopware-shop-signature";

fn mac(secret: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; new_from_slice cannot fail for it.
    match HmacSha256::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    }
}

/// Hex HMAC-SHA256 of `parts` concatenated.
pub fn hmac_hex(secret: &[u8], parts: &[&[u8]]) -> String {
    let mut mac = mac(secret);
    for part in parts {
        mac.update(part);
    }
    hex::encode(mac.finalize().into_bytes())
}

/// Checks a hex HMAC-SHA256 of `parts` in constant time.
pub fn verify_hex(secret: &[u8], parts: &[&[u8]], signature_hex: &str) -> bool {
    let Ok(expected) = hex::decode(signature_hex.trim()) else {
        return false;
    };
    let mut mac = mac(secret);
    for part in parts {
        mac.update(part);
    }
    mac.verify_slice(&expected).is_ok()
}

/// koppel's signature header value for a body sent at `timestamp` (unix seconds).
pub fn koppel_signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let ts = timestamp.to_string();
    format!("sha256={}", hmac_hex(secret, &[ts.as_bytes(), b".", body]))
}

/// Why a signed call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    #[error("the call is not signed (no {0} header)")]
    Missing(&'static str),
    #[error("the signature does not match the body")]
    Mismatch,
    #[error("the timestamp is not a number of seconds")]
    BadTimestamp,
    #[error(
        "the call is stale: its timestamp is {age_secs} s away from now (at most {max_secs} s)"
    )]
    Stale { age_secs: i64, max_secs: i64 },
}

/// Checks koppel's scheme: timestamp within `max_age_secs` of `now` (unix seconds), then
/// the signature.
pub fn verify_koppel(
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
    max_age_secs: i64,
) -> Result<(), SignatureError> {
    let signature = signature.ok_or(SignatureError::Missing(SIGNATURE_HEADER))?;
    let timestamp = timestamp.ok_or(SignatureError::Missing(TIMESTAMP_HEADER))?;
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    let hex = signature
        .trim()
        .strip_prefix("sha256=")
        .unwrap_or(signature);
    if !verify_hex(secret, &[timestamp.trim().as_bytes(), b".", body], hex) {
        return Err(SignatureError::Mismatch);
    }
    let age = (now - ts).abs();
    if age > max_age_secs {
        return Err(SignatureError::Stale {
            age_secs: age,
            max_secs: max_age_secs,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_4231_case_2() {
        assert_eq!(
            hmac_hex(b"Jefe", &[b"what do ya want ", b"for nothing?"]),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn koppel_scheme_checks_signature_and_age() {
        let body = br#"{"event":"stock.changed"}"#;
        let sig = koppel_signature(b"s", 1000, body);
        assert_eq!(
            verify_koppel(b"s", Some("1000"), Some(&sig), body, 1100, 300),
            Ok(())
        );
        assert_eq!(
            verify_koppel(b"t", Some("1000"), Some(&sig), body, 1100, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_koppel(b"s", Some("1001"), Some(&sig), body, 1100, 300),
            Err(SignatureError::Mismatch),
            "the timestamp is signed"
        );
        assert!(matches!(
            verify_koppel(b"s", Some("1000"), Some(&sig), body, 2000, 300),
            Err(SignatureError::Stale { .. })
        ));
        assert_eq!(
            verify_koppel(b"s", None, Some(&sig), body, 1000, 300),
            Err(SignatureError::Missing(TIMESTAMP_HEADER))
        );
    }
}
