//! Deterministic Shopware ids: 32 lowercase hex characters derived from stable keys, so an
//! upsert of the same product number always hits the same row (API-NOTES §6.6).

use sha2::{Digest, Sha256};

/// The first 128 bits of SHA-256 of `kind:key`, as 32 lowercase hex characters.
pub fn derive(kind: &str, key: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(kind.as_bytes());
    hasher.update(b":");
    hasher.update(key.as_bytes());
    let digest = hasher.finalize();
    hex(&digest[..16])
}

/// The id of the product with this product number.
pub fn product(number: &str) -> String {
    derive("product", number)
}

/// The visibility row of a product in a sales channel.
pub fn visibility(product_id: &str, sales_channel_id: &str) -> String {
    derive(
        "product_visibility",
        &format!("{product_id}:{sales_channel_id}"),
    )
}

/// The configurator setting of a parent product for one option.
pub fn configurator_setting(parent_id: &str, option_id: &str) -> String {
    derive(
        "product_configurator_setting",
        &format!("{parent_id}:{option_id}"),
    )
}

/// A property group, by its name (case-insensitive).
pub fn property_group(name: &str) -> String {
    derive("property_group", &name.trim().to_lowercase())
}

/// An option of a property group, by its name (case-insensitive).
pub fn property_option(group_id: &str, name: &str) -> String {
    derive(
        "property_group_option",
        &format!("{group_id}:{}", name.trim().to_lowercase()),
    )
}

/// A category below a parent, by its name (case-insensitive).
pub fn category(parent_id: &str, name: &str) -> String {
    derive(
        "category",
        &format!("{parent_id}/{}", name.trim().to_lowercase()),
    )
}

/// A tax with this rate (`"21"`, `"5.5"`).
pub fn tax(rate: &str) -> String {
    derive("tax", rate)
}

/// Whether `text` is a Shopware id (exactly 32 lowercase hex characters).
pub fn is_id(text: &str) -> bool {
    text.len() == 32
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A short, stable fingerprint (16 hex characters) of some text, for cursor states.
pub fn fingerprint(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    hex(&digest[..8])
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 15)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_lowercase_hex_and_differ_by_kind() {
        let a = product("TS-100");
        assert_eq!(a, product("TS-100"));
        assert!(is_id(&a), "{a}");
        assert_ne!(a, product("TS-101"));
        assert_ne!(a, derive("category", "TS-100"));
        assert_eq!(property_group(" Size "), property_group("size"));
        assert!(!is_id("974C7252AD003560FBBBF7ABE1B6C3DA"));
        assert!(!is_id("abc"));
        assert_eq!(fingerprint("x").len(), 16);
    }
}
