//! The shop's state behind the HTTP layer: tables, the loaded schema, number ranges, the
//! state machines and the stock rules of the selected version.

use std::collections::HashMap;
use std::sync::Arc;

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::Value;

use crate::Version;
use crate::entities::{self, ENTITIES, Kind, OnDelete};
use crate::ids::Id;
use crate::model::{FieldId, Key, Record, Store, Table, Val};
use crate::schema::{EntityMeta, Reference};
use crate::state::Machines;

/// The system default currency of a default install (not always EUR in real shops).
pub const DEFAULT_CURRENCY: &str = "b7d2554b0ce847cd82f3ac9bd1c0dfca";
/// The system language.
pub const SYSTEM_LANGUAGE: &str = "2fbb5fe2e29a4d70aa5854ce7ce3e20b";
/// The `versionId` of live rows.
pub const LIVE_VERSION: &str = "0fa91ce3e96a4bc2be4bd9ce752c3425";
pub const SALES_CHANNEL_TYPE_STOREFRONT: &str = "8a243080f92e4c719546314b577cf82b";

pub fn fixed(id: &str) -> Id {
    Id::parse(id).unwrap_or_default()
}

/// Product fields a variant does not inherit from its parent.
const NOT_INHERITED: &[&str] = &[
    "id",
    "versionId",
    "parentId",
    "parentVersionId",
    "productNumber",
    "stock",
    "availableStock",
    "available",
    "autoIncrement",
    "childCount",
    "createdAt",
    "updatedAt",
    "optionIds",
    "displayGroup",
    "variation",
    "sales",
    "states",
    "options",
    "children",
    "parent",
    "configuratorSettings",
];

pub fn inheritable(field: &str) -> bool {
    !NOT_INHERITED.contains(&field)
}

/// Who points at an entity: (holder entity, foreign key field, what a delete does).
pub type Referrers = Vec<Vec<(usize, &'static str, OnDelete)>>;

pub struct Shop {
    pub version: Version,
    pub store: Store,
    pub reference: Option<Arc<Reference>>,
    pub machines: Machines,
    pub rng: StdRng,
    pub next_order_number: u64,
    pub next_customer_number: u64,
    pub next_auto_increment: i64,
    /// Up to 6.5: quantity of each product in orders that are neither completed nor cancelled.
    pub open_quantity: HashMap<Id, i64>,
    pub referrers: Referrers,
    /// The `disable-indexing` header of the request being handled.
    pub indexing_disabled: bool,
    /// Privileges (`product_category:delete`) the integration's role lacks.
    pub revoked: Vec<String>,
    /// While seeding: a fixed clock (milliseconds) that advances one second per read, so
    /// seeded data is the same for the same seed.
    pub fixed_clock: Option<i64>,
}

impl Shop {
    pub fn new(
        version: Version,
        seed: u64,
        reference: Option<Arc<Reference>>,
        machines: Machines,
    ) -> Shop {
        let mut store = Store::default();
        for def in ENTITIES {
            let mut indexed: Vec<FieldId> = def.indexed.iter().map(|f| store.field(f)).collect();
            if let Some((local, remote)) = def.mapping {
                indexed.push(store.field(local));
                indexed.push(store.field(remote));
            }
            store.tables.push(Table::with_indexes(&indexed));
        }
        Shop {
            version,
            store,
            reference,
            machines,
            rng: StdRng::seed_from_u64(seed),
            next_order_number: 10000,
            next_customer_number: 10000,
            next_auto_increment: 1,
            open_quantity: HashMap::new(),
            referrers: referrers(),
            indexing_disabled: false,
            revoked: Vec::new(),
            fixed_clock: None,
        }
    }

    pub fn table(&self, entity: usize) -> &Table {
        &self.store.tables[entity]
    }

    pub fn meta(&self, entity: usize) -> Option<&EntityMeta> {
        let reference = self.reference.as_ref()?;
        reference.entity(&entities::def(entity).schema_name())
    }

    /// A field of a row, by name.
    pub fn get<'a>(&self, record: &'a Record, field: &str) -> Option<&'a Val> {
        self.store.names.get(field).and_then(|f| record.get(f))
    }

    pub fn get_id(&self, record: &Record, field: &str) -> Option<Id> {
        self.get(record, field).and_then(Val::as_id)
    }

    pub fn set(&mut self, record: &mut Record, field: &str, value: Val) {
        let f = self.store.field(field);
        record.set(f, value);
    }

    /// Rows of `entity` whose `field` holds `id`, through the index when there is one.
    pub fn referencing(&self, entity: usize, field: &str, id: Id) -> Vec<Id> {
        let table = self.table(entity);
        let Some(f) = self.store.names.get(field) else {
            return Vec::new();
        };
        if let Some(slots) = table.lookup(f, &Key::Id(id)) {
            return slots
                .iter()
                .filter_map(|slot| table.row(*slot).map(|(id, _)| id))
                .collect();
        }
        table
            .iter()
            .filter(|(_, _, record)| record.get(f).and_then(Val::as_id) == Some(id))
            .map(|(_, id, _)| id)
            .collect()
    }

    /// The row of `entity` whose unique indexed `field` is `value`.
    pub fn find_by(&self, entity: usize, field: &str, value: &str) -> Option<Id> {
        let f = self.store.names.get(field)?;
        let table = self.table(entity);
        let key = Val::from_json(&Value::String(value.to_string())).key()?;
        match table.lookup(f, &key) {
            Some(slots) => slots.first().and_then(|s| table.row(*s)).map(|(id, _)| id),
            None => table
                .iter()
                .find(|(_, _, r)| r.get(f).and_then(Val::key) == Some(key.clone()))
                .map(|(_, id, _)| id),
        }
    }

    pub fn entity_index(name: &str) -> usize {
        entities::index_of(name).unwrap_or(0)
    }

    /// Recomputes a product's `availableStock` and `available` from its stock, the version's
    /// stock rule and (up to 6.5) the quantity in open orders.
    pub fn derive_stock(&mut self, id: Id, record: &mut Record) {
        let stock = self.get(record, "stock").and_then(Val::as_i64);
        let Some(stock) = stock else { return };
        let available_stock = if self.version.realtime_stock() {
            stock
        } else {
            stock - self.open_quantity.get(&id).copied().unwrap_or(0)
        };
        self.set(record, "availableStock", Val::Int(available_stock));
        if self.indexing_disabled {
            return;
        }
        let parent = self
            .get_id(record, "parentId")
            .and_then(|p| self.table(0).get(p))
            .cloned();
        let inherited = |shop: &Shop, field: &str| -> Option<Val> {
            match shop.get(record, field) {
                Some(v) if !v.is_null() => Some(v.clone()),
                _ => parent.as_ref().and_then(|p| shop.get(p, field)).cloned(),
            }
        };
        let closeout = matches!(inherited(self, "isCloseout"), Some(Val::Bool(true)));
        let min_purchase = inherited(self, "minPurchase")
            .and_then(|v| v.as_i64())
            .unwrap_or(1);
        let available = !closeout || available_stock >= min_purchase;
        self.set(record, "available", Val::Bool(available));
    }

    /// Changes a product's stock by `delta` (the order and state-machine side of stock).
    pub fn adjust_stock(&mut self, product: Id, stock_delta: i64, open_delta: i64) {
        if open_delta != 0 {
            *self.open_quantity.entry(product).or_default() += open_delta;
        }
        let Some(mut record) = self.table(0).get(product).cloned() else {
            return;
        };
        if stock_delta != 0 {
            let stock = self
                .get(&record, "stock")
                .and_then(Val::as_i64)
                .unwrap_or(0);
            self.set(&mut record, "stock", Val::Int(stock + stock_delta));
        }
        self.derive_stock(product, &mut record);
        let now = self.now();
        self.set(&mut record, "updatedAt", Val::Str(now.into()));
        self.store.save(0, product, record);
    }

    /// The product lines of an order: (product id, quantity).
    pub fn order_products(&self, order: Id) -> Vec<(Id, i64)> {
        let items = Shop::entity_index("order_line_item");
        self.referencing(items, "orderId", order)
            .into_iter()
            .filter_map(|line| {
                let record = self.table(items).get(line)?;
                let product = self.get_id(record, "productId")?;
                if self
                    .get(record, "type")
                    .and_then(Val::as_str)
                    .is_some_and(|t| t != "product")
                {
                    return None;
                }
                let quantity = self
                    .get(record, "quantity")
                    .and_then(Val::as_i64)
                    .unwrap_or(0);
                Some((product, quantity))
            })
            .collect()
    }

    /// Stock effects of an order moving between states (API-NOTES §7): 6.6+ lowers `stock`
    /// on placement and gives it back on cancel; up to 6.5 open orders lower
    /// `availableStock` and completion lowers `stock`.
    pub fn order_state_changed(&mut self, order: Id, from: &str, to: &str) {
        let lines = self.order_products(order);
        for (product, quantity) in lines {
            if self.version.realtime_stock() {
                let was = from == "cancelled";
                let is = to == "cancelled";
                if !was && is {
                    self.adjust_stock(product, quantity, 0);
                } else if was && !is {
                    self.adjust_stock(product, -quantity, 0);
                }
            } else {
                let open = |s: &str| i64::from(s != "completed" && s != "cancelled");
                let done = |s: &str| i64::from(s == "completed");
                let open_delta = (open(to) - open(from)) * quantity;
                let stock_delta = (done(from) - done(to)) * quantity;
                self.adjust_stock(product, stock_delta, open_delta);
            }
        }
    }

    /// Stock effect of placing an order.
    pub fn order_placed(&mut self, order: Id) {
        for (product, quantity) in self.order_products(order) {
            if self.version.realtime_stock() {
                self.adjust_stock(product, -quantity, 0);
            } else {
                self.adjust_stock(product, 0, quantity);
            }
        }
    }

    /// The technical name of the state a row's `stateId` points at.
    pub fn state_name(&self, record: &Record) -> Option<String> {
        let states = Shop::entity_index("state_machine_state");
        let state = self.get_id(record, "stateId")?;
        let row = self.table(states).get(state)?;
        self.get(row, "technicalName")
            .and_then(Val::as_str)
            .map(str::to_string)
    }

    /// The id of the tax with this rate, if exactly one.
    pub fn tax_by_rate(&self, rate: f64) -> Option<Id> {
        let taxes = Shop::entity_index("tax");
        let matches: Vec<Id> = self
            .table(taxes)
            .iter()
            .filter(|(_, _, r)| self.get(r, "taxRate").and_then(Val::as_f64) == Some(rate))
            .map(|(_, id, _)| id)
            .collect();
        (matches.len() == 1).then(|| matches[0])
    }

    pub fn json_field(&self, record: &Record, field: &str) -> Value {
        self.get(record, field)
            .map(Val::to_json)
            .unwrap_or(Value::Null)
    }

    /// The time to stamp on a write.
    pub fn now(&mut self) -> String {
        match &mut self.fixed_clock {
            Some(millis) => {
                *millis += 1000;
                crate::ids::format_millis(*millis)
            }
            None => crate::ids::now_string(),
        }
    }

    pub fn random_id(&mut self) -> Id {
        Id::random(&mut self.rng)
    }
}

fn referrers() -> Referrers {
    let mut out: Referrers = vec![Vec::new(); ENTITIES.len()];
    for (holder, def) in ENTITIES.iter().enumerate() {
        for assoc in def.assocs {
            let Some(target) = entities::index_of(assoc.target) else {
                continue;
            };
            match assoc.kind {
                Kind::ManyToOne { fk } => {
                    let entry = (holder, fk, entities::on_delete(def.name, fk));
                    if !out[target].contains(&entry) {
                        out[target].push(entry);
                    }
                }
                Kind::ManyToMany {
                    mapping,
                    local,
                    remote,
                } => {
                    let Some(m) = entities::index_of(mapping) else {
                        continue;
                    };
                    for (entity, fk) in [(holder, local), (target, remote)] {
                        let entry = (m, fk, OnDelete::Cascade);
                        if !out[entity].contains(&entry) {
                            out[entity].push(entry);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    out
}
