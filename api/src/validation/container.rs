//! Checks on one container of a pod spec: name, image, ports, env, mounts, resources, probes.

use std::collections::HashSet;

use serde_json::Value;

use super::cause::{Causes, at, idx, quoted};
use super::meta::str_at;
use super::names::{inclusive_range_error, is_dns1123_label, is_env_var_name, is_port_name};
use crate::quantity::{QUANTITY_SYNTAX_ERROR, parse_nanos};

const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];
const MESSAGE_POLICIES: &[&str] = &["File", "FallbackToLogsOnError"];
const STANDARD_RESOURCES: &[&str] = &["cpu", "memory", "ephemeral-storage"];

/// Which list a container sits in; init containers may be sidecars (`restartPolicy: Always`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ContainerList {
    Init,
    Regular,
}

/// What the containers of one pod share: names already used and the volumes they may mount.
pub(crate) struct PodScope<'a> {
    pub names: HashSet<String>,
    pub volumes: HashSet<&'a str>,
    pub host_network: bool,
}

pub(crate) fn items<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

pub(crate) fn validate_port_number(port: &Value, path: &str, c: &mut Causes) {
    if let Some(n) = port.as_i64()
        && !(1..=65535).contains(&n)
    {
        c.invalid(path, n, &inclusive_range_error(1, 65535));
    }
}

pub(crate) fn validate_protocol(port: &Value, path: &str, c: &mut Causes) {
    if let Some(protocol) = port.get("protocol").and_then(Value::as_str)
        && !PROTOCOLS.contains(&protocol)
    {
        c.not_supported(&at(path, "protocol"), protocol, PROTOCOLS);
    }
}

fn validate_enum(v: &Value, key: &str, path: &str, allowed: &[&str], c: &mut Causes) {
    if let Some(value) = v.get(key).and_then(Value::as_str)
        && !allowed.contains(&value)
    {
        c.not_supported(&at(path, key), value, allowed);
    }
}

pub(crate) fn validate_container(
    container: &Value,
    path: &str,
    list: ContainerList,
    scope: &mut PodScope<'_>,
    c: &mut Causes,
) {
    let name = str_at(container, "name");
    let name_path = at(path, "name");
    if name.is_empty() {
        c.required(&name_path, "");
    } else {
        c.invalid_each(&name_path, name, is_dns1123_label(name));
        if !scope.names.insert(name.to_string()) {
            c.duplicate(&name_path, quoted(name));
        }
    }
    let image = str_at(container, "image");
    if image.is_empty() {
        c.required(&at(path, "image"), "");
    } else if image.trim() != image {
        c.invalid(
            &at(path, "image"),
            quoted(image),
            "must not have leading or trailing whitespace",
        );
    }
    validate_enum(container, "imagePullPolicy", path, PULL_POLICIES, c);
    validate_enum(
        container,
        "terminationMessagePolicy",
        path,
        MESSAGE_POLICIES,
        c,
    );
    if let Some(policy) = container.get("restartPolicy").and_then(Value::as_str) {
        match list {
            ContainerList::Init if policy != "Always" => {
                c.not_supported(&at(path, "restartPolicy"), policy, &["Always"]);
            }
            ContainerList::Init => {}
            ContainerList::Regular => c.forbidden(
                &at(path, "restartPolicy"),
                "may not be set for non-init containers",
            ),
        }
    }
    validate_ports(container, &at(path, "ports"), scope.host_network, c);
    validate_env(container, &at(path, "env"), c);
    validate_mounts(container, &at(path, "volumeMounts"), scope, c);
    if let Some(resources) = container.get("resources") {
        validate_resources(resources, &at(path, "resources"), c);
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = container.get(probe).filter(|p| !p.is_null()) {
            validate_probe(p, &at(path, probe), probe != "readinessProbe", c);
        }
    }
}

fn validate_ports(container: &Value, path: &str, host_network: bool, c: &mut Causes) {
    let mut names = HashSet::new();
    for (i, port) in items(container, "ports").iter().enumerate() {
        let p = idx(path, i);
        let name = str_at(port, "name");
        if !name.is_empty() {
            c.invalid_each(&at(&p, "name"), name, is_port_name(name));
            if !names.insert(name) {
                c.duplicate(&at(&p, "name"), quoted(name));
            }
        }
        let container_port = port.get("containerPort").unwrap_or(&Value::Null);
        if container_port.as_i64().unwrap_or(0) == 0 {
            c.required(&at(&p, "containerPort"), "");
        } else {
            validate_port_number(container_port, &at(&p, "containerPort"), c);
        }
        if let Some(host_port) = port.get("hostPort").filter(|h| h.as_i64() != Some(0)) {
            validate_port_number(host_port, &at(&p, "hostPort"), c);
            if host_network && host_port != container_port {
                c.invalid(
                    &at(&p, "hostPort"),
                    host_port,
                    "must match `containerPort` when `hostNetwork` is true",
                );
            }
        }
        validate_protocol(port, &p, c);
    }
}

fn validate_env(container: &Value, path: &str, c: &mut Causes) {
    for (i, env) in items(container, "env").iter().enumerate() {
        let p = idx(path, i);
        let name = str_at(env, "name");
        if name.is_empty() {
            c.required(&at(&p, "name"), "");
        } else {
            c.invalid_each(&at(&p, "name"), name, is_env_var_name(name));
        }
        let Some(from) = env.get("valueFrom").and_then(Value::as_object) else {
            continue;
        };
        if !str_at(env, "value").is_empty() {
            c.invalid(
                &at(&p, "valueFrom"),
                quoted(""),
                "may not be specified when `value` is not empty",
            );
        }
        let sources = [
            "fieldRef",
            "resourceFieldRef",
            "configMapKeyRef",
            "secretKeyRef",
        ];
        let set = sources
            .iter()
            .filter(|s| from.get(**s).is_some_and(|v| !v.is_null()))
            .count();
        if set == 0 {
            c.invalid(
                &at(&p, "valueFrom"),
                quoted(""),
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
            );
        } else if set > 1 {
            c.invalid(
                &at(&p, "valueFrom"),
                quoted(""),
                "may not have more than one field specified at a time",
            );
        }
    }
}

fn validate_mounts(container: &Value, path: &str, scope: &PodScope<'_>, c: &mut Causes) {
    let mut mount_paths = HashSet::new();
    for (i, mount) in items(container, "volumeMounts").iter().enumerate() {
        let p = idx(path, i);
        let name = str_at(mount, "name");
        if name.is_empty() {
            c.required(&at(&p, "name"), "");
        } else if !scope.volumes.contains(name) {
            c.not_found(&at(&p, "name"), name);
        }
        let mount_path = str_at(mount, "mountPath");
        if mount_path.is_empty() {
            c.required(&at(&p, "mountPath"), "");
        } else if !mount_paths.insert(mount_path) {
            c.invalid(&at(&p, "mountPath"), quoted(mount_path), "must be unique");
        }
    }
}

fn is_known_resource_name(name: &str) -> bool {
    STANDARD_RESOURCES.contains(&name) || name.starts_with("hugepages-") || name.contains('/')
}

/// A map of resource quantities at `path` (e.g. `...resources.limits`); returns the
/// well-formed entries as (name, text, nano-units).
pub(crate) fn validate_quantities(
    map: Option<&Value>,
    path: &str,
    c: &mut Causes,
) -> Vec<(String, String, i128)> {
    let mut out = Vec::new();
    for (name, value) in map.and_then(Value::as_object).into_iter().flatten() {
        let p = idx(path, name);
        if !is_known_resource_name(name) {
            c.invalid(
                &p,
                quoted(name),
                "must be a standard resource type or fully qualified",
            );
        }
        let text = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match parse_nanos(&text) {
            None => c.invalid(&p, quoted(&text), QUANTITY_SYNTAX_ERROR),
            Some(n) if n < 0 => c.invalid(&p, quoted(&text), "must be greater than or equal to 0"),
            Some(n) => out.push((name.clone(), text, n)),
        }
    }
    out
}

/// Resource names and quantities, and requests no larger than limits.
fn validate_resources(resources: &Value, path: &str, c: &mut Causes) {
    let limits = validate_quantities(resources.get("limits"), &at(path, "limits"), c);
    let requests = validate_quantities(resources.get("requests"), &at(path, "requests"), c);
    for (name, text, amount) in &requests {
        if let Some((_, limit_text, limit)) = limits.iter().find(|(n, _, _)| n == name)
            && amount > limit
        {
            c.invalid(
                &at(path, "requests"),
                quoted(text),
                &format!("must be less than or equal to {name} limit of {limit_text}"),
            );
        }
    }
}

fn validate_probe(probe: &Value, path: &str, single_success: bool, c: &mut Causes) {
    let handlers = ["exec", "httpGet", "tcpSocket", "grpc"];
    let set = handlers
        .iter()
        .filter(|h| probe.get(**h).is_some_and(|v| !v.is_null()))
        .count();
    if set == 0 {
        c.required(path, "must specify a handler type");
    } else if set > 1 {
        c.forbidden(path, "may not specify more than 1 handler type");
    }
    for field in [
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ] {
        if let Some(n) = probe.get(field).and_then(Value::as_i64)
            && n < 0
        {
            c.invalid(&at(path, field), n, "must be greater than or equal to 0");
        }
    }
    if single_success
        && let Some(n) = probe.get("successThreshold").and_then(Value::as_i64)
        && n > 1
    {
        c.invalid(&at(path, "successThreshold"), n, "must be 1");
    }
    if let Some(port) = probe
        .pointer("/httpGet/port")
        .or(probe.pointer("/tcpSocket/port"))
    {
        let handler = if probe.get("httpGet").is_some() {
            "httpGet"
        } else {
            "tcpSocket"
        };
        validate_int_or_port_name(port, &at(&at(path, handler), "port"), c);
    }
}

/// A port given as a number or an IANA service name (probes, service `targetPort`).
pub(crate) fn validate_int_or_port_name(port: &Value, path: &str, c: &mut Causes) {
    match port {
        Value::String(name) => c.invalid_each(path, name, is_port_name(name)),
        number => validate_port_number(number, path, c),
    }
}
