//! Rows for services, endpoints and endpoint slices.

use std::collections::BTreeSet;

use serde_json::Value;

use super::time::age;
use super::{AGE, Column, NAME, int, list, name, non_empty_or, text};
use crate::selector::format_labels;

/// At most this many addresses or ports are listed before "+ N more...".
const LIST_LIMIT: usize = 3;

pub(super) const SERVICE_COLUMNS: &[Column] = &[
    NAME,
    Column::new("Type", "string", "Determines how the Service is exposed."),
    Column::new(
        "Cluster-IP",
        "string",
        "The IP address of the service, allocated by the master.",
    ),
    Column::new(
        "External-IP",
        "string",
        "IP addresses for which nodes in the cluster will also accept traffic for this service.",
    ),
    Column::new(
        "Port(s)",
        "string",
        "The list of ports that are exposed by this service.",
    ),
    AGE,
    Column::new(
        "Selector",
        "string",
        "Route service traffic to pods with label keys and values matching this selector.",
    )
    .wide(),
];

fn joined(items: &[Value]) -> String {
    items
        .iter()
        .filter_map(Value::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

/// Load-balancer ingress points (IP, else hostname), deduplicated and sorted.
fn load_balancer_ingress(service: &Value) -> Vec<String> {
    let points: BTreeSet<&str> = list(service, "/status/loadBalancer/ingress")
        .iter()
        .map(|i| non_empty_or(text(i, "/ip"), text(i, "/hostname")))
        .filter(|point| !point.is_empty())
        .collect();
    points.into_iter().map(str::to_string).collect()
}

fn external_ip(service: &Value) -> String {
    let external_ips = joined(list(service, "/spec/externalIPs"));
    match text(service, "/spec/type") {
        "ClusterIP" | "NodePort" => non_empty_or(&external_ips, "<none>").to_string(),
        "LoadBalancer" => {
            let mut points = load_balancer_ingress(service);
            if !external_ips.is_empty() {
                points.push(external_ips);
            }
            if points.is_empty() {
                "<pending>".to_string()
            } else {
                points.join(",")
            }
        }
        "ExternalName" => text(service, "/spec/externalName").to_string(),
        _ => "<unknown>".to_string(),
    }
}

fn service_ports(service: &Value) -> String {
    let ports: Vec<String> = list(service, "/spec/ports")
        .iter()
        .map(|p| {
            // API defaulting always sets the protocol; stay readable if it did not run.
            let protocol = non_empty_or(text(p, "/protocol"), "TCP");
            match int(p, "/nodePort") {
                node_port if node_port > 0 => {
                    format!("{}:{node_port}/{protocol}", int(p, "/port"))
                }
                _ => format!("{}/{protocol}", int(p, "/port")),
            }
        })
        .collect();
    if ports.is_empty() {
        return "<none>".to_string();
    }
    ports.join(",")
}

pub(super) fn service_cells(service: &Value, now: i64) -> Vec<Value> {
    // clusterIPs is authoritative; clusterIP mirrors its first entry.
    let cluster_ip = service
        .pointer("/spec/clusterIPs/0")
        .and_then(Value::as_str)
        .unwrap_or_else(|| text(service, "/spec/clusterIP"));
    let selector = service.pointer("/spec/selector").and_then(Value::as_object);
    vec![
        name(service).into(),
        text(service, "/spec/type").into(),
        non_empty_or(cluster_ip, "<none>").into(),
        external_ip(service).into(),
        service_ports(service).into(),
        age(service, now).into(),
        format_labels(selector).into(),
    ]
}

pub(super) const ENDPOINTS_COLUMNS: &[Column] = &[
    NAME,
    Column::new(
        "Endpoints",
        "string",
        "The set of all endpoints is the union of all subsets.",
    ),
    AGE,
];

/// `host:port` with brackets around IPv6 hosts, as Go's `net.JoinHostPort`.
fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The first few entries joined, then `+ N more...` counting everything not shown.
fn with_more(shown: Vec<String>, total: usize) -> String {
    let list = shown.join(",");
    if total > LIST_LIMIT {
        format!("{list} + {} more...", total - LIST_LIMIT)
    } else {
        list
    }
}

fn format_endpoints(endpoints: &Value) -> String {
    let subsets = list(endpoints, "/subsets");
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    let mut shown = Vec::new();
    let mut total = 0;
    for subset in subsets {
        let addresses = list(subset, "/addresses");
        let ports = list(subset, "/ports");
        let mut add = |entry: String| {
            if shown.len() < LIST_LIMIT {
                shown.push(entry);
            }
        };
        if ports.is_empty() {
            // Headless services may have no ports.
            total += addresses.len();
            for address in addresses {
                add(text(address, "/ip").to_string());
            }
            continue;
        }
        for port in ports {
            total += addresses.len();
            for address in addresses {
                add(join_host_port(text(address, "/ip"), int(port, "/port")));
            }
        }
    }
    with_more(shown, total)
}

pub(super) fn endpoints_cells(endpoints: &Value, now: i64) -> Vec<Value> {
    vec![
        name(endpoints).into(),
        format_endpoints(endpoints).into(),
        age(endpoints, now).into(),
    ]
}

pub(super) const ENDPOINTSLICE_COLUMNS: &[Column] = &[
    NAME,
    Column::new(
        "AddressType",
        "string",
        "The type of address carried by this EndpointSlice.",
    ),
    Column::new(
        "Ports",
        "string",
        "The network ports exposed by each endpoint in this slice.",
    ),
    Column::new(
        "Endpoints",
        "string",
        "A list of unique endpoints in this slice.",
    ),
    AGE,
];

fn unset_if_empty(formatted: String) -> String {
    if formatted.is_empty() {
        "<unset>".to_string()
    } else {
        formatted
    }
}

fn slice_ports(slice: &Value) -> String {
    let ports = list(slice, "/ports");
    let shown = ports
        .iter()
        .take(LIST_LIMIT)
        .map(|p| match p.get("port").and_then(Value::as_i64) {
            Some(port) => port.to_string(),
            None => match p.get("name").and_then(Value::as_str) {
                Some(port_name) => port_name.to_string(),
                None => "*".to_string(),
            },
        })
        .collect();
    unset_if_empty(with_more(shown, ports.len()))
}

fn slice_endpoints(slice: &Value) -> String {
    let addresses: Vec<&str> = list(slice, "/endpoints")
        .iter()
        .flat_map(|e| list(e, "/addresses"))
        .filter_map(Value::as_str)
        .collect();
    let shown = addresses
        .iter()
        .take(LIST_LIMIT)
        .map(|a| a.to_string())
        .collect();
    unset_if_empty(with_more(shown, addresses.len()))
}

pub(super) fn endpointslice_cells(slice: &Value, now: i64) -> Vec<Value> {
    vec![
        name(slice).into(),
        text(slice, "/addressType").into(),
        slice_ports(slice).into(),
        slice_endpoints(slice).into(),
        age(slice, now).into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_700_000_000; // 2023-11-14T22:13:20Z

    #[test]
    fn cluster_ip_service() {
        let svc = json!({
            "metadata": {"name": "web", "creationTimestamp": "2023-11-14T22:03:20Z"},
            "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                "ports": [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}],
                "selector": {"app": "web"}}
        });
        assert_eq!(
            service_cells(&svc, NOW),
            vec![
                json!("web"),
                json!("ClusterIP"),
                json!("10.96.0.10"),
                json!("<none>"),
                json!("80/TCP,53/UDP"),
                json!("10m"),
                json!("app=web")
            ]
        );
    }

    #[test]
    fn node_port_headless_and_external_name() {
        let node_port = json!({"spec": {"type": "NodePort", "clusterIPs": ["10.96.1.1"],
            "externalIPs": ["1.2.3.4"], "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}]}});
        assert_eq!(
            service_cells(&node_port, NOW)[1..5],
            [
                json!("NodePort"),
                json!("10.96.1.1"),
                json!("1.2.3.4"),
                json!("80:30080/TCP")
            ]
        );
        let headless = json!({"spec": {"type": "ClusterIP", "clusterIPs": ["None"]}});
        assert_eq!(
            service_cells(&headless, NOW)[2..5],
            [json!("None"), json!("<none>"), json!("<none>")]
        );
        assert_eq!(service_cells(&headless, NOW)[6], json!("<none>"));
        let external = json!({"spec": {"type": "ExternalName", "externalName": "db.example.com"}});
        assert_eq!(
            service_cells(&external, NOW)[2..4],
            [json!("<none>"), json!("db.example.com")]
        );
    }

    #[test]
    fn load_balancer_service() {
        let pending =
            json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 443, "nodePort": 31443}]}});
        assert_eq!(
            service_cells(&pending, NOW)[3..5],
            [json!("<pending>"), json!("443:31443/TCP")]
        );
        let assigned = json!({"spec": {"type": "LoadBalancer", "externalIPs": ["9.9.9.9"]},
            "status": {"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}, {"hostname": "lb.example"},
                {"ip": "5.6.7.8"}]}}});
        assert_eq!(
            service_cells(&assigned, NOW)[3],
            json!("5.6.7.8,lb.example,9.9.9.9")
        );
    }

    #[test]
    fn endpoints_rows() {
        let ep = json!({"metadata": {"name": "web"}, "subsets": [
            {"addresses": [{"ip": "10.1.0.1"}, {"ip": "10.1.0.2"}],
             "ports": [{"port": 80}, {"port": 443}]}
        ]});
        assert_eq!(
            endpoints_cells(&ep, NOW)[1],
            json!("10.1.0.1:80,10.1.0.2:80,10.1.0.1:443 + 1 more...")
        );
        let headless = json!({"subsets": [{"addresses": [{"ip": "fd00::1"}]}]});
        assert_eq!(endpoints_cells(&headless, NOW)[1], json!("fd00::1"));
        let v6 = json!({"subsets": [{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 80}]}]});
        assert_eq!(endpoints_cells(&v6, NOW)[1], json!("[fd00::1]:80"));
        assert_eq!(endpoints_cells(&json!({}), NOW)[1], json!("<none>"));
    }

    #[test]
    fn endpoint_slice_rows() {
        let slice = json!({"metadata": {"name": "web-abc", "creationTimestamp": "2023-11-14T22:13:00Z"},
            "addressType": "IPv4",
            "ports": [{"port": 80, "name": "http"}, {"name": "metrics"}, {}, {"port": 9}],
            "endpoints": [{"addresses": ["10.1.0.1"]}, {"addresses": ["10.1.0.2", "10.1.0.3"]}]});
        assert_eq!(
            endpointslice_cells(&slice, NOW),
            vec![
                json!("web-abc"),
                json!("IPv4"),
                json!("80,metrics,* + 1 more..."),
                json!("10.1.0.1,10.1.0.2,10.1.0.3"),
                json!("20s")
            ]
        );
        let empty = json!({"addressType": "IPv6"});
        assert_eq!(
            endpointslice_cells(&empty, NOW)[2..4],
            [json!("<unset>"), json!("<unset>")]
        );
    }
}
