//! A runtime on a temp dir and helpers to turn guests into containers.

pub mod guests;

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rkube_runtimes::wasm::{WasmConfig, WasmRuntime};
use rkube_runtimes::{ContainerSpec, Image, Limits, ModuleSource};

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub runtime: WasmRuntime,
}

impl Fixture {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let runtime = runtime_on(dir.path(), 1000);
        Self { dir, runtime }
    }

    /// Writes a module (text is compiled to binary) and returns its source.
    pub fn module(&self, name: &str, text: &str) -> ModuleSource {
        let bytes = wat::parse_str(text).expect("test guest is valid wat");
        self.raw_module(name, &bytes)
    }

    pub fn raw_module(&self, name: &str, bytes: &[u8]) -> ModuleSource {
        let path = self.dir.path().join(format!("{name}.wasm"));
        std::fs::write(&path, bytes).expect("write module");
        let mut hasher = DefaultHasher::new();
        bytes.hash(&mut hasher);
        ModuleSource {
            path,
            digest: format!("sha256:{:016x}", hasher.finish()),
        }
    }

    /// A container spec for a guest, logging to `<name>.log`.
    pub fn spec(&self, name: &str, text: &str) -> ContainerSpec {
        ContainerSpec {
            pod_uid: "pod-1".into(),
            container_name: name.into(),
            image: Image::Wasm(self.module(name, text)),
            args: vec![name.into()],
            env: vec![],
            working_dir: None,
            mounts: vec![],
            limits: Limits::default(),
            log_path: self.log_path(name),
        }
    }

    pub fn log_path(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }

    /// The records of a container log as (stream, tag, text), timestamps checked.
    pub fn log(&self, name: &str) -> Vec<(String, String, String)> {
        let text = std::fs::read_to_string(self.log_path(name)).unwrap_or_default();
        text.lines()
            .map(|line| {
                let mut parts = line.splitn(4, ' ');
                let stamp = parts.next().unwrap_or_default();
                assert!(
                    chrono_like_rfc3339_nano(stamp),
                    "bad CRI timestamp in {line:?}"
                );
                let mut next = || parts.next().unwrap_or_default().to_string();
                (next(), next(), next())
            })
            .collect()
    }
}

pub fn runtime_on(dir: &Path, max_instances: u32) -> WasmRuntime {
    let mut config = WasmConfig::new(dir.join("cache"));
    config.max_instances = max_instances;
    config.max_memory_bytes = 64 << 20;
    WasmRuntime::new(config).expect("runtime")
}

/// `2006-01-02T15:04:05.999999999Z`: date, `T`, time, nine fraction digits, `Z`.
fn chrono_like_rfc3339_nano(stamp: &str) -> bool {
    let bytes = stamp.as_bytes();
    bytes.len() == 30
        && bytes[10] == b'T'
        && bytes[19] == b'.'
        && bytes[29] == b'Z'
        && bytes[20..29].iter().all(u8::is_ascii_digit)
}

pub fn rec(stream: &str, tag: &str, text: &str) -> (String, String, String) {
    (stream.into(), tag.into(), text.into())
}

pub async fn within<T>(limit: Duration, what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, fut)
        .await
        .unwrap_or_else(|_| panic!("{what} took longer than {limit:?}"))
}

pub fn os_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0)
}
