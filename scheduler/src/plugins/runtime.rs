//! RuntimeClass: the node must offer the handler of the pod's RuntimeClass (a node reporting
//! no handlers offers `runc` only, see `NodeSpec::of`).

use super::Reason;
use crate::node_info::NodeSpec;

pub fn filter(handler: &str, node: &NodeSpec) -> Result<(), Reason> {
    if node.runtime_handlers.iter().any(|h| h == handler) {
        Ok(())
    } else {
        Err(Reason::MissingRuntimeHandler(handler.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handler_must_be_listed() {
        let node = NodeSpec {
            runtime_handlers: vec!["runc".into()],
            ..NodeSpec::default()
        };
        assert_eq!(filter("runc", &node), Ok(()));
        assert_eq!(
            filter("wasmtime", &node),
            Err(Reason::MissingRuntimeHandler("wasmtime".into()))
        );
    }
}
