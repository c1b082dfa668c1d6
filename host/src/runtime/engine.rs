//! The one wasmtime `Engine`: component model, async, pooling allocator, epoch interruption,
//! and the thread that advances the epoch.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How the engine is set up. One per process.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Instances that can live at once (each call sequence holds one).
    pub max_instances: u32,
    /// The largest memory any connection may be given; per-connection caps are below it.
    pub max_memory_bytes: usize,
    /// How often the epoch advances; deadlines are counted in these ticks.
    pub epoch_tick: Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            max_instances: 256,
            max_memory_bytes: 256 * 1024 * 1024,
            epoch_tick: Duration::from_millis(10),
        }
    }
}

pub(crate) fn build(options: &EngineOptions) -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.parallel_compilation(true);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(options.max_instances);
    pool.total_core_instances(options.max_instances.saturating_mul(4));
    pool.max_core_instances_per_component(16);
    pool.total_memories(options.max_instances.saturating_mul(2));
    pool.max_memories_per_component(4);
    pool.total_tables(options.max_instances.saturating_mul(4));
    pool.max_tables_per_component(8);
    pool.total_stacks(options.max_instances);
    pool.max_memory_size(options.max_memory_bytes);
    // Keep a little of each freed memory mapped, so the next instance starts warm.
    pool.linear_memory_keep_resident(64 * 1024);
    pool.table_keep_resident(16 * 1024);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config)
}

/// Advances the engine's epoch every tick until dropped.
pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    pub(crate) fn start(engine: &Engine, tick: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let engine = engine.weak();
        let flag = stop.clone();
        let spawned = std::thread::Builder::new()
            .name("koppel-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    match engine.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            });
        if let Err(error) = spawned {
            tracing::error!(%error, "Cannot start the epoch thread; guest deadlines will not fire.");
        }
        EpochTicker { stop }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
