//! Per-store host state for the two kinds of guests.

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// `limits.memory` as a store limiter that remembers whether the guest hit it, so that the
/// resulting trap is reported as `OOMKilled` rather than a plain error.
pub(crate) struct MemoryCap {
    limits: StoreLimits,
    pub(crate) exceeded: bool,
}

impl MemoryCap {
    pub(crate) fn new(memory_bytes: Option<u64>) -> Self {
        let mut builder = StoreLimitsBuilder::new().trap_on_grow_failure(true);
        if let Some(bytes) = memory_bytes {
            builder = builder.memory_size(usize::try_from(bytes).unwrap_or(usize::MAX));
        }
        Self {
            limits: builder.build(),
            exceeded: false,
        }
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let verdict = self.limits.memory_growing(current, desired, maximum);
        if !matches!(verdict, Ok(true)) {
            self.exceeded = true;
        }
        verdict
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }
}

/// Store state of a WASI preview 1 core module.
pub(crate) struct ModuleHost {
    pub(crate) wasi: WasiP1Ctx,
    pub(crate) memory: MemoryCap,
}

/// Store state of a WASI preview 2 component.
pub(crate) struct ComponentHost {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) memory: MemoryCap,
}

impl WasiView for ComponentHost {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
