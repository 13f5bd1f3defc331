//! Kubernetes-compatible validation of built-in kinds: field causes for 422 Invalid responses,
//! and strict decoding for 400s and `fieldValidation=Strict|Warn`.

mod cause;
mod cluster;
mod config;
mod container;
mod cron;
mod decode;
mod labels;
mod meta;
mod names;
mod pod;
mod quantity;
mod services;
mod workloads;

use serde_json::Value;

pub use cause::{CauseReason, FieldCause, summary};
pub use decode::{DecodeError, decode_strict};

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
        "EndpointSlice" => services::validate_endpoint_slice(obj, old, &mut c),
        // ServiceAccounts have nothing to check beyond their metadata.
        _ => {}
    }
    c.into_vec()
}
