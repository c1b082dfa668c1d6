//! What a guest may call: the data of one store ([`HostState`]) and the contract's host
//! imports, each handed to the module that holds its policy (`http-send` → [`super::http`],
//! `log` → [`super::log`], `kv-*` → [`super::kv`]).

use std::sync::Arc;
use std::time::Instant;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::activity::ActivitySink;
use super::http::AllowList;
use super::kv::KvStore;
use super::limits::Limits;
use super::quota::TenantQuota;
use super::redact::Redactor;
use super::{bindings, http, kv, log};

/// What the host imports of one connection need.
pub(crate) struct CallContext {
    pub(crate) tenant: String,
    pub(crate) connection: String,
    pub(crate) connector: String,
    pub(crate) allow: AllowList,
    pub(crate) redactor: Redactor,
    pub(crate) limits: Limits,
    pub(crate) activity: Arc<dyn ActivitySink>,
    pub(crate) kv: Arc<dyn KvStore>,
    pub(crate) client: reqwest::Client,
    pub(crate) network: super::NetworkGuard,
    pub(crate) quota: Arc<TenantQuota>,
}

impl CallContext {
    /// The key-value scope of this connection: connections never see each other's keys.
    pub(crate) fn kv_scope(&self) -> String {
        format!("{}/{}", self.tenant, self.connection)
    }
}

/// Caps the guest's memory (the connection's limit, and the tenant's quota over all its
/// instances) and remembers which cap it hit, for a clear error.
pub(crate) struct SandboxLimiter {
    pub(crate) memory_bytes: usize,
    pub(crate) exceeded: bool,
    /// The most linear memory the guest has grown to.
    pub(crate) peak: usize,
    pub(crate) quota: Arc<TenantQuota>,
    /// What this instance holds of the tenant's memory quota (given back when it ends).
    pub(crate) granted: usize,
    /// Why the tenant's memory quota refused a growth.
    pub(crate) quota_refused: Option<String>,
}

impl SandboxLimiter {
    pub(crate) fn new(memory_bytes: usize, quota: Arc<TenantQuota>) -> SandboxLimiter {
        SandboxLimiter {
            memory_bytes,
            exceeded: false,
            peak: 0,
            quota,
            granted: 0,
            quota_refused: None,
        }
    }
}

impl Drop for SandboxLimiter {
    fn drop(&mut self) {
        self.quota.release_memory(self.granted);
    }
}

impl ResourceLimiter for SandboxLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.exceeded = true;
            return Err(wasmtime::Error::msg(format!(
                "memory limit: the guest asked for {desired} bytes, the limit is {}",
                self.memory_bytes
            )));
        }
        let more = desired.saturating_sub(current);
        if !self.quota.grow_memory(more) {
            let message = self.quota.memory_message();
            self.quota_refused = Some(message.clone());
            return Err(wasmtime::Error::msg(message));
        }
        self.granted += more;
        self.peak = self.peak.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// The data of one store.
pub(crate) struct HostState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: SandboxLimiter,
    pub(crate) ctx: Arc<CallContext>,
    pub(crate) log: log::GuestLog,
    /// When the running call must stop at the latest: past it, the next epoch check traps.
    pub(crate) hard_deadline: Instant,
    /// Why the tenant's CPU quota stopped the guest.
    pub(crate) cpu_refused: Option<String>,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl bindings::koppel::connector::types::Host for HostState {}
impl bindings::koppel::connector::manifest_types::Host for HostState {}

impl bindings::koppel::connector::host::Host for HostState {
    async fn http_send(
        &mut self,
        request: bindings::HttpRequest,
    ) -> Result<bindings::HttpResponse, bindings::HttpError> {
        http::send(&self.ctx, request, self.hard_deadline).await
    }

    async fn log(
        &mut self,
        level: bindings::Level,
        message: String,
        fields: Vec<(String, String)>,
    ) {
        self.log.write(&self.ctx, level, &message, &fields);
    }

    async fn kv_get(&mut self, key: String) -> Option<Vec<u8>> {
        kv::get(&self.ctx, &key).await
    }

    async fn kv_set(&mut self, key: String, value: Vec<u8>, ttl_seconds: Option<u32>) {
        kv::set(&self.ctx, &key, value, ttl_seconds).await;
    }

    async fn kv_delete(&mut self, key: String) {
        kv::delete(&self.ctx, &key).await;
    }
}
