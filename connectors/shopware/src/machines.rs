//! Shopware's default order, payment and delivery state machines (from
//! `reference/shopware/state-machines.json`) and the planning of transition paths: which
//! actions move a row from its current state to the one the till reports, through states that
//! are safe to pass, without going backwards unless asked.

/// One of the three state machines an order has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Machine {
    Order,
    Payment,
    Delivery,
}

/// (from, action, to), in the order actions are preferred when several lead to the same state.
type Transition = (&'static str, &'static str, &'static str);

const ORDER: &[Transition] = &[
    ("open", "process", "in_progress"),
    ("open", "cancel", "cancelled"),
    ("in_progress", "cancel", "cancelled"),
    ("in_progress", "complete", "completed"),
    ("cancelled", "reopen", "open"),
    ("completed", "reopen", "open"),
];

// `paid`/`paid_partially` are listed before the older `pay`/`pay_partially`.
const PAYMENT: &[Transition] = &[
    ("open", "paid", "paid"),
    ("open", "paid_partially", "paid_partially"),
    ("open", "pay", "paid"),
    ("open", "pay_partially", "paid_partially"),
    ("open", "cancel", "cancelled"),
    ("open", "remind", "reminded"),
    ("open", "do_pay", "in_progress"),
    ("open", "fail", "failed"),
    ("open", "authorize", "authorized"),
    ("open", "process_unconfirmed", "unconfirmed"),
    ("reminded", "paid", "paid"),
    ("reminded", "pay", "paid"),
    ("reminded", "pay_partially", "paid_partially"),
    ("reminded", "cancel", "cancelled"),
    ("reminded", "reopen", "open"),
    ("reminded", "do_pay", "in_progress"),
    ("reminded", "authorize", "authorized"),
    ("reminded", "process_unconfirmed", "unconfirmed"),
    ("paid_partially", "remind", "reminded"),
    ("paid_partially", "pay", "paid"),
    ("paid_partially", "refund_partially", "refunded_partially"),
    ("paid_partially", "refund", "refunded"),
    ("paid_partially", "cancel", "cancelled"),
    ("paid_partially", "reopen", "open"),
    ("paid_partially", "do_pay", "in_progress"),
    ("paid_partially", "chargeback", "chargeback"),
    ("paid_partially", "process_unconfirmed", "unconfirmed"),
    ("paid", "refund_partially", "refunded_partially"),
    ("paid", "refund", "refunded"),
    ("paid", "cancel", "cancelled"),
    ("paid", "reopen", "open"),
    ("paid", "chargeback", "chargeback"),
    ("refunded_partially", "refund", "refunded"),
    ("refunded_partially", "cancel", "cancelled"),
    ("refunded_partially", "reopen", "open"),
    ("cancelled", "reopen", "open"),
    ("cancelled", "refund", "refunded"),
    ("cancelled", "refund_partially", "refunded_partially"),
    ("cancelled", "paid", "paid"),
    ("cancelled", "process_unconfirmed", "unconfirmed"),
    ("in_progress", "paid", "paid"),
    ("in_progress", "paid_partially", "paid_partially"),
    ("in_progress", "pay_partially", "paid_partially"),
    ("in_progress", "reopen", "open"),
    ("in_progress", "fail", "failed"),
    ("in_progress", "cancel", "cancelled"),
    ("in_progress", "authorize", "authorized"),
    ("failed", "paid", "paid"),
    ("failed", "pay", "paid"),
    ("failed", "paid_partially", "paid_partially"),
    ("failed", "pay_partially", "paid_partially"),
    ("failed", "reopen", "open"),
    ("failed", "do_pay", "in_progress"),
    ("failed", "fail", "failed"),
    ("failed", "process_unconfirmed", "unconfirmed"),
    ("authorized", "paid", "paid"),
    ("authorized", "paid_partially", "paid_partially"),
    ("authorized", "fail", "failed"),
    ("authorized", "cancel", "cancelled"),
    ("chargeback", "paid", "paid"),
    ("chargeback", "paid_partially", "paid_partially"),
    ("chargeback", "cancel", "cancelled"),
    ("unconfirmed", "paid", "paid"),
    ("unconfirmed", "paid_partially", "paid_partially"),
    ("unconfirmed", "fail", "failed"),
    ("unconfirmed", "cancel", "cancelled"),
    ("unconfirmed", "authorize", "authorized"),
    ("unconfirmed", "reopen", "open"),
];

const DELIVERY: &[Transition] = &[
    ("open", "ship", "shipped"),
    ("open", "ship_partially", "shipped_partially"),
    ("open", "cancel", "cancelled"),
    ("shipped", "retour", "returned"),
    ("shipped", "retour_partially", "returned_partially"),
    ("shipped", "cancel", "cancelled"),
    ("shipped", "reopen", "open"),
    ("shipped_partially", "ship", "shipped"),
    ("shipped_partially", "retour", "returned"),
    (
        "shipped_partially",
        "retour_partially",
        "returned_partially",
    ),
    ("shipped_partially", "cancel", "cancelled"),
    ("shipped_partially", "reopen", "open"),
    ("cancelled", "reopen", "open"),
    ("returned", "reopen", "open"),
    ("returned_partially", "retour", "returned"),
    ("returned_partially", "reopen", "open"),
];

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

    fn transitions(self) -> &'static [Transition] {
        match self {
            Machine::Order => ORDER,
            Machine::Payment => PAYMENT,
            Machine::Delivery => DELIVERY,
        }
    }

    /// Every state's technical name.
    pub fn states(self) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        for (from, _, to) in self.transitions() {
            for state in [*from, *to] {
                if !out.contains(&state) {
                    out.push(state);
                }
            }
        }
        out
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
    let possible: Vec<&str> = machine
        .transitions()
        .iter()
        .filter(|(from, _, _)| *from == current)
        .map(|(_, action, _)| *action)
        .collect();
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
                if *start != state || (*action == "reopen" && !allow_reopen) {
                    continue;
                }
                let mut path = path.clone();
                path.push(*action);
                if *end == to {
                    return Some(path);
                }
                if machine.passable(end, allow_reopen) && !visited.iter().any(|v| v == end) {
                    visited.push((*end).to_owned());
                    next.push(((*end).to_owned(), path));
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
