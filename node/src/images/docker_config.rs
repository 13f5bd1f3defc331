//! Registry logins from `kubernetes.io/dockerconfigjson` secrets (`.dockerconfigjson`).

use std::collections::BTreeMap;

use base64::Engine;
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum DockerConfigError {
    #[error("invalid docker config json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("docker config entry {registry:?}: auth is not base64: {source}")]
    AuthEncoding {
        registry: String,
        source: base64::DecodeError,
    },
    #[error("docker config entry {registry:?}: auth is not \"username:password\"")]
    AuthShape { registry: String },
}

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, DockerAuth>,
}

#[derive(Deserialize)]
struct DockerAuth {
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    auth: Option<String>,
}

/// `(registry, username, password)` for each entry of `auths`; `auth` (base64 of
/// `username:password`) wins over separate `username`/`password` fields, as in docker.
pub fn parse_docker_config(
    json: &[u8],
) -> Result<Vec<(String, String, String)>, DockerConfigError> {
    let config: DockerConfig = serde_json::from_slice(json)?;
    let mut logins = Vec::new();
    for (registry, entry) in config.auths {
        if let Some(auth) = entry.auth.filter(|a| !a.is_empty()) {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|source| DockerConfigError::AuthEncoding {
                    registry: registry.clone(),
                    source,
                })?;
            let text = String::from_utf8_lossy(&decoded);
            let Some((username, password)) = text.split_once(':') else {
                return Err(DockerConfigError::AuthShape { registry });
            };
            logins.push((registry, username.to_string(), password.to_string()));
        } else if let (Some(username), Some(password)) = (entry.username, entry.password) {
            logins.push((registry, username, password));
        }
    }
    Ok(logins)
}

/// A registry name as a reference spells it: no scheme or path, and Docker Hub's aliases
/// folded into one.
pub(crate) fn canonical_registry(name: &str) -> String {
    let name = name
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = name.split('/').next().unwrap_or(name).to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io".to_string(),
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_field_and_separate_fields_both_parse() {
        let json = br#"{"auths":{
            "https://index.docker.io/v1/":{"auth":"dXNlcjpwYTpzcw=="},
            "127.0.0.1:5000":{"username":"u2","password":"p2"},
            "empty.example":{}
        }}"#;
        let logins = parse_docker_config(json).expect("valid");
        assert_eq!(
            logins,
            vec![
                ("127.0.0.1:5000".into(), "u2".into(), "p2".into()),
                (
                    "https://index.docker.io/v1/".into(),
                    "user".into(),
                    "pa:ss".into()
                ),
            ]
        );
    }

    #[test]
    fn bad_configs_are_errors() {
        assert!(matches!(
            parse_docker_config(b"{"),
            Err(DockerConfigError::Json(_))
        ));
        let bad_base64 = br#"{"auths":{"r":{"auth":"***"}}}"#;
        assert!(matches!(
            parse_docker_config(bad_base64),
            Err(DockerConfigError::AuthEncoding { .. })
        ));
        let no_colon = br#"{"auths":{"r":{"auth":"bm9jb2xvbg=="}}}"#;
        assert!(matches!(
            parse_docker_config(no_colon),
            Err(DockerConfigError::AuthShape { .. })
        ));
    }

    #[test]
    fn registry_names_are_canonical() {
        assert_eq!(
            canonical_registry("https://index.docker.io/v1/"),
            "docker.io"
        );
        assert_eq!(canonical_registry("registry-1.docker.io"), "docker.io");
        assert_eq!(canonical_registry("http://Lab:5000/x"), "lab:5000");
    }
}
