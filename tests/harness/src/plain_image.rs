//! Pushing a plain OCI image (one uncompressed tar layer) straight through the distribution
//! API, for tests that need an image `rkube push` refuses to make (e.g. one with no wasm in it).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

use crate::Registry;

const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";
const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

impl Registry {
    /// Pushes `files` (path, contents) as a linux/amd64 image `<repository>:<tag>`; returns the
    /// manifest digest.
    pub fn push_plain_image(
        &self,
        repository: &str,
        tag: &str,
        files: &[(&str, &[u8])],
    ) -> anyhow::Result<String> {
        let layer = tar_of(files)?;
        let layer_digest = sha256(&layer);
        let config = serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        })
        .to_string()
        .into_bytes();
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": descriptor(CONFIG_MEDIA_TYPE, &config),
            "layers": [descriptor(LAYER_MEDIA_TYPE, &layer)],
        })
        .to_string()
        .into_bytes();
        self.upload_blob(repository, &layer)?;
        self.upload_blob(repository, &config)?;
        let path = format!("/v2/{repository}/manifests/{tag}");
        let response = self.request("PUT", &path, MANIFEST_MEDIA_TYPE, &manifest)?;
        expect_status(
            &response,
            "201",
            &format!("pushing the manifest of {repository}"),
        )?;
        Ok(sha256(&manifest))
    }

    /// A monolithic upload: open an upload session, then PUT the whole blob with its digest.
    fn upload_blob(&self, repository: &str, blob: &[u8]) -> anyhow::Result<()> {
        let opened = self.request(
            "POST",
            &format!("/v2/{repository}/blobs/uploads/"),
            "application/octet-stream",
            &[],
        )?;
        expect_status(&opened, "202", "opening a blob upload")?;
        let location = header(&opened, "location").context("the upload has no Location")?;
        // The registry may answer with an absolute URL; only its path and query matter here.
        let path = match location.find("/v2/") {
            Some(start) => &location[start..],
            None => bail!("unexpected upload location {location}"),
        };
        let separator = if path.contains('?') { '&' } else { '?' };
        let target = format!("{path}{separator}digest={}", sha256(blob));
        let stored = self.request("PUT", &target, "application/octet-stream", blob)?;
        expect_status(&stored, "201", "uploading a blob")
    }

    /// One HTTP/1.1 exchange on a fresh connection (accepting OCI manifests); returns the raw
    /// response head and body.
    fn request(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> anyhow::Result<String> {
        let host = self.host();
        let mut stream = TcpStream::connect(&host).with_context(|| format!("connecting {host}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n\
             Accept: {MANIFEST_MEDIA_TYPE}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes())?;
        stream.write_all(body)?;
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .with_context(|| format!("reading the answer to {method} {path}"))?;
        Ok(String::from_utf8_lossy(&response).into_owned())
    }
}

fn descriptor(media_type: &str, bytes: &[u8]) -> serde_json::Value {
    serde_json::json!({"mediaType": media_type, "digest": sha256(bytes), "size": bytes.len()})
}

fn sha256(bytes: &[u8]) -> String {
    let hex: String = Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

fn tar_of(files: &[(&str, &[u8])]) -> anyhow::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(u64::try_from(bytes.len())?);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, path, *bytes)?;
    }
    Ok(builder.into_inner()?)
}

fn expect_status(response: &str, want: &str, what: &str) -> anyhow::Result<()> {
    let status = response.split(' ').nth(1).unwrap_or_default();
    if status != want {
        bail!("{what}: registry answered {status}, want {want}:\n{response}");
    }
    Ok(())
}

fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    let head = response.split("\r\n\r\n").next()?;
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then_some(value.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_image_is_pushed_and_its_manifest_served() {
        let registry = Registry::start().expect("docker-registry starts");
        let digest = registry
            .push_plain_image("plain/text", "1", &[("greeting.txt", b"hi\n")])
            .expect("push");
        assert!(digest.starts_with("sha256:"), "{digest}");
        let response = registry
            .request(
                "GET",
                "/v2/plain/text/manifests/1",
                MANIFEST_MEDIA_TYPE,
                &[],
            )
            .expect("get manifest");
        assert!(response.contains(LAYER_MEDIA_TYPE), "{response}");
        assert_eq!(
            header(&response, "docker-content-digest"),
            Some(digest.as_str())
        );
    }
}
