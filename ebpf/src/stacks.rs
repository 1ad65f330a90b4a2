//! Call stacks: a thread's (task storage) or a goroutine's (a hash map), their frames, and
//! the frames that end without a return (skipped by a longjmp, left by an exiting thread).

use core::ffi::c_void;

use aya_ebpf::{
    bindings::{BPF_NOEXIST, pt_regs},
    helpers::generated::bpf_loop,
};
use spanprobe_common::{
    CallEnd, CallKey, CallStack, Counter, Ending, GOROUTINE_STACK, MAX_DEPTH, StackKey,
};

use crate::{
    args::read_user_u64,
    emit::{count, emit_call},
    go::{G_STACK_HI, GOROUTINE_TOP},
    maps::{DEPTH_LIMIT, EMPTY_STACK, GOROUTINE_STACKS, THREAD_STACKS},
    processes::Thread,
};

/// [`Frame::return_address`] of a USDT span's frame, which has no return slot, and of a Go
/// call's, whose return slot no probe changes.
pub(crate) const NOT_A_CALL: u64 = u64::MAX;

/// Which call stacks an entry program works on.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stacks {
    /// The thread's own, in task storage.
    Thread,
    /// The running goroutine's, in a hash map: Go calls.
    Goroutine,
}

/// Frames kept per thread: the configured limit, within the map's capacity.
#[inline(always)]
pub(crate) fn depth_limit() -> u32 {
    DEPTH_LIMIT.load().min(MAX_DEPTH as u32)
}

/// Frees a goroutine's stack once no call is in progress on it: goroutines come by the
/// thousand in a server, and most wait outside any probed call, where their stacks would
/// only crowd the map. A thread's stays, freed when the thread exits. Last: `stack` is gone
/// afterwards.
#[inline(always)]
pub(crate) fn free_if_idle(stack: &CallStack) {
    if stack.depth == 0 && stack.key.is_goroutine() {
        remove_stack(&stack.key);
    }
}

/// Which call stack a probe works on, and where on it the probe fired.
pub(crate) struct StackPlace {
    /// Its key in [`GOROUTINE_STACKS`].
    pub(crate) key: StackKey,
    /// The stack position that tells live frames from skipped ones: RSP on a thread's stack,
    /// measured from the top on a goroutine's (see [`GOROUTINE_TOP`]).
    pub(crate) sp: u64,
}

/// The stack a probe works on: its thread's, or for Go code the running goroutine's (R14 holds
/// its `g` under Go's register ABI), since goroutines move between threads, even inside a
/// call. `None`, counted, when the goroutine's stack cannot be read.
#[inline(always)]
pub(crate) fn stack_place(thread: &Thread, stacks: Stacks, regs: &pt_regs) -> Option<StackPlace> {
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

/// The stack `key` ends (its thread or goroutine does): its calls in progress end as `end`,
/// and it is freed.
#[inline(always)]
pub(crate) fn end_stack(thread: &Thread, key: &StackKey, now: u64, end: CallEnd) -> Option<()> {
    let stack = existing_stack(key)?;
    // Calls past the depth limit have no frame (they were counted at entry).
    stack.depth = stack.depth.min(depth_limit());
    end_frames_below(thread.tid, stack, u64::MAX, now, end);
    remove_stack(key);
    Some(())
}

/// Ends, as `end`, the calls on top of the stack that entered below `sp` (lower addresses are
/// deeper), innermost first. Through `bpf_loop`, whose callback the verifier checks once,
/// where it checks a loop in the program once per iteration: with three callers in the entry
/// program, a plain loop was three quarters of its load time.
#[inline(never)]
pub(crate) fn end_frames_below(tid: u32, stack: &mut CallStack, sp: u64, now: u64, end: CallEnd) {
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
pub(crate) struct Unwinding<'a> {
    pub(crate) stack: &'a mut CallStack,
    pub(crate) sp: u64,
    pub(crate) now: u64,
    pub(crate) tid: u32,
    /// [`depth_limit`], at most [`MAX_DEPTH`].
    pub(crate) limit: u16,
    pub(crate) end: CallEnd,
}
const _: () = assert!(size_of::<Unwinding>() == 32);

/// One step of [`end_frames_below`]: ends the top frame if it entered below the state's `sp`;
/// 0 to go on, 1 to stop.
///
/// # Safety
/// `unwinding` must point to an [`Unwinding`], as `end_frames_below` passes it.
pub(crate) unsafe extern "C" fn end_top_frame(_index: u64, unwinding: *mut c_void) -> i64 {
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

/// The call stack `key`, if it exists: of the current thread, of the goroutine running on it,
/// or of one that is ending or recovering (stopped, so running no probe elsewhere).
#[inline(always)]
pub(crate) fn existing_stack(key: &StackKey) -> Option<&'static mut CallStack> {
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
pub(crate) fn remove_stack(key: &StackKey) {
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
pub(crate) fn stack_or_insert(key: &StackKey, stacks: Stacks) -> Option<&'static mut CallStack> {
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
pub(crate) fn frame_at(stack: &CallStack, index: u32) -> Option<FrameLinks> {
    stack.frames.get(index as usize).map(|frame| FrameLinks {
        sp: frame.sp,
        return_address: frame.return_address,
        parent_entry_ns: frame.parent_entry_ns,
        function_id: frame.function_id,
    })
}

/// Marks frame `index` of `stack` as having a probed callee, whose span may be its child: its
/// keep rules are then not decided at its return. Out of line, as [`frame_at`] is.
#[inline(never)]
pub(crate) fn mark_callee(stack: &mut CallStack, index: u32) {
    if let Some(frame) = stack.frames.get_mut(index as usize) {
        frame.callees = 1;
    }
}

/// What ties a frame into its stack.
#[derive(Clone, Copy)]
pub(crate) struct FrameLinks {
    pub(crate) sp: u64,
    pub(crate) return_address: u64,
    pub(crate) parent_entry_ns: u64,
    pub(crate) function_id: u32,
}

/// Identifies a call in progress: its stack and its depth there.
#[inline(always)]
pub(crate) fn call_key(stack: &StackKey, depth: u32) -> CallKey {
    CallKey {
        stack: stack.id,
        pid: stack.pid,
        depth,
    }
}
