//! Leader election through a coordination.k8s.io/v1 Lease, so two copies of a component can
//! run for availability and only one acts. Same rules as client-go: the holder renews every
//! `renew_every`; a lease not renewed for `lease_duration` may be taken over.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::watch;

#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_every: Duration,
}

impl LeaseConfig {
    /// The defaults kube-scheduler and kube-controller-manager use: 15 s lease, 2 s retry.
    pub fn new(name: &str, identity: &str) -> Self {
        LeaseConfig {
            namespace: "kube-system".into(),
            name: name.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(2),
        }
    }
}

/// A unique identity for this process: host name plus a random suffix.
pub fn identity() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "rkube".into());
    format!("{host}_{}", uuid::Uuid::new_v4())
}

/// Tries once to acquire or renew the lease; `Ok(true)` when this identity holds it.
pub async fn try_acquire(client: &Client, config: &LeaseConfig) -> Result<bool, kube::Error> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), &config.namespace);
    let now = Timestamp::now();
    let duration_secs = config.lease_duration.as_secs() as i32;
    let Some(mut lease) = leases.get_opt(&config.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(config.name.clone()),
                namespace: Some(config.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(config.identity.clone()),
                lease_duration_seconds: Some(duration_secs),
                acquire_time: Some(MicroTime(now)),
                renew_time: Some(MicroTime(now)),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        return match leases.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    let held_by_us = spec.holder_identity.as_deref() == Some(config.identity.as_str());
    let expired = spec.renew_time.as_ref().is_none_or(|renewed| {
        let age = now.duration_since(renewed.0).as_secs_f64();
        age > f64::from(spec.lease_duration_seconds.unwrap_or(duration_secs))
    });
    if !held_by_us && !expired {
        return Ok(false);
    }
    if !held_by_us {
        spec.holder_identity = Some(config.identity.clone());
        spec.acquire_time = Some(MicroTime(now));
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    spec.renew_time = Some(MicroTime(now));
    spec.lease_duration_seconds = Some(duration_secs);
    let name = config.name.clone();
    // The resourceVersion in `lease` makes this a compare-and-swap: a racing taker loses.
    match leases.replace(&name, &PostParams::default(), &lease).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Blocks until this identity leads, then keeps renewing in the background. The returned
/// receiver turns `false` if leadership is lost; components must stop acting then.
pub async fn lead(client: Client, config: LeaseConfig) -> watch::Receiver<bool> {
    loop {
        match try_acquire(&client, &config).await {
            Ok(true) => break,
            Ok(false) => {}
            Err(err) => {
                tracing::warn!(lease = %config.name, error = %err, "leader election failed")
            }
        }
        tokio::time::sleep(config.renew_every).await;
    }
    tracing::info!(lease = %config.name, identity = %config.identity, "became leader");
    let (tx, rx) = watch::channel(true);
    tokio::spawn(async move {
        let mut last_renewed = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(config.renew_every).await;
            match try_acquire(&client, &config).await {
                Ok(true) => last_renewed = tokio::time::Instant::now(),
                Ok(false) => {
                    tracing::warn!(lease = %config.name, "lost leadership");
                    let _ = tx.send(false);
                    return;
                }
                Err(err) => {
                    tracing::warn!(lease = %config.name, error = %err, "renewing the lease failed");
                    if last_renewed.elapsed() > config.lease_duration {
                        let _ = tx.send(false);
                        return;
                    }
                }
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rkube_apiserver::in_process;
    use rkube_apiserver::server::{ApiServer, router};
    use rkube_apiserver::store::memory::MemoryStore;

    use super::*;

    #[tokio::test]
    async fn only_one_identity_leads_until_the_lease_expires() {
        let server = ApiServer::new(Arc::new(MemoryStore::new())).await.unwrap();
        rkube_apiserver::run::ensure_system_namespaces(&server)
            .await
            .unwrap();
        let client = in_process::client(router(server), in_process::admin());
        let mut a = LeaseConfig::new("test", "a");
        let mut b = LeaseConfig::new("test", "b");
        a.lease_duration = Duration::from_secs(1);
        b.lease_duration = Duration::from_secs(1);
        assert!(try_acquire(&client, &a).await.unwrap());
        assert!(!try_acquire(&client, &b).await.unwrap());
        assert!(try_acquire(&client, &a).await.unwrap());
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert!(try_acquire(&client, &b).await.unwrap());
        assert!(!try_acquire(&client, &a).await.unwrap());
    }
}
