//! What a write is told besides its records: the create-only fields (contract rule 4.7).

use std::collections::BTreeSet;

use crate::WriteOptions;

/// The fields a write sets only when it creates a record, never on an update (the target's
/// users may edit them). Names are the canonical field names as `koppel.toml` and the host
/// spell them (`name`, `short_description`, `categories`, `extra.brand`); a name written with
/// `-` (`short-description`) or in another case means the same field, and `extra.<name>`
/// keeps its name's spelling. `extra` on its own makes every `extra.<name>` create-only.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CreateOnly {
    fields: BTreeSet<String>,
}

impl CreateOnly {
    pub fn new<S: AsRef<str>>(names: &[S]) -> Self {
        CreateOnly {
            fields: names.iter().map(|n| canonical(n.as_ref())).collect(),
        }
    }

    /// The create-only fields of a write.
    pub fn of(options: &WriteOptions) -> Self {
        Self::new(&options.create_only)
    }

    /// Whether `field` (a canonical name, or `extra.<name>`) is create-only: named itself, or
    /// `extra.<name>` when `extra` as a whole is.
    pub fn has(&self, field: &str) -> bool {
        let field = canonical(field);
        self.fields.contains(&field)
            || (field.starts_with("extra.") && self.fields.contains("extra"))
    }

    /// Whether `field` may be set by this write: always when creating, and on an update only
    /// when it is not create-only.
    pub fn may_set(&self, field: &str, creating: bool) -> bool {
        creating || !self.has(field)
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The names, canonical, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(String::as_str)
    }
}

/// `Short-Description` → `short_description`; `extra.Brand` keeps `Brand`.
fn canonical(name: &str) -> String {
    let name = name.trim();
    match name.split_once('.') {
        Some((head, rest)) if head.eq_ignore_ascii_case("extra") => format!("extra.{rest}"),
        Some((head, rest)) => format!("{}.{rest}", head.to_lowercase().replace('-', "_")),
        None => name.to_lowercase().replace('-', "_"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_spelling_whatever_the_case_or_dash() {
        let create_only = CreateOnly::new(&["Short-Description", "name", "extra.Brand"]);
        assert!(create_only.has("short_description"));
        assert!(create_only.has("short-description"));
        assert!(create_only.has("NAME"));
        assert!(create_only.has("extra.Brand"));
        assert!(
            !create_only.has("extra.brand"),
            "extra names keep their spelling"
        );
        assert!(!create_only.has("description"));
        assert!(!create_only.has("extra.color"));
        let all_extra = CreateOnly::new(&["Extra"]);
        assert!(all_extra.has("extra.color") && all_extra.has("extra.Brand"));
        assert!(!all_extra.has("name"));
        assert!(create_only.may_set("name", true));
        assert!(!create_only.may_set("name", false));
        assert!(create_only.may_set("ean", false));
        assert_eq!(
            create_only.names().collect::<Vec<_>>(),
            ["extra.Brand", "name", "short_description"]
        );
    }
}
