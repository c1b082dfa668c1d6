//! Country codes: the shop's ISO 3166-1 alpha-2 (`DE`) as MplusKASSA's VAT tables name
//! countries, alpha-3 (`DEU`, `getVatGroupList.countryIso3`, `Order.vatCountryIso3`).

/// Alpha-2 → alpha-3 of the countries a European web shop delivers to (the EU, the EEA,
/// Switzerland, the United Kingdom, the United States).
const ALPHA3: &[(&str, &str)] = &[
    ("AT", "AUT"),
    ("BE", "BEL"),
    ("BG", "BGR"),
    ("CH", "CHE"),
    ("CY", "CYP"),
    ("CZ", "CZE"),
    ("DE", "DEU"),
    ("DK", "DNK"),
    ("EE", "EST"),
    ("ES", "ESP"),
    ("FI", "FIN"),
    ("FR", "FRA"),
    ("GB", "GBR"),
    ("GR", "GRC"),
    ("HR", "HRV"),
    ("HU", "HUN"),
    ("IE", "IRL"),
    ("IS", "ISL"),
    ("IT", "ITA"),
    ("LI", "LIE"),
    ("LT", "LTU"),
    ("LU", "LUX"),
    ("LV", "LVA"),
    ("MC", "MCO"),
    ("MT", "MLT"),
    ("NL", "NLD"),
    ("NO", "NOR"),
    ("PL", "POL"),
    ("PT", "PRT"),
    ("RO", "ROU"),
    ("SE", "SWE"),
    ("SI", "SVN"),
    ("SK", "SVK"),
    ("US", "USA"),
];

/// The alpha-3 code of a country given as alpha-2 (or already as alpha-3), upper case.
pub fn alpha3(code: &str) -> Option<String> {
    let code = code.trim().to_ascii_uppercase();
    match code.len() {
        3 if code.bytes().all(|b| b.is_ascii_uppercase()) => Some(code),
        2 => ALPHA3
            .iter()
            .find(|(two, _)| *two == code)
            .map(|(_, three)| (*three).to_owned()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpha2_becomes_alpha3() {
        assert_eq!(alpha3("de").as_deref(), Some("DEU"));
        assert_eq!(alpha3("NL").as_deref(), Some("NLD"));
        assert_eq!(alpha3("BEL").as_deref(), Some("BEL"));
        assert_eq!(alpha3("XX"), None);
        assert_eq!(alpha3(""), None);
    }
}
