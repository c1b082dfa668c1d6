//! Shopware's default order, payment and delivery state machines (the generated
//! [`crate::machine_table`], equal to `reference/shopware/state-machines.json`) and the
//! planning of transition paths: which actions move a row from its current state to the one
//! the till reports, through states that are safe to pass, without going backwards unless
//! asked.

use crate::machine_table as table;

/// One of the three state machines an order has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Machine {
    Order,
    Payment,
    Delivery,
}

/// (from, action, to).
type Transition = (&'static str, &'static str, &'static str);

/// Where two actions lead to the same state, the current one wins: `paid`/`paid_partially`
/// (`StateMachineTransitionActions`) before the older `pay`/`pay_partially`.
fn rank(action: &str) -> u8 {
    match action {
        "pay" | "pay_partially" => 1,
        _ => 0,
    }
}

impl Machine {
    /// The entity in transition URLs (`/_action/{entity}/{id}/state/{action}`).
    pub fn entity(self) -> &'static str {
        match self {
            Machine::Order => "order",
            Machine::Payment => "order_transaction",
            Machine::Delivery => "order_delivery",
        }
    }

    /// The canonical field the machine's state is reported in.
    pub fn field(self) -> &'static str {
        match self {
            Machine::Order => "state",
            Machine::Payment => "payment_state",
            Machine::Delivery => "delivery_state",
        }
    }

    /// What the machine is called in messages.
    pub fn label(self) -> &'static str {
        match self {
            Machine::Order => "order",
            Machine::Payment => "payment",
            Machine::Delivery => "delivery",
        }
    }

    /// The machine's transitions, in the order the planner tries them.
    fn transitions(self) -> Vec<Transition> {
        let table = match self {
            Machine::Order => table::ORDER,
            Machine::Payment => table::PAYMENT,
            Machine::Delivery => table::DELIVERY,
        };
        let mut out = table.to_vec();
        out.sort_by_key(|(_, action, _)| rank(action));
        out
    }

    /// Every state's technical name.
    pub fn states(self) -> Vec<&'static str> {
        match self {
            Machine::Order => table::ORDER_STATES,
            Machine::Payment => table::PAYMENT_STATES,
            Machine::Delivery => table::DELIVERY_STATES,
        }
        .to_vec()
    }

    /// States a path may pass through on its way to the target: passing them has no effect a
    /// shop owner would object to (no mails about refunds, no stock moved).
    fn passable(self, state: &str, allow_reopen: bool) -> bool {
        match self {
            Machine::Order => state == "in_progress" || (allow_reopen && state == "open"),
            Machine::Payment | Machine::Delivery => allow_reopen && state == "open",
        }
    }
}

/// What to do to move a machine to a target state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Already there.
    Stay,
    /// Shopware is already further along than the target (the till lags): leave it.
    Ahead,
    /// The actions to run, in order.
    Actions(Vec<&'static str>),
    /// The target cannot be reached safely.
    Impossible(String),
}

/// Plans the path from `current` to `target`: the shortest sequence of actions that only
/// passes [`Machine::passable`] states and uses `reopen` only when allowed. A target that lies
/// behind `current` (reachable forward from the target to `current`) is [`Plan::Ahead`].
pub fn plan(machine: Machine, current: &str, target: &str, allow_reopen: bool) -> Plan {
    if current == target {
        return Plan::Stay;
    }
    if let Some(actions) = shortest(machine, current, target, allow_reopen) {
        return Plan::Actions(actions);
    }
    if machine.states().contains(&target) && shortest(machine, target, current, false).is_some() {
        return Plan::Ahead;
    }
    let mut possible: Vec<&str> = Vec::new();
    for (from, action, _) in machine.transitions() {
        if from == current && !possible.contains(&action) {
            possible.push(action);
        }
    }
    Plan::Impossible(format!(
        "Shopware cannot move the {} from \"{current}\" to \"{target}\" without passing states \
         with side effects{}; actions possible from \"{current}\": {}",
        machine.label(),
        if allow_reopen {
            ""
        } else {
            " or reopening it (set the write setting allow_reopen to allow that)"
        },
        if possible.is_empty() {
            "none".to_owned()
        } else {
            possible.join(", ")
        }
    ))
}

/// Breadth-first search over the machine without `reopen` unless allowed.
fn shortest(
    machine: Machine,
    from: &str,
    to: &str,
    allow_reopen: bool,
) -> Option<Vec<&'static str>> {
    let mut frontier: Vec<(String, Vec<&'static str>)> = vec![(from.to_owned(), Vec::new())];
    let mut visited: Vec<String> = vec![from.to_owned()];
    while !frontier.is_empty() {
        let mut next = Vec::new();
        for (state, path) in frontier {
            for (start, action, end) in machine.transitions() {
                if start != state || (action == "reopen" && !allow_reopen) {
                    continue;
                }
                let mut path = path.clone();
                path.push(action);
                if end == to {
                    return Some(path);
                }
                if machine.passable(end, allow_reopen) && !visited.iter().any(|v| v == end) {
                    visited.push(end.to_owned());
                    next.push((end.to_owned(), path));
                }
            }
        }
        frontier = next;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_to_completed_goes_through_in_progress() {
        assert_eq!(
            plan(Machine::Order, "open", "completed", false),
            Plan::Actions(vec!["process", "complete"])
        );
        assert_eq!(
            plan(Machine::Order, "open", "in_progress", false),
            Plan::Actions(vec!["process"])
        );
        assert_eq!(plan(Machine::Order, "open", "open", false), Plan::Stay);
    }

    #[test]
    fn a_lagging_till_does_not_move_shopware_back() {
        assert_eq!(
            plan(Machine::Order, "completed", "in_progress", false),
            Plan::Ahead
        );
        assert_eq!(
            plan(Machine::Delivery, "shipped", "open", false),
            Plan::Ahead
        );
        assert_eq!(
            plan(Machine::Order, "completed", "in_progress", true),
            Plan::Actions(vec!["reopen", "process"])
        );
    }

    #[test]
    fn paths_through_side_effects_are_refused() {
        // A refund of a payment never made would have to pass "paid".
        let Plan::Impossible(why) = plan(Machine::Payment, "open", "refunded", false) else {
            panic!("open → refunded must be refused");
        };
        assert!(why.contains("\"open\" to \"refunded\""), "{why}");
        assert!(why.contains("paid"), "lists the possible actions: {why}");
        // A cancelled order is not completed behind the shop's back.
        assert!(matches!(
            plan(Machine::Order, "cancelled", "completed", false),
            Plan::Impossible(_)
        ));
        assert_eq!(
            plan(Machine::Order, "cancelled", "completed", true),
            Plan::Actions(vec!["reopen", "process", "complete"])
        );
    }

    #[test]
    fn a_reminded_payment_is_paid_with_pay() {
        // From `reminded` Shopware has `pay`, not `paid`.
        assert_eq!(
            plan(Machine::Payment, "reminded", "paid", false),
            Plan::Actions(vec!["pay"])
        );
    }

    /// The reference folder: `KOPPEL_REFERENCE_DIR`, else `../shared/reference` beside the
    /// repository.
    fn reference_file() -> std::path::PathBuf {
        let dir = match std::env::var("KOPPEL_REFERENCE_DIR") {
            Ok(dir) if !dir.is_empty() => std::path::PathBuf::from(dir),
            _ => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference"),
        };
        dir.join("shopware/state-machines.json")
    }

    #[test]
    fn the_table_is_the_reference_file() {
        let file = reference_file();
        let text = std::fs::read_to_string(&file).unwrap_or_else(|error| {
            panic!(
                "{} is needed to check the state machine table ({error}): set \
                 KOPPEL_REFERENCE_DIR or check out ../shared/reference",
                file.display()
            )
        });
        let doc: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        let machines = doc["stateMachines"].as_object().expect("stateMachines");
        let names = [
            ("order.state", "ORDER", table::ORDER_STATES, table::ORDER),
            (
                "order_transaction.state",
                "PAYMENT",
                table::PAYMENT_STATES,
                table::PAYMENT,
            ),
            (
                "order_delivery.state",
                "DELIVERY",
                table::DELIVERY_STATES,
                table::DELIVERY,
            ),
        ];
        assert_eq!(
            machines.len(),
            names.len(),
            "the file has machines the table lacks: {:?}",
            machines.keys().collect::<Vec<_>>()
        );
        let text = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap_or("").to_owned();
        let mut expected = String::new();
        let mut same = true;
        for (key, name, states, transitions) in names {
            let machine = &machines[key];
            let want_states: Vec<String> = machine["states"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| text(s, "technicalName"))
                .collect();
            let want: Vec<(String, String, String)> = machine["transitions"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| (text(t, "from"), text(t, "action"), text(t, "to")))
                .collect();
            let have_states: Vec<String> = states.iter().map(|s| s.to_string()).collect();
            let have: Vec<(String, String, String)> = transitions
                .iter()
                .map(|(f, a, t)| (f.to_string(), a.to_string(), t.to_string()))
                .collect();
            same &= want_states == have_states && want == have;
            expected.push_str(&format!(
                "pub const {name}_STATES: &[&str] = &[{}];\npub const {name}: &[(&str, &str, &str)] = &[{}];\n",
                want_states
                    .iter()
                    .map(|s| format!("{s:?}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                want.iter()
                    .map(|(f, a, t)| format!("({f:?}, {a:?}, {t:?})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        assert!(
            same,
            "src/machine_table.rs differs from {}; its constants should be (run cargo fmt \
             after pasting):\n{expected}",
            file.display()
        );
    }

    #[test]
    fn payments_prefer_the_current_action_names() {
        assert_eq!(
            plan(Machine::Payment, "open", "paid", false),
            Plan::Actions(vec!["paid"])
        );
        assert_eq!(
            plan(Machine::Delivery, "open", "shipped", false),
            Plan::Actions(vec!["ship"])
        );
        assert_eq!(
            plan(Machine::Delivery, "shipped", "returned", false),
            Plan::Actions(vec!["retour"])
        );
        assert!(Machine::Payment.states().contains(&"chargeback"));
    }
}
