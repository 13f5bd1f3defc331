//! A Kubernetes client that calls the router directly: components sharing a process with the
//! API server (`rkube up`, integration tests) skip TLS and sockets but keep the same path.

use axum::Router;
use tower::ServiceExt;

use crate::auth::User;

/// A kube client whose requests go straight to `router`, authenticated as `user`.
pub fn client(router: Router, user: User) -> kube::Client {
    let service = router.map_request(move |mut request: http::Request<kube::client::Body>| {
        request.extensions_mut().insert(user.clone());
        request
    });
    kube::Client::new(service, "default")
}

/// The identity of cluster components inside the process: a member of `system:masters`.
pub fn admin() -> User {
    User {
        name: "system:admin".into(),
        groups: vec!["system:masters".into(), "system:authenticated".into()],
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
    use kube::api::{Api, ListParams, PostParams};

    use super::*;
    use crate::server::{ApiServer, router};
    use crate::store::memory::MemoryStore;

    #[tokio::test]
    async fn kube_client_round_trips_through_the_router() {
        let server = ApiServer::new(Arc::new(MemoryStore::new())).await.unwrap();
        crate::run::ensure_system_namespaces(&server).await.unwrap();
        let client = client(router(server), admin());
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let names: Vec<String> = namespaces
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|n| n.metadata.name)
            .collect();
        assert!(names.contains(&"default".to_string()));

        let cms: Api<ConfigMap> = Api::namespaced(client, "default");
        let mut cm = ConfigMap::default();
        cm.metadata.name = Some("x".into());
        let created = cms.create(&PostParams::default(), &cm).await.unwrap();
        assert!(created.metadata.uid.is_some());
        assert_eq!(
            cms.get("x").await.unwrap().metadata.uid,
            created.metadata.uid
        );
    }
}
