//! The shop's reference data a product write needs: taxes (matched by rate, created when
//! missing), currencies, sales channels, the category tree (paths matched by name, created
//! when missing) and property groups with their options (matched by name, created on
//! demand). Each is read once per instance and kept; what the connector creates is added.

use std::collections::HashMap;

use koppel_sdk::{ConnectorError, Decimal, Result, log};
use serde_json::{Value, json};

use crate::api::{Call, Client};
use crate::config::{Config, TaxMissing};
use crate::criteria;
use crate::ids;
use crate::money;
use crate::products::sync_settings;
use crate::sync;

/// Shopware's system default currency id of a default install.
pub const DEFAULT_CURRENCY_ID: &str = "b7d2554b0ce847cd82f3ac9bd1c0dfca";
/// The system language id.
pub const SYSTEM_LANGUAGE_ID: &str = "2fbb5fe2e29a4d70aa5854ce7ce3e20b";
const STOREFRONT_TYPE: &str = "8a243080f92e4c719546314b577cf82b";
const HEADLESS_TYPE: &str = "f183ee5650cf4bdb8a774337575067a6";

#[derive(Clone, Debug, PartialEq)]
pub struct Currency {
    pub id: String,
    pub iso: String,
    pub system_default: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Channel {
    pub id: String,
    pub name: String,
    pub navigation_category: Option<String>,
}

/// A translated name: the plain field, else `translated.name`.
pub fn name_of(row: &Value) -> String {
    row.get("name")
        .and_then(Value::as_str)
        .or_else(|| row.pointer("/translated/name").and_then(Value::as_str))
        .unwrap_or("")
        .to_owned()
}

fn id_of(row: &Value) -> Option<String> {
    row.get("id").and_then(Value::as_str).map(str::to_owned)
}

/// The categories, indexed by (parent id, lower-case name).
#[derive(Clone, Debug, Default)]
pub struct Categories {
    children: HashMap<(String, String), String>,
    known: HashMap<String, String>,
}

/// A category the connector has to create.
#[derive(Clone, Debug, PartialEq)]
pub struct NewCategory {
    pub id: String,
    pub parent_id: String,
    pub name: String,
}

impl Categories {
    pub fn from_rows(rows: &[Value]) -> Categories {
        let mut out = Categories::default();
        for row in rows {
            let Some(id) = id_of(row) else { continue };
            let name = name_of(row);
            if let Some(parent) = row.get("parentId").and_then(Value::as_str) {
                out.children
                    .insert((parent.to_owned(), name.trim().to_lowercase()), id.clone());
            }
            out.known.insert(id, name);
        }
        out
    }

    pub fn contains(&self, id: &str) -> bool {
        self.known.contains_key(id)
    }

    /// The id of a root-level or any category with this name (case-insensitive).
    pub fn find_by_name(&self, name: &str) -> Option<String> {
        let wanted = name.trim().to_lowercase();
        let mut found: Vec<&String> = self
            .known
            .iter()
            .filter(|(_, n)| n.trim().to_lowercase() == wanted)
            .map(|(id, _)| id)
            .collect();
        found.sort();
        found.first().map(|id| (*id).clone())
    }

    /// The leaf id of `path` below `root`; categories that do not exist yet get deterministic
    /// ids, are added to the index and returned for creation (parents first).
    pub fn resolve(&mut self, root: &str, path: &[String], new: &mut Vec<NewCategory>) -> String {
        let mut parent = root.to_owned();
        for segment in path {
            let name = segment.trim();
            if name.is_empty() {
                continue;
            }
            let key = (parent.clone(), name.to_lowercase());
            parent = match self.children.get(&key) {
                Some(id) => id.clone(),
                None => {
                    let id = ids::category(&parent, name);
                    new.push(NewCategory {
                        id: id.clone(),
                        parent_id: parent.clone(),
                        name: name.to_owned(),
                    });
                    self.children.insert(key, id.clone());
                    self.known.insert(id.clone(), name.to_owned());
                    id
                }
            };
        }
        parent
    }
}

/// The payload that creates a category.
pub fn category_payload(category: &NewCategory) -> Value {
    json!({
        "id": category.id,
        "parentId": category.parent_id,
        "name": category.name,
        "active": true,
        "visible": true,
        "type": "page",
        "productAssignmentType": "product",
        "displayNestedProducts": true,
    })
}

#[derive(Clone, Debug, Default)]
struct Group {
    id: String,
    name: String,
    in_shop: bool,
    /// lower-case name → (id, name, in shop)
    options: HashMap<String, (String, String, bool)>,
}

/// Property groups and options by name.
#[derive(Clone, Debug, Default)]
pub struct Groups {
    groups: HashMap<String, Group>,
    /// Lower-case group names looked up in the shop already (found or not).
    looked_up: Vec<String>,
}

impl Groups {
    /// Names of `wanted` not looked up yet.
    pub fn unknown<'a>(&self, wanted: impl Iterator<Item = &'a str>) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for name in wanted {
            let lower = name.trim().to_lowercase();
            if !self.looked_up.contains(&lower) && !out.iter().any(|o| o.to_lowercase() == lower) {
                out.push(name.trim().to_owned());
            }
        }
        out
    }

    /// Adds the groups (with their `options`) a search found, and marks `names` as looked up.
    pub fn add_found(&mut self, names: &[String], rows: &[Value]) {
        for row in rows {
            let Some(id) = id_of(row) else { continue };
            let name = name_of(row);
            let lower = name.trim().to_lowercase();
            let group = self.groups.entry(lower).or_insert_with(|| Group {
                id: id.clone(),
                name: name.clone(),
                in_shop: true,
                options: HashMap::new(),
            });
            // The first group with the name wins; options of duplicates are not mixed in.
            if group.id != id {
                continue;
            }
            group.in_shop = true;
            for option in row
                .get("options")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(option_id) = id_of(option) {
                    let option_name = name_of(option);
                    group
                        .options
                        .entry(option_name.trim().to_lowercase())
                        .or_insert((option_id, option_name, true));
                }
            }
        }
        for name in names {
            let lower = name.trim().to_lowercase();
            if !self.looked_up.contains(&lower) {
                self.looked_up.push(lower);
            }
        }
    }

    /// The option id of `group: option`, creating both in the index when missing.
    pub fn option_id(&mut self, group: &str, option: &str) -> String {
        let lower = group.trim().to_lowercase();
        let entry = self.groups.entry(lower).or_insert_with(|| Group {
            id: ids::property_group(group),
            name: group.trim().to_owned(),
            in_shop: false,
            options: HashMap::new(),
        });
        let group_id = entry.id.clone();
        entry
            .options
            .entry(option.trim().to_lowercase())
            .or_insert_with(|| {
                (
                    ids::property_option(&group_id, option),
                    option.trim().to_owned(),
                    false,
                )
            })
            .0
            .clone()
    }

    /// Payloads that create the groups and options not in the shop yet, by lower-case group
    /// name.
    pub fn pending(&self) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        let mut groups: Vec<(&String, &Group)> = self.groups.iter().collect();
        groups.sort_by(|a, b| a.1.id.cmp(&b.1.id));
        for (lower, group) in groups {
            let mut options: Vec<&(String, String, bool)> = group
                .options
                .values()
                .filter(|(_, _, in_shop)| !in_shop)
                .collect();
            options.sort();
            let options: Vec<Value> = options
                .iter()
                .map(|(id, name, _)| json!({"id": id, "name": name}))
                .collect();
            if group.in_shop {
                if !options.is_empty() {
                    out.push((lower.clone(), json!({"id": group.id, "options": options})));
                }
            } else {
                out.push((
                    lower.clone(),
                    json!({
                        "id": group.id, "name": group.name, "displayType": "text",
                        "sortingType": "alphanumeric", "filterable": true, "options": options,
                    }),
                ));
            }
        }
        out
    }

    /// Marks a group and its options as in the shop (its creating sync succeeded).
    pub fn mark_created(&mut self, lower: &str) {
        if let Some(group) = self.groups.get_mut(lower) {
            group.in_shop = true;
            for option in group.options.values_mut() {
                option.2 = true;
            }
        }
    }

    /// Forgets what of a group was not created (its creating sync failed).
    pub fn forget_pending(&mut self, lower: &str) {
        if self.groups.get(lower).is_some_and(|g| !g.in_shop) {
            self.groups.remove(lower);
        } else if let Some(group) = self.groups.get_mut(lower) {
            group.options.retain(|_, o| o.2);
        }
    }
}

/// The reference data read so far.
#[derive(Debug, Default)]
pub struct Shop {
    taxes: Option<Vec<(Decimal, String)>>,
    currencies: Option<Vec<Currency>>,
    channels: Option<Vec<Channel>>,
    categories: Option<Categories>,
    root: Option<String>,
    language: Option<Option<String>>,
    pub groups: Groups,
}

/// Reads every row of a small entity, page by page.
pub fn read_all(client: &Client, entity: &str, body: Value, what: &str) -> Result<Vec<Value>> {
    client.search_all(
        &format!("/search/{}", entity.replace('_', "-")),
        &body,
        what,
        None,
        None,
    )
}

impl Shop {
    /// Taxes as (rate, id).
    pub fn taxes(&mut self, client: &Client) -> Result<&mut Vec<(Decimal, String)>> {
        if self.taxes.is_none() {
            let rows = read_all(
                client,
                "tax",
                json!({"includes": {"tax": ["id", "taxRate", "name"]}}),
                "reading the tax rates",
            )?;
            let taxes = rows
                .iter()
                .filter_map(|row| Some((money::json_decimal(row.get("taxRate")?)?, id_of(row)?)))
                .collect();
            self.taxes = Some(taxes);
        }
        Ok(self.taxes.get_or_insert_with(Vec::new))
    }

    /// The id of the tax with `rate`; created when missing and allowed.
    pub fn tax_id(&mut self, client: &Client, config: &Config, rate: Decimal) -> Result<String> {
        let settings = sync_settings(client.version()?, config);
        let taxes = self.taxes(client)?;
        if let Some((_, id)) = taxes.iter().find(|(r, _)| r.same_value(rate)) {
            return Ok(id.clone());
        }
        let label = rate.normalize().to_string();
        if config.tax_missing == TaxMissing::Fail {
            return Err(ConnectorError::rejected(format!(
                "Shopware has no tax rate of {label} %: create it in Settings → Tax, or set \
                 tax_missing = create"
            ))
            .with_field("prices"));
        }
        let id = ids::tax(&label);
        let rate_json = money::decimal_json(rate).ok_or_else(|| {
            ConnectorError::rejected(format!("tax rate {label} is not a number Shopware takes"))
                .with_field("prices")
        })?;
        let payload =
            json!({"id": id, "taxRate": rate_json, "name": format!("{label} %"), "position": 1});
        let what = format!("creating the tax rate {label} %");
        let fates = sync::upsert(client, &settings, "tax", &[payload], &what);
        if let Some(error) = fates.first().and_then(|fate| sync::fate_error(fate, &what)) {
            return Err(error.with_field("prices"));
        }
        log::info("Created a tax rate in Shopware.", &[("rate", &label)]);
        taxes.push((rate, id.clone()));
        Ok(id)
    }

    pub fn currencies(&mut self, client: &Client) -> Result<&[Currency]> {
        if self.currencies.is_none() {
            let rows = read_all(
                client,
                "currency",
                json!({"includes": {"currency": ["id", "isoCode", "isSystemDefault"]}}),
                "reading the currencies",
            )?;
            let currencies = rows
                .iter()
                .filter_map(|row| {
                    let id = id_of(row)?;
                    Some(Currency {
                        system_default: row.get("isSystemDefault").and_then(Value::as_bool)
                            == Some(true)
                            || id == DEFAULT_CURRENCY_ID,
                        iso: row.get("isoCode")?.as_str()?.to_ascii_uppercase(),
                        id,
                    })
                })
                .collect();
            self.currencies = Some(currencies);
        }
        Ok(self.currencies.as_deref().unwrap_or(&[]))
    }

    /// The currency with this ISO code.
    pub fn currency(&mut self, client: &Client, iso: &str) -> Result<Option<Currency>> {
        let iso = iso.to_ascii_uppercase();
        Ok(self
            .currencies(client)?
            .iter()
            .find(|c| c.iso == iso)
            .cloned())
    }

    /// The ISO code of a currency id.
    pub fn currency_iso(&mut self, client: &Client, id: &str) -> Result<Option<String>> {
        Ok(self
            .currencies(client)?
            .iter()
            .find(|c| c.id == id)
            .map(|c| c.iso.clone()))
    }

    /// Checks that the shop's default currency is the configured one.
    pub fn check_default_currency(&mut self, client: &Client, config: &Config) -> Result<()> {
        let currencies = self.currencies(client)?;
        match currencies.iter().find(|c| c.system_default) {
            Some(c) if c.iso == config.default_currency => Ok(()),
            Some(c) => Err(ConnectorError::config(
                "default_currency",
                format!(
                    "the shop's default currency is {}, not {}: set default_currency = {}",
                    c.iso, config.default_currency, c.iso
                ),
            )),
            None => Err(ConnectorError::protocol(
                "the shop has no system default currency",
            )),
        }
    }

    /// The configured sales channels (all storefront and headless ones when none is named).
    pub fn channels(&mut self, client: &Client, config: &Config) -> Result<&[Channel]> {
        if self.channels.is_none() {
            let rows = read_all(
                client,
                "sales_channel",
                json!({"includes": {"sales_channel": ["id", "name", "typeId", "active", "navigationCategoryId", "translated"]}}),
                "reading the sales channels",
            )?;
            self.channels = Some(pick_channels(&rows, &config.sales_channels)?);
        }
        Ok(self.channels.as_deref().unwrap_or(&[]))
    }

    /// The category tree, read once.
    pub fn categories(&mut self, client: &Client) -> Result<&mut Categories> {
        if self.categories.is_none() {
            let rows = read_all(
                client,
                "category",
                json!({"includes": {"category": ["id", "parentId", "name", "translated"]}}),
                "reading the categories",
            )?;
            self.categories = Some(Categories::from_rows(&rows));
        }
        Ok(self.categories.get_or_insert_with(Categories::default))
    }

    /// The category paths start below this one.
    pub fn category_root(&mut self, client: &Client, config: &Config) -> Result<String> {
        if let Some(root) = &self.root {
            return Ok(root.clone());
        }
        let root = match &config.category_root {
            Some(value) if ids::is_id(value) => value.clone(),
            Some(name) => self.categories(client)?.find_by_name(name).ok_or_else(|| {
                ConnectorError::config(
                    "category_root",
                    format!("Shopware has no category named {name:?}"),
                )
            })?,
            None => self
                .channels(client, config)?
                .iter()
                .find_map(|c| c.navigation_category.clone())
                .ok_or_else(|| {
                    ConnectorError::config(
                        "category_root",
                        "no sales channel has a navigation category: set category_root",
                    )
                })?,
        };
        self.root = Some(root.clone());
        Ok(root)
    }

    /// The language to write translated fields in, if not the system language.
    pub fn language(&mut self, client: &Client, config: &Config) -> Result<Option<String>> {
        if let Some(language) = &self.language {
            return Ok(language.clone());
        }
        let language = match &config.language {
            None => None,
            Some(value) if ids::is_id(value) => Some(value.clone()),
            Some(code) => {
                let answer = client.json(Call::search(
                    "/search/language",
                    &json!({"limit": 1, "filter": [criteria::equals("locale.code", code)],
                        "includes": {"language": ["id"]}}),
                    "finding the language",
                ))?;
                let id = answer
                    .pointer("/data/0/id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        ConnectorError::config(
                            "language",
                            format!("Shopware has no language with the locale {code:?}"),
                        )
                    })?;
                Some(id.to_owned())
            }
        }
        .filter(|id| id != SYSTEM_LANGUAGE_ID);
        self.language = Some(language.clone());
        Ok(language)
    }

    /// Makes sure every `group: option` pair exists; creates the missing ones in one sync.
    /// The groups that could not be created, by lower-case name, with the reason.
    pub fn ensure_options(
        &mut self,
        client: &Client,
        config: &Config,
        pairs: &[(String, String)],
    ) -> Result<HashMap<String, ConnectorError>> {
        let unknown = self.groups.unknown(pairs.iter().map(|(g, _)| g.as_str()));
        if !unknown.is_empty() {
            let rows = read_all(
                client,
                "property_group",
                json!({
                    "filter": [criteria::equals_any("name", &unknown)],
                    "associations": {"options": {}},
                    "includes": {
                        "property_group": ["id", "name", "translated", "options"],
                        "property_group_option": ["id", "name", "translated"],
                    },
                }),
                "reading the property groups",
            )?;
            self.groups.add_found(&unknown, &rows);
        }
        for (group, option) in pairs {
            self.groups.option_id(group, option);
        }
        let pending = self.groups.pending();
        let mut failed = HashMap::new();
        if pending.is_empty() {
            return Ok(failed);
        }
        let settings = sync_settings(client.version()?, config);
        let payloads: Vec<Value> = pending.iter().map(|(_, p)| p.clone()).collect();
        let what = "creating property groups and options";
        let fates = sync::upsert(client, &settings, "property_group", &payloads, what);
        for ((group, _), fate) in pending.iter().zip(&fates) {
            match sync::fate_error(fate, what) {
                None => self.groups.mark_created(group),
                Some(error) => {
                    self.groups.forget_pending(group);
                    failed.insert(group.clone(), error);
                }
            }
        }
        log::info(
            "Created property groups or options in Shopware.",
            &[
                ("groups", &(pending.len() - failed.len()).to_string()),
                ("failed", &failed.len().to_string()),
            ],
        );
        Ok(failed)
    }

    /// Creates categories (parents before children, in the body's order). The ones that
    /// could not be created, by id, with the reason (a child of a failed one names it).
    pub fn create_categories(
        &mut self,
        client: &Client,
        config: &Config,
        new: &[NewCategory],
    ) -> Result<HashMap<String, ConnectorError>> {
        let mut failed: HashMap<String, ConnectorError> = HashMap::new();
        if new.is_empty() {
            return Ok(failed);
        }
        let settings = sync_settings(client.version()?, config);
        let payloads: Vec<Value> = new.iter().map(category_payload).collect();
        let what = "creating categories";
        let fates = sync::upsert(client, &settings, "category", &payloads, what);
        for (category, fate) in new.iter().zip(&fates) {
            let error = match failed.get(&category.parent_id) {
                Some(parent) => Some(
                    ConnectorError::new(
                        parent.kind,
                        format!(
                            "its parent category could not be created ({})",
                            parent.message
                        ),
                    )
                    .retryable(parent.retryable),
                ),
                None => sync::fate_error(fate, &format!("creating category {:?}", category.name)),
            };
            if let Some(error) = error {
                failed.insert(category.id.clone(), error);
            }
        }
        if !failed.is_empty() {
            // The index holds them already; read the tree again next time.
            self.categories = None;
        }
        log::info(
            "Created categories in Shopware.",
            &[
                ("categories", &(new.len() - failed.len()).to_string()),
                ("failed", &failed.len().to_string()),
            ],
        );
        Ok(failed)
    }
}

/// The sales channels named in the config (by id or name), or every storefront and headless
/// one when none is named.
pub fn pick_channels(rows: &[Value], wanted: &[String]) -> Result<Vec<Channel>> {
    let all: Vec<(Channel, String, bool)> = rows
        .iter()
        .filter_map(|row| {
            Some((
                Channel {
                    id: id_of(row)?,
                    name: name_of(row),
                    navigation_category: row
                        .get("navigationCategoryId")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                },
                row.get("typeId")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                row.get("active").and_then(Value::as_bool).unwrap_or(true),
            ))
        })
        .collect();
    if wanted.is_empty() {
        return Ok(all
            .into_iter()
            .filter(|(_, kind, active)| {
                *active && (kind == STOREFRONT_TYPE || kind == HEADLESS_TYPE)
            })
            .map(|(c, _, _)| c)
            .collect());
    }
    let mut out = Vec::new();
    for name in wanted {
        let found = all
            .iter()
            .find(|(c, _, _)| c.id == *name || c.name.eq_ignore_ascii_case(name.trim()));
        match found {
            Some((channel, _, _)) => out.push(channel.clone()),
            None => {
                let names: Vec<&str> = all.iter().map(|(c, _, _)| c.name.as_str()).collect();
                return Err(ConnectorError::config(
                    "sales_channels",
                    format!(
                        "Shopware has no sales channel {name:?}; it has: {}",
                        names.join(", ")
                    ),
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn category_paths_are_matched_by_name_and_created_below_the_root() {
        let rows = vec![
            json!({"id": "root", "parentId": null, "name": "Home"}),
            json!({"id": "clothing", "parentId": "root", "name": "Clothing"}),
        ];
        let mut tree = Categories::from_rows(&rows);
        let mut new = Vec::new();
        let shirts = tree.resolve("root", &["clothing".into(), "Shirts".into()], &mut new);
        assert_eq!(new.len(), 1);
        assert_eq!(new[0].parent_id, "clothing");
        assert_eq!(new[0].name, "Shirts");
        assert_eq!(shirts, ids::category("clothing", "shirts"));
        let again = tree.resolve("root", &["Clothing".into(), "SHIRTS".into()], &mut new);
        assert_eq!(again, shirts);
        assert_eq!(new.len(), 1, "created once");
        assert_eq!(tree.find_by_name("home").as_deref(), Some("root"));
        assert_eq!(category_payload(&new[0])["type"], "page");
    }

    #[test]
    fn options_are_found_by_name_or_created_on_demand() {
        let mut groups = Groups::default();
        assert_eq!(
            groups.unknown(["Size", "size", "Color"].into_iter()),
            vec!["Size", "Color"]
        );
        groups.add_found(
            &["Size".into(), "Color".into()],
            &[json!({"id": "g1", "name": "Size", "options": [{"id": "o1", "name": "M"}]})],
        );
        assert!(groups.unknown(["size"].into_iter()).is_empty());
        assert_eq!(groups.option_id("size", "m"), "o1");
        let l = groups.option_id("Size", "L");
        let red = groups.option_id("Color", "Red");
        let pending = groups.pending();
        assert_eq!(pending.len(), 2);
        let pending: Vec<Value> = pending.into_iter().map(|(_, p)| p).collect();
        let existing = pending.iter().find(|p| p["id"] == "g1").expect("g1");
        assert!(
            existing.get("name").is_none(),
            "an existing group is not renamed"
        );
        assert_eq!(existing["options"][0]["id"], l);
        let color = pending.iter().find(|p| p["id"] != "g1").expect("color");
        assert_eq!(color["name"], "Color");
        assert_eq!(color["options"][0]["id"], red);
        groups.mark_created("size");
        groups.mark_created("color");
        assert!(groups.pending().is_empty());
    }

    #[test]
    fn sales_channels_by_name_or_all_storefronts() {
        let rows = vec![
            json!({"id": "a", "name": "Storefront", "typeId": STOREFRONT_TYPE, "active": true, "navigationCategoryId": "root"}),
            json!({"id": "b", "name": null, "translated": {"name": "Headless"}, "typeId": HEADLESS_TYPE, "active": true}),
            json!({"id": "c", "name": "Comparison", "typeId": "ed535e5722134ac1aa6524f73e26881b", "active": true}),
        ];
        let all = pick_channels(&rows, &[]).expect("all");
        assert_eq!(
            all.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
            vec!["a", "b"]
        );
        let named = pick_channels(&rows, &["headless".into()]).expect("named");
        assert_eq!(named[0].id, "b");
        let error = pick_channels(&rows, &["Outlet".into()]).expect_err("unknown");
        assert_eq!(error.field.as_deref(), Some("sales_channels"));
        assert!(error.message.contains("Storefront"), "{}", error.message);
    }
}
