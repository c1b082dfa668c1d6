//! Shopware ids (32 lowercase hex characters, stored as 16 bytes) and the timestamps the
//! simulator writes.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// A Shopware id: 16 bytes, written as 32 lowercase hex characters without dashes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Id(pub [u8; 16]);

impl Id {
    /// Parses the wire form; anything but exactly 32 lowercase hex characters is refused,
    /// as the OpenAPI pattern `^[0-9a-f]{32}$` demands.
    pub fn parse(text: &str) -> Option<Id> {
        let bytes = text.as_bytes();
        if bytes.len() != 32 {
            return None;
        }
        let mut out = [0u8; 16];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
        }
        Some(Id(out))
    }

    pub fn hex(&self) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(32);
        for byte in self.0 {
            out.push(DIGITS[(byte >> 4) as usize] as char);
            out.push(DIGITS[(byte & 15) as usize] as char);
        }
        out
    }

    /// A stable id derived from a key, e.g. `Id::derive("state:order.state:open")`.
    pub fn derive(key: &str) -> Id {
        let a = fnv1a(key.as_bytes(), 0xcbf2_9ce4_8422_2325);
        let b = fnv1a(key.as_bytes(), 0x8422_2325_cbf2_9ce4 ^ a);
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&splitmix(a).to_be_bytes());
        out[8..].copy_from_slice(&splitmix(b).to_be_bytes());
        Id(out)
    }

    /// An id from a random source (the simulator's seeded RNG).
    pub fn random(rng: &mut impl rand::Rng) -> Id {
        Id(rng.random())
    }

    /// Combines two ids into one, for the synthetic key of a mapping row.
    pub fn pair(a: Id, b: Id) -> Id {
        let mut out = [0u8; 16];
        let x = splitmix(u64::from_be_bytes(a.0[..8].try_into().unwrap_or_default()));
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = a.0[i].rotate_left(3) ^ b.0[i] ^ (x >> ((i % 8) * 8)) as u8;
        }
        out.reverse();
        Id(out)
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

fn fnv1a(bytes: &[u8], seed: u64) -> u64 {
    let mut hash = seed;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Milliseconds since the Unix epoch, now.
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// Formats a time the way Shopware writes it: `2024-05-02T09:14:11.123+00:00`.
pub fn format_millis(millis: i64) -> String {
    let secs = millis.div_euclid(1000);
    let ms = millis.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}+00:00",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// The current time in Shopware's format.
pub fn now_string() -> String {
    format_millis(now_millis())
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Base64url without padding, for the JWT-shaped access tokens.
pub fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len() * 4 / 3 + 4);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_refuse_uppercase() {
        let text = "974c7252ad003560fbbbf7abe1b6c3da";
        assert_eq!(Id::parse(text).map(|id| id.hex()).as_deref(), Some(text));
        assert!(Id::parse("974C7252AD003560FBBBF7ABE1B6C3DA").is_none());
        assert!(Id::parse("974c7252-ad00-3560-fbbb-f7abe1b6c3da").is_none());
        assert_ne!(Id::derive("a"), Id::derive("b"));
        assert_eq!(Id::derive("a"), Id::derive("a"));
    }

    #[test]
    fn times_format_like_shopware() {
        assert_eq!(format_millis(0), "1970-01-01T00:00:00.000+00:00");
        assert_eq!(
            format_millis(1_714_641_251_123),
            "2024-05-02T09:14:11.123+00:00"
        );
        assert_eq!(base64url(b"{\"a\":1}"), "eyJhIjoxfQ");
    }
}
