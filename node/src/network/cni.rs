//! Running CNI plugins as the spec says: the network config on stdin, the operation in
//! `CNI_*` variables, the result (or an error object) on stdout.

use std::net::IpAddr;
use std::path::Path;
use std::process::Stdio;

use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::NetworkError;

/// Runs every plugin of a conflist, in order for `ADD` (each seeing the previous result) and
/// in reverse for `DEL`; returns the last result.
pub(super) async fn run_list(
    plugin_dir: &Path,
    command: &str,
    container: &str,
    netns: &Path,
    interface: &str,
    conflist: &Value,
) -> Result<Value, NetworkError> {
    let mut plugins: Vec<&Value> = conflist["plugins"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    if command == "DEL" {
        plugins.reverse();
    }
    let mut previous: Option<Value> = None;
    for plugin in plugins {
        let mut config = plugin.clone();
        config["cniVersion"] = conflist["cniVersion"].clone();
        config["name"] = conflist["name"].clone();
        if let Some(result) = previous.take() {
            config["prevResult"] = result;
        }
        previous = Some(invoke(plugin_dir, command, container, netns, interface, &config).await?);
    }
    Ok(previous.unwrap_or(Value::Null))
}

pub(super) async fn invoke(
    plugin_dir: &Path,
    command: &str,
    container: &str,
    netns: &Path,
    interface: &str,
    config: &Value,
) -> Result<Value, NetworkError> {
    let plugin = config["type"].as_str().unwrap_or_default();
    let program = plugin_dir.join(plugin);
    let name = program.display().to_string();
    let spawn_error = |source| NetworkError::Spawn {
        program: name.clone(),
        source,
    };
    let mut child = Command::new(&program)
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", container)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", interface)
        .env("CNI_PATH", plugin_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_error)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(config.to_string().as_bytes())
            .await
            .map_err(spawn_error)?;
    }
    let output = child.wait_with_output().await.map_err(spawn_error)?;
    let stdout: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    if !output.status.success() {
        let message = stdout["msg"]
            .as_str()
            .map(|msg| match stdout["details"].as_str() {
                Some(details) if !details.is_empty() => format!("{msg}: {details}"),
                _ => msg.to_string(),
            })
            .unwrap_or_else(|| String::from_utf8_lossy(&output.stderr).trim().to_string());
        return Err(NetworkError::Plugin {
            program: name,
            command: command.to_string(),
            message,
        });
    }
    Ok(stdout)
}

/// The pod's address: the first of the result's `ips` (`10.88.0.5/16`).
pub(super) fn first_ip(result: &Value) -> Result<IpAddr, NetworkError> {
    let invalid = |reason: String| NetworkError::Result {
        program: "bridge".to_string(),
        reason,
    };
    let address = result["ips"][0]["address"]
        .as_str()
        .ok_or_else(|| invalid(format!("no address in {result}")))?;
    let ip = address.split('/').next().unwrap_or(address);
    ip.parse()
        .map_err(|e| invalid(format!("address {address:?}: {e}")))
}

/// `ip <args>` (iproute2), for the named network namespaces.
pub(super) async fn ip(args: &[&str]) -> Result<(), NetworkError> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .await
        .map_err(|source| NetworkError::Spawn {
            program: "ip".to_string(),
            source,
        })?;
    if !output.status.success() {
        return Err(NetworkError::Plugin {
            program: "ip".to_string(),
            command: args.join(" "),
            message: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_pod_ip_is_the_first_result_address() {
        let result = json!({"ips": [{"address": "10.88.0.7/16", "gateway": "10.88.0.1"}]});
        assert_eq!(first_ip(&result).unwrap().to_string(), "10.88.0.7");
        assert!(first_ip(&json!({})).is_err());
        assert!(first_ip(&json!({"ips": [{"address": "x/16"}]})).is_err());
    }
}
