//! Search filters in the shape every version's OpenAPI file accepts.
//!
//! - `equalsAny` takes a `|`-separated string (API-NOTES §4.2), which 6.5's schema (every
//!   filter `{type, field, value: string}`) and 6.6+'s `SimpleFilter` both describe; a list is
//!   sent only when a value itself holds a `|`.
//! - 6.5's file knows no `range` or `multi` filter: there they also carry the `field`/`value`
//!   members its generic filter item requires, which Shopware's filter parser ignores for
//!   those types. 6.4's file types nothing; 6.6+ describe `RangeFilter` and `MultiNotFilter`.

use serde_json::{Value, json};

use crate::api::Version;

/// `field` equals one of `values`.
pub fn equals_any(field: &str, values: &[String]) -> Value {
    if values.iter().any(|v| v.contains('|')) {
        return json!({"type": "equalsAny", "field": field, "value": values});
    }
    json!({"type": "equalsAny", "field": field, "value": values.join("|")})
}

/// `field` equals `value`.
pub fn equals(field: &str, value: &str) -> Value {
    json!({"type": "equals", "field": field, "value": value})
}

/// `field` within `parameters` (`{"gte": …}`, `{"gt": …}`).
pub fn range(version: Version, field: &str, parameters: Value) -> Value {
    let mut filter = json!({"type": "range", "field": field, "parameters": parameters});
    if version == Version::V6_5 {
        filter["value"] = json!("");
    }
    filter
}

/// Any of `queries`.
pub fn any(version: Version, queries: Vec<Value>) -> Value {
    let mut filter = json!({"type": "multi", "operator": "or", "queries": queries});
    if version == Version::V6_5 {
        filter["field"] = json!("id");
        filter["value"] = json!("");
    }
    filter
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_travel_as_pipe_strings() {
        let filter = equals_any("productNumber", &["A".into(), "B".into()]);
        assert_eq!(filter["value"], "A|B");
        let filter = equals_any("productNumber", &["A|1".into()]);
        assert_eq!(filter["value"], json!(["A|1"]));
    }

    #[test]
    fn only_65_gets_the_generic_members() {
        let r = range(Version::V6_5, "autoIncrement", json!({"gt": 3}));
        assert_eq!(r["value"], "");
        let r = range(Version::V6_6, "autoIncrement", json!({"gt": 3}));
        assert!(r.get("value").is_none());
        let m = any(Version::V6_5, vec![r.clone()]);
        assert_eq!(m["field"], "id");
        assert!(any(Version::V6_7, vec![r]).get("field").is_none());
    }
}
