//! The order, order_transaction and order_delivery state machines, read from the reference
//! `state-machines.json` (a built-in copy of the default machines is the fallback when the
//! reference folder is missing), their rows in the store, and transitions with their side
//! effects (history rows, stock).

use std::path::Path;

use serde_json::{Value, json};

use crate::errors::ApiError;
use crate::ids::Id;
use crate::model::{Record, Val};
use crate::shop::{LIVE_VERSION, Shop};

#[derive(Clone, Debug, PartialEq)]
pub struct Machine {
    /// `order.state`.
    pub name: String,
    /// `order`.
    pub entity: String,
    pub initial: String,
    /// (technical name, display name).
    pub states: Vec<(String, String)>,
    /// (action, from, to), in the file's order.
    pub transitions: Vec<(String, String, String)>,
}

impl Machine {
    pub fn id(&self) -> Id {
        Id::derive(&format!("state_machine:{}", self.name))
    }

    pub fn state_id(&self, technical: &str) -> Id {
        Id::derive(&format!("state_machine_state:{}:{technical}", self.name))
    }

    /// The actions allowed from a state, in file order, without repeats.
    pub fn actions_from(&self, state: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (action, from, _) in &self.transitions {
            if from == state && !out.contains(action) {
                out.push(action.clone());
            }
        }
        out
    }

    pub fn target(&self, state: &str, action: &str) -> Option<&str> {
        self.transitions
            .iter()
            .find(|(a, from, _)| a == action && from == state)
            .map(|(_, _, to)| to.as_str())
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Machines {
    pub machines: Vec<Machine>,
    /// Where they came from (the file, or the built-in fallback).
    pub source: String,
}

impl Machines {
    /// Reads `state-machines.json` from the reference folder, else the built-in defaults.
    pub fn load(dir: &Path) -> Machines {
        let file = dir.join("state-machines.json");
        match std::fs::read_to_string(&file)
            .map_err(anyhow::Error::from)
            .and_then(|text| Machines::parse(&text))
        {
            Ok(mut machines) => {
                machines.source = file.display().to_string();
                machines
            }
            Err(error) => {
                tracing::warn!(file = %file.display(), %error, "State machines not read; using the built-in defaults.");
                Machines::builtin()
            }
        }
    }

    pub fn parse(text: &str) -> anyhow::Result<Machines> {
        let doc: Value = serde_json::from_str(text)?;
        let Some(map) = doc.get("stateMachines").and_then(Value::as_object) else {
            anyhow::bail!("no stateMachines object");
        };
        let str_of = |v: &Value, k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let mut machines = Vec::new();
        for (name, machine) in map {
            let states = machine
                .get("states")
                .and_then(Value::as_array)
                .map(|states| {
                    states
                        .iter()
                        .map(|s| (str_of(s, "technicalName"), str_of(s, "displayName")))
                        .collect()
                })
                .unwrap_or_default();
            let transitions = machine
                .get("transitions")
                .and_then(Value::as_array)
                .map(|ts| {
                    ts.iter()
                        .map(|t| (str_of(t, "action"), str_of(t, "from"), str_of(t, "to")))
                        .collect()
                })
                .unwrap_or_default();
            machines.push(Machine {
                name: name.clone(),
                entity: name.trim_end_matches(".state").to_string(),
                initial: str_of(machine, "initial"),
                states,
                transitions,
            });
        }
        Ok(Machines {
            machines,
            source: String::new(),
        })
    }

    /// Shopware's default machines (the same facts as the reference file), for runs without
    /// the reference folder.
    pub fn builtin() -> Machines {
        let machine = |name: &str, states: &str, transitions: &str| Machine {
            name: name.to_string(),
            entity: name.trim_end_matches(".state").to_string(),
            initial: "open".into(),
            states: states
                .split(',')
                .map(|s| {
                    let (t, d) = s.split_once('=').unwrap_or((s, s));
                    (t.to_string(), d.to_string())
                })
                .collect(),
            transitions: transitions
                .split_whitespace()
                .filter_map(|t| {
                    let mut parts = t.split(':');
                    Some((
                        parts.next()?.into(),
                        parts.next()?.into(),
                        parts.next()?.into(),
                    ))
                })
                .collect(),
        };
        Machines {
            source: "built-in".into(),
            machines: vec![
                machine(
                    "order.state",
                    "open=Open,in_progress=In Progress,completed=Done,cancelled=Cancelled",
                    "process:open:in_progress cancel:open:cancelled cancel:in_progress:cancelled \
                     complete:in_progress:completed reopen:cancelled:open reopen:completed:open",
                ),
                machine(
                    "order_delivery.state",
                    "open=Open,cancelled=Cancelled,shipped=Shipped,shipped_partially=Shipped partially,returned=Returned,returned_partially=Returned partially",
                    "ship:open:shipped ship_partially:open:shipped_partially cancel:open:cancelled \
                     retour:shipped:returned retour_partially:shipped:returned_partially cancel:shipped:cancelled \
                     retour:shipped_partially:returned retour_partially:shipped_partially:returned_partially \
                     ship:shipped_partially:shipped cancel:shipped_partially:cancelled reopen:cancelled:open \
                     reopen:shipped:open reopen:shipped_partially:open reopen:returned:open \
                     reopen:returned_partially:open retour:returned_partially:returned",
                ),
                machine(
                    "order_transaction.state",
                    "open=Open,paid=Paid,paid_partially=Paid partially,cancelled=Cancelled,reminded=Reminded,refunded=Refunded,refunded_partially=Refunded partially,in_progress=In Progress,failed=Failed,authorized=Authorized,chargeback=Chargeback,unconfirmed=Unconfirmed",
                    "pay:open:paid pay_partially:open:paid_partially cancel:open:cancelled remind:open:reminded \
                     pay:reminded:paid pay_partially:reminded:paid_partially cancel:reminded:cancelled \
                     remind:paid_partially:reminded pay:paid_partially:paid refund_partially:paid_partially:refunded_partially \
                     refund:paid_partially:refunded cancel:paid_partially:cancelled refund_partially:paid:refunded_partially \
                     refund:paid:refunded cancel:paid:cancelled refund:refunded_partially:refunded \
                     cancel:refunded_partially:cancelled reopen:cancelled:open refund:cancelled:refunded \
                     refund_partially:cancelled:refunded_partially reopen:in_progress:open fail:in_progress:failed \
                     cancel:in_progress:cancelled paid:in_progress:paid paid_partially:in_progress:paid_partially \
                     pay_partially:in_progress:paid_partially reopen:failed:open do_pay:failed:in_progress pay:failed:paid \
                     fail:failed:failed paid:failed:paid paid_partially:failed:paid_partially \
                     pay_partially:failed:paid_partially do_pay:open:in_progress fail:open:failed reopen:reminded:open \
                     do_pay:reminded:in_progress reopen:paid_partially:open do_pay:paid_partially:in_progress \
                     reopen:paid:open reopen:refunded_partially:open paid:open:paid paid_partially:open:paid_partially \
                     authorize:in_progress:authorized authorize:open:authorized authorize:reminded:authorized \
                     paid:authorized:paid paid_partially:authorized:paid_partially fail:authorized:failed \
                     cancel:authorized:cancelled chargeback:paid:chargeback chargeback:paid_partially:chargeback \
                     paid:chargeback:paid paid_partially:chargeback:paid_partially cancel:chargeback:cancelled \
                     paid:cancelled:paid process_unconfirmed:open:unconfirmed process_unconfirmed:reminded:unconfirmed \
                     process_unconfirmed:failed:unconfirmed process_unconfirmed:cancelled:unconfirmed \
                     process_unconfirmed:paid_partially:unconfirmed paid:unconfirmed:paid \
                     paid_partially:unconfirmed:paid_partially fail:unconfirmed:failed cancel:unconfirmed:cancelled \
                     authorize:unconfirmed:authorized reopen:unconfirmed:open",
                ),
            ],
        }
    }

    pub fn for_entity(&self, entity: &str) -> Option<&Machine> {
        self.machines.iter().find(|m| m.entity == entity)
    }
}

impl Shop {
    /// Writes the state machine, state and transition rows.
    pub fn seed_state_machines(&mut self) {
        let machines = self.machines.machines.clone();
        let now = self.now();
        let (m_ix, s_ix, t_ix) = (
            Shop::entity_index("state_machine"),
            Shop::entity_index("state_machine_state"),
            Shop::entity_index("state_machine_transition"),
        );
        for machine in &machines {
            let mut record = Record::default();
            self.set(
                &mut record,
                "technicalName",
                Val::Str(machine.name.as_str().into()),
            );
            let label = format!("{} state", pascal_words(&machine.entity));
            self.set(&mut record, "name", Val::Str(label.into()));
            self.set(
                &mut record,
                "initialStateId",
                Val::Id(machine.state_id(&machine.initial)),
            );
            self.set(&mut record, "createdAt", Val::Str(now.as_str().into()));
            self.store.save(m_ix, machine.id(), record);
            for (technical, display) in &machine.states {
                let mut record = Record::default();
                self.set(
                    &mut record,
                    "technicalName",
                    Val::Str(technical.as_str().into()),
                );
                self.set(&mut record, "name", Val::Str(display.as_str().into()));
                self.set(&mut record, "stateMachineId", Val::Id(machine.id()));
                self.set(&mut record, "createdAt", Val::Str(now.as_str().into()));
                self.store.save(s_ix, machine.state_id(technical), record);
            }
            for (action, from, to) in &machine.transitions {
                let mut record = Record::default();
                self.set(&mut record, "actionName", Val::Str(action.as_str().into()));
                self.set(&mut record, "stateMachineId", Val::Id(machine.id()));
                self.set(&mut record, "fromStateId", Val::Id(machine.state_id(from)));
                self.set(&mut record, "toStateId", Val::Id(machine.state_id(to)));
                self.set(&mut record, "createdAt", Val::Str(now.as_str().into()));
                let id = Id::derive(&format!("transition:{}:{action}:{from}:{to}", machine.name));
                self.store.save(t_ix, id, record);
            }
        }
    }

    /// The state of a row of `entity` (`order`, `order_transaction`, `order_delivery`).
    pub fn current_state(&self, entity: &str, id: Id) -> Result<(Machine, String), ApiError> {
        let index = crate::entities::index_of(entity)
            .ok_or_else(|| ApiError::state_machine_invalid_entity(entity))?;
        let machine = self
            .machines
            .for_entity(entity)
            .cloned()
            .ok_or_else(|| ApiError::state_machine_invalid_entity(entity))?;
        let record = self
            .table(index)
            .get(id)
            .ok_or_else(|| ApiError::state_machine_invalid_entity(entity))?;
        let state = self
            .state_name(record)
            .unwrap_or_else(|| machine.initial.clone());
        Ok((machine, state))
    }

    /// Runs `action` on a row; returns the new state's id. Writes a history row and applies
    /// the order's stock effects.
    pub fn transition(&mut self, entity: &str, id: Id, action: &str) -> Result<Id, ApiError> {
        let (machine, state) = self.current_state(entity, id)?;
        let Some(to) = machine.target(&state, action).map(str::to_string) else {
            return Err(ApiError::illegal_transition(
                action,
                machine.state_id(&state),
                &machine.actions_from(&state),
            ));
        };
        self.move_state(entity, id, &machine, &state, &to, Some(action));
        Ok(machine.state_id(&to))
    }

    /// Sets a row's state directly (a test hook, like an admin forcing it), with the same
    /// side effects as a transition.
    pub fn force_state(&mut self, entity: &str, id: Id, to: &str) -> Result<(), ApiError> {
        let (machine, state) = self.current_state(entity, id)?;
        if !machine.states.iter().any(|(t, _)| t == to) {
            return Err(ApiError::new(
                400,
                "SYSTEM__STATE_MACHINE_STATE_NOT_FOUND",
                format!(
                    "The place \"{to}\" for state machine named \"{}\" was not found.",
                    machine.name
                ),
            ));
        }
        self.move_state(entity, id, &machine, &state, to, None);
        Ok(())
    }

    fn move_state(
        &mut self,
        entity: &str,
        id: Id,
        machine: &Machine,
        from: &str,
        to: &str,
        action: Option<&str>,
    ) {
        let index = crate::entities::index_of(entity).unwrap_or(0);
        let now = self.now();
        if let Some(mut record) = self.table(index).get(id).cloned() {
            self.set(&mut record, "stateId", Val::Id(machine.state_id(to)));
            self.set(&mut record, "updatedAt", Val::Str(now.as_str().into()));
            self.store.save(index, id, record);
        }
        let mut history = Record::default();
        self.set(&mut history, "stateMachineId", Val::Id(machine.id()));
        self.set(&mut history, "entityName", Val::Str(entity.into()));
        self.set(&mut history, "referencedId", Val::Id(id));
        self.set(
            &mut history,
            "referencedVersionId",
            Val::Id(crate::shop::fixed(LIVE_VERSION)),
        );
        self.set(&mut history, "fromStateId", Val::Id(machine.state_id(from)));
        self.set(&mut history, "toStateId", Val::Id(machine.state_id(to)));
        if let Some(action) = action {
            self.set(
                &mut history,
                "transitionActionName",
                Val::Str(action.into()),
            );
        }
        self.set(&mut history, "createdAt", Val::Str(now.as_str().into()));
        let history_id = self.random_id();
        self.store.save(
            Shop::entity_index("state_machine_history"),
            history_id,
            history,
        );
        if entity == "order" {
            self.order_state_changed(id, from, to);
        }
        tracing::debug!(entity, id = %id, from, to, "State changed.");
    }

    /// The answer to a transition: the new state as a plain object.
    pub fn state_json(&self, state: Id) -> Value {
        let states = Shop::entity_index("state_machine_state");
        let Some(record) = self.table(states).get(state) else {
            return Value::Null;
        };
        let name = self.json_field(record, "name");
        json!({
            "id": state.hex(),
            "technicalName": self.json_field(record, "technicalName"),
            "name": name,
            "stateMachineId": self.json_field(record, "stateMachineId"),
            "createdAt": self.json_field(record, "createdAt"),
            "updatedAt": null,
            "translated": { "name": name, "customFields": [] },
            "apiAlias": "state_machine_state",
        })
    }
}

fn pascal_words(snake: &str) -> String {
    snake
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_machines_match_the_reference_file() {
        let dir = crate::schema::reference_dir(None);
        let Ok(text) = std::fs::read_to_string(dir.join("state-machines.json")) else {
            return;
        };
        let file = Machines::parse(&text).expect("parse");
        let builtin = Machines::builtin();
        for machine in &file.machines {
            let mine = builtin.for_entity(&machine.entity).expect("machine");
            assert_eq!(mine.transitions, machine.transitions, "{}", machine.name);
            assert_eq!(
                mine.states.iter().map(|s| &s.0).collect::<Vec<_>>(),
                machine.states.iter().map(|s| &s.0).collect::<Vec<_>>()
            );
        }
    }
}
