//! The one JSON form of canonical records: what the state database keeps (run records, the
//! failed queue) and what the id map's hashes are taken over. The format is pinned by the
//! golden files in `golden/`: changing it would make every stored hash differ, and every
//! record be written again, so a test fails first.

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::Record;

/// A record in its stored JSON form (`{"Product":{"key":…}}`).
pub fn encode(record: &Record) -> String {
    // Serialising derived types into a String cannot fail (no maps with non-string keys).
    serde_json::to_string(record).unwrap_or_default()
}

/// A record back from its stored JSON form; the error says what does not fit.
pub fn decode(json: &str) -> Result<Record, serde_json::Error> {
    serde_json::from_str(json)
}

/// SHA-256 (hex) of any value's JSON: how a flow's write settings are fingerprinted.
pub fn hash_of<T: Serialize + ?Sized>(value: &T) -> String {
    hex::encode(Sha256::digest(
        serde_json::to_vec(value).unwrap_or_default(),
    ))
}

/// The hash the id map keeps for a record written with some settings: SHA-256 (hex) of
/// `[<encoded record>,"<settings hash>"]`, taken over the bytes [`encode`] gave, so a record
/// is encoded once per run. Equal to [`hash_of`] of the pair `(record, settings)`.
pub fn content_hash(encoded: &str, settings_hash: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"[");
    hasher.update(encoded.as_bytes());
    hasher.update(b",");
    hasher.update(
        serde_json::to_string(settings_hash)
            .unwrap_or_default()
            .as_bytes(),
    );
    hasher.update(b"]");
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::super::samples;
    use super::*;

    /// Settings fingerprint used by the golden hashes.
    const SETTINGS: &str = "5f0d3a0c2d4e";

    #[test]
    fn the_stored_form_and_its_hashes_are_pinned_by_the_golden_files() {
        let golden = include_str!("golden/records.jsonl");
        let hashes = include_str!("golden/hashes.txt");
        let records = samples::all();
        let lines: Vec<&str> = golden.lines().collect();
        let hash_lines: Vec<&str> = hashes.lines().collect();
        assert_eq!(lines.len(), records.len(), "one golden line per sample");
        assert_eq!(
            hash_lines.len(),
            records.len(),
            "one golden hash per sample"
        );
        for ((record, line), hash) in records.iter().zip(&lines).zip(&hash_lines) {
            let encoded = encode(record);
            assert_eq!(
                &encoded, line,
                "the stored JSON of a record changed (a deliberate change needs a migration of the stored hashes, then new golden lines)"
            );
            assert_eq!(decode(line).expect("decodes"), *record, "round trip");
            assert_eq!(
                content_hash(&encoded, SETTINGS),
                *hash,
                "the id map's hash of a record changed: every stored record would be written again"
            );
            assert_eq!(
                content_hash(&encoded, SETTINGS),
                hash_of(&(record, SETTINGS)),
                "the hash over the encoded bytes equals the hash of the pair"
            );
        }
    }
}
