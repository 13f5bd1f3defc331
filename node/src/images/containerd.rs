//! Images of the containerd runtime: pulled into containerd's own store, with the pod's pull
//! secrets as basic auth, and looked up there for the `IfNotPresent` and `Never` policies.

use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Secret;
use oci_client::Reference;
use rkube_runtimes::RuntimeError;
use rkube_runtimes::containerd::{ContainerdRuntime, PullAuth, PulledImage};

use super::credentials_for;
use super::source::credentials;
use crate::image_source::{FetchedImage, ImageError, ImageLocation, ImageSource};

/// The node agent's image source for OCI container pods.
pub struct ContainerdImages {
    runtime: Arc<ContainerdRuntime>,
}

impl ContainerdImages {
    pub fn new(runtime: Arc<ContainerdRuntime>) -> Self {
        Self { runtime }
    }
}

fn fetched(image: PulledImage) -> FetchedImage {
    FetchedImage {
        location: ImageLocation::Store(image.name),
        digest: image.config_digest,
        size: Some(image.size),
    }
}

/// The registry's own words for a failed pull, without the runtime's wrapping.
fn pull_error(image: &str, error: RuntimeError) -> ImageError {
    let reason = match error {
        RuntimeError::ImagePull { reason, .. } => reason,
        other => other.to_string(),
    };
    ImageError::Pull {
        image: image.to_string(),
        reason,
    }
}

/// The pull secrets' login for the registry `image` lives in, if any.
fn auth_for(image: &str, secrets: &[Secret]) -> Option<PullAuth> {
    let registry = image
        .parse::<Reference>()
        .ok()?
        .resolve_registry()
        .to_string();
    let logins = credentials(secrets);
    credentials_for(&logins, &registry).map(|(username, password)| PullAuth {
        username: username.to_string(),
        password: password.to_string(),
    })
}

#[async_trait]
impl ImageSource for ContainerdImages {
    async fn local(&self, image: &str) -> Result<Option<FetchedImage>, ImageError> {
        let stored = self
            .runtime
            .local_image(image)
            .await
            .map_err(|e| pull_error(image, e))?;
        Ok(stored.map(fetched))
    }

    async fn fetch(
        &self,
        image: &str,
        pull_policy: &str,
        secrets: &[Secret],
    ) -> Result<FetchedImage, ImageError> {
        let image = image.to_string();
        if pull_policy == "Never" {
            let local = self.local(&image).await?;
            return local.ok_or(ImageError::NeverPull { image });
        }
        let auth = auth_for(&image, secrets);
        let runtime = self.runtime.clone();
        let reference = image.clone();
        // Driven on a blocking thread: the runtime's pull future cannot be proven `Send` for
        // every lifetime (a rustc limitation with its stream combinators), which an
        // async-trait method needs; a blocking thread needs only the inputs to be `Send`.
        let handle = tokio::runtime::Handle::current();
        let pulled = tokio::task::spawn_blocking(move || {
            handle.block_on(runtime.pull(&reference, auth.as_ref()))
        })
        .await
        .map_err(|e| ImageError::Pull {
            image: image.clone(),
            reason: e.to_string(),
        })?;
        match pulled {
            Ok(pulled) => Ok(fetched(pulled)),
            Err(error) => Err(pull_error(&image, error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use base64::Engine;
    use k8s_openapi::ByteString;

    use super::*;

    fn secret(registry: &str, login: &str) -> Secret {
        let auth = base64::engine::general_purpose::STANDARD.encode(login);
        let json = format!(r#"{{"auths":{{"{registry}":{{"auth":"{auth}"}}}}}}"#);
        Secret {
            data: Some(BTreeMap::from([(
                ".dockerconfigjson".to_string(),
                ByteString(json.into_bytes()),
            )])),
            ..Secret::default()
        }
    }

    #[test]
    fn pull_secrets_give_the_login_of_the_image_registry() {
        let secrets = [secret("127.0.0.1:5000", "alice:pw")];
        let auth = auth_for("127.0.0.1:5000/app:1", &secrets).unwrap();
        assert_eq!(
            (auth.username.as_str(), auth.password.as_str()),
            ("alice", "pw")
        );
        assert!(auth_for("127.0.0.1:5001/app:1", &secrets).is_none());
        assert!(auth_for("busybox", &secrets).is_none());
    }

    #[test]
    fn a_registry_refusal_keeps_its_own_message() {
        let error = pull_error(
            "r/x:1",
            RuntimeError::ImagePull {
                reference: "r/x:1".into(),
                reason: "manifest unknown".into(),
            },
        );
        assert_eq!(error.to_string(), "pulling image r/x:1: manifest unknown");
    }
}
