//! The on-disk image cache: blobs and manifests by digest, extracted modules by manifest
//! digest, and which digest each reference last resolved to.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::ImagePullError;

const SHA256_HEX_LEN: usize = 64;

pub(crate) struct Cache {
    root: PathBuf,
}

impl Cache {
    pub(crate) fn new(root: PathBuf) -> Cache {
        Cache { root }
    }

    /// `<root>/blobs/sha256/<hex>`; manifests live here too, under their own digest.
    pub(crate) fn blob_path(&self, digest: &str) -> Result<PathBuf, ImagePullError> {
        Ok(self.root.join("blobs/sha256").join(sha256_hex(digest)?))
    }

    /// `<root>/modules/<hex>.wasm`; a module picked from an image by an explicit entry path
    /// gets that path's hash in its name, since one image can hold several modules.
    pub(crate) fn module_path(
        &self,
        manifest_digest: &str,
        entry: Option<&str>,
    ) -> Result<PathBuf, ImagePullError> {
        let hex = sha256_hex(manifest_digest)?;
        let name = match entry {
            None => format!("{hex}.wasm"),
            Some(entry) => format!("{hex}-{}.wasm", &hex_sha256(entry.as_bytes())[..16]),
        };
        Ok(self.root.join("modules").join(name))
    }

    /// The manifest digest `reference` resolved to on its last pull, if any.
    pub(crate) async fn resolved(&self, reference: &str) -> Option<String> {
        let text = tokio::fs::read_to_string(self.ref_path(reference))
            .await
            .ok()?;
        let digest = text.trim();
        sha256_hex(digest).is_ok().then(|| digest.to_string())
    }

    pub(crate) async fn record_resolved(
        &self,
        reference: &str,
        digest: &str,
    ) -> Result<(), ImagePullError> {
        write_atomic(&self.ref_path(reference), digest.as_bytes()).await
    }

    fn ref_path(&self, reference: &str) -> PathBuf {
        self.root
            .join("refs")
            .join(hex_sha256(reference.as_bytes()))
    }
}

/// Writes through a unique temp file and a rename, so a concurrent reader never sees half a
/// file and two pulls of one image cannot corrupt each other.
pub(crate) async fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ImagePullError> {
    let cache_error = |source| ImagePullError::Cache {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    tokio::fs::create_dir_all(dir).await.map_err(cache_error)?;
    let temp = temp_path(path);
    tokio::fs::write(&temp, bytes).await.map_err(cache_error)?;
    tokio::fs::rename(&temp, path).await.map_err(cache_error)
}

/// A sibling name unique to this process and call.
pub(crate) fn temp_path(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}-{n}", std::process::id()));
    path.with_file_name(name)
}

pub(crate) fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The hex part of a `sha256:` digest, checked so it is safe as a file name.
fn sha256_hex(digest: &str) -> Result<&str, ImagePullError> {
    digest
        .strip_prefix("sha256:")
        .filter(|hex| {
            hex.len() == SHA256_HEX_LEN
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
        .ok_or_else(|| ImagePullError::UnsupportedDigest {
            digest: digest.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn paths_are_content_addressed() {
        let cache = Cache::new(PathBuf::from("/c"));
        let hex = &DIGEST[7..];
        assert_eq!(
            cache.blob_path(DIGEST).expect("valid"),
            PathBuf::from(format!("/c/blobs/sha256/{hex}"))
        );
        assert_eq!(
            cache.module_path(DIGEST, None).expect("valid"),
            PathBuf::from(format!("/c/modules/{hex}.wasm"))
        );
        let a = cache.module_path(DIGEST, Some("a.wasm")).expect("valid");
        let b = cache.module_path(DIGEST, Some("b.wasm")).expect("valid");
        assert_ne!(a, b);
    }

    #[test]
    fn digests_that_could_escape_the_cache_are_refused() {
        let cache = Cache::new(PathBuf::from("/c"));
        for bad in [
            "sha256:../../etc/passwd",
            "sha512:abcd",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "",
        ] {
            assert!(cache.blob_path(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn resolved_digests_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = Cache::new(dir.path().to_path_buf());
        assert_eq!(cache.resolved("r/x:1").await, None);
        cache.record_resolved("r/x:1", DIGEST).await.expect("write");
        assert_eq!(cache.resolved("r/x:1").await.as_deref(), Some(DIGEST));
        assert_eq!(cache.resolved("r/x:2").await, None);
    }
}
