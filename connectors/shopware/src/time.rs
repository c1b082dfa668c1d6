//! Shopware's timestamp format over the SDK's clockless [`koppel_sdk::time`] (parsing RFC
//! 3339 and HTTP dates, RFC 3339 in UTC for canonical records).

/// Formats milliseconds the way Shopware writes timestamps: `2024-05-02T09:14:11.123+00:00`.
pub fn shopware(millis: i64) -> String {
    koppel_sdk::time::rfc3339_millis(millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_timestamps_as_shopware_does() {
        let ms = koppel_sdk::time::parse_millis("2024-05-02T09:14:11.123+00:00").expect("valid");
        assert_eq!(shopware(ms), "2024-05-02T09:14:11.123+00:00");
    }
}
