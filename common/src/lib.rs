//! Data shared by spanprobe's eBPF programs and its userspace: the event layout, the per-thread
//! call stack, counter slots and map names. Everything here is defined once and used by both
//! sides, so the two can never disagree about a byte.
#![no_std]

/// Arguments one function captures at most; each from a register (System V index 0..=5:
/// RDI, RSI, RDX, RCX, R8, R9) or from the caller's stack (index 6 and up).
pub const MAX_ARGS: usize = 8;

/// Bytes of `str`/`bytes` data one call captures at most, over all its arguments.
pub const DATA_MAX: usize = 2048;
/// Bytes one memory argument reads at most: a [`MAX_MEMORY_LEN`]-byte string plus its
/// [`STRING_OVERHEAD`].
pub const MEMORY_READ_MAX: usize = MAX_MEMORY_LEN + STRING_OVERHEAD;
/// The longest `max_len` (`str`) or `len` (`bytes`) of a memory argument.
pub const MAX_MEMORY_LEN: usize = 512;
/// What a string reads past its `max_len`: one byte to tell truncation, and the NUL.
pub const STRING_OVERHEAD: usize = 2;

/// Bytes a call record's data gives a memory argument of `len` bytes (a string's `max_len`).
/// A string, and a read whose count is another argument, get room past `len` to tell that
/// there was more.
pub const fn memory_area(is_string: bool, len: usize) -> usize {
    if is_string {
        len + STRING_OVERHEAD
    } else {
        len
    }
}

/// Bytes a call record's data gives a stack of `frames` frames: the caller's return address
/// and the walk, then the uretprobe trampoline's address and the real return addresses of up
/// to [`MAX_DEPTH`] outer probed calls.
pub const fn stack_area(frames: usize) -> usize {
    8 * (frames + 1) + 8 * (MAX_DEPTH + 1)
}

/// User stack frames captured at most (`stack: true`).
pub const MAX_STACK_FRAMES: usize = 64;

/// Nesting depth tracked per thread. Deeper calls are counted ([`Counter::DepthExceeded`]) and
/// produce no span; the calls around them are unaffected.
pub const MAX_DEPTH: usize = 32;

/// The eBPF programs, by the names the object gives them (their functions'): a contract between
/// the two sides, checked against the embedded object by a unit test of the exporter. Each
/// uprobe program comes as a pair: its `uprobe.multi` variant, then its perf-event one.
pub mod programs {
    /// The uretprobe of every function with a return probe.
    pub const RETURN: [&str; 2] = ["spanprobe_return", "spanprobe_return_perf"];
    /// Go `RET` sites and the Go runtime's helpers.
    pub const GO: [&str; 2] = ["spanprobe_go", "spanprobe_go_perf"];
    /// The entry of functions that read no memory and keep no record.
    pub const ENTRY: [&str; 2] = ["spanprobe_entry", "spanprobe_entry_perf"];
    /// The entry of functions that read memory or keep a record: sleepable.
    pub const ENTRY_SLEEPABLE: [&str; 2] = [
        "spanprobe_entry_sleepable",
        "spanprobe_entry_sleepable_perf",
    ];
    /// Go calls' entries, on the goroutine's stack.
    pub const GO_ENTRY: [&str; 2] = ["spanprobe_go_entry", "spanprobe_go_entry_perf"];
    /// Go calls' entries that read memory: sleepable.
    pub const GO_ENTRY_SLEEPABLE: [&str; 2] = [
        "spanprobe_go_entry_sleepable",
        "spanprobe_go_entry_sleepable_perf",
    ];
    /// On `sched_process_exit`: the calls of exiting threads end.
    pub const THREAD_EXIT: &str = "spanprobe_thread_exit";
    /// On `sched_process_fork`: children of traced processes are traced.
    pub const FORK: &str = "spanprobe_fork";
    /// On `sched_process_exec`: userspace hears of each program started, for `executable:`
    /// targets.
    pub const EXEC: &str = "spanprobe_exec";
    /// Every program.
    pub const ALL: [&str; 15] = [
        RETURN[0],
        RETURN[1],
        GO[0],
        GO[1],
        ENTRY[0],
        ENTRY[1],
        ENTRY_SLEEPABLE[0],
        ENTRY_SLEEPABLE[1],
        GO_ENTRY[0],
        GO_ENTRY[1],
        GO_ENTRY_SLEEPABLE[0],
        GO_ENTRY_SLEEPABLE[1],
        THREAD_EXIT,
        FORK,
        EXEC,
    ];
}

/// Every map userspace names (the others, scratch space, are the kernel side's alone).
pub const MAPS: [&str; 8] = [
    EVENTS_MAP,
    HANDOFFS_MAP,
    COUNTERS_MAP,
    TARGET_PIDS_MAP,
    GOROUTINE_STACKS_MAP,
    THREAD_STACKS_MAP,
    FUNCTIONS_MAP,
    PROCESS_TREES_MAP,
];

/// Every global userspace sets at load.
pub const GLOBALS: [&str; 10] = [
    GOROUTINE_PARENTS_GLOBAL,
    FILTER_PIDS_GLOBAL,
    DEPTH_LIMIT_GLOBAL,
    TRACE_CONTEXTS_GLOBAL,
    RETURN_ADDRESSES_GLOBAL,
    WAKEUP_BYTES_GLOBAL,
    TASK_TGID_OFFSET_GLOBAL,
    PROCESS_TREES_GLOBAL,
    READS_AT_RETURN_GLOBAL,
    KEEP_AT_RETURN_GLOBAL,
];

/// Ring buffer the return program writes one [`CallEvent`] per completed call into.
pub const EVENTS_MAP: &str = "EVENTS";
/// Per-CPU `u64` counters, indexed by [`Counter`].
pub const COUNTERS_MAP: &str = "COUNTERS";
/// Process ids (tgid) to trace when [`FILTER_PIDS_GLOBAL`] is set.
pub const TARGET_PIDS_MAP: &str = "TARGET_PIDS";
/// Goroutines' call stacks ([`CallStack`]), by [`StackKey`].
pub const GOROUTINE_STACKS_MAP: &str = "GOROUTINE_STACKS";
/// Each thread's [`CallStack`], in task storage: the kernel finds it from the running
/// thread, where a hash map takes a lookup that costs each probe ~20 ns more.
pub const THREAD_STACKS_MAP: &str = "THREAD_STACKS";
/// What each function captures ([`FunctionCapture`]), indexed by function id.
pub const FUNCTIONS_MAP: &str = "FUNCTIONS";

/// The processes of each `pid:` target's tree (the process and those it forked), by process
/// id: a `u64` whose bit `t` is set for tree `t + 1` ([`FunctionCapture::process_tree`]).
pub const PROCESS_TREES_MAP: &str = "PROCESS_TREES";
/// Processes in `pid:` trees at most, all trees together.
pub const MAX_TREE_PROCESSES: u32 = 32768;
/// `pid:` trees at most: one bit each in [`PROCESS_TREES_MAP`]'s values.
pub const MAX_PROCESS_TREES: usize = 64;
/// Global (`u8`): non-zero when goroutines join the trace of the span they were started under
/// ([`STARTS_GOROUTINE`]): a call that starts on a goroutine's stack then looks for one.
pub const GOROUTINE_PARENTS_GLOBAL: &str = "GOROUTINE_PARENTS";
/// Global (`u8`): non-zero when some function reads memory at return ([`READS_AT_RETURN`]):
/// only then does a return look its function up before sending its call.
pub const READS_AT_RETURN_GLOBAL: &str = "READS_AT_RETURN_USED";
/// Global (`u8`): non-zero when some function has keep rules its return decides
/// (`min_duration`, `keep: errors`): every entry then marks its caller's frame as having a
/// callee ([`Frame::callees`]).
pub const KEEP_AT_RETURN_GLOBAL: &str = "KEEP_AT_RETURN";
/// Global (`u8`): non-zero when some function is traced in a `pid:` tree only: forks and
/// exits then keep [`PROCESS_TREES_MAP`], and returns check it.
pub const PROCESS_TREES_GLOBAL: &str = "PROCESS_TREES_USED";

/// Calls in progress whose function captures memory, with their data ([`CallRecord`]).
pub const MAX_MEMORY_CALLS: u32 = 2048;

/// Global (`u8`): when non-zero, only processes in [`TARGET_PIDS_MAP`] are traced.
pub const FILTER_PIDS_GLOBAL: &str = "FILTER_PIDS";
/// Global (`u32`): calls nested deeper than this (at most [`MAX_DEPTH`]) get no span.
pub const DEPTH_LIMIT_GLOBAL: &str = "DEPTH_LIMIT";
/// Non-zero when some function reads a trace context: the entry program then carries trace
/// ids from caller to callee, which costs every call a little when none does.
pub const TRACE_CONTEXTS_GLOBAL: &str = "TRACE_CONTEXTS";
/// Global (`u8`): non-zero when some function captures stacks, whose outer calls' return
/// addresses every entry then reads; otherwise an entry reads its return address only when a
/// frame at the same stack position needs telling a tail call from a longjmp.
pub const RETURN_ADDRESSES_GLOBAL: &str = "RETURN_ADDRESSES";
/// Global (`u64`): the return program wakes the reader once this many bytes are pending;
/// below it the reader drains on its own timer, so a burst of calls costs one wakeup.
pub const WAKEUP_BYTES_GLOBAL: &str = "WAKEUP_BYTES";
/// Global (`u32`): the byte offset of `tgid` in the kernel's `struct task_struct` (from its
/// BTF), for following forks of traced processes (a command's, or a `pid:` target's); 0 when
/// they are not followed.
pub const TASK_TGID_OFFSET_GLOBAL: &str = "TASK_TGID_OFFSET";
/// Global (`u32`): the room for stack bytes in every [`StackWindowHeader`] message, a power of
/// two up to [`MAX_STACK_WINDOW`] (the largest [`FunctionCapture::window_bytes`]); 0 when no
/// function copies a window. Read-only, so the verifier knows it, and sizes the ring-buffer
/// reservation by it.
pub const STACK_WINDOW_BYTES_GLOBAL: &str = "STACK_WINDOW_BYTES";

/// The most bytes of user stack a [`StackWindowHeader`] message carries.
pub const MAX_STACK_WINDOW: u32 = 64 << 10;

/// [`StackWindowHeader::mark`]: where a [`CallEvent`] has its pid, which is below the kernel's
/// `PID_MAX_LIMIT` (2^22), a stack window has this.
pub const STACK_WINDOW_MARK: u32 = u32::MAX;

/// [`ExecNotice::mark`]: neither a pid nor [`STACK_WINDOW_MARK`].
pub const EXEC_MARK: u32 = u32::MAX - 1;

/// A process has started a program (`execve`): userspace looks at what it runs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExecNotice {
    /// [`EXEC_MARK`].
    pub mark: u32,
    /// Its pid (tgid), in the initial pid namespace.
    pub pid: u32,
}

/// A copy of the user stack at a call's entry, for userspace to unwind ([`STACK_WINDOW`]):
/// sent through the ring buffer ahead of the call's event, which it is matched with by process,
/// stack and entry time. The stack's bytes from [`Self::sp`] follow; the message has room for
/// `STACK_WINDOW_BYTES` of them and a page more.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackWindowHeader {
    /// [`STACK_WINDOW_MARK`].
    pub mark: u32,
    pub pid: u32,
    /// As the call's [`CallEvent::stack_id`].
    pub stack_id: u64,
    /// As the call's [`CallEvent::entry_ns`].
    pub entry_ns: u64,
    pub function_id: u32,
    /// Bytes of stack copied: up to the function's `window_bytes`, less where the stack ended
    /// (its top is followed by unmapped memory).
    pub len: u32,
    /// The registers at entry an unwinder starts from.
    pub ip: u64,
    pub sp: u64,
    pub bp: u64,
    /// How many of [`Self::outer`] are set.
    pub outer_len: u32,
    /// As the call's [`CallEvent::depth`].
    pub depth: u32,
    /// The return slots of the outer probed calls, innermost first, and the return address
    /// each held before the uretprobe trampoline took its place (all ones for a frame with no
    /// return slot): userspace puts them back before unwinding.
    pub outer: [[u64; 2]; MAX_DEPTH],
}

/// Ring-buffer size in bytes compiled in (userspace sizes it at load; a power of two, as the
/// kernel requires).
pub const DEFAULT_RING_BYTES: u32 = 8 << 20;

/// Maximum number of goroutines with a live call stack; least recently used stacks are
/// evicted. (A goroutine's is freed when its last call returns.)
pub const MAX_GOROUTINES: u32 = 16384;

/// In [`StackKey::id`] and [`CallEvent::goroutine`]: the stack is a goroutine's, and the low
/// bits its `g` address (below 2^47 in user space).
pub const GOROUTINE_STACK: u64 = 1 << 63;

/// Which call stack a [`CallStack`] is: a thread's (its thread id; in [`THREAD_STACKS_MAP`]),
/// or a goroutine's ([`GOROUTINE_STACK`] or'ed with its `g` address; in
/// [`GOROUTINE_STACKS_MAP`]). With the process, since Go places its heap, and so its `g`s, at
/// the same addresses in every process.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct StackKey {
    pub id: u64,
    pub pid: u32,
    pub _pad: u32,
}

impl StackKey {
    /// Whether the stack is a goroutine's.
    pub fn is_goroutine(&self) -> bool {
        self.id & GOROUTINE_STACK != 0
    }
}

/// A call in progress, in the map of calls that capture memory: its stack and its depth there.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CallKey {
    pub stack: u64,
    pub pid: u32,
    pub depth: u32,
}

/// Things the eBPF side could not do, counted per CPU so that no loss is silent.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// A completed call found the ring buffer full; its span is lost.
    RingBufFull = 0,
    /// A call nested deeper than [`MAX_DEPTH`]; it produces no span.
    DepthExceeded = 1,
    /// A return whose thread had no recorded entry (its stack was evicted or lost).
    ReturnWithoutEntry = 2,
    /// The per-thread stack could not be created (map full or out of memory).
    NoThreadStack = 3,
    /// A call's captured memory was lost before it returned (too many such calls at once).
    MemoryLost = 4,
    /// A function's trace context argument held no valid context (absent, malformed, all-zero
    /// ids, an unknown version): its span started a new trace, as without one.
    InvalidTraceContext = 5,
    /// A handoff's `from` kept a span for its `to`.
    HandoffMade = 6,
    /// A handoff's `to` found a span kept under its key, and adopted it.
    HandoffTaken = 7,
    /// A handoff's `to` found no span kept under its key (none was open at `from`, it was
    /// evicted, or taken already): its span started as without.
    HandoffMissing = 8,
    /// A call did not meet its function's `when`: neither it nor the calls in it are traced.
    /// What the config asked for, not a loss.
    FilteredByWhen = 9,
    /// A call with no probed callee was left out when it returned by its function's keep
    /// rules (`min_duration`, `keep: errors`): no record was sent. What the config asked for,
    /// not a loss.
    LeftOutAtReturn = 10,
    /// A call's stack window ([`StackWindowHeader`]) found the ring buffer full: its span is
    /// sent without its stack.
    StackWindowLost = 11,
    /// A process started a program, and its [`ExecNotice`] found the ring buffer full: if it
    /// runs a new file of an `executable:` target, that file is not probed.
    ExecsLost = 12,
}

impl Counter {
    /// Every counter, in slot order.
    pub const ALL: [Counter; 13] = [
        Counter::RingBufFull,
        Counter::DepthExceeded,
        Counter::ReturnWithoutEntry,
        Counter::NoThreadStack,
        Counter::MemoryLost,
        Counter::InvalidTraceContext,
        Counter::HandoffMade,
        Counter::HandoffTaken,
        Counter::HandoffMissing,
        Counter::FilteredByWhen,
        Counter::LeftOutAtReturn,
        Counter::StackWindowLost,
        Counter::ExecsLost,
    ];
    /// Number of slots in [`COUNTERS_MAP`].
    pub const COUNT: u32 = Self::ALL.len() as u32;
}

/// One completed call of a probed function, written by the return program.
///
/// Span and trace ids are not carried: the entry timestamps of the call, its parent and its
/// trace root identify them uniquely per thread, and userspace derives the ids from those.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallEvent {
    /// Process id (tgid).
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// Index of the probed function in the attach table (the BPF cookie).
    pub function_id: u32,
    /// 1 for a call with no probed caller on its thread, 2 for its children, and so on.
    pub depth: u32,
    /// `CLOCK_MONOTONIC` nanoseconds at entry.
    pub entry_ns: u64,
    /// `CLOCK_MONOTONIC` nanoseconds at return.
    pub return_ns: u64,
    /// Entry time of the probed caller, 0 when this call is a trace root.
    pub parent_entry_ns: u64,
    /// Entry time of the outermost probed call on this thread (this call's own if it is a root).
    pub root_entry_ns: u64,
    /// Captured argument values at entry, in [`FunctionCapture::args`] order (for memory
    /// arguments, the pointer).
    pub args: [u64; MAX_ARGS],
    /// Raw RAX at return.
    pub ret: u64,
    /// Per memory argument: bytes captured, or'ed with [`MEMORY_FAULT`].
    pub arg_lens: [u16; MAX_ARGS],
    /// Bytes of captured memory following this header in the record.
    pub data_len: u32,
    /// Function id of the trace's root call (whose `sample_rate` decides the trace).
    pub root_function_id: u32,
    /// How the call ended, a [`CallEnd`].
    pub end: u16,
    /// [`RETURN_FAULT`] or 0.
    pub flags: u16,
    /// Addresses in the record's stack area (see [`FunctionCapture::stack_offset`]): the
    /// immediate caller's return address, then the frame-pointer walk from the function's
    /// first instruction. 0 when no stack was captured.
    pub stack_len: u32,
    /// The trace context the call runs in, when a probed call read one from its arguments.
    pub context: TraceContext,
    /// For a Go call: the goroutine's stack it was on ([`GOROUTINE_STACK`] or'ed with its `g`
    /// address), which parents are found on, since goroutines move between threads; 0 for a
    /// call on its thread's stack.
    pub goroutine: u64,
    /// For a Go call whose last result is an `error`: that interface's type word (its itab,
    /// which names the error's dynamic type), 0 when the error is nil or there is none.
    pub error_type: u64,
}

impl CallEvent {
    /// Writes the fields of the event of the call in `frame`, at `depth` on `stack`, run (last)
    /// by thread `tid`, ended as `ending` says. What follows the header is the writer's:
    /// `arg_lens`, `data_len` and `stack_len` are left as they are. At entry the stack's root is
    /// already this call's when it is one.
    ///
    /// In place, field by field: the kernel side writes into a reserved ring-buffer record or a
    /// call record, since an event is too large for the BPF stack, and a struct built whole
    /// becomes a copy (or, from a default, a `memset`, which BPF runs as a byte loop).
    #[inline(always)]
    pub fn fill(
        &mut self,
        stack: &CallStack,
        frame: &Frame,
        tid: u32,
        depth: u32,
        ending: &Ending,
    ) {
        self.pid = stack.key.pid;
        self.tid = tid;
        self.function_id = frame.function_id;
        self.depth = depth;
        self.entry_ns = frame.entry_ns;
        self.return_ns = ending.now;
        self.parent_entry_ns = frame.parent_entry_ns;
        self.root_entry_ns = stack.root_entry_ns;
        for (to, from) in self.args.iter_mut().zip(&frame.args) {
            *to = *from;
        }
        self.ret = ending.ret;
        self.root_function_id = stack.root_function_id;
        self.end = ending.end as u16;
        self.flags = ending.flags;
        self.context.trace_id[0] = frame.context.trace_id[0];
        self.context.trace_id[1] = frame.context.trace_id[1];
        self.context.parent_span_id = frame.context.parent_span_id;
        self.context.parent_stack = frame.context.parent_stack;
        self.context.flags = frame.context.flags;
        self.goroutine = if stack.key.is_goroutine() {
            stack.key.id
        } else {
            0
        };
        self.error_type = ending.error_type;
    }

    /// The call stack the call was on, among its process's: its goroutine's, or its thread's.
    pub fn stack_id(&self) -> u64 {
        if self.goroutine != 0 {
            self.goroutine
        } else {
            u64::from(self.tid)
        }
    }
}

/// A W3C trace context, as a call carries it. All zero when there is none: userspace then
/// derives the trace id from the thread's root call, as it does for every other call.
///
/// The ids are kept as words holding their bytes in W3C order (`to_ne_bytes` gives them back):
/// the kernel side then copies and zeroes them a word at a time, where byte arrays made the
/// compiler call out to byte loops.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TraceContext {
    /// The trace the call belongs to.
    pub trace_id: [u64; 2],
    /// Set only on the call that read the context: its parent, a span of another process. Its
    /// probed callees inherit `trace_id` alone; their parents are local. With
    /// [`PARENT_HANDED_OFF`], the entry time of the parent, a span of this process.
    pub parent_span_id: u64,
    /// With [`PARENT_HANDED_OFF`]: the call stack ([`CallEvent::stack_id`]) of the parent.
    pub parent_stack: u64,
    /// [`TRACE_DERIVED`], [`PARENT_HANDED_OFF`], [`LINKED`], [`HANDS_OFF`], [`NOT_SAMPLED`].
    pub flags: u32,
    pub _pad: u32,
}

/// In [`TraceContext::flags`]: the trace id is derived by userspace, as a thread's own traces'
/// are, from the call it names: `trace_id` holds that call's stack and the entry time of its
/// trace's root. A handed-off trace that began with no context is carried so.
pub const TRACE_DERIVED: u32 = 1;
/// In [`TraceContext::flags`]: the parent is a span of this process on another stack (or
/// earlier on this one), handed off to the call: `parent_stack` and, in `parent_span_id`,
/// its entry time name it.
pub const PARENT_HANDED_OFF: u32 = 2;
/// In [`TraceContext::flags`], with [`PARENT_HANDED_OFF`]: the handed-off span is a link of
/// the call, not its parent, and `trace_id` is that span's trace: the call roots a trace of its
/// own (derived from its own entry, as a root's).
pub const LINKED: u32 = 4;
/// In [`TraceContext::flags`]: on the frame of a call that makes no span ([`NO_SPAN`]) and
/// took a handoff: the calls it makes adopt the context, each as if it had taken the handoff.
pub const HANDS_OFF: u32 = 8;
/// In [`TraceContext::flags`], with [`HANDS_OFF`] and in [`HANDOFFS_MAP`]: the handed-off span's
/// trace was sampled out; so is the call that adopts it.
pub const NOT_SAMPLED: u32 = 16;

impl TraceContext {
    /// From the ids' bytes, in W3C order.
    pub fn from_bytes(trace_id: [u8; 16], parent_span_id: [u8; 8]) -> Self {
        let (high, low) = trace_id.split_at(8);
        let word = |bytes: &[u8]| {
            let mut word = [0u8; 8];
            word.copy_from_slice(bytes);
            u64::from_ne_bytes(word)
        };
        TraceContext {
            trace_id: [word(high), word(low)],
            parent_span_id: u64::from_ne_bytes(parent_span_id),
            ..TraceContext::default()
        }
    }

    /// The trace id's bytes, in W3C order.
    pub fn trace_id_bytes(&self) -> [u8; 16] {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.trace_id[0].to_ne_bytes());
        bytes[8..].copy_from_slice(&self.trace_id[1].to_ne_bytes());
        bytes
    }

    /// The parent span id's bytes, in W3C order.
    pub fn parent_span_id_bytes(&self) -> [u8; 8] {
        self.parent_span_id.to_ne_bytes()
    }
}

/// How a function's caller passes its trace context, in [`FunctionCapture::context_format`].
#[repr(u8)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ContextFormat {
    #[default]
    None = 0,
    /// A pointer to a NUL-terminated W3C `traceparent`: `00-<32 hex>-<16 hex>-<2 hex>`.
    Traceparent = 1,
    /// A pointer to the 16-byte trace id, and another to the 8-byte parent span id.
    Ids = 2,
}

/// Length of a version-00 `traceparent`, without its NUL.
pub const TRACEPARENT_LEN: usize = 55;

/// How a call with a valid trace context decides whether its trace is kept, in
/// [`FunctionCapture::context_policy`].
#[repr(u8)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ContextPolicy {
    /// As the parent decided: the `traceparent`'s sampled flag (OpenTelemetry's
    /// `parentbased_*` samplers, the default). Binary ids carry no flag: kept.
    #[default]
    FollowParent = 0,
    /// By the trace id against [`FunctionCapture::sample_threshold`], whatever the parent
    /// decided (`always_on`, `always_off`, `traceidratio`).
    TraceIdRatio = 1,
}

/// In [`CallEvent::flags`]: the return value's chain of pointers hit unreadable memory, so
/// [`CallEvent::ret`] holds no value.
pub const RETURN_FAULT: u16 = 1;

/// How a call ended. Calls that never return are still reported, ended when the loss is seen.
#[repr(u16)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallEnd {
    Returned = 0,
    /// The thread (or its whole process) exited inside the call.
    ThreadExit = 1,
    /// A longjmp skipped the call: a shallower frame returned, or a new call began at or above
    /// it on the stack. (An exception thrown through a uretprobe terminates the program.)
    Unwound = 2,
    /// An [`ENTRY_ONLY`] function: the event was sent at entry.
    EntryOnly = 3,
    /// An [`EVENT_OF_OPEN_SPAN`] probe fired inside a span: the record is an event of that span (the
    /// one whose entry time is `parent_entry_ns`), not a span of its own.
    Event = 4,
    /// The goroutine ended inside the call: `runtime.Goexit`, run by the call or a callee,
    /// ends it after the deferred calls, and the call never returns.
    GoroutineExit = 5,
}

impl CallEnd {
    pub fn from_u16(value: u16) -> Option<Self> {
        match value {
            0 => Some(Self::Returned),
            1 => Some(Self::ThreadExit),
            2 => Some(Self::Unwound),
            3 => Some(Self::EntryOnly),
            4 => Some(Self::Event),
            5 => Some(Self::GoroutineExit),
            _ => None,
        }
    }
}

/// Bytes after [`DATA_MAX`] in a call record's data: room for the largest single write (a
/// memory argument, or a whole stack area) starting anywhere below [`DATA_MAX`].
pub const DATA_SLACK: usize = 1024;
const _: () = assert!(MEMORY_READ_MAX <= DATA_SLACK && 8 * (MAX_STACK_FRAMES + 1) <= DATA_SLACK);
const _: () = assert!(8 * (MAX_DEPTH + 1) <= DATA_SLACK);

/// In [`CallEvent::arg_lens`]: the memory could not be read (bad or null pointer).
pub const MEMORY_FAULT: u16 = 0x8000;

/// Where an argument's value comes from.
#[repr(u8)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ArgSource {
    /// The slot is unused.
    #[default]
    None = 0,
    /// Argument register `slot` (0 = RDI ... 5 = R9).
    Register = 1,
    /// Stack slot `slot` above the return address (System V index 6 + slot).
    Stack = 2,
    /// General-purpose register `slot`, by its DWARF number (0 = RAX, 1 = RDX, 2 = RCX,
    /// 3 = RBX, 4 = RSI, 5 = RDI, 6 = RBP, 7 = RSP, 8..=15 = R8..R15): where a USDT operand is.
    Gpr = 3,
    /// A USDT operand that is the same at every firing (`$5`): the value is the argument's
    /// [`ArgCapture::path`], low word first (a constant has no chain).
    Constant = 4,
    /// As a count ([`ArgCapture::count_source`]) of memory read at return: the return value.
    Return = 5,
    /// As a count ([`ArgCapture::count_source`]), read at entry: the word after the pointer
    /// at the end of the argument's chain, which is read in place of the address. Go keeps its
    /// strings and slices so (`{ptr, len}`), and Rust its `&str` and `&[u8]`: their bytes have
    /// no NUL after them.
    Beside = 6,
}

impl ArgCapture {
    /// The value of a [`ArgSource::Constant`] argument.
    pub fn constant(&self) -> u64 {
        u64::from(self.path[0] as u32) | (u64::from(self.path[1] as u32) << 32)
    }

    /// Makes this a [`ArgSource::Constant`] argument of `value`.
    pub fn set_constant(&mut self, value: u64) {
        self.source = ArgSource::Constant as u8;
        self.path[0] = value as u32 as i32;
        self.path[1] = (value >> 32) as u32 as i32;
    }
}

/// What, if anything, an argument points to that is captured.
#[repr(u8)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MemoryKind {
    #[default]
    None = 0,
    /// A NUL-terminated string, read with `bpf_probe_read_user_str`.
    Str = 1,
    /// A fixed number of bytes.
    Bytes = 2,
}

/// How to capture one argument.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArgCapture {
    /// An [`ArgSource`], as `u8` so that every bit pattern is a valid value.
    pub source: u8,
    pub slot: u8,
    /// A [`MemoryKind`], as `u8`.
    pub memory: u8,
    /// An [`ArgSource`]: where the number of bytes to read is (a Rust `&str`'s length, a
    /// `write` buffer's count), read at entry like an argument; `None` reads `len` bytes.
    pub count_source: u8,
    /// Bytes of memory to read (at most [`MEMORY_READ_MAX`]); with a count, the most read.
    pub len: u16,
    /// Where the memory goes in the call's data area.
    pub offset: u16,
    /// The count's register or stack slot, as `slot` is the argument's.
    pub count_slot: u8,
    /// How many of `path`'s offsets lead from the argument to the value, 0 for the argument
    /// itself: each but the last is added and then dereferenced (a pointer is read there);
    /// the last is added to give the value's address (`r->user->id`: `[user, id]`).
    pub chain: u8,
    /// Bytes read at the value's address for a register type (1, 2, 4 or 8); 0 for a memory
    /// type, whose read starts at the address.
    pub field_size: u8,
    /// [`READ_AT_RETURN`], [`COUNT_BEHIND`], [`COUNT_32`], [`COUNT_SIGNED`].
    pub timing: u8,
    pub path: [i32; MAX_CHAIN],
}

/// In [`ArgCapture::timing`]: the memory is read when the call returns (what the call wrote),
/// from the argument's value at entry, kept in its frame; its chain is followed then. Nothing
/// is read at entry, and nothing when the call does not return (a longjmp skipped it).
pub const READ_AT_RETURN: u8 = 1;
/// In [`ArgCapture::timing`], with [`READ_AT_RETURN`]: the count is the word its source points
/// to, read at return. The entry keeps the pointer in the argument's data area, whose first
/// eight bytes the memory read at return then overwrites.
pub const COUNT_BEHIND: u8 = 2;
/// In [`ArgCapture::timing`], with [`READ_AT_RETURN`]: the return value is 32 bits wide (its
/// upper half is undefined), for a count taken from it or for telling failure.
pub const COUNT_32: u8 = 4;
/// In [`ArgCapture::timing`], with [`READ_AT_RETURN`]: the return value is signed. A count from
/// the return value, or from behind a pointer, is read only when the return value is above 0.
pub const COUNT_SIGNED: u8 = 8;

/// In [`CallEvent::arg_lens`]: memory read at return was not read (the call returned 0 or
/// less, or did not return); the argument has no value.
pub const NOT_READ: u16 = 0x4000;
const _: () = assert!(MEMORY_READ_MAX < NOT_READ as usize);

/// Offsets in an argument's [`ArgCapture::path`]: at most `MAX_CHAIN - 1` dereferences.
pub const MAX_CHAIN: usize = 5;

/// How to capture a function's arguments; set by userspace before attaching.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FunctionCapture {
    pub args: [ArgCapture; MAX_ARGS],
    /// Size of the call's data area, 0 when no argument captures memory.
    pub data_len: u32,
    /// A trace rooted at this function is kept when a random `u32` is below this;
    /// [`SAMPLE_ALWAYS`] keeps every trace.
    pub sample_threshold: u32,
    /// [`ENTRY_ONLY`] or 0.
    pub flags: u32,
    /// Stack frames to capture at entry, 0 for none.
    pub stack_frames: u16,
    /// Where the stack goes in the data area (8-byte aligned).
    pub stack_offset: u16,
    /// A [`ContextFormat`]: where the caller's trace context is, if anywhere.
    pub context_format: u8,
    /// An [`ArgSource`] and its slot: the `traceparent` pointer, or the trace id's.
    pub context_source: u8,
    pub context_slot: u8,
    /// With [`ContextFormat::Ids`]: the parent span id's pointer, as above.
    pub span_id_source: u8,
    pub span_id_slot: u8,
    /// A [`ContextPolicy`].
    pub context_policy: u8,
    /// At a Go `RET` site whose function's last result is an `error`: the register of
    /// that interface's type word, by its DWARF number plus one (see [`ArgSource::Gpr`]); 0
    /// for none.
    pub error_register: u8,
    /// Slots of [`Self::args`] from this one on are unused: the entry skips them.
    pub args_end: u8,
    /// The `pid:` tree the function is traced in, by its number (see [`PROCESS_TREES_MAP`]);
    /// 0 for every process.
    pub process_tree: u8,
    pub _pad: [u8; 3],
    /// With [`NOT_AT_CALL`] or [`ENDS_PAIRED_SPAN`]: the start/end pair the site belongs to;
    /// an end closes the innermost span only when its start is of the same pair. With
    /// [`ON_GOROUTINE_STACK`], and at a Go `RET` site, likewise: a Go function's entry and its
    /// `RET` sites.
    pub pair: u32,
    /// The chain of pointers from the return value (RAX) to what is reported instead of it
    /// (`chain`, `path` and `field_size` as an argument's; 0 `chain` reports RAX itself).
    pub ret: ArgCapture,
    /// With [`HANDOFF_FROM`] or [`HANDOFF_TO`]: where the handoff's key is, read as an
    /// argument is (its memory kind unused).
    pub handoff: ArgCapture,
    /// With [`HANDOFF_FROM`] or [`HANDOFF_TO`]: which handoff of the config, keeping apart
    /// the keys of different handoffs.
    pub handoff_id: u32,
    /// How many of [`Self::conditions`] a call must meet to be traced.
    pub conditions_len: u32,
    pub conditions: [ArgCondition; MAX_CONDITIONS],
    /// A call with no probed callee that returns sooner than this (`min_duration`) sends
    /// nothing; 0 for none.
    pub min_duration_ns: u64,
    /// With [`STACK_WINDOW`]: bytes of user stack to copy, at most `STACK_WINDOW_BYTES`.
    pub window_bytes: u32,
    pub _pad2: u32,
    /// With [`ERROR_WHEN`]: when the return value (followed along [`Self::ret`]) is an error,
    /// a number compared as a `when` condition is (its slot unused).
    pub error_when: ArgCondition,
}

/// Conditions one function's `when` gives at most.
pub const MAX_CONDITIONS: usize = 4;

/// The longest text a `when` condition compares a string or bytes with.
pub const MAX_CONDITION_TEXT: usize = 64;

/// A condition on one captured argument's value (`when`), decided at entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArgCondition {
    /// The argument's slot in [`Frame::args`]; for a text, the slot holds its address, and the
    /// slot's [`ArgCapture`] says how its length is known.
    pub slot: u8,
    /// A [`ConditionOp`].
    pub op: u8,
    /// A number's width in bytes (1, 2, 4 or 8): the slot's bits above it are not the value's.
    pub size: u8,
    /// Non-zero for a signed number, compared as such.
    pub signed: u8,
    /// A text's length in bytes, at most [`MAX_CONDITION_TEXT`].
    pub text_len: u32,
    /// What a number is compared with, in its type (two's complement when signed).
    pub value: u64,
    /// What a text is compared with, zero-padded, in words: the kernel compares a word at a
    /// time.
    pub text: [u64; MAX_CONDITION_TEXT / 8],
}

/// How an [`ArgCondition`] compares.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionOp {
    Lt = 0,
    Le = 1,
    Gt = 2,
    Ge = 3,
    Eq = 4,
    Ne = 5,
    /// A string or bytes equal to the text; one that cannot be read equals none.
    TextEq = 6,
    /// A string or bytes other than the text, or that cannot be read.
    TextNe = 7,
    /// A string or bytes that starts with the text.
    Prefix = 8,
}

/// A handed-off span's place in [`HANDOFFS_MAP`]: its process, its handoff and its key.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct HandoffKey {
    pub pid: u32,
    pub handoff: u32,
    pub key: u64,
}

/// Spans handed off and not yet taken, by [`HandoffKey`]: the [`TraceContext`] their taker
/// adopts. Least recently used ones go first when full.
pub const HANDOFFS_MAP: &str = "HANDOFFS";
/// Handoffs waiting to be taken, at most.
pub const MAX_HANDOFFS: u32 = 16384;

/// In [`FunctionCapture::flags`]: some argument's memory is read at return
/// ([`READ_AT_RETURN`]).
pub const READS_AT_RETURN: u32 = 512;
/// In [`FunctionCapture::flags`]: the probe makes no span; it only serves a handoff (the
/// `from` or `to` of one, at a function the config does not trace). Its frame, if it pushes
/// one, is not the parent of the calls it makes.
pub const NO_SPAN: u32 = 1024;
/// In [`FunctionCapture::flags`]: the site is a handoff's `from`: the span open on its stack
/// (its own, when it makes one) is kept in [`HANDOFFS_MAP`] under the key
/// [`FunctionCapture::handoff`] reads.
pub const HANDOFF_FROM: u32 = 2048;
/// In [`FunctionCapture::flags`]: the site is a handoff's `to`: the span kept under its key, if
/// any, becomes the parent (or with [`HANDOFF_LINK`], a link) of the span it opens, or with
/// [`NO_SPAN`], of the spans opened until it returns.
pub const HANDOFF_TO: u32 = 4096;
/// In [`FunctionCapture::flags`], with [`HANDOFF_TO`]: the handed-off span becomes a link.
pub const HANDOFF_LINK: u32 = 8192;
/// In [`FunctionCapture::flags`], with [`HANDOFF_TO`]: the key is not consumed when taken.
pub const HANDOFF_REPEAT: u32 = 16384;
/// In [`FunctionCapture::flags`]: the site is where Go creates a goroutine
/// (`runtime.newproc1(fn, callergp, callerpc)`, on the system stack): the span open on the
/// creator's stack, or the one its creator handed it, is kept for the goroutine
/// ([`PENDING_GOROUTINE`]), until [`QUEUES_GOROUTINE`] learns which it is.
pub const STARTS_GOROUTINE: u32 = 32768;
/// In [`FunctionCapture::flags`]: the site is where Go queues a goroutine to run
/// (`runtime.runqput(pp, gp, next)`), right after creating it: what [`STARTS_GOROUTINE`] kept
/// on this thread becomes `gp`'s ([`GOROUTINE_HANDOFF`]).
pub const QUEUES_GOROUTINE: u32 = 65536;
/// In [`FunctionCapture::flags`]: `keep: errors`, a call is kept only if it fails: it meets
/// [`FunctionCapture::error_when`] (with [`ERROR_WHEN`]) or returns a Go error. Decided at return
/// for a call with no probed callee.
pub const KEEP_ERRORS: u32 = 1 << 17;
/// In [`FunctionCapture::flags`]: [`FunctionCapture::error_when`] holds the return value's
/// `error_when`.
pub const ERROR_WHEN: u32 = 1 << 18;
/// In [`FunctionCapture::flags`]: the entry copies [`FunctionCapture::window_bytes`] of the
/// user stack from RSP up, with the registers an unwinder starts from, and sends them ahead of
/// the call's event (a [`StackWindowHeader`]), for userspace to unwind by the binaries' unwind
/// tables: stacks of code built without frame pointers.
pub const STACK_WINDOW: u32 = 1 << 19;
/// [`HandoffKey::handoff`] of the span a goroutine was started under, keyed by its stack
/// ([`GOROUTINE_STACK`] or'ed with its `g`): adopted by each call that starts on it with none
/// open, until Go reuses the `g` for another goroutine.
pub const GOROUTINE_HANDOFF: u32 = u32::MAX;
/// [`HandoffKey::handoff`] of what [`STARTS_GOROUTINE`] kept, keyed by the thread, for the
/// [`QUEUES_GOROUTINE`] that follows on the same thread.
pub const PENDING_GOROUTINE: u32 = u32::MAX - 1;
/// [`FunctionCapture::sample_threshold`] that keeps every trace.
pub const SAMPLE_ALWAYS: u32 = u32::MAX;
/// In [`FunctionCapture::flags`]: the function has no return probe; its span is sent at entry,
/// with no duration (for Go, whose moving stacks uretprobes corrupt).
pub const ENTRY_ONLY: u32 = 1;
/// In [`FunctionCapture::flags`]: the probe is inside a function, not at its entry (a USDT
/// site): `[rsp]` is no return address. With [`ENTRY_ONLY`] its span is sent at once;
/// without, it opens a span that an [`ENDS_PAIRED_SPAN`] site of its pair closes.
pub const NOT_AT_CALL: u32 = 2;
/// In [`FunctionCapture::flags`]: the site closes the innermost span, if a [`NOT_AT_CALL`]
/// site of its pair opened it (a USDT end site).
pub const ENDS_PAIRED_SPAN: u32 = 4;
/// In [`FunctionCapture::flags`], with [`ENTRY_ONLY`]: the site is an event of the innermost
/// span open on its thread ([`CallEnd::Event`]); a span of its own when none is open.
pub const EVENT_OF_OPEN_SPAN: u32 = 8;
/// In [`FunctionCapture::flags`]: the call's frame goes on its goroutine's stack (a Go
/// function), where positions are measured from the stack's top, which stay put when Go copies
/// the stack elsewhere. Its `RET` sites, probed by the Go program, close it.
pub const ON_GOROUTINE_STACK: u32 = 16;
/// In [`FunctionCapture::flags`]: the site is where every goroutine ends
/// (`runtime.goexit0(gp)`): the calls still open on `gp`'s stack end
/// ([`CallEnd::GoroutineExit`]), and the stack is freed.
pub const ENDS_GOROUTINE: u32 = 64;
/// In [`FunctionCapture::flags`], with [`ON_GOROUTINE_STACK`]: the entry probe is on the
/// prologue's `JBE morestack`, which the kernel emulates where it single-steps the instructions
/// around it; a firing whose branch is taken (CF or ZF set by the stack check) is no entry, as
/// the function starts again once its stack has grown.
pub const AT_STACK_CHECK: u32 = 128;
/// In [`FunctionCapture::flags`]: the site is where a recovered panic resumes
/// (`runtime.recovery(gp)`): the calls on `gp`'s stack below where it resumes (argument 0, the
/// stack pointer, measured against argument 1, the stack's top) were unwound, and end.
pub const RESUMES_AFTER_PANIC: u32 = 256;

/// A completed call with its captured memory: the ring-buffer record of functions that capture
/// memory, built in place from entry to return. The record sent is `header` and the first
/// `header.data_len` bytes of `data`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CallRecord {
    pub header: CallEvent,
    /// Room for [`DATA_MAX`] bytes, plus slack so that a write at any offset below
    /// [`DATA_MAX`] of up to [`DATA_SLACK`] bytes stays inside (the verifier checks that).
    pub data: [u8; DATA_MAX + DATA_SLACK],
}

/// A call in progress, kept on its thread's [`CallStack`] from entry to return.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Frame {
    pub entry_ns: u64,
    /// RSP at entry (pointing at the return address): tells live frames from ones a longjmp or
    /// exception skipped.
    pub sp: u64,
    /// The return address at entry, before the uretprobe replaced it: for stacks, and to tell
    /// a tail call from a longjmp.
    pub return_address: u64,
    /// Entry time of the probed caller (0 for a root), restored as the stack's top on return.
    pub parent_entry_ns: u64,
    pub function_id: u32,
    /// Bit `i`: argument `i`'s chain of pointers hit unreadable memory at entry.
    pub faults: u32,
    /// Non-zero once a probed call was entered inside this one: a call with none is a leaf,
    /// whose keep rules its return decides.
    pub callees: u32,
    pub _pad: u32,
    pub args: [u64; MAX_ARGS],
    /// The trace context of the call: read from its arguments, or its caller's trace id.
    pub context: TraceContext,
}

/// The probed calls in progress on one thread, outermost first.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CallStack {
    /// Calls entered and not yet returned, including ones deeper than [`MAX_DEPTH`].
    pub depth: u32,
    /// Function id of the outermost call in progress.
    pub root_function_id: u32,
    /// Non-zero when the trace of the calls in progress was sampled out: they send nothing.
    pub unsampled: u32,
    pub _pad: u32,
    /// Which stack it is; the pid says, for a goroutine's, which process to watch for its exit
    /// (userspace then ends its calls).
    pub key: StackKey,
    /// Entry time of the outermost call in progress.
    pub root_entry_ns: u64,
    /// Entry time of the innermost call in progress with a frame, 0 when none. Kept here so
    /// neither program has to index the parent's frame.
    pub top_entry_ns: u64,
    /// The uretprobe trampoline's address in this process, once seen (0 before): what a
    /// probed call's return slot holds while it runs.
    pub trampoline: u64,
    /// Room to read a `traceparent` or a string a `when` condition compares into: too large
    /// for the 512-byte BPF stack, and safe here because a thread runs one probe program at a
    /// time.
    pub scratch: [u8; SCRATCH_LEN],
    /// The trace context of the call being entered, built here rather than on the stack (see
    /// the entry program).
    pub entering: TraceContext,
    /// The frame of a call that is never pushed (an entry-only call, a USDT event), filled and
    /// sent at once: a frame is too large for the BPF stack.
    pub unpushed: Frame,
    pub frames: [Frame; MAX_DEPTH],
}

impl CallStack {
    /// The event of the call in `frame`, at `depth` on this stack, run (last) by thread `tid`,
    /// ended as `ending` says, with no captured memory. (Userspace's; the kernel side writes
    /// events in place with [`CallEvent::fill`].)
    pub fn call_event(&self, frame: &Frame, tid: u32, depth: u32, ending: &Ending) -> CallEvent {
        let mut event = CallEvent {
            arg_lens: frame.fault_lens(),
            ..CallEvent::default()
        };
        event.fill(self, frame, tid, depth, ending);
        event
    }

    /// The call in frame `index` has ended: if its trace context dropped its subtree, the calls
    /// after it are sampled again.
    #[inline(always)]
    pub fn resample_after(&mut self, index: u32) {
        if index > 0 && self.unsampled == index + 1 {
            self.unsampled = 0;
        }
    }
}

impl Frame {
    /// [`CallEvent::arg_lens`] marking the arguments whose chain faulted at entry.
    #[inline(always)]
    pub fn fault_lens(&self) -> [u16; MAX_ARGS] {
        let mut lens = [0; MAX_ARGS];
        for (i, len) in lens.iter_mut().enumerate() {
            if self.faults & (1 << i) != 0 {
                *len = MEMORY_FAULT;
            }
        }
        lens
    }
}

/// How and when a call ended, for its event; one argument, since a BPF function takes at most
/// five.
///
/// The fields that are often zero are kept apart by the others: LLVM merges zero stores that
/// add up to 16 bytes or so into a `memset` call, which BPF runs as a byte loop.
#[derive(Clone, Copy, Debug)]
pub struct Ending {
    /// RAX at return (followed along the return value's chain when the event is made), 0 for
    /// a call that did not return.
    pub ret: u64,
    /// `CLOCK_MONOTONIC` nanoseconds.
    pub now: u64,
    /// [`CallEvent::error_type`].
    pub error_type: u64,
    pub end: CallEnd,
    /// [`CallEvent::flags`].
    pub flags: u16,
}

impl Ending {
    /// An ending with no return value.
    #[inline(always)]
    pub fn at(now: u64, end: CallEnd) -> Self {
        Self::returned(now, end, 0, 0)
    }

    /// An ending that returned `ret` (and, for Go, `error_type`), no flags yet.
    #[inline(always)]
    pub fn returned(now: u64, end: CallEnd, ret: u64, error_type: u64) -> Self {
        Ending {
            ret,
            now,
            error_type,
            end,
            flags: 0,
        }
    }
}

/// [`CallStack::scratch`]'s size, in whole words: a `traceparent` and its NUL, or a `when`
/// condition's text and the two bytes that tell a string of its length from a longer one.
pub const SCRATCH_LEN: usize = (MAX_CONDITION_TEXT + 2).next_multiple_of(8);

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all fields are integers, `#[repr(C)]`, with explicit padding fields and no
    // implicit padding, so every bit pattern is a valid value.
    unsafe impl aya::Pod for super::CallEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::Frame {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::CallStack {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::FunctionCapture {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::StackKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::HandoffKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::TraceContext {}
}

// The layouts are part of the kernel/user contract: fail the build if padding sneaks in.
const _: () = assert!(core::mem::size_of::<TraceContext>() == 40);
const _: () = assert!(
    core::mem::size_of::<CallEvent>()
        == 4 * 4 + 8 * 4 + 8 * MAX_ARGS + 8 + 2 * MAX_ARGS + 16 + size_of::<TraceContext>() + 16
);
const _: () = assert!(core::mem::size_of::<ArgCapture>() == 12 + 4 * MAX_CHAIN);
const _: () = assert!(
    core::mem::size_of::<FunctionCapture>()
        == size_of::<ArgCapture>() * (MAX_ARGS + 2) + 40 + 80 * (MAX_CONDITIONS + 1) + 16
);
const _: () =
    assert!(core::mem::size_of::<StackWindowHeader>() == 4 * 8 + 3 * 8 + 8 + 16 * MAX_DEPTH);
const _: () = assert!(core::mem::size_of::<ArgCondition>() == 16 + MAX_CONDITION_TEXT);
// The kernel reads the scratch space a word at a time.
const _: () = assert!(core::mem::offset_of!(CallStack, scratch).is_multiple_of(8));
const _: () = assert!(SCRATCH_LEN.is_multiple_of(8));
const _: () = assert!(core::mem::size_of::<HandoffKey>() == 16);
const _: () = assert!(
    DATA_MAX.is_power_of_two(),
    "the eBPF side masks data offsets"
);
const _: () =
    assert!(core::mem::size_of::<Frame>() == 48 + 8 * MAX_ARGS + size_of::<TraceContext>());
const _: () = assert!(
    core::mem::size_of::<CallStack>()
        == 56 + SCRATCH_LEN + size_of::<TraceContext>() + (MAX_DEPTH + 1) * size_of::<Frame>()
);
const _: () = assert!(TRACEPARENT_LEN < SCRATCH_LEN);
