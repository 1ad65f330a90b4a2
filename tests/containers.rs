//! Containers without a container engine: programs run in pid and mount namespaces of their
//! own, with a root directory of their own, in a cgroup named as Docker's systemd driver names
//! a container's. `executable:` targets find them by the path their own namespace gives; their
//! spans' resource says which container (`container.id`) and the pid each has there
//! (`process.vpid`), beside the host's.

mod support;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Stdio,
};

use serde_json::json;
use support::scenario::{Scenario, symbols};
use tokio::io::{AsyncBufReadExt as _, BufReader};

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

impl Cgroup {
    /// The cgroup of container `id`, named as `runtime` names it (`docker`, `cri-containerd`),
    /// under one of this test process's own.
    fn of_container(runtime: &str, id: &str) -> Cgroup {
        let cgroup = Cgroup(
            cgroup2_root()
                .join(format!("spanprobe-test-{}", std::process::id()))
                .join(format!("{runtime}-{id}.scope")),
        );
        std::fs::create_dir_all(&cgroup.0).unwrap();
        cgroup
    }
}

/// A 64-digit container id of this test process's own, the `n`th: ids differ from their first
/// digit on.
fn test_container_id(n: u8) -> String {
    format!("{n:x}{:015x}", std::process::id()).repeat(4)
}

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
    let id = test_container_id(0);
    let cgroup = Cgroup::of_container("docker", &id);
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

/// Where the container's program is, in its own root: a path the host does not have.
const IN_CONTAINER: &str = "/opt/app/bin/waiter";

/// Held by each test that runs containers: they all run [`IN_CONTAINER`], and a test finding
/// processes by that path must find its own only.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A root directory holding `waiter` (static: the root has no libraries) at [`IN_CONTAINER`],
/// and busybox for the shell that enters it.
fn container_root(dir: &Path, name: &str) -> PathBuf {
    let root = dir.join(name);
    let bin = root.join("opt/app/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    support::compile_c(
        &support::programs().join("waiter.c"),
        &bin,
        "waiter",
        &["-static"],
    );
    root
}

/// A root directory holding `waiter` built as programs usually are, dynamically linked, at
/// [`IN_CONTAINER`], with the libraries it loads copied in (files of its own, not the host's).
fn dynamic_container_root(dir: &Path, name: &str) -> PathBuf {
    let root = container_root(dir, name);
    let waiter = root.join(&IN_CONTAINER[1..]);
    std::fs::remove_file(&waiter).unwrap();
    support::compile_c(
        &support::programs().join("waiter.c"),
        waiter.parent().unwrap(),
        "waiter",
        &[],
    );
    let ldd = std::process::Command::new("ldd")
        .arg(&waiter)
        .output()
        .unwrap();
    // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)`, `/lib64/ld-linux-x86-64.so.2 (0x...)`
    for library in String::from_utf8(ldd.stdout)
        .unwrap()
        .split_whitespace()
        .filter(|word| word.starts_with('/'))
    {
        let copy = root.join(&library[1..]);
        std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
        std::fs::copy(library, &copy).unwrap();
    }
    root
}

/// A sidecar's config: `target`, exporting to the scenario's receiver at once.
fn sidecar_config(s: &Scenario, target: serde_json::Value) -> serde_json::Value {
    json!({
        "exporter": { "otlp": { "endpoint": s.receiver.grpc_endpoint() } },
        "batch": { "delay": "10ms" },
        "probes": [target],
    })
}

/// Waits until `sidecar` says it probed a file a process started after it.
async fn probed_later(sidecar: &support::Sidecar) {
    let probed = "probing a file a process started running";
    assert!(
        sidecar.wait_for_log(probed, support::SPANS_WAIT).await,
        "no {probed:?} in time"
    );
}

/// `waiter` in a container: new mount and pid namespaces, `root` as its root (by pivot_root,
/// as container runtimes do, or by chroot), in `cgroup` if given. Returns once it is ready,
/// with its pid on the host.
struct Container {
    unshare: tokio::process::Child,
    pid: u32,
}

impl Container {
    async fn start(root: &Path, pivot: bool, cgroup: Option<&Cgroup>) -> Container {
        let join = cgroup.map_or(String::new(), |cgroup| {
            format!("echo $$ > {}/cgroup.procs && ", cgroup.0.display())
        });
        let root = root.display();
        let enter = if pivot {
            format!(
                "unshare --mount --pid --fork --kill-child --propagation private sh -c 'mount --bind {root} \
                 {root} && cd {root} && mkdir -p old && pivot_root . old && exec /bin/busybox \
                 sh -c \"umount -l /old && exec {IN_CONTAINER} hold\"'"
            )
        } else {
            format!("unshare --mount --pid --fork --kill-child --root={root} {IN_CONTAINER} hold")
        };
        let mut unshare = tokio::process::Command::new("sh")
            .args(["-c", &format!("{join}exec {enter}")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdout = unshare.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).await.unwrap();
        assert!(line.contains("ready 6"), "{line:?}");
        let unshare_pid = unshare.id().unwrap();
        let children =
            std::fs::read_to_string(format!("/proc/{unshare_pid}/task/{unshare_pid}/children"))
                .unwrap();
        let pid = children.trim().parse().unwrap();
        Container { unshare, pid }
    }

    /// Lets it make its calls.
    fn call(&self) {
        // SAFETY: kill(2) with a pid and a signal number; no memory is involved.
        assert_eq!(unsafe { libc::kill(self.pid as i32, libc::SIGUSR1) }, 0);
    }

    /// Lets it exit, once its calls are made, and waits for it.
    async fn finish(mut self) {
        drop(self.unshare.stdin.take());
        assert!(self.unshare.wait().await.unwrap().success());
    }
}

/// An overlay mount of `lower`, as a container runtime makes one of an image for each
/// container: its files are the lower layer's, under a device number of the mount's own.
struct Overlay(PathBuf);

impl Overlay {
    fn mount(lower: &Path, dir: &Path) -> Overlay {
        let [upper, work, merged] = ["upper", "work", "merged"].map(|name| dir.join(name));
        for dir in [&upper, &work, &merged] {
            std::fs::create_dir_all(dir).unwrap();
        }
        let options = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.display(),
            upper.display(),
            work.display()
        );
        let status = std::process::Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", &options])
            .arg(&merged)
            .status()
            .unwrap();
        assert!(status.success(), "mount -t overlay -o {options}");
        Overlay(merged)
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// Three processes in containers of their own: two run one file of one image, one from the
/// image's directory, the other through an overlay of it (as two containers of one image do);
/// the third a copy in another root, entered by chroot. A sidecar naming `executable:` by its
/// path in the containers finds both files, attaches to each once (the overlay's file is the
/// image's, to the kernel), and traces all three processes, each call once.
#[tokio::test(flavor = "multi_thread")]
async fn executables_are_found_in_other_mount_namespaces() {
    support::needs_root!();
    let s = Scenario::start().await;
    let _alone = ONE_AT_A_TIME.lock().await;
    let shared = container_root(s.path(), "image");
    let copy = container_root(s.path(), "other-image");
    assert!(
        !Path::new(IN_CONTAINER).exists(),
        "{IN_CONTAINER} is on the host"
    );
    let id = test_container_id(1);
    let cgroup = Cgroup::of_container("cri-containerd", &id);
    let overlay = Overlay::mount(&shared, &s.path().join("overlay"));
    let containers = [
        Container::start(&shared, true, Some(&cgroup)).await,
        Container::start(&overlay.0, true, None).await,
        Container::start(&copy, false, None).await,
    ];
    let config = sidecar_config(
        &s,
        json!({
        "executable": IN_CONTAINER,
        "functions": symbols(&["outer", "middle", "inner"]),
        }),
    );
    let sidecar = s.sidecar(&config).await;
    let pids: Vec<u32> = containers.iter().map(|c| c.pid).collect();
    for container in &containers {
        container.call();
    }
    // outer(3) and outer(4), three spans each, in each process.
    let spans = s.receiver.wait_for_spans(18, support::SPANS_WAIT).await;
    for container in containers {
        container.finish().await;
    }
    let stderr = sidecar.stop().await;
    assert_eq!(
        stderr
            .matches("found a running executable's executable")
            .count(),
        2,
        "one attachment per file: {stderr}"
    );
    // Entry and return of three functions, in each file.
    assert!(stderr.contains("probes=12 "), "{stderr}");
    let mut by_pid: BTreeMap<i64, Vec<_>> = BTreeMap::new();
    for span in &spans {
        by_pid
            .entry(span.resource_int("process.pid").unwrap())
            .or_default()
            .push(span);
    }
    let expected: Vec<i64> = pids.iter().map(|&pid| i64::from(pid)).collect();
    assert_eq!(by_pid.keys().copied().collect::<Vec<_>>(), expected);
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let own_id = spanprobe::spans::container::container_id(&own);
    for (i, pid) in expected.iter().enumerate() {
        let spans = &by_pid[pid];
        assert_eq!(spans.len(), 6, "{spans:#?}");
        let container_id = if i == 0 {
            Some(id.as_str())
        } else {
            own_id.as_deref()
        };
        for span in spans {
            // The path its own namespace gives; a chrooted process's /proc link gives our path
            // to its file instead, which reaches it.
            let executable = span.resource_str("process.executable.path").unwrap();
            match i {
                2 => assert_eq!(Path::new(executable), copy.join(&IN_CONTAINER[1..])),
                _ => assert_eq!(executable, IN_CONTAINER),
            }
            assert_eq!(span.resource_int("process.vpid"), Some(1), "{span:#?}");
            assert_eq!(span.resource_str("container.id"), container_id, "{span:#?}");
        }
        for name in ["outer", "middle", "inner"] {
            let named = spans.iter().filter(|span| span.name() == name).count();
            assert_eq!(named, 2, "{name} in {spans:#?}");
        }
    }
}

/// No process runs the executable yet: not wrong, as one may start, but said, with where in
/// the config and what was looked at.
#[tokio::test(flavor = "multi_thread")]
async fn an_executable_no_process_runs_yet_is_noted() {
    let s = Scenario::start().await;
    let config = json!({
        "probes": [{ "executable": "/opt/nothing/runs/this", "functions": symbols(&["main"]) }],
    });
    let output = s.check(&config, 0).await;
    support::scenario::assert_has_all(
        &output,
        &[
            "ok, 0 functions to probe",
            "note: ",
            "probes[0].executable",
            "no running process runs `/opt/nothing/runs/this` yet (looked at ",
            "its file is probed when a process starts running it",
        ],
    );
}

/// A sidecar started before any process runs its executable: it waits, and probes the file
/// of the first process that starts it, with the programs built for whatever it needs.
#[tokio::test(flavor = "multi_thread")]
async fn a_sidecar_started_first_probes_the_processes_that_start_after_it() {
    support::needs_root!();
    let s = Scenario::start().await;
    let _alone = ONE_AT_A_TIME.lock().await;
    let root = container_root(s.path(), "image");
    let config = sidecar_config(
        &s,
        json!({
            "executable": IN_CONTAINER,
            "functions": [
                { "symbol": "outer", "args": [{ "index": 0, "name": "x", "type": "i64" }] },
                { "symbol": "middle", "stack": true },
                { "symbol": "inner", "min_duration": "0ns" },
            ],
        }),
    );
    let sidecar = s.sidecar(&config).await;
    let container = Container::start(&root, true, None).await;
    probed_later(&sidecar).await;
    container.call();
    s.receiver.wait_for_spans(6, support::SPANS_WAIT).await;
    container.finish().await;
    let stderr = sidecar.stop().await;
    let spans = s.receiver.spans();
    let outer: Vec<i64> = support::scenario::named(&spans, "outer")
        .iter()
        .filter_map(|span| span.int_attr("x"))
        .collect();
    // outer(1) ran before its probes were in, or just after.
    assert!(outer.ends_with(&[3, 4]), "{outer:?}: {stderr}");
    for middle in support::scenario::named(&spans, "middle") {
        assert!(middle.attr("code.stacktrace").is_some(), "{middle:#?}");
    }
}

/// What finding processes needs beyond CAP_BPF and CAP_PERFMON, measured: spanprobe holding
/// only those two cannot read a root process's `/proc/PID/exe` (the kernel asks for
/// CAP_SYS_PTRACE when the reader lacks capabilities the process has), and says so.
#[tokio::test(flavor = "multi_thread")]
async fn finding_processes_needs_cap_sys_ptrace() {
    support::needs_root!();
    let s = Scenario::start().await;
    let _alone = ONE_AT_A_TIME.lock().await;
    let root = container_root(s.path(), "image");
    let container = Container::start(&root, true, None).await;
    let config = s.write(&json!({
        "probes": [{ "executable": IN_CONTAINER, "functions": symbols(&["outer"]) }],
    }));
    let check = |capabilities: &'static str| {
        let config = config.clone();
        async move {
            tokio::process::Command::new("setpriv")
                .arg(format!("--bounding-set=-all,{capabilities}"))
                .args([support::spanprobe(), "check", "-c"])
                .arg(&config)
                .output()
                .await
                .unwrap()
        }
    };
    // Without, its process is not found, and the note says why.
    let without = check("+bpf,+perfmon").await;
    support::scenario::assert_exit(&without, 0);
    let stdout = String::from_utf8_lossy(&without.stdout);
    assert!(stdout.contains("ok, 0 functions to probe"), "{stdout}");
    assert!(
        stdout.contains(
            "could not be read: reading another process's /proc/PID/exe needs CAP_SYS_PTRACE"
        ),
        "{stdout}"
    );
    let with = check("+bpf,+perfmon,+sys_ptrace").await;
    support::scenario::assert_exit(&with, 0);
    let stdout = String::from_utf8_lossy(&with.stdout);
    assert!(stdout.contains("ok, 1 function to probe"), "{stdout}");
    container.call();
    container.finish().await;
}

/// `container:` narrows a target to one container's processes: two containers run one file,
/// which is probed once, and only the calls of the container named become spans.
#[tokio::test(flavor = "multi_thread")]
async fn a_container_id_narrows_a_target_to_its_processes() {
    support::needs_root!();
    let s = Scenario::start().await;
    let _alone = ONE_AT_A_TIME.lock().await;
    let root = container_root(s.path(), "image");
    let [named, other] = [2, 3].map(test_container_id);
    let cgroups = [&named, &other].map(|id| Cgroup::of_container("docker", id));
    let traced = Container::start(&root, true, Some(&cgroups[0])).await;
    let untraced = Container::start(&root, true, Some(&cgroups[1])).await;
    let config = sidecar_config(
        &s,
        json!({
        "executable": IN_CONTAINER,
        "container": &named[..12],
        "functions": symbols(&["outer", "middle", "inner"]),
        }),
    );
    let sidecar = s.sidecar(&config).await;
    // The other container's calls are made, and over, before the named one's.
    untraced.call();
    untraced.finish().await;
    traced.call();
    let pid = traced.pid;
    s.receiver.wait_for_spans(6, support::SPANS_WAIT).await;
    traced.finish().await;
    // Stopping drains the ring buffer: a call of the other container would be exported by now.
    let stderr = sidecar.stop().await;
    assert!(stderr.contains(&format!("pids=[{pid}]")), "{stderr}");
    let spans = s.receiver.spans();
    assert_eq!(spans.len(), 6, "{spans:#?}");
    for span in &spans {
        assert_eq!(span.resource_int("process.pid"), Some(i64::from(pid)));
        assert_eq!(span.resource_str("container.id"), Some(named.as_str()));
    }
}

/// A container id no process has is refused, with where it was given.
#[tokio::test(flavor = "multi_thread")]
async fn a_container_no_process_is_in_is_refused() {
    let s = Scenario::start().await;
    let config = json!({
        "probes": [{
            "binary": "/bin/true",
            "container": "0123456789ab",
            "functions": symbols(&["main"]),
        }],
    });
    let output = s.check(&config, 2).await;
    support::scenario::assert_has_all(
        &output,
        &[
            "probes[0].container",
            "no running process is in a container whose id starts with `0123456789ab`",
        ],
    );
}

/// `library:` probes a library the container's processes have loaded, found in their maps: the
/// container's own C library, not the host's, however its path is spelled.
#[tokio::test(flavor = "multi_thread")]
async fn a_library_of_a_container_is_probed_through_its_processes() {
    support::needs_root!();
    let s = Scenario::start().await;
    let _alone = ONE_AT_A_TIME.lock().await;
    let root = dynamic_container_root(s.path(), "image");
    let container = Container::start(&root, true, None).await;
    let config = sidecar_config(
        &s,
        json!({
        "executable": IN_CONTAINER,
        "library": "libc.so*",
        "functions": [{ "symbol": "fflush", "return": { "type": "i32" } }],
        }),
    );
    let sidecar = s.sidecar(&config).await;
    let pid = container.pid;
    container.call();
    // The one fflush after its calls (the first was made before spanprobe started).
    s.receiver.wait_for_spans(1, support::SPANS_WAIT).await;
    container.finish().await;
    let stderr = sidecar.stop().await;
    assert!(
        stderr.contains(&format!("/proc/{pid}/root/")) && stderr.contains("libc.so.6 pids="),
        "{stderr}"
    );
    // Stopping drains the ring buffer: every call made is exported by now.
    let fflush = s.receiver.spans();
    assert_eq!(fflush.len(), 1, "{fflush:#?}");
    assert_eq!(fflush[0].name(), "fflush");
    assert_eq!(fflush[0].resource_int("process.pid"), Some(i64::from(pid)));
    assert_eq!(
        fflush[0].resource_str("process.executable.path"),
        Some(IN_CONTAINER)
    );
}

/// A library the executable's processes have not loaded is refused, saying how many were
/// looked at.
#[tokio::test(flavor = "multi_thread")]
async fn a_library_the_processes_have_not_loaded_is_refused() {
    support::needs_root!();
    let s = Scenario::start().await;
    let _alone = ONE_AT_A_TIME.lock().await;
    let root = container_root(s.path(), "image");
    let container = Container::start(&root, true, None).await;
    let config = json!({
        "probes": [{
            "executable": IN_CONTAINER,
            "library": "libc.so*",
            "functions": symbols(&["fflush"]),
        }],
    });
    // A static program loads no library.
    let output = s.check(&config, 2).await;
    support::scenario::assert_has_all(
        &output,
        &[
            "probes[0].library",
            "1 processes run `/opt/app/bin/waiter`, and none has loaded a library `libc.so*`",
        ],
    );
    container.call();
    container.finish().await;
}

/// Processes that start after spanprobe: one runs a file probed already (its probes fire in
/// it), one a file of its own, found as it starts and probed before it makes its calls.
#[tokio::test(flavor = "multi_thread")]
async fn files_that_processes_start_later_are_probed() {
    support::needs_root!();
    let s = Scenario::start().await;
    let _alone = ONE_AT_A_TIME.lock().await;
    let image = container_root(s.path(), "image");
    let newer = container_root(s.path(), "newer-image");
    let first = Container::start(&image, true, None).await;
    let config = sidecar_config(
        &s,
        json!({
        "executable": IN_CONTAINER,
        "functions": symbols(&["outer", "middle", "inner"]),
        }),
    );
    let sidecar = s.sidecar(&config).await;
    let same_file = Container::start(&image, true, None).await;
    let new_file = Container::start(&newer, false, None).await;
    let containers = [first, same_file, new_file];
    // Found as it started: its probes are in by the time it is ready, or shortly after.
    probed_later(&sidecar).await;
    for container in &containers {
        container.call();
    }
    s.receiver.wait_for_spans(18, support::SPANS_WAIT).await;
    let pids: Vec<i64> = containers.iter().map(|c| i64::from(c.pid)).collect();
    for container in containers {
        container.finish().await;
    }
    let stderr = sidecar.stop().await;
    let spans = s.receiver.spans();
    let own = |pid: i64| {
        spans
            .iter()
            .filter(|span| span.resource_int("process.pid") == Some(pid))
            .count()
    };
    // outer(3) and outer(4) in each; in the one started on a probed file, its first outer(1)
    // too; in the one with a file of its own, outer(1) if its probes beat it there.
    assert_eq!(own(pids[0]), 6, "{stderr}");
    assert_eq!(own(pids[1]), 9, "{stderr}");
    assert!([6, 9].contains(&own(pids[2])), "{stderr}");
    assert_eq!(spans.len(), 15 + own(pids[2]), "{spans:#?}");
    assert_eq!(
        stderr
            .matches("probing a file a process started running")
            .count(),
        1,
        "{stderr}"
    );
}

/// A library of a process that starts after the sidecar: at its exec the loader has not mapped
/// its libraries yet, so it is looked at again, and the library is probed once it is there.
#[tokio::test(flavor = "multi_thread")]
async fn a_library_of_a_process_started_later_is_probed_once_loaded() {
    support::needs_root!();
    let s = Scenario::start().await;
    let _alone = ONE_AT_A_TIME.lock().await;
    let root = dynamic_container_root(s.path(), "image");
    let config = sidecar_config(
        &s,
        json!({
            "executable": IN_CONTAINER,
            "library": "libc.so*",
            "functions": [{ "symbol": "fflush", "return": { "type": "i32" } }],
        }),
    );
    let sidecar = s.sidecar(&config).await;
    let container = Container::start(&root, true, None).await;
    probed_later(&sidecar).await;
    container.call();
    s.receiver.wait_for_spans(1, support::SPANS_WAIT).await;
    let pid = container.pid;
    container.finish().await;
    let stderr = sidecar.stop().await;
    assert!(stderr.contains("libc.so.6 pids="), "{stderr}");
    // The fflush after its calls; the one at its start too, if the probes beat it there.
    let fflush = s.receiver.spans();
    assert!((1..=2).contains(&fflush.len()), "{fflush:#?}");
    for span in &fflush {
        assert_eq!(span.name(), "fflush");
        assert_eq!(span.resource_int("process.pid"), Some(i64::from(pid)));
    }
}
