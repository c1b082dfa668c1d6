//! The change watch: a flow with `watch = "1s"` runs as soon as its source stream has
//! something new, found by asking the source connection's `changes` stream every `watch`.
//!
//! `changes` is a convention of the contract, not a new piece of it (connector-contract.md
//! 3.9): a readable stream of reference entries, one per stream the connector can tell
//! about, keyed by the stream's name, whose `name` is a version (a sync marker, a change
//! counter) that moves whenever that stream has something new to read. One watcher per source
//! connection asks it (one read, one small request for MplusKASSA's `getCurrentSyncMarkers`)
//! for all the flows that watch that connection, and wakes a flow when the version of its
//! source stream moved. The host names no connector: any connector that offers `changes` can
//! be watched. The watcher's reads are not written to the activity log (one a second would
//! drown it); the runs they start are.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::engine::Environment;
use crate::runtime::bindings::{Record, StreamAccess};
use crate::runtime::{ConnectionSpec, Manifest, NullSink, Session};

/// The stream a connector offers to be watched.
pub const CHANGES_STREAM: &str = "changes";

/// How many entries a `changes` read may return (a connector has a few streams).
const CHANGES_LIMIT: u32 = 100;

/// Whether a connector offers a `changes` stream to watch.
pub fn offers_changes(manifest: &Manifest) -> bool {
    manifest
        .streams
        .iter()
        .any(|s| s.name == CHANGES_STREAM && s.access.contains(StreamAccess::READ))
}

/// A flow that watches its source, and how to wake it.
pub(super) struct Watcher {
    pub flow: String,
    /// The source stream whose version is watched.
    pub stream: String,
    pub every: Duration,
    pub wake: Arc<dyn Fn() + Send + Sync>,
}

/// Versions by stream, from a `changes` page.
fn versions(records: Vec<Record>) -> HashMap<String, String> {
    records
        .into_iter()
        .filter_map(|record| match record {
            Record::Reference(entry) => Some((entry.key, entry.name)),
            _ => None,
        })
        .collect()
}

/// Starts one watcher per source connection of `watchers` (connection, watcher).
pub(super) fn start(
    tasks: &mut JoinSet<()>,
    env: &Environment,
    watchers: Vec<(String, Watcher)>,
    cancel: &CancellationToken,
) {
    let mut by_connection: BTreeMap<String, Vec<Watcher>> = BTreeMap::new();
    for (connection, watcher) in watchers {
        by_connection.entry(connection).or_default().push(watcher);
    }
    for (connection, watchers) in by_connection {
        let env = env.clone();
        let cancel = cancel.clone();
        tasks.spawn(async move { watch(env, connection, watchers, cancel).await });
    }
}

/// Asks `connection`'s `changes` stream every interval (the shortest of its watchers') and
/// wakes the flows whose stream's version moved. The first answer is the baseline: the flows
/// run at the start anyway.
async fn watch(
    env: Environment,
    connection: String,
    watchers: Vec<Watcher>,
    cancel: CancellationToken,
) {
    let Some(setup) = env.connections.get(&connection) else {
        return;
    };
    let every = watchers
        .iter()
        .map(|w| w.every)
        .min()
        .unwrap_or(Duration::from_secs(1));
    let spec = ConnectionSpec {
        tenant: env.tenant.clone(),
        name: connection.clone(),
        config: setup.config.clone(),
        limits: setup.limits.clone(),
        activity: Arc::new(NullSink),
        kv: Arc::new(env.store.clone()),
        quota: env.quota.clone(),
    };
    let source = match setup.connector.connect(spec) {
        Ok(source) => source,
        Err(error) => {
            tracing::error!(connection = %connection, %error, "The change watch cannot connect; the watched flows run on their interval.");
            return;
        }
    };
    let flows: Vec<&str> = watchers.iter().map(|w| w.flow.as_str()).collect();
    tracing::info!(connection = %connection, every_ms = every.as_millis() as u64, flows = ?flows, "Watching for changes.");
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut session: Option<Session> = None;
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut failing = false;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = cancel.cancelled() => break,
        }
        if session.as_ref().is_none_or(|s| !s.is_alive()) {
            session = match source.session().await {
                Ok(session) => Some(session),
                Err(error) => {
                    if !failing {
                        tracing::warn!(connection = %connection, %error, "The change watch cannot open a session; it tries again.");
                    }
                    failing = true;
                    continue;
                }
            };
        }
        let Some(open) = session.as_mut() else {
            continue;
        };
        let page = match open.read(CHANGES_STREAM, None, CHANGES_LIMIT).await {
            Ok(page) => page,
            Err(error) => {
                if !failing {
                    tracing::warn!(connection = %connection, %error, "The change watch could not ask for changes; it tries again.");
                }
                failing = true;
                continue;
            }
        };
        if failing {
            tracing::info!(connection = %connection, "The change watch asks again.");
            failing = false;
        }
        for (stream, version) in versions(page.records) {
            let moved = seen
                .insert(stream.clone(), version.clone())
                .is_some_and(|before| before != version);
            if !moved {
                continue;
            }
            for watcher in watchers.iter().filter(|w| w.stream == stream) {
                tracing::debug!(connection = %connection, flow = %watcher.flow, stream = %stream, version = %version, "Changed: running the flow.");
                (watcher.wake)();
            }
        }
    }
}
