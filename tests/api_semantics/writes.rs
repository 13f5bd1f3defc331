//! Create and update semantics: field validation, admission of names and labels, namespaces,
//! optimistic concurrency and server-owned metadata.

use serde_json::{Value, json};

use crate::support::{MERGE, TestApi, configmap, deployment, namespace, rv};

const CMS: &str = "/api/v1/namespaces/default/configmaps";
const DEPLOYS: &str = "/apis/apps/v1/namespaces/default/deployments";

fn with_unknown_field(name: &str) -> Value {
    let mut d = deployment(name, 1);
    d["spec"]["foo"] = json!("bar");
    d
}

#[tokio::test]
async fn field_validation_modes() {
    let api = TestApi::memory().await;

    let status = api
        .post(
            &format!("{DEPLOYS}?fieldValidation=Strict"),
            &with_unknown_field("strict"),
        )
        .await
        .failure(400, "BadRequest");
    assert_eq!(
        status["message"],
        r#"strict decoding error: unknown field "spec.foo""#
    );
    api.get(&format!("{DEPLOYS}/strict"))
        .await
        .failure(404, "NotFound");

    for (mode, name) in [("?fieldValidation=Warn", "warn"), ("", "default-warn")] {
        let reply = api
            .post(&format!("{DEPLOYS}{mode}"), &with_unknown_field(name))
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text());
        assert_eq!(
            reply.warnings(),
            vec![r#"299 - "unknown field \"spec.foo\"""#.to_string()]
        );
        assert!(reply.json()["spec"].get("foo").is_none());
    }

    let reply = api
        .post(
            &format!("{DEPLOYS}?fieldValidation=Ignore"),
            &with_unknown_field("ignore"),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    assert!(reply.warnings().is_empty());

    for mode in ["Strict", "Warn", "Ignore"] {
        let mut d = deployment(&format!("typed-{}", mode.to_lowercase()), 1);
        d["spec"]["replicas"] = json!("three");
        let status = api
            .post(&format!("{DEPLOYS}?fieldValidation={mode}"), &d)
            .await
            .failure(400, "BadRequest");
        let message = status["message"].as_str().unwrap();
        assert!(
            message
                .starts_with(r#"Deployment in version "v1" cannot be handled as a Deployment: "#),
            "{message}"
        );
        assert!(message.contains("spec.replicas"), "{message}");
    }

    let status = api
        .post(
            &format!("{DEPLOYS}?fieldValidation=Loose"),
            &deployment("x", 1),
        )
        .await
        .failure(400, "BadRequest");
    assert!(status["message"].as_str().unwrap().contains("Loose"));
}

/// The fields named by an Invalid Status's causes.
fn cause_fields(status: &Value) -> Vec<&str> {
    status["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn invalid_names_and_labels_are_unprocessable() {
    let api = TestApi::memory().await;

    let status = api
        .post(CMS, &configmap("Foo_Bar", json!({})))
        .await
        .failure(422, "Invalid");
    assert_eq!(status["details"]["name"], "Foo_Bar");
    assert_eq!(status["details"]["kind"], "ConfigMap");
    assert_eq!(status["details"]["group"], "");
    assert_eq!(cause_fields(&status), vec!["metadata.name"]);
    assert_eq!(
        status["details"]["causes"][0]["reason"],
        "FieldValueInvalid"
    );
    assert!(
        status["message"].as_str().unwrap().starts_with(
            r#"ConfigMap "Foo_Bar" is invalid: metadata.name: Invalid value: "Foo_Bar""#
        ),
        "{status}"
    );

    let long = "a".repeat(254);
    let status = api
        .post(CMS, &configmap(&long, json!({})))
        .await
        .failure(422, "Invalid");
    assert_eq!(cause_fields(&status), vec!["metadata.name"]);
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("must be no more than 253 characters"),
        "{status}"
    );

    let status = api
        .post(DEPLOYS, &deployment("Foo_Bar", 1))
        .await
        .failure(422, "Invalid");
    assert_eq!(status["details"]["group"], "apps");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .starts_with(r#"Deployment.apps "Foo_Bar" is invalid: "#),
        "{status}"
    );

    let labels = json!({"bad key!": "v", "ok": "-not-a-value-"});
    let status = api
        .post(CMS, &configmap("labelled", labels))
        .await
        .failure(422, "Invalid");
    let fields = cause_fields(&status);
    assert_eq!(fields.len(), 2, "{status}");
    assert!(fields.iter().all(|f| *f == "metadata.labels"), "{status}");

    let (names, _) = api.list_names(CMS).await;
    assert!(names.is_empty(), "{names:?}");
}

#[tokio::test]
async fn creates_need_an_open_namespace() {
    let api = TestApi::memory().await;

    let status = api
        .post(
            "/api/v1/namespaces/nope/configmaps",
            &configmap("x", json!({})),
        )
        .await
        .failure(404, "NotFound");
    assert_eq!(status["message"], r#"namespaces "nope" not found"#);
    assert_eq!(
        status["details"],
        json!({"name": "nope", "group": "", "kind": "namespaces"})
    );

    namespace(&api, "closing", &["example.com/hold"]).await;
    let deleted = api.delete("/api/v1/namespaces/closing").await;
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    assert!(deleted.json()["metadata"]["deletionTimestamp"].is_string());

    let status = api
        .post(
            "/api/v1/namespaces/closing/configmaps",
            &configmap("x", json!({})),
        )
        .await
        .failure(403, "Forbidden");
    assert_eq!(
        status["message"],
        r#"configmaps "x" is forbidden: unable to create new content in namespace closing because it is being terminated"#
    );
    assert_eq!(status["details"]["kind"], "configmaps");
    assert_eq!(status["details"]["name"], "x");
}

on_both_stores!(optimistic_concurrency, concurrent_patches_all_land);

async fn optimistic_concurrency(api: TestApi) {
    let path = format!("{CMS}/occ");
    let created = api.create(CMS, &configmap("occ", json!({}))).await;

    let mut first = created.clone();
    first["data"]["k"] = json!("first");
    let updated = api.put(&path, &first).await;
    assert_eq!(updated.status, 200, "{}", updated.text());
    assert_ne!(rv(&updated.json()), rv(&created));

    // `created` still carries the old resourceVersion.
    let mut stale = created.clone();
    stale["data"]["k"] = json!("stale");
    let status = api.put(&path, &stale).await.failure(409, "Conflict");
    assert_eq!(
        status["message"],
        r#"Operation cannot be fulfilled on configmaps "occ": the object has been modified; please apply your changes to the latest version and try again"#
    );
    assert_eq!(
        status["details"],
        json!({"name": "occ", "group": "", "kind": "configmaps"})
    );
    assert_eq!(api.read(&path).await["data"]["k"], "first");

    // A stale resourceVersion in a patch is a precondition too.
    let patch = json!({"metadata": {"resourceVersion": rv(&created)}, "data": {"k": "p"}});
    api.patch(&path, MERGE, &patch)
        .await
        .failure(409, "Conflict");

    let mut unconditional = stale;
    unconditional["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    let reply = api.put(&path, &unconditional).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(api.read(&path).await["data"]["k"], "stale");
}

async fn concurrent_patches_all_land(api: TestApi) {
    let path = format!("{CMS}/contended");
    api.create(CMS, &configmap("contended", json!({}))).await;
    let api = std::sync::Arc::new(api);
    let patches: Vec<_> = (0..20)
        .map(|i| {
            let api = std::sync::Arc::clone(&api);
            let path = path.clone();
            tokio::spawn(async move {
                let patch = json!({"metadata": {"labels": {format!("l{i}"): "set"}}});
                api.patch(&path, MERGE, &patch).await
            })
        })
        .collect();
    for patch in patches {
        let reply = patch.await.unwrap();
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    let labels = api.read(&path).await["metadata"]["labels"].clone();
    for i in 0..20 {
        assert_eq!(labels[format!("l{i}")], "set", "{labels}");
    }
}

#[tokio::test]
async fn server_owned_metadata_across_updates() {
    let api = TestApi::memory().await;
    let path = format!("{DEPLOYS}/gen");
    let created = api.create(DEPLOYS, &deployment("gen", 1)).await;
    assert_eq!(created["metadata"]["generation"], 1);
    let uid = created["metadata"]["uid"].clone();
    let created_at = created["metadata"]["creationTimestamp"].clone();
    assert!(uid.is_string() && created_at.is_string());

    // A client that drops the server-owned fields keeps them anyway.
    let mut relabelled = created.clone();
    let meta = relabelled["metadata"].as_object_mut().unwrap();
    for field in ["uid", "creationTimestamp", "generation"] {
        meta.remove(field);
    }
    meta.insert("labels".into(), json!({"tier": "web"}));
    let relabelled = api.put(&path, &relabelled).await.json();
    assert_eq!(relabelled["metadata"]["generation"], 1);
    assert_eq!(relabelled["metadata"]["uid"], uid);
    assert_eq!(relabelled["metadata"]["creationTimestamp"], created_at);
    assert_ne!(rv(&relabelled), rv(&created));

    let mut scaled = relabelled.clone();
    scaled["spec"]["replicas"] = json!(3);
    let scaled = api.put(&path, &scaled).await.json();
    assert_eq!(scaled["metadata"]["generation"], 2);
    assert_eq!(scaled["metadata"]["uid"], uid);

    let unchanged = api.put(&path, &scaled).await;
    assert_eq!(unchanged.status, 200, "{}", unchanged.text());
    assert_eq!(rv(&unchanged.json()), rv(&scaled));
    assert_eq!(unchanged.json()["metadata"]["generation"], 2);
    let noop_patch = api
        .patch(&path, MERGE, &json!({"spec": {"replicas": 3}}))
        .await;
    assert_eq!(rv(&noop_patch.json()), rv(&scaled));
}
