//! The resource kinds the API server serves, for controllers that handle every kind (the
//! garbage collector, the namespace controller).

use kube::Client;
use kube::core::discovery::{ApiCapabilities, ApiResource, Scope, verbs};
use kube::discovery::Discovery;

/// One served kind that can be listed, watched and deleted.
#[derive(Debug, Clone)]
pub struct Kind {
    pub resource: ApiResource,
    pub namespaced: bool,
}

/// Every served kind supporting list, watch and delete.
pub async fn deletable_kinds(client: &Client) -> Result<Vec<Kind>, kube::Error> {
    let discovery = Discovery::new(client.clone()).run().await?;
    let mut kinds = Vec::new();
    for group in discovery.groups() {
        for (resource, caps) in group.recommended_resources() {
            if usable(&caps) {
                kinds.push(Kind {
                    namespaced: caps.scope == Scope::Namespaced,
                    resource,
                });
            }
        }
    }
    Ok(kinds)
}

fn usable(caps: &ApiCapabilities) -> bool {
    [verbs::LIST, verbs::WATCH, verbs::DELETE]
        .iter()
        .all(|v| caps.supports_operation(v))
}
