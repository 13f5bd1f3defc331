//! WATCH: initial state, replay from a resourceVersion, selector transitions, expiry,
//! timeouts and `sendInitialEvents`.

use std::time::Duration;

use serde_json::json;

use crate::support::{Backend, MERGE, TestApi, configmap, pod, rv};

const CMS: &str = "/api/v1/namespaces/default/configmaps";
const PODS: &str = "/api/v1/namespaces/default/pods";

on_both_stores!(watch_without_rv_starts_from_state, watch_from_rv_replays);

async fn watch_without_rv_starts_from_state(api: TestApi) {
    api.create(CMS, &configmap("before", json!({}))).await;
    let mut watch = api.watch(&format!("{CMS}?watch=true")).await;
    assert_eq!(watch.next_named().await, ("ADDED".into(), "before".into()));

    let patched = api
        .patch(
            &format!("{CMS}/before"),
            MERGE,
            &json!({"data": {"k": "2"}}),
        )
        .await
        .json();
    let event = watch.next().await;
    assert_eq!(event["type"], "MODIFIED");
    assert_eq!(event["object"]["data"]["k"], "2");
    assert_eq!(rv(&event["object"]), rv(&patched));

    api.create(CMS, &configmap("after", json!({}))).await;
    assert_eq!(watch.next_named().await, ("ADDED".into(), "after".into()));
    api.delete(&format!("{CMS}/before")).await;
    assert_eq!(
        watch.next_named().await,
        ("DELETED".into(), "before".into())
    );
    // Other namespaces and resources do not leak into the watch.
    api.create(
        "/api/v1/namespaces/kube-system/configmaps",
        &configmap("elsewhere", json!({})),
    )
    .await;
    api.create(PODS, &pod("a-pod", None)).await;
    watch.assert_quiet(Duration::from_millis(200)).await;
}

async fn watch_from_rv_replays(api: TestApi) {
    let a = api.create(CMS, &configmap("a", json!({}))).await;
    api.patch(&format!("{CMS}/a"), MERGE, &json!({"data": {"k": "2"}}))
        .await;
    api.create(CMS, &configmap("b", json!({}))).await;
    api.delete(&format!("{CMS}/a")).await;

    let mut watch = api
        .watch(&format!("{CMS}?watch=1&resourceVersion={}", rv(&a)))
        .await;
    assert_eq!(watch.next_named().await, ("MODIFIED".into(), "a".into()));
    assert_eq!(watch.next_named().await, ("ADDED".into(), "b".into()));
    assert_eq!(watch.next_named().await, ("DELETED".into(), "a".into()));
    api.create(CMS, &configmap("c", json!({}))).await;
    assert_eq!(watch.next_named().await, ("ADDED".into(), "c".into()));
    watch.assert_quiet(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn leaving_a_field_selection_is_a_delete() {
    let api = TestApi::memory().await;
    let mut watch = api
        .watch(&format!(
            "{PODS}?watch=true&fieldSelector=status.phase%3DPending"
        ))
        .await;
    let created = api.create(PODS, &pod("p", None)).await;
    assert_eq!(watch.next_named().await, ("ADDED".into(), "p".into()));

    let mut running = created.clone();
    running["status"]["phase"] = json!("Running");
    let reply = api.put(&format!("{PODS}/p/status"), &running).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let event = watch.next().await;
    assert_eq!(event["type"], "DELETED");
    assert_eq!(event["object"]["status"]["phase"], "Running");

    // Changes outside the selection stay invisible.
    api.patch(
        &format!("{PODS}/p"),
        MERGE,
        &json!({"metadata": {"labels": {"x": "y"}}}),
    )
    .await;
    watch.assert_quiet(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn too_old_rv_is_an_error_event() {
    let api = TestApi::with_window(Backend::Memory, 4).await;
    let first = api.create(CMS, &configmap("first", json!({}))).await;
    for i in 0..10 {
        api.create(CMS, &configmap(&format!("cm-{i}"), json!({})))
            .await;
    }
    let mut watch = api
        .watch(&format!("{CMS}?watch=true&resourceVersion={}", rv(&first)))
        .await;
    let event = watch.next().await;
    assert_eq!(event["type"], "ERROR");
    let status = &event["object"];
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["status"], "Failure");
    assert_eq!(status["code"], 410);
    assert_eq!(status["reason"], "Expired");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("too old resource version: {}", rv(&first))),
        "{status}"
    );
    watch.assert_ends(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn timeout_seconds_ends_the_stream() {
    let api = TestApi::memory().await;
    let started = std::time::Instant::now();
    let mut watch = api
        .watch(&format!(
            "{CMS}?watch=true&timeoutSeconds=1&resourceVersion=1"
        ))
        .await;
    watch.assert_ends(Duration::from_secs(3)).await;
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn initial_events_end_with_a_bookmark() {
    let api = TestApi::memory().await;
    api.create(CMS, &configmap("one", json!({}))).await;
    let two = api.create(CMS, &configmap("two", json!({}))).await;

    let mut watch = api
        .watch(&format!(
            "{CMS}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"
        ))
        .await;
    assert_eq!(watch.next_named().await, ("ADDED".into(), "one".into()));
    assert_eq!(watch.next_named().await, ("ADDED".into(), "two".into()));
    let bookmark = watch.next().await;
    assert_eq!(bookmark["type"], "BOOKMARK");
    assert_eq!(bookmark["object"]["kind"], "ConfigMap");
    assert_eq!(
        bookmark["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    let bookmark_rv: i64 = rv(&bookmark["object"]).parse().unwrap();
    assert!(bookmark_rv >= rv(&two).parse::<i64>().unwrap());
    api.create(CMS, &configmap("three", json!({}))).await;
    assert_eq!(watch.next_named().await, ("ADDED".into(), "three".into()));

    for query in [
        "sendInitialEvents=true",
        "sendInitialEvents=true&allowWatchBookmarks=true",
        "sendInitialEvents=true&resourceVersionMatch=NotOlderThan",
    ] {
        let status = api
            .get(&format!("{CMS}?watch=true&{query}"))
            .await
            .failure(422, "Invalid");
        assert_eq!(
            status["details"]["causes"][0]["field"], "sendInitialEvents",
            "{status}"
        );
    }
}
