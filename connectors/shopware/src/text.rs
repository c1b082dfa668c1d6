//! Text as Shopware stores it in a `StringField` (a product's `name`, `ean`,
//! `metaDescription`), so that what the connector sends is what the shop keeps and a re-run
//! compares equal. `StringFieldSerializer::encode`: an empty value (from 6.5: blank after
//! `trim`) becomes `null`; more than 255 characters are refused (`Length`); HTML tags are
//! stripped (`strip_tags`: these fields do not allow HTML), and if nothing is left the value
//! is refused as blank. The rest is stored as given, not trimmed.

/// The longest value a `StringField` takes (`StringField::$maxLength`).
pub const MAX_CHARS: usize = 255;

/// Why a text cannot be stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TextError {
    /// Longer than [`MAX_CHARS`] characters (after stripping tags): how long.
    TooLong(usize),
    /// Nothing but HTML tags.
    OnlyTags,
}

/// What the shop stores for `value`: `None` for `null`. `trims`: 6.5+, where a value that
/// is blank after trimming is `null`.
pub fn stored(value: &str, trims: bool) -> Result<Option<String>, TextError> {
    let empty = if trims {
        value.trim().is_empty()
    } else {
        value.is_empty()
    };
    if empty {
        return Ok(None);
    }
    let stripped = strip_tags(value);
    if stripped.is_empty() {
        return Err(TextError::OnlyTags);
    }
    let chars = stripped.chars().count();
    if chars > MAX_CHARS {
        return Err(TextError::TooLong(chars));
    }
    Ok(Some(stripped))
}

/// PHP's `strip_tags`: a tag is `<` followed by anything but white space, up to its `>`
/// (quotes respected, nested `<` counted); comments go too, and an unclosed tag at the end
/// is dropped. Everything else stays as it is.
pub fn strip_tags(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c != '<' || chars.get(i + 1).is_none_or(|n| n.is_whitespace()) {
            out.push(c);
            i += 1;
            continue;
        }
        if chars[i + 1..].starts_with(&['!', '-', '-']) {
            let rest: String = chars[i + 4..].iter().collect();
            match rest.find("-->") {
                Some(end) => i += 4 + rest[..end].chars().count() + 3,
                None => i = chars.len(),
            }
            continue;
        }
        let mut depth = 0;
        let mut quote: Option<char> = None;
        while i < chars.len() {
            let c = chars[i];
            i += 1;
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '"' | '\'') => quote = Some(c),
                (None, '<') => depth += 1,
                (None, '>') => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_go_and_the_rest_stays() {
        assert_eq!(strip_tags("<b>Shirt</b> blue"), "Shirt blue");
        assert_eq!(strip_tags("a < b and c > d"), "a < b and c > d");
        assert_eq!(strip_tags("x<br/>y<!-- note -->z"), "xyz");
        assert_eq!(strip_tags("<a title=\">\">link</a>"), "link");
        assert_eq!(strip_tags("cut <b"), "cut ");
    }

    #[test]
    fn what_the_shop_stores() {
        assert_eq!(stored("<b>Shirt</b> ", true), Ok(Some("Shirt ".into())));
        assert_eq!(stored("  ", true), Ok(None), "6.5+: blank is null");
        assert_eq!(stored("  ", false), Ok(Some("  ".into())), "6.4 keeps it");
        assert_eq!(stored("", false), Ok(None));
        assert_eq!(stored("<br>", true), Err(TextError::OnlyTags));
        let long = "ä".repeat(256);
        assert_eq!(stored(&long, true), Err(TextError::TooLong(256)));
        let fits = format!("<p>{}</p>", "ä".repeat(255));
        assert_eq!(
            stored(&fits, true).map(|s| s.map(|s| s.chars().count())),
            Ok(Some(255)),
            "the tags do not count: the stripped text is what is sent"
        );
    }
}
