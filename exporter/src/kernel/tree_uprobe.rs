//! Uprobes placed in one process tree only: a tracefs uprobe event, opened as a perf event on
//! the tree's first task with `inherit` set. The kernel copies such an event into every task
//! that task forks or clones (and theirs, through `exec` too), and installs a uprobe's
//! breakpoint only in the address spaces of the tasks its events are on (`uprobe_perf_filter`):
//! a process outside the tree that runs the same binary takes no trap at all. This is how
//! `perf record -e <uprobe> -- command` follows a command. The kernel's own uprobe perf events
//! (the `uprobe` PMU aya uses) cannot be inherited: a copy would re-read the binary's path
//! from the forking process's memory.
//!
//! The program is attached to a second perf event on the same tracefs event, not inherited:
//! it runs for every hit of the event that the filter lets through, whichever perf event
//! let it. Were it attached to the inherited one, each copy would carry it too (Linux 6.10
//! and later), and the first task of the tree to exit would detach it from the tracefs event
//! for all of them.
//!
//! Each event is named in a tracefs group of this process (`spanprobe_<pid namespace>_<pid>`:
//! tracefs is the host's, shared by every container), removed again when the probe is
//! dropped; groups left by a spanprobe of this namespace that was killed are removed by
//! [`remove_stale`].

use std::{
    fs, io,
    io::Write as _,
    num::NonZeroU32,
    os::fd::{AsRawFd as _, BorrowedFd, OwnedFd},
    path::{Path, PathBuf},
};

use crate::kernel::syscalls::{PerfEventAttr, link_create, perf_event_open};

/// Where tracefs is mounted: its own mount first, then under debugfs.
const TRACEFS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];
/// The prefix of this program's tracefs groups, followed by the pid that made them.
const GROUP_PREFIX: &str = "spanprobe_";

/// `PERF_TYPE_TRACEPOINT`, from `enum perf_type_id` (include/uapi/linux/perf_event.h).
const PERF_TYPE_TRACEPOINT: u32 = 2;
/// `PERF_SAMPLE_RAW`: what a tracepoint event that runs a BPF program samples.
const PERF_SAMPLE_RAW: u64 = 1 << 10;
/// `perf_event_attr.inherit`: bit 1 of the flags word.
const ATTR_INHERIT: u64 = 1 << 1;
/// `PERF_EVENT_IOC_ENABLE`, `_IO('$', 0)`.
const PERF_EVENT_IOC_ENABLE: libc::c_ulong = 0x2400;
/// `BPF_PERF_EVENT`, from `enum bpf_attach_type`.
const BPF_PERF_EVENT: u32 = 41;

/// `union bpf_attr`'s `link_create` member with its `perf_event` variant; the kernel
/// zero-fills what follows.
#[repr(C)]
#[derive(Default)]
struct LinkCreatePerfEvent {
    prog_fd: u32,
    target_fd: u32,
    attach_type: u32,
    flags: u32,
    bpf_cookie: u64,
}

/// Where one uprobe goes, and what its program is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Site<'a> {
    pub binary: &'a Path,
    pub offset: u64,
    /// The file offset of a USDT semaphore, incremented in each process of the tree while the
    /// probe is there; 0 for none.
    pub ref_ctr_offset: u64,
    pub retprobe: bool,
    pub cookie: u64,
}

/// The tracefs directory of this machine, if it is mounted and this process may define uprobe
/// events there (its `uprobe_events` is root's, writable by root alone).
pub fn tracefs() -> Option<PathBuf> {
    TRACEFS.iter().map(PathBuf::from).find(|dir| {
        fs::OpenOptions::new()
            .append(true)
            .open(dir.join("uprobe_events"))
            .is_ok()
    })
}

/// A uprobe held in one process tree; dropping it removes it.
#[derive(Debug)]
pub struct TreeUprobe {
    // Closed by `drop` in this order: the inherited event (no breakpoint is placed in a new
    // task after it), the link, the program's event, and last the tracefs event, which the
    // kernel keeps until no perf event is open on it.
    link: Option<OwnedFd>,
    /// On the tree's first task only, running the program.
    program_event: Option<OwnedFd>,
    /// Inherited by the tree: where the kernel places the breakpoints.
    tree_event: Option<OwnedFd>,
    event: TracefsEvent,
}

impl TreeUprobe {
    /// Places `program` (loaded for perf-event uprobes) at `site` in the tree of `root`: the
    /// task `root` and every task it starts from now on. `name` tells the probe apart from the
    /// others of this process in tracefs (letters, digits and `_`).
    pub fn attach(
        tracefs: &Path,
        name: &str,
        program: BorrowedFd<'_>,
        site: Site<'_>,
        root: NonZeroU32,
    ) -> io::Result<Self> {
        // Built first, so that whatever fails below removes what was made.
        let mut probe = Self {
            link: None,
            program_event: None,
            tree_event: None,
            event: TracefsEvent::create(tracefs, name, &site)?,
        };
        let id = probe.event.id()?;
        let program_event = probe.program_event.insert(open(id, root, false)?);
        probe.link = Some(link_program(program, program_event, site.cookie)?);
        // Last, once the program runs: from here on the tasks the root starts get the
        // breakpoints too (the root itself is held before exec).
        probe.tree_event = Some(open(id, root, true)?);
        for event in [&probe.program_event, &probe.tree_event]
            .into_iter()
            .flatten()
        {
            // SAFETY: an ioctl without argument on a perf event descriptor we own.
            if unsafe { libc::ioctl(event.as_raw_fd(), PERF_EVENT_IOC_ENABLE, 0) } < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(probe)
    }
}

impl Drop for TreeUprobe {
    fn drop(&mut self) {
        // Closed before the event is removed: tracefs refuses to remove an event in use.
        drop(self.tree_event.take());
        drop(self.link.take());
        drop(self.program_event.take());
        if let Err(error) = self.event.remove() {
            tracing::warn!(
                "cannot remove the uprobe event {}: {error}",
                self.event.name
            );
        }
    }
}

/// A uprobe event defined in tracefs's `uprobe_events`.
#[derive(Debug)]
struct TracefsEvent {
    tracefs: PathBuf,
    /// `group/event`.
    name: String,
}

impl TracefsEvent {
    fn create(tracefs: &Path, name: &str, site: &Site<'_>) -> io::Result<Self> {
        let path = site.binary.to_str().filter(|path| {
            !path
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '(')
        });
        let Some(path) = path else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "tracefs cannot name a path with spaces, parentheses or non-UTF-8 bytes",
            ));
        };
        let name = format!("{}/{name}", group_of(pid_namespace(), std::process::id()));
        let kind = if site.retprobe { 'r' } else { 'p' };
        let counter = match site.ref_ctr_offset {
            0 => String::new(),
            offset => format!("({offset:#x})"),
        };
        let definition = format!("{kind}:{name} {path}:{:#x}{counter}\n", site.offset);
        append(&tracefs.join("uprobe_events"), &definition)?;
        Ok(Self {
            tracefs: tracefs.to_owned(),
            name,
        })
    }

    /// The event's id, which perf events of type tracepoint name it by.
    fn id(&self) -> io::Result<u64> {
        let path = self.tracefs.join("events").join(&self.name).join("id");
        let text = fs::read_to_string(&path)?;
        text.trim()
            .parse()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("{text:?}")))
    }

    fn remove(&self) -> io::Result<()> {
        append(
            &self.tracefs.join("uprobe_events"),
            &format!("-:{}\n", self.name),
        )
    }
}

/// Removes the uprobe events of spanprobe processes of this pid namespace that no longer run
/// (killed before they could); returns how many.
pub fn remove_stale(tracefs: &Path) -> io::Result<usize> {
    let events = fs::read_to_string(tracefs.join("uprobe_events"))?;
    let runs = |pid: u32| Path::new(&format!("/proc/{pid}")).exists();
    let mut removed = 0;
    for name in stale_events(&events, pid_namespace(), runs) {
        append(&tracefs.join("uprobe_events"), &format!("-:{name}\n"))?;
        removed += 1;
    }
    Ok(removed)
}

/// The `group/event` names in `uprobe_events` text that belong to spanprobe processes of pid
/// namespace `namespace` that `runs` says are gone.
fn stale_events(events: &str, namespace: u64, runs: impl Fn(u32) -> bool) -> Vec<&str> {
    events
        .lines()
        .filter_map(|line| line.split_whitespace().next()?.split_once(':'))
        .map(|(_, name)| name)
        .filter(|name| {
            name.split_once('/')
                .and_then(|(group, _)| group.strip_prefix(GROUP_PREFIX))
                .and_then(|owner| owner.split_once('_'))
                .and_then(|(ns, pid)| Some((ns.parse::<u64>().ok()?, pid.parse().ok()?)))
                .is_some_and(|(ns, pid)| ns == namespace && !runs(pid))
        })
        .collect()
}

fn group_of(namespace: u64, pid: u32) -> String {
    format!("{GROUP_PREFIX}{namespace}_{pid}")
}

/// The inode of this process's pid namespace (0 if unknown): pids are unique within it only.
fn pid_namespace() -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    fs::metadata("/proc/self/ns/pid").map_or(0, |ns| ns.ino())
}

/// Appends one command to a tracefs control file (a write of its own: tracefs parses each).
fn append(file: &Path, command: &str) -> io::Result<()> {
    let mut control = fs::OpenOptions::new().append(true).open(file)?;
    control.write_all(command.as_bytes()).map_err(|error| {
        io::Error::new(
            error.kind(),
            format!("{}: `{}`: {error}", file.display(), command.trim_end()),
        )
    })
}

/// Opens tracepoint event `id` on task `root`, inherited by the tasks it starts if `inherit`.
fn open(id: u64, root: NonZeroU32, inherit: bool) -> io::Result<OwnedFd> {
    let attr = PerfEventAttr {
        kind: PERF_TYPE_TRACEPOINT,
        config: id,
        sample_period: 1,
        sample_type: PERF_SAMPLE_RAW,
        flags: if inherit { ATTR_INHERIT } else { 0 },
        wakeup_events: 1,
        ..PerfEventAttr::default()
    };
    perf_event_open(attr, root.get() as libc::pid_t)
}

/// Runs `program` on every hit of `perf_event`, with `cookie` for `bpf_get_attach_cookie`.
fn link_program(program: BorrowedFd<'_>, perf_event: &OwnedFd, cookie: u64) -> io::Result<OwnedFd> {
    let attr = LinkCreatePerfEvent {
        prog_fd: program.as_raw_fd() as u32,
        target_fd: perf_event.as_raw_fd() as u32,
        attach_type: BPF_PERF_EVENT,
        flags: 0,
        bpf_cookie: cookie,
    };
    // SAFETY: `attr` is a valid `link_create` attribute of the perf-event type.
    unsafe { link_create(&attr) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_attr_has_the_kernel_s_size() {
        assert_eq!(size_of::<LinkCreatePerfEvent>(), 24);
    }

    #[test]
    fn finds_the_events_of_exited_spanprobes_only() {
        let events = "p:spanprobe_7_10/f0_2 /bin/a:0x0000000000001139\n\
                      r:spanprobe_7_11/f0_0 /bin/a:0x0000000000001139\n\
                      p:spanprobe_8_10/f0_0 /bin/a:0x0000000000001139\n\
                      p:uprobes/other /bin/a:0x10\n\
                      p:spanprobe_x/f1 /bin/a:0x10\n";
        // Another namespace's pid 10 may well run: only this one's are judged.
        assert_eq!(
            stale_events(events, 7, |pid| pid == 11),
            ["spanprobe_7_10/f0_2"]
        );
    }

    #[test]
    fn refuses_paths_tracefs_cannot_parse() {
        let site = Site {
            binary: Path::new("/tmp/a b"),
            offset: 0x10,
            ref_ctr_offset: 0,
            retprobe: false,
            cookie: 0,
        };
        let error = TracefsEvent::create(Path::new("/nonexistent"), "f0", &site).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
    }
}
