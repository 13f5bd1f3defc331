//! The OCI runtime spec (config.json) of a container: the image's process defaults overlaid with
//! the pod's, and the same confinement containerd gives a container by default.

use serde_json::{Value, json};

use super::image::ProcessDefaults;
use crate::{ContainerSpec, Limits, Mount, OciImage, RunAs, RuntimeError};

/// `type_url` of a runtime spec packed into a containerd `Any`.
pub(crate) const SPEC_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";
/// `type_url` of an exec process.
pub(crate) const PROCESS_TYPE_URL: &str =
    "types.containerd.io/opencontainers/runtime-spec/1/Process";

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const CPU_PERIOD_US: u64 = 100_000;

/// containerd's default capability set for unprivileged containers.
const DEFAULT_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
];

const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The process a container or an exec runs.
pub(crate) struct Process {
    pub(crate) args: Vec<String>,
    pub(crate) env: Vec<String>,
    pub(crate) cwd: String,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) terminal: bool,
}

impl Process {
    /// The container's process: Kubernetes' command/args rules over the image's
    /// entrypoint/cmd, env merged by name, the pod's working dir and user first.
    pub(crate) fn for_container(
        spec: &ContainerSpec,
        oci: &OciImage,
        image: &ProcessDefaults,
    ) -> Result<Process, RuntimeError> {
        let invalid = |reason: String| RuntimeError::InvalidImage {
            reference: oci.reference.clone(),
            reason,
        };
        let args = match (&oci.command, &oci.args) {
            (Some(command), args) => command
                .iter()
                .chain(args.iter().flatten())
                .cloned()
                .collect(),
            (None, Some(args)) => image
                .entrypoint
                .iter()
                .flatten()
                .chain(args)
                .cloned()
                .collect(),
            (None, None) => image
                .entrypoint
                .iter()
                .flatten()
                .chain(image.cmd.iter().flatten())
                .cloned()
                .collect::<Vec<_>>(),
        };
        if args.is_empty() {
            return Err(invalid(
                "no command: neither the pod nor the image sets one".into(),
            ));
        }
        let mut env: Vec<String> = image.env.clone().unwrap_or_default();
        for (name, value) in &spec.env {
            let prefix = format!("{name}=");
            env.retain(|entry| !entry.starts_with(&prefix));
            env.push(format!("{name}={value}"));
        }
        if !env.iter().any(|entry| entry.starts_with("PATH=")) {
            env.push(DEFAULT_PATH.to_string());
        }
        let cwd = spec
            .working_dir
            .clone()
            .or_else(|| image.working_dir.clone())
            .filter(|dir| !dir.is_empty())
            .unwrap_or_else(|| "/".to_string());
        let (uid, gid) = user(oci.user, image.user.as_deref()).map_err(invalid)?;
        Ok(Process {
            args,
            env,
            cwd,
            uid,
            gid,
            terminal: false,
        })
    }

    pub(crate) fn to_json(&self) -> Value {
        json!({
            "terminal": self.terminal,
            "user": { "uid": self.uid, "gid": self.gid },
            "args": self.args,
            "env": self.env,
            "cwd": self.cwd,
            "capabilities": {
                "bounding": DEFAULT_CAPABILITIES,
                "effective": DEFAULT_CAPABILITIES,
                "permitted": DEFAULT_CAPABILITIES,
            },
            "rlimits": [{ "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 }],
            "noNewPrivileges": false,
        })
    }
}

/// The numeric user: the pod's, else the image's `uid[:gid]` (or `root`).
fn user(run_as: Option<RunAs>, image_user: Option<&str>) -> Result<(u32, u32), String> {
    let (image_uid, image_gid) = match image_user.unwrap_or_default() {
        "" | "root" => (0, None),
        text => {
            let (uid, gid) = match text.split_once(':') {
                Some((uid, gid)) => (uid, Some(gid)),
                None => (text, None),
            };
            let number = |s: &str| {
                s.parse::<u32>()
                    .map_err(|_| format!("image user {text:?} is not numeric (uid[:gid])"))
            };
            (number(uid)?, gid.map(number).transpose()?)
        }
    };
    Ok(match run_as {
        Some(run_as) => (run_as.uid, run_as.gid.or(image_gid).unwrap_or(0)),
        None => (image_uid, image_gid.unwrap_or(0)),
    })
}

/// The whole runtime spec of a container.
pub(crate) fn runtime_spec(
    process: &Process,
    mounts: &[Mount],
    limits: Limits,
    cgroups_path: &str,
    oci: &OciImage,
) -> Value {
    let network = match oci.network_namespace.as_deref() {
        Some(path) => json!({"type": "network", "path": path}),
        None => json!({"type": "network"}),
    };
    let mut all_mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
               "options": ["nosuid", "noexec", "nodev", "ro"]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
               "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
    ];
    all_mounts.extend(mounts.iter().map(|mount| {
        let access = if mount.read_only { "ro" } else { "rw" };
        json!({"destination": mount.container_path, "type": "bind",
               "source": mount.host_path, "options": ["rbind", "rprivate", access]})
    }));
    let mut spec = json!({
        "ociVersion": "1.0.2-dev",
        "process": process.to_json(),
        "root": { "path": "rootfs", "readonly": false },
        "mounts": all_mounts,
        "linux": {
            "cgroupsPath": cgroups_path,
            "resources": resources(limits),
            "namespaces": [
                {"type": "pid"}, {"type": "ipc"}, {"type": "uts"},
                {"type": "mount"}, network,
            ],
            "maskedPaths": MASKED_PATHS,
            "readonlyPaths": READONLY_PATHS,
        },
    });
    if let Some(hostname) = &oci.hostname {
        spec["hostname"] = json!(hostname);
    }
    spec
}

/// cgroup limits; devices are denied except runc's defaults (null, zero, tty, …).
fn resources(limits: Limits) -> Value {
    let mut resources = json!({ "devices": [{ "allow": false, "access": "rwm" }] });
    if let Some(bytes) = limits.memory_bytes {
        // The kernel takes an i64; anything above is unlimited anyway.
        resources["memory"] = json!({ "limit": i64::try_from(bytes).unwrap_or(i64::MAX) });
    }
    if let Some(millicores) = limits.cpu_millicores {
        let quota = (u64::from(millicores) * CPU_PERIOD_US / 1000).max(1000);
        resources["cpu"] = json!({ "quota": quota, "period": CPU_PERIOD_US });
    }
    resources
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn container(env: Vec<(&str, &str)>) -> ContainerSpec {
        ContainerSpec {
            pod_uid: "uid".into(),
            container_name: "c".into(),
            image: crate::Image::Oci(oci(None, None)),
            args: vec![],
            env: env
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            working_dir: None,
            mounts: vec![],
            limits: Limits::default(),
            log_path: PathBuf::from("/tmp/c.log"),
        }
    }

    fn oci(command: Option<Vec<&str>>, args: Option<Vec<&str>>) -> OciImage {
        let owned = |v: Vec<&str>| v.into_iter().map(String::from).collect();
        OciImage {
            reference: "busybox".into(),
            command: command.map(owned),
            args: args.map(owned),
            user: None,
            network_namespace: None,
            hostname: None,
        }
    }

    fn image() -> ProcessDefaults {
        ProcessDefaults {
            user: Some("1000:2000".into()),
            env: Some(vec!["PATH=/bin".into(), "MODE=image".into()]),
            entrypoint: Some(vec!["/entry".into()]),
            cmd: Some(vec!["serve".into()]),
            working_dir: Some("/srv".into()),
        }
    }

    #[test]
    fn command_and_args_follow_kubernetes_rules() {
        let spec = container(vec![]);
        let argv = |oci: OciImage| Process::for_container(&spec, &oci, &image()).unwrap().args;
        assert_eq!(argv(oci(None, None)), vec!["/entry", "serve"]);
        assert_eq!(argv(oci(None, Some(vec!["-v"]))), vec!["/entry", "-v"]);
        assert_eq!(argv(oci(Some(vec!["sh"]), None)), vec!["sh"]);
        assert_eq!(
            argv(oci(Some(vec!["sh"]), Some(vec!["-c", "x"]))),
            vec!["sh", "-c", "x"]
        );
        let empty = ProcessDefaults::default();
        assert!(Process::for_container(&spec, &oci(None, None), &empty).is_err());
    }

    #[test]
    fn pod_env_overrides_image_env_and_path_defaults() {
        let spec = container(vec![("MODE", "pod")]);
        let process = Process::for_container(&spec, &oci(None, None), &image()).unwrap();
        assert_eq!(process.env, vec!["PATH=/bin", "MODE=pod"]);
        assert_eq!(
            (process.uid, process.gid, process.cwd.as_str()),
            (1000, 2000, "/srv")
        );
        let bare = ProcessDefaults {
            cmd: Some(vec!["sh".into()]),
            ..ProcessDefaults::default()
        };
        let process = Process::for_container(&spec, &oci(None, None), &bare).unwrap();
        assert_eq!(
            process.env,
            vec!["MODE=pod".to_string(), DEFAULT_PATH.to_string()]
        );
        assert_eq!(
            (process.uid, process.gid, process.cwd.as_str()),
            (0, 0, "/")
        );
    }

    #[test]
    fn users_are_numeric() {
        assert_eq!(user(None, None), Ok((0, 0)));
        assert_eq!(user(None, Some("root")), Ok((0, 0)));
        assert_eq!(user(None, Some("7")), Ok((7, 0)));
        let run_as = RunAs { uid: 5, gid: None };
        assert_eq!(user(Some(run_as), Some("7:8")), Ok((5, 8)));
        assert!(user(None, Some("nginx")).is_err());
    }

    #[test]
    fn limits_mounts_and_confinement_are_in_the_spec() {
        let process = Process {
            args: vec!["sh".into()],
            env: vec![],
            cwd: "/".into(),
            uid: 0,
            gid: 0,
            terminal: false,
        };
        let mounts = [Mount {
            host_path: PathBuf::from("/data"),
            container_path: "/data".into(),
            read_only: true,
        }];
        let limits = Limits {
            memory_bytes: Some(16 << 20),
            cpu_millicores: Some(250),
        };
        let spec = runtime_spec(&process, &mounts, limits, "/rkube/x", &oci(None, None));
        let resources = &spec["linux"]["resources"];
        assert_eq!(resources["memory"]["limit"], 16 << 20);
        assert_eq!(resources["cpu"]["quota"], 25_000);
        let bind = spec["mounts"]
            .as_array()
            .and_then(|m| m.last())
            .cloned()
            .unwrap_or_default();
        assert_eq!(bind["source"], "/data");
        assert_eq!(bind["options"][2], "ro");
        assert_eq!(
            spec["linux"]["namespaces"].as_array().map(Vec::len),
            Some(5)
        );
        let in_pod = OciImage {
            network_namespace: Some(PathBuf::from("/run/netns/p")),
            hostname: Some("web-1".into()),
            ..oci(None, None)
        };
        let in_pod = runtime_spec(&process, &[], limits, "/rkube/x", &in_pod);
        assert_eq!(in_pod["linux"]["namespaces"][4]["path"], "/run/netns/p");
        assert_eq!(in_pod["hostname"], "web-1");
        assert!(
            !spec["process"]["capabilities"]["bounding"]
                .as_array()
                .is_some_and(|caps| caps.iter().any(|c| c == "CAP_SYS_ADMIN"))
        );
    }
}
