//! Finding the wasm module in a pulled layer: the layer itself (wasm artifact) or one file
//! inside a tar / tar+gzip layer (plain OCI image).

use std::io::Read;

use oci_client::manifest::{
    IMAGE_DOCKER_LAYER_GZIP_MEDIA_TYPE, IMAGE_DOCKER_LAYER_TAR_MEDIA_TYPE,
    IMAGE_LAYER_GZIP_MEDIA_TYPE, IMAGE_LAYER_MEDIA_TYPE, WASM_LAYER_MEDIA_TYPE,
};

/// The CNCF wasm OCI artifact's layer media type.
pub const WASM_MEDIA_TYPE: &str = "application/wasm";
/// The CNCF wasm OCI artifact's config media type.
pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";

const WASM_MAGIC: &[u8] = b"\0asm";
const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
/// Larger than any real module (a big one is tens of MB); bounds what a hostile layer can
/// make the node hold in memory.
pub(crate) const MAX_MODULE_BYTES: u64 = 512 * 1024 * 1024;
/// The largest layer blob accepted; compressed layers hold the module plus some files.
pub(crate) const MAX_LAYER_BYTES: u64 = 1024 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LayerKind {
    /// The layer is the module.
    Module,
    /// A filesystem layer (plain or gzipped tar) holding the module.
    Filesystem,
}

pub(crate) fn layer_kind(media_type: &str) -> Option<LayerKind> {
    match media_type {
        WASM_MEDIA_TYPE | WASM_LAYER_MEDIA_TYPE => Some(LayerKind::Module),
        IMAGE_LAYER_MEDIA_TYPE
        | IMAGE_LAYER_GZIP_MEDIA_TYPE
        | IMAGE_DOCKER_LAYER_TAR_MEDIA_TYPE
        | IMAGE_DOCKER_LAYER_GZIP_MEDIA_TYPE => Some(LayerKind::Filesystem),
        _ => None,
    }
}

/// Fails with a readable reason unless `bytes` starts with the wasm magic number.
pub(crate) fn check_wasm(bytes: &[u8], what: &str) -> Result<(), String> {
    if bytes.starts_with(WASM_MAGIC) {
        return Ok(());
    }
    let head: Vec<String> = bytes.iter().take(4).map(|b| format!("{b:02x}")).collect();
    Err(format!(
        "{what} does not start with the wasm magic number 00 61 73 6d (found {})",
        if head.is_empty() {
            "an empty file".to_string()
        } else {
            head.join(" ")
        }
    ))
}

/// The module inside a tar layer: the file at `entry` (the container's command[0]), or the
/// only `.wasm` file when no entry is named. Gzip is recognised by its magic number, since
/// docker tooling is not always truthful about the media type.
pub(crate) fn wasm_from_tar(layer: &[u8], entry: Option<&str>) -> Result<Vec<u8>, String> {
    if layer.starts_with(GZIP_MAGIC) {
        return find_in_tar(flate2::read::GzDecoder::new(layer), entry);
    }
    find_in_tar(layer, entry)
}

/// Streams through the archive, so a large layer is never unpacked whole in memory.
fn find_in_tar(tar_stream: impl Read, entry: Option<&str>) -> Result<Vec<u8>, String> {
    let wanted = entry.map(normalize);
    let mut archive = tar::Archive::new(tar_stream);
    let entries = archive
        .entries()
        .map_err(|e| format!("reading the layer tar: {e}"))?;
    let mut found: Option<Vec<u8>> = None;
    let mut wasm_files = Vec::new();
    for item in entries {
        let mut file = item.map_err(|e| format!("reading the layer tar: {e}"))?;
        let path = file
            .path()
            .map_err(|e| format!("reading a tar entry name: {e}"))?
            .to_string_lossy()
            .into_owned();
        let path = normalize(&path);
        let is_file = file.header().entry_type().is_file();
        let selected = match &wanted {
            Some(wanted) => *wanted == path,
            None => is_file && path.ends_with(".wasm"),
        };
        if !selected {
            continue;
        }
        if !is_file {
            return Err(format!("/{path} in the layer is not a regular file"));
        }
        if file.size() > MAX_MODULE_BYTES {
            return Err(format!(
                "/{path} is {} bytes, over the {MAX_MODULE_BYTES}-byte module limit",
                file.size()
            ));
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| format!("reading /{path} from the layer: {e}"))?;
        // A later tar entry for the same path replaces an earlier one, as in a filesystem.
        wasm_files.retain(|p| p != &path);
        wasm_files.push(path);
        found = Some(bytes);
    }
    match (found, wanted) {
        (Some(bytes), Some(_)) => Ok(bytes),
        (Some(bytes), None) if wasm_files.len() == 1 => Ok(bytes),
        (Some(_), None) => Err(format!(
            "the layer holds several .wasm files ({}); name one with the container's command",
            wasm_files
                .iter()
                .map(|p| format!("/{p}"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        (None, Some(wanted)) => Err(format!("the layer has no file /{wanted}")),
        (None, None) => Err("the layer holds no .wasm file".to_string()),
    }
}

/// Tar names and commands differ in leading `/` and `./`; compare without them.
fn normalize(path: &str) -> String {
    path.trim_start_matches("./")
        .trim_start_matches('/')
        .to_string()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A tar with the given files; gzipped when asked.
    pub(crate) fn tar_of(files: &[(&str, &[u8])], gzip: bool) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, bytes) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_entry_type(tar::EntryType::Regular);
            builder
                .append_data(&mut header, path, *bytes)
                .expect("append to tar");
        }
        let tar = builder.into_inner().expect("finish tar");
        if !gzip {
            return tar;
        }
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut encoder, &tar).expect("gzip");
        encoder.finish().expect("finish gzip")
    }

    const MODULE: &[u8] = b"\0asm\x01\0\0\0";

    #[test]
    fn the_only_wasm_file_is_picked() {
        for gzip in [false, true] {
            let layer = tar_of(&[("etc/motd", b"hi"), ("app/main.wasm", MODULE)], gzip);
            assert_eq!(wasm_from_tar(&layer, None).expect("found"), MODULE);
        }
    }

    #[test]
    fn the_entry_names_the_module() {
        let layer = tar_of(&[("a.wasm", b"\0asmA"), ("./bin/b.wasm", b"\0asmB")], false);
        assert_eq!(
            wasm_from_tar(&layer, Some("/bin/b.wasm")).expect("found"),
            b"\0asmB"
        );
        assert_eq!(
            wasm_from_tar(&layer, Some("a.wasm")).expect("found"),
            b"\0asmA"
        );
        let err = wasm_from_tar(&layer, None).expect_err("ambiguous");
        assert!(
            err.contains("/a.wasm") && err.contains("/bin/b.wasm"),
            "{err}"
        );
        let err = wasm_from_tar(&layer, Some("/c.wasm")).expect_err("absent");
        assert!(err.contains("no file /c.wasm"), "{err}");
    }

    #[test]
    fn a_layer_without_wasm_or_not_a_tar_is_an_error() {
        let err = wasm_from_tar(&tar_of(&[("x.txt", b"x")], false), None).expect_err("none");
        assert!(err.contains("no .wasm file"), "{err}");
        assert!(wasm_from_tar(&[0x1f, 0x8b, 0, 1, 2], None).is_err());
    }

    #[test]
    fn the_magic_number_is_checked() {
        assert!(check_wasm(MODULE, "m").is_ok());
        let err = check_wasm(b"#!/bin/sh", "the module").expect_err("not wasm");
        assert!(err.contains("23 21 2f 62"), "{err}");
        assert!(check_wasm(b"", "m").expect_err("empty").contains("empty"));
    }

    #[test]
    fn media_types_are_classified() {
        assert_eq!(layer_kind(WASM_MEDIA_TYPE), Some(LayerKind::Module));
        assert_eq!(
            layer_kind(IMAGE_LAYER_GZIP_MEDIA_TYPE),
            Some(LayerKind::Filesystem)
        );
        assert_eq!(layer_kind("application/json"), None);
    }
}
