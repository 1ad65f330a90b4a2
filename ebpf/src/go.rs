//! Go: the sites that end Go calls (their `RET`s), goroutines that end or recover from a panic.

use aya_ebpf::{
    EbpfContext as _, bindings::pt_regs, helpers::bpf_ktime_get_ns, programs::ProbeContext,
};
use spanprobe_common::{
    ArgCapture, ArgSource, CallEnd, Counter, ENDS_GOROUTINE, Ending, FunctionCapture,
    GOROUTINE_STACK, QUEUES_GOROUTINE, RESUMES_AFTER_PANIC, STARTS_GOROUTINE,
};

use crate::{
    args::{read_arg, read_user_u64},
    emit::{count, function_id, registers},
    handoffs::{goroutine_created, goroutine_queued},
    maps::FUNCTIONS,
    processes::{Thread, in_process_tree, traced_thread},
    returns::return_from,
    stacks::{
        StackPlace, Stacks, end_frames_below, end_stack, existing_stack, free_if_idle, stack_place,
    },
};

/// Where positions on a goroutine's stack are measured from: a frame's [`Frame::sp`] there is
/// this less its distance from the stack's top, so that deeper frames are lower, as on a
/// thread's stack, and stay put when Go copies the stack elsewhere to grow it.
pub(crate) const GOROUTINE_TOP: u64 = 1 << 62;

/// EFLAGS' carry and zero flags: `JBE` branches when either is set.
pub(crate) const CARRY: u64 = 1;
pub(crate) const ZERO: u64 = 1 << 6;

/// The offset of `stack.hi`, the top of a goroutine's stack, in `runtime.g`: its first field
/// is the `stack` (`lo`, `hi`), fixed because the runtime's assembly relies on it.
pub(crate) const G_STACK_HI: u64 = 8;

pub(crate) fn try_go(ctx: &ProbeContext) -> Option<()> {
    // SAFETY: the helper takes no arguments and cannot fail.
    let now = unsafe { bpf_ktime_get_ns() };
    let thread = traced_thread()?;
    let capture = FUNCTIONS.get(function_id(ctx.as_ptr()))?;
    if !in_process_tree(thread.pid, capture.process_tree) {
        return None;
    }
    let regs = registers(ctx.as_ptr());
    if capture.flags & RESUMES_AFTER_PANIC != 0 {
        return go_recovered(&thread, capture, regs, now);
    }
    if capture.flags & STARTS_GOROUTINE != 0 {
        // runtime.newproc1(fn, callergp, callerpc): callergp in RBX.
        goroutine_created(
            thread.pid,
            thread.tid,
            &thread.stack(GOROUTINE_STACK | regs.rbx),
        );
        return Some(());
    }
    if capture.flags & QUEUES_GOROUTINE != 0 {
        // runtime.runqput(pp, gp, next): gp in RBX.
        goroutine_queued(thread.pid, thread.tid, GOROUTINE_STACK | regs.rbx);
        return Some(());
    }
    if capture.flags & ENDS_GOROUTINE != 0 {
        // runtime.goexit0(gp *g): gp in RAX.
        let goroutine = thread.stack(GOROUTINE_STACK | regs.rax);
        return end_stack(&thread, &goroutine, now, CallEnd::GoroutineExit);
    }
    let place = stack_place(&thread, Stacks::Goroutine, regs)?;
    go_return(&thread, &place, capture, regs, now)
}

/// A `RET` of a Go function: the call that entered at the same place of the goroutine's stack
/// returns, with its results in the registers.
#[inline(always)]
pub(crate) fn go_return(
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

/// `runtime.recovery(gp)`: a recovered panic resumes on `gp`'s stack, in the function that
/// deferred the recovering call; the calls it made, below where it resumes, were unwound.
#[inline(always)]
pub(crate) fn go_recovered(
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
