//! Returns: a call's frame popped and its event sent, at a uretprobe or at a USDT end site.

use aya_ebpf::{
    EbpfContext as _, bindings::pt_regs, helpers::bpf_ktime_get_ns, programs::RetProbeContext,
};
use spanprobe_common::{CallEnd, CallStack, Counter, Ending, FunctionCapture};

use crate::{
    args::{Faults, Unread, read_args},
    emit::{count, emit_call, function_id, registers},
    maps::{FUNCTIONS, PROCESS_TREES_USED, READS_AT_RETURN_USED},
    processes::{Thread, in_process_tree, traced_thread},
    stacks::{FrameLinks, depth_limit, end_frames_below, existing_stack, frame_at, free_if_idle},
};

/// A USDT site that ends a span: the innermost open span, when a start of the same pair opened
/// it (its arguments already read); otherwise counted as an end without its start (the probes
/// were attached while the span was open, or a longjmp skipped it).
#[inline(always)]
pub(crate) fn end_usdt_span(
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
    pop_top_frame(thread.tid, stack, regs.rsp, now, |top| {
        FUNCTIONS.get(top.function_id).map(|start| start.pair) == Some(capture.pair)
    })?;
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
pub(crate) fn store_end_args(
    stack: &mut CallStack,
    index: u32,
    capture: &FunctionCapture,
    regs: &pt_regs,
) {
    let Some(frame) = stack.frames.get_mut(index as usize) else {
        return;
    };
    frame.faults |= read_args(&mut frame.args, regs, capture, Faults::Fail, Unread::Kept);
}

pub(crate) fn try_return(ctx: &RetProbeContext) -> Option<()> {
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

/// The call on top of `stack`, which entered at `sp`, has returned: its event is sent. Frames
/// entered below `sp` were skipped (by a longjmp, an exception, a recovered Go panic) and end
/// as unwound. With `pair`, the top frame must be of a function of that pair (a Go `RET`
/// names its function); otherwise its position alone tells it.
#[inline(always)]
pub(crate) fn return_from(
    thread: &Thread,
    stack: &mut CallStack,
    sp: u64,
    pair: Option<u32>,
    ending: &Ending,
) -> Option<()> {
    pop_top_frame(thread.tid, stack, sp, ending.now, |frame| {
        let same_function = match pair {
            Some(pair) => FUNCTIONS
                .get(frame.function_id)
                .is_some_and(|entry| entry.pair == pair),
            None => true,
        };
        frame.sp == sp && same_function
    })?;
    if stack.unsampled == 0 && READS_AT_RETURN_USED.load() != 0 {
        crate::at_return::read_at_return(stack, stack.depth, ending.ret);
    }
    emit_call(thread.tid, stack, stack.depth, ending);
    stack.resample_after(stack.depth);
    free_if_idle(stack);
    Some(())
}

/// Pops the top frame of `stack` for a call that ends (returns, or reaches its USDT end site),
/// once `is_top` says the frame is that call's; frames entered below `sp` end first, as
/// unwound. `None` when there is no frame to end, and the caller sends no event.
#[inline(always)]
fn pop_top_frame(
    tid: u32,
    stack: &mut CallStack,
    sp: u64,
    now: u64,
    is_top: impl FnOnce(&FrameLinks) -> bool,
) -> Option<()> {
    end_frames_below(tid, stack, sp, now, CallEnd::Unwound);
    if stack.depth == 0 {
        count(Counter::ReturnWithoutEntry);
        return None;
    }
    // A call (or USDT start) past the depth limit has no frame; it was counted at entry. Its
    // end pops it all the same.
    if stack.depth > depth_limit() {
        stack.depth -= 1;
        return None;
    }
    let frame = frame_at(stack, stack.depth - 1)?;
    if !is_top(&frame) {
        // Not the top frame's end: its entry was never recorded (the probes were attached
        // while it ran), or the frame was already ended. Leave the stack as it is.
        count(Counter::ReturnWithoutEntry);
        return None;
    }
    stack.depth -= 1;
    stack.top_entry_ns = frame.parent_entry_ns;
    Some(())
}
