//! Data shared by spanprobe's eBPF programs and its userspace: the event layout, the per-thread
//! call stack, counter slots and map names. Everything here is defined once and used by both
//! sides, so the two can never disagree about a byte.
#![no_std]

/// Arguments captured at entry: the six System V integer argument registers
/// (RDI, RSI, RDX, RCX, R8, R9), in that order.
pub const MAX_ARGS: usize = 6;

/// Nesting depth tracked per thread. Deeper calls are counted ([`Counter::DepthExceeded`]) and
/// produce no span; the calls around them are unaffected.
pub const MAX_DEPTH: usize = 32;

/// Ring buffer the return program writes one [`CallEvent`] per completed call into.
pub const EVENTS_MAP: &str = "EVENTS";
/// Per-CPU `u64` counters, indexed by [`Counter`].
pub const COUNTERS_MAP: &str = "COUNTERS";
/// Process ids (tgid) to trace when [`FILTER_PIDS_GLOBAL`] is set.
pub const TARGET_PIDS_MAP: &str = "TARGET_PIDS";
/// Per-thread call stacks ([`ThreadStack`]), keyed by thread id.
pub const THREADS_MAP: &str = "THREADS";

/// Global (`u8`): when non-zero, only processes in [`TARGET_PIDS_MAP`] are traced.
pub const FILTER_PIDS_GLOBAL: &str = "FILTER_PIDS";
/// Global (`u64`): the return program wakes the reader once this many bytes are pending;
/// below it the reader drains on its own timer, so a burst of calls costs one wakeup.
pub const WAKEUP_BYTES_GLOBAL: &str = "WAKEUP_BYTES";

/// Default ring-buffer size in bytes (a power of two, as the kernel requires).
pub const DEFAULT_RING_BYTES: u32 = 8 << 20;

/// Maximum number of threads with a live call stack; least recently used stacks are evicted.
pub const MAX_THREADS: u32 = 16384;

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
}

impl Counter {
    /// Every counter, in slot order.
    pub const ALL: [Counter; 4] = [
        Counter::RingBufFull,
        Counter::DepthExceeded,
        Counter::ReturnWithoutEntry,
        Counter::NoThreadStack,
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
    /// Raw argument registers at entry.
    pub args: [u64; MAX_ARGS],
    /// Raw RAX at return.
    pub ret: u64,
}

/// A call in progress, kept on its thread's [`ThreadStack`] from entry to return.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Frame {
    pub entry_ns: u64,
    /// Entry time of the probed caller (0 for a root), restored as the stack's top on return.
    pub parent_entry_ns: u64,
    pub function_id: u32,
    pub _pad: u32,
    pub args: [u64; MAX_ARGS],
}

/// The probed calls in progress on one thread, outermost first.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ThreadStack {
    /// Calls entered and not yet returned, including ones deeper than [`MAX_DEPTH`].
    pub depth: u32,
    pub _pad: u32,
    /// Entry time of the outermost call in progress.
    pub root_entry_ns: u64,
    /// Entry time of the innermost call in progress with a frame, 0 when none. Kept here so
    /// neither program has to index the parent's frame.
    pub top_entry_ns: u64,
    pub frames: [Frame; MAX_DEPTH],
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all fields are integers, `#[repr(C)]`, with explicit padding fields and no
    // implicit padding, so every bit pattern is a valid value.
    unsafe impl aya::Pod for super::CallEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::Frame {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ThreadStack {}
}

// The layouts are part of the kernel/user contract: fail the build if padding sneaks in.
const _: () = assert!(core::mem::size_of::<CallEvent>() == 4 * 4 + 8 * 4 + 8 * MAX_ARGS + 8);
const _: () = assert!(core::mem::size_of::<Frame>() == 24 + 8 * MAX_ARGS);
const _: () = assert!(core::mem::size_of::<ThreadStack>() == 24 + MAX_DEPTH * size_of::<Frame>());
