//! Loading compiled artifacts from the on-disk cache: the only unsafe code in the crate.

use std::path::Path;

use wasmtime::component::Component;
use wasmtime::{Engine, Module};

pub(crate) fn module(engine: &Engine, path: &Path) -> wasmtime::Result<Module> {
    // SAFETY: wasmtime trusts precompiled code as native code. Files in the cache directory are
    // written only by `ArtifactCache` from this engine's own `precompile_*` output, under a name
    // that carries the wasmtime version and the engine's compatibility hash, via a rename so no
    // half-written file is ever visible; wasmtime itself re-checks version and settings.
    unsafe { Module::deserialize_file(engine, path) }
}

pub(crate) fn component(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    // SAFETY: as for `module` above: the cache holds only this engine's own compiled output.
    unsafe { Component::deserialize_file(engine, path) }
}
