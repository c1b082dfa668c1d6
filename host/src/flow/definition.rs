//! What a flow is: a source stream, a target stream, a schedule, and the datamapper between
//! them. The defaults ship in `flows/*.toml`; a user's `koppel.toml` enables them and
//! overrides any part.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::HumanDuration;
use crate::mapping::{Filter, MapRule, Mapper};
use crate::runtime::bindings::{NamedValue, Value, WriteOptions};

/// One end of a flow: a connection (by its name in `koppel.toml`) and one of its streams.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    pub connection: String,
    pub stream: String,
}

/// How records reach the target.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Delivery {
    /// Written when new or changed (content hash), as often as they change: products, stock.
    #[default]
    Upsert,
    /// Written exactly once and never again: orders. A ledger entry is made before the
    /// write; after a crash, the target is asked (`lookup`) before writing again.
    Once,
}

/// How several source records of one key become one (stock of several branches).
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Combine {
    /// Stock levels of the same key in a page are added up (on hand, reserved, available).
    SumByKey,
}

/// A flow, complete.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FlowDef {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub source: Endpoint,
    pub target: Endpoint,
    /// `30s`, `1m`, `15m`, `1h`.
    #[serde(default = "default_interval")]
    pub interval: HumanDuration,
    /// Ask the source connection this often whether the source stream has something new
    /// (`1s`), and run as soon as it has: near real time at the cost of one small read per
    /// interval. The source's connector must offer a `changes` stream (docs/flows.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch: Option<HumanDuration>,
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    #[serde(default = "default_batch_size")]
    pub batch_size: u32,
    /// Batches written at once, each in a session of its own (1: one after the other, and
    /// the next page read only after the last is committed).
    #[serde(default = "default_write_concurrency")]
    pub write_concurrency: u32,
    #[serde(default)]
    pub delivery: Delivery,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub combine: Option<Combine>,
    /// Target fields set on create and never overwritten (the shop may edit them).
    #[serde(default)]
    pub create_only: Vec<String>,
    /// Passed to the target connector with every write (its manual names them).
    #[serde(default)]
    pub settings: toml::Table,
    #[serde(default)]
    pub filter: Vec<Filter>,
    #[serde(default)]
    pub map: Vec<MapRule>,
    /// How many times a failed record is retried by later runs before it waits for a person.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Alert when the flow has not succeeded for this long (default: 4 intervals, at least 15m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale_after: Option<HumanDuration>,
}

fn default_interval() -> HumanDuration {
    HumanDuration(Duration::from_secs(15 * 60))
}
fn default_page_size() -> u32 {
    500
}
fn default_batch_size() -> u32 {
    100
}
fn default_write_concurrency() -> u32 {
    2
}
fn default_max_attempts() -> u32 {
    10
}

/// The flows that ship with koppel: (name, TOML).
pub const DEFAULT_FLOWS: &[(&str, &str)] = &[
    ("products", include_str!("../../../flows/products.toml")),
    ("stock", include_str!("../../../flows/stock.toml")),
    ("orders", include_str!("../../../flows/orders.toml")),
    (
        "order-status",
        include_str!("../../../flows/order-status.toml"),
    ),
];

/// A shipped flow by name.
pub fn default_flow(name: &str) -> Option<Result<FlowDef, String>> {
    let (_, text) = DEFAULT_FLOWS.iter().find(|(n, _)| *n == name)?;
    Some(
        toml::from_str::<FlowDef>(text)
            .map(|mut flow| {
                flow.name = name.to_owned();
                flow
            })
            .map_err(|error| format!("flows/{name}.toml: {error}")),
    )
}

fn toml_to_value(value: &toml::Value) -> Value {
    match value {
        toml::Value::String(s) => Value::Text(s.clone()),
        toml::Value::Integer(i) => Value::Integer(*i),
        toml::Value::Boolean(b) => Value::Boolean(*b),
        toml::Value::Float(f) => Value::Text(f.to_string()),
        other => Value::Json(serde_json::to_string(other).unwrap_or_default()),
    }
}

impl FlowDef {
    /// How often the flow runs on its own.
    pub fn interval(&self) -> Duration {
        self.interval.get()
    }

    /// How often the change watch asks the source, if the flow is watched.
    pub fn watch(&self) -> Option<Duration> {
        self.watch.map(HumanDuration::get)
    }

    /// How long without success before the flow counts as stale (default: 4 intervals, at
    /// least 15 minutes).
    pub fn stale_after(&self) -> Duration {
        match self.stale_after {
            Some(after) => after.get(),
            None => (self.interval() * 4).max(Duration::from_secs(15 * 60)),
        }
    }

    /// Checks everything that can be checked without the connectors.
    pub fn check(&self) -> Result<(), String> {
        if self.page_size == 0 || self.batch_size == 0 || self.write_concurrency == 0 {
            return Err("page_size, batch_size and write_concurrency must be at least 1".into());
        }
        self.mapper().map(|_| ())
    }

    pub fn mapper(&self) -> Result<Mapper, String> {
        Mapper::new(self.filter.clone(), self.map.clone())
    }

    /// The options every write of this flow carries.
    pub fn write_options(&self) -> WriteOptions {
        WriteOptions {
            create_only: self.create_only.clone(),
            settings: self
                .settings
                .iter()
                .map(|(name, value)| NamedValue {
                    name: name.clone(),
                    value: toml_to_value(value),
                })
                .collect(),
        }
    }
}

/// A user's changes to a flow, from `koppel.toml`: everything optional.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FlowOverride {
    pub enabled: Option<bool>,
    pub description: Option<String>,
    pub source: Option<Endpoint>,
    pub target: Option<Endpoint>,
    pub interval: Option<HumanDuration>,
    pub watch: Option<HumanDuration>,
    pub page_size: Option<u32>,
    pub batch_size: Option<u32>,
    pub write_concurrency: Option<u32>,
    pub delivery: Option<Delivery>,
    pub combine: Option<Combine>,
    pub create_only: Option<Vec<String>>,
    /// Merged key by key into the flow's settings.
    #[serde(default)]
    pub settings: toml::Table,
    /// Added to the flow's filters (all must pass).
    #[serde(default)]
    pub filter: Vec<Filter>,
    /// Added after the flow's rules (a later rule for the same field wins).
    #[serde(default)]
    pub map: Vec<MapRule>,
    /// Drop the shipped filters and rules and use only these.
    #[serde(default)]
    pub replace_defaults: bool,
    pub max_attempts: Option<u32>,
    pub stale_after: Option<HumanDuration>,
}

impl FlowOverride {
    /// Applies the changes to `base`.
    pub fn apply(&self, mut base: FlowDef) -> FlowDef {
        if let Some(v) = &self.description {
            base.description = v.clone();
        }
        if let Some(v) = &self.source {
            base.source = v.clone();
        }
        if let Some(v) = &self.target {
            base.target = v.clone();
        }
        if let Some(v) = self.interval {
            base.interval = v;
        }
        if let Some(v) = self.watch {
            base.watch = Some(v);
        }
        if let Some(v) = self.page_size {
            base.page_size = v;
        }
        if let Some(v) = self.batch_size {
            base.batch_size = v;
        }
        if let Some(v) = self.write_concurrency {
            base.write_concurrency = v;
        }
        if let Some(v) = self.delivery {
            base.delivery = v;
        }
        if let Some(v) = self.combine {
            base.combine = Some(v);
        }
        if let Some(v) = &self.create_only {
            base.create_only = v.clone();
        }
        for (key, value) in &self.settings {
            base.settings.insert(key.clone(), value.clone());
        }
        if self.replace_defaults {
            base.filter.clear();
            base.map.clear();
        }
        base.filter.extend(self.filter.iter().cloned());
        base.map.extend(self.map.iter().cloned());
        if let Some(v) = self.max_attempts {
            base.max_attempts = v;
        }
        if let Some(v) = self.stale_after {
            base.stale_after = Some(v);
        }
        base
    }

    /// A flow defined entirely in `koppel.toml` (for connectors koppel does not ship flows for).
    pub fn into_flow(&self, name: &str) -> Result<FlowDef, String> {
        let (Some(source), Some(target)) = (&self.source, &self.target) else {
            return Err(format!(
                "flow `{name}` is not one koppel ships ({}); a new flow needs source and target",
                DEFAULT_FLOWS
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        };
        let base = FlowDef {
            name: name.to_owned(),
            description: String::new(),
            source: source.clone(),
            target: target.clone(),
            interval: default_interval(),
            watch: None,
            page_size: default_page_size(),
            batch_size: default_batch_size(),
            write_concurrency: default_write_concurrency(),
            delivery: Delivery::default(),
            combine: None,
            create_only: Vec::new(),
            settings: toml::Table::new(),
            filter: Vec::new(),
            map: Vec::new(),
            max_attempts: default_max_attempts(),
            stale_after: None,
        };
        Ok(self.apply(base))
    }
}

/// Settings of a flow as plain strings (for summaries).
pub fn settings_text(settings: &toml::Table) -> BTreeMap<String, String> {
    settings
        .iter()
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_flows_are_valid() {
        for (name, _) in DEFAULT_FLOWS {
            let flow = default_flow(name).expect("listed").expect("valid TOML");
            flow.check()
                .unwrap_or_else(|e| panic!("flows/{name}.toml: {e}"));
            assert_eq!(flow.name, *name);
        }
    }

    #[test]
    fn overrides_change_only_what_they_name() {
        let base = default_flow("products").expect("listed").expect("valid");
        let change: FlowOverride = toml::from_str(
            "interval = \"5m\"\ncreate_only = [\"description\"]\n[settings]\nextra_key = 1\n[[filter]]\nfield = \"active\"\nequals = true\n",
        )
        .expect("valid");
        let flow = change.apply(base.clone());
        assert_eq!(flow.interval.to_string(), "5m");
        assert_eq!(flow.create_only, vec!["description".to_owned()]);
        assert_eq!(flow.filter.len(), base.filter.len() + 1);
        assert_eq!(flow.source, base.source);
        assert!(flow.settings.contains_key("extra_key"));
        let bad: Result<FlowOverride, _> = toml::from_str("intervall = \"5m\"");
        assert!(
            bad.expect_err("unknown key")
                .to_string()
                .contains("unknown field `intervall`")
        );
    }
}
