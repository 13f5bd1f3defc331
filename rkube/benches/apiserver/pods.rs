//! Request bodies: a minimal pod for throughput, and a realistic one for LIST.

use bytes::Bytes;
use serde_json::json;

/// The smallest valid pod: one container.
pub fn small(i: usize) -> Bytes {
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": format!("small-{i}")},
        "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]},
    });
    Bytes::from(pod.to_string())
}

/// A pod shaped like one a Deployment creates: labels, an owner, probes, resources, env and
/// volumes (about 1.5 KB once the server has defaulted it).
pub fn realistic(i: usize) -> Bytes {
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": format!("web-7d4b9c8f6d-{i:05}"),
            "labels": {"app": "web", "tier": "frontend", "pod-template-hash": "7d4b9c8f6d"},
            "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9090"},
            "ownerReferences": [{
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": "web-7d4b9c8f6d",
                "uid": "4f5e9a2c-1b3d-4e6f-8a7b-9c0d1e2f3a4b",
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "spec": {
            "containers": [{
                "name": "web",
                "image": "registry.example.com/shop/web:1.24.3",
                "args": ["--listen=:8080", "--metrics=:9090"],
                "ports": [
                    {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                    {"name": "metrics", "containerPort": 9090, "protocol": "TCP"},
                ],
                "env": [
                    {"name": "LOG_LEVEL", "value": "info"},
                    {"name": "CACHE_URL", "value": "redis://cache.shop.svc:6379"},
                ],
                "resources": {
                    "requests": {"cpu": "100m", "memory": "128Mi"},
                    "limits": {"cpu": "500m", "memory": "256Mi"},
                },
                "readinessProbe": {
                    "httpGet": {"path": "/healthz", "port": 8080},
                    "periodSeconds": 5,
                },
                "livenessProbe": {
                    "httpGet": {"path": "/livez", "port": 8080},
                    "initialDelaySeconds": 10,
                },
                "volumeMounts": [{"name": "config", "mountPath": "/etc/web", "readOnly": true}],
            }],
            "volumes": [{"name": "config", "configMap": {"name": "web-config"}}],
            "nodeSelector": {"kubernetes.io/os": "linux"},
        },
    });
    Bytes::from(pod.to_string())
}
