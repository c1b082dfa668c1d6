//! Compact in-memory tables: one per entity, rows as small sorted field lists with interned
//! field names, ids as 16 bytes, an id index and secondary indexes on lookup and foreign-key
//! fields, and an undo log so a failed sync leaves nothing behind.

use std::cmp::Ordering;
use std::collections::HashMap;

use serde_json::Value;

use crate::ids::Id;

/// A field name, interned.
pub type FieldId = u16;

/// One stored value. Objects and arrays are kept as compact JSON text: they are read far
/// less often than they are stored.
#[derive(Clone, Debug, PartialEq)]
pub enum Val {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Id(Id),
    Str(Box<str>),
    Json(Box<str>),
}

impl Val {
    pub fn from_json(value: &Value) -> Val {
        match value {
            Value::Null => Val::Null,
            Value::Bool(b) => Val::Bool(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => Val::Int(i),
                None => Val::Float(n.as_f64().unwrap_or_default()),
            },
            Value::String(s) => match Id::parse(s) {
                Some(id) => Val::Id(id),
                None => Val::Str(s.as_str().into()),
            },
            Value::Array(_) | Value::Object(_) => Val::Json(value.to_string().into()),
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            Val::Null => Value::Null,
            Val::Bool(b) => Value::Bool(*b),
            Val::Int(i) => Value::from(*i),
            Val::Float(f) => serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            Val::Id(id) => Value::String(id.hex()),
            Val::Str(s) => Value::String(s.to_string()),
            Val::Json(text) => serde_json::from_str(text).unwrap_or(Value::Null),
        }
    }

    pub fn as_id(&self) -> Option<Id> {
        match self {
            Val::Id(id) => Some(*id),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Val::Int(i) => Some(*i),
            Val::Float(f) => Some(*f as i64),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Val::Int(i) => Some(*i as f64),
            Val::Float(f) => Some(*f),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Val::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Val::Null)
    }

    /// The text a `contains`/`prefix`/`suffix` filter looks at.
    pub fn text(&self) -> Option<String> {
        match self {
            Val::Null => None,
            Val::Bool(b) => Some(if *b { "1" } else { "0" }.to_string()),
            Val::Int(i) => Some(i.to_string()),
            Val::Float(f) => Some(f.to_string()),
            Val::Id(id) => Some(id.hex()),
            Val::Str(s) | Val::Json(s) => Some(s.to_string()),
        }
    }

    /// SQL-like ordering: NULL first, numbers by value, text by bytes.
    pub fn compare(&self, other: &Val) -> Ordering {
        match (self, other) {
            (Val::Null, Val::Null) => Ordering::Equal,
            (Val::Null, _) => Ordering::Less,
            (_, Val::Null) => Ordering::Greater,
            (Val::Str(x), Val::Str(y)) | (Val::Json(x), Val::Json(y)) => {
                x.as_bytes().cmp(y.as_bytes())
            }
            (Val::Id(x), Val::Id(y)) => x.cmp(y),
            (Val::Bool(x), Val::Bool(y)) => x.cmp(y),
            (a, b) => match (a.as_f64(), b.as_f64()) {
                (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
                _ => a.text().cmp(&b.text()),
            },
        }
    }

    /// The key a secondary index files this value under; NULL and floats are not indexed.
    pub fn key(&self) -> Option<Key> {
        match self {
            Val::Id(id) => Some(Key::Id(*id)),
            Val::Str(s) => Some(Key::Str(s.clone())),
            Val::Int(i) => Some(Key::Int(*i)),
            Val::Bool(b) => Some(Key::Int(i64::from(*b))),
            _ => None,
        }
    }
}

/// An index key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    Id(Id),
    Str(Box<str>),
    Int(i64),
}

impl Key {
    /// The key a JSON filter value looks up.
    pub fn from_json(value: &Value) -> Option<Key> {
        Val::from_json(value).key()
    }
}

/// One row: its fields, sorted by field id. Absent fields read as NULL.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Record {
    fields: Vec<(FieldId, Val)>,
}

impl Record {
    pub fn get(&self, field: FieldId) -> Option<&Val> {
        self.fields
            .binary_search_by_key(&field, |(f, _)| *f)
            .ok()
            .map(|i| &self.fields[i].1)
    }

    pub fn set(&mut self, field: FieldId, value: Val) {
        match self.fields.binary_search_by_key(&field, |(f, _)| *f) {
            Ok(i) => self.fields[i].1 = value,
            Err(i) => self.fields.insert(i, (field, value)),
        }
    }

    pub fn fields(&self) -> impl Iterator<Item = (FieldId, &Val)> {
        self.fields.iter().map(|(f, v)| (*f, v))
    }

    pub fn shrink(&mut self) {
        self.fields.shrink_to_fit();
    }
}

/// Field names, interned once for all tables.
#[derive(Debug, Default)]
pub struct Interner {
    names: Vec<Box<str>>,
    ids: HashMap<Box<str>, FieldId>,
}

impl Interner {
    pub fn intern(&mut self, name: &str) -> FieldId {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        let id = self.names.len() as FieldId;
        self.names.push(name.into());
        self.ids.insert(name.into(), id);
        id
    }

    pub fn get(&self, name: &str) -> Option<FieldId> {
        self.ids.get(name).copied()
    }

    pub fn name(&self, id: FieldId) -> &str {
        self.names.get(id as usize).map(|s| &**s).unwrap_or("")
    }
}

/// One entity's rows.
#[derive(Debug, Default)]
pub struct Table {
    /// Rows in insertion order; a deleted row leaves `None` so the order of the others holds.
    rows: Vec<Option<(Id, Record)>>,
    by_id: HashMap<Id, u32>,
    /// Secondary indexes: field → value → rows.
    indexes: Vec<(FieldId, HashMap<Key, Vec<u32>>)>,
    live: usize,
}

impl Table {
    pub fn with_indexes(fields: &[FieldId]) -> Table {
        Table {
            indexes: fields.iter().map(|f| (*f, HashMap::new())).collect(),
            ..Table::default()
        }
    }

    pub fn len(&self) -> usize {
        self.live
    }

    pub fn slot_of(&self, id: Id) -> Option<u32> {
        self.by_id.get(&id).copied()
    }

    pub fn get(&self, id: Id) -> Option<&Record> {
        self.slot_of(id)
            .and_then(|slot| self.row(slot))
            .map(|(_, r)| r)
    }

    pub fn row(&self, slot: u32) -> Option<(Id, &Record)> {
        self.rows
            .get(slot as usize)
            .and_then(|row| row.as_ref())
            .map(|(id, r)| (*id, r))
    }

    /// Every live row, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, Id, &Record)> {
        self.rows
            .iter()
            .enumerate()
            .filter_map(|(slot, row)| row.as_ref().map(|(id, r)| (slot as u32, *id, r)))
    }

    pub fn has_index(&self, field: FieldId) -> bool {
        self.indexes.iter().any(|(f, _)| *f == field)
    }

    /// Rows whose indexed `field` holds `key`; `None` when the field has no index.
    pub fn lookup(&self, field: FieldId, key: &Key) -> Option<&[u32]> {
        let (_, index) = self.indexes.iter().find(|(f, _)| *f == field)?;
        Some(index.get(key).map(Vec::as_slice).unwrap_or(&[]))
    }

    /// Writes `row` into `slot` (a new slot when `None`), keeping the indexes in step.
    /// Returns the slot and what was there before.
    pub fn put(
        &mut self,
        slot: Option<u32>,
        row: Option<(Id, Record)>,
    ) -> (u32, Option<(Id, Record)>) {
        let slot = match slot {
            Some(slot) => slot,
            None => {
                self.rows.push(None);
                (self.rows.len() - 1) as u32
            }
        };
        let old = self.rows[slot as usize].take();
        if let Some((id, record)) = &old {
            self.by_id.remove(id);
            self.live -= 1;
            for (field, index) in &mut self.indexes {
                if let Some(key) = record.get(*field).and_then(Val::key)
                    && let Some(slots) = index.get_mut(&key)
                {
                    slots.retain(|s| *s != slot);
                    if slots.is_empty() {
                        index.remove(&key);
                    }
                }
            }
        }
        if let Some((id, record)) = &row {
            self.by_id.insert(*id, slot);
            self.live += 1;
            for (field, index) in &mut self.indexes {
                if let Some(key) = record.get(*field).and_then(Val::key) {
                    index.entry(key).or_default().push(slot);
                }
            }
        }
        self.rows[slot as usize] = row;
        (slot, old)
    }
}

/// What to put back when a transaction rolls back.
#[derive(Debug)]
pub struct Undo {
    pub entity: usize,
    pub slot: u32,
    pub old: Option<(Id, Record)>,
}

/// All tables, the field-name interner, and the open transaction's undo log.
#[derive(Debug, Default)]
pub struct Store {
    pub names: Interner,
    pub tables: Vec<Table>,
    undo: Option<Vec<Undo>>,
}

impl Store {
    pub fn field(&mut self, name: &str) -> FieldId {
        self.names.intern(name)
    }

    /// Inserts or replaces a row, recording the old state in the open transaction.
    pub fn save(&mut self, entity: usize, id: Id, mut record: Record) {
        record.shrink();
        let table = &mut self.tables[entity];
        let slot = table.slot_of(id);
        let (slot, old) = table.put(slot, Some((id, record)));
        if let Some(log) = &mut self.undo {
            log.push(Undo { entity, slot, old });
        }
    }

    /// Removes a row; returns whether it existed.
    pub fn remove(&mut self, entity: usize, id: Id) -> bool {
        let table = &mut self.tables[entity];
        let Some(slot) = table.slot_of(id) else {
            return false;
        };
        let (slot, old) = table.put(Some(slot), None);
        if let Some(log) = &mut self.undo {
            log.push(Undo { entity, slot, old });
        }
        true
    }

    /// Starts recording undo information.
    pub fn begin(&mut self) {
        self.undo = Some(Vec::new());
    }

    /// Keeps everything written since `begin`.
    pub fn commit(&mut self) {
        self.undo = None;
    }

    /// A savepoint inside the open transaction.
    pub fn savepoint(&self) -> usize {
        self.undo.as_ref().map(Vec::len).unwrap_or(0)
    }

    /// Puts back everything written since the savepoint.
    pub fn rollback_to(&mut self, savepoint: usize) {
        let Some(mut log) = self.undo.take() else {
            return;
        };
        while log.len() > savepoint {
            let Some(undo) = log.pop() else { break };
            let table = &mut self.tables[undo.entity];
            table.put(Some(undo.slot), undo.old);
        }
        self.undo = Some(log);
    }

    /// Puts back everything written since `begin` and stops recording.
    pub fn rollback(&mut self) {
        self.rollback_to(0);
        self.undo = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollback_restores_rows_and_indexes() {
        let mut store = Store::default();
        let number = store.field("productNumber");
        store.tables.push(Table::with_indexes(&[number]));
        let a = Id::derive("a");
        let mut record = Record::default();
        record.set(number, Val::Str("SW1".into()));
        store.save(0, a, record.clone());

        store.begin();
        let mut changed = record.clone();
        changed.set(number, Val::Str("SW2".into()));
        store.save(0, a, changed);
        store.save(0, Id::derive("b"), record.clone());
        store.remove(0, a);
        store.rollback();

        let table = &store.tables[0];
        assert_eq!(table.len(), 1);
        assert_eq!(table.get(a), Some(&record));
        assert_eq!(
            table
                .lookup(number, &Key::Str("SW1".into()))
                .map(<[u32]>::len),
            Some(1)
        );
        assert_eq!(
            table
                .lookup(number, &Key::Str("SW2".into()))
                .map(<[u32]>::len),
            Some(0)
        );
        assert!(table.get(Id::derive("b")).is_none());
    }
}
