//! The process's run slots, shared fairly by tenants (hosting): at most `workers` runs at
//! once over all tenants, and a freed slot goes to the next tenant in turn that waits, not to
//! the next request. So a tenant with fifty flows due waits its turn like one with a single
//! flow: another tenant's run starts when one slot frees, at the latest.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

/// At most `workers` runs at once, handed out tenant by tenant in turn.
#[derive(Debug)]
pub struct RunPool {
    workers: usize,
    state: Mutex<PoolState>,
}

#[derive(Debug, Default)]
struct PoolState {
    free: usize,
    /// The waiting requests of each tenant, oldest first.
    waiting: BTreeMap<String, VecDeque<oneshot::Sender<()>>>,
    /// Tenants with waiting requests, in turn.
    turn: VecDeque<String>,
}

/// A slot of the pool: given back (to the next tenant in turn) when dropped.
#[derive(Debug)]
pub struct PoolSlot {
    pool: Arc<RunPool>,
}

impl Drop for PoolSlot {
    fn drop(&mut self) {
        self.pool.release();
    }
}

/// A request waiting for a slot; dropped after the slot was handed to it but before it
/// took it, it gives the slot back.
struct Waiting {
    pool: Arc<RunPool>,
    receiver: Option<oneshot::Receiver<()>>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(mut receiver) = self.receiver.take()
            && receiver.try_recv().is_ok()
        {
            self.pool.release();
        }
    }
}

impl RunPool {
    pub fn new(workers: usize) -> Arc<RunPool> {
        let workers = workers.max(1);
        Arc::new(RunPool {
            workers,
            state: Mutex::new(PoolState {
                free: workers,
                ..PoolState::default()
            }),
        })
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    fn state(&self) -> MutexGuard<'_, PoolState> {
        match self.state.lock() {
            Ok(state) => state,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Runs going now.
    pub fn busy(&self) -> usize {
        self.workers - self.state().free
    }

    /// Requests waiting for a slot.
    pub fn waiting(&self) -> usize {
        self.state().waiting.values().map(VecDeque::len).sum()
    }

    /// A slot for a run of `tenant`: at once while one is free and nobody waits, else in
    /// the tenant's turn.
    pub async fn slot(self: &Arc<Self>, tenant: &str) -> PoolSlot {
        let receiver = {
            let mut state = self.state();
            if state.free > 0 && state.turn.is_empty() {
                state.free -= 1;
                return PoolSlot { pool: self.clone() };
            }
            let (sender, receiver) = oneshot::channel();
            let queue = state.waiting.entry(tenant.to_owned()).or_default();
            queue.push_back(sender);
            if queue.len() == 1 {
                state.turn.push_back(tenant.to_owned());
            }
            receiver
        };
        let mut waiting = Waiting {
            pool: self.clone(),
            receiver: Some(receiver),
        };
        if let Some(receiver) = waiting.receiver.as_mut() {
            // The sender lives in the pool until it is handed a slot: it never drops first.
            let _ = receiver.await;
        }
        waiting.receiver = None;
        PoolSlot { pool: self.clone() }
    }

    /// A slot came free: to the first waiting request of the tenant whose turn it is (that
    /// tenant goes to the back of the turn), or back to the free ones.
    fn release(&self) {
        let mut state = self.state();
        while let Some(tenant) = state.turn.pop_front() {
            let Some(queue) = state.waiting.get_mut(&tenant) else {
                continue;
            };
            let mut handed = false;
            while let Some(sender) = queue.pop_front() {
                if sender.send(()).is_ok() {
                    handed = true;
                    break;
                }
            }
            if queue.is_empty() {
                state.waiting.remove(&tenant);
            } else {
                state.turn.push_back(tenant);
            }
            if handed {
                return;
            }
        }
        state.free += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Who got a slot, in order, as slots come free one at a time.
    async fn order_of(pool: &Arc<RunPool>, requests: &[&str]) -> Vec<String> {
        let (done, mut got) = tokio::sync::mpsc::unbounded_channel();
        let mut tasks = Vec::new();
        for (i, tenant) in requests.iter().enumerate() {
            let (pool, done, tenant) = (pool.clone(), done.clone(), (*tenant).to_owned());
            tasks.push(tokio::spawn(async move {
                let slot = pool.slot(&tenant).await;
                let _ = done.send((tenant, i, slot));
            }));
            // Each request queues before the next is made.
            tokio::task::yield_now().await;
        }
        let mut order = Vec::new();
        while order.len() < requests.len() {
            let (tenant, _, slot) = got.recv().await.expect("a slot");
            order.push(tenant);
            drop(slot);
        }
        order
    }

    #[tokio::test]
    async fn a_tenant_with_many_runs_due_does_not_hold_back_another() {
        let pool = RunPool::new(1);
        let held = pool.slot("busy").await;
        // Busy has fifty runs due, then quiet asks for one.
        let mut requests = vec!["busy"; 50];
        requests.push("quiet");
        let order = tokio::spawn({
            let pool = pool.clone();
            async move { order_of(&pool, &requests).await }
        });
        while pool.waiting() < 51 {
            tokio::task::yield_now().await;
        }
        drop(held);
        let order = order.await.expect("join");
        let quiet = order.iter().position(|t| t == "quiet").expect("quiet ran");
        assert!(
            quiet <= 1,
            "quiet waited behind {quiet} of busy's runs: {order:?}"
        );
        assert_eq!(order.len(), 51);
        assert_eq!(pool.busy(), 0);
    }

    #[tokio::test]
    async fn turns_alternate_between_waiting_tenants() {
        let pool = RunPool::new(1);
        let held = pool.slot("a").await;
        let order = tokio::spawn({
            let pool = pool.clone();
            async move { order_of(&pool, &["a", "a", "a", "b", "b", "c"]).await }
        });
        while pool.waiting() < 6 {
            tokio::task::yield_now().await;
        }
        drop(held);
        assert_eq!(order.await.expect("join"), ["a", "b", "c", "a", "b", "a"]);
    }

    #[tokio::test]
    async fn a_request_given_up_while_waiting_loses_no_slot() {
        let pool = RunPool::new(1);
        let held = pool.slot("a").await;
        let gave_up = tokio::spawn({
            let pool = pool.clone();
            async move {
                let _slot = pool.slot("b").await;
            }
        });
        while pool.waiting() < 1 {
            tokio::task::yield_now().await;
        }
        gave_up.abort();
        let _ = gave_up.await;
        drop(held);
        assert_eq!(pool.busy(), 0);
        let _again = pool.slot("c").await;
        assert_eq!(pool.busy(), 1);
    }
}
