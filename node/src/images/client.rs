//! An oci-client `Client` for one registry: plain HTTP only where it is allowed.

use std::net::IpAddr;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use super::ImagePullError;

/// Parses an image reference, keeping the caller's text in the error.
pub(crate) fn parse_reference(image: &str) -> Result<Reference, ImagePullError> {
    image
        .parse::<Reference>()
        .map_err(|e| ImagePullError::InvalidReference {
            image: image.to_string(),
            reason: e.to_string(),
        })
}

/// A client that speaks HTTP to `reference`'s registry when it is loopback or listed as
/// insecure, and HTTPS otherwise.
pub(crate) fn client_for(
    reference: &Reference,
    insecure_registries: &[String],
) -> Result<Client, ImagePullError> {
    let registry = reference.resolve_registry();
    let protocol = if allows_plain_http(registry, insecure_registries) {
        ClientProtocol::Http
    } else {
        ClientProtocol::Https
    };
    // The platform resolver picks a wasm entry out of an image index.
    let config = ClientConfig {
        protocol,
        platform_resolver: Some(Box::new(wasm_platform_resolver)),
        ..ClientConfig::default()
    };
    // A rustls-based reqwest client needs a process-wide crypto provider; the binary installs
    // ring first, and installing it here too keeps library callers (and tests) working.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::try_from(config).map_err(|e| ImagePullError::Registry {
        image: reference.whole(),
        message: format!("building the registry client: {e}"),
    })
}

/// Basic auth when credentials are given, anonymous otherwise.
pub(crate) fn registry_auth(credentials: Option<(&str, &str)>) -> RegistryAuth {
    match credentials {
        Some((username, password)) => {
            RegistryAuth::Basic(username.to_string(), password.to_string())
        }
        None => RegistryAuth::Anonymous,
    }
}

pub(crate) fn wasm_platform_resolver(
    entries: &[oci_client::manifest::ImageIndexEntry],
) -> Option<String> {
    let is_wasm = |entry: &&oci_client::manifest::ImageIndexEntry| {
        entry
            .platform
            .as_ref()
            .is_some_and(|p| p.architecture.to_string() == "wasm")
    };
    match entries.iter().find(is_wasm) {
        Some(entry) => Some(entry.digest.clone()),
        None if entries.len() == 1 => entries.first().map(|e| e.digest.clone()),
        None => None,
    }
}

fn allows_plain_http(registry: &str, insecure_registries: &[String]) -> bool {
    let host = host_of(registry);
    let loopback = host == "localhost"
        || host
            .parse::<IpAddr>()
            .is_ok_and(|address| address.is_loopback());
    loopback
        || insecure_registries
            .iter()
            .any(|name| name == registry || name == host)
}

/// `registry` without its port; IPv6 literals lose their brackets.
fn host_of(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match registry.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => registry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_registries_may_use_http() {
        for registry in [
            "127.0.0.1:5000",
            "localhost:5000",
            "[::1]:5000",
            "localhost",
        ] {
            assert!(allows_plain_http(registry, &[]), "{registry}");
        }
    }

    #[test]
    fn other_registries_need_https_unless_listed() {
        assert!(!allows_plain_http("registry.example:5000", &[]));
        assert!(!allows_plain_http("docker.io", &[]));
        let insecure = vec!["registry.example:5000".to_string(), "lab".to_string()];
        assert!(allows_plain_http("registry.example:5000", &insecure));
        assert!(allows_plain_http("lab:443", &insecure));
        assert!(!allows_plain_http("registry.example:6000", &insecure));
    }

    #[test]
    fn bad_references_are_reported() {
        let err = parse_reference("UPPER/Case:tag").expect_err("uppercase repo is invalid");
        assert!(err.to_string().contains("UPPER/Case"), "{err}");
    }
}
