//! Kubernetes-compatible validation of built-in kinds: field causes for 422 Invalid responses,
//! and strict decoding for 400s and `fieldValidation=Strict|Warn`.

mod cause;
mod certificates;
mod cluster;
mod config;
mod container;
mod cron;
mod decode;
mod labels;
mod meta;
mod names;
mod pod;
mod rbac;
mod services;
mod token;
mod workloads;

/// What the per-kind validation tests share: the (field, reason) pairs a check reports.
#[cfg(test)]
mod test_support {
    use super::cause::Causes;

    pub(super) fn fields(run: impl FnOnce(&mut Causes)) -> Vec<(String, &'static str)> {
        let mut causes = Causes::default();
        run(&mut causes);
        causes
            .into_vec()
            .into_iter()
            .map(|e| (e.field, e.reason.as_str()))
            .collect()
    }

    pub(super) fn owned(v: &[(&str, &'static str)]) -> Vec<(String, &'static str)> {
        v.iter().map(|(f, r)| (f.to_string(), *r)).collect()
    }
}

use serde_json::Value;

pub use cause::{CauseReason, FieldCause, summary};
pub use decode::{DecodeError, decode_strict};
pub use token::validate_token_request;

use crate::resources::ResourceInfo;
use cause::Causes;

/// Validates `obj` as a new object, or as an update of `old`. Expects a defaulted object, as
/// Kubernetes validates after defaulting.
pub fn validate(resource: &ResourceInfo, obj: &Value, old: Option<&Value>) -> Vec<FieldCause> {
    let mut c = Causes::default();
    meta::validate_object_meta(resource, obj, &mut c);
    if let Some(old) = old {
        meta::validate_meta_update(obj, old, &mut c);
    }
    match resource.kind {
        "Namespace" => cluster::validate_namespace(obj, &mut c),
        "Pod" => pod::validate_pod(obj, old, &mut c),
        "Node" => cluster::validate_node(obj, old, &mut c),
        "Service" => services::validate_service(obj, old, &mut c),
        "Endpoints" => services::validate_endpoints(obj, &mut c),
        "ConfigMap" => config::validate_config_map(obj, old, &mut c),
        "Secret" => config::validate_secret(obj, old, &mut c),
        "Event" => cluster::validate_event(obj, &mut c),
        "Deployment" => workloads::validate_deployment(obj, old, &mut c),
        "ReplicaSet" => workloads::validate_replicaset(obj, old, &mut c),
        "DaemonSet" => workloads::validate_daemonset(obj, old, &mut c),
        "StatefulSet" => workloads::validate_statefulset(obj, old, &mut c),
        "Job" => workloads::validate_job(obj, old, &mut c),
        "CronJob" => workloads::validate_cronjob(obj, &mut c),
        "RuntimeClass" => cluster::validate_runtime_class(obj, old, &mut c),
        "Lease" => cluster::validate_lease(obj, &mut c),
        "CertificateSigningRequest" => certificates::validate_csr(obj, old, &mut c),
        "EndpointSlice" => services::validate_endpoint_slice(obj, old, &mut c),
        "Role" => rbac::validate_role(obj, true, &mut c),
        "ClusterRole" => rbac::validate_role(obj, false, &mut c),
        "RoleBinding" => rbac::validate_binding(obj, old, true, &mut c),
        "ClusterRoleBinding" => rbac::validate_binding(obj, old, false, &mut c),
        // ServiceAccounts have nothing to check beyond their metadata.
        _ => {}
    }
    c.into_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defaults::apply_defaults;
    use crate::resources::{RESOURCES, find};
    use serde_json::json;

    fn defaulted_causes(group: &str, plural: &str, mut obj: Value) -> Vec<FieldCause> {
        let resource = find(group, "v1", plural).unwrap();
        apply_defaults(resource, &mut obj);
        assert_eq!(decode_strict(resource, &obj).unwrap(), Vec::<String>::new());
        validate(resource, &obj, None)
    }

    fn containers() -> Value {
        json!([{"name": "app", "image": "nginx"}])
    }

    #[test]
    fn defaulted_minimal_objects_are_valid() {
        let meta = json!({"name": "x", "namespace": "d", "uid": "u-1"});
        let template = json!({"metadata": {"labels": {"app": "x"}},
                              "spec": {"containers": containers()}});
        let selector = json!({"matchLabels": {"app": "x"}});
        let cases = [
            (
                "",
                "pods",
                json!({"metadata": meta, "spec": {"containers": containers()}}),
            ),
            (
                "apps",
                "deployments",
                json!({"metadata": meta, "spec": {"selector": selector, "template": template}}),
            ),
            (
                "apps",
                "replicasets",
                json!({"metadata": meta, "spec": {"selector": selector, "template": template}}),
            ),
            (
                "apps",
                "statefulsets",
                json!({"metadata": meta, "spec": {"selector": selector, "template": template}}),
            ),
            (
                "apps",
                "daemonsets",
                json!({"metadata": meta, "spec": {"selector": selector, "template": template}}),
            ),
            (
                "batch",
                "jobs",
                json!({"metadata": meta, "spec": {"template": {"spec":
                {"containers": containers(), "restartPolicy": "OnFailure"}}}}),
            ),
            (
                "batch",
                "cronjobs",
                json!({"metadata": meta, "spec": {"schedule": "*/5 * * * *",
                "jobTemplate": {"spec": {"template": {"spec":
                    {"containers": containers(), "restartPolicy": "Never"}}}}}}),
            ),
            (
                "",
                "services",
                json!({"metadata": meta, "spec": {"ports": [{"port": 80}]}}),
            ),
            (
                "",
                "configmaps",
                json!({"metadata": meta, "data": {"k": "v"}}),
            ),
            (
                "",
                "secrets",
                json!({"metadata": meta, "stringData": {"k": "v"}}),
            ),
            ("", "namespaces", json!({"metadata": {"name": "dev"}})),
            ("", "nodes", json!({"metadata": {"name": "node-1"}})),
            (
                "node.k8s.io",
                "runtimeclasses",
                json!({"metadata": {"name": "runc"}, "handler": "runc"}),
            ),
            (
                "coordination.k8s.io",
                "leases",
                json!({"metadata": meta, "spec": {"leaseDurationSeconds": 15}}),
            ),
            (
                "discovery.k8s.io",
                "endpointslices",
                json!({"metadata": meta, "addressType": "IPv4",
                "endpoints": [{"addresses": ["10.0.0.1"]}], "ports": [{"port": 80}]}),
            ),
        ];
        for (group, plural, obj) in cases {
            assert_eq!(defaulted_causes(group, plural, obj), [], "{plural}");
        }
    }

    #[test]
    fn invalid_name_reads_like_kubernetes() {
        let pods = find("", "v1", "pods").unwrap();
        let pod = json!({"metadata": {"name": "Foo_bar", "namespace": "d"},
            "spec": {"containers": [{"name": "a"}]}});
        let causes = validate(pods, &pod, None);
        assert_eq!(
            summary(pods, "Foo_bar", &causes),
            r#"Pod "Foo_bar" is invalid: [metadata.name: Invalid value: "Foo_bar": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*'), spec.containers[0].image: Required value]"#
        );
        assert_eq!(causes[0].reason.as_str(), "FieldValueInvalid");
    }

    #[test]
    fn updates_check_metadata_and_kind_rules() {
        let pods = find("", "v1", "pods").unwrap();
        let old = json!({"metadata": {"name": "p", "namespace": "d", "uid": "1"},
            "spec": {"containers": containers()}});
        let mut renamed = old.clone();
        renamed["metadata"]["name"] = json!("q");
        renamed["spec"]["containers"][0]["name"] = json!("other");
        let fields: Vec<String> = validate(pods, &renamed, Some(&old))
            .into_iter()
            .map(|c| c.field)
            .collect();
        assert_eq!(fields, ["metadata.name", "spec"]);
    }

    #[test]
    fn every_served_kind_decodes() {
        for resource in RESOURCES {
            assert!(
                decode_strict(resource, &json!({})).is_ok(),
                "{}",
                resource.kind
            );
        }
    }
}
