//! Values the API server allocates on create: Service cluster IPs and node ports.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use rkube_api::resources::ResourceInfo;
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::server::ApiServer;

/// The Service CIDR, as kube-apiserver's default: 10.96.0.0/12.
const SERVICE_NET: u32 = u32::from_be_bytes([10, 96, 0, 0]);
const SERVICE_NET_SIZE: u32 = 1 << 20;
const NODE_PORTS: std::ops::RangeInclusive<i64> = 30000..=32767;

pub async fn on_create(
    server: &ApiServer,
    resource: &ResourceInfo,
    obj: &mut Value,
) -> ApiResult<()> {
    if resource.kind != "Service" || !resource.group.is_empty() {
        return Ok(());
    }
    let (services, _) = server.cache.list("/registry/services/");
    let spec_type = obj
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    if spec_type != "ExternalName" {
        let wants_ip = obj
            .pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty);
        if wants_ip {
            let used: HashSet<String> = services
                .iter()
                .filter_map(|s| {
                    s.object
                        .pointer("/spec/clusterIP")
                        .and_then(Value::as_str)
                        .map(String::from)
                })
                .collect();
            let ip = free_ip(&used)?;
            obj["spec"]["clusterIP"] = json!(ip);
            obj["spec"]["clusterIPs"] = json!([ip]);
        }
    }
    if matches!(spec_type.as_str(), "NodePort" | "LoadBalancer") {
        let used: HashSet<i64> = services
            .iter()
            .flat_map(|s| {
                s.object
                    .pointer("/spec/ports")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
            })
            .filter_map(|p| p.get("nodePort").and_then(Value::as_i64))
            .collect();
        let mut free = NODE_PORTS.filter(|p| !used.contains(p));
        if let Some(ports) = obj.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
            for port in ports.iter_mut().filter(|p| p.get("nodePort").is_none()) {
                let next = free.next().ok_or_else(|| {
                    ApiError::Internal("no node ports are free in 30000-32767".into())
                })?;
                port["nodePort"] = json!(next);
            }
        }
    }
    Ok(())
}

/// A free address in the service network, starting past the network's first address
/// (10.96.0.1 is the `kubernetes` service by convention).
fn free_ip(used: &HashSet<String>) -> ApiResult<String> {
    let start = u32::from_le_bytes(
        uuid::Uuid::new_v4().as_bytes()[..4]
            .try_into()
            .unwrap_or_default(),
    );
    (0..SERVICE_NET_SIZE)
        .map(|i| (start.wrapping_add(i)) % SERVICE_NET_SIZE)
        .filter(|offset| *offset > 1 && *offset < SERVICE_NET_SIZE - 1)
        .map(|offset| Ipv4Addr::from(SERVICE_NET + offset).to_string())
        .find(|ip| !used.contains(ip))
        .ok_or_else(|| ApiError::Internal("the service network is full".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_inside_the_service_network() {
        let ip: Ipv4Addr = free_ip(&HashSet::new()).unwrap().parse().unwrap();
        let n = u32::from(ip);
        assert!(n > SERVICE_NET && n < SERVICE_NET + SERVICE_NET_SIZE);
    }
}
