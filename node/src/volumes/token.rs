//! Service-account tokens of projected volumes: issued through TokenRequest bound to the pod,
//! written into the volume, and rewritten once 80 % of their lifetime has passed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount, ServiceAccountTokenProjection};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use tokio::time::Instant;

use super::{VolumeError, write_file};

/// `expirationSeconds` when the projection sets none, as the API defaults it.
const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// How long after a failed renewal the next attempt comes (the old token stays meanwhile).
const RETRY: Duration = Duration::from_secs(10);

/// What a projected token is requested with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSpec {
    pub namespace: String,
    pub service_account: String,
    pub pod_name: String,
    pub pod_uid: String,
    /// `None`: the API server's own audience.
    pub audience: Option<String>,
    pub expiration_seconds: i64,
}

impl TokenSpec {
    pub fn for_pod(pod: &Pod, source: &ServiceAccountTokenProjection) -> Self {
        TokenSpec {
            namespace: pod.namespace().unwrap_or_else(|| "default".into()),
            service_account: pod
                .spec
                .as_ref()
                .and_then(|s| s.service_account_name.clone())
                .filter(|name| !name.is_empty())
                .unwrap_or_else(|| "default".into()),
            pod_name: pod.name_any(),
            pod_uid: pod.uid().unwrap_or_default(),
            audience: source.audience.clone().filter(|a| !a.is_empty()),
            expiration_seconds: source
                .expiration_seconds
                .unwrap_or(DEFAULT_EXPIRATION_SECONDS),
        }
    }
}

/// A token and how long it stays valid from when it was received.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: String,
    pub lifetime: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token request: {0}")]
    Request(#[source] Box<kube::Error>),
    #[error("the token request was answered without a token")]
    NoToken,
}

/// Where the node gets service-account tokens from: the API server's TokenRequest, or a
/// stand-in in tests.
#[async_trait]
pub trait TokenSource: Send + Sync {
    async fn issue(&self, spec: &TokenSpec) -> Result<IssuedToken, TokenError>;
}

/// Tokens through `POST .../serviceaccounts/{name}/token`, bound to the pod.
pub struct KubeTokens {
    client: Client,
}

impl KubeTokens {
    pub fn new(client: Client) -> Self {
        KubeTokens { client }
    }
}

#[async_trait]
impl TokenSource for KubeTokens {
    async fn issue(&self, spec: &TokenSpec) -> Result<IssuedToken, TokenError> {
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), &spec.namespace);
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: spec.audience.iter().cloned().collect(),
                expiration_seconds: Some(spec.expiration_seconds),
                bound_object_ref: Some(BoundObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    name: Some(spec.pod_name.clone()),
                    uid: Some(spec.pod_uid.clone()),
                }),
            },
            ..TokenRequest::default()
        };
        let issued = api
            .create_token_request(&spec.service_account, &PostParams::default(), &request)
            .await
            .map_err(|error| TokenError::Request(Box::new(error)))?;
        let status = issued
            .status
            .filter(|s| !s.token.is_empty())
            .ok_or(TokenError::NoToken)?;
        // A server clock behind ours must not make the token look expired at once.
        let lifetime = Duration::try_from(
            status
                .expiration_timestamp
                .0
                .duration_since(Timestamp::now()),
        )
        .unwrap_or(Duration::ZERO);
        Ok(IssuedToken {
            token: status.token,
            lifetime,
        })
    }
}

/// A token file of a projected volume, and when it is due to be rewritten.
#[derive(Debug)]
pub struct ProjectedToken {
    pub volume: String,
    pub file: PathBuf,
    pub mode: u32,
    pub spec: TokenSpec,
    pub refresh_at: Instant,
}

impl ProjectedToken {
    /// Fetches a fresh token and replaces the file with it at once (temp file and rename), so
    /// a reader sees the old token or the new one, never a mix.
    pub async fn renew(&mut self, source: &dyn TokenSource) -> Result<(), VolumeError> {
        let issued = source
            .issue(&self.spec)
            .await
            .map_err(|source| VolumeError::Token {
                volume: self.volume.clone(),
                namespace: self.spec.namespace.clone(),
                service_account: self.spec.service_account.clone(),
                source,
            })?;
        write_file(&self.volume, &self.file, issued.token.as_bytes(), self.mode).await?;
        self.refresh_at = Instant::now() + refresh_delay(issued.lifetime);
        Ok(())
    }
}

/// 80 % of the lifetime, as the kubelet renews; never less than the retry delay, so that a
/// skewed clock cannot make it spin.
fn refresh_delay(lifetime: Duration) -> Duration {
    lifetime.mul_f64(0.8).max(RETRY)
}

/// Renews the tokens whose time has come by `now`; a failure is logged and retried after
/// [`RETRY`], the old token staying in place.
pub async fn refresh_due(source: &dyn TokenSource, tokens: &mut [ProjectedToken], now: Instant) {
    for token in tokens.iter_mut().filter(|t| t.refresh_at <= now) {
        if let Err(error) = token.renew(source).await {
            tracing::warn!(file = %token.file.display(), %error, "renewing a service account token");
            token.refresh_at = now + RETRY;
        }
    }
}

/// Keeps the pod's token files fresh for as long as it is polled: the caller drops it when
/// the pod stops.
pub async fn keep_fresh(source: Arc<dyn TokenSource>, mut tokens: Vec<ProjectedToken>) {
    while let Some(next) = tokens.iter().map(|t| t.refresh_at).min() {
        tokio::time::sleep_until(next).await;
        refresh_due(source.as_ref(), &mut tokens, Instant::now()).await;
    }
}

/// Tokens made up for unit tests: numbered, with a set lifetime, failing when told to.
#[cfg(test)]
pub mod fake {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    pub struct FakeTokens {
        pub lifetime: Duration,
        pub failing: AtomicBool,
        pub issued: Mutex<Vec<TokenSpec>>,
    }

    impl FakeTokens {
        pub fn new(lifetime: Duration) -> Self {
            FakeTokens {
                lifetime,
                failing: AtomicBool::new(false),
                issued: Mutex::default(),
            }
        }
    }

    #[async_trait]
    impl TokenSource for FakeTokens {
        async fn issue(&self, spec: &TokenSpec) -> Result<IssuedToken, TokenError> {
            if self.failing.load(Ordering::SeqCst) {
                return Err(TokenError::NoToken);
            }
            let mut issued = self.issued.lock().unwrap_or_else(|e| e.into_inner());
            issued.push(spec.clone());
            Ok(IssuedToken {
                token: format!("token-{}-for-{}", issued.len(), spec.service_account),
                lifetime: self.lifetime,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use k8s_openapi::api::core::v1::PodSpec;

    use super::fake::FakeTokens;
    use super::*;

    fn pod() -> Pod {
        let mut pod = Pod {
            spec: Some(PodSpec {
                service_account_name: Some("builder".into()),
                ..PodSpec::default()
            }),
            ..Pod::default()
        };
        pod.metadata.name = Some("p".into());
        pod.metadata.namespace = Some("ns".into());
        pod.metadata.uid = Some("u1".into());
        pod
    }

    #[test]
    fn the_spec_names_the_pod_and_its_service_account() {
        let source = ServiceAccountTokenProjection {
            path: "token".into(),
            ..ServiceAccountTokenProjection::default()
        };
        let spec = TokenSpec::for_pod(&pod(), &source);
        assert_eq!(spec.service_account, "builder");
        assert_eq!((spec.pod_name.as_str(), spec.pod_uid.as_str()), ("p", "u1"));
        assert_eq!(spec.audience, None);
        assert_eq!(spec.expiration_seconds, 3600);
        let mut unnamed = pod();
        unnamed.spec = None;
        assert_eq!(
            TokenSpec::for_pod(&unnamed, &source).service_account,
            "default"
        );
    }

    #[tokio::test]
    async fn a_due_token_is_rewritten_and_a_failure_keeps_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let source = FakeTokens::new(Duration::from_secs(600));
        let projection = ServiceAccountTokenProjection {
            path: "token".into(),
            ..ServiceAccountTokenProjection::default()
        };
        let file = dir.path().join("token");
        let mut tokens = vec![ProjectedToken {
            volume: "v".into(),
            file: file.clone(),
            mode: 0o600,
            spec: TokenSpec::for_pod(&pod(), &projection),
            refresh_at: Instant::now(),
        }];
        tokens[0].renew(&source).await.unwrap();
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "token-1-for-builder"
        );
        let due = tokens[0].refresh_at;
        let expected = Instant::now() + Duration::from_secs(480);
        assert!(due <= expected && due + Duration::from_secs(5) > expected);

        // Not yet due: nothing happens.
        refresh_due(&source, &mut tokens, due - Duration::from_secs(1)).await;
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "token-1-for-builder"
        );

        source.failing.store(true, Ordering::SeqCst);
        refresh_due(&source, &mut tokens, due).await;
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "token-1-for-builder"
        );
        assert_eq!(tokens[0].refresh_at, due + RETRY);

        source.failing.store(false, Ordering::SeqCst);
        refresh_due(&source, &mut tokens, due + RETRY).await;
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "token-2-for-builder"
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp files stay behind");
    }
}
