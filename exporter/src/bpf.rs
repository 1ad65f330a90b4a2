//! Loading and attaching the eBPF programs: the only module that touches aya programs and maps.

use std::{num::NonZeroU32, path::PathBuf};

use aya::{
    Ebpf, EbpfError, EbpfLoader,
    maps::{Array, HashMap, MapData, MapError, PerCpuArray, RingBuf},
    programs::{
        ProgramError, RawTracePoint, UProbe,
        raw_trace_point::RawTracePointLink,
        uprobe::UProbeLink,
        uprobe::{UProbeAttachLocation, UProbeAttachPoint, UProbeScope},
    },
};
use spanprobe_common::{
    COUNTERS_MAP, Counter, DEPTH_LIMIT_GLOBAL, EVENTS_MAP, FILTER_PIDS_GLOBAL, FUNCTIONS_MAP,
    FunctionCapture, MemoryKind, TARGET_PIDS_MAP, THREADS_MAP, ThreadStack, WAKEUP_BYTES_GLOBAL,
};

use spanprobe_config::Limits;

use crate::{
    capture::{kernel_spec, plan},
    resolve::ProbedFunction,
};

/// The eBPF object, built by `build.rs` and embedded so the binary stands alone.
static PROGRAMS: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/spanprobe"));

const ENTRY_PROGRAM: &str = "spanprobe_entry";
/// The entry program for functions that read memory their arguments point to (it may fault
/// pages in).
const ENTRY_SLEEPABLE_PROGRAM: &str = "spanprobe_entry_sleepable";
const RETURN_PROGRAM: &str = "spanprobe_return";
/// Ends the calls of exiting threads.
const THREAD_EXIT_PROGRAM: &str = "spanprobe_thread_exit";
const THREAD_EXIT_TRACEPOINT: &str = "sched_process_exit";

/// Which functions a program serves.
#[derive(Debug, Clone, Copy)]
enum Serves {
    /// Entry programs: those reading memory that arguments point to (sleepable) or not.
    ReadingMemory(bool),
    /// The return program: all but entry-only functions.
    Returning,
}

impl Serves {
    fn serves(self, function: &ProbedFunction) -> bool {
        match self {
            Self::ReadingMemory(memory) => memory == reads_memory(function),
            Self::Returning => !function.entry_only,
        }
    }
}

/// Whether `function` reads memory its arguments point to, which may have to be faulted in (by
/// the sleepable entry program, whose every run costs more). A stack capture needs no faults:
/// the frames it walks are in use, so resident.
fn reads_memory(function: &ProbedFunction) -> bool {
    plan(&function.spec, function.stack_frames)
        .0
        .args
        .iter()
        .any(|arg| arg.memory != MemoryKind::None as u8)
}

/// Which processes the probes report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessFilter {
    /// Every process that runs a probed function.
    All,
    /// Only processes added with [`Tracer::trace_process`].
    Selected,
}

/// Why the probes could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    #[error(
        "spanprobe needs CAP_BPF and CAP_PERFMON to load its programs, and CAP_SYS_ADMIN to \
         attach uprobes (perf-event uprobes require it on this kernel); missing {}",
        .0.join(", ")
    )]
    Capabilities(Vec<&'static str>),
    #[error(transparent)]
    Kernel(#[from] crate::kernel::MissingFeatures),
    #[error(
        "cannot load the eBPF programs (spanprobe needs root, or CAP_BPF and CAP_PERFMON, and a \
         kernel with uprobes, ring buffers and BTF)"
    )]
    Load(#[source] Box<EbpfError>),
    #[error("cannot load eBPF program `{program}`")]
    Program {
        program: &'static str,
        #[source]
        source: Box<ProgramError>,
    },
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
    #[error("cannot attach {kind} to {}: `{symbol}` at file offset {offset:#x}", binary.display())]
    Attach {
        kind: &'static str,
        binary: PathBuf,
        symbol: String,
        offset: u64,
        #[source]
        source: Box<ProgramError>,
    },
}

/// What loading tracing programs and attaching uprobes take. CAP_SYS_ADMIN would cover all
/// three, but is listed apart so that the message names exactly what is missing.
const NEEDED_CAPABILITIES: [(&str, u32); 3] =
    [("CAP_BPF", 39), ("CAP_PERFMON", 38), ("CAP_SYS_ADMIN", 21)];

/// Says which of the needed capabilities this process lacks, before anything is loaded.
fn check_capabilities() -> Result<(), BpfError> {
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
    let missing: Vec<_> = NEEDED_CAPABILITIES
        .iter()
        .filter(|(_, bit)| !has(*bit))
        .map(|(name, _)| *name)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(BpfError::Capabilities(missing))
    }
}

/// The loaded programs with every probe attached. Dropping it detaches everything.
#[derive(Debug)]
pub struct Tracer {
    links: Links,
    _thread_exit: RawTracePointLink,
    ebpf: Ebpf,
}

/// Attached probes, detached in parallel when dropped: the kernel waits for a grace period per
/// uprobe it removes (~0.1 s here). Concurrent removals overlap only partly (24 probes: 1.3 s
/// one by one, 1.1 s in parallel); uprobe_multi links would make it one wait.
#[derive(Debug, Default)]
struct Links(Vec<UProbeLink>);

impl Drop for Links {
    fn drop(&mut self) {
        const THREADS: usize = 64;
        let links = std::mem::take(&mut self.0);
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
}

impl Tracer {
    /// Loads the programs and attaches an entry and a return probe to every function; the
    /// index of a function in `functions` is its id in events. All or nothing: on error,
    /// whatever was attached is detached again (the half-built tracer is dropped).
    pub fn attach(
        functions: &[ProbedFunction],
        filter: ProcessFilter,
        limits: &Limits,
    ) -> Result<Self, BpfError> {
        check_capabilities()?;
        crate::kernel::check()?;
        let depth_limit = limits.max_depth;
        let ring_bytes = limits.ring_buffer_size;
        // Wake the reader once a quarter of the ring is pending; it drains on a timer before.
        let wakeup_bytes = u64::from(ring_bytes / 4);
        let filter_pids = u8::from(filter == ProcessFilter::Selected);
        let function_count = u32::try_from(functions.len().max(1)).unwrap_or(u32::MAX);
        // One bit per possible pid.
        let pid_words = pid_max().div_ceil(64);
        let mut ebpf = EbpfLoader::new()
            .override_global(FILTER_PIDS_GLOBAL, &filter_pids, true)
            .override_global(DEPTH_LIMIT_GLOBAL, &depth_limit, true)
            .override_global(WAKEUP_BYTES_GLOBAL, &wakeup_bytes, true)
            .map_max_entries(EVENTS_MAP, ring_bytes)
            .map_max_entries(FUNCTIONS_MAP, function_count)
            .map_max_entries(TARGET_PIDS_MAP, pid_words)
            .load(PROGRAMS)
            .map_err(|e| BpfError::Load(Box::new(e)))?;
        set_captures(&mut ebpf, functions)?;
        // Before any uprobe: a thread that exits mid-call must never be missed.
        let thread_exit = attach_thread_exit(&mut ebpf)?;
        let mut links = Links::default();
        let programs = [
            (ENTRY_PROGRAM, "uprobe", Serves::ReadingMemory(false)),
            (
                ENTRY_SLEEPABLE_PROGRAM,
                "uprobe",
                Serves::ReadingMemory(true),
            ),
            (RETURN_PROGRAM, "uretprobe", Serves::Returning),
        ];
        for (program, kind, serves) in programs {
            // Verifying a program is most of the start-up time (~0.1 s each here): load only
            // those that serve some function (most configs read no argument memory).
            if !functions.iter().any(|function| serves.serves(function)) {
                continue;
            }
            let uprobe = uprobe_mut(&mut ebpf, program)?;
            uprobe.load().map_err(|source| BpfError::Program {
                program,
                source: Box::new(source),
            })?;
            for (id, function) in functions.iter().enumerate() {
                if !serves.serves(function) {
                    continue;
                }
                let point = UProbeAttachPoint {
                    location: UProbeAttachLocation::AbsoluteOffset(function.file_offset),
                    cookie: Some(id as u64),
                };
                let scope = function
                    .pid
                    .map_or(UProbeScope::AllProcesses, UProbeScope::OneProcess);
                let link = uprobe
                    .attach(point, &function.binary, scope)
                    .and_then(|id| uprobe.take_link(id))
                    .map_err(|source| BpfError::Attach {
                        kind,
                        binary: function.binary.clone(),
                        symbol: function.symbol.clone(),
                        offset: function.file_offset,
                        source: Box::new(source),
                    })?;
                links.0.push(link);
            }
        }
        Ok(Self {
            links,
            _thread_exit: thread_exit,
            ebpf,
        })
    }

    /// Number of probes attached (entry and return probes count separately).
    pub fn attached(&self) -> usize {
        self.links.0.len()
    }

    /// Adds a process to the traced set (for [`ProcessFilter::Selected`]).
    pub fn trace_process(&mut self, pid: NonZeroU32) -> Result<(), BpfError> {
        let map = self
            .ebpf
            .map_mut(TARGET_PIDS_MAP)
            .ok_or(BpfError::Missing {
                what: "map",
                name: TARGET_PIDS_MAP,
            })?;
        let map_error = |source| BpfError::Map {
            map: TARGET_PIDS_MAP,
            source: Box::new(source),
        };
        // A bitmap: bit `pid % 64` of element `pid / 64` (see the eBPF side).
        let mut pids: Array<_, u64> = Array::try_from(map).map_err(map_error)?;
        let (index, bit) = (pid.get() / 64, 1u64 << (pid.get() % 64));
        let word = pids.get(&index, 0).map_err(map_error)?;
        pids.set(index, word | bit, 0).map_err(map_error)
    }

    /// Takes the ring buffer completed calls arrive in (once).
    pub fn take_events(&mut self) -> Result<RingBuf<MapData>, BpfError> {
        let map = self.ebpf.take_map(EVENTS_MAP).ok_or(BpfError::Missing {
            what: "map",
            name: EVENTS_MAP,
        })?;
        RingBuf::try_from(map).map_err(|source| BpfError::Map {
            map: EVENTS_MAP,
            source: Box::new(source),
        })
    }

    /// Detaches every probe (keeping the maps readable): after it returns no call can send an
    /// event. Blocks: the kernel waits for a grace period per probe.
    pub fn detach(&mut self) {
        drop(std::mem::take(&mut self.links));
    }

    /// Calls entered and not returned, over all traced threads (read after [`Self::detach`],
    /// these will never be reported).
    pub fn calls_in_progress(&self) -> Result<u64, BpfError> {
        let map = self.ebpf.map(THREADS_MAP).ok_or(BpfError::Missing {
            what: "map",
            name: THREADS_MAP,
        })?;
        let threads: HashMap<_, u32, ThreadStack> =
            HashMap::try_from(map).map_err(|source| BpfError::Map {
                map: THREADS_MAP,
                source: Box::new(source),
            })?;
        Ok(threads
            .iter()
            .filter_map(Result::ok)
            .map(|(_, stack)| u64::from(stack.depth))
            .sum())
    }

    /// The kernel side's loss and error counters, summed over CPUs.
    pub fn counters(&self) -> Result<KernelCounters, BpfError> {
        let map = self.ebpf.map(COUNTERS_MAP).ok_or(BpfError::Missing {
            what: "map",
            name: COUNTERS_MAP,
        })?;
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

fn attach_thread_exit(ebpf: &mut Ebpf) -> Result<RawTracePointLink, BpfError> {
    let program_error = |source| BpfError::Program {
        program: THREAD_EXIT_PROGRAM,
        source: Box::new(source),
    };
    let program: &mut RawTracePoint = ebpf
        .program_mut(THREAD_EXIT_PROGRAM)
        .ok_or(BpfError::Missing {
            what: "program",
            name: THREAD_EXIT_PROGRAM,
        })?
        .try_into()
        .map_err(program_error)?;
    program.load().map_err(program_error)?;
    program
        .attach(THREAD_EXIT_TRACEPOINT)
        .and_then(|id| program.take_link(id))
        .map_err(program_error)
}

/// Tells the kernel side what each function captures, before any probe can fire.
fn set_captures(ebpf: &mut Ebpf, functions: &[ProbedFunction]) -> Result<(), BpfError> {
    let map_error = |source| BpfError::Map {
        map: FUNCTIONS_MAP,
        source: Box::new(source),
    };
    let map = ebpf.map_mut(FUNCTIONS_MAP).ok_or(BpfError::Missing {
        what: "map",
        name: FUNCTIONS_MAP,
    })?;
    let mut captures: Array<_, FunctionCapture> = Array::try_from(map).map_err(map_error)?;
    for (id, function) in functions.iter().enumerate() {
        captures
            .set(id as u32, kernel_spec(function), 0)
            .map_err(map_error)?;
    }
    Ok(())
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
