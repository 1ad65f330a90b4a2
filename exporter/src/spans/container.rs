//! Which container, and which Kubernetes pod, a process runs in, and its pid there: told by
//! the kernel's own files, so that it works for every runtime and needs no socket. A
//! container runtime names each container's cgroup after the container's id (a 64-digit hex
//! string) and Kubernetes names each pod's cgroup after the pod's uid:
//!
//! - Docker, systemd driver: `/system.slice/docker-<id>.scope`; cgroupfs: `/docker/<id>`
//! - containerd (Kubernetes, systemd): `/kubepods.slice/kubepods-burstable.slice/`
//!   `kubepods-burstable-pod<uid, _ for ->.slice/cri-containerd-<id>.scope`
//! - CRI-O: `…/crio-<id>.scope`; Podman: `…/libpod-<id>.scope`
//! - cgroupfs driver: `/kubepods/burstable/pod<uid>/<id>`

/// The container id in `cgroup` (a `/proc/PID/cgroup`), if a runtime named the process's
/// cgroup after one: the innermost 64-digit hex word of a path, as OpenTelemetry's container
/// resource detectors read it.
pub fn container_id(cgroup: &str) -> Option<String> {
    cgroup_paths(cgroup).find_map(|path| {
        path.rsplit('/').find_map(|segment| {
            segment
                .split(['-', '.', ':'])
                .find(|word| word.len() == 64 && word.bytes().all(|b| b.is_ascii_hexdigit()))
                .map(str::to_ascii_lowercase)
        })
    })
}

/// The uid of the Kubernetes pod in `cgroup`, if the kubelet placed the process: a `pod<uid>`
/// segment (a systemd slice writes the uid's `-` as `_`).
pub fn pod_uid(cgroup: &str) -> Option<String> {
    cgroup_paths(cgroup).find_map(|path| {
        path.split('/').find_map(|segment| {
            let segment = segment.strip_suffix(".slice").unwrap_or(segment);
            let (_, uid) = segment.rsplit_once("pod")?;
            let uid = uid.replace('_', "-");
            is_uid(&uid).then_some(uid)
        })
    })
}

/// The process's pid in its own pid namespace, from `status` (a `/proc/PID/status`), when that
/// is not the host's: `NSpid` lists it in each namespace from the reader's down.
pub fn namespace_pid(status: &str) -> Option<u32> {
    let pids: Vec<&str> = status
        .lines()
        .find_map(|line| line.strip_prefix("NSpid:"))?
        .split_whitespace()
        .collect();
    match pids[..] {
        [_, .., innermost] => innermost.parse().ok(),
        _ => None,
    }
}

/// The cgroup paths of `cgroup`'s lines (`hierarchy:controllers:path`), the unified
/// hierarchy's (`0::`) first, the one every runtime writes on a cgroup v2 host.
fn cgroup_paths(cgroup: &str) -> impl Iterator<Item = &str> {
    let paths = || {
        cgroup
            .lines()
            .filter_map(|line| Some((line.starts_with("0::"), line.splitn(3, ':').nth(2)?)))
    };
    let unified = paths()
        .filter(|(unified, _)| *unified)
        .map(|(_, path)| path);
    let others = paths()
        .filter(|(unified, _)| !*unified)
        .map(|(_, path)| path);
    unified.chain(others)
}

/// Whether `text` is a UUID as Kubernetes writes one (8-4-4-4-12 hex digits).
fn is_uid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, len)| group.len() == len && group.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4fdbf5b996860551401a08ba313f72c16495176c966c86ff3f27c8c46479b3c6";
    const UID: &str = "0d1c3a5e-9f2b-4c1d-8e7f-6a5b4c3d2e1f";

    #[test]
    fn finds_the_container_id_every_runtime_writes() {
        let uid_ = UID.replace('-', "_");
        let cases = [
            format!("0::/system.slice/docker-{ID}.scope"),
            format!("12:memory:/docker/{ID}\n0::/"),
            format!(
                "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice/\
                 cri-containerd-{ID}.scope"
            ),
            format!("0::/kubepods.slice/kubepods-pod{uid_}.slice/crio-{ID}.scope"),
            format!("0::/user.slice/user-1000.slice/user@1000.service/libpod-{ID}.scope/container"),
            format!("11:pids:/kubepods/burstable/pod{UID}/{ID}\n0::/"),
            format!(
                "0::/spanprobe-test/docker-{}.scope",
                ID.to_ascii_uppercase()
            ),
        ];
        for cgroup in cases {
            assert_eq!(container_id(&cgroup).as_deref(), Some(ID), "{cgroup}");
        }
    }

    #[test]
    fn a_process_outside_containers_has_no_container_id() {
        // A host process, and a sandbox's own cgroup named with a 32-digit id.
        for cgroup in [
            "0::/user.slice/user-1000.slice/session-2.scope",
            "4:memory:/process_api/3a67c6cc9c8c698bf90f7afe57551d43\n0::/",
            "0::/",
        ] {
            assert_eq!(container_id(cgroup), None, "{cgroup}");
        }
    }

    #[test]
    fn finds_the_pod_uid_in_either_driver_s_path() {
        let systemd = format!(
            "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice/\
             cri-containerd-{ID}.scope",
            UID.replace('-', "_")
        );
        let cgroupfs = format!("0::/kubepods/besteffort/pod{UID}/{ID}");
        for cgroup in [systemd, cgroupfs] {
            assert_eq!(pod_uid(&cgroup).as_deref(), Some(UID), "{cgroup}");
        }
        assert_eq!(
            pod_uid(&format!("0::/system.slice/docker-{ID}.scope")),
            None
        );
    }

    #[test]
    fn the_pid_in_the_process_s_own_namespace() {
        assert_eq!(namespace_pid("Name:\tsh\nNSpid:\t24388\t2\n"), Some(2));
        assert_eq!(namespace_pid("NSpid:\t24388\t17\t1\n"), Some(1));
        // In the reader's own namespace: nothing more to say.
        assert_eq!(namespace_pid("NSpid:\t24388\n"), None);
        assert_eq!(namespace_pid("Name:\tsh\n"), None);
    }
}
