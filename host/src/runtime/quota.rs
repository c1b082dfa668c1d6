//! Quotas of one tenant, over all its connections and runs together: concurrent runs,
//! memory of all its instances, guest CPU time per hour (epoch ticks spent running its
//! guests), HTTP requests per minute, bytes out and in per hour, and activity-log rows kept.
//! One [`TenantQuota`] is shared by everything a tenant runs; each limit is optional (none:
//! unlimited, as for one shop's own koppel). Windows are fixed: a window starts with its
//! first use and lasts its period (a minute, an hour).
//!
//! Past a quota, a run waits (concurrent runs; requests per minute, when the minute ends
//! before the call's own limit) or stops with the quota named (memory, CPU, bytes), and
//! every wait and stop is counted for `/metrics` (`koppel_tenant_quota_*`).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::pool::{PoolSlot, RunPool};

/// A tenant's limits; `None`: unlimited.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct QuotaLimits {
    /// Runs of its flows at once; more wait for a slot.
    pub concurrent_runs: Option<u32>,
    /// Linear memory of all its connector instances together.
    pub memory_bytes: Option<usize>,
    /// Time its guests spend computing per hour (counted in epoch ticks).
    pub cpu_per_hour: Option<Duration>,
    /// Cores its guests may keep busy, over each second: beyond, they wait.
    pub cpu_share: Option<f64>,
    pub requests_per_minute: Option<u32>,
    pub bytes_out_per_hour: Option<u64>,
    pub bytes_in_per_hour: Option<u64>,
    /// Rows of its activity log kept: the oldest beyond go.
    pub activity_rows: Option<u64>,
}

impl QuotaLimits {
    pub fn is_unlimited(&self) -> bool {
        *self == QuotaLimits::default()
    }
}

/// The quotas koppel counts, by their names in `/metrics` and in errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Quota {
    ConcurrentRuns,
    Memory,
    Cpu,
    CpuShare,
    Requests,
    BytesOut,
    BytesIn,
    ActivityRows,
}

impl Quota {
    pub const ALL: [Quota; 8] = [
        Quota::ConcurrentRuns,
        Quota::Memory,
        Quota::Cpu,
        Quota::CpuShare,
        Quota::Requests,
        Quota::BytesOut,
        Quota::BytesIn,
        Quota::ActivityRows,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Quota::ConcurrentRuns => "concurrent_runs",
            Quota::Memory => "memory",
            Quota::Cpu => "cpu",
            Quota::CpuShare => "cpu_share",
            Quota::Requests => "requests",
            Quota::BytesOut => "bytes_out",
            Quota::BytesIn => "bytes_in",
            Quota::ActivityRows => "activity_rows",
        }
    }

    fn index(self) -> usize {
        Quota::ALL.iter().position(|q| *q == self).unwrap_or(0)
    }
}

/// A count in a fixed window.
#[derive(Debug)]
struct Window {
    period: Duration,
    started: Option<Instant>,
    used: u64,
}

impl Window {
    fn new(period: Duration) -> Window {
        Window {
            period,
            started: None,
            used: 0,
        }
    }

    /// The window at `now`: a new one once the last has ended.
    fn at(&mut self, now: Instant) -> &mut Window {
        if self.started.is_none_or(|s| now >= s + self.period) {
            self.started = Some(now);
            self.used = 0;
        }
        self
    }

    /// When the window ends (from `now`).
    fn left(&self, now: Instant) -> Duration {
        self.started
            .map(|s| (s + self.period).saturating_duration_since(now))
            .unwrap_or_default()
    }
}

/// What the HTTP side may do with a request now.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    Go,
    /// Wait this long, then ask again.
    Wait(Duration),
    /// Refused: the quota and why, for the error.
    Refused(Quota, String),
}

/// A run's slots: its tenant's and the process's; both given back when dropped (the
/// process's first).
#[derive(Debug)]
pub struct RunSlot {
    _shared: Option<PoolSlot>,
    _own: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl RunSlot {
    /// Whether the run holds any slot (false: no quota and no pool limit it).
    pub fn is_limited(&self) -> bool {
        self._shared.is_some() || self._own.is_some()
    }
}

/// The quotas of one tenant and what it has used of them.
#[derive(Debug)]
pub struct TenantQuota {
    tenant: String,
    limits: QuotaLimits,
    runs: Option<Arc<tokio::sync::Semaphore>>,
    /// The process's run slots, shared with the other tenants (hosting).
    pool: OnceLock<Arc<RunPool>>,
    memory: AtomicUsize,
    cpu_ms: Mutex<Window>,
    /// Guest time in the current second, for `cpu_share`.
    share_ms: Mutex<Window>,
    requests: Mutex<Window>,
    bytes_out: Mutex<Window>,
    bytes_in: Mutex<Window>,
    /// Waits and stops, by [`Quota::index`].
    hits: [AtomicU64; 8],
}

fn lock(window: &Mutex<Window>) -> MutexGuard<'_, Window> {
    match window.lock() {
        Ok(window) => window,
        Err(poisoned) => poisoned.into_inner(),
    }
}

const HOUR: Duration = Duration::from_secs(3600);
const MINUTE: Duration = Duration::from_secs(60);
const SECOND: Duration = Duration::from_secs(1);

fn mib(bytes: u64) -> u64 {
    bytes.div_ceil(1 << 20)
}

impl TenantQuota {
    pub fn new(tenant: &str, limits: QuotaLimits) -> Arc<TenantQuota> {
        Arc::new(TenantQuota {
            tenant: tenant.to_owned(),
            runs: limits
                .concurrent_runs
                .map(|n| Arc::new(tokio::sync::Semaphore::new(n.max(1) as usize))),
            pool: OnceLock::new(),
            limits,
            memory: AtomicUsize::new(0),
            cpu_ms: Mutex::new(Window::new(HOUR)),
            share_ms: Mutex::new(Window::new(SECOND)),
            requests: Mutex::new(Window::new(MINUTE)),
            bytes_out: Mutex::new(Window::new(HOUR)),
            bytes_in: Mutex::new(Window::new(HOUR)),
            hits: Default::default(),
        })
    }

    /// No limits (one shop's own koppel, tests).
    pub fn unlimited(tenant: &str) -> Arc<TenantQuota> {
        TenantQuota::new(tenant, QuotaLimits::default())
    }

    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    pub fn limits(&self) -> &QuotaLimits {
        &self.limits
    }

    /// Counts a wait or a stop at `quota`.
    pub fn hit(&self, quota: Quota) {
        self.hits[quota.index()].fetch_add(1, Ordering::Relaxed);
        if quota != Quota::ActivityRows {
            tracing::warn!(tenant = %self.tenant, quota = quota.name(), "Tenant reached a quota.");
        }
    }

    /// Waits and stops at `quota` since the start.
    pub fn hits(&self, quota: Quota) -> u64 {
        self.hits[quota.index()].load(Ordering::Relaxed)
    }

    /// What is used now of `quota` (its window's count; memory in bytes; CPU in ms).
    pub fn used(&self, quota: Quota) -> u64 {
        let now = Instant::now();
        match quota {
            Quota::ConcurrentRuns => match (&self.runs, self.limits.concurrent_runs) {
                (Some(runs), Some(n)) => {
                    u64::from(n.max(1)).saturating_sub(runs.available_permits() as u64)
                }
                _ => 0,
            },
            Quota::Memory => self.memory.load(Ordering::Relaxed) as u64,
            Quota::Cpu => lock(&self.cpu_ms).at(now).used,
            Quota::CpuShare => lock(&self.share_ms).at(now).used,
            Quota::Requests => lock(&self.requests).at(now).used,
            Quota::BytesOut => lock(&self.bytes_out).at(now).used,
            Quota::BytesIn => lock(&self.bytes_in).at(now).used,
            Quota::ActivityRows => 0,
        }
    }

    /// The limit of `quota` in the unit of [`TenantQuota::used`], if any.
    pub fn limit(&self, quota: Quota) -> Option<u64> {
        let l = &self.limits;
        match quota {
            Quota::ConcurrentRuns => l.concurrent_runs.map(u64::from),
            Quota::Memory => l.memory_bytes.map(|b| b as u64),
            Quota::Cpu => l.cpu_per_hour.map(|d| d.as_millis() as u64),
            Quota::CpuShare => l.cpu_share.map(|c| (c * 1000.0) as u64),
            Quota::Requests => l.requests_per_minute.map(u64::from),
            Quota::BytesOut => l.bytes_out_per_hour,
            Quota::BytesIn => l.bytes_in_per_hour,
            Quota::ActivityRows => l.activity_rows,
        }
    }

    /// Runs of this tenant take their turn in `pool` with every other tenant's (hosting).
    pub fn use_pool(&self, pool: Arc<RunPool>) {
        let _ = self.pool.set(pool);
    }

    /// A slot for one run: one of the tenant's `concurrent_runs` (waiting, counted once,
    /// while all are taken), then the process's pool slot in the tenant's turn. Held until
    /// dropped.
    pub async fn run_slot(&self) -> RunSlot {
        let own = match self.runs.clone() {
            None => None,
            Some(runs) => match runs.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    self.hit(Quota::ConcurrentRuns);
                    runs.acquire_owned().await.ok()
                }
            },
        };
        let shared = match self.pool.get() {
            Some(pool) => Some(pool.slot(&self.tenant).await),
            None => None,
        };
        RunSlot {
            _shared: shared,
            _own: own,
        }
    }

    /// An instance grows its memory by `bytes`: false (and counted) when that would take
    /// the tenant past its memory quota.
    pub fn grow_memory(&self, bytes: usize) -> bool {
        let Some(limit) = self.limits.memory_bytes else {
            self.memory.fetch_add(bytes, Ordering::Relaxed);
            return true;
        };
        let granted = self
            .memory
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= limit)
            })
            .is_ok();
        if !granted {
            self.hit(Quota::Memory);
        }
        granted
    }

    /// An instance ended: its memory is free again.
    pub fn release_memory(&self, bytes: usize) {
        let _ = self
            .memory
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                Some(used.saturating_sub(bytes))
            });
    }

    /// Why a memory growth was refused.
    pub fn memory_message(&self) -> String {
        format!(
            "tenant `{}` reached its memory quota of {} MiB for all its connector instances together",
            self.tenant,
            self.limits.memory_bytes.map_or(0, |b| mib(b as u64))
        )
    }

    /// A guest of the tenant ran one more epoch tick of `tick`: false (and counted) once
    /// the tenant's CPU time this hour is spent.
    pub fn spend_tick(&self, tick: Duration, now: Instant) -> bool {
        let Some(limit) = self.limits.cpu_per_hour else {
            return true;
        };
        let spent = {
            let mut window = lock(&self.cpu_ms);
            let window = window.at(now);
            let spent = window.used >= limit.as_millis() as u64;
            if !spent {
                window.used += (tick.as_millis() as u64).max(1);
            }
            spent
        };
        if spent {
            self.hit(Quota::Cpu);
        }
        !spent
    }

    /// A guest of the tenant ran one more tick of `tick`: how long it should pause (its
    /// thread given to others) because the tenant's guests used more than its `cpu_share`
    /// of this second; counted as a `cpu_share` hit.
    pub fn throttle(&self, tick: Duration, now: Instant) -> Option<Duration> {
        let share = self.limits.cpu_share?;
        let allowed = (share * 1000.0) as u64;
        let pause = {
            let mut window = lock(&self.share_ms);
            let window = window.at(now);
            window.used += (tick.as_millis() as u64).max(1);
            (window.used > allowed).then(|| window.left(now).max(tick))
        };
        if pause.is_some() {
            self.hits[Quota::CpuShare.index()].fetch_add(1, Ordering::Relaxed);
        }
        pause
    }

    /// Why a guest was stopped for CPU time.
    pub fn cpu_message(&self) -> String {
        let left = lock(&self.cpu_ms).left(Instant::now());
        format!(
            "tenant `{}` used its CPU time of {:?} per hour in its connectors; it is given again in {}s",
            self.tenant,
            self.limits.cpu_per_hour.unwrap_or_default(),
            left.as_secs()
        )
    }

    /// Whether a request of `bytes_out` may go at `now`; a `Go` counts it.
    pub fn admit_request(&self, bytes_out: u64, now: Instant) -> Admission {
        if let Some(limit) = self.limits.bytes_out_per_hour {
            let mut window = lock(&self.bytes_out);
            let window = window.at(now);
            if window.used.saturating_add(bytes_out) > limit {
                let left = window.left(now);
                return Admission::Refused(
                    Quota::BytesOut,
                    format!(
                        "tenant `{}` sent its {} MiB per hour; more can go in {}s",
                        self.tenant,
                        mib(limit),
                        left.as_secs()
                    ),
                );
            }
        }
        if let Some(limit) = self.limits.bytes_in_per_hour {
            let mut window = lock(&self.bytes_in);
            let window = window.at(now);
            if window.used >= limit {
                return Admission::Refused(
                    Quota::BytesIn,
                    format!(
                        "tenant `{}` received its {} MiB per hour; more can come in {}s",
                        self.tenant,
                        mib(limit),
                        window.left(now).as_secs()
                    ),
                );
            }
        }
        if let Some(limit) = self.limits.requests_per_minute {
            let mut window = lock(&self.requests);
            let window = window.at(now);
            if window.used >= u64::from(limit) {
                return Admission::Wait(window.left(now).max(Duration::from_millis(1)));
            }
            window.used += 1;
        }
        if self.limits.bytes_out_per_hour.is_some() {
            lock(&self.bytes_out).at(now).used += bytes_out;
        }
        Admission::Go
    }

    /// Why a request could not wait for the next minute.
    pub fn requests_message(&self, wait: Duration) -> String {
        format!(
            "tenant `{}` made its {} requests this minute, and the next one may go in {}s, after its call's time limit",
            self.tenant,
            self.limits.requests_per_minute.unwrap_or_default(),
            wait.as_secs()
        )
    }

    /// A response of `bytes` came in.
    pub fn received(&self, bytes: u64, now: Instant) {
        if self.limits.bytes_in_per_hour.is_some() {
            lock(&self.bytes_in).at(now).used += bytes;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_beyond_the_minute_wait_for_the_next_one() {
        let quota = TenantQuota::new(
            "t",
            QuotaLimits {
                requests_per_minute: Some(2),
                ..QuotaLimits::default()
            },
        );
        let t0 = Instant::now();
        assert_eq!(quota.admit_request(10, t0), Admission::Go);
        assert_eq!(quota.admit_request(10, t0), Admission::Go);
        let Admission::Wait(wait) = quota.admit_request(10, t0 + Duration::from_secs(20)) else {
            panic!("the third request of the minute waits");
        };
        assert_eq!(wait, Duration::from_secs(40));
        assert_eq!(quota.admit_request(10, t0 + MINUTE), Admission::Go);
    }

    #[test]
    fn bytes_out_past_the_hour_are_refused_naming_the_quota() {
        let quota = TenantQuota::new(
            "shop-a",
            QuotaLimits {
                bytes_out_per_hour: Some(3 << 20),
                bytes_in_per_hour: Some(1 << 20),
                ..QuotaLimits::default()
            },
        );
        let t0 = Instant::now();
        assert_eq!(quota.admit_request(2 << 20, t0), Admission::Go);
        match quota.admit_request(2 << 20, t0) {
            Admission::Refused(Quota::BytesOut, why) => {
                assert!(
                    why.contains("shop-a") && why.contains("3 MiB per hour"),
                    "{why}"
                )
            }
            other => panic!("{other:?}"),
        }
        quota.received(1 << 20, t0);
        assert!(matches!(
            quota.admit_request(0, t0),
            Admission::Refused(Quota::BytesIn, _)
        ));
        assert_eq!(quota.admit_request(2 << 20, t0 + HOUR), Admission::Go);
    }

    #[test]
    fn memory_and_cpu_are_counted_over_all_instances() {
        let quota = TenantQuota::new(
            "t",
            QuotaLimits {
                memory_bytes: Some(100),
                cpu_per_hour: Some(Duration::from_millis(30)),
                ..QuotaLimits::default()
            },
        );
        assert!(quota.grow_memory(60));
        assert!(!quota.grow_memory(60), "a second instance past the total");
        quota.release_memory(60);
        assert!(quota.grow_memory(60));
        assert_eq!(quota.hits(Quota::Memory), 1);
        let (t0, tick) = (Instant::now(), Duration::from_millis(10));
        assert!((0..3).all(|_| quota.spend_tick(tick, t0)));
        assert!(!quota.spend_tick(tick, t0), "3 ticks of 10 ms are 30 ms");
        assert!(quota.spend_tick(tick, t0 + HOUR));
        assert_eq!(quota.used(Quota::Cpu), 10);
    }

    #[test]
    fn a_tenant_past_its_cpu_share_pauses_until_the_second_ends() {
        let quota = TenantQuota::new(
            "t",
            QuotaLimits {
                cpu_share: Some(0.05),
                ..QuotaLimits::default()
            },
        );
        let (t0, tick) = (Instant::now(), Duration::from_millis(10));
        // 50 ms of this second are its share: five ticks go on.
        assert!((0..5).all(|_| quota.throttle(tick, t0).is_none()));
        assert_eq!(
            quota.throttle(tick, t0 + Duration::from_millis(400)),
            Some(Duration::from_millis(600))
        );
        assert_eq!(quota.hits(Quota::CpuShare), 1);
        assert_eq!(quota.throttle(tick, t0 + SECOND), None, "a new second");
        assert_eq!(TenantQuota::unlimited("u").throttle(tick, t0), None);
    }

    #[tokio::test]
    async fn runs_beyond_the_quota_wait_for_a_slot() {
        let quota = TenantQuota::new(
            "t",
            QuotaLimits {
                concurrent_runs: Some(1),
                ..QuotaLimits::default()
            },
        );
        let first = quota.run_slot().await;
        assert!(first.is_limited());
        assert_eq!(quota.used(Quota::ConcurrentRuns), 1);
        let waiting = {
            let quota = quota.clone();
            tokio::spawn(async move { quota.run_slot().await.is_limited() })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(first);
        assert!(waiting.await.expect("join"));
        assert_eq!(quota.hits(Quota::ConcurrentRuns), 1);
        assert!(!TenantQuota::unlimited("u").run_slot().await.is_limited());
    }
}
