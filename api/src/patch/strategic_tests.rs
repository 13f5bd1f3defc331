use serde_json::{Value, json};

use super::*;

struct Case {
    name: &'static str,
    api_version: &'static str,
    kind: &'static str,
    live: Value,
    patch: Value,
    want: Value,
}

fn run(cases: Vec<Case>) {
    for c in cases {
        let got = apply_strategic_merge_patch(&c.live, &c.patch, c.api_version, c.kind)
            .unwrap_or_else(|e| panic!("{}: {e}", c.name));
        assert_eq!(got, c.want, "{}", c.name);
    }
}

fn deployment(containers: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": 1,
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": containers}
            }
        }
    })
}

fn pod(spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec})
}

#[test]
fn maps_and_scalars() {
    run(vec![
        Case {
            name: "labels merge, null deletes, absent null is a no-op",
            api_version: "v1",
            kind: "ConfigMap",
            live: json!({"metadata": {"name": "c", "labels": {"a": "1", "b": "2"}}, "data": {"k": "v"}}),
            patch: json!({"metadata": {"labels": {"a": null, "c": "3", "zz": null}}, "data": {"k2": "v2"}}),
            want: json!({"metadata": {"name": "c", "labels": {"b": "2", "c": "3"}}, "data": {"k": "v", "k2": "v2"}}),
        },
        Case {
            name: "kubectl scale",
            api_version: "apps/v1",
            kind: "Deployment",
            live: deployment(json!([{"name": "app", "image": "x:1"}])),
            patch: json!({"spec": {"replicas": 3}}),
            want: {
                let mut d = deployment(json!([{"name": "app", "image": "x:1"}]));
                d["spec"]["replicas"] = json!(3);
                d
            },
        },
        Case {
            name: "kubectl rollout restart",
            api_version: "apps/v1",
            kind: "Deployment",
            live: deployment(json!([{"name": "app", "image": "x:1"}])),
            patch: json!({"spec": {"template": {"metadata": {"annotations": {
                "kubectl.kubernetes.io/restartedAt": "2025-01-02T03:04:05Z"}}}}}),
            want: {
                let mut d = deployment(json!([{"name": "app", "image": "x:1"}]));
                d["spec"]["template"]["metadata"]["annotations"] =
                    json!({"kubectl.kubernetes.io/restartedAt": "2025-01-02T03:04:05Z"});
                d
            },
        },
        Case {
            name: "a patch object replaces a live scalar and drops its nulls",
            api_version: "v1",
            kind: "ConfigMap",
            live: json!({"data": "oops"}),
            patch: json!({"data": {"a": "1", "b": null}}),
            want: json!({"data": {"a": "1"}}),
        },
        Case {
            name: "a null removes a whole subtree",
            api_version: "v1",
            kind: "Pod",
            live: pod(json!({"containers": [{"name": "a"}], "nodeName": "n1"})),
            patch: json!({"spec": {"nodeName": null}}),
            want: pod(json!({"containers": [{"name": "a"}]})),
        },
    ]);
}

#[test]
fn lists_merged_by_key() {
    run(vec![
        Case {
            name: "kubectl set image merges the container by name",
            api_version: "apps/v1",
            kind: "Deployment",
            live: deployment(json!([
                {"name": "app", "image": "x:1", "ports": [{"containerPort": 80}]},
                {"name": "side", "image": "s:1"}
            ])),
            patch: json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "x:2"}]}}}}),
            want: deployment(json!([
                {"name": "app", "image": "x:2", "ports": [{"containerPort": 80}]},
                {"name": "side", "image": "s:1"}
            ])),
        },
        Case {
            name: "a new container goes first, as on a real server",
            api_version: "v1",
            kind: "Pod",
            live: pod(json!({"containers": [{"name": "a", "image": "a"}]})),
            patch: json!({"spec": {"containers": [{"name": "b", "image": "b"}]}}),
            want: pod(
                json!({"containers": [{"name": "b", "image": "b"}, {"name": "a", "image": "a"}]}),
            ),
        },
        Case {
            name: "env merges by name, ports by containerPort, mounts by mountPath",
            api_version: "v1",
            kind: "Pod",
            live: pod(json!({"containers": [{
                "name": "a",
                "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                "ports": [{"containerPort": 80, "name": "http"}],
                "volumeMounts": [{"name": "v", "mountPath": "/data"}]
            }]})),
            patch: json!({"spec": {"containers": [{
                "name": "a",
                "env": [{"name": "B", "value": "3"}],
                "ports": [{"containerPort": 80, "protocol": "TCP"}],
                "volumeMounts": [{"name": "w", "mountPath": "/data"}]
            }]}}),
            want: pod(json!({"containers": [{
                "name": "a",
                "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}],
                "ports": [{"containerPort": 80, "name": "http", "protocol": "TCP"}],
                "volumeMounts": [{"name": "w", "mountPath": "/data"}]
            }]})),
        },
        Case {
            name: "env value replaced by valueFrom via null",
            api_version: "v1",
            kind: "Pod",
            live: pod(json!({"containers": [{"name": "a", "env": [{"name": "A", "value": "1"}]}]})),
            patch: json!({"spec": {"containers": [{"name": "a", "env": [
                {"name": "A", "value": null, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
            ]}]}}),
            want: pod(json!({"containers": [{"name": "a", "env": [
                {"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
            ]}]})),
        },
        Case {
            name: "envFrom, tolerations and args are replaced",
            api_version: "v1",
            kind: "Pod",
            live: pod(json!({
                "containers": [{"name": "a", "args": ["x", "y"], "envFrom": [{"configMapRef": {"name": "c1"}}]}],
                "tolerations": [{"key": "k1", "operator": "Exists"}]
            })),
            patch: json!({"spec": {
                "containers": [{"name": "a", "args": ["z"], "envFrom": [{"secretRef": {"name": "s"}}]}],
                "tolerations": [{"key": "k2", "operator": "Exists"}]
            }}),
            want: pod(json!({
                "containers": [{"name": "a", "args": ["z"], "envFrom": [{"secretRef": {"name": "s"}}]}],
                "tolerations": [{"key": "k2", "operator": "Exists"}]
            })),
        },
        Case {
            name: "volumes, imagePullSecrets, hostAliases, topologySpreadConstraints merge",
            api_version: "v1",
            kind: "Pod",
            live: pod(json!({
                "volumes": [{"name": "v1", "emptyDir": {}}],
                "imagePullSecrets": [{"name": "r1"}],
                "hostAliases": [{"ip": "10.0.0.1", "hostnames": ["a"]}],
                "topologySpreadConstraints": [{"topologyKey": "zone", "maxSkew": 1}]
            })),
            patch: json!({"spec": {
                "volumes": [{"name": "v2", "configMap": {"name": "c"}}],
                "imagePullSecrets": [{"name": "r2"}],
                "hostAliases": [{"ip": "10.0.0.1", "hostnames": ["b"]}],
                "topologySpreadConstraints": [{"topologyKey": "zone", "maxSkew": 2}]
            }}),
            want: pod(json!({
                "volumes": [{"name": "v2", "configMap": {"name": "c"}}, {"name": "v1", "emptyDir": {}}],
                "imagePullSecrets": [{"name": "r2"}, {"name": "r1"}],
                "hostAliases": [{"ip": "10.0.0.1", "hostnames": ["b"]}],
                "topologySpreadConstraints": [{"topologyKey": "zone", "maxSkew": 2}]
            })),
        },
        Case {
            name: "pod status conditions merge by type",
            api_version: "v1",
            kind: "Pod",
            live: json!({"status": {"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Ready", "status": "False"}
            ]}}),
            patch: json!({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}),
            want: json!({"status": {"phase": "Running", "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Ready", "status": "True"}
            ]}}),
        },
        Case {
            name: "node addresses and conditions merge by type",
            api_version: "v1",
            kind: "Node",
            live: json!({"status": {
                "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}, {"type": "Hostname", "address": "n1"}],
                "conditions": [{"type": "Ready", "status": "False"}]
            }}),
            patch: json!({"status": {
                "addresses": [{"type": "InternalIP", "address": "10.0.0.2"}],
                "conditions": [{"type": "Ready", "status": "True"}]
            }}),
            want: json!({"status": {
                "addresses": [{"type": "InternalIP", "address": "10.0.0.2"}, {"type": "Hostname", "address": "n1"}],
                "conditions": [{"type": "Ready", "status": "True"}]
            }}),
        },
        Case {
            name: "service ports merge by port",
            api_version: "v1",
            kind: "Service",
            live: json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}}),
            patch: json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}),
            want: json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}, {"port": 443}]}}),
        },
        Case {
            name: "owner references merge by uid",
            api_version: "apps/v1",
            kind: "ReplicaSet",
            live: json!({"metadata": {"ownerReferences": [{"uid": "u1", "name": "d1", "controller": true}]}}),
            patch: json!({"metadata": {"ownerReferences": [{"uid": "u1", "controller": null}, {"uid": "u2", "name": "d2"}]}}),
            want: json!({"metadata": {"ownerReferences": [{"uid": "u1", "name": "d1"}, {"uid": "u2", "name": "d2"}]}}),
        },
        Case {
            name: "cronjob job template pod spec merges",
            api_version: "batch/v1",
            kind: "CronJob",
            live: json!({"spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {
                "containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]
            }}}}}}),
            patch: json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {
                "containers": [{"name": "b", "image": "b:2"}]
            }}}}}}),
            want: json!({"spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {
                "containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:2"}]
            }}}}}}),
        },
        Case {
            name: "job status conditions merge by type",
            api_version: "batch/v1",
            kind: "Job",
            live: json!({"status": {"conditions": [{"type": "Complete", "status": "False"}]}}),
            patch: json!({"status": {"conditions": [{"type": "Failed", "status": "True"}]}}),
            want: json!({"status": {"conditions": [{"type": "Failed", "status": "True"}, {"type": "Complete", "status": "False"}]}}),
        },
    ]);
}

#[test]
fn primitive_sets() {
    run(vec![
        Case {
            name: "finalizers merge as a set, new ones first",
            api_version: "v1",
            kind: "Namespace",
            live: json!({"metadata": {"finalizers": ["a", "b"]}}),
            patch: json!({"metadata": {"finalizers": ["c"]}}),
            want: json!({"metadata": {"finalizers": ["c", "a", "b"]}}),
        },
        Case {
            name: "finalizers: a known item anchors the new one after it",
            api_version: "v1",
            kind: "Namespace",
            live: json!({"metadata": {"finalizers": ["a", "b"]}}),
            patch: json!({"metadata": {"finalizers": ["b", "c", "b"]}}),
            want: json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
        },
        Case {
            name: "node podCIDRs merge as a set",
            api_version: "v1",
            kind: "Node",
            live: json!({"spec": {"podCIDRs": ["10.0.0.0/24"]}}),
            patch: json!({"spec": {"podCIDRs": ["10.0.0.0/24", "fd00::/64"]}}),
            want: json!({"spec": {"podCIDRs": ["10.0.0.0/24", "fd00::/64"]}}),
        },
        Case {
            name: "$deleteFromPrimitiveList removes finalizers",
            api_version: "v1",
            kind: "Pod",
            live: json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
            patch: json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "zz"]}}),
            want: json!({"metadata": {"finalizers": ["a", "c"]}}),
        },
        Case {
            name: "$deleteFromPrimitiveList on a missing list is a no-op",
            api_version: "v1",
            kind: "Pod",
            live: json!({"metadata": {"name": "p"}}),
            patch: json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}}),
            want: json!({"metadata": {"name": "p"}}),
        },
        Case {
            name: "$setElementOrder with additions and deletions of primitives",
            api_version: "v1",
            kind: "Pod",
            live: json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
            patch: json!({"metadata": {
                "$setElementOrder/finalizers": ["c", "d", "a"],
                "finalizers": ["d"],
                "$deleteFromPrimitiveList/finalizers": ["b"]
            }}),
            want: json!({"metadata": {"finalizers": ["c", "d", "a"]}}),
        },
    ]);
}

#[test]
fn patch_directives() {
    run(vec![
        Case {
            name: "$patch: delete removes a container by name",
            api_version: "v1",
            kind: "Pod",
            live: pod(json!({"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]})),
            patch: json!({"spec": {"containers": [{"name": "b", "$patch": "delete"}]}}),
            want: pod(json!({"containers": [{"name": "a"}, {"name": "c"}]})),
        },
        Case {
            name: "$patch: replace in a list keeps only the patch items",
            api_version: "v1",
            kind: "Pod",
            live: pod(json!({"containers": [{"name": "a", "image": "a"}, {"name": "b"}]})),
            patch: json!({"spec": {"containers": [{"name": "c", "image": "c"}, {"$patch": "replace"}]}}),
            want: pod(json!({"containers": [{"name": "c", "image": "c"}]})),
        },
        Case {
            name: "$patch: replace on a map replaces it",
            api_version: "apps/v1",
            kind: "Deployment",
            live: deployment(json!([{"name": "app"}])),
            patch: json!({"spec": {"template": {"metadata": {"labels": {"$patch": "replace", "tier": "x"}}}}}),
            want: {
                let mut d = deployment(json!([{"name": "app"}]));
                d["spec"]["template"]["metadata"]["labels"] = json!({"tier": "x"});
                d
            },
        },
        Case {
            name: "$patch: delete on a map empties it",
            api_version: "v1",
            kind: "Pod",
            live: pod(json!({"containers": [{"name": "a"}], "securityContext": {"runAsUser": 1}})),
            patch: json!({"spec": {"securityContext": {"$patch": "delete"}}}),
            want: pod(json!({"containers": [{"name": "a"}], "securityContext": {}})),
        },
        Case {
            name: "$patch: merge is the default",
            api_version: "v1",
            kind: "Pod",
            live: pod(json!({"securityContext": {"runAsUser": 1}})),
            patch: json!({"spec": {"securityContext": {"$patch": "merge", "runAsGroup": 2}}}),
            want: pod(json!({"securityContext": {"runAsUser": 1, "runAsGroup": 2}})),
        },
        Case {
            name: "$retainKeys switches the deployment strategy",
            api_version: "apps/v1",
            kind: "Deployment",
            live: json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}),
            patch: json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
            want: json!({"spec": {"strategy": {"type": "Recreate"}}}),
        },
        Case {
            name: "$retainKeys on a volume switches its source",
            api_version: "v1",
            kind: "Pod",
            live: pod(json!({"volumes": [{"name": "v", "emptyDir": {}}]})),
            patch: json!({"spec": {"volumes": [{"name": "v", "$retainKeys": ["configMap", "name"], "configMap": {"name": "c"}}]}}),
            want: pod(json!({"volumes": [{"name": "v", "configMap": {"name": "c"}}]})),
        },
        Case {
            name: "$setElementOrder reorders without other changes",
            api_version: "v1",
            kind: "Pod",
            live: pod(json!({"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]})),
            patch: json!({"spec": {"$setElementOrder/containers": [{"name": "c"}, {"name": "a"}, {"name": "b"}]}}),
            want: pod(json!({"containers": [{"name": "c"}, {"name": "a"}, {"name": "b"}]})),
        },
        Case {
            name: "$setElementOrder places a new item",
            api_version: "v1",
            kind: "Pod",
            live: pod(json!({"containers": [{"name": "a"}, {"name": "b"}]})),
            patch: json!({"spec": {
                "$setElementOrder/containers": [{"name": "a"}, {"name": "n"}, {"name": "b"}],
                "containers": [{"name": "n", "image": "n"}]
            }}),
            want: pod(
                json!({"containers": [{"name": "a"}, {"name": "n", "image": "n"}, {"name": "b"}]}),
            ),
        },
        Case {
            name: "$setElementOrder keeps server-only items in their live place",
            api_version: "v1",
            kind: "Pod",
            live: pod(json!({"containers": [{"name": "a"}, {"name": "injected"}, {"name": "b"}]})),
            patch: json!({"spec": {
                "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
                "containers": [{"name": "a", "image": "a:2"}]
            }}),
            want: pod(
                json!({"containers": [{"name": "injected"}, {"name": "b"}, {"name": "a", "image": "a:2"}]}),
            ),
        },
        Case {
            name: "$setElementOrder on a missing list creates it from the patch",
            api_version: "v1",
            kind: "Pod",
            live: pod(json!({})),
            patch: json!({"spec": {
                "$setElementOrder/initContainers": [{"name": "i"}],
                "initContainers": [{"name": "i", "image": "i", "ports": null}]
            }}),
            want: pod(json!({"initContainers": [{"name": "i", "image": "i"}]})),
        },
    ]);
}

#[test]
fn kubectl_apply_three_way_patch() {
    // Last applied: containers app (env A, B) + sidecar. New config: only app, with env A.
    // kubectl computes this patch against the live object, which also has a
    // server-added field (terminationMessagePath) and env var injected by a webhook (Z).
    let live = deployment(json!([
        {
            "name": "app", "image": "x:1", "terminationMessagePath": "/dev/termination-log",
            "env": [{"name": "A", "value": "1"}, {"name": "Z", "value": "z"}, {"name": "B", "value": "2"}]
        },
        {"name": "sidecar", "image": "s:1"}
    ]));
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "app"}],
        "containers": [
            {
                "name": "app",
                "image": "x:2",
                "$setElementOrder/env": [{"name": "A"}],
                "env": [{"$patch": "delete", "name": "B"}]
            },
            {"$patch": "delete", "name": "sidecar"}
        ]
    }}}});
    let want = deployment(json!([{
        "name": "app", "image": "x:2", "terminationMessagePath": "/dev/termination-log",
        "env": [{"name": "A", "value": "1"}, {"name": "Z", "value": "z"}]
    }]));
    run(vec![Case {
        name: "3-way apply patch",
        api_version: "apps/v1",
        kind: "Deployment",
        live,
        patch,
        want,
    }]);
}

#[test]
fn server_side_apply_merge() {
    // A full applied object merged onto the live one: keyed items merge, live-only fields
    // and items stay, applied order wins for applied items.
    let live = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "s", "uid": "u", "resourceVersion": "5"},
        "spec": {"clusterIP": "10.0.0.9", "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}]}
    });
    let applied = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "s", "labels": {"app": "s"}},
        "spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}
    });
    let want = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "s", "uid": "u", "resourceVersion": "5", "labels": {"app": "s"}},
        "spec": {"clusterIP": "10.0.0.9", "ports": [
            {"port": 80, "protocol": "TCP", "targetPort": 8080},
            {"port": 443}
        ]}
    });
    run(vec![Case {
        name: "applied service onto live",
        api_version: "v1",
        kind: "Service",
        live,
        patch: applied,
        want,
    }]);
}

#[test]
fn unknown_kinds_merge_maps_and_replace_lists() {
    run(vec![Case {
        name: "custom resource",
        api_version: "example.com/v1",
        kind: "Widget",
        live: json!({"metadata": {"finalizers": ["a"]}, "spec": {"size": 1, "items": [{"name": "a"}], "opts": {"x": 1}}}),
        patch: json!({"metadata": {"finalizers": ["b"]}, "spec": {"items": [{"name": "b"}], "opts": {"y": 2, "x": null}}}),
        want: json!({"metadata": {"finalizers": ["b"]}, "spec": {"size": 1, "items": [{"name": "b"}], "opts": {"y": 2}}}),
    }]);
}

#[test]
fn bad_patches_are_errors() {
    let live = pod(json!({"containers": [{"name": "a"}], "securityContext": {"runAsUser": 1}}));
    type IsExpected = fn(&PatchError) -> bool;
    let cases: Vec<(&str, Value, IsExpected)> = vec![
        ("patch not an object", json!([1]), |e| {
            matches!(e, PatchError::NotAnObject { what: "patch" })
        }),
        (
            "unknown $patch on a map",
            json!({"spec": {"securityContext": {"$patch": "explode"}}}),
            |e| matches!(e, PatchError::UnknownPatchDirective { path, .. } if path == "/spec/securityContext"),
        ),
        (
            "unknown $patch on a list item",
            json!({"spec": {"containers": [{"name": "a", "$patch": "nope"}]}}),
            |e| matches!(e, PatchError::UnknownPatchDirective { path, .. } if path == "/spec/containers/0"),
        ),
        (
            "$patch: delete without merge key",
            json!({"spec": {"containers": [{"$patch": "delete"}]}}),
            |e| matches!(e, PatchError::MissingMergeKey { key: "name", .. }),
        ),
        (
            "list item without merge key",
            json!({"spec": {"containers": [{"image": "x"}]}}),
            |e| matches!(e, PatchError::MissingMergeKey { key: "name", .. }),
        ),
        (
            "primitive where a keyed list item is expected",
            json!({"spec": {"containers": ["a"]}}),
            |e| matches!(e, PatchError::InvalidList { .. }),
        ),
        (
            "object inside a primitive set",
            json!({"metadata": {"finalizers": [{"a": 1}]}}),
            |e| matches!(e, PatchError::InvalidList { .. }),
        ),
        (
            "$retainKeys not a list",
            json!({"spec": {"securityContext": {"$retainKeys": "runAsUser"}}}),
            |e| {
                matches!(
                    e,
                    PatchError::InvalidDirective {
                        directive: "$retainKeys",
                        ..
                    }
                )
            },
        ),
        (
            "$retainKeys missing a patched field",
            json!({"spec": {"securityContext": {"$retainKeys": ["runAsUser"], "runAsGroup": 1}}}),
            |e| {
                matches!(
                    e,
                    PatchError::InvalidDirective {
                        directive: "$retainKeys",
                        ..
                    }
                )
            },
        ),
        (
            "$setElementOrder not a list",
            json!({"spec": {"$setElementOrder/containers": {"name": "a"}}}),
            |e| {
                matches!(
                    e,
                    PatchError::InvalidDirective {
                        directive: "$setElementOrder",
                        ..
                    }
                )
            },
        ),
        (
            "$setElementOrder entry without merge key",
            json!({"spec": {"$setElementOrder/containers": ["a"]}}),
            |e| {
                matches!(
                    e,
                    PatchError::InvalidDirective {
                        directive: "$setElementOrder",
                        ..
                    }
                )
            },
        ),
        (
            "$setElementOrder contradicting the patch list",
            json!({"spec": {
                "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
                "containers": [{"name": "b"}, {"name": "a"}]
            }}),
            |e| matches!(e, PatchError::ElementOrderMismatch { .. }),
        ),
        (
            "$deleteFromPrimitiveList not a list",
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}}),
            |e| {
                matches!(
                    e,
                    PatchError::InvalidDirective {
                        directive: "$deleteFromPrimitiveList",
                        ..
                    }
                )
            },
        ),
        (
            "unknown directive key",
            json!({"spec": {"$frobnicate": 1}}),
            |e| matches!(e, PatchError::UnsupportedDirective { .. }),
        ),
    ];
    for (name, patch, expected) in cases {
        match apply_strategic_merge_patch(&live, &patch, "v1", "Pod") {
            Err(e) => assert!(expected(&e), "{name}: unexpected error {e}"),
            Ok(v) => panic!("{name}: expected an error, got {v}"),
        }
    }
    assert!(matches!(
        apply_strategic_merge_patch(&json!("x"), &json!({}), "v1", "Pod"),
        Err(PatchError::NotAnObject { what: "document" })
    ));
}

#[test]
fn every_workload_kind_shares_the_pod_template() {
    let kinds = [
        ("apps/v1", "Deployment"),
        ("apps/v1", "ReplicaSet"),
        ("apps/v1", "DaemonSet"),
        ("apps/v1", "StatefulSet"),
        ("batch/v1", "Job"),
    ];
    for (api_version, kind) in kinds {
        let live = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
            {"name": "b", "image": "b:1"}
        ]}}}});
        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "env": [{"name": "Y", "value": "2"}]}
        ]}}}});
        let want = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "a:1", "env": [{"name": "Y", "value": "2"}, {"name": "X", "value": "1"}]},
            {"name": "b", "image": "b:1"}
        ]}}}});
        let got = apply_strategic_merge_patch(&live, &patch, api_version, kind);
        assert_eq!(got.ok(), Some(want), "{kind}");
    }
}

#[test]
fn other_keyed_lists() {
    run(vec![
        Case {
            name: "service account secrets merge by name",
            api_version: "v1",
            kind: "ServiceAccount",
            live: json!({"secrets": [{"name": "t1"}]}),
            patch: json!({"secrets": [{"name": "t1"}, {"name": "t2"}]}),
            want: json!({"secrets": [{"name": "t1"}, {"name": "t2"}]}),
        },
        Case {
            name: "ephemeral containers merge by name",
            api_version: "v1",
            kind: "Pod",
            live: pod(json!({"ephemeralContainers": [{"name": "dbg", "image": "busybox"}]})),
            patch: json!({"spec": {"ephemeralContainers": [{"name": "dbg", "stdin": true}]}}),
            want: pod(
                json!({"ephemeralContainers": [{"name": "dbg", "image": "busybox", "stdin": true}]}),
            ),
        },
        Case {
            name: "namespace status conditions merge by type",
            api_version: "v1",
            kind: "Namespace",
            live: json!({"status": {"phase": "Terminating", "conditions": [{"type": "A", "status": "True"}]}}),
            patch: json!({"status": {"conditions": [{"type": "A", "status": "False", "reason": "Done"}]}}),
            want: json!({"status": {"phase": "Terminating", "conditions": [{"type": "A", "status": "False", "reason": "Done"}]}}),
        },
        Case {
            name: "a merge key matches across integer and float spellings",
            api_version: "v1",
            kind: "Service",
            live: json!({"spec": {"ports": [{"port": 80, "name": "http"}]}}),
            patch: json!({"spec": {"ports": [{"port": 80.0, "targetPort": 8080}]}}),
            // The patch's spelling of the key wins, as any patched scalar does.
            want: json!({"spec": {"ports": [{"port": 80.0, "name": "http", "targetPort": 8080}]}}),
        },
        Case {
            name: "$patch: replace wins over deletions in the same list",
            api_version: "v1",
            kind: "Pod",
            live: pod(json!({"containers": [{"name": "a"}, {"name": "b"}]})),
            patch: json!({"spec": {"containers": [
                {"name": "a", "$patch": "delete"},
                {"$patch": "replace"},
                {"name": "b", "image": "b:2", "env": [{"name": "E", "value": null}]}
            ]}}),
            want: pod(
                json!({"containers": [{"name": "b", "image": "b:2", "env": [{"name": "E"}]}]}),
            ),
        },
        Case {
            name: "kubectl edit: reorder env and change a value",
            api_version: "v1",
            kind: "Pod",
            live: pod(json!({"containers": [{"name": "a", "env": [
                {"name": "A", "value": "1"}, {"name": "B", "value": "2"}
            ]}]})),
            patch: json!({"spec": {
                "$setElementOrder/containers": [{"name": "a"}],
                "containers": [{
                    "name": "a",
                    "$setElementOrder/env": [{"name": "B"}, {"name": "A"}],
                    "env": [{"name": "A", "value": "3"}]
                }]
            }}),
            want: pod(json!({"containers": [{"name": "a", "env": [
                {"name": "B", "value": "2"}, {"name": "A", "value": "3"}
            ]}]})),
        },
    ]);
}

#[test]
fn the_input_document_is_not_modified() {
    let live = pod(json!({"containers": [{"name": "a"}]}));
    let before = live.clone();
    let patch = json!({"spec": {"containers": [{"name": "a", "$patch": "delete"}]}});
    let got = apply_strategic_merge_patch(&live, &patch, "v1", "Pod").ok();
    assert_eq!(got, Some(pod(json!({"containers": []}))));
    assert_eq!(live, before);
}
