//! Services, Endpoints and EndpointSlices.

use std::collections::HashSet;
use std::net::IpAddr;

use serde_json::Value;

use super::cause::{Causes, at, idx, quoted, shown};
use super::container::{items, validate_int_or_port_name, validate_port_number, validate_protocol};
use super::labels::validate_labels;
use super::meta::str_at;
use super::names::{is_dns1123_label, is_dns1123_subdomain};

const SERVICE_TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
const TRAFFIC_POLICIES: &[&str] = &["Cluster", "Local"];
const IP_FAMILY_POLICIES: &[&str] = &["SingleStack", "PreferDualStack", "RequireDualStack"];
const IP_FAMILIES: &[&str] = &["IPv4", "IPv6"];
const ADDRESS_TYPES: &[&str] = &["FQDN", "IPv4", "IPv6"];
const IP_ERROR: &str = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";
const MAX_SLICE_ENDPOINTS: usize = 1000;
const MAX_ENDPOINT_ADDRESSES: usize = 100;

fn field<'a>(v: &'a Value, key: &str) -> &'a Value {
    static NULL: Value = Value::Null;
    v.get(key).unwrap_or(&NULL)
}

fn validate_enum(v: &Value, key: &str, path: &str, allowed: &[&str], c: &mut Causes) {
    if let Some(value) = v.get(key).and_then(Value::as_str)
        && !allowed.contains(&value)
    {
        c.not_supported(&at(path, key), value, allowed);
    }
}

fn validate_ip(ip: &str, path: &str, c: &mut Causes) {
    if ip.parse::<IpAddr>().is_err() {
        c.invalid(path, quoted(ip), IP_ERROR);
    }
}

pub(crate) fn validate_service(obj: &Value, old: Option<&Value>, c: &mut Causes) {
    let spec = field(obj, "spec");
    let service_type = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    if !SERVICE_TYPES.contains(&service_type) {
        c.not_supported("spec.type", service_type, SERVICE_TYPES);
    }
    let cluster_ip = str_at(spec, "clusterIP");
    if service_type == "ExternalName" {
        let external = str_at(spec, "externalName");
        if external.is_empty() {
            c.required("spec.externalName", "");
        } else {
            let name = external.strip_suffix('.').unwrap_or(external);
            c.invalid_each("spec.externalName", external, is_dns1123_subdomain(name));
        }
    } else if items(spec, "ports").is_empty() && cluster_ip != "None" {
        c.required("spec.ports", "");
    }
    validate_service_ports(spec, service_type, c);
    validate_labels(spec.get("selector"), "spec.selector", c);
    validate_enum(spec, "sessionAffinity", "spec", &["ClientIP", "None"], c);
    validate_enum(spec, "externalTrafficPolicy", "spec", TRAFFIC_POLICIES, c);
    validate_enum(spec, "internalTrafficPolicy", "spec", TRAFFIC_POLICIES, c);
    validate_enum(spec, "ipFamilyPolicy", "spec", IP_FAMILY_POLICIES, c);
    let mut families = HashSet::new();
    for (i, family) in items(spec, "ipFamilies").iter().enumerate() {
        let p = idx("spec.ipFamilies", i);
        let family = family.as_str().unwrap_or("");
        if !IP_FAMILIES.contains(&family) {
            c.not_supported(&p, family, IP_FAMILIES);
        } else if !families.insert(family) {
            c.duplicate(&p, quoted(family));
        }
    }
    let cluster_ips = items(spec, "clusterIPs");
    if cluster_ips.is_empty() {
        if !cluster_ip.is_empty() && cluster_ip != "None" {
            validate_ip(cluster_ip, "spec.clusterIP", c);
        }
    } else {
        for (i, ip) in cluster_ips.iter().enumerate() {
            let ip = ip.as_str().unwrap_or("");
            if !(i == 0 && ip == "None") {
                validate_ip(ip, &idx("spec.clusterIPs", i), c);
            }
        }
    }
    if let Some(old) = old {
        validate_service_update(spec, field(old, "spec"), service_type, c);
    }
}

fn validate_service_ports(spec: &Value, service_type: &str, c: &mut Causes) {
    let ports = items(spec, "ports");
    let mut names = HashSet::new();
    let mut port_protocols = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = idx("spec.ports", i);
        let name = str_at(port, "name");
        if name.is_empty() {
            if ports.len() > 1 {
                c.required(&at(&p, "name"), "");
            }
        } else {
            c.invalid_each(&at(&p, "name"), name, is_dns1123_label(name));
            if !names.insert(name) {
                c.duplicate(&at(&p, "name"), quoted(name));
            }
        }
        let number = field(port, "port");
        if number.is_null() {
            c.required(&at(&p, "port"), "");
        } else {
            validate_port_number(number, &at(&p, "port"), c);
        }
        validate_protocol(port, &p, c);
        if let Some(target) = port.get("targetPort").filter(|t| !t.is_null()) {
            validate_int_or_port_name(target, &at(&p, "targetPort"), c);
        }
        if let Some(node_port) = port
            .get("nodePort")
            .filter(|n| n.as_i64().unwrap_or(0) != 0)
        {
            if matches!(service_type, "ClusterIP" | "ExternalName") {
                c.forbidden(
                    &at(&p, "nodePort"),
                    &format!("may not be used when `type` is '{service_type}'"),
                );
            } else {
                validate_port_number(node_port, &at(&p, "nodePort"), c);
            }
        }
        let protocol = port
            .get("protocol")
            .and_then(Value::as_str)
            .unwrap_or("TCP");
        if !port_protocols.insert((number.to_string(), protocol)) {
            c.duplicate(&p, shown(port));
        }
    }
}

/// A cluster IP, once allocated, stays unless the Service becomes or stops being ExternalName.
/// An update that omits it keeps the stored one, so only a different value is an error.
fn validate_service_update(spec: &Value, old_spec: &Value, service_type: &str, c: &mut Causes) {
    let old_type = old_spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    if service_type == "ExternalName" || old_type == "ExternalName" {
        return;
    }
    let old_ip = str_at(old_spec, "clusterIP");
    let new_ip = str_at(spec, "clusterIP");
    if !old_ip.is_empty() && !new_ip.is_empty() && new_ip != old_ip {
        c.invalid(
            "spec.clusterIPs[0]",
            format!("[]string{{{}}}", quoted(new_ip)),
            "may not change once set",
        );
    }
}

pub(crate) fn validate_endpoints(obj: &Value, c: &mut Causes) {
    for (i, subset) in items(obj, "subsets").iter().enumerate() {
        let p = idx("subsets", i);
        for list in ["addresses", "notReadyAddresses"] {
            for (j, address) in items(subset, list).iter().enumerate() {
                let ip_path = at(&idx(&at(&p, list), j), "ip");
                validate_ip(str_at(address, "ip"), &ip_path, c);
            }
        }
        let ports = items(subset, "ports");
        for (j, port) in ports.iter().enumerate() {
            let pp = idx(&at(&p, "ports"), j);
            let name = str_at(port, "name");
            if name.is_empty() && ports.len() > 1 {
                c.required(&at(&pp, "name"), "");
            } else if !name.is_empty() {
                c.invalid_each(&at(&pp, "name"), name, is_dns1123_label(name));
            }
            validate_port_number(field(port, "port"), &at(&pp, "port"), c);
            validate_protocol(port, &pp, c);
        }
    }
}

pub(crate) fn validate_endpoint_slice(obj: &Value, old: Option<&Value>, c: &mut Causes) {
    let address_type = str_at(obj, "addressType");
    if address_type.is_empty() {
        c.required("addressType", "");
    } else if !ADDRESS_TYPES.contains(&address_type) {
        c.not_supported("addressType", address_type, ADDRESS_TYPES);
    }
    let endpoints = items(obj, "endpoints");
    if endpoints.len() > MAX_SLICE_ENDPOINTS {
        c.too_many("endpoints", endpoints.len(), MAX_SLICE_ENDPOINTS);
    }
    for (i, endpoint) in endpoints.iter().enumerate() {
        let p = at(&idx("endpoints", i), "addresses");
        let addresses = items(endpoint, "addresses");
        if addresses.is_empty() {
            c.required(&p, "must contain at least 1 address");
        } else if addresses.len() > MAX_ENDPOINT_ADDRESSES {
            c.too_many(&p, addresses.len(), MAX_ENDPOINT_ADDRESSES);
        }
        for (j, address) in addresses.iter().enumerate() {
            let address = address.as_str().unwrap_or("");
            validate_slice_address(address, address_type, &idx(&p, j), c);
        }
    }
    let mut names = HashSet::new();
    for (i, port) in items(obj, "ports").iter().enumerate() {
        let p = idx("ports", i);
        let name = str_at(port, "name");
        if !name.is_empty() {
            c.invalid_each(&at(&p, "name"), name, is_dns1123_label(name));
        }
        if !names.insert(name) {
            c.duplicate(&at(&p, "name"), quoted(name));
        }
        if let Some(number) = port.get("port").filter(|n| !n.is_null()) {
            validate_port_number(number, &at(&p, "port"), c);
        }
        validate_protocol(port, &p, c);
    }
    if let Some(old) = old
        && str_at(old, "addressType") != address_type
    {
        c.invalid("addressType", quoted(address_type), "field is immutable");
    }
}

fn validate_slice_address(address: &str, address_type: &str, path: &str, c: &mut Causes) {
    let parsed = address.parse::<IpAddr>();
    match address_type {
        "IPv4" if !matches!(parsed, Ok(IpAddr::V4(_))) => {
            c.invalid(path, quoted(address), "must be a valid IPv4 address");
        }
        "IPv6" if !matches!(parsed, Ok(IpAddr::V6(_))) => {
            c.invalid(path, quoted(address), "must be a valid IPv6 address");
        }
        "FQDN" => c.invalid_each(path, address, is_dns1123_subdomain(address)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::validation::test_support::{fields, owned};

    #[test]
    fn services() {
        let ok = json!({"spec": {"type": "NodePort", "selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "nodePort": 30080},
                      {"name": "https", "port": 443, "targetPort": 8443}],
            "clusterIP": "10.0.0.5", "clusterIPs": ["10.0.0.5"], "ipFamilies": ["IPv4"]}});
        assert_eq!(fields(|c| validate_service(&ok, None, c)), []);
        let bad = json!({"spec": {"type": "Magic",
            "ports": [{"port": 0, "protocol": "HTTP"}, {"name": "a", "port": 80, "targetPort": "BAD"}],
            "sessionAffinity": "Sticky", "clusterIP": "nope"}});
        assert_eq!(
            fields(|c| validate_service(&bad, None, c)),
            owned(&[
                ("spec.type", "FieldValueNotSupported"),
                ("spec.ports[0].name", "FieldValueRequired"),
                ("spec.ports[0].port", "FieldValueInvalid"),
                ("spec.ports[0].protocol", "FieldValueNotSupported"),
                ("spec.ports[1].targetPort", "FieldValueInvalid"),
                ("spec.ports[1].targetPort", "FieldValueInvalid"),
                ("spec.sessionAffinity", "FieldValueNotSupported"),
                ("spec.clusterIP", "FieldValueInvalid"),
            ])
        );
        let cases = [
            (json!({"spec": {}}), "spec.ports", "FieldValueRequired"),
            (
                json!({"spec": {"type": "ExternalName"}}),
                "spec.externalName",
                "FieldValueRequired",
            ),
            (
                json!({"spec": {"ports": [{"port": 80, "nodePort": 30000}]}}),
                "spec.ports[0].nodePort",
                "FieldValueForbidden",
            ),
        ];
        for (svc, field, reason) in cases {
            assert_eq!(
                fields(|c| validate_service(&svc, None, c)),
                owned(&[(field, reason)])
            );
        }
        assert_eq!(
            fields(|c| validate_service(&json!({"spec": {"clusterIP": "None"}}), None, c)),
            []
        );
    }

    #[test]
    fn service_cluster_ip_is_immutable() {
        let old = json!({"spec": {"clusterIP": "10.0.0.1", "ports": [{"port": 80}]}});
        let changed = json!({"spec": {"clusterIP": "10.0.0.2", "ports": [{"port": 80}]}});
        let omitted = json!({"spec": {"ports": [{"port": 80}]}});
        assert_eq!(
            fields(|c| validate_service(&changed, Some(&old), c)),
            owned(&[("spec.clusterIPs[0]", "FieldValueInvalid")])
        );
        assert_eq!(fields(|c| validate_service(&omitted, Some(&old), c)), []);
    }

    #[test]
    fn endpoint_slices_and_endpoints() {
        let ok = json!({"addressType": "IPv4", "endpoints": [{"addresses": ["10.1.0.4"]}],
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]});
        assert_eq!(fields(|c| validate_endpoint_slice(&ok, None, c)), []);
        let bad = json!({"addressType": "IPv4", "endpoints": [{"addresses": []}, {"addresses": ["::1"]}]});
        assert_eq!(
            fields(|c| validate_endpoint_slice(&bad, None, c)),
            owned(&[
                ("endpoints[0].addresses", "FieldValueRequired"),
                ("endpoints[1].addresses[0]", "FieldValueInvalid"),
            ])
        );
        assert_eq!(
            fields(|c| validate_endpoint_slice(&json!({"addressType": "IP"}), Some(&ok), c)),
            owned(&[
                ("addressType", "FieldValueNotSupported"),
                ("addressType", "FieldValueInvalid")
            ])
        );
        let eps = json!({"subsets": [{"addresses": [{"ip": "10.0.0.300"}],
            "ports": [{"port": 80}, {"port": 70000, "name": "b"}]}]});
        assert_eq!(
            fields(|c| validate_endpoints(&eps, c)),
            owned(&[
                ("subsets[0].addresses[0].ip", "FieldValueInvalid"),
                ("subsets[0].ports[0].name", "FieldValueRequired"),
                ("subsets[0].ports[1].port", "FieldValueInvalid"),
            ])
        );
    }
}
