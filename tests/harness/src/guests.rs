//! The example wasm guests in `examples/guests/*.c`, compiled with clang for WASI on demand and
//! cached beside the test binaries, so each test can push a real module.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use anyhow::{Context, bail};

const CLANG: &str = "clang-19";
const SETUP_HINT: &str = "run scripts/setup.sh (it installs clang-19, lld-19, wasi-libc and \
                          libclang-rt-19-dev-wasm32)";

/// The guests' C sources.
pub fn guests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/guests")
}

/// `examples/guests/<name>.c` compiled to a `.wasm` file, recompiled only when the source is
/// newer than the cached output.
pub fn guest_wasm(name: &str) -> anyhow::Result<PathBuf> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        bail!("invalid guest name {name:?}");
    }
    let source = guests_dir().join(format!("{name}.c"));
    let source_modified = modified(&source)
        .with_context(|| format!("no guest source {} for {name:?}", source.display()))?;
    let out_dir = output_dir()?;
    let output = out_dir.join(format!("{name}.wasm"));
    if modified(&output).is_ok_and(|built| built >= source_modified) {
        return Ok(output);
    }
    compile(&source, &output)?;
    Ok(output)
}

fn modified(path: &Path) -> std::io::Result<SystemTime> {
    std::fs::metadata(path)?.modified()
}

/// `<target dir>/guests`: the test binary lives in `<target dir>/<profile>/deps`.
fn output_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the test binary")?;
    let target = exe
        .ancestors()
        .nth(3)
        .context("the test binary is not under a cargo target dir")?;
    let dir = target.join("guests");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Compiles into a temp name and renames, so parallel tests never see a half-written module.
fn compile(source: &Path, output: &Path) -> anyhow::Result<()> {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let temp = output.with_extension(format!(
        "tmp.{}.{}",
        std::process::id(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed)
    ));
    let result = Command::new(CLANG)
        .args(["--target=wasm32-wasi", "-O2", "-Wall", "-Werror"])
        .arg(source)
        .arg("-o")
        .arg(&temp)
        .output();
    let compiled = match result {
        Ok(compiled) => compiled,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("{CLANG} is not installed (needed to build the wasm guests): {SETUP_HINT}")
        }
        Err(e) => return Err(e).with_context(|| format!("running {CLANG}")),
    };
    if !compiled.status.success() {
        let _ = std::fs::remove_file(&temp);
        bail!(
            "{CLANG} failed to compile {} ({}); if headers or libraries are missing, {SETUP_HINT}:\n{}",
            source.display(),
            compiled.status,
            String::from_utf8_lossy(&compiled.stderr)
        );
    }
    std::fs::rename(&temp, output)
        .with_context(|| format!("moving the module to {}", output.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guest_compiles_to_a_wasm_module_and_is_cached() {
        let path = guest_wasm("hello").expect("clang-19 and wasi-libc are installed");
        let bytes = std::fs::read(&path).expect("read module");
        assert!(bytes.starts_with(b"\0asm"), "not a wasm module");
        let built = modified(&path).expect("mtime");
        assert_eq!(guest_wasm("hello").expect("cached"), path);
        assert_eq!(modified(&path).expect("mtime"), built, "recompiled");
    }

    #[test]
    fn unknown_or_malformed_names_are_errors() {
        let missing = format!("{:#}", guest_wasm("no-such-guest").expect_err("no source"));
        assert!(missing.contains("no guest source"), "{missing}");
        assert!(guest_wasm("../hello").is_err());
    }
}
