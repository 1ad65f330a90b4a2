//! Loading and attaching the eBPF programs: the only module that touches aya programs and maps.

use std::{
    fmt,
    num::NonZeroU32,
    path::PathBuf,
    time::{Duration, Instant},
};

use crate::{events::ring::Ring, kernel::task_storage};
use aya::{
    Ebpf, EbpfError, EbpfLoader,
    maps::{Array, HashMap, Map, MapData, MapError, PerCpuArray},
    programs::{
        ProgramError, RawTracePoint, UProbe,
        raw_trace_point::RawTracePointLink,
        uprobe::UProbeLink,
        uprobe::{UProbeAttachLocation, UProbeAttachPoint, UProbeScope},
    },
    sys::{UProbeMultiFeature, is_uprobe_multi_supported},
};
use spanprobe_common::{
    COUNTERS_MAP, CallEvent, CallStack, Counter, DEPTH_LIMIT_GLOBAL, EVENTS_MAP,
    FILTER_PIDS_GLOBAL, FUNCTIONS_MAP, FunctionCapture, GOROUTINE_PARENTS_GLOBAL,
    GOROUTINE_STACKS_MAP, KEEP_AT_RETURN_GLOBAL, PROCESS_TREES_GLOBAL, PROCESS_TREES_MAP,
    READS_AT_RETURN_GLOBAL, RETURN_ADDRESSES_GLOBAL, STACK_WINDOW_BYTES_GLOBAL, STARTS_GOROUTINE,
    StackKey, TARGET_PIDS_MAP, TASK_TGID_OFFSET_GLOBAL, THREAD_STACKS_MAP, TRACE_CONTEXTS_GLOBAL,
    WAKEUP_BYTES_GLOBAL, programs,
};
use spanprobe_config::Limits;

use crate::{
    events::{ktime::monotonic_ns, orphans},
    kernel::{
        btf::{self, BtfError, VMLINUX_BTF},
        process_tree,
        ref_ctr_link::{self, CountedProbe},
        tree_uprobe::{self, TreeUprobe},
    },
    plan::later::Room,
    plan::processes::ProcessTree,
    plan::{
        capture::{CapturePlan, process_trees},
        links::{AttachMode, COMMAND_TREE_PROBES, Link, Program, links, probe_count},
        probe::Probe,
    },
};

/// The eBPF object, built by `build.rs` and embedded so the binary stands alone.
static PROGRAMS: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/spanprobe"));

/// Ends the calls of exiting threads: (program, raw tracepoint).
const THREAD_EXIT: (&str, &str) = (programs::THREAD_EXIT, "sched_process_exit");
/// Adds the children of traced processes to the traced set.
const FORK: (&str, &str) = (programs::FORK, "sched_process_fork");
/// Tells userspace of programs started, for files of `executable:` targets found later.
const EXEC: (&str, &str) = (programs::EXEC, "sched_process_exec");

/// Which processes the probes report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessFilter {
    /// Every process that runs a probed function.
    All,
    /// Only processes added with [`Tracer::trace_process`], and those they fork (their
    /// children, grandchildren...).
    Selected,
}

/// Why the probes could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    #[error(
        "spanprobe needs CAP_BPF and CAP_PERFMON{}; missing {}",
        if *.mode == AttachMode::PerfEvent {
            ", and CAP_SYS_ADMIN to attach perf-event uprobes"
        } else {
            ""
        },
        .missing.join(", ")
    )]
    Capabilities {
        mode: AttachMode,
        missing: Vec<&'static str>,
    },
    #[error("--attach multi: {0}")]
    MultiUnsupported(String),
    #[error("--attach command: {0}")]
    CommandTree(&'static str),
    #[error(transparent)]
    Kernel(#[from] crate::kernel::features::MissingFeatures),
    #[error("cannot follow the traced command's child processes")]
    KernelBtf(#[from] BtfError),
    #[error(
        "cannot load the eBPF programs (spanprobe needs root, or CAP_BPF and CAP_PERFMON, and a \
         kernel with uprobes, ring buffers and BTF)"
    )]
    Load(#[source] Box<EbpfError>),
    #[error(
        "the kernel's verifier (Linux {kernel}) rejected spanprobe's eBPF program `{program}`. \
         This is a defect of spanprobe, not a missing permission: please report it with the \
         verifier's last lines{}:\n{log}",
        .saved.as_ref().map(|path| format!(" (its whole log is in {})", path.display())).unwrap_or_default()
    )]
    Rejected {
        program: &'static str,
        kernel: String,
        /// The last lines of the verifier's log: where it stopped, and why.
        log: String,
        /// Where the whole log was written, when it could be.
        saved: Option<PathBuf>,
    },
    #[error("cannot load eBPF program `{program}`")]
    Program {
        program: &'static str,
        #[source]
        source: Box<ProgramError>,
    },
    #[error(
        "cannot probe {count} more functions: the function table holds {capacity}, and is \
         full (each file found after start takes ids of its own): restart spanprobe to probe \
         it"
    )]
    FunctionTableFull { count: usize, capacity: u32 },
    #[error(
        "the functions of a file found after start need {what}, which the programs loaded at \
         start were built without: restart spanprobe to probe it"
    )]
    LoadedWithout { what: &'static str },
    #[error("eBPF map `{map}`")]
    Map {
        map: &'static str,
        #[source]
        source: Box<MapError>,
    },
    #[error("eBPF object has no {what} `{name}`")]
    Missing {
        what: &'static str,
        name: &'static str,
    },
    #[error("cannot attach the {kind} of {}: {functions}", binary.display())]
    Attach {
        kind: &'static str,
        binary: PathBuf,
        functions: Functions,
        #[source]
        source: Box<ProgramError>,
    },
    #[error("cannot attach the {kind} of {}: {functions}", binary.display())]
    AttachSyscall {
        kind: &'static str,
        binary: PathBuf,
        functions: Functions,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "USDT probes guarded by a semaphore ({functions}) need uprobe_multi links or a \
         command's own probes, which increment it: {reason}"
    )]
    SemaphoreWithoutMulti {
        functions: Functions,
        reason: String,
    },
    #[error("cannot read the task storage map `{map}`")]
    TaskStorage {
        map: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot map the ring buffer `{EVENTS_MAP}`")]
    Ring {
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read how many CPUs there are from {path}")]
    Cpus {
        path: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl BpfError {
    /// The eBPF object has no map `name`.
    fn missing_map(name: &'static str) -> Self {
        Self::Missing { what: "map", name }
    }

    /// `program` failed to load: when the verifier refused it, that is said plainly (see
    /// [`Self::rejected`]).
    fn load(program: &'static str, source: ProgramError) -> Self {
        if let ProgramError::LoadError {
            io_error,
            verifier_log,
        } = &source
            && let Some(rejected) = Self::rejected(
                program,
                io_error.raw_os_error(),
                &verifier_log.to_string(),
                crate::kernel::features::release(),
            )
        {
            return rejected;
        }
        Self::Program {
            program,
            source: Box::new(source),
        }
    }

    /// The verifier of kernel `release` refused `program` when the load failed with EACCES,
    /// EINVAL or E2BIG and left a log: said with the release and the log's last lines, the
    /// whole log written to a file, since the errno alone ("Permission denied") sends root
    /// users chasing capabilities. `None` for any other failure.
    fn rejected(
        program: &'static str,
        errno: Option<i32>,
        log: &str,
        release: String,
    ) -> Option<Self> {
        const LOG_LINES: usize = 12;
        if !matches!(errno, Some(libc::EACCES | libc::EINVAL | libc::E2BIG))
            || log.trim().is_empty()
        {
            return None;
        }
        let lines: Vec<&str> = log.trim_end().lines().collect();
        let tail = lines[lines.len().saturating_sub(LOG_LINES)..].join("\n");
        let path = std::env::temp_dir().join(format!("spanprobe-{program}.verifier.log"));
        Some(Self::Rejected {
            program,
            kernel: release,
            log: tail,
            saved: std::fs::write(&path, log).is_ok().then_some(path),
        })
    }
}

/// The functions of a link that failed to attach, as an error names them: the first few
/// symbols with their file offsets.
#[derive(Debug)]
pub struct Functions(Vec<(String, u64)>);

impl Functions {
    const SHOWN: usize = 3;

    fn of(link: &Link<'_>, functions: &[Probe]) -> Self {
        Self(
            link.functions
                .iter()
                .filter_map(|&id| functions.get(id as usize))
                .map(|f| (f.symbol.clone(), f.file_offset))
                .collect(),
        )
    }
}

impl fmt::Display for Functions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (symbol, offset)) in self.0.iter().take(Self::SHOWN).enumerate() {
            let separator = if i == 0 { "" } else { ", " };
            write!(f, "{separator}`{symbol}` at file offset {offset:#x}")?;
        }
        if let Some(more) = self.0.len().checked_sub(Self::SHOWN).filter(|&n| n > 0) {
            write!(f, " and {more} more")?;
        }
        Ok(())
    }
}

/// What loading tracing programs and attaching uprobe_multi links take; perf-event uprobes
/// need CAP_SYS_ADMIN as well.
const NEEDED_CAPABILITIES: [(&str, u32); 2] = [("CAP_BPF", 39), ("CAP_PERFMON", 38)];
const CAP_SYS_ADMIN: (&str, u32) = ("CAP_SYS_ADMIN", 21);

/// Says which of the capabilities `mode` needs this process lacks, before anything is loaded.
fn check_capabilities(mode: AttachMode) -> Result<(), BpfError> {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return Ok(());
    };
    let Some(effective) = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
    else {
        return Ok(());
    };
    let has = |bit: u32| effective & (1 << bit) != 0;
    let perf_event = (mode == AttachMode::PerfEvent).then_some(CAP_SYS_ADMIN);
    let missing: Vec<_> = NEEDED_CAPABILITIES
        .iter()
        .chain(perf_event.as_ref())
        .filter(|(_, bit)| !has(*bit))
        .map(|(name, _)| *name)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(BpfError::Capabilities { mode, missing })
    }
}

/// How to attach `probes` uprobes of `functions`: `requested`, or when `None`, with a command
/// and tracefs, in the command's processes only (for up to [`COMMAND_TREE_PROBES`] where the
/// kernel has uprobe_multi links, always where not); otherwise uprobe_multi links where the
/// kernel has them, perf events where not. What cannot work is refused here, before anything
/// is loaded: USDT sites guarded by a semaphore, which perf events set only through tracefs,
/// when perf events are asked for or are all the kernel has.
fn attach_mode(
    requested: Option<AttachMode>,
    functions: &[Probe],
    probes: usize,
    filter: ProcessFilter,
    tracefs: Option<&std::path::Path>,
) -> Result<AttachMode, BpfError> {
    let guarded: Vec<_> = functions
        .iter()
        .filter(|function| function.semaphore.is_some())
        .map(|function| (function.symbol.clone(), function.file_offset))
        .collect();
    let refuse_guarded = |reason: &str| BpfError::SemaphoreWithoutMulti {
        functions: Functions(guarded.clone()),
        reason: reason.to_owned(),
    };
    let multi_unsupported = || match is_uprobe_multi_supported(UProbeMultiFeature::LinkCreation) {
        Ok(true) => None,
        Ok(false) => Some("the kernel has no uprobe_multi links (Linux 6.6+)".to_owned()),
        Err(error) => Some(format!("probing for uprobe_multi links failed: {error}")),
    };
    match requested {
        Some(AttachMode::CommandTree) if filter == ProcessFilter::All => {
            return Err(BpfError::CommandTree(
                "there is no command to trace (after `--`)",
            ));
        }
        Some(AttachMode::CommandTree) if tracefs.is_none() => {
            return Err(BpfError::CommandTree(
                "tracefs is not mounted (at /sys/kernel/tracing), or its uprobe_events is not \
                 writable by this process",
            ));
        }
        Some(AttachMode::CommandTree) => return Ok(AttachMode::CommandTree),
        Some(AttachMode::PerfEvent) if !guarded.is_empty() => {
            return Err(refuse_guarded("`--attach perf-event` attaches perf events"));
        }
        Some(AttachMode::PerfEvent) => return Ok(AttachMode::PerfEvent),
        Some(AttachMode::Multi) => {
            return match multi_unsupported() {
                None => Ok(AttachMode::Multi),
                Some(reason) => Err(BpfError::MultiUnsupported(reason)),
            };
        }
        None => {}
    }
    let unsupported = multi_unsupported();
    if filter == ProcessFilter::Selected {
        match (tracefs, &unsupported) {
            (Some(_), Some(_)) => return Ok(AttachMode::CommandTree),
            (Some(_), None) if probes <= COMMAND_TREE_PROBES => {
                return Ok(AttachMode::CommandTree);
            }
            (Some(_), None) => tracing::info!(
                "{probes} probes: attaching them in every process by uprobe_multi links, which \
                 detach at once, not in the command's processes only (perf events, which \
                 detach one by one, ~0.1 s each; `--attach command` asks for them)"
            ),
            (None, _) => tracing::warn!(
                "tracefs is not mounted (at /sys/kernel/tracing), or its uprobe_events is not \
                 writable by this process: every process that runs a probed binary takes its \
                 probes' traps, not only the command's"
            ),
        }
    }
    match unsupported {
        None => Ok(AttachMode::Multi),
        Some(reason) if !guarded.is_empty() => Err(refuse_guarded(&reason)),
        Some(reason) => {
            tracing::warn!(
                "attaching perf-event uprobes instead of uprobe_multi links: {reason}; each is \
                 detached alone (~0.1 s per function and program), and attaching needs \
                 CAP_SYS_ADMIN"
            );
            Ok(AttachMode::PerfEvent)
        }
    }
}

/// The loaded programs with every probe attached. Dropping it detaches everything.
#[derive(Debug)]
pub struct Tracer {
    links: Links,
    mode: AttachMode,
    /// Uprobes the links placed: one per function and program.
    probes: usize,
    _tracepoints: Vec<RawTracePointLink>,
    ebpf: Ebpf,
    /// `limits.max_depth`: frames kept per stack.
    depth_limit: u32,
    /// What the programs were loaded for, which functions probed later must fit.
    built_for: Features,
    /// The programs loaded, by name.
    loaded: Vec<&'static str>,
}

/// What the programs are built for, fixed at load (read-only globals the verifier relies on,
/// and the function table's size): functions probed later must need no more.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Features {
    trace_contexts: bool,
    reads_at_return: bool,
    keep_at_return: bool,
    goroutine_parents: bool,
    return_addresses: bool,
    window_bytes: u32,
    trees: usize,
    capacity: u32,
}

impl Features {
    /// What `plans` need; the capacity is the caller's.
    fn of(plans: &[CapturePlan], trees: usize) -> Self {
        Self {
            // A handed-off trace is carried from caller to callee as a read context is.
            trace_contexts: plans
                .iter()
                .any(|plan| plan.reads_trace_context() || plan.serves_handoff()),
            reads_at_return: plans.iter().any(CapturePlan::reads_at_return),
            keep_at_return: plans.iter().any(CapturePlan::keeps_at_return),
            goroutine_parents: plans
                .iter()
                .any(|plan| plan.kernel.flags & STARTS_GOROUTINE != 0),
            return_addresses: plans.iter().any(|plan| plan.stack.is_some()),
            window_bytes: stack_window_bytes(plans),
            trees,
            capacity: 0,
        }
    }

    /// These, and whatever functions not known yet may need, when `room` says some are not.
    fn widened(self, room: Room) -> Self {
        let Some(window_bytes) = room.unknown else {
            return self;
        };
        Self {
            trace_contexts: true,
            reads_at_return: true,
            keep_at_return: true,
            goroutine_parents: true,
            return_addresses: true,
            window_bytes: self.window_bytes.max(match window_bytes {
                0 => 0,
                bytes => bytes.next_power_of_two(),
            }),
            ..self
        }
    }

    /// What `needed` asks for that these lack, if anything.
    fn lacking(&self, needed: &Features) -> Option<&'static str> {
        let lacks = |has: bool, needs: bool| needs && !has;
        [
            (
                lacks(self.trace_contexts, needed.trace_contexts),
                "trace contexts",
            ),
            (
                lacks(self.reads_at_return, needed.reads_at_return),
                "reads at return",
            ),
            (
                lacks(self.keep_at_return, needed.keep_at_return),
                "keep rules at return",
            ),
            (
                lacks(self.goroutine_parents, needed.goroutine_parents),
                "goroutine parents",
            ),
            (
                lacks(self.return_addresses, needed.return_addresses),
                "stacks",
            ),
            (
                needed.window_bytes > self.window_bytes,
                "larger stack windows",
            ),
            (needed.trees > self.trees, "more pid: or container: trees"),
        ]
        .into_iter()
        .find_map(|(lacking, what)| lacking.then_some(what))
    }
}

/// Attached links in the order they were attached, detached in reverse: entries before
/// returns, so that a call in progress while the entries go still gets its return.
#[derive(Debug, Default)]
struct Links(Vec<(Program, Attached)>);

/// One attached link; detached when dropped.
#[derive(Debug)]
#[expect(dead_code, reason = "held, never read: dropping a link detaches it")]
enum Attached {
    Aya(UProbeLink),
    /// A uprobe_multi link whose probes carry reference counters (USDT semaphores).
    Counted(std::os::fd::OwnedFd),
    /// Probes in the command's processes only ([`AttachMode::CommandTree`]).
    Tree(Vec<TreeUprobe>),
}

impl Drop for Links {
    fn drop(&mut self) {
        let mut links = std::mem::take(&mut self.0);
        while let Some((program, _)) = links.last() {
            let program = *program;
            let first = links
                .iter()
                .rposition(|(p, _)| *p != program)
                .map_or(0, |i| i + 1);
            drop_in_parallel(links.split_off(first));
        }
    }
}

/// Detaches links of one program at once: the kernel waits a grace period per perf-event
/// uprobe it removes (~0.1 s here), and concurrent removals overlap partly (24 probes: 1.3 s
/// one by one, 1.1 s in parallel). A uprobe_multi link waits once for all its functions.
fn drop_in_parallel(links: Vec<(Program, Attached)>) {
    const THREADS: usize = 64;
    if links.len() <= 1 {
        return;
    }
    let per_thread = links.len().div_ceil(THREADS);
    let mut links = links.into_iter();
    std::thread::scope(|scope| {
        loop {
            let chunk: Vec<_> = links.by_ref().take(per_thread).collect();
            if chunk.is_empty() {
                break;
            }
            scope.spawn(move || drop(chunk));
        }
    });
}

/// The programs a config needs, loaded into the kernel (so verified) and not yet attached: what
/// `check --load` stops at, and what [`Loaded::attach`] turns into a [`Tracer`].
#[derive(Debug)]
pub struct Loaded {
    ebpf: Ebpf,
    mode: AttachMode,
    /// Whether the fork program is needed: a command's processes, or `pid:` trees.
    follow_forks: bool,
    /// Whether the exec program is needed: files of `executable:` targets found later.
    watch_execs: bool,
    built_for: Features,
    /// The `pid:` and `container:` trees, by tree number minus one.
    trees: Vec<ProcessTree>,
    depth_limit: u32,
    programs: Vec<LoadedProgram>,
    /// Where tracefs is, with [`AttachMode::CommandTree`].
    tracefs: Option<PathBuf>,
}

/// One program loaded, and what verifying it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedProgram {
    pub name: &'static str,
    pub took: Duration,
    /// Instructions the verifier processed (Linux 5.16+), of its limit of a million.
    pub verified: Option<u32>,
}

/// The room every stack window message has for stack bytes: the largest window a function
/// copies, to a power of two (the kernel side masks its copies by it); 0 when none does.
fn stack_window_bytes(plans: &[CapturePlan]) -> u32 {
    plans
        .iter()
        .map(|plan| plan.kernel.window_bytes)
        .max()
        .filter(|&bytes| bytes > 0)
        .map_or(0, u32::next_power_of_two)
}

impl Loaded {
    /// Loads the programs that `functions` need into the kernel, for the `requested` mode or
    /// the best this kernel has (see [`attach_mode`]), with the thread-exit and, for
    /// [`ProcessFilter::Selected`], the fork tracepoint programs; attaches nothing.
    pub fn load(
        functions: &[Probe],
        plans: &[CapturePlan],
        filter: ProcessFilter,
        limits: &Limits,
        requested: Option<AttachMode>,
        room: Room,
    ) -> Result<Self, BpfError> {
        // What every mode needs first: probing the kernel for uprobe_multi takes CAP_BPF.
        check_capabilities(AttachMode::Multi)?;
        crate::kernel::features::check()?;
        let probes = probe_count(&links(functions, plans, AttachMode::PerfEvent));
        let tracefs = tree_uprobe::tracefs();
        let mode = attach_mode(requested, functions, probes, filter, tracefs.as_deref())?;
        // Kept only for what attaching needs.
        let tracefs = tracefs.filter(|_| mode == AttachMode::CommandTree);
        check_capabilities(mode)?;
        let depth_limit = limits.max_depth;
        let ring_bytes = limits.ring_buffer_size;
        // Each CPU wakes the reader once it has written its share of a quarter of the ring; the
        // reader drains on a timer before.
        let cpus =
            aya::util::nr_cpus().map_err(|(path, source)| BpfError::Cpus { path, source })?;
        let wakeup_bytes = u64::from(ring_bytes / 4 / cpus.get()).max(1);
        let filter_pids = u8::from(filter == ProcessFilter::Selected);
        let trees = process_trees(functions);
        let trees_used = u8::from(!trees.is_empty());
        // Traced processes' children are traced too (a command's, a `pid:` target's): the
        // fork program reads the child's tgid where the kernel's BTF says it is.
        let follow_forks = filter == ProcessFilter::Selected || !trees.is_empty();
        let tgid_offset = if follow_forks {
            btf::member_offset_in(VMLINUX_BTF.as_ref(), "task_struct", "tgid")?
        } else {
            0
        };
        let mut built_for = Features::of(plans, trees.len()).widened(room);
        let trace_contexts = u8::from(built_for.trace_contexts);
        let reads_at_return = u8::from(built_for.reads_at_return);
        let keep_at_return = u8::from(built_for.keep_at_return);
        let goroutine_parents = u8::from(built_for.goroutine_parents);
        let return_addresses = u8::from(built_for.return_addresses);
        let window_bytes = built_for.window_bytes;
        // Room for the functions of files found later, when some are looked for.
        let function_count = u32::try_from(functions.len().max(1))
            .unwrap_or(u32::MAX)
            .saturating_add(room.functions);
        built_for.capacity = function_count;
        let watch_execs = room.functions > 0;
        // One bit per possible pid.
        let pid_words = pid_max().div_ceil(64);
        let mut ebpf = EbpfLoader::new()
            .override_global(FILTER_PIDS_GLOBAL, &filter_pids, true)
            .override_global(DEPTH_LIMIT_GLOBAL, &depth_limit, true)
            .override_global(TRACE_CONTEXTS_GLOBAL, &trace_contexts, true)
            .override_global(GOROUTINE_PARENTS_GLOBAL, &goroutine_parents, true)
            .override_global(RETURN_ADDRESSES_GLOBAL, &return_addresses, true)
            .override_global(WAKEUP_BYTES_GLOBAL, &wakeup_bytes, true)
            .override_global(TASK_TGID_OFFSET_GLOBAL, &tgid_offset, true)
            .override_global(PROCESS_TREES_GLOBAL, &trees_used, true)
            .override_global(READS_AT_RETURN_GLOBAL, &reads_at_return, true)
            .override_global(KEEP_AT_RETURN_GLOBAL, &keep_at_return, true)
            .override_global(STACK_WINDOW_BYTES_GLOBAL, &window_bytes, true)
            .map_max_entries(EVENTS_MAP, ring_bytes)
            .map_max_entries(FUNCTIONS_MAP, function_count)
            .map_max_entries(TARGET_PIDS_MAP, pid_words)
            // The threads' call stacks are task storage, which aya has no type for; only the
            // kernel side uses them.
            .allow_unsupported_maps()
            .load(PROGRAMS)
            .map_err(|e| BpfError::Load(Box::new(e)))?;
        set_captures(&mut ebpf, plans, 0)?;
        let mut programs = Vec::new();
        for tracepoint in tracepoints(follow_forks, watch_execs) {
            let started = Instant::now();
            let program = raw_tracepoint_mut(&mut ebpf, tracepoint.0)?;
            program
                .load()
                .map_err(|source| BpfError::load(tracepoint.0, source))?;
            programs.push(LoadedProgram {
                name: tracepoint.0,
                took: started.elapsed(),
                verified: program
                    .info()
                    .ok()
                    .and_then(|info| info.verified_instruction_count()),
            });
        }
        // Verifying a program is most of the start-up time (~0.1 s each here): load only
        // those that serve some function (most configs read no argument memory).
        for program in Program::ALL {
            let serves_some = functions
                .iter()
                .zip(plans)
                .any(|(function, plan)| program.serves(function, plan));
            if serves_some {
                let name = program.name(mode);
                let started = Instant::now();
                let uprobe = uprobe_mut(&mut ebpf, name)?;
                uprobe
                    .load()
                    .map_err(|source| BpfError::load(name, source))?;
                programs.push(LoadedProgram {
                    name,
                    took: started.elapsed(),
                    verified: uprobe
                        .info()
                        .ok()
                        .and_then(|info| info.verified_instruction_count()),
                });
            }
        }
        Ok(Self {
            ebpf,
            mode,
            follow_forks,
            watch_execs,
            built_for,
            trees,
            depth_limit,
            programs,
            tracefs,
        })
    }

    /// Puts each `pid:` tree's processes, as `/proc` shows them now, in the trees map.
    fn seed_trees(&mut self) -> Result<(), BpfError> {
        if self.trees.is_empty() {
            return Ok(());
        }
        let map = self
            .ebpf
            .map_mut(PROCESS_TREES_MAP)
            .ok_or(BpfError::missing_map(PROCESS_TREES_MAP))?;
        let map_error = |source| BpfError::Map {
            map: PROCESS_TREES_MAP,
            source: Box::new(source),
        };
        let mut trees: aya::maps::HashMap<_, u32, u64> =
            aya::maps::HashMap::try_from(map).map_err(map_error)?;
        for (t, tree) in self.trees.iter().enumerate() {
            for root in tree.roots() {
                for pid in process_tree::with_descendants(root.get()) {
                    let member = trees.get(&pid, 0).unwrap_or(0) | (1u64 << t);
                    trees.insert(&pid, &member, 0).map_err(map_error)?;
                }
            }
        }
        Ok(())
    }

    /// The programs loaded, in the order they were.
    pub fn programs(&self) -> &[LoadedProgram] {
        &self.programs
    }

    /// How the uprobes will be attached.
    pub fn mode(&self) -> AttachMode {
        self.mode
    }

    /// Attaches every function's probes; the index of a function in `functions` is its id in
    /// events. With [`AttachMode::CommandTree`] they go in `command`'s processes only: its
    /// first, not yet started (and then every process it starts). All or nothing: on error,
    /// whatever was attached is detached again (the half-built tracer is dropped).
    pub fn attach(
        mut self,
        functions: &[Probe],
        plans: &[CapturePlan],
        command: Option<NonZeroU32>,
    ) -> Result<Tracer, BpfError> {
        let tree = match (command, self.tracefs.take()) {
            (Some(root), Some(tracefs)) => Some((root, tracefs)),
            _ => None,
        };
        if self.mode == AttachMode::CommandTree && tree.is_none() {
            // Loaded for perf events, and no tree to place them in: in every process.
            self.mode = AttachMode::PerfEvent;
        }
        if let Some((_, tracefs)) = &tree {
            match tree_uprobe::remove_stale(tracefs) {
                Ok(0) => {}
                Ok(removed) => tracing::debug!(removed, "removed uprobe events of exited runs"),
                Err(error) => tracing::debug!("cannot look for stale uprobe events: {error}"),
            }
        }
        let mode = self.mode;
        // Before any uprobe: a thread that exits mid-call must never be missed, nor a child
        // forked by a traced process.
        let tracepoints = tracepoints(self.follow_forks, self.watch_execs)
            .map(|tracepoint| attach_raw_tracepoint(&mut self.ebpf, tracepoint))
            .collect::<Result<Vec<_>, _>>()?;
        // Once the fork program runs, so that a process forked meanwhile is in `/proc` or
        // has its parent in the map; twice, for one forked while the map was written.
        for _ in 0..2 {
            self.seed_trees()?;
        }
        let links = links(functions, plans, mode);
        let probes = probe_count(&links);
        let started = Instant::now();
        let mut attached = Links::default();
        for link in &links {
            let uprobe = uprobe_mut(&mut self.ebpf, link.program.name(mode))?;
            let link_attached = match &tree {
                Some((root, tracefs)) => attach_in_tree(uprobe, link, functions, tracefs, *root)?,
                None => attach_anywhere(uprobe, link, functions)?,
            };
            attached.0.push((link.program, link_attached));
        }
        tracing::debug!(
            links = links.len(),
            probes,
            elapsed = ?started.elapsed(),
            "attached {mode}"
        );
        Ok(Tracer {
            links: attached,
            mode,
            probes,
            _tracepoints: tracepoints,
            ebpf: self.ebpf,
            depth_limit: self.depth_limit,
            built_for: self.built_for,
            loaded: self.programs.iter().map(|program| program.name).collect(),
        })
    }
}

/// The raw tracepoint programs needed, with forks followed or not, and programs started
/// watched or not: (program, tracepoint).
fn tracepoints(
    follow_forks: bool,
    watch_execs: bool,
) -> impl Iterator<Item = (&'static str, &'static str)> {
    let fork = follow_forks.then_some(FORK);
    let exec = watch_execs.then_some(EXEC);
    std::iter::once(THREAD_EXIT).chain(fork).chain(exec)
}

impl Tracer {
    /// Probes `functions` from id `first` on, the functions of files found after start (of
    /// every function so far, whose captures are `plans`), in every process that runs them.
    /// Returns the uprobes placed. All or nothing: what is attached of them before an error
    /// is detached again.
    pub fn grow(
        &mut self,
        functions: &[Probe],
        plans: &[CapturePlan],
        first: usize,
    ) -> Result<usize, BpfError> {
        let (Some(new), Some(new_plans)) = (functions.get(first..), plans.get(first..)) else {
            return Ok(0);
        };
        let capacity = self.built_for.capacity;
        if u32::try_from(functions.len()).map_or(true, |count| count > capacity) {
            return Err(BpfError::FunctionTableFull {
                count: functions.len() - first,
                capacity,
            });
        }
        let needed = Features::of(new_plans, process_trees(functions).len());
        if let Some(what) = self.built_for.lacking(&needed) {
            return Err(BpfError::LoadedWithout { what });
        }
        let mode = self.mode;
        for program in Program::ALL {
            let name = program.name(mode);
            let serves_some = new
                .iter()
                .zip(new_plans)
                .any(|(function, plan)| program.serves(function, plan));
            if serves_some && !self.loaded.contains(&name) {
                uprobe_mut(&mut self.ebpf, name)?
                    .load()
                    .map_err(|source| BpfError::load(name, source))?;
                self.loaded.push(name);
            }
        }
        set_captures(&mut self.ebpf, plans, first)?;
        // Links of the new functions alone, however their paths compare with earlier ones'.
        let offset = u32::try_from(first).unwrap_or(u32::MAX);
        let mut links = links(new, new_plans, mode);
        for link in &mut links {
            for id in &mut link.functions {
                *id += offset;
            }
        }
        // Returns before entries, as at start; on an error, those attached so far are detached
        // as `Links` detach, entries first.
        let mut attached = Links::default();
        for link in &links {
            let uprobe = uprobe_mut(&mut self.ebpf, link.program.name(mode))?;
            attached
                .0
                .push((link.program, attach_anywhere(uprobe, link, functions)?));
        }
        let probes = probe_count(&links);
        self.links.0.append(&mut attached.0);
        self.probes += probes;
        Ok(probes)
    }

    /// Uprobes attached: one per function and program (entry and return count separately).
    pub fn attached(&self) -> usize {
        self.probes
    }

    /// Links (or, with [`AttachMode::PerfEvent`], perf events) that hold the uprobes.
    pub fn links(&self) -> usize {
        self.links.0.len()
    }

    /// How the uprobes are attached.
    pub fn mode(&self) -> AttachMode {
        self.mode
    }

    /// Adds a process to the traced set (for [`ProcessFilter::Selected`]).
    pub fn trace_process(&mut self, pid: NonZeroU32) -> Result<(), BpfError> {
        let map = self
            .ebpf
            .map_mut(TARGET_PIDS_MAP)
            .ok_or(BpfError::missing_map(TARGET_PIDS_MAP))?;
        let map_error = |source| BpfError::Map {
            map: TARGET_PIDS_MAP,
            source: Box::new(source),
        };
        // A bitmap: bit `pid % 64` of element `pid / 64` (see the eBPF side).
        let mut pids: Array<_, u64> = Array::try_from(map).map_err(map_error)?;
        let (index, bit) = (pid.get() / 64, 1u64 << (pid.get() % 64));
        let word = pids.get(&index, 0).map_err(map_error)?;
        pids.set(index, &(word | bit), 0).map_err(map_error)
    }

    /// Takes the ring buffer completed calls arrive in (once).
    pub fn take_events(&mut self) -> Result<Ring, BpfError> {
        let map = self
            .ebpf
            .take_map(EVENTS_MAP)
            .ok_or(BpfError::missing_map(EVENTS_MAP))?;
        let Map::RingBuf(map) = map else {
            return Err(BpfError::Missing {
                what: "ring buffer",
                name: EVENTS_MAP,
            });
        };
        Ring::new(map).map_err(|source| BpfError::Ring { source })
    }

    /// Detaches every probe (keeping the maps readable): after it returns no call can send an
    /// event. Blocks: the kernel waits for a grace period per link.
    pub fn detach(&mut self) {
        drop(std::mem::take(&mut self.links));
    }

    /// Calls entered and not returned, over all traced threads and goroutines (read after
    /// [`Self::detach`], these will never be reported).
    pub fn calls_in_progress(&mut self) -> Result<u64, BpfError> {
        let map = self
            .ebpf
            .map(THREAD_STACKS_MAP)
            .ok_or(BpfError::missing_map(THREAD_STACKS_MAP))?;
        let Map::Unsupported(map) = map else {
            return Err(BpfError::Missing {
                what: "task storage map",
                name: THREAD_STACKS_MAP,
            });
        };
        let threads: u64 = task_storage::values::<CallStack>(map)
            .map_err(|source| BpfError::TaskStorage {
                map: THREAD_STACKS_MAP,
                source,
            })?
            .iter()
            .map(|stack| u64::from(stack.depth))
            .sum();
        let goroutines: u64 = self
            .stacks()?
            .iter()
            .filter_map(Result::ok)
            .map(|(_, stack)| u64::from(stack.depth))
            .sum();
        Ok(threads + goroutines)
    }

    /// Ends the calls open on the stacks of goroutines whose process no longer runs
    /// (`process_runs` tells), which the kernel cannot end (see [`orphans`]): their events,
    /// ended now, and the stacks freed.
    pub fn end_goroutines_of_exited_processes(
        &mut self,
        process_runs: impl Fn(u32) -> bool,
    ) -> Result<Vec<CallEvent>, BpfError> {
        let depth_limit = self.depth_limit;
        let mut stacks = self.stacks()?;
        let now = monotonic_ns();
        let orphaned: Vec<(StackKey, CallStack)> = stacks
            .iter()
            .filter_map(Result::ok)
            .filter(|(key, _)| key.is_goroutine() && !process_runs(key.pid))
            .collect();
        let mut events = Vec::new();
        for (key, stack) in orphaned {
            events.extend(orphans::ended_calls(&stack, depth_limit, now));
            // Gone already if the goroutine ended meanwhile: nothing to free.
            let _ = stacks.remove(&key);
        }
        Ok(events)
    }

    /// The call stacks of goroutines, as the kernel side keeps them.
    fn stacks(&mut self) -> Result<HashMap<&mut MapData, StackKey, CallStack>, BpfError> {
        let map = self
            .ebpf
            .map_mut(GOROUTINE_STACKS_MAP)
            .ok_or(BpfError::missing_map(GOROUTINE_STACKS_MAP))?;
        HashMap::try_from(map).map_err(|source| BpfError::Map {
            map: GOROUTINE_STACKS_MAP,
            source: Box::new(source),
        })
    }

    /// The kernel side's loss and error counters, summed over CPUs.
    pub fn counters(&self) -> Result<KernelCounters, BpfError> {
        let map = self
            .ebpf
            .map(COUNTERS_MAP)
            .ok_or(BpfError::missing_map(COUNTERS_MAP))?;
        let counters: PerCpuArray<_, u64> =
            PerCpuArray::try_from(map).map_err(|source| BpfError::Map {
                map: COUNTERS_MAP,
                source: Box::new(source),
            })?;
        let mut totals = [0u64; Counter::COUNT as usize];
        for (slot, total) in totals.iter_mut().enumerate() {
            let per_cpu = counters
                .get(&(slot as u32), 0)
                .map_err(|source| BpfError::Map {
                    map: COUNTERS_MAP,
                    source: Box::new(source),
                })?;
            *total = per_cpu.iter().sum();
        }
        Ok(KernelCounters(totals))
    }
}

/// The kernel's `pid_max`: pids are below it. At most 2^22 (`PID_MAX_LIMIT` on 64-bit), which
/// is also the fallback.
fn pid_max() -> u32 {
    const PID_MAX_LIMIT: u32 = 1 << 22;
    std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|max| max.trim().parse().ok())
        .map_or(PID_MAX_LIMIT, |max: u32| max.min(PID_MAX_LIMIT))
}

/// Attaches the loaded `program` to the raw tracepoint `tracepoint`.
fn attach_raw_tracepoint(
    ebpf: &mut Ebpf,
    (program_name, tracepoint): (&'static str, &str),
) -> Result<RawTracePointLink, BpfError> {
    let program = raw_tracepoint_mut(ebpf, program_name)?;
    program
        .attach(tracepoint)
        .and_then(|id| program.take_link(id))
        .map_err(|source| BpfError::Program {
            program: program_name,
            source: Box::new(source),
        })
}

fn raw_tracepoint_mut<'a>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut RawTracePoint, BpfError> {
    ebpf.program_mut(name)
        .ok_or(BpfError::Missing {
            what: "program",
            name,
        })?
        .try_into()
        .map_err(|source| BpfError::Program {
            program: name,
            source: Box::new(source),
        })
}

/// Tells the kernel side what each function captures, before any probe can fire.
/// Writes each function's captures at its id: `plans` from id `first` on.
fn set_captures(ebpf: &mut Ebpf, plans: &[CapturePlan], first: usize) -> Result<(), BpfError> {
    let map_error = |source| BpfError::Map {
        map: FUNCTIONS_MAP,
        source: Box::new(source),
    };
    let map = ebpf
        .map_mut(FUNCTIONS_MAP)
        .ok_or(BpfError::missing_map(FUNCTIONS_MAP))?;
    let mut captures: Array<_, FunctionCapture> = Array::try_from(map).map_err(map_error)?;
    for (id, plan) in plans.iter().enumerate().skip(first) {
        captures
            .set(id as u32, &plan.kernel, 0)
            .map_err(map_error)?;
    }
    Ok(())
}

/// Attaches `uprobe` at the functions of `link` in every process that runs its binary: with
/// reference counters for the USDT semaphores among them (perf-event uprobes with semaphores
/// were refused at load).
fn attach_anywhere(
    uprobe: &mut UProbe,
    link: &Link<'_>,
    functions: &[Probe],
) -> Result<Attached, BpfError> {
    let counted = link.functions.iter().any(|&id| {
        functions
            .get(id as usize)
            .is_some_and(|f| f.semaphore.is_some())
    });
    if counted {
        attach_counted(uprobe, link, functions)
    } else {
        Ok(Attached::Aya(attach_link(uprobe, link, functions)?))
    }
}

/// Attaches `uprobe` at the functions of `link`, each with its id as the cookie.
fn attach_link(
    uprobe: &mut UProbe,
    link: &Link<'_>,
    functions: &[Probe],
) -> Result<UProbeLink, BpfError> {
    let points = link.functions.iter().filter_map(|&id| {
        let function = functions.get(id as usize)?;
        Some(UProbeAttachPoint {
            location: UProbeAttachLocation::AbsoluteOffset(function.file_offset),
            cookie: Some(u64::from(id)),
        })
    });
    uprobe
        .attach(points, link.binary, UProbeScope::AllProcesses)
        .and_then(|id| uprobe.take_link(id))
        .map_err(|source| BpfError::Attach {
            kind: link.program.kind(),
            binary: link.binary.to_path_buf(),
            functions: Functions::of(link, functions),
            source: Box::new(source),
        })
}

/// Attaches `uprobe` at the functions of `link` through a uprobe_multi link whose probes
/// increment their USDT semaphores (see [`ref_ctr_link`]).
fn attach_counted(
    uprobe: &mut UProbe,
    link: &Link<'_>,
    functions: &[Probe],
) -> Result<Attached, BpfError> {
    let probes: Vec<CountedProbe> = link
        .functions
        .iter()
        .filter_map(|&id| {
            let function = functions.get(id as usize)?;
            Some(CountedProbe {
                offset: function.file_offset,
                cookie: u64::from(id),
                ref_ctr_offset: function.semaphore.unwrap_or(0),
            })
        })
        .collect();
    let program = program_fd(uprobe, link, functions)?;
    let retprobe = link.program == Program::Return;
    ref_ctr_link::attach(program, link.binary, &probes, retprobe)
        .map(Attached::Counted)
        .map_err(|source| syscall_error(link, functions, source))
}

/// Attaches `uprobe` at the functions of `link` (one per perf-event link) in the tree of
/// `root` (see [`tree_uprobe`]).
fn attach_in_tree(
    uprobe: &mut UProbe,
    link: &Link<'_>,
    functions: &[Probe],
    tracefs: &std::path::Path,
    root: NonZeroU32,
) -> Result<Attached, BpfError> {
    let program = program_fd(uprobe, link, functions)?;
    let mut probes = Vec::with_capacity(link.functions.len());
    for &id in &link.functions {
        let Some(function) = functions.get(id as usize) else {
            continue;
        };
        let site = tree_uprobe::Site {
            binary: link.binary,
            offset: function.file_offset,
            ref_ctr_offset: function.semaphore.unwrap_or(0),
            retprobe: link.program == Program::Return,
            cookie: u64::from(id),
        };
        // Unique in this process: a function has one probe per program.
        let name = format!("f{id}_{}", link.program as u8);
        let probe = TreeUprobe::attach(tracefs, &name, program, site, root)
            .map_err(|source| syscall_error(link, functions, source))?;
        probes.push(probe);
    }
    Ok(Attached::Tree(probes))
}

fn program_fd<'a>(
    uprobe: &'a UProbe,
    link: &Link<'_>,
    functions: &[Probe],
) -> Result<std::os::fd::BorrowedFd<'a>, BpfError> {
    uprobe
        .fd()
        .map(std::os::fd::AsFd::as_fd)
        .map_err(|source| BpfError::Attach {
            kind: link.program.kind(),
            binary: link.binary.to_path_buf(),
            functions: Functions::of(link, functions),
            source: Box::new(source),
        })
}

fn syscall_error(link: &Link<'_>, functions: &[Probe], source: std::io::Error) -> BpfError {
    BpfError::AttachSyscall {
        kind: link.program.kind(),
        binary: link.binary.to_path_buf(),
        functions: Functions::of(link, functions),
        source,
    }
}

fn uprobe_mut<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut UProbe, BpfError> {
    ebpf.program_mut(name)
        .ok_or(BpfError::Missing {
            what: "program",
            name,
        })?
        .try_into()
        .map_err(|source| BpfError::Program {
            program: name,
            source: Box::new(source),
        })
}

/// Totals of the kernel-side counters, indexed by [`Counter`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelCounters(pub [u64; Counter::COUNT as usize]);

impl KernelCounters {
    pub fn get(&self, counter: Counter) -> u64 {
        self.0[counter as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names the two sides share are those of the object's programs, maps and globals, and
    /// every program of the object is named: a program renamed on one side fails here, not at
    /// a user's first `run`.
    #[test]
    fn the_objects_names_are_the_shared_ones() {
        use object::{Object as _, ObjectSection as _, ObjectSymbol as _};
        // What the programs' sections start with: `uprobe.multi/...`, `uretprobe/...`,
        // `raw_tp/...`.
        const PROGRAM_SECTIONS: [&str; 3] = ["uprobe", "uretprobe", "raw_tp"];
        let file = object::File::parse(PROGRAMS).expect("the embedded object parses");
        let symbols: Vec<(String, String)> = file
            .symbols()
            .filter_map(|symbol| {
                let section = file.section_by_index(symbol.section_index()?).ok()?;
                Some((
                    symbol.name().ok()?.to_owned(),
                    section.name().ok()?.to_owned(),
                ))
            })
            .collect();
        let section_of = |name: &str| {
            symbols
                .iter()
                .find(|(symbol, _)| symbol == name)
                .map(|(_, section)| section.as_str())
        };
        for program in programs::ALL {
            let section = section_of(program).unwrap_or_else(|| panic!("no program {program}"));
            assert!(
                PROGRAM_SECTIONS
                    .iter()
                    .any(|kind| section.starts_with(kind)),
                "{program} is in {section}"
            );
        }
        let in_object: Vec<&str> = symbols
            .iter()
            .filter(|(_, section)| {
                PROGRAM_SECTIONS
                    .iter()
                    .any(|kind| section.starts_with(kind))
            })
            .map(|(symbol, _)| symbol.as_str())
            .filter(|symbol| symbol.starts_with("spanprobe_"))
            .collect();
        for program in &in_object {
            assert!(
                programs::ALL.contains(program),
                "{program} has no name in common"
            );
        }
        for map in spanprobe_common::MAPS {
            let section = section_of(map).unwrap_or_else(|| panic!("no map {map}"));
            assert!(
                section == "maps" || section == ".maps",
                "{map} is in {section}"
            );
        }
        for global in spanprobe_common::GLOBALS {
            let section = section_of(global).unwrap_or_else(|| panic!("no global {global}"));
            assert!(
                section.starts_with(".rodata")
                    || section.starts_with(".data")
                    || section.starts_with(".bss"),
                "{global} is in {section}"
            );
        }
    }

    #[test]
    fn a_verifier_refusal_is_said_as_one_with_the_logs_last_lines() {
        let log: String = (1..=20).map(|n| format!("line {n}\n")).collect();
        let rejected = BpfError::rejected(
            "spanprobe_test_entry",
            Some(libc::EACCES),
            &log,
            "6.1.0-57-cloud-amd64".to_owned(),
        )
        .expect("a refusal");
        let path = std::env::temp_dir().join("spanprobe-spanprobe_test_entry.verifier.log");
        let last: String = (9..=20).map(|n| format!("\nline {n}")).collect();
        assert_eq!(
            rejected.to_string(),
            format!(
                "the kernel's verifier (Linux 6.1.0-57-cloud-amd64) rejected spanprobe's eBPF \
                 program `spanprobe_test_entry`. This is a defect of spanprobe, not a missing \
                 permission: please report it with the verifier's last lines (its whole log is \
                 in {}):{last}",
                path.display()
            )
        );
        assert_eq!(std::fs::read_to_string(&path).expect("the log saved"), log);
        std::fs::remove_file(path).expect("removed");
    }

    #[test]
    fn other_load_failures_are_not_called_refusals() {
        let log = "processed 10 insns\n";
        // EPERM: a missing capability; no log: nothing the verifier said.
        for (errno, log) in [(Some(libc::EPERM), log), (Some(libc::EACCES), " \n")] {
            let release = "6.12.118+deb12-cloud-amd64".to_owned();
            assert!(BpfError::rejected("spanprobe_entry", errno, log, release).is_none());
        }
        for errno in [libc::EINVAL, libc::E2BIG] {
            let release = "6.12.118+deb12-cloud-amd64".to_owned();
            assert!(BpfError::rejected("spanprobe_other", Some(errno), log, release).is_some());
        }
        std::fs::remove_file(std::env::temp_dir().join("spanprobe-spanprobe_other.verifier.log"))
            .expect("removed");
    }
}
