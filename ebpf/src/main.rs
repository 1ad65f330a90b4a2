//! One uprobe and one uretprobe serve every probed function: the BPF cookie of each attachment
//! says which function fired. The entry program pushes a frame on the thread's call stack; the
//! return program pops it and emits one [`CallEvent`] per completed call.
#![no_std]
#![no_main]

use aya_ebpf::{
    EbpfContext as _, Global,
    bindings::{BPF_NOEXIST, BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP, pt_regs},
    helpers::{bpf_get_attach_cookie, bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::{map, uprobe, uretprobe},
    maps::{HashMap, LruHashMap, PerCpuArray, RingBuf},
    programs::{ProbeContext, RetProbeContext},
};
use spanprobe_common::{CallEvent, Counter, DEFAULT_RING_BYTES, MAX_THREADS, ThreadStack};

#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(DEFAULT_RING_BYTES, 0);

#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(Counter::COUNT, 0);

#[map]
static TARGET_PIDS: HashMap<u32, u8> = HashMap::with_max_entries(1024, 0);

#[map]
static THREADS: LruHashMap<u32, ThreadStack> = LruHashMap::with_max_entries(MAX_THREADS, 0);

/// Never written: its all-zero element is the template for a new, empty thread stack, which
/// is too large to build on the 512-byte BPF stack.
#[map]
static EMPTY_STACK: PerCpuArray<ThreadStack> = PerCpuArray::with_max_entries(1, 0);

#[unsafe(no_mangle)]
static FILTER_PIDS: Global<u8> = Global::new(0);

#[unsafe(no_mangle)]
static WAKEUP_BYTES: Global<u64> = Global::new((DEFAULT_RING_BYTES / 4) as u64);

#[uprobe]
pub fn spanprobe_entry(ctx: ProbeContext) -> u32 {
    let _ = try_entry(&ctx);
    0
}

#[uretprobe]
pub fn spanprobe_return(ctx: RetProbeContext) -> u32 {
    let _ = try_return(&ctx);
    0
}

fn try_entry(ctx: &ProbeContext) -> Option<()> {
    // SAFETY: the helper takes no arguments and cannot fail.
    let now = unsafe { bpf_ktime_get_ns() };
    let thread = traced_thread()?;
    let stack = thread_stack_or_insert(thread.tid)?;
    let depth = stack.depth;
    // Counted even past MAX_DEPTH, so that the matching returns pop the right frames.
    stack.depth = depth.wrapping_add(1);
    let Some(frame) = stack.frames.get_mut(depth as usize) else {
        count(Counter::DepthExceeded);
        return None;
    };
    let regs = registers(ctx.as_ptr());
    if depth == 0 {
        stack.root_entry_ns = now;
    }
    frame.parent_entry_ns = stack.top_entry_ns;
    stack.top_entry_ns = now;
    frame.entry_ns = now;
    frame.function_id = function_id(ctx.as_ptr());
    frame.args = [regs.rdi, regs.rsi, regs.rdx, regs.rcx, regs.r8, regs.r9];
    Some(())
}

fn try_return(ctx: &RetProbeContext) -> Option<()> {
    // SAFETY: the helper takes no arguments and cannot fail.
    let now = unsafe { bpf_ktime_get_ns() };
    let thread = traced_thread()?;
    let Some(stack) = THREADS.get_ptr_mut(thread.tid) else {
        count(Counter::ReturnWithoutEntry);
        return None;
    };
    // SAFETY: the value belongs to this thread alone (keyed by its tid), and a thread runs one
    // probe program at a time, so nothing else writes it while we hold the reference.
    let stack = unsafe { &mut *stack };
    if stack.depth == 0 {
        count(Counter::ReturnWithoutEntry);
        return None;
    }
    stack.depth -= 1;
    let index = stack.depth as usize;
    // A call deeper than MAX_DEPTH has no frame; it was counted at entry.
    let frame = stack.frames.get(index)?;
    stack.top_entry_ns = frame.parent_entry_ns;
    emit(&CallEvent {
        pid: thread.pid,
        tid: thread.tid,
        function_id: frame.function_id,
        depth: stack.depth + 1,
        entry_ns: frame.entry_ns,
        return_ns: now,
        parent_entry_ns: frame.parent_entry_ns,
        root_entry_ns: stack.root_entry_ns,
        args: frame.args,
        ret: registers(ctx.as_ptr()).rax,
    });
    Some(())
}

struct Thread {
    pid: u32,
    tid: u32,
}

/// The current thread, unless a pid filter is set and its process is not in it.
#[inline(always)]
fn traced_thread() -> Option<Thread> {
    let id = bpf_get_current_pid_tgid();
    let thread = Thread {
        pid: (id >> 32) as u32,
        tid: id as u32,
    };
    // SAFETY: the value is only tested for presence, never read.
    if FILTER_PIDS.load() != 0 && unsafe { TARGET_PIDS.get(thread.pid) }.is_none() {
        return None;
    }
    Some(thread)
}

#[inline(always)]
fn thread_stack_or_insert(tid: u32) -> Option<&'static mut ThreadStack> {
    if THREADS.get_ptr_mut(tid).is_none() {
        let Some(empty) = EMPTY_STACK.get(0) else {
            count(Counter::NoThreadStack);
            return None;
        };
        if THREADS.insert(tid, empty, BPF_NOEXIST.into()).is_err() {
            count(Counter::NoThreadStack);
            return None;
        }
    }
    let stack = THREADS.get_ptr_mut(tid)?;
    // SAFETY: see `try_return`: only this thread's probes touch its stack.
    Some(unsafe { &mut *stack })
}

#[inline(always)]
fn registers(ctx: *mut core::ffi::c_void) -> &'static pt_regs {
    // SAFETY: uprobe and uretprobe contexts are the probed thread's saved user registers.
    unsafe { &*ctx.cast::<pt_regs>() }
}

#[inline(always)]
fn function_id(ctx: *mut core::ffi::c_void) -> u32 {
    // SAFETY: ctx is this program's context; every attachment carries a cookie.
    unsafe { bpf_get_attach_cookie(ctx) as u32 }
}

/// Writes one event, waking the reader only once enough data is pending.
#[inline(always)]
fn emit(event: &CallEvent) {
    let flags = if EVENTS.query(BPF_RB_AVAIL_DATA.into()) >= WAKEUP_BYTES.load() {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    };
    match EVENTS.reserve::<CallEvent>(0) {
        Some(mut entry) => {
            entry.write(*event);
            entry.submit(flags.into());
        }
        None => count(Counter::RingBufFull),
    }
}

#[inline(always)]
fn count(counter: Counter) {
    if let Some(slot) = COUNTERS.get_ptr_mut(counter as u32) {
        // SAFETY: per-CPU slot; programs on one CPU do not preempt each other.
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
