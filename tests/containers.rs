//! Containers without a container engine: a program run in a pid namespace of its own, in a
//! cgroup named as Docker's systemd driver names a container's. Its spans' resource says
//! which container (`container.id`) and the pid it has there (`process.vpid`), beside the
//! host's.

mod support;

use std::path::PathBuf;

use support::scenario::{Scenario, symbols};

/// Where the unified (v2) cgroup hierarchy is mounted.
fn cgroup2_root() -> PathBuf {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    mounts
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.get(2) == Some(&"cgroup2")).then(|| PathBuf::from(fields[1]))
        })
        .expect("a cgroup2 hierarchy is mounted")
}

/// A cgroup removed when dropped (once its processes have exited).
struct Cgroup(PathBuf);

impl Drop for Cgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
        if let Some(parent) = self.0.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn spans_say_which_container_and_its_pid_there() {
    support::needs_root!();
    let (s, calls) = Scenario::with_calls("calls", &[]).await;
    let id = format!("{:016x}", std::process::id()).repeat(4);
    let cgroup = Cgroup(
        cgroup2_root()
            .join(format!("spanprobe-test-{}", std::process::id()))
            .join(format!("docker-{id}.scope")),
    );
    std::fs::create_dir_all(&cgroup.0).unwrap();
    // The shell moves itself into the cgroup, then `unshare` forks the program as pid 1 of a
    // new pid namespace (and mount namespace, with its own /proc).
    let script = format!(
        "echo $$ > {}/cgroup.procs && exec unshare --pid --fork --mount-proc {} chain-wait",
        cgroup.0.display(),
        calls.display()
    );
    let config = s.config(&calls, symbols(&["outer", "middle", "inner"]));
    let (_, spans) = s.trace(&config, &["sh", "-c", &script]).exits(0).await;
    assert_eq!(spans.len(), 3, "{spans:#?}");
    for span in &spans {
        assert_eq!(
            span.resource_str("container.id"),
            Some(id.as_str()),
            "{span:#?}"
        );
        assert_eq!(span.resource_int("process.vpid"), Some(1), "{span:#?}");
        assert_ne!(span.resource_int("process.pid"), Some(1), "{span:#?}");
        assert_eq!(span.resource_str("k8s.pod.uid"), None);
    }
}

/// A process in the tracer's own cgroup and pid namespace: no pid of another namespace, and
/// the container id the test's own cgroup gives (none on a host).
#[tokio::test(flavor = "multi_thread")]
async fn a_process_outside_containers_says_none() {
    support::needs_root!();
    let (s, calls) = Scenario::with_calls("calls", &[]).await;
    let config = s.config(&calls, symbols(&["outer"]));
    let (_, spans) = s
        .trace(&config, &[calls.to_str().unwrap(), "chain-wait"])
        .exits(0)
        .await;
    assert_eq!(spans.len(), 1, "{spans:#?}");
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let own_id = spanprobe::spans::container::container_id(&own);
    assert_eq!(spans[0].resource_str("container.id"), own_id.as_deref());
    assert_eq!(spans[0].resource_int("process.vpid"), None);
}
