//! The node's one wasmtime engine and the thread that advances its epoch.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::WasmConfig;
use crate::RuntimeError;

/// Core instances and tables a component may need beside its main module (adapters, shims);
/// core modules need one of each.
const SLOTS_PER_INSTANCE: u32 = 4;

/// Linear memories in the pool: one per instance, and a quarter more for components whose
/// adapter brings its own. Each memory slot reserves about 4 GiB of address space (what
/// spares the guest's loads their bounds checks), so memories, not RAM, bound how many
/// instances one process can hold: four per instance capped a node near 3,500 pods.
fn total_memories(instances: u32) -> u32 {
    instances.saturating_add(instances / 4)
}

pub(crate) fn build(config: &WasmConfig) -> Result<Engine, RuntimeError> {
    let instances = config.max_instances.max(1);
    let slots = instances.saturating_mul(SLOTS_PER_INSTANCE);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(instances)
        .total_stacks(instances)
        .total_core_instances(slots)
        .total_memories(total_memories(instances))
        .total_tables(slots)
        .max_memory_size(usize::try_from(config.max_memory_bytes).unwrap_or(usize::MAX));
    let mut wasmtime = Config::new();
    wasmtime
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&wasmtime).map_err(|e| RuntimeError::Engine {
        reason: format!("{e:#}"),
    })
}

/// Advances the engine's epoch every tick, interrupting running guests so they can yield.
pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub(crate) fn start(engine: Engine, tick: Duration) -> Result<Self, RuntimeError> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    std::thread::park_timeout(tick);
                    engine.increment_epoch();
                }
            })
            .map_err(|e| RuntimeError::Engine {
                reason: format!("starting the epoch thread: {e}"),
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_engine_for_ten_thousand_instances_fits_the_address_space() {
        let mut config = WasmConfig::new(std::env::temp_dir());
        config.max_instances = 10_064;
        let engine = build(&config);
        assert!(engine.is_ok(), "{:?}", engine.err());
    }
}
