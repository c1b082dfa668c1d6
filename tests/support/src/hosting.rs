//! What the hosting tests and bench share: a tenant file of the fixture connector, a local
//! system for connectors to reach, a hosting koppel served as `koppel run` serves it, and a
//! wait for runs to end on the hosting's own signal.

use std::path::{Path, PathBuf};
use std::time::Duration;

use koppel::app::{App, Serving};
use koppel::flow::{Loaded, RunSummary};
use koppel::runtime::Runtime;
use koppel::store::{Run, RunStatus, Store};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// An operator's folder: its `koppel.toml` (the server on a free port of 127.0.0.1, opened
/// by `own-token-0001`; the tenants folder read again only when a test says so) and an
/// empty `tenants/`.
pub struct HostingDir {
    _dir: tempfile::TempDir,
    /// The operator's `koppel.toml`.
    pub file: PathBuf,
    /// The tenants folder.
    pub tenants: PathBuf,
}

impl HostingDir {
    /// `hosting` is TOML added at the end of `[hosting]` (more keys, or `[hosting.quotas]`).
    pub fn new(hosting: &str) -> HostingDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let tenants = dir.path().join("tenants");
        std::fs::create_dir(&tenants).expect("tenants folder");
        let file = dir.path().join("koppel.toml");
        std::fs::write(
            &file,
            format!(
                "tenant = \"operator\"\n[server]\nlisten = \"127.0.0.1:0\"\ntokens = [\"own-token-0001\"]\n\
                 [hosting]\ntenants = \"tenants\"\nreload_every = \"1h\"\n{hosting}\n"
            ),
        )
        .expect("the operator's koppel.toml");
        HostingDir {
            _dir: dir,
            file,
            tenants,
        }
    }

    /// Writes tenant `name`'s file.
    pub fn tenant(&self, name: &str, text: &str) {
        std::fs::write(self.tenants.join(format!("{name}.toml")), text).expect("tenant file");
    }
}

/// A tenant file (the format of `koppel.toml`, its tenant named by the file): the fixture
/// connection `src`, with `src_config` as the entries of its `config` table and
/// `src_settings` as its own lines (`memory_mib = 256`), copied to `dst` by flow `copy`
/// every hour; `extra` appended.
pub fn fixture_tenant(src_config: &str, src_settings: &str, extra: &str) -> String {
    let fixture = koppel::connectors::test_guest("fixture")
        .expect("the fixture connector is built by build.rs")
        .display()
        .to_string();
    format!(
        "[connections.src]\nconnector = {fixture:?}\n{src_settings}\nconfig = {{ {src_config} }}\n\
         [connections.dst]\nconnector = {fixture:?}\n\
         [flows.copy]\nsource = {{ connection = \"src\", stream = \"products\" }}\n\
         target = {{ connection = \"dst\", stream = \"products\" }}\ninterval = \"1h\"\n{extra}"
    )
}

/// A system on 127.0.0.1 answering every GET and POST of `/` with 200, and `GET /big` with
/// 100 MiB; its URL, with the trailing `/`.
pub async fn http_ok() -> String {
    let app = axum::Router::new()
        .route(
            "/",
            axum::routing::get(|| async { "ok" }).post(|| async { "ok" }),
        )
        .route(
            "/big",
            axum::routing::get(|| async { vec![b'x'; 100 << 20] }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/")
}

/// The koppel of `file` opened on `runtime` and served (schedule, server and, with
/// `[hosting] tenants`, the hosted tenants), as `koppel run` does.
pub async fn serve(file: &Path, runtime: &Runtime) -> (App, Serving) {
    let loaded = Loaded::read(file).expect("the operator's koppel.toml");
    let app = App::open(loaded, runtime).await.expect("open");
    let serving = app
        .serve(CancellationToken::new(), None)
        .await
        .expect("serve");
    (app, serving)
}

/// The last run of `flow` of `tenant`, once it has ended.
pub async fn ended_run(store: &Store, tenant: &str, flow: &str) -> Option<Run> {
    store
        .runs(tenant, Some(flow), 1)
        .await
        .expect("runs")
        .into_iter()
        .next()
        .filter(|r| r.status != RunStatus::Running)
}

/// Waits until each (tenant, flow) of `wanted` has a run that ended, woken by `runs` (the
/// hosting's finished runs, subscribed before); at most `limit`.
pub async fn wait_for_runs(
    store: &Store,
    runs: &mut broadcast::Receiver<(String, RunSummary)>,
    wanted: &[(&str, &str)],
    limit: Duration,
) {
    let all = async {
        loop {
            let mut ended = 0;
            for (tenant, flow) in wanted {
                if ended_run(store, tenant, flow).await.is_some() {
                    ended += 1;
                }
            }
            if ended == wanted.len() {
                break;
            }
            // The next run to end, of any tenant.
            let _ = runs.recv().await;
        }
    };
    tokio::time::timeout(limit, all)
        .await
        .unwrap_or_else(|_| panic!("runs of {wanted:?} did not all end within {limit:?}"));
}

/// The last run of `flow` of each tenant failed, its error naming the tenant and saying
/// `says` (the quota it reached).
pub async fn assert_stopped_at_quotas(store: &Store, flow: &str, stopped: &[(&str, &str)]) {
    for (tenant, says) in stopped {
        let run = ended_run(store, tenant, flow).await.expect("ran");
        assert_eq!(run.status, RunStatus::Failed, "{tenant}: {run:?}");
        let error = run.error.unwrap_or_default();
        assert!(
            error.contains(&format!("tenant `{tenant}`")) && error.contains(says),
            "{tenant}: {error}"
        );
    }
}
