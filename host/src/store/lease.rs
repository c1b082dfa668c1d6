//! One run per flow at a time, across processes: a run holds its flow's lease, an exclusive
//! lock on a file next to the database (`<database>.locks/<tenant>~<flow>.lock`). The
//! operating system lets go of the lock when the process ends however it ends (kill -9
//! included), so a lease is never left stale. An in-memory database (tests) has no files;
//! its leases are kept in the process.

use std::collections::HashSet;
use std::fs::{File, OpenOptions, TryLockError};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::{Result, Store, StoreError};

/// Where the leases of one database are.
#[derive(Clone, Debug, Default)]
pub(super) struct Leases {
    /// `<database>.locks`; None for an in-memory database.
    dir: Option<PathBuf>,
    /// The leases this process holds: (tenant, flow).
    held: Arc<Mutex<HashSet<(String, String)>>>,
}

/// The right to run a flow; let go when dropped.
#[derive(Debug)]
pub struct FlowLease {
    key: (String, String),
    held: Arc<Mutex<HashSet<(String, String)>>>,
    _file: Option<File>,
}

impl Drop for FlowLease {
    fn drop(&mut self) {
        let mut held = match self.held.lock() {
            Ok(held) => held,
            Err(poisoned) => poisoned.into_inner(),
        };
        held.remove(&self.key);
    }
}

impl Leases {
    pub(super) fn beside(database: &std::path::Path) -> Leases {
        let mut dir = database.as_os_str().to_owned();
        dir.push(".locks");
        Leases {
            dir: Some(PathBuf::from(dir)),
            held: Arc::default(),
        }
    }
}

/// A file name part: letters, digits, `-` and `_` kept, anything else as `%XX`.
fn file_part(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

impl Store {
    /// Takes the lease of `flow`, or fails with [`StoreError::Busy`] while a run of it goes on
    /// in this or another process.
    pub fn lease_flow(&self, tenant: &str, flow: &str) -> Result<FlowLease> {
        let key = (tenant.to_owned(), flow.to_owned());
        let busy = || StoreError::Busy {
            tenant: tenant.to_owned(),
            flow: flow.to_owned(),
        };
        let leases = &self.leases;
        let mut held = match leases.held.lock() {
            Ok(held) => held,
            Err(poisoned) => poisoned.into_inner(),
        };
        if held.contains(&key) {
            return Err(busy());
        }
        let file = match &leases.dir {
            None => None,
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|source| StoreError::Lock {
                    path: dir.display().to_string(),
                    source,
                })?;
                let path = dir.join(format!("{}~{}.lock", file_part(tenant), file_part(flow)));
                let file = OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&path)
                    .map_err(|source| StoreError::Lock {
                        path: path.display().to_string(),
                        source,
                    })?;
                match file.try_lock() {
                    Ok(()) => Some(file),
                    Err(TryLockError::WouldBlock) => return Err(busy()),
                    Err(TryLockError::Error(source)) => {
                        return Err(StoreError::Lock {
                            path: path.display().to_string(),
                            source,
                        });
                    }
                }
            }
        };
        held.insert(key.clone());
        Ok(FlowLease {
            key,
            held: leases.held.clone(),
            _file: file,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_flow_has_one_lease_at_a_time_across_stores_of_one_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("koppel.db");
        let one = Store::open(&path).await.expect("open");
        // A second Store on the same file stands for a second process: its own file handle.
        let two = Store::open(&path).await.expect("open");
        let lease = one.lease_flow("t", "orders").expect("free");
        assert!(matches!(
            two.lease_flow("t", "orders"),
            Err(StoreError::Busy { .. })
        ));
        assert!(matches!(
            one.lease_flow("t", "orders"),
            Err(StoreError::Busy { .. })
        ));
        let other = two.lease_flow("t", "stock").expect("another flow is free");
        let other_tenant = two
            .lease_flow("u", "orders")
            .expect("another tenant is free");
        drop(lease);
        let again = two.lease_flow("t", "orders").expect("free again");
        drop((again, other, other_tenant));
        assert_eq!(file_part("a/b c"), "a%2Fb%20c");
    }

    #[tokio::test]
    async fn only_runs_nobody_holds_are_marked_interrupted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("koppel.db");
        let live = Store::open(&path).await.expect("open");
        let lease = live.lease_flow("t", "orders").expect("free");
        let running = live
            .start_run("t", "orders", "test", false)
            .await
            .expect("run");
        let dead = live
            .start_run("u", "orders", "test", false)
            .await
            .expect("run");
        // Another process starts: the live run stays, the dead one is marked.
        let starting = Store::open(&path).await.expect("open");
        assert_eq!(starting.mark_interrupted_runs().await.expect("mark"), 1);
        let status = |store: Store, tenant: &'static str, id: i64| async move {
            store
                .run(tenant, id)
                .await
                .expect("run")
                .expect("found")
                .status
        };
        assert_eq!(
            status(starting.clone(), "t", running).await,
            super::super::RunStatus::Running
        );
        assert_eq!(
            status(starting.clone(), "u", dead).await,
            super::super::RunStatus::Interrupted
        );
        drop(lease);
        assert_eq!(starting.mark_interrupted_runs().await.expect("mark"), 1);
        assert_eq!(
            status(starting, "t", running).await,
            super::super::RunStatus::Interrupted
        );
    }

    #[tokio::test]
    async fn in_memory_leases_hold_within_the_process() {
        let store = Store::open_in_memory().await.expect("open");
        let lease = store.lease_flow("t", "orders").expect("free");
        let err = store.lease_flow("t", "orders").expect_err("busy");
        assert!(err.to_string().contains("orders"), "{err}");
        drop(lease);
        store.lease_flow("t", "orders").expect("free again");
    }
}
