//! The OpenTelemetry resource of each traced process, built once per process.

use std::{collections::HashMap, path::Path, sync::Arc, time::Duration};

use foldhash::fast::RandomState;

use opentelemetry::{Array, KeyValue, StringValue, Value};
use opentelemetry_sdk::Resource;

use crate::spans::container;

/// Resources by process id.
#[derive(Debug)]
pub struct Resources {
    service_name: Option<String>,
    /// The config's extra attributes.
    extra: Vec<KeyValue>,
    host_name: Option<String>,
    // Looked up once per span each; the ids are the kernel's, no input to defend against.
    by_pid: HashMap<u32, Process, RandomState>,
    thread_names: HashMap<u32, Option<StringValue>, RandomState>,
    /// When the last sweep ran, in the records' own clock (`CLOCK_MONOTONIC` nanoseconds).
    last_sweep_ns: u64,
    /// Pids forgotten by sweeps, until [`Resources::take_forgotten`].
    forgotten: Vec<u32>,
}

/// A traced process as cached.
#[derive(Debug)]
struct Process {
    resource: Arc<Resource>,
    /// When it started (`/proc/<pid>/stat`), to tell it from a later process given its pid.
    started: Option<u64>,
    /// Found exited (or its pid reused) at the last sweep; forgotten at the next.
    gone: bool,
}

/// Threads whose names are cached at most.
const MAX_THREAD_NAMES: usize = 65_536;

/// How often cached processes are checked against /proc. A process is forgotten one sweep
/// after it is found gone, so spans still in flight for it find its resource, and a run of
/// weeks does not keep every process it ever saw.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// The start time of process `pid` (clock ticks after boot), if it is still there.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ...`: comm may hold spaces and parentheses, so count from the last
    // `)`; the start time is the stat file's 22nd field.
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.split_whitespace().nth(19)?.parse().ok()
}

/// `/proc/<pid>/cmdline` as an array, if the process is still there.
fn command_args(pid: u32) -> Option<Array> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<StringValue> = cmdline
        .split(|b| *b == 0)
        .filter(|arg| !arg.is_empty())
        .map(|arg| StringValue::from(String::from_utf8_lossy(arg).into_owned()))
        .collect();
    (!args.is_empty()).then_some(Array::String(args))
}

/// What tells process `pid`'s container, pod and pid there (semantic conventions'
/// `container.id`, `k8s.pod.uid` and `process.vpid`), where it runs in one.
fn container_attributes(pid: u32) -> Vec<KeyValue> {
    let mut attributes = Vec::new();
    if let Ok(cgroup) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) {
        if let Some(id) = container::container_id(&cgroup) {
            attributes.push(KeyValue::new("container.id", id));
        }
        if let Some(uid) = container::pod_uid(&cgroup) {
            attributes.push(KeyValue::new("k8s.pod.uid", uid));
        }
    }
    if let Some(vpid) = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| container::namespace_pid(&status))
    {
        attributes.push(KeyValue::new("process.vpid", i64::from(vpid)));
    }
    attributes
}

impl Resources {
    /// `service_name` applies to every process; when absent each process gets the
    /// OpenTelemetry default, `unknown_service:<executable name>`.
    pub fn new(
        service_name: Option<String>,
        extra: &std::collections::BTreeMap<String, String>,
    ) -> Self {
        let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty());
        let extra = extra
            .iter()
            .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
            .collect();
        Self {
            service_name,
            extra,
            host_name,
            by_pid: HashMap::default(),
            thread_names: HashMap::default(),
            last_sweep_ns: 0,
            forgotten: Vec::new(),
        }
    }

    /// Records process `pid` as running `executable` with `args`, before it may be read from
    /// /proc: the command `run` starts, which may be gone by the time its first span is read.
    pub fn known(&mut self, pid: u32, executable: &Path, args: &[std::ffi::OsString]) {
        let args = args
            .iter()
            .map(|arg| StringValue::from(arg.to_string_lossy().into_owned()))
            .collect();
        let resource = Arc::new(self.build(pid, Some(executable), Some(Array::String(args))));
        self.by_pid.insert(
            pid,
            Process {
                resource,
                started: start_time(pid),
                gone: false,
            },
        );
    }

    /// The resource of process `pid`. Its executable is read from /proc; if the process is
    /// already gone, `probed_program` (the file the probe is in, when that is a program and not
    /// a library) stands in for it. `seen_ns` is when the record was written (its
    /// `CLOCK_MONOTONIC` time): it paces the sweeps without a clock read per span.
    pub fn for_process(
        &mut self,
        pid: u32,
        probed_program: Option<&Path>,
        seen_ns: u64,
    ) -> Arc<Resource> {
        if seen_ns.saturating_sub(self.last_sweep_ns) >= SWEEP_EVERY.as_nanos() as u64 {
            self.last_sweep_ns = seen_ns;
            self.sweep();
        }
        if let Some(process) = self.by_pid.get(&pid) {
            return Arc::clone(&process.resource);
        }
        let started = start_time(pid);
        let executable = std::fs::read_link(format!("/proc/{pid}/exe"))
            .ok()
            .or_else(|| probed_program.map(Path::to_owned));
        let resource = Arc::new(self.build(pid, executable.as_deref(), command_args(pid)));
        self.by_pid.insert(
            pid,
            Process {
                resource: Arc::clone(&resource),
                started,
                gone: false,
            },
        );
        resource
    }

    /// Forgets the processes found gone at the previous sweep, and marks those gone now:
    /// exited, or their pid now belongs to a process that started at another time.
    fn sweep(&mut self) {
        self.by_pid.retain(|pid, process| {
            if process.gone {
                self.forgotten.push(*pid);
                return false;
            }
            let started = start_time(*pid);
            process.gone = started.is_none() || started != process.started;
            true
        });
    }

    /// The processes forgotten since the last call: gone, their pids free for others.
    pub fn take_forgotten(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.forgotten)
    }

    /// Processes whose resource is cached.
    pub fn cached(&self) -> usize {
        self.by_pid.len()
    }

    /// The name of thread `tid` of `pid` (its `comm`), read once per thread.
    pub fn thread_name(&mut self, pid: u32, tid: u32) -> Option<StringValue> {
        // Thread ids are reused; a bound keeps a long run's cache from growing without end.
        if self.thread_names.len() >= MAX_THREAD_NAMES {
            self.thread_names.clear();
        }
        self.thread_names
            .entry(tid)
            .or_insert_with(|| {
                std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm"))
                    .ok()
                    // Shared: the name is cloned into every span of the thread.
                    .map(|name| StringValue::from(Arc::<str>::from(name.trim_end())))
            })
            .clone()
    }

    /// The resource of a process; with no service name configured, the OpenTelemetry default:
    /// `unknown_service:<executable name>`, or `unknown_service` when it is not known.
    fn build(&self, pid: u32, executable: Option<&Path>, args: Option<Array>) -> Resource {
        let service_name = self.service_name.clone().unwrap_or_else(|| {
            match executable.and_then(Path::file_name) {
                Some(name) => format!("unknown_service:{}", name.to_string_lossy()),
                None => "unknown_service".to_owned(),
            }
        });
        let mut attributes = self.extra.clone();
        attributes.push(KeyValue::new("process.pid", i64::from(pid)));
        if let Some(executable) = executable {
            attributes.push(KeyValue::new(
                "process.executable.path",
                executable.display().to_string(),
            ));
        }
        if let Some(args) = args {
            attributes.push(KeyValue::new("process.command_args", Value::Array(args)));
        }
        if let Some(host) = &self.host_name {
            attributes.push(KeyValue::new("host.name", host.clone()));
        }
        attributes.extend(container_attributes(pid));
        Resource::builder_empty()
            .with_service_name(service_name)
            .with_attributes(attributes)
            .build()
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::Key;

    use super::*;

    fn get(resource: &Resource, key: &'static str) -> Option<Value> {
        resource.get(&Key::from_static_str(key))
    }

    #[test]
    fn describes_a_live_process() {
        let extra = [("deployment.environment".to_owned(), "test".to_owned())].into();
        let mut resources = Resources::new(Some("demo".into()), &extra);
        let pid = std::process::id();
        let resource = resources.for_process(pid, None, 0);
        assert_eq!(get(&resource, "service.name"), Some(Value::from("demo")));
        assert_eq!(
            get(&resource, "process.pid"),
            Some(Value::I64(i64::from(pid)))
        );
        let exe = std::env::current_exe().unwrap().display().to_string();
        assert_eq!(
            get(&resource, "process.executable.path"),
            Some(Value::from(exe))
        );
        assert!(get(&resource, "host.name").is_some());
        assert_eq!(
            get(&resource, "deployment.environment"),
            Some(Value::from("test"))
        );
        let args = get(&resource, "process.command_args");
        assert!(
            matches!(args, Some(Value::Array(Array::String(ref a))) if !a.is_empty()),
            "{args:?}"
        );
        let name = resources
            .thread_name(pid, pid)
            .expect("this thread has a name");
        assert!(!name.as_str().is_empty());
        // Built once per process.
        assert!(Arc::ptr_eq(&resource, &resources.for_process(pid, None, 0)));
    }

    #[test]
    fn falls_back_to_the_probed_binary_for_exited_processes() {
        let mut resources = Resources::new(None, &Default::default());
        // Beyond pid_max: no such process.
        let resource = resources.for_process(u32::MAX, Some(Path::new("/opt/app/server")), 0);
        assert_eq!(
            get(&resource, "process.executable.path"),
            Some(Value::from("/opt/app/server"))
        );
        assert_eq!(
            get(&resource, "service.name"),
            Some(Value::from("unknown_service:server"))
        );
        // A library never stands in for the executable.
        let resource = resources.for_process(u32::MAX - 1, None, 0);
        assert_eq!(get(&resource, "process.executable.path"), None);
        assert_eq!(
            get(&resource, "service.name"),
            Some(Value::from("unknown_service"))
        );
    }

    #[test]
    fn a_known_process_keeps_its_executable_after_it_exits() {
        let mut resources = Resources::new(None, &Default::default());
        let args = ["sqlite3".into(), ":memory:".into()];
        resources.known(u32::MAX, Path::new("/usr/bin/sqlite3"), &args);
        let resource = resources.for_process(u32::MAX, None, 0);
        assert_eq!(
            get(&resource, "service.name"),
            Some(Value::from("unknown_service:sqlite3"))
        );
        assert_eq!(
            get(&resource, "process.executable.path"),
            Some(Value::from("/usr/bin/sqlite3"))
        );
    }

    #[test]
    fn exited_processes_are_forgotten_one_sweep_after_they_are_found_gone() {
        let mut resources = Resources::new(None, &Default::default());
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let exited = child.id();
        let alive = std::process::id();
        resources.for_process(exited, Some(Path::new("/bin/sleep")), 0);
        let kept = resources.for_process(alive, None, 0);
        child.kill().unwrap();
        child.wait().unwrap();
        resources.sweep();
        assert_eq!(
            resources.cached(),
            2,
            "late spans still find the exited process"
        );
        assert!(resources.take_forgotten().is_empty());
        resources.sweep();
        assert_eq!(resources.cached(), 1);
        assert_eq!(resources.take_forgotten(), vec![exited]);
        assert!(resources.take_forgotten().is_empty());
        assert!(Arc::ptr_eq(&kept, &resources.for_process(alive, None, 0)));
    }

    #[test]
    fn start_time_is_read_past_any_command_name() {
        let ours = start_time(std::process::id()).expect("this process has a start time");
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let childs = start_time(child.id());
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(childs.is_some_and(|t| t >= ours), "{childs:?} < {ours}");
        // Clock ticks are 1/100 s on Linux: both lie within the uptime.
        let uptime: f64 = std::fs::read_to_string("/proc/uptime")
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            ours as f64 / 100.0 <= uptime + 1.0,
            "{ours} ticks > {uptime} s"
        );
        assert_eq!(start_time(u32::MAX), None);
    }
}
