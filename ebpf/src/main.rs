//! A few entry programs and one return program serve every probed function: the BPF cookie of
//! each attachment says which function fired. An entry program pushes a frame on the thread's
//! call stack; the return program pops it and emits one [`CallEvent`] per completed call.
#![no_std]
#![no_main]
// `atomic_or`, for the pid bitmap shared by every CPU.
#![feature(core_intrinsics)]
#![expect(internal_features, reason = "core_intrinsics: see `try_fork`")]

use core::{
    ffi::c_void,
    intrinsics::{AtomicOrdering, atomic_or},
    ptr::write_volatile,
};

use aya_ebpf::{
    EbpfContext as _, Global,
    bindings::{BPF_ANY, BPF_NOEXIST, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP, pt_regs},
    helpers::{
        bpf_get_attach_cookie, bpf_get_current_pid_tgid, bpf_get_prandom_u32, bpf_ktime_get_ns,
        generated::{
            bpf_copy_from_user, bpf_loop, bpf_probe_read_kernel, bpf_probe_read_user,
            bpf_probe_read_user_str, bpf_ringbuf_output,
        },
    },
    macros::{btf_map, map, raw_tracepoint, uprobe, uretprobe},
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
    programs::{ProbeContext, RawTracePointContext, RetProbeContext},
};
use spanprobe_common::{
    ArgCapture, ArgSource, CallEnd, CallEvent, CallKey, CallRecord, ContextFormat, ContextPolicy,
    Counter, DATA_MAX, DEFAULT_RING_BYTES, ENTRY_ONLY, Ending, Frame, FunctionCapture, GO_CALL,
    GO_EXIT, GO_RECOVERY, GO_STACK_CHECK, GOROUTINE_STACK, MAX_ARGS, MAX_CHAIN, MAX_DEPTH,
    MAX_GOROUTINES, MAX_MEMORY_CALLS, MAX_STACK_FRAMES, MAX_TREE_PROCESSES, MEMORY_FAULT,
    MEMORY_READ_MAX, MemoryKind, NOT_READ, READ_AT_RETURN, RETURN_FAULT, SAMPLE_ALWAYS,
    SCRATCH_LEN, StackKey, TRACEPARENT_LEN, ThreadStack, TraceContext, USDT_END, USDT_EVENT,
    USDT_START,
};

mod at_return;
mod task_storage;

use task_storage::TaskStorage;

#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(DEFAULT_RING_BYTES, 0);

/// Bytes this CPU has written to [`EVENTS`] since it last woke the reader.
#[map]
static UNANNOUNCED: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(Counter::COUNT, 0);

/// The traced processes when [`FILTER_PIDS`] is set, one bit per pid: bit `pid % 64` of element
/// `pid / 64`. An array lookup is inlined by the verifier, where a hash lookup is a helper call
/// that costs about 100 ns here, twice per call. Sized by userspace to `pid_max`.
#[map]
static TARGET_PIDS: Array<u64> = Array::with_max_entries(1, 0);

/// Each thread's call stack, found from the running task by the kernel: a hash lookup here
/// costs twice as much, and the stack is freed with its thread however it ends.
#[btf_map]
static THREAD_STACKS: TaskStorage<ThreadStack> = TaskStorage::new();

/// Each goroutine's call stack, by [`StackKey`]: a goroutine runs on any thread.
#[map]
static GOROUTINE_STACKS: LruHashMap<StackKey, ThreadStack> =
    LruHashMap::with_max_entries(MAX_GOROUTINES, 0);

/// Sized by userspace to the number of functions.
#[map]
static FUNCTIONS: Array<FunctionCapture> = Array::with_max_entries(1, 0);

/// Records of calls in progress that capture memory, keyed by [`call_key`].
/// See [`PROCESS_TREES_MAP`](spanprobe_common::PROCESS_TREES_MAP).
#[map]
static PROCESS_TREES: HashMap<u32, u64> = HashMap::with_max_entries(MAX_TREE_PROCESSES, 0);

#[unsafe(no_mangle)]
static PROCESS_TREES_USED: Global<u8> = Global::new(0);

#[unsafe(no_mangle)]
static READS_AT_RETURN_USED: Global<u8> = Global::new(0);

#[map]
static CALLS: LruHashMap<CallKey, CallRecord> = LruHashMap::with_max_entries(MAX_MEMORY_CALLS, 0);

/// Never written: its all-zero element is the template for a new, empty thread stack, which
/// is too large to build on the 512-byte BPF stack.
#[map]
static EMPTY_STACK: PerCpuArray<ThreadStack> = PerCpuArray::with_max_entries(1, 0);

/// Any value will do as the initial content of a call record; this one is never written.
#[map]
static EMPTY_RECORD: PerCpuArray<CallRecord> = PerCpuArray::with_max_entries(1, 0);

#[unsafe(no_mangle)]
static FILTER_PIDS: Global<u8> = Global::new(0);

#[unsafe(no_mangle)]
static DEPTH_LIMIT: Global<u32> = Global::new(MAX_DEPTH as u32);

/// Set by userspace when some function reads a trace context (see `TRACE_CONTEXTS_GLOBAL`).
#[unsafe(no_mangle)]
static TRACE_CONTEXTS: Global<u8> = Global::new(0);

/// Set by userspace when some function captures stacks: every entry then reads its return
/// address (see `try_entry`).
#[unsafe(no_mangle)]
static RETURN_ADDRESSES: Global<u8> = Global::new(0);

/// [`Frame::return_address`] of a USDT span's frame, which has no return slot, and of a Go
/// call's, whose return slot no probe changes.
const NOT_A_CALL: u64 = u64::MAX;

/// Where positions on a goroutine's stack are measured from: a frame's [`Frame::sp`] there is
/// this less its distance from the stack's top, so that deeper frames are lower, as on a
/// thread's stack, and stay put when Go copies the stack elsewhere to grow it.
const GOROUTINE_TOP: u64 = 1 << 62;

/// EFLAGS' carry and zero flags: `JBE` branches when either is set.
const CARRY: u64 = 1;
const ZERO: u64 = 1 << 6;

/// The offset of `stack.hi`, the top of a goroutine's stack, in `runtime.g`: its first field
/// is the `stack` (`lo`, `hi`), fixed because the runtime's assembly relies on it.
const G_STACK_HI: u64 = 8;

/// Bytes each CPU writes before it wakes the reader: set by userspace to a quarter of the ring
/// shared among the CPUs, so that the ring cannot fill before some CPU wakes it.
#[unsafe(no_mangle)]
static WAKEUP_BYTES: Global<u64> = Global::new((DEFAULT_RING_BYTES / 4) as u64);

#[unsafe(no_mangle)]
static TASK_TGID_OFFSET: Global<u32> = Global::new(0);

// Every program comes twice: in a `uprobe.multi` section, attached through one uprobe_multi link
// per binary (detached in one go, and needing no CAP_SYS_ADMIN), and in a plain `uprobe`
// section, the perf-event fallback for kernels without such links. Userspace loads only the
// variant it attaches; the bodies are shared.
macro_rules! both_variants {
    ($(#[$doc:meta])* $kind:ident($($flag:ident),*) $multi:ident, $perf:ident,
     $context:ty => $run:expr) => {
        $(#[$doc])*
        #[$kind(multi $(, $flag)*)]
        pub fn $multi(ctx: $context) -> u32 {
            let _ = ($run)(&ctx);
            0
        }

        #[$kind($($flag),*)]
        pub fn $perf(ctx: $context) -> u32 {
            let _ = ($run)(&ctx);
            0
        }
    };
}

both_variants! {
    uprobe() spanprobe_entry, spanprobe_entry_perf,
    ProbeContext => |ctx| try_entry(ctx, Faults::Fail, Stacks::Thread)
}

both_variants! {
    /// The entry program of functions that read memory their arguments point to, or keep a
    /// call record: sleepable, so that it may fault in pages the traced program has not touched
    /// yet (a string literal on a cold page, say). Only these fill call records (memory,
    /// stacks), so that `spanprobe_entry` loads without verifying that code, most of an entry
    /// program's.
    uprobe(sleepable) spanprobe_entry_sleepable, spanprobe_entry_sleepable_perf,
    ProbeContext => |ctx| try_entry(ctx, Faults::Allowed, Stacks::Thread)
}

both_variants! {
    /// The entry programs of Go calls, whose frames go on their goroutine's stack: programs of
    /// their own, because a program that may use either kind of stack has the rest of its code
    /// verified once per kind (the two maps' values are different pointers to the verifier),
    /// which doubled the start-up of configurations with no Go at all.
    uprobe() spanprobe_go_entry, spanprobe_go_entry_perf,
    ProbeContext => |ctx| try_entry(ctx, Faults::Fail, Stacks::Goroutine)
}

both_variants! {
    uprobe(sleepable) spanprobe_go_entry_sleepable, spanprobe_go_entry_sleepable_perf,
    ProbeContext => |ctx| try_entry(ctx, Faults::Allowed, Stacks::Goroutine)
}

/// Which call stacks an entry program works on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stacks {
    /// The thread's own, in task storage.
    Thread,
    /// The running goroutine's, in a hash map: Go calls.
    Goroutine,
}

/// Whether the running program may fault user pages in: a sleepable program may. Those are
/// also the programs that fill call records (see `spanprobe_entry_sleepable`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Faults {
    Fail,
    Allowed,
}

both_variants! {
    /// The uprobe of a Go binary's other sites: its functions' `RET`s, and the runtime's
    /// `goexit0` and `recovery`. A program of its own, so that the entry program's
    /// verification, most of spanprobe's start-up, carries none of it.
    uprobe() spanprobe_go, spanprobe_go_perf, ProbeContext => try_go
}

fn try_go(ctx: &ProbeContext) -> Option<()> {
    // SAFETY: the helper takes no arguments and cannot fail.
    let now = unsafe { bpf_ktime_get_ns() };
    let thread = traced_thread()?;
    let capture = FUNCTIONS.get(function_id(ctx.as_ptr()))?;
    if !in_process_tree(thread.pid, capture.process_tree) {
        return None;
    }
    let regs = registers(ctx.as_ptr());
    if capture.flags & GO_RECOVERY != 0 {
        return go_recovered(&thread, capture, regs, now);
    }
    if capture.flags & GO_EXIT != 0 {
        // runtime.goexit0(gp *g): gp in RAX.
        let goroutine = thread.stack(GOROUTINE_STACK | regs.rax);
        return end_stack(&thread, &goroutine, now, CallEnd::GoroutineExit);
    }
    let place = stack_place(&thread, Stacks::Goroutine, regs)?;
    go_return(&thread, &place, capture, regs, now)
}

both_variants! {
    uretprobe() spanprobe_return, spanprobe_return_perf, RetProbeContext => try_return
}

fn try_entry(ctx: &ProbeContext, faults: Faults, stacks: Stacks) -> Option<()> {
    // SAFETY: the helper takes no arguments and cannot fail.
    let now = unsafe { bpf_ktime_get_ns() };
    let thread = traced_thread()?;
    let function_id = function_id(ctx.as_ptr());
    let capture = FUNCTIONS.get(function_id)?;
    if !in_process_tree(thread.pid, capture.process_tree) {
        return None;
    }
    let regs = registers(ctx.as_ptr());
    if capture.flags & USDT_END != 0 {
        return end_usdt_span(&thread, capture, regs, now);
    }
    // The stack check's branch to morestack is taken: the function starts again once its stack
    // has grown, and enters then.
    if capture.flags & GO_STACK_CHECK != 0 && regs.eflags & (CARRY | ZERO) != 0 {
        return None;
    }
    // Go calls are attached to the goroutine programs only; nothing else is.
    if (capture.flags & GO_CALL != 0) != (stacks == Stacks::Goroutine) {
        return None;
    }
    let place = stack_place(&thread, stacks, regs)?;
    let stack = stack_or_insert(&place.key, stacks)?;
    // A USDT site is inside its function: `[rsp]` is whatever that function keeps there. Go
    // calls get no return probe, so their return slot needs no watching.
    let at_call = capture.flags & (USDT_START | GO_CALL) == 0;
    // A live caller's frame is above us on the stack; one below our return address was
    // skipped by a longjmp (or a Go panic that was recovered).
    end_frames_below(thread.tid, stack, place.sp, now, CallEnd::Unwound);
    let top = stack
        .depth
        .checked_sub(1)
        .and_then(|top| frame_at(stack, top));
    // One at our return address is either a caller that tail-called us (its return slot is
    // ours, and holds the uretprobe trampoline) or one that a longjmp skipped before we were
    // called from the same depth (the slot holds a real return address). Reading `[rsp]` is
    // the dearest thing an entry does (~150 ns, hardened usercopy): it is read only for that,
    // or when stacks are captured, which show the real return addresses of outer calls.
    let same_place = top.as_ref().is_some_and(|top| top.sp == place.sp);
    let return_address = if !at_call {
        NOT_A_CALL
    } else if same_place || RETURN_ADDRESSES.load() != 0 {
        read_user_u64(regs.rsp)
    } else {
        0
    };
    // A USDT span of this pair still open at this very stack position never got its end: a
    // longjmp left it (PostgreSQL's error handling does), and the same code starts again. So
    // with a Go call there: a panic unwound it, recovered by an unprobed caller that made
    // another call. (A Go function that jumps to another, as a few method wrappers do, is
    // ended as unwound then, too.)
    if !at_call
        && let Some(top) = &top
        && top.sp == place.sp
        && top.return_address == NOT_A_CALL
        && (capture.flags & GO_CALL != 0
            || FUNCTIONS
                .get(top.function_id)
                .is_some_and(|start| start.pair == capture.pair))
    {
        end_frames_below(thread.tid, stack, place.sp + 1, now, CallEnd::Unwound);
    }
    if at_call
        && let Some(top) = &top
        // A USDT span's frame has no return slot.
        && top.return_address != NOT_A_CALL
    {
        if top.sp > regs.rsp && stack.trampoline == 0 {
            // Truly nested: the caller's return slot shows what the trampoline looks like.
            stack.trampoline = read_user_u64(top.sp);
        }
        let tail_call = if stack.trampoline != 0 {
            return_address == stack.trampoline
        } else if top.return_address != 0 {
            return_address != top.return_address
        } else {
            // Neither known: this thread has not nested a probed call yet, and the caller's
            // return address was not read. A tail call is the likelier.
            true
        };
        if top.sp == place.sp && !tail_call {
            end_frames_below(thread.tid, stack, place.sp + 1, now, CallEnd::Unwound);
        }
    }
    let depth = stack.depth;
    if depth == 0 {
        stack.root_entry_ns = now;
        stack.root_function_id = function_id;
        stack.unsampled = u32::from(!sampled(capture.sample_threshold));
    }
    // The caller's trace, unless this call was handed a valid context of its own, which then
    // decides whether the call and its callees are kept.
    // Built in the thread's stack entry, and copied a word at a time: LLVM turns a
    // `TraceContext` built or copied whole into calls to `memset`/`memmove`, which run as
    // byte loops here and cost every call tens of nanoseconds.
    clear_context(&mut stack.entering);
    // Functions that read a context get the sleepable programs (it is read from user memory).
    let read = if faults == Faults::Fail || capture.context_format == ContextFormat::None as u8 {
        ContextRead::Absent
    } else {
        read_context(
            regs,
            capture,
            faults,
            &mut stack.scratch,
            &mut stack.entering,
        )
    };
    let keep = match read {
        ContextRead::Sampled | ContextRead::NotSampled => Some(
            if capture.context_policy == ContextPolicy::FollowParent as u8 {
                read == ContextRead::Sampled
            } else {
                trace_id_sampled(&stack.entering.trace_id, capture.sample_threshold)
            },
        ),
        ContextRead::Absent | ContextRead::Invalid => {
            if read == ContextRead::Invalid {
                count(Counter::InvalidTraceContext);
                clear_context(&mut stack.entering);
            }
            // Callees inherit their caller's trace; with no context anywhere, every trace id
            // is zero, so nothing needs carrying.
            if TRACE_CONTEXTS.load() != 0
                && let Some(top) = depth.checked_sub(1)
            {
                trace_id_at(&stack.frames, top, &mut stack.entering.trace_id);
            }
            None
        }
    };
    // An entry-only call is sent at once from a frame that is never pushed; any other is
    // pushed, and sent when it returns.
    let entry_only = capture.flags & ENTRY_ONLY != 0;
    if entry_only {
        if keep == Some(false) || stack.unsampled != 0 {
            free_if_idle(stack);
            return Some(());
        }
    } else {
        match keep {
            Some(keep) if depth == 0 => stack.unsampled = u32::from(!keep),
            // A nested call drops its own subtree, remembering where (its frame index plus
            // one) to undo that when it ends.
            Some(false) if stack.unsampled == 0 => stack.unsampled = depth + 1,
            _ => {}
        }
        // Counted even past the limit, so that the matching returns pop the right frames.
        stack.depth = depth.wrapping_add(1);
        if depth >= depth_limit() {
            count(Counter::DepthExceeded);
            return None;
        }
    }
    let frame = if entry_only {
        &mut stack.unpushed
    } else {
        let Some(frame) = stack.frames.get_mut(depth as usize) else {
            count(Counter::DepthExceeded);
            return None;
        };
        frame
    };
    frame.parent_entry_ns = stack.top_entry_ns;
    frame.entry_ns = now;
    frame.sp = place.sp;
    frame.function_id = function_id;
    frame.return_address = return_address;
    copy_context(&mut frame.context, &stack.entering);
    if !entry_only {
        stack.top_entry_ns = now;
        if stack.unsampled != 0 {
            // Kept for pairing entries with returns; nothing to capture.
            return Some(());
        }
    }
    // Read in place: an array of arguments is too large for the BPF stack.
    frame.faults = read_args(&mut frame.args, regs, capture, faults, Unread::Zeroed);
    let stack = &*stack;
    let (frame, slot) = if entry_only {
        (&stack.unpushed, ENTRY_ONLY_SLOT)
    } else {
        (stack.frames.get(depth as usize)?, depth)
    };
    if faults == Faults::Allowed && capture.data_len > 0 {
        fill_record(stack, frame, slot, regs, capture);
    }
    if entry_only {
        emit_unpushed(thread.tid, stack, capture);
        free_if_idle(stack);
    }
    Some(())
}

/// Fills the record of the call in `frame` with what its function keeps until return (the
/// memory its arguments point to, its stack). `slot` is where the record is kept: the frame's
/// depth, or [`ENTRY_ONLY_SLOT`] for the [`ThreadStack::unpushed`] frame; either way the
/// calls outside it are the stack's first `slot.min(stack.depth)`. Only the sleepable entry
/// programs fill records (see `spanprobe_entry_sleepable`). Out of line, so that its locals
/// are never on the BPF stack with its callers'.
#[inline(never)]
fn fill_record(
    stack: &ThreadStack,
    frame: &Frame,
    slot: u32,
    regs: &pt_regs,
    capture: &FunctionCapture,
) {
    let Some(record) = call_record(call_key(&stack.key, slot)) else {
        return;
    };
    capture_memory(regs, record, capture, &frame.args);
    if capture.stack_frames > 0 {
        let depth = slot.min(stack.depth);
        capture_stack(record, capture, stack, depth, regs, frame.return_address);
    }
}

/// Frames kept per thread: the configured limit, within the map's capacity.
#[inline(always)]
fn depth_limit() -> u32 {
    DEPTH_LIMIT.load().min(MAX_DEPTH as u32)
}

/// Decides, at a trace's root, whether the trace is kept.
#[inline(always)]
fn sampled(threshold: u32) -> bool {
    // SAFETY: the helper takes no arguments and cannot fail.
    threshold == SAMPLE_ALWAYS || unsafe { bpf_get_prandom_u32() } < threshold
}

/// Decides by the trace id, as OpenTelemetry's `TraceIdRatioBased` does: its last four
/// bytes, random in a W3C trace id, against the threshold.
#[inline(always)]
fn trace_id_sampled(trace_id: &[u64; 2], threshold: u32) -> bool {
    let bytes = trace_id[1].to_ne_bytes();
    let low = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    threshold == SAMPLE_ALWAYS || low < threshold
}

/// What [`read_context`] found.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ContextRead {
    /// The function takes no context.
    Absent,
    /// The argument holds no valid context.
    Invalid,
    /// A valid context whose parent was sampled (or that carries no flag).
    Sampled,
    /// A valid context whose parent was not sampled.
    NotSampled,
}

/// Reads the trace context the caller passed into `context` (using `text` to read a
/// `traceparent` into). Out of line, to keep its locals off the entry program's stack.
#[inline(never)]
fn read_context(
    regs: &pt_regs,
    capture: &FunctionCapture,
    faults: Faults,
    text: &mut [u8; SCRATCH_LEN],
    context: &mut TraceContext,
) -> ContextRead {
    let valid = |context: &TraceContext, sampled: bool| {
        // W3C: an all-zero trace id or parent id is invalid.
        if context.trace_id == [0; 2] || context.parent_span_id == 0 {
            ContextRead::Invalid
        } else if sampled {
            ContextRead::Sampled
        } else {
            ContextRead::NotSampled
        }
    };
    let pointer = read_arg(regs, capture.context_source, capture.context_slot);
    if capture.context_format == ContextFormat::Ids as u8 {
        let span_pointer = read_arg(regs, capture.span_id_source, capture.span_id_slot);
        if read_user(&mut context.trace_id, pointer, faults).is_none()
            || read_user(&mut context.parent_span_id, span_pointer, faults).is_none()
        {
            return ContextRead::Invalid;
        }
        return valid(context, true);
    }
    // `00-` trace id `-` parent id `-` flags, and the NUL; one byte more tells a longer string.
    const READ: u32 = TRACEPARENT_LEN as u32 + 2;
    if faults == Faults::Allowed {
        // SAFETY: `text` has room for the byte; a sleepable program is running.
        unsafe { fault_in(text.as_mut_ptr().cast(), pointer, READ) };
    }
    // SAFETY: writes at most READ bytes into `text`, which is longer; faults fail safely.
    let read = unsafe {
        bpf_probe_read_user_str(text.as_mut_ptr().cast(), READ, pointer as *const c_void)
    };
    // Exactly one length is valid (the count includes the NUL); version 00 only, since a later
    // version may lay the fields out differently.
    if read != TRACEPARENT_LEN as i64 + 1
        || text[..3] != *b"00-"
        || text[35] != b'-'
        || text[52] != b'-'
    {
        return ContextRead::Invalid;
    }
    // Each byte into its place in the words, in memory order (the target is little-endian).
    for i in 0..16 {
        let Some(value) = hex_byte(text[3 + 2 * i], text[4 + 2 * i]) else {
            return ContextRead::Invalid;
        };
        context.trace_id[i / 8] |= u64::from(value) << (8 * (i % 8));
    }
    for i in 0..8 {
        let Some(value) = hex_byte(text[36 + 2 * i], text[37 + 2 * i]) else {
            return ContextRead::Invalid;
        };
        context.parent_span_id |= u64::from(value) << (8 * i);
    }
    match hex_byte(text[53], text[54]) {
        Some(flags) => valid(context, flags & 1 != 0),
        None => ContextRead::Invalid,
    }
}

/// Two lowercase hex digits (W3C allows no other case) as a byte.
#[inline(always)]
fn hex_byte(high: u8, low: u8) -> Option<u8> {
    Some((hex_digit(high)? << 4) | hex_digit(low)?)
}

#[inline(always)]
fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// Fills `out` (plain integers) from user memory at `pointer`, faulting pages in where the
/// program may.
#[inline(always)]
fn read_user<T: Copy>(out: &mut T, pointer: u64, faults: Faults) -> Option<()> {
    let destination = (out as *mut T).cast::<c_void>();
    let len = size_of::<T>() as u32;
    // SAFETY: writes at most size_of::<T>() bytes into `out`, a `T` of plain integers (any
    // bytes are a valid value); the helpers fail safely on bad pointers.
    let result = unsafe {
        if faults == Faults::Allowed {
            bpf_copy_from_user(destination, len, pointer as *const c_void)
        } else {
            bpf_probe_read_user(destination, len, pointer as *const c_void)
        }
    };
    (result == 0).then_some(())
}

/// Sends the span of an entry-only call at once (or an event of the innermost open span): no
/// duration, and a frame that is never pushed ([`ThreadStack::unpushed`], which the entry
/// filled, with its memory and stack in the thread's record at [`ENTRY_ONLY_SLOT`], free again
/// once sent). Out of line, so that its locals are never on the BPF stack with the entry's
/// callees'.
#[inline(never)]
fn emit_unpushed(tid: u32, stack: &ThreadStack, capture: &FunctionCapture) {
    // An event belongs to the innermost open span, when there is one.
    let end = if capture.flags & USDT_EVENT != 0 && stack.top_entry_ns != 0 {
        CallEnd::Event
    } else {
        CallEnd::EntryOnly
    };
    let frame = &stack.unpushed;
    let ending = Ending::at(frame.entry_ns, end);
    let key = call_key(&stack.key, ENTRY_ONLY_SLOT);
    send(tid, stack, frame, stack.depth + 1, &ending, key);
}

/// The depth an entry-only call's record is kept at: beyond any frame's.
const ENTRY_ONLY_SLOT: u32 = MAX_DEPTH as u32;

/// A USDT site that ends a span: the innermost open span, when a start of the same pair opened
/// it (its arguments already read); otherwise counted as an end without its start (the probes
/// were attached while the span was open, or a longjmp skipped it).
#[inline(always)]
fn end_usdt_span(
    thread: &Thread,
    capture: &FunctionCapture,
    regs: &pt_regs,
    now: u64,
) -> Option<()> {
    let Some(stack) = existing_stack(&thread.own_stack()) else {
        count(Counter::ReturnWithoutEntry);
        return None;
    };
    // Frames entered below this site were skipped by a longjmp.
    end_frames_below(thread.tid, stack, regs.rsp, now, CallEnd::Unwound);
    if stack.depth == 0 {
        count(Counter::ReturnWithoutEntry);
        return None;
    }
    // A start past the depth limit has no frame; it was counted at entry. As `try_return`
    // does, the end pops it.
    if stack.depth > depth_limit() {
        stack.depth -= 1;
        return None;
    }
    let top = frame_at(stack, stack.depth - 1)?;
    if FUNCTIONS.get(top.function_id).map(|start| start.pair) != Some(capture.pair) {
        count(Counter::ReturnWithoutEntry);
        return None;
    }
    stack.depth -= 1;
    stack.top_entry_ns = top.parent_entry_ns;
    store_end_args(stack, stack.depth, capture, regs);
    emit_call(
        thread.tid,
        stack,
        stack.depth,
        &Ending::at(now, CallEnd::Returned),
    );
    stack.resample_after(stack.depth);
    Some(())
}

/// Reads the arguments of the site that ends the span in frame `index` into that frame, in
/// the slots after the start's (the end site's capture leaves those unused). Out of line, like
/// [`frame_at`], so that the verifier bounds the frame's index where it is used.
#[inline(never)]
fn store_end_args(stack: &mut ThreadStack, index: u32, capture: &FunctionCapture, regs: &pt_regs) {
    let Some(frame) = stack.frames.get_mut(index as usize) else {
        return;
    };
    frame.faults |= read_args(&mut frame.args, regs, capture, Faults::Fail, Unread::Kept);
}

fn try_return(ctx: &RetProbeContext) -> Option<()> {
    // SAFETY: the helper takes no arguments and cannot fail.
    let now = unsafe { bpf_ktime_get_ns() };
    let thread = traced_thread()?;
    // The return probe fires in every process the entry's did, traced or not: one outside the
    // function's tree has no call to end, and is no return without entry either.
    if PROCESS_TREES_USED.load() != 0
        && FUNCTIONS
            .get(function_id(ctx.as_ptr()))
            .is_some_and(|capture| !in_process_tree(thread.pid, capture.process_tree))
    {
        return None;
    }
    let regs = registers(ctx.as_ptr());
    let Some(stack) = existing_stack(&thread.own_stack()) else {
        count(Counter::ReturnWithoutEntry);
        return None;
    };
    // `ret` popped the return address: the returning call entered at rsp - 8.
    let ending = Ending::returned(now, CallEnd::Returned, regs.rax, 0);
    return_from(&thread, stack, regs.rsp - 8, None, &ending)
}

/// A `RET` of a Go function: the call that entered at the same place of the goroutine's stack
/// returns, with its results in the registers.
#[inline(always)]
fn go_return(
    thread: &Thread,
    place: &StackPlace,
    capture: &FunctionCapture,
    regs: &pt_regs,
    now: u64,
) -> Option<()> {
    let Some(stack) = existing_stack(&place.key) else {
        count(Counter::ReturnWithoutEntry);
        return None;
    };
    let error_type = match capture.error_register.checked_sub(1) {
        Some(register) => read_arg(regs, ArgSource::Gpr as u8, register),
        None => 0,
    };
    let ending = Ending::returned(now, CallEnd::Returned, regs.rax, error_type);
    return_from(thread, stack, place.sp, Some(capture.pair), &ending)
}

/// The call on top of `stack`, which entered at `sp`, has returned: its event is sent. Frames
/// entered below `sp` were skipped (by a longjmp, an exception, a recovered Go panic) and end
/// as unwound. With `pair`, the top frame must be of a function of that pair (a Go `RET`
/// names its function); otherwise its position alone tells it.
#[inline(always)]
fn return_from(
    thread: &Thread,
    stack: &mut ThreadStack,
    sp: u64,
    pair: Option<u32>,
    ending: &Ending,
) -> Option<()> {
    end_frames_below(thread.tid, stack, sp, ending.now, CallEnd::Unwound);
    if stack.depth == 0 {
        count(Counter::ReturnWithoutEntry);
        return None;
    }
    // A call past the depth limit has no frame; it was counted at entry.
    if stack.depth > depth_limit() {
        stack.depth -= 1;
        return None;
    }
    let frame = frame_at(stack, stack.depth - 1)?;
    let same_function = match pair {
        Some(pair) => FUNCTIONS
            .get(frame.function_id)
            .is_some_and(|entry| entry.pair == pair),
        None => true,
    };
    if frame.sp != sp || !same_function {
        // Not the top frame's return: its entry was never recorded (the probes were attached
        // while it ran), or the frame was already ended. Leave the stack as it is.
        count(Counter::ReturnWithoutEntry);
        return None;
    }
    stack.depth -= 1;
    stack.top_entry_ns = frame.parent_entry_ns;
    if stack.unsampled == 0 && READS_AT_RETURN_USED.load() != 0 {
        at_return::read_at_return(stack, stack.depth, ending.ret);
    }
    emit_call(thread.tid, stack, stack.depth, ending);
    stack.resample_after(stack.depth);
    free_if_idle(stack);
    Some(())
}

/// Frees a goroutine's stack once no call is in progress on it: goroutines come by the
/// thousand in a server, and most wait outside any probed call, where their stacks would
/// only crowd the map. A thread's stays, freed when the thread exits. Last: `stack` is gone
/// afterwards.
#[inline(always)]
fn free_if_idle(stack: &ThreadStack) {
    if stack.depth == 0 && stack.key.is_goroutine() {
        remove_stack(&stack.key);
    }
}

/// `runtime.recovery(gp)`: a recovered panic resumes on `gp`'s stack, in the function that
/// deferred the recovering call; the calls it made, below where it resumes, were unwound.
#[inline(always)]
fn go_recovered(
    thread: &Thread,
    capture: &FunctionCapture,
    regs: &pt_regs,
    now: u64,
) -> Option<()> {
    // Each one word at an offset from gp (RAX): not through `read_args`, whose eight chains
    // would make this program several times longer to verify.
    let word = |arg: &ArgCapture| read_user_u64(regs.rax.wrapping_add(arg.path[0] as i64 as u64));
    let (resume_sp, top) = (word(&capture.args[0]), word(&capture.args[1]));
    if resume_sp == 0 || top < resume_sp || top - resume_sp >= GOROUTINE_TOP {
        return None;
    }
    let stack = existing_stack(&thread.stack(GOROUTINE_STACK | regs.rax))?;
    end_frames_below(
        thread.tid,
        stack,
        GOROUTINE_TOP - (top - resume_sp),
        now,
        CallEnd::Unwound,
    );
    free_if_idle(stack);
    Some(())
}

/// Which call stack a probe works on, and where on it the probe fired.
struct StackPlace {
    /// Its key in [`GOROUTINE_STACKS`].
    key: StackKey,
    /// The stack position that tells live frames from skipped ones: RSP on a thread's stack,
    /// measured from the top on a goroutine's (see [`GOROUTINE_TOP`]).
    sp: u64,
}

/// The stack a probe works on: its thread's, or for Go code the running goroutine's (R14 holds
/// its `g` under Go's register ABI), since goroutines move between threads, even inside a
/// call. `None`, counted, when the goroutine's stack cannot be read.
#[inline(always)]
fn stack_place(thread: &Thread, stacks: Stacks, regs: &pt_regs) -> Option<StackPlace> {
    if stacks == Stacks::Thread {
        return Some(StackPlace {
            key: thread.own_stack(),
            sp: regs.rsp,
        });
    }
    let g = regs.r14;
    let top = read_user_u64(g.wrapping_add(G_STACK_HI));
    if top < regs.rsp || top - regs.rsp >= GOROUTINE_TOP {
        count(Counter::NoThreadStack);
        return None;
    }
    Some(StackPlace {
        key: thread.stack(GOROUTINE_STACK | g),
        sp: GOROUTINE_TOP - (top - regs.rsp),
    })
}

/// A thread is exiting: its calls in progress will never return. Report them and free its
/// stack, so that BPF-side state stays bounded however threads end.
#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn spanprobe_thread_exit(_ctx: RawTracePointContext) -> i32 {
    let _ = try_thread_exit();
    0
}

fn try_thread_exit() -> Option<()> {
    let thread = traced_thread()?;
    // A process leaves its trees when it ends (its pid may be reused), with its main thread.
    if PROCESS_TREES_USED.load() != 0 && thread.tid == thread.pid {
        let _ = PROCESS_TREES.remove(&thread.pid);
    }
    // SAFETY: the helper takes no arguments and cannot fail.
    let now = unsafe { bpf_ktime_get_ns() };
    end_stack(&thread, &thread.own_stack(), now, CallEnd::ThreadExit)
}

/// The stack `key` ends (its thread or goroutine does): its calls in progress end as `end`,
/// and it is freed.
#[inline(always)]
fn end_stack(thread: &Thread, key: &StackKey, now: u64, end: CallEnd) -> Option<()> {
    let stack = existing_stack(key)?;
    // Calls past the depth limit have no frame (they were counted at entry).
    stack.depth = stack.depth.min(depth_limit());
    end_frames_below(thread.tid, stack, u64::MAX, now, end);
    remove_stack(key);
    Some(())
}

/// A process forked: when it is traced, so is the child, from its first instruction (the
/// tracepoint fires before the child is first woken). A new thread's tgid is its process's,
/// already traced.
#[raw_tracepoint(tracepoint = "sched_process_fork")]
pub fn spanprobe_fork(ctx: RawTracePointContext) -> i32 {
    let _ = try_fork(&ctx);
    0
}

fn try_fork(ctx: &RawTracePointContext) -> Option<()> {
    let offset = TASK_TGID_OFFSET.load();
    if offset == 0 {
        return None;
    }
    // SAFETY: the tracepoint's arguments are (struct task_struct *parent, *child).
    let child = unsafe { *ctx.as_ptr().cast::<u64>().add(1) };
    let mut tgid = 0u32;
    // SAFETY: writes at most 4 bytes into `tgid`; a bad address fails safely.
    let read = unsafe {
        bpf_probe_read_kernel(
            (&raw mut tgid).cast(),
            4,
            child.wrapping_add(u64::from(offset)) as *const c_void,
        )
    };
    if read != 0 {
        return None;
    }
    let parent = (bpf_get_current_pid_tgid() >> 32) as u32;
    // A new thread is of its process already.
    if tgid == parent {
        return None;
    }
    if PROCESS_TREES_USED.load() != 0
        // SAFETY: the value is a plain integer, copied out at once.
        && let Some(&trees) = unsafe { PROCESS_TREES.get(&parent) }
    {
        let _ = PROCESS_TREES.insert(&tgid, &trees, u64::from(BPF_ANY));
    }
    // The forking process is the current one.
    if FILTER_PIDS.load() == 0 {
        return None;
    }
    traced_thread()?;
    let word = TARGET_PIDS.get_ptr_mut(tgid / 64)?;
    // Atomic, since forks on other CPUs may set bits of the same word (new pids are handed out
    // in sequence). `AtomicU64::fetch_or` is missing on this target (no compare-and-swap), but
    // the kernel has an atomic OR (BPF_ATOMIC | BPF_OR, verifier-checked since 5.12).
    // SAFETY: `word` is a valid, aligned array element.
    unsafe { atomic_or::<u64, u64, { AtomicOrdering::Relaxed }>(word, 1u64 << (tgid % 64)) };
    Some(())
}

/// Whether process `pid` is in `pid:` tree `tree` (see [`PROCESS_TREES`]); every process is
/// in tree 0, which stands for none.
#[inline(always)]
fn in_process_tree(pid: u32, tree: u8) -> bool {
    let Some(bit) = tree.checked_sub(1) else {
        return true;
    };
    // SAFETY: the value is a plain integer, read once.
    unsafe { PROCESS_TREES.get(&pid) }.is_some_and(|trees| trees & (1u64 << (bit & 63)) != 0)
}

/// Ends, as `end`, the calls on top of the stack that entered below `sp` (lower addresses are
/// deeper), innermost first. Through `bpf_loop`, whose callback the verifier checks once,
/// where it checks a loop in the program once per iteration: with three callers in the entry
/// program, a plain loop was three quarters of its load time.
#[inline(never)]
fn end_frames_below(tid: u32, stack: &mut ThreadStack, sp: u64, now: u64, end: CallEnd) {
    // Nothing else here: whatever this function kept besides the loop's state would lie on
    // the BPF stack under every frame the loop ends.
    let mut unwinding = Unwinding {
        stack,
        sp,
        now,
        tid,
        limit: depth_limit() as u16,
        end,
    };
    // SAFETY: the callback takes the state as its context, which outlives the call.
    unsafe {
        bpf_loop(
            MAX_DEPTH as u32,
            end_top_frame as *mut c_void,
            (&raw mut unwinding).cast(),
            0,
        )
    };
}

/// The state of [`end_frames_below`]' loop: 32 bytes of its stack frame.
#[repr(C)]
struct Unwinding<'a> {
    stack: &'a mut ThreadStack,
    sp: u64,
    now: u64,
    tid: u32,
    /// [`depth_limit`], at most [`MAX_DEPTH`].
    limit: u16,
    end: CallEnd,
}
const _: () = assert!(size_of::<Unwinding>() == 32);

/// One step of [`end_frames_below`]: ends the top frame if it entered below the state's `sp`;
/// 0 to go on, 1 to stop.
///
/// # Safety
/// `unwinding` must point to an [`Unwinding`], as `end_frames_below` passes it.
unsafe extern "C" fn end_top_frame(_index: u64, unwinding: *mut c_void) -> i64 {
    // SAFETY: `end_frames_below` passes its `Unwinding`.
    let Unwinding {
        stack,
        sp,
        now,
        tid,
        limit,
        end,
    } = unsafe { &mut *unwinding.cast::<Unwinding>() };
    let limit = u32::from(*limit);
    // Calls past the limit have no frame: if the deepest recorded one is being ended, so are
    // they.
    if stack.depth > limit
        && let Some(deepest) = limit.checked_sub(1).and_then(|i| frame_at(stack, i))
        && deepest.sp < *sp
    {
        stack.depth = limit;
    }
    let depth = stack.depth;
    if depth == 0 || depth > limit {
        return 1;
    }
    let Some(top) = frame_at(stack, depth - 1) else {
        return 1;
    };
    if top.sp >= *sp {
        return 1;
    }
    stack.depth = depth - 1;
    stack.top_entry_ns = top.parent_entry_ns;
    emit_call(*tid, stack, depth - 1, &Ending::at(*now, *end));
    stack.resample_after(depth - 1);
    0
}

/// Sends the event of the call in frame `index`, ended as `ending` says. Out of line: the
/// entry program ends skipped frames at two places.
#[inline(never)]
fn emit_call(tid: u32, stack: &ThreadStack, index: u32, ending: &Ending) {
    if stack.unsampled != 0 {
        return;
    }
    if index as usize >= MAX_DEPTH {
        return;
    }
    // Masked as well as checked: LLVM bounds one copy of the index and addresses the frame with
    // another, which the verifier cannot bound; the volatile read keeps LLVM from dropping the
    // mask as redundant.
    // SAFETY: a read of a local.
    let index = unsafe { core::ptr::read_volatile(&index) } & (MAX_DEPTH as u32 - 1);
    let frame = &stack.frames[index as usize];
    send(
        tid,
        stack,
        frame,
        index + 1,
        ending,
        call_key(&stack.key, index),
    );
}

/// Sends the event of the call in `frame`, at `depth` on `stack`, ended as `ending` says: with
/// the memory kept in its record `key` when its function captures some. The event is written
/// where it is sent from (the record, or a reserved ring-buffer record), never on the BPF
/// stack, which it would take more than a third of.
#[inline(always)]
fn send(tid: u32, stack: &ThreadStack, frame: &Frame, depth: u32, ending: &Ending, key: CallKey) {
    // The one lookup of the function's capture on the way out: its return value's chain and
    // its memory.
    let capture = FUNCTIONS.get(frame.function_id);
    let (mut ret, mut flags) = (ending.ret, ending.flags);
    if let Some(capture) = capture
        && capture.ret.chain != 0
        && ending.end == CallEnd::Returned
    {
        let mut value = 0;
        (ret, flags) = if follow(&capture.ret, ret, Faults::Fail, &mut value) {
            (value, 0)
        } else {
            (0, RETURN_FAULT)
        };
    }
    let data_len = capture.map_or(0, |capture| capture.data_len);
    if data_len > 0 {
        if let Some(record) = CALLS.get_ptr_mut(key) {
            // SAFETY: as in `call_record`.
            let record = unsafe { &mut *record };
            let event = &mut record.header;
            event.fill(stack, frame, tid, depth, ending);
            (event.ret, event.flags, event.data_len) = (ret, flags, data_len);
            // Chains that faulted at entry, along with the memory reads'.
            for (i, len) in event.arg_lens.iter_mut().enumerate() {
                *len |= fault_len(frame.faults, i);
            }
            send_record(record, data_len);
            return;
        }
        count(Counter::MemoryLost);
    }
    let wakeup = wakeup_flags(size_of::<CallEvent>() as u64);
    let Some(mut entry) = EVENTS.reserve::<CallEvent>(0) else {
        ring_full();
        return;
    };
    // SAFETY: the reserved record is ours until submitted; a `CallEvent` is plain integers, so
    // the bytes the kernel handed over are a valid value to write over.
    let event = unsafe { &mut *entry.as_mut_ptr() };
    event.fill(stack, frame, tid, depth, ending);
    (event.ret, event.flags) = (ret, flags);
    for (i, len) in event.arg_lens.iter_mut().enumerate() {
        *len = fault_len(frame.faults, i);
    }
    (event.data_len, event.stack_len) = (0, 0);
    entry.submit(wakeup);
}

struct Thread {
    pid: u32,
    tid: u32,
}

impl Thread {
    /// The key of the thread's own call stack.
    #[inline(always)]
    fn own_stack(&self) -> StackKey {
        self.stack(u64::from(self.tid))
    }

    /// The key of call stack `id` (see [`StackKey`]) of the thread's process.
    #[inline(always)]
    fn stack(&self, id: u64) -> StackKey {
        StackKey {
            id,
            pid: self.pid,
            _pad: 0,
        }
    }
}

/// The current thread, unless a pid filter is set and its process is not in it.
#[inline(always)]
fn traced_thread() -> Option<Thread> {
    let id = bpf_get_current_pid_tgid();
    let thread = Thread {
        pid: (id >> 32) as u32,
        tid: id as u32,
    };
    if FILTER_PIDS.load() != 0 {
        let pids = TARGET_PIDS.get(thread.pid / 64)?;
        if *pids & (1u64 << (thread.pid % 64)) == 0 {
            return None;
        }
    }
    Some(thread)
}

/// The call stack `key`, if it exists: of the current thread, of the goroutine running on it,
/// or of one that is ending or recovering (stopped, so running no probe elsewhere).
#[inline(always)]
fn existing_stack(key: &StackKey) -> Option<&'static mut ThreadStack> {
    let stack = if key.is_goroutine() {
        GOROUTINE_STACKS.get_ptr_mut(key)?
    } else {
        THREAD_STACKS.current(false)?
    };
    // SAFETY: as in `stack_or_insert`.
    Some(unsafe { &mut *stack })
}

/// Frees the call stack `key` (of the current thread, or a goroutine's).
#[inline(always)]
fn remove_stack(key: &StackKey) {
    if key.is_goroutine() {
        let key = *key;
        let _ = GOROUTINE_STACKS.remove(&key);
    } else {
        THREAD_STACKS.remove_current();
    }
}

/// The call stack `key` (of the current thread, or of the goroutine running on it), created
/// empty if need be.
#[inline(always)]
fn stack_or_insert(key: &StackKey, stacks: Stacks) -> Option<&'static mut ThreadStack> {
    if stacks == Stacks::Thread {
        let Some(stack) = THREAD_STACKS.current(true) else {
            count(Counter::NoThreadStack);
            return None;
        };
        // SAFETY: as below.
        let stack = unsafe { &mut *stack };
        // Created zeroed; set whenever the stack is empty, as a thread that execs from a
        // thread other than its process's first takes the first's id, and keeps its storage.
        if stack.depth == 0 {
            stack.key = *key;
        }
        return Some(stack);
    }
    // One lookup for a stack that exists, as all do after their first call.
    let stack = match GOROUTINE_STACKS.get_ptr_mut(key) {
        Some(stack) => stack,
        None => {
            let Some(empty) = EMPTY_STACK.get(0) else {
                count(Counter::NoThreadStack);
                return None;
            };
            if GOROUTINE_STACKS
                .insert(key, empty, BPF_NOEXIST.into())
                .is_err()
            {
                count(Counter::NoThreadStack);
                return None;
            }
            let stack = GOROUTINE_STACKS.get_ptr_mut(key)?;
            // SAFETY: as below.
            let created = unsafe { &mut *stack };
            created.key = *key;
            stack
        }
    };
    // SAFETY: the value belongs to this thread, or to the goroutine running on it, alone, and
    // a thread runs one probe program at a time, so nothing else writes it while we hold the
    // reference.
    Some(unsafe { &mut *stack })
}

/// Frame `index` of `stack`. Out of line on purpose: inlined, the compiler derives the address
/// of frame `depth - 1` from that of frame `depth` (`- size_of::<Frame>()`), a pointer the
/// verifier cannot bound; as a BPF subprogram the index is checked where it is used.
#[inline(never)]
fn frame_at(stack: &ThreadStack, index: u32) -> Option<FrameLinks> {
    stack.frames.get(index as usize).map(|frame| FrameLinks {
        sp: frame.sp,
        return_address: frame.return_address,
        parent_entry_ns: frame.parent_entry_ns,
        function_id: frame.function_id,
    })
}

/// What ties a frame into its stack.
#[derive(Clone, Copy)]
struct FrameLinks {
    sp: u64,
    return_address: u64,
    parent_entry_ns: u64,
    function_id: u32,
}

/// Copies the trace id of frame `index` (zero: derived by userspace), which its callees
/// inherit, into `out`. Out of line like [`frame_at`], and writing through `out` because a
/// BPF function may not return a pointer to its caller's stack, which returning an array
/// compiles to.
#[inline(never)]
fn trace_id_at(frames: &[Frame; MAX_DEPTH], index: u32, out: &mut [u64; 2]) {
    if let Some(frame) = frames.get(index as usize) {
        // SAFETY: aligned words of a map value and of the caller's; see `clear_context`.
        unsafe {
            write_volatile(&mut out[0], frame.context.trace_id[0]);
            write_volatile(&mut out[1], frame.context.trace_id[1]);
        }
    }
}

/// Zeroes `context` a word at a time: volatile, so that LLVM does not merge the stores into a
/// `memset` call, which BPF runs as a byte loop.
#[inline(always)]
fn clear_context(context: &mut TraceContext) {
    // SAFETY: writes to aligned words of a valid `TraceContext`.
    unsafe {
        write_volatile(&mut context.trace_id[0], 0);
        write_volatile(&mut context.trace_id[1], 0);
        write_volatile(&mut context.parent_span_id, 0);
    }
}

/// Copies `from` into `to` a word at a time, for the reason [`clear_context`] gives.
#[inline(always)]
fn copy_context(to: &mut TraceContext, from: &TraceContext) {
    // SAFETY: aligned words of valid `TraceContext`s.
    unsafe {
        write_volatile(&mut to.trace_id[0], from.trace_id[0]);
        write_volatile(&mut to.trace_id[1], from.trace_id[1]);
        write_volatile(&mut to.parent_span_id, from.parent_span_id);
    }
}

/// Identifies a call in progress: its stack and its depth there.
#[inline(always)]
fn call_key(stack: &StackKey, depth: u32) -> CallKey {
    CallKey {
        stack: stack.id,
        pid: stack.pid,
        depth,
    }
}

/// Reads the arguments `capture` asks for into `out`, in its order, each followed along its
/// chain of pointers if it has one; returns the faults: bit `i` is set where argument `i`'s
/// chain faulted. What happens to the slots it has no argument for, `unread` says.
///
/// One `bpf_loop` step per argument, up to the capture's last: the verifier checks the step
/// once, where it walks a plain loop's eight steps through every combination of their sources
/// and chains (on 6.1, past its million instructions).
#[inline(never)]
fn read_args(
    out: &mut [u64; MAX_ARGS],
    regs: &pt_regs,
    capture: &FunctionCapture,
    faults: Faults,
    unread: Unread,
) -> u32 {
    if unread == Unread::Zeroed {
        for slot in out.iter_mut() {
            // SAFETY: a valid, aligned element; volatile, or the stores become a `memset`.
            unsafe { write_volatile(slot, 0) };
        }
    }
    let steps = u32::from(capture.args_end).min(MAX_ARGS as u32);
    if steps == 0 {
        return 0;
    }
    let mut reading = ArgsReading {
        out,
        regs,
        capture,
        faulted: 0,
    };
    // A step for each kind of program: the verifier must see which helpers a step may call
    // (a sleepable one only where faults are allowed).
    let step = match faults {
        Faults::Allowed => read_one_arg::<true> as *mut c_void,
        Faults::Fail => read_one_arg::<false> as *mut c_void,
    };
    // SAFETY: the callback takes the state as its context, which outlives the call.
    unsafe { bpf_loop(steps, step, (&raw mut reading).cast(), 0) };
    reading.faulted
}

/// What [`read_args`] does with the slots it reads no argument into.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Unread {
    /// Zeroes them: the arguments of a call being entered.
    Zeroed,
    /// Leaves them as they are: a USDT end site's arguments go beside its start's.
    Kept,
}

/// The state of [`read_args`]' loop.
#[repr(C)]
struct ArgsReading<'a> {
    out: &'a mut [u64; MAX_ARGS],
    regs: &'a pt_regs,
    capture: &'a FunctionCapture,
    faulted: u32,
}

/// One step of [`read_args`]: reads argument `index`, if it has a source, faulting pages in
/// if `FAULTS_ALLOWED`; 0 to go on.
///
/// # Safety
/// `reading` must point to an [`ArgsReading`], as `read_args` passes it.
unsafe extern "C" fn read_one_arg<const FAULTS_ALLOWED: bool>(
    index: u64,
    reading: *mut c_void,
) -> i64 {
    // SAFETY: `read_args` passes its `ArgsReading`.
    let ArgsReading {
        out,
        regs,
        capture,
        faulted,
    } = unsafe { &mut *reading.cast::<ArgsReading>() };
    let faults = if FAULTS_ALLOWED {
        Faults::Allowed
    } else {
        Faults::Fail
    };
    let i = index as usize;
    let (Some(to), Some(arg)) = (out.get_mut(i), capture.args.get(i)) else {
        return 1;
    };
    if arg.source != ArgSource::None as u8 && !read_value(to, arg, regs, faults) {
        *to = 0;
        *faulted |= 1 << i;
    }
    0
}

/// Writes the value of one argument into `to`, followed along its chain; false when a read
/// faults.
#[inline(always)]
fn read_value(to: &mut u64, arg: &ArgCapture, regs: &pt_regs, faults: Faults) -> bool {
    if arg.source == ArgSource::Constant as u8 {
        *to = arg.constant();
        return true;
    }
    let register = read_arg(regs, arg.source, arg.slot);
    // Memory read at return follows its chain then, from the value the entry keeps.
    if arg.chain == 0 || arg.timing & READ_AT_RETURN != 0 {
        *to = register;
        return true;
    }
    follow(arg, register, faults, to)
}

/// Writes into `out` the value at the end of `arg`'s chain from `value`: every offset but the
/// last is added and dereferenced; the last gives the address read (`field_size` bytes,
/// zero-extended), or for a memory type the address itself. False when a read faults.
#[inline(always)]
fn follow(arg: &ArgCapture, mut value: u64, faults: Faults, out: &mut u64) -> bool {
    // In 0..MAX_CHAIN whatever `chain` holds: 6.1's verifier loses a caller's `chain != 0`, and
    // `chain.min(MAX_CHAIN) - 1` then reaches -1 for it.
    let last = usize::from(arg.chain).saturating_sub(1).min(MAX_CHAIN - 1);
    for i in 0..MAX_CHAIN - 1 {
        if i >= last {
            break;
        }
        let address = value.wrapping_add(arg.path[i] as i64 as u64);
        let mut pointer = 0u64;
        if read_user(&mut pointer, address, faults).is_none() {
            return false;
        }
        value = pointer;
    }
    let address = value.wrapping_add(arg.path.get(last).copied().unwrap_or(0) as i64 as u64);
    if arg.field_size == 0 {
        *out = address;
        return true;
    }
    // Little-endian: the first `field_size` bytes of a zeroed word are the field's value.
    let mut field = [0u8; 8];
    let size = u32::from(arg.field_size).min(8);
    // SAFETY: writes at most 8 bytes into `field`; the helpers fail safely on bad pointers.
    let result = unsafe {
        if faults == Faults::Allowed {
            bpf_copy_from_user(field.as_mut_ptr().cast(), size, address as *const c_void)
        } else {
            bpf_probe_read_user(field.as_mut_ptr().cast(), size, address as *const c_void)
        }
    };
    *out = u64::from_le_bytes(field);
    result == 0
}

/// The value of register or stack slot `slot` of `source` (an [`ArgSource`]).
#[inline(always)]
fn read_arg(regs: &pt_regs, source: u8, slot: u8) -> u64 {
    if source == ArgSource::Register as u8 {
        match slot {
            0 => register(&regs.rdi),
            1 => register(&regs.rsi),
            2 => register(&regs.rdx),
            3 => register(&regs.rcx),
            4 => register(&regs.r8),
            5 => register(&regs.r9),
            _ => 0,
        }
    } else if source == ArgSource::Gpr as u8 {
        match slot {
            0 => register(&regs.rax),
            1 => register(&regs.rdx),
            2 => register(&regs.rcx),
            3 => register(&regs.rbx),
            4 => register(&regs.rsi),
            5 => register(&regs.rdi),
            6 => register(&regs.rbp),
            7 => register(&regs.rsp),
            8 => register(&regs.r8),
            9 => register(&regs.r9),
            10 => register(&regs.r10),
            11 => register(&regs.r11),
            12 => register(&regs.r12),
            13 => register(&regs.r13),
            14 => register(&regs.r14),
            15 => register(&regs.r15),
            _ => 0,
        }
    } else if source == ArgSource::Stack as u8 {
        // At entry [rsp] is the return address; stack arguments follow it.
        let address = regs.rsp + 8 * (u64::from(slot) + 1);
        let mut value = 0u64;
        // SAFETY: the helper writes at most 8 bytes into `value` and faults safely.
        unsafe { bpf_probe_read_user((&raw mut value).cast(), 8, address as *const c_void) };
        value
    } else {
        0
    }
}

/// A saved register, read where it is used: read plainly, LLVM hoists the reads of every
/// register out of a loop over the arguments and spills all sixteen onto the BPF stack.
#[inline(always)]
fn register(saved: &u64) -> u64 {
    // SAFETY: a read of a valid, aligned field of the probe's context.
    unsafe { core::ptr::read_volatile(saved) }
}

/// The record of the call in progress `key`, created if need be.
#[inline(always)]
fn call_record(key: CallKey) -> Option<&'static mut CallRecord> {
    if CALLS.get_ptr_mut(key).is_none() {
        let empty = EMPTY_RECORD.get(0)?;
        if CALLS.insert(key, empty, BPF_ANY.into()).is_err() {
            count(Counter::MemoryLost);
            return None;
        }
    }
    let record = CALLS.get_ptr_mut(key)?;
    // SAFETY: keyed by this thread and depth: only this call's probes touch the record.
    Some(unsafe { &mut *record })
}

#[inline(always)]
fn read_user_u64(address: u64) -> u64 {
    let mut value = 0u64;
    // SAFETY: the helper writes at most 8 bytes into `value` and faults safely.
    unsafe { bpf_probe_read_user((&raw mut value).cast(), 8, address as *const c_void) };
    value
}

/// How far above RSP a frame pointer may point: a thread's stack is 8 MiB by default.
const STACK_SPAN: u64 = 8 << 20;

/// Writes what `bpf_get_stack` would for the user stack, at most `frames` words into `out`:
/// the probed address, then the return address of each frame along the frame-pointer chain;
/// returns how many. Walked here rather than by the helper, whose walk follows a frame pointer
/// wherever it points: at the root of most stacks (glibc's `start_thread` and `_start` keep
/// no frame pointer) it points at unmapped memory, and the fault taken there cost each capture
/// ~1.5 µs here. This walk follows a frame pointer only upward, and within [`STACK_SPAN`].
/// (Its verification adds ~60 ms to start-up; through `bpf_loop` it measured the same.)
///
/// # Safety
/// `out` must have room for [`MAX_STACK_FRAMES`] words.
#[inline(always)]
unsafe fn walk_frames(regs: &pt_regs, out: *mut u64, frames: usize) -> usize {
    if frames == 0 {
        return 0;
    }
    // SAFETY: within `out`'s room.
    unsafe { out.write_unaligned(regs.rip) };
    let mut walked = 1;
    let (mut frame_pointer, mut lowest) = (regs.rbp, regs.rsp);
    for i in 1..MAX_STACK_FRAMES {
        if i >= frames
            || frame_pointer & 7 != 0
            || frame_pointer < lowest
            || frame_pointer - regs.rsp >= STACK_SPAN
        {
            break;
        }
        // The caller's frame pointer, then the return address into the caller. Left
        // uninitialized for the helper to fill: zeroed, it is a `memset` call, a byte loop
        // that the verifier walked once per frame of the walk.
        let mut frame = core::mem::MaybeUninit::<[u64; 2]>::uninit();
        // SAFETY: writes at most 16 bytes into `frame`; a bad address fails safely.
        let read = unsafe {
            bpf_probe_read_user(
                frame.as_mut_ptr().cast(),
                16,
                frame_pointer as *const c_void,
            )
        };
        if read != 0 {
            break;
        }
        // SAFETY: the helper filled all 16 bytes.
        let frame = unsafe { frame.assume_init() };
        if frame[1] == 0 {
            break;
        }
        // SAFETY: i < MAX_STACK_FRAMES: within `out`'s room.
        unsafe { out.add(i).write_unaligned(frame[1]) };
        walked = i + 1;
        lowest = frame_pointer + 16;
        frame_pointer = frame[0];
    }
    walked
}

/// Captures the user stack at entry into the record's stack area: the immediate caller first
/// (at entry the function has not pushed its frame, so a frame-pointer walk skips it; its
/// return address is at RSP), then the walk. After the walk's room come the uretprobe
/// trampoline address and the real return addresses of the outer probed calls, innermost
/// first: userspace puts them back where the walk shows the trampoline, so the stack reads as
/// without spanprobe. `return_address` is the word at RSP where the entry read it already
/// (for its frame; a read of user memory is dear), else 0 or [`NOT_A_CALL`].
///
/// Inlined, as it must be: a BPF function takes at most five arguments.
#[inline(always)]
fn capture_stack(
    record: &mut CallRecord,
    capture: &FunctionCapture,
    stack: &ThreadStack,
    depth: u32,
    regs: &pt_regs,
    return_address: u64,
) {
    let offset = usize::from(capture.stack_offset) & (DATA_MAX - 8);
    let frames = usize::from(capture.stack_frames).min(MAX_STACK_FRAMES);
    let area = record.data[offset..].as_mut_ptr();
    let caller = if return_address != 0 && return_address != NOT_A_CALL {
        return_address
    } else {
        read_user_u64(regs.rsp)
    };
    // SAFETY: offset < DATA_MAX and the area (8 + 8 * MAX_STACK_FRAMES bytes) fits in the
    // record's slack.
    let walked = unsafe {
        area.cast::<u64>().write_unaligned(caller);
        walk_frames(regs, area.add(8).cast(), frames)
    };
    record.header.stack_len = walked as u32 + 1;
    // The returns region follows the walk's room; it is cleared by its count (event depth).
    let returns_offset = (offset + 8 * (frames + 1)) & (DATA_MAX - 8);
    let returns = record.data[returns_offset..].as_mut_ptr().cast::<u64>();
    // A goroutine's calls have no trampoline in their return slots, and their frames' `sp`
    // are positions, not addresses: no trampoline address (0) to replace.
    if stack.key.is_goroutine() {
        // SAFETY: returns_offset < DATA_MAX, and the slack has room for the word.
        unsafe { returns.write_unaligned(0) };
        return;
    }
    let Some(outer) = depth.checked_sub(1) else {
        return;
    };
    let Some(parent) = frame_at(stack, outer) else {
        return;
    };
    // The parent's return slot holds the trampoline address now.
    let trampoline = read_user_u64(parent.sp);
    // SAFETY: returns_offset < DATA_MAX and 8 * (1 + MAX_DEPTH) bytes fit in the slack.
    unsafe { returns.write_unaligned(trampoline) };
    for k in 0..MAX_DEPTH {
        if k as u32 >= depth {
            break;
        }
        let index = (depth as usize - 1 - k) & (MAX_DEPTH - 1);
        let Some(frame) = stack.frames.get(index) else {
            break;
        };
        // SAFETY: k < MAX_DEPTH: within the region, as above.
        unsafe { returns.add(1 + k).write_unaligned(frame.return_address) };
    }
}

/// Reads the memory the arguments point to into the call's record, kept until return. Only
/// the sleepable entry programs fill records: pages may be faulted in.
#[inline(always)]
fn capture_memory(
    regs: &pt_regs,
    record: &mut CallRecord,
    capture: &FunctionCapture,
    args: &[u64; MAX_ARGS],
) {
    for i in 0..MAX_ARGS {
        let (Some(arg), Some(&pointer)) = (capture.args.get(i), args.get(i)) else {
            break;
        };
        let mut len = u32::from(arg.len);
        if arg.memory == MemoryKind::None as u8 || len as usize > MEMORY_READ_MAX {
            continue;
        }
        if arg.timing & READ_AT_RETURN != 0 {
            keep_for_return(regs, record, arg, i);
            continue;
        }
        if arg.count_source != ArgSource::None as u8 {
            let count = read_arg(regs, arg.count_source, arg.count_slot);
            if count < u64::from(len) {
                len = count as u32;
            }
        }
        let offset = usize::from(arg.offset) & (DATA_MAX - 1);
        let destination = record.data[offset..].as_mut_ptr().cast::<c_void>();
        let source = pointer as *const c_void;
        // SAFETY: offset < DATA_MAX and len <= MEMORY_READ_MAX, which `data` has room for; the
        // helpers fault safely on bad user pointers, and the program is sleepable.
        let read = unsafe {
            if arg.memory == MemoryKind::Str as u8 {
                fault_in(destination, pointer, len);
                bpf_probe_read_user_str(destination, read_len(&len), source)
            } else {
                let result = bpf_copy_from_user(destination, read_len(&len), source);
                if result == 0 { i64::from(len) } else { result }
            }
        };
        if let Some(captured) = record.header.arg_lens.get_mut(i) {
            *captured = if read < 0 { MEMORY_FAULT } else { read as u16 };
        }
    }
}

/// Prepares the record for argument `i`'s read at return: marked not read until then, and
/// the value of its count's source (a register or stack slot, which the call may reuse) kept
/// in its data area, whose first word the read at return only overwrites after using it.
#[inline(always)]
fn keep_for_return(regs: &pt_regs, record: &mut CallRecord, arg: &ArgCapture, i: usize) {
    if let Some(captured) = record.header.arg_lens.get_mut(i) {
        *captured = NOT_READ;
    }
    if arg.count_source == ArgSource::Return as u8 || arg.count_source == ArgSource::None as u8 {
        return;
    }
    let kept = read_arg(regs, arg.count_source, arg.count_slot);
    let offset = usize::from(arg.offset) & (DATA_MAX - 1);
    if let Some(word) = record.data.get_mut(offset..offset + 8) {
        word.copy_from_slice(&kept.to_ne_bytes());
    }
}

/// `len`, bounded by [`MEMORY_READ_MAX`] right where a helper takes it: 6.1's verifier loses
/// an earlier bound across the spills around other helper calls. Volatile, so that LLVM does
/// not drop the check as done already.
#[inline(always)]
fn read_len(len: &u32) -> u32 {
    // SAFETY: a read of a local.
    let len = unsafe { core::ptr::read_volatile(len) };
    len.min(MEMORY_READ_MAX as u32)
}

/// Faults in the (at most two) pages of `len` bytes at `pointer`, so that a non-faulting string
/// read sees them. Errors are ignored: the string read reports them.
///
/// # Safety
/// `scratch` must have room for one byte; only a sleepable program may call this.
#[inline(always)]
unsafe fn fault_in(scratch: *mut c_void, pointer: u64, len: u32) {
    const PAGE: u64 = 4096;
    let last = pointer.wrapping_add(u64::from(len).saturating_sub(1));
    // SAFETY: one byte into `scratch`, from user memory that may fault (sleepable context).
    unsafe { bpf_copy_from_user(scratch, 1, pointer as *const c_void) };
    if last / PAGE != pointer / PAGE {
        let next_page = (pointer / PAGE + 1) * PAGE;
        // SAFETY: as above.
        unsafe { bpf_copy_from_user(scratch, 1, next_page as *const c_void) };
    }
}

/// [`MEMORY_FAULT`] if bit `i` of `faults` is set, else 0: without a branch, which the
/// verifier would follow both ways for each argument.
#[inline(always)]
fn fault_len(faults: u32, i: usize) -> u16 {
    ((faults >> i) & 1) as u16 * MEMORY_FAULT
}

/// Sends a call's record, its header written, with `data_len` bytes of captured memory; the
/// record is then ready for the next call at its place.
#[inline(always)]
fn send_record(record: &mut CallRecord, data_len: u32) {
    let size = size_of::<CallEvent>() as u64 + u64::from(data_len & (DATA_MAX as u32 * 2 - 1));
    if size > size_of::<CallRecord>() as u64 {
        return;
    }
    // SAFETY: `size` is within the record, a valid map value.
    let result = unsafe {
        bpf_ringbuf_output(
            (&raw const EVENTS).cast_mut().cast(),
            (record as *mut CallRecord).cast(),
            size,
            wakeup_flags(size),
        )
    };
    if result != 0 {
        ring_full();
    }
    // Element by element: a whole-array store is a `memset` call, a byte loop in BPF.
    for len in record.header.arg_lens.iter_mut() {
        // SAFETY: a valid, aligned element of the record.
        unsafe { write_volatile(len, 0) };
    }
    record.header.stack_len = 0;
}

#[inline(always)]
fn registers(ctx: *mut c_void) -> &'static pt_regs {
    // SAFETY: uprobe and uretprobe contexts are the probed thread's saved user registers.
    unsafe { &*ctx.cast::<pt_regs>() }
}

#[inline(always)]
fn function_id(ctx: *mut c_void) -> u32 {
    // SAFETY: ctx is this program's context; every attachment carries a cookie.
    unsafe { bpf_get_attach_cookie(ctx) as u32 }
}

/// Wakes the reader once this CPU has written [`WAKEUP_BYTES`] since it last did; the reader
/// drains on a timer otherwise. Counted here rather than asked of the ring buffer: how much is
/// pending is read from the consumer's position, a cache line the reader's CPU writes, which
/// cost each event ~65 ns here.
#[inline(always)]
fn wakeup_flags(bytes: u64) -> u64 {
    let Some(written) = UNANNOUNCED.get_ptr_mut(0) else {
        return BPF_RB_FORCE_WAKEUP.into();
    };
    // SAFETY: this CPU's slot; a sleepable program preempted here may lose a count, which
    // only delays a wakeup.
    let written = unsafe { &mut *written };
    *written += bytes;
    if *written >= WAKEUP_BYTES.load() {
        *written = 0;
        BPF_RB_FORCE_WAKEUP.into()
    } else {
        BPF_RB_NO_WAKEUP.into()
    }
}

/// A record did not fit: counted, and the next one wakes the reader (the one that did not fit
/// may have reset this CPU's count).
#[inline(always)]
fn ring_full() {
    count(Counter::RingBufFull);
    if let Some(written) = UNANNOUNCED.get_ptr_mut(0) {
        // SAFETY: this CPU's slot, as in `wakeup_flags`.
        unsafe { *written = WAKEUP_BYTES.load() };
    }
}

#[inline(always)]
fn count(counter: Counter) {
    if let Some(slot) = COUNTERS.get_ptr_mut(counter as u32) {
        // SAFETY: a valid per-CPU slot. Not atomic (the BPF target has no atomic RMW in core):
        // a sleepable entry program preempted on this CPU by another probe could lose a count.
        unsafe { *slot += 1 };
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

// bpf_probe_read_user and friends are GPL-only helpers.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
