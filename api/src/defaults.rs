//! The defaults Kubernetes fills into objects before validating and storing them. Only absent
//! (or null) fields are set, so defaulting is idempotent and safe on updates.

use base64::Engine;
use serde_json::{Map, Value, json};

use crate::resources::ResourceInfo;

const JOB_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";
const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
const LEGACY_JOB_UID_LABEL: &str = "controller-uid";
const LEGACY_JOB_NAME_LABEL: &str = "job-name";
/// 0644, the file mode of projected ConfigMap/Secret/downward API files.
const DEFAULT_FILE_MODE: i64 = 420;

pub fn apply_defaults(resource: &ResourceInfo, obj: &mut Value) {
    let Some(root) = obj.as_object_mut() else {
        return;
    };
    match resource.kind {
        "Namespace" => default_namespace(root),
        "Pod" => default_pod(root),
        "Node" => default_node(root),
        "Service" => {
            if let Some(spec) = child(root, "spec") {
                default_service_spec(spec);
            }
        }
        "Endpoints" => {
            for subset in list(root, "subsets") {
                for port in list(subset, "ports") {
                    set(port, "protocol", json!("TCP"));
                }
            }
        }
        "Secret" => default_secret(root),
        "Deployment" => with_spec(root, default_deployment_spec),
        "ReplicaSet" => with_spec(root, |spec| {
            set(spec, "replicas", json!(1));
            default_template(spec);
        }),
        "StatefulSet" => with_spec(root, default_statefulset_spec),
        "DaemonSet" => with_spec(root, default_daemonset_spec),
        "Job" => default_job(root),
        "CronJob" => with_spec(root, default_cronjob_spec),
        "EndpointSlice" => {
            for port in list(root, "ports") {
                set(port, "name", json!(""));
                set(port, "protocol", json!("TCP"));
            }
        }
        "RoleBinding" | "ClusterRoleBinding" => {
            for subject in list(root, "subjects") {
                // An empty apiGroup is unset in Go, so it is defaulted too.
                let group = match str_of(subject, "kind") {
                    "ServiceAccount" => "",
                    "User" | "Group" => "rbac.authorization.k8s.io",
                    _ => continue,
                };
                if str_of(subject, "apiGroup").is_empty() {
                    subject.insert("apiGroup".into(), json!(group));
                }
            }
        }
        // ConfigMaps, ServiceAccounts, Events, Leases and RuntimeClasses have no defaults.
        _ => {}
    }
}

/// Sets `key` when it is absent or null.
fn set(map: &mut Map<String, Value>, key: &str, value: Value) {
    match map.get(key) {
        None | Some(Value::Null) => {
            map.insert(key.to_string(), value);
        }
        Some(_) => {}
    }
}

/// The object at `key`, created empty when absent; `None` when something else is there.
fn child<'a>(map: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Map<String, Value>> {
    set(map, key, json!({}));
    map.get_mut(key).and_then(Value::as_object_mut)
}

/// The objects in the list at `key`, if there is one.
fn list<'a>(
    map: &'a mut Map<String, Value>,
    key: &str,
) -> impl Iterator<Item = &'a mut Map<String, Value>> {
    map.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
}

fn with_spec(root: &mut Map<String, Value>, f: impl FnOnce(&mut Map<String, Value>)) {
    if let Some(spec) = child(root, "spec") {
        f(spec);
    }
}

fn str_of<'a>(map: &'a Map<String, Value>, key: &str) -> &'a str {
    map.get(key).and_then(Value::as_str).unwrap_or("")
}

fn default_namespace(root: &mut Map<String, Value>) {
    if let Some(meta) = child(root, "metadata") {
        let name = str_of(meta, "name").to_string();
        if !name.is_empty()
            && let Some(labels) = child(meta, "labels")
        {
            set(labels, "kubernetes.io/metadata.name", json!(name));
        }
    }
    if let Some(spec) = child(root, "spec") {
        set(spec, "finalizers", json!(["kubernetes"]));
    }
    if let Some(status) = child(root, "status") {
        set(status, "phase", json!("Active"));
    }
}

fn default_node(root: &mut Map<String, Value>) {
    if let Some(status) = root.get_mut("status").and_then(Value::as_object_mut)
        && let Some(capacity) = status.get("capacity").cloned()
    {
        set(status, "allocatable", capacity);
    }
}

/// Pods get the pod-spec defaults plus what admission adds to pods (priority) and requests
/// defaulted from limits, which templates do not get.
fn default_pod(root: &mut Map<String, Value>) {
    let Some(spec) = child(root, "spec") else {
        return;
    };
    default_pod_spec(spec);
    set(spec, "priority", json!(0));
    set(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
    for key in ["containers", "initContainers"] {
        for container in list(spec, key) {
            let Some(resources) = child(container, "resources") else {
                continue;
            };
            let Some(limits) = resources.get("limits").and_then(Value::as_object).cloned() else {
                continue;
            };
            if let Some(requests) = child(resources, "requests") {
                for (name, amount) in limits {
                    set(requests, &name, amount);
                }
            }
        }
    }
}

/// Applies pod-spec defaults to `spec.template.spec` of a workload spec.
fn default_template(spec: &mut Map<String, Value>) {
    if let Some(template) = child(spec, "template")
        && let Some(pod_spec) = child(template, "spec")
    {
        default_pod_spec(pod_spec);
    }
}

fn default_pod_spec(spec: &mut Map<String, Value>) {
    set(spec, "restartPolicy", json!("Always"));
    set(spec, "dnsPolicy", json!("ClusterFirst"));
    set(spec, "terminationGracePeriodSeconds", json!(30));
    set(spec, "securityContext", json!({}));
    set(spec, "schedulerName", json!("default-scheduler"));
    set(spec, "enableServiceLinks", json!(true));
    let host_network = spec.get("hostNetwork").and_then(Value::as_bool) == Some(true);
    for key in ["initContainers", "containers"] {
        for container in list(spec, key) {
            default_container(container, host_network);
        }
    }
    for volume in list(spec, "volumes") {
        default_volume(volume);
    }
}

/// `Always` for `:latest` or untagged images, `IfNotPresent` for other tags and digests.
fn image_pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last_segment = image.rsplit('/').next().unwrap_or(image);
    match last_segment.split_once(':') {
        Some((_, tag)) if tag != "latest" => "IfNotPresent",
        _ => "Always",
    }
}

fn default_container(container: &mut Map<String, Value>, host_network: bool) {
    let policy = image_pull_policy(str_of(container, "image"));
    set(container, "imagePullPolicy", json!(policy));
    set(
        container,
        "terminationMessagePath",
        json!("/dev/termination-log"),
    );
    set(container, "terminationMessagePolicy", json!("File"));
    set(container, "resources", json!({}));
    for port in list(container, "ports") {
        set(port, "protocol", json!("TCP"));
        if host_network && let Some(container_port) = port.get("containerPort").cloned() {
            set(port, "hostPort", container_port);
        }
    }
    for env in list(container, "env") {
        if let Some(field_ref) = env
            .get_mut("valueFrom")
            .and_then(|v| v.get_mut("fieldRef"))
            .and_then(Value::as_object_mut)
        {
            set(field_ref, "apiVersion", json!("v1"));
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(probe) = container.get_mut(probe).and_then(Value::as_object_mut) {
            set(probe, "timeoutSeconds", json!(1));
            set(probe, "periodSeconds", json!(10));
            set(probe, "successThreshold", json!(1));
            set(probe, "failureThreshold", json!(3));
            default_http_get(probe);
        }
    }
    if let Some(lifecycle) = container
        .get_mut("lifecycle")
        .and_then(Value::as_object_mut)
    {
        for hook in ["postStart", "preStop"] {
            if let Some(handler) = lifecycle.get_mut(hook).and_then(Value::as_object_mut) {
                default_http_get(handler);
            }
        }
    }
}

fn default_http_get(handler: &mut Map<String, Value>) {
    if let Some(http) = handler.get_mut("httpGet").and_then(Value::as_object_mut) {
        set(http, "path", json!("/"));
        set(http, "scheme", json!("HTTP"));
    }
}

fn default_volume(volume: &mut Map<String, Value>) {
    if !volume.iter().any(|(k, v)| k != "name" && !v.is_null()) {
        volume.insert("emptyDir".into(), json!({}));
    }
    for source in ["configMap", "secret", "downwardAPI", "projected"] {
        if let Some(source) = volume.get_mut(source).and_then(Value::as_object_mut) {
            set(source, "defaultMode", json!(DEFAULT_FILE_MODE));
        }
    }
    if let Some(host_path) = volume.get_mut("hostPath").and_then(Value::as_object_mut) {
        set(host_path, "type", json!(""));
    }
}

fn default_deployment_spec(spec: &mut Map<String, Value>) {
    set(spec, "replicas", json!(1));
    if let Some(strategy) = child(spec, "strategy") {
        set(strategy, "type", json!("RollingUpdate"));
        if str_of(strategy, "type") == "RollingUpdate"
            && let Some(rolling) = child(strategy, "rollingUpdate")
        {
            set(rolling, "maxUnavailable", json!("25%"));
            set(rolling, "maxSurge", json!("25%"));
        }
    }
    set(spec, "revisionHistoryLimit", json!(10));
    set(spec, "progressDeadlineSeconds", json!(600));
    default_template(spec);
}

fn default_statefulset_spec(spec: &mut Map<String, Value>) {
    set(spec, "replicas", json!(1));
    set(spec, "podManagementPolicy", json!("OrderedReady"));
    if let Some(strategy) = child(spec, "updateStrategy") {
        set(strategy, "type", json!("RollingUpdate"));
        if str_of(strategy, "type") == "RollingUpdate"
            && let Some(rolling) = child(strategy, "rollingUpdate")
        {
            set(rolling, "partition", json!(0));
        }
    }
    set(spec, "revisionHistoryLimit", json!(10));
    if let Some(retention) = child(spec, "persistentVolumeClaimRetentionPolicy") {
        set(retention, "whenDeleted", json!("Retain"));
        set(retention, "whenScaled", json!("Retain"));
    }
    for claim in list(spec, "volumeClaimTemplates") {
        if let Some(claim_spec) = child(claim, "spec") {
            set(claim_spec, "volumeMode", json!("Filesystem"));
        }
        if let Some(status) = child(claim, "status") {
            set(status, "phase", json!("Pending"));
        }
    }
    default_template(spec);
}

fn default_daemonset_spec(spec: &mut Map<String, Value>) {
    if let Some(strategy) = child(spec, "updateStrategy") {
        set(strategy, "type", json!("RollingUpdate"));
        if str_of(strategy, "type") == "RollingUpdate"
            && let Some(rolling) = child(strategy, "rollingUpdate")
        {
            set(rolling, "maxUnavailable", json!(1));
            set(rolling, "maxSurge", json!(0));
        }
    }
    set(spec, "revisionHistoryLimit", json!(10));
    default_template(spec);
}

fn default_job(root: &mut Map<String, Value>) {
    let meta = root.get("metadata");
    let uid = meta
        .and_then(|m| m.get("uid"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let Some(spec) = child(root, "spec") else {
        return;
    };
    if spec.get("completions").is_none_or(Value::is_null)
        && spec.get("parallelism").is_none_or(Value::is_null)
    {
        spec.insert("completions".into(), json!(1));
    }
    set(spec, "parallelism", json!(1));
    let per_index = spec
        .get("backoffLimitPerIndex")
        .is_some_and(|v| !v.is_null());
    set(
        spec,
        "backoffLimit",
        json!(if per_index { i32::MAX } else { 6 }),
    );
    set(spec, "completionMode", json!("NonIndexed"));
    set(spec, "suspend", json!(false));
    let replacement = if spec.get("podFailurePolicy").is_some_and(|v| !v.is_null()) {
        "Failed"
    } else {
        "TerminatingOrFailed"
    };
    set(spec, "podReplacementPolicy", json!(replacement));
    let manual = spec.get("manualSelector").and_then(Value::as_bool) == Some(true);
    if !manual && !uid.is_empty() {
        generate_job_selector(spec, &uid, &name);
    }
    default_template(spec);
    // A Job without labels takes its pod template's labels.
    let template_labels = spec
        .get("template")
        .and_then(|t| t.get("metadata"))
        .and_then(|m| m.get("labels"))
        .filter(|l| l.as_object().is_some_and(|l| !l.is_empty()))
        .cloned();
    if let (Some(labels), Some(meta)) = (template_labels, child(root, "metadata")) {
        let empty = meta
            .get("labels")
            .and_then(Value::as_object)
            .is_none_or(Map::is_empty);
        if empty {
            meta.insert("labels".into(), labels);
        }
    }
}

/// The selector and pod labels Kubernetes generates for a Job, keyed by its uid.
fn generate_job_selector(spec: &mut Map<String, Value>, uid: &str, name: &str) {
    set(
        spec,
        "selector",
        json!({ "matchLabels": { JOB_UID_LABEL: uid } }),
    );
    let labels = child(spec, "template")
        .and_then(|t| child(t, "metadata"))
        .and_then(|m| child(m, "labels"));
    if let Some(labels) = labels {
        set(labels, JOB_UID_LABEL, json!(uid));
        set(labels, JOB_NAME_LABEL, json!(name));
        set(labels, LEGACY_JOB_UID_LABEL, json!(uid));
        set(labels, LEGACY_JOB_NAME_LABEL, json!(name));
    }
}

fn default_cronjob_spec(spec: &mut Map<String, Value>) {
    set(spec, "concurrencyPolicy", json!("Allow"));
    set(spec, "suspend", json!(false));
    set(spec, "successfulJobsHistoryLimit", json!(3));
    set(spec, "failedJobsHistoryLimit", json!(1));
    if let Some(job_spec) = child(spec, "jobTemplate").and_then(|t| child(t, "spec")) {
        default_template(job_spec);
    }
}

fn default_service_spec(spec: &mut Map<String, Value>) {
    set(spec, "type", json!("ClusterIP"));
    set(spec, "sessionAffinity", json!("None"));
    let service_type = str_of(spec, "type").to_string();
    for port in list(spec, "ports") {
        set(port, "protocol", json!("TCP"));
        if let Some(number) = port.get("port").cloned() {
            set(port, "targetPort", number);
        }
    }
    if service_type != "ExternalName" {
        set(spec, "internalTrafficPolicy", json!("Cluster"));
        set(spec, "ipFamilyPolicy", json!("SingleStack"));
        set(spec, "ipFamilies", json!(["IPv4"]));
    }
    if matches!(service_type.as_str(), "NodePort" | "LoadBalancer") {
        set(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if service_type == "LoadBalancer" {
        set(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    if str_of(spec, "sessionAffinity") == "ClientIP" {
        set(
            spec,
            "sessionAffinityConfig",
            json!({"clientIP": {"timeoutSeconds": 10800}}),
        );
    }
}

/// Secrets default to `Opaque`; `stringData` is write-only and folded into `data`, as the
/// Kubernetes conversion does.
fn default_secret(root: &mut Map<String, Value>) {
    set(root, "type", json!("Opaque"));
    let Some(Value::Object(string_data)) = root.remove("stringData") else {
        return;
    };
    if let Some(data) = child(root, "data") {
        for (key, value) in string_data {
            let text = value.as_str().unwrap_or("");
            let encoded = base64::engine::general_purpose::STANDARD.encode(text);
            data.insert(key, json!(encoded));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find;

    fn defaulted(group: &str, plural: &str, mut obj: Value) -> Value {
        let resource = find(group, "v1", plural).unwrap();
        apply_defaults(resource, &mut obj);
        // Defaulting twice changes nothing.
        let mut again = obj.clone();
        apply_defaults(resource, &mut again);
        assert_eq!(again, obj);
        obj
    }

    fn defaulted_pod_spec(containers: Value) -> Value {
        json!({
            "containers": containers,
            "restartPolicy": "Always",
            "dnsPolicy": "ClusterFirst",
            "terminationGracePeriodSeconds": 30,
            "securityContext": {},
            "schedulerName": "default-scheduler",
            "enableServiceLinks": true,
        })
    }

    fn defaulted_container(name: &str, image: &str, pull: &str) -> Value {
        json!({
            "name": name, "image": image, "imagePullPolicy": pull,
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File", "resources": {}
        })
    }

    #[test]
    fn minimal_pod() {
        let pod = defaulted(
            "",
            "pods",
            json!({"metadata": {"name": "p"}, "spec": {"containers": [
                {"name": "a", "image": "nginx", "ports": [{"containerPort": 80}]}]}}),
        );
        let mut container = defaulted_container("a", "nginx", "Always");
        container["ports"] = json!([{"containerPort": 80, "protocol": "TCP"}]);
        let mut spec = defaulted_pod_spec(json!([container]));
        spec["priority"] = json!(0);
        spec["preemptionPolicy"] = json!("PreemptLowerPriority");
        assert_eq!(pod, json!({"metadata": {"name": "p"}, "spec": spec}));
    }

    #[test]
    fn minimal_deployment() {
        let deploy = defaulted(
            "apps",
            "deployments",
            json!({"metadata": {"name": "web"}, "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                             "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}}),
        );
        let container = defaulted_container("web", "nginx:1.27", "IfNotPresent");
        assert_eq!(
            deploy,
            json!({"metadata": {"name": "web"}, "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate",
                             "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
                "revisionHistoryLimit": 10,
                "progressDeadlineSeconds": 600,
                "template": {"metadata": {"labels": {"app": "web"}},
                             "spec": defaulted_pod_spec(json!([container]))}}})
        );
    }

    #[test]
    fn pull_policy_follows_the_tag() {
        assert_eq!(image_pull_policy("nginx"), "Always");
        assert_eq!(image_pull_policy("nginx:latest"), "Always");
        assert_eq!(image_pull_policy("localhost:5000/nginx"), "Always");
        assert_eq!(image_pull_policy("localhost:5000/nginx:1"), "IfNotPresent");
        assert_eq!(image_pull_policy("nginx@sha256:abc"), "IfNotPresent");
    }

    #[test]
    fn pod_requests_default_to_limits_and_volumes_get_modes() {
        let pod = defaulted(
            "",
            "pods",
            json!({"spec": {"containers": [{"name": "a", "image": "x:1",
                "resources": {"limits": {"cpu": "1"}, "requests": {"memory": "1Gi"}}}],
                "volumes": [{"name": "c", "configMap": {"name": "c"}}, {"name": "e"}]}}),
        );
        assert_eq!(
            pod["spec"]["containers"][0]["resources"],
            json!({"limits": {"cpu": "1"}, "requests": {"memory": "1Gi", "cpu": "1"}})
        );
        assert_eq!(
            pod["spec"]["volumes"],
            json!([{"name": "c", "configMap": {"name": "c", "defaultMode": 420}},
                   {"name": "e", "emptyDir": {}}])
        );
    }

    #[test]
    fn job_gets_generated_selector_and_labels() {
        let job = defaulted(
            "batch",
            "jobs",
            json!({"metadata": {"name": "pi", "uid": "u-1"}, "spec": {"template": {"spec": {
                "containers": [{"name": "pi", "image": "perl:5"}], "restartPolicy": "Never"}}}}),
        );
        let labels = json!({"batch.kubernetes.io/controller-uid": "u-1",
            "batch.kubernetes.io/job-name": "pi", "controller-uid": "u-1", "job-name": "pi"});
        assert_eq!(job["metadata"]["labels"], labels);
        assert_eq!(job["spec"]["template"]["metadata"]["labels"], labels);
        assert_eq!(
            job["spec"]["selector"],
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}})
        );
        for (key, value) in [
            ("completions", json!(1)),
            ("parallelism", json!(1)),
            ("backoffLimit", json!(6)),
            ("completionMode", json!("NonIndexed")),
            ("suspend", json!(false)),
        ] {
            assert_eq!(job["spec"][key], value, "{key}");
        }
        assert!(job["spec"].get("manualSelector").is_none());
        assert_eq!(job["spec"]["template"]["spec"]["restartPolicy"], "Never");
        let parallel = defaulted(
            "batch",
            "jobs",
            json!({"spec": {"parallelism": 3, "manualSelector": true}}),
        );
        assert!(parallel["spec"].get("completions").is_none());
        assert!(parallel["spec"].get("selector").is_none());
    }

    #[test]
    fn other_workloads() {
        let sts = defaulted("apps", "statefulsets", json!({"spec": {}}));
        assert_eq!(sts["spec"]["podManagementPolicy"], "OrderedReady");
        assert_eq!(
            sts["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
        );
        assert_eq!(
            sts["spec"]["persistentVolumeClaimRetentionPolicy"],
            json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
        );
        let ds = defaulted(
            "apps",
            "daemonsets",
            json!({"spec": {"updateStrategy": {"type": "OnDelete"}}}),
        );
        assert_eq!(ds["spec"]["updateStrategy"], json!({"type": "OnDelete"}));
        assert_eq!(ds["spec"]["revisionHistoryLimit"], 10);
        let ds = defaulted("apps", "daemonsets", json!({}));
        assert_eq!(
            ds["spec"]["updateStrategy"]["rollingUpdate"],
            json!({"maxUnavailable": 1, "maxSurge": 0})
        );
        let cj = defaulted(
            "batch",
            "cronjobs",
            json!({"spec": {"schedule": "@hourly", "jobTemplate": {"spec": {"template": {"spec": {
                "containers": [{"name": "c", "image": "busybox"}]}}}}}}),
        );
        assert_eq!(cj["spec"]["concurrencyPolicy"], "Allow");
        assert_eq!(cj["spec"]["successfulJobsHistoryLimit"], 3);
        assert_eq!(cj["spec"]["failedJobsHistoryLimit"], 1);
        assert_eq!(
            cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["dnsPolicy"],
            "ClusterFirst"
        );
    }

    #[test]
    fn services_secrets_namespaces() {
        let svc = defaulted(
            "",
            "services",
            json!({"spec": {"ports": [{"port": 80}], "selector": {"app": "x"}}}),
        );
        assert_eq!(
            svc["spec"],
            json!({"ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
                "selector": {"app": "x"}, "type": "ClusterIP", "sessionAffinity": "None",
                "internalTrafficPolicy": "Cluster", "ipFamilyPolicy": "SingleStack",
                "ipFamilies": ["IPv4"]})
        );
        let external = defaulted(
            "",
            "services",
            json!({"spec": {"type": "ExternalName", "externalName": "example.com"}}),
        );
        assert!(external["spec"].get("ipFamilies").is_none());
        let secret = defaulted("", "secrets", json!({"stringData": {"user": "admin"}}));
        assert_eq!(
            secret,
            json!({"type": "Opaque", "data": {"user": "YWRtaW4="}})
        );
        let ns = defaulted("", "namespaces", json!({"metadata": {"name": "dev"}}));
        assert_eq!(
            ns,
            json!({"metadata": {"name": "dev", "labels": {"kubernetes.io/metadata.name": "dev"}},
                "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
        );
    }
}
