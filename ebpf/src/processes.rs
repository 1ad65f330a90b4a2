//! Which processes are traced: a command's (followed through forks), a `pid:` target's tree,
//! or all; and the threads and processes that end.

use core::{
    ffi::c_void,
    intrinsics::{AtomicOrdering, atomic_or},
};

use aya_ebpf::{
    EbpfContext as _,
    bindings::{BPF_ANY, BPF_RB_FORCE_WAKEUP},
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, generated::bpf_probe_read_kernel},
    programs::RawTracePointContext,
};
use spanprobe_common::{CallEnd, Counter, EXEC_MARK, ExecNotice, StackKey};

use crate::{
    emit::count,
    maps::{EVENTS, FILTER_PIDS, PROCESS_TREES, PROCESS_TREES_USED, TARGET_PIDS, TASK_TGID_OFFSET},
    stacks::end_stack,
};

pub(crate) fn try_thread_exit() -> Option<()> {
    let thread = traced_thread()?;
    // A process leaves its trees when it ends (its pid may be reused), with its main thread.
    if PROCESS_TREES_USED.load() != 0 && thread.tid == thread.pid {
        let _ = PROCESS_TREES.remove(&thread.pid);
    }
    // SAFETY: the helper takes no arguments and cannot fail.
    let now = unsafe { bpf_ktime_get_ns() };
    end_stack(&thread, &thread.own_stack(), now, CallEnd::ThreadExit)
}

/// Tells userspace at once: the sooner a new file is probed, the fewer calls it misses. A
/// notice that does not fit is counted.
pub(crate) fn try_exec() {
    let notice = ExecNotice {
        mark: EXEC_MARK,
        pid: (bpf_get_current_pid_tgid() >> 32) as u32,
    };
    if EVENTS
        .output::<ExecNotice>(&notice, BPF_RB_FORCE_WAKEUP.into())
        .is_err()
    {
        count(Counter::ExecsLost);
    }
}

pub(crate) fn try_fork(ctx: &RawTracePointContext) -> Option<()> {
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
pub(crate) fn in_process_tree(pid: u32, tree: u8) -> bool {
    let Some(bit) = tree.checked_sub(1) else {
        return true;
    };
    // SAFETY: the value is a plain integer, read once.
    unsafe { PROCESS_TREES.get(&pid) }.is_some_and(|trees| trees & (1u64 << (bit & 63)) != 0)
}

pub(crate) struct Thread {
    pub(crate) pid: u32,
    pub(crate) tid: u32,
}

impl Thread {
    /// The key of the thread's own call stack.
    #[inline(always)]
    pub(crate) fn own_stack(&self) -> StackKey {
        self.stack(u64::from(self.tid))
    }

    /// The key of call stack `id` (see [`StackKey`]) of the thread's process.
    #[inline(always)]
    pub(crate) fn stack(&self, id: u64) -> StackKey {
        StackKey {
            id,
            pid: self.pid,
            _pad: 0,
        }
    }
}

/// The current thread, unless a pid filter is set and its process is not in it.
#[inline(always)]
pub(crate) fn traced_thread() -> Option<Thread> {
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
