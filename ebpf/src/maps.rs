//! The maps both sides share, and the globals userspace sets at load.

use aya_ebpf::{
    Global,
    macros::{btf_map, map},
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use spanprobe_common::{
    CallKey, CallRecord, CallStack, Counter, DEFAULT_RING_BYTES, FunctionCapture, HandoffKey,
    MAX_DEPTH, MAX_GOROUTINES, MAX_HANDOFFS, MAX_MEMORY_CALLS, MAX_TREE_PROCESSES, StackKey,
    TraceContext,
};

use crate::task_storage::TaskStorage;

#[map]
pub(crate) static EVENTS: RingBuf = RingBuf::with_byte_size(DEFAULT_RING_BYTES, 0);

/// Bytes this CPU has written to [`EVENTS`] since it last woke the reader.
#[map]
pub(crate) static UNANNOUNCED: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

#[map]
pub(crate) static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(Counter::COUNT, 0);

/// The traced processes when [`FILTER_PIDS`] is set, one bit per pid: bit `pid % 64` of element
/// `pid / 64`. An array lookup is inlined by the verifier, where a hash lookup is a helper call
/// that costs about 100 ns here, twice per call. Sized by userspace to `pid_max`.
#[map]
pub(crate) static TARGET_PIDS: Array<u64> = Array::with_max_entries(1, 0);

/// Each thread's call stack, found from the running task by the kernel: a hash lookup here
/// costs twice as much, and the stack is freed with its thread however it ends.
#[btf_map]
pub(crate) static THREAD_STACKS: TaskStorage<CallStack> = TaskStorage::new();

/// Each goroutine's call stack, by [`StackKey`]: a goroutine runs on any thread.
#[map]
pub(crate) static GOROUTINE_STACKS: LruHashMap<StackKey, CallStack> =
    LruHashMap::with_max_entries(MAX_GOROUTINES, 0);

/// Spans handed off at a `from` site, for the `to` site that reads the same key (see
/// `HANDOFFS_MAP`): least recently used first out, since a `to` may never come.
#[map]
pub(crate) static HANDOFFS: LruHashMap<HandoffKey, TraceContext> =
    LruHashMap::with_max_entries(MAX_HANDOFFS, 0);

/// Sized by userspace to the number of functions.
#[map]
pub(crate) static FUNCTIONS: Array<FunctionCapture> = Array::with_max_entries(1, 0);

/// Records of calls in progress that capture memory, keyed by [`call_key`].
/// See [`PROCESS_TREES_MAP`](spanprobe_common::PROCESS_TREES_MAP).
#[map]
pub(crate) static PROCESS_TREES: HashMap<u32, u64> =
    HashMap::with_max_entries(MAX_TREE_PROCESSES, 0);

#[unsafe(no_mangle)]
pub(crate) static PROCESS_TREES_USED: Global<u8> = Global::new(0);

#[unsafe(no_mangle)]
pub(crate) static READS_AT_RETURN_USED: Global<u8> = Global::new(0);

/// Set by userspace when some function's keep rules are decided at return (see
/// `KEEP_AT_RETURN_GLOBAL`).
#[unsafe(no_mangle)]
pub(crate) static KEEP_AT_RETURN: Global<u8> = Global::new(0);

/// Set by userspace when goroutines join their creators' traces (see `GOROUTINE_PARENTS_GLOBAL`).
#[unsafe(no_mangle)]
pub(crate) static GOROUTINE_PARENTS: Global<u8> = Global::new(0);

#[map]
pub(crate) static CALLS: LruHashMap<CallKey, CallRecord> =
    LruHashMap::with_max_entries(MAX_MEMORY_CALLS, 0);

/// Never written: its all-zero element is the template for a new, empty thread stack, which
/// is too large to build on the 512-byte BPF stack.
#[map]
pub(crate) static EMPTY_STACK: PerCpuArray<CallStack> = PerCpuArray::with_max_entries(1, 0);

/// Any value will do as the initial content of a call record; this one is never written.
#[map]
pub(crate) static EMPTY_RECORD: PerCpuArray<CallRecord> = PerCpuArray::with_max_entries(1, 0);

#[unsafe(no_mangle)]
pub(crate) static FILTER_PIDS: Global<u8> = Global::new(0);

#[unsafe(no_mangle)]
pub(crate) static DEPTH_LIMIT: Global<u32> = Global::new(MAX_DEPTH as u32);

/// Set by userspace when some function reads a trace context (see `TRACE_CONTEXTS_GLOBAL`).
#[unsafe(no_mangle)]
pub(crate) static TRACE_CONTEXTS: Global<u8> = Global::new(0);

/// Set by userspace when some function captures stacks: every entry then reads its return
/// address (see `try_entry`).
#[unsafe(no_mangle)]
pub(crate) static RETURN_ADDRESSES: Global<u8> = Global::new(0);

/// Bytes each CPU writes before it wakes the reader: set by userspace to a quarter of the ring
/// shared among the CPUs, so that the ring cannot fill before some CPU wakes it.
#[unsafe(no_mangle)]
pub(crate) static WAKEUP_BYTES: Global<u64> = Global::new((DEFAULT_RING_BYTES / 4) as u64);

/// See `STACK_WINDOW_BYTES_GLOBAL`.
#[unsafe(no_mangle)]
pub(crate) static STACK_WINDOW_BYTES: Global<u32> = Global::new(0);

#[unsafe(no_mangle)]
pub(crate) static TASK_TGID_OFFSET: Global<u32> = Global::new(0);
