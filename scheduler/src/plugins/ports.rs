//! Host ports: a pod cannot take a host port another pod on the node already holds.

use super::Reason;
use crate::node_info::Usage;
use crate::pod_info::PodInfo;

pub fn filter(pod: &PodInfo, usage: &Usage) -> Result<(), Reason> {
    let taken = pod
        .footprint
        .ports
        .iter()
        .any(|wanted| usage.ports.keys().any(|used| wanted.conflicts_with(used)));
    if taken {
        Err(Reason::PortsInUse)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pod_info::{Footprint, HostPort};

    #[test]
    fn a_held_port_refuses() {
        let footprint = Footprint {
            ports: vec![HostPort {
                protocol: "TCP".into(),
                ip: String::new(),
                port: 8080,
            }],
            ..Footprint::default()
        };
        let pod = PodInfo {
            footprint: footprint.clone(),
            ..PodInfo::default()
        };
        let mut usage = Usage::default();
        assert_eq!(filter(&pod, &usage), Ok(()));
        usage.add(&footprint);
        assert_eq!(filter(&pod, &usage), Err(Reason::PortsInUse));
        assert_eq!(filter(&PodInfo::default(), &usage), Ok(()));
    }
}
