//! Compiled modules: loaded once per digest in memory, and cached on disk as
//! `<digest>-<wasmtime version>-<engine hash>.cwasm` so that a restart does no compilation.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::OnceCell;
use wasmtime::component::Linker as ComponentLinker;
use wasmtime::{Engine, InstancePre, Linker, Precompiled};
use wasmtime_wasi::p2::bindings::CommandPre;

use super::host::{ComponentHost, ModuleHost};
use super::precompiled;
use crate::{ModuleSource, RuntimeError};

/// The major version in cache names; the engine hash covers the exact version and settings.
const WASMTIME_MAJOR: &str = "wasmtime48";

/// A module ready to instantiate: imports resolved, exports looked up.
pub(crate) enum Artifact {
    Module(InstancePre<ModuleHost>),
    Component(CommandPre<ComponentHost>),
}

pub(crate) struct ArtifactCache {
    engine: Engine,
    module_linker: Linker<ModuleHost>,
    component_linker: ComponentLinker<ComponentHost>,
    dir: PathBuf,
    version_tag: String,
    loaded: Mutex<HashMap<String, Arc<OnceCell<Arc<Artifact>>>>>,
}

impl ArtifactCache {
    pub(crate) fn new(engine: &Engine, dir: PathBuf) -> Result<Self, RuntimeError> {
        std::fs::create_dir_all(&dir).map_err(|e| RuntimeError::Cache {
            path: dir.clone(),
            reason: e.to_string(),
        })?;
        let engine_error = |e: wasmtime::Error| RuntimeError::Engine {
            reason: format!("{e:#}"),
        };
        let mut module_linker = Linker::new(engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut module_linker, |host: &mut ModuleHost| {
            &mut host.wasi
        })
        .map_err(engine_error)?;
        let mut component_linker = ComponentLinker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut component_linker).map_err(engine_error)?;
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(Self {
            engine: engine.clone(),
            module_linker,
            component_linker,
            dir,
            version_tag: format!("{WASMTIME_MAJOR}-{:016x}", hasher.finish()),
            loaded: Mutex::new(HashMap::new()),
        })
    }

    /// Where the compiled artifact of a digest lives.
    pub(crate) fn path_for(&self, digest: &str) -> PathBuf {
        let safe: String = digest
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.dir.join(format!("{safe}-{}.cwasm", self.version_tag))
    }

    /// The artifact for a module, compiling it only if neither memory nor disk has it.
    pub(crate) async fn load(&self, source: &ModuleSource) -> Result<Arc<Artifact>, RuntimeError> {
        let cell = self
            .loaded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(source.digest.clone())
            .or_default()
            .clone();
        cell.get_or_try_init(|| self.load_uncached(source))
            .await
            .cloned()
    }

    /// Drops the in-memory artifact of a digest no container uses any more (the disk copy stays).
    pub(crate) fn release(&self, digest: &str) {
        self.loaded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(digest);
    }

    async fn load_uncached(&self, source: &ModuleSource) -> Result<Arc<Artifact>, RuntimeError> {
        let engine = self.engine.clone();
        let cached = self.path_for(&source.digest);
        let source_path = source.path.clone();
        let compiled =
            tokio::task::spawn_blocking(move || load_or_compile(&engine, &source_path, &cached))
                .await
                .map_err(|e| RuntimeError::Engine {
                    reason: format!("compile task failed: {e}"),
                })??;
        let invalid = |e: wasmtime::Error| RuntimeError::InvalidModule {
            path: source.path.clone(),
            reason: format!("{e:#}"),
        };
        let artifact = match compiled {
            Compiled::Module(module) => {
                if module.get_export("_start").is_none() {
                    return Err(RuntimeError::InvalidModule {
                        path: source.path.clone(),
                        reason:
                            "no `_start` export: only WASI command modules can run as containers"
                                .into(),
                    });
                }
                Artifact::Module(
                    self.module_linker
                        .instantiate_pre(&module)
                        .map_err(invalid)?,
                )
            }
            Compiled::Component(component) => {
                let pre = self
                    .component_linker
                    .instantiate_pre(&component)
                    .map_err(invalid)?;
                Artifact::Component(CommandPre::new(pre).map_err(invalid)?)
            }
        };
        Ok(Arc::new(artifact))
    }
}

enum Compiled {
    Module(wasmtime::Module),
    Component(wasmtime::component::Component),
}

/// Blocking: deserialises a cached artifact, or compiles the module and caches it first.
fn load_or_compile(
    engine: &Engine,
    source: &Path,
    cached: &Path,
) -> Result<Compiled, RuntimeError> {
    if let Some(compiled) = deserialize(engine, cached) {
        return Ok(compiled);
    }
    let bytes = std::fs::read(source).map_err(|e| RuntimeError::ReadModule {
        path: source.to_path_buf(),
        source: e,
    })?;
    let invalid = |reason: String| RuntimeError::InvalidModule {
        path: source.to_path_buf(),
        reason,
    };
    if !bytes.starts_with(b"\0asm") {
        return Err(invalid(
            "not a WebAssembly binary (no `\\0asm` magic at the start)".into(),
        ));
    }
    let serialized = if is_component(&bytes) {
        engine.precompile_component(&bytes)
    } else {
        engine.precompile_module(&bytes)
    }
    .map_err(|e| invalid(format!("{e:#}")))?;
    write_atomically(cached, &serialized)?;
    deserialize(engine, cached).ok_or_else(|| RuntimeError::Cache {
        path: cached.to_path_buf(),
        reason: "freshly compiled artifact does not load".into(),
    })
}

/// Binary format version: core modules carry 1, components carry layer 1 in the upper half.
fn is_component(bytes: &[u8]) -> bool {
    bytes.get(6..8) == Some(&[1, 0])
}

/// A cached artifact, or `None` when there is none or it no longer loads (then it is rebuilt).
fn deserialize(engine: &Engine, path: &Path) -> Option<Compiled> {
    match Engine::detect_precompiled_file(path).ok()?? {
        Precompiled::Module => precompiled::module(engine, path).ok().map(Compiled::Module),
        Precompiled::Component => precompiled::component(engine, path)
            .ok()
            .map(Compiled::Component),
    }
}

/// Writes through a temporary file and a rename so a reader never sees a partial artifact.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), RuntimeError> {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let cache_error = |e: std::io::Error| RuntimeError::Cache {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let temp = path.with_extension(format!(
        "tmp.{}.{}",
        std::process::id(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed)
    ));
    let mut file = std::fs::File::create(&temp).map_err(cache_error)?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&temp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&temp);
            cache_error(e)
        })
}
