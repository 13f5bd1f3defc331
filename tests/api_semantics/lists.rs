//! LIST: label and field selectors, and `limit`/`continue` paging.

use std::collections::BTreeSet;

use serde_json::json;

use crate::support::{TestApi, configmap, names, namespace, pod, rv};

const CMS: &str = "/api/v1/namespaces/default/configmaps";
const PODS: &str = "/api/v1/namespaces/default/pods";

on_both_stores!(
    selectors,
    pages_cover_every_object_once,
    continue_is_a_snapshot
);

async fn selected(api: &TestApi, path: &str, query: &str) -> Vec<String> {
    let query = query.replace(' ', "+");
    api.list_names(&format!("{path}?{query}")).await.0
}

async fn selectors(api: TestApi) {
    for (name, labels) in [
        ("web-front", json!({"app": "web", "tier": "front"})),
        ("web-back", json!({"app": "web", "tier": "back"})),
        ("db", json!({"app": "db", "tier": "back"})),
        ("bare", json!({})),
    ] {
        api.create(CMS, &configmap(name, labels)).await;
    }
    assert_eq!(
        selected(&api, CMS, "labelSelector=app%3Dweb").await,
        ["web-back", "web-front"]
    );
    assert_eq!(
        selected(&api, CMS, "labelSelector=app!%3Dweb").await,
        ["bare", "db"]
    );
    assert_eq!(
        selected(
            &api,
            CMS,
            "labelSelector=tier in (front,back),app notin (db)"
        )
        .await,
        ["web-back", "web-front"]
    );
    assert_eq!(selected(&api, CMS, "labelSelector=!tier").await, ["bare"]);
    assert_eq!(
        selected(&api, CMS, "labelSelector=app,tier%3Dback").await,
        ["db", "web-back"]
    );
    assert_eq!(
        selected(&api, CMS, "fieldSelector=metadata.name%3Ddb").await,
        ["db"]
    );
    assert_eq!(
        selected(
            &api,
            "/api/v1/configmaps",
            "fieldSelector=metadata.namespace%3Ddefault,metadata.name!%3Ddb&labelSelector=app"
        )
        .await,
        ["web-back", "web-front"]
    );

    api.create(PODS, &pod("on-n1", Some("n1"))).await;
    api.create(PODS, &pod("on-n2", Some("n2"))).await;
    api.create(PODS, &pod("pending", None)).await;
    assert_eq!(
        selected(&api, "/api/v1/pods", "fieldSelector=spec.nodeName%3Dn1").await,
        ["on-n1"]
    );
    assert_eq!(
        selected(&api, PODS, "fieldSelector=spec.nodeName%3D").await,
        ["pending"]
    );
    assert_eq!(
        selected(
            &api,
            PODS,
            "fieldSelector=spec.nodeName!%3D,status.phase%3DPending"
        )
        .await,
        ["on-n1", "on-n2"]
    );

    let status = api
        .get(&format!("{CMS}?fieldSelector=spec.nodeName%3Dn1"))
        .await
        .failure(400, "BadRequest");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("spec.nodeName"),
        "{status}"
    );
    api.get(&format!("{CMS}?labelSelector=app%3D%3D%3D("))
        .await
        .failure(400, "BadRequest");
    api.get(&format!("{CMS}?limit=many"))
        .await
        .failure(400, "BadRequest");
}

/// Reads a list page by page with `limit`, returning every page's names and the list's
/// resourceVersion (which every page must share).
async fn read_pages(api: &TestApi, path: &str, limit: usize) -> (Vec<Vec<String>>, String) {
    let first = api.read(&format!("{path}?limit={limit}")).await;
    let list_rv = rv(&first).to_string();
    let mut pages = vec![names(&first)];
    let mut token = first["metadata"]["continue"].as_str().map(String::from);
    while let Some(next) = token {
        let page = api
            .read(&format!("{path}?limit={limit}&continue={next}"))
            .await;
        assert_eq!(
            rv(&page),
            list_rv,
            "every page is read at the first one's revision"
        );
        pages.push(names(&page));
        token = page["metadata"]["continue"].as_str().map(String::from);
    }
    (pages, list_rv)
}

async fn pages_cover_every_object_once(api: TestApi) {
    namespace(&api, "paging", &[]).await;
    let path = "/api/v1/namespaces/paging/configmaps";
    for i in 0..25 {
        api.create(path, &configmap(&format!("cm-{i:02}"), json!({})))
            .await;
    }
    let first = api.read(&format!("{path}?limit=7")).await;
    assert_eq!(first["metadata"]["remainingItemCount"], 18);

    let (pages, _) = read_pages(&api, path, 7).await;
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [7, 7, 7, 4]);
    let all: Vec<String> = pages.concat();
    let expected: Vec<String> = (0..25).map(|i| format!("cm-{i:02}")).collect();
    assert_eq!(all, expected);

    api.get(&format!("{path}?limit=7&continue=not-a-token"))
        .await
        .failure(400, "BadRequest");
}

async fn continue_is_a_snapshot(api: TestApi) {
    namespace(&api, "churn", &[]).await;
    let path = "/api/v1/namespaces/churn/configmaps";
    for i in 0..20 {
        api.create(path, &configmap(&format!("cm-{i:02}"), json!({})))
            .await;
    }
    let first = api.read(&format!("{path}?limit=5")).await;
    let snapshot_rv = rv(&first).to_string();
    let mut seen = names(&first);
    let mut token = first["metadata"]["continue"].as_str().unwrap().to_string();

    // Heavy churn between pages: deletes, creates before and after the cursor, updates.
    for i in 5..15 {
        let reply = api.delete(&format!("{path}/cm-{i:02}")).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    for name in ["cm-00a", "cm-07a", "cm-99"] {
        api.create(path, &configmap(name, json!({}))).await;
    }
    for i in 15..20 {
        let cm = format!("{path}/cm-{i:02}");
        let reply = api
            .patch(
                &cm,
                crate::support::MERGE,
                &json!({"data": {"k": "changed"}}),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }

    loop {
        let page = api.read(&format!("{path}?limit=5&continue={token}")).await;
        assert_eq!(rv(&page), snapshot_rv);
        for item in page["items"].as_array().unwrap() {
            assert_eq!(item["data"]["k"], "v", "pages show the snapshot's content");
        }
        seen.extend(names(&page));
        match page["metadata"]["continue"].as_str() {
            Some(next) => token = next.to_string(),
            None => break,
        }
    }
    let expected: Vec<String> = (0..20).map(|i| format!("cm-{i:02}")).collect();
    assert_eq!(seen, expected);
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len());

    let (now, _) = api.list_names(path).await;
    assert_eq!(now.len(), 13);
}
