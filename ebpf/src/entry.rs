//! The entry programs' body: a call's frame pushed (or, entry-only, sent at once), its
//! arguments, trace context and sampling decided.

use aya_ebpf::{
    EbpfContext as _,
    bindings::pt_regs,
    helpers::{bpf_get_prandom_u32, bpf_ktime_get_ns},
    programs::ProbeContext,
};
use spanprobe_common::{
    AT_STACK_CHECK, CallEnd, CallStack, ContextFormat, ContextPolicy, Counter, ENDS_PAIRED_SPAN,
    ENTRY_ONLY, EVENT_OF_OPEN_SPAN, Ending, Frame, FunctionCapture, HANDOFF_FROM, HANDOFF_TO,
    MAX_DEPTH, NO_SPAN, NOT_AT_CALL, ON_GOROUTINE_STACK, SAMPLE_ALWAYS, STACK_WINDOW,
};

use crate::{
    args::{Faults, Unread, read_args, read_user_u64},
    conditions::conditions_hold,
    context::{ContextRead, clear_context, copy_context, inherit, read_context},
    emit::{count, function_id, registers, send},
    go::{CARRY, ZERO},
    handoffs::{hand_off, take_goroutine_parent, take_handoff},
    maps::{FUNCTIONS, GOROUTINE_PARENTS, KEEP_AT_RETURN, RETURN_ADDRESSES, TRACE_CONTEXTS},
    processes::{Thread, in_process_tree, traced_thread},
    records::{call_record, capture_memory, capture_stack},
    returns::end_usdt_span,
    stacks::{
        NOT_A_CALL, StackPlace, Stacks, call_key, depth_limit, end_frames_below, frame_at,
        free_if_idle, mark_callee, stack_or_insert, stack_place,
    },
    windows::send_window,
};

pub(crate) fn try_entry(ctx: &ProbeContext, faults: Faults, stacks: Stacks) -> Option<()> {
    // SAFETY: the helper takes no arguments and cannot fail.
    let now = unsafe { bpf_ktime_get_ns() };
    let thread = traced_thread()?;
    let function_id = function_id(ctx.as_ptr());
    let capture = FUNCTIONS.get(function_id)?;
    if !in_process_tree(thread.pid, capture.process_tree) {
        return None;
    }
    let regs = registers(ctx.as_ptr());
    if capture.flags & ENDS_PAIRED_SPAN != 0 {
        return end_usdt_span(&thread, capture, regs, now);
    }
    // The stack check's branch to morestack is taken: the function starts again once its stack
    // has grown, and enters then.
    if capture.flags & AT_STACK_CHECK != 0 && regs.eflags & (CARRY | ZERO) != 0 {
        return None;
    }
    // Go calls are attached to the goroutine programs only; nothing else is.
    if (capture.flags & ON_GOROUTINE_STACK != 0) != (stacks == Stacks::Goroutine) {
        return None;
    }
    let place = stack_place(&thread, stacks, regs)?;
    let stack = stack_or_insert(&place.key, stacks)?;
    let return_address = end_skipped_frames(&thread, stack, &place, capture, regs, now);
    let depth = stack.depth;
    let entry_only = capture.flags & ENTRY_ONLY != 0;
    if KEEP_AT_RETURN.load() != 0
        && let Some(caller) = depth.checked_sub(1)
    {
        mark_callee(stack, caller);
    }
    // A `from` sent at once (or making no span) hands off the span open around it.
    if entry_only && capture.flags & HANDOFF_FROM != 0 {
        hand_off(thread.pid, stack, depth, capture, regs);
        if capture.flags & NO_SPAN != 0 {
            free_if_idle(stack);
            return Some(());
        }
    }
    // The outermost call that makes a span: frames that make none (a handoff's `to`) are not
    // the parents of the calls they make.
    let root = stack.top_entry_ns == 0;
    if root {
        stack.root_entry_ns = now;
        stack.root_function_id = function_id;
        stack.unsampled = u32::from(!sampled(capture.sample_threshold));
    }
    // The caller's trace, unless this call was handed a valid context of its own (read from
    // its arguments, or a span handed off to it), which then decides whether the call and its
    // callees are kept.
    // Built in the thread's stack entry, and copied a word at a time: LLVM turns a
    // `TraceContext` built or copied whole into calls to `memset`/`memmove`, which run as
    // byte loops here and cost every call tens of nanoseconds.
    clear_context(&mut stack.entering);
    // Functions that read a context get the sleepable programs (it is read from user memory).
    let mut read = if faults == Faults::Fail || capture.context_format == ContextFormat::None as u8
    {
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
    if read == ContextRead::Invalid {
        count(Counter::InvalidTraceContext);
        clear_context(&mut stack.entering);
    }
    if matches!(read, ContextRead::Absent | ContextRead::Invalid) {
        if capture.flags & HANDOFF_TO != 0 {
            read = take_handoff(thread.pid, capture, regs, faults, &mut stack.entering);
        } else if root && stacks == Stacks::Goroutine && GOROUTINE_PARENTS.load() != 0 {
            read = take_goroutine_parent(thread.pid, stack.key.id, &mut stack.entering);
        }
        // Callees inherit their caller's trace; with no context anywhere, every trace id
        // is zero, so nothing needs carrying.
        if matches!(read, ContextRead::Absent | ContextRead::Invalid)
            && TRACE_CONTEXTS.load() != 0
            && let Some(top) = depth.checked_sub(1)
        {
            read = inherit(&stack.frames, top, stack.key.id, &mut stack.entering);
        }
    }
    let keep = match read {
        ContextRead::Sampled | ContextRead::NotSampled => Some(
            if capture.context_policy == ContextPolicy::FollowParent as u8 {
                read == ContextRead::Sampled
            } else {
                trace_id_sampled(&stack.entering.trace_id, capture.sample_threshold)
            },
        ),
        // A handed-off span's trace is kept as it was where it was handed off.
        ContextRead::HandedOff => Some(true),
        ContextRead::HandedOffNotSampled => Some(false),
        ContextRead::Absent | ContextRead::Invalid | ContextRead::Linked | ContextRead::Carried => {
            None
        }
    };
    // An entry-only call is sent at once from a frame that is never pushed; any other is
    // pushed, and sent when it returns.
    if entry_only {
        if keep == Some(false) || stack.unsampled != 0 {
            free_if_idle(stack);
            return None;
        }
    } else {
        match keep {
            Some(keep) if root => stack.unsampled = u32::from(!keep),
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
    frame.callees = 0;
    copy_context(&mut frame.context, &stack.entering);
    if !entry_only && capture.flags & NO_SPAN == 0 {
        stack.top_entry_ns = now;
    }
    // Kept for pairing entries with returns, with nothing to capture.
    let mut captures = entry_only || (stack.unsampled == 0 && capture.flags & NO_SPAN == 0);
    let mut left_out = false;
    if captures {
        // Read in place: an array of arguments is too large for the BPF stack.
        frame.faults = read_args(&mut frame.args, regs, capture, faults, Unread::Zeroed);
        // Decided on the values alone, before any memory is copied.
        if capture.conditions_len != 0
            && !conditions_hold(&frame.args, capture, regs, faults, &mut stack.scratch)
        {
            count(Counter::FilteredByWhen);
            (captures, left_out) = (false, true);
        }
    }
    // Left out by `when`: its callees too, as a nested call that its trace context drops.
    if left_out && !entry_only && stack.unsampled == 0 {
        stack.unsampled = depth + 1;
    }
    // A `from` that makes a span hands off its own: its frame is the top one now.
    if !entry_only && capture.flags & HANDOFF_FROM != 0 {
        hand_off(thread.pid, stack, depth + 1, capture, regs);
    }
    if !captures {
        free_if_idle(stack);
        return Some(());
    }
    let stack = &*stack;
    let (frame, slot) = if entry_only {
        (&stack.unpushed, ENTRY_ONLY_SLOT)
    } else {
        (stack.frames.get(depth as usize)?, depth)
    };
    if faults == Faults::Allowed && capture.data_len > 0 {
        fill_record(stack, frame, slot, regs, capture);
    }
    if faults == Faults::Allowed && capture.flags & STACK_WINDOW != 0 {
        send_window(stack, frame, slot.min(stack.depth), regs, capture);
    }
    if entry_only {
        emit_unpushed(thread.tid, stack, capture);
        free_if_idle(stack);
    }
    Some(())
}

/// Ends the calls on `stack` that this entry shows were left without a return (skipped by a
/// longjmp, a C++ exception, a recovered Go panic), telling them from a caller that
/// tail-called this function; returns this call's return address, as far as it is read.
#[inline(always)]
fn end_skipped_frames(
    thread: &Thread,
    stack: &mut CallStack,
    place: &StackPlace,
    capture: &FunctionCapture,
    regs: &pt_regs,
    now: u64,
) -> u64 {
    // A USDT site is inside its function: `[rsp]` is whatever that function keeps there. Go
    // calls get no return probe, so their return slot needs no watching.
    let at_call = capture.flags & (NOT_AT_CALL | ON_GOROUTINE_STACK) == 0;
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
        && (capture.flags & ON_GOROUTINE_STACK != 0
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
        if top.sp == place.sp {
            if !tail_call {
                end_frames_below(thread.tid, stack, place.sp + 1, now, CallEnd::Unwound);
            } else {
                // A tail call shares its caller's return slot, which holds the trampoline now:
                // its real return address is the caller's (0 when not read). Kept as such, a
                // tail call from it (the trampoline again at this slot) is told from a
                // longjmp as this one was.
                return top.return_address;
            }
        }
    }
    return_address
}

/// Fills the record of the call in `frame` with what its function keeps until return (the
/// memory its arguments point to, its stack). `slot` is where the record is kept: the frame's
/// depth, or [`ENTRY_ONLY_SLOT`] for the [`CallStack::unpushed`] frame; either way the
/// calls outside it are the stack's first `slot.min(stack.depth)`. Only the sleepable entry
/// programs fill records (see `spanprobe_entry_sleepable`). Out of line, so that its locals
/// are never on the BPF stack with its callers'.
#[inline(never)]
pub(crate) fn fill_record(
    stack: &CallStack,
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

/// Decides, at a trace's root, whether the trace is kept.
#[inline(always)]
pub(crate) fn sampled(threshold: u32) -> bool {
    // SAFETY: the helper takes no arguments and cannot fail.
    threshold == SAMPLE_ALWAYS || unsafe { bpf_get_prandom_u32() } < threshold
}

/// Decides by the trace id, as OpenTelemetry's `TraceIdRatioBased` does: its last four
/// bytes, random in a W3C trace id, against the threshold.
#[inline(always)]
pub(crate) fn trace_id_sampled(trace_id: &[u64; 2], threshold: u32) -> bool {
    let bytes = trace_id[1].to_ne_bytes();
    let low = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    threshold == SAMPLE_ALWAYS || low < threshold
}

/// Sends the span of an entry-only call at once (or an event of the innermost open span): no
/// duration, and a frame that is never pushed ([`CallStack::unpushed`], which the entry
/// filled, with its memory and stack in the thread's record at [`ENTRY_ONLY_SLOT`], free again
/// once sent). Out of line, so that its locals are never on the BPF stack with the entry's
/// callees'.
#[inline(never)]
pub(crate) fn emit_unpushed(tid: u32, stack: &CallStack, capture: &FunctionCapture) {
    // An event belongs to the innermost open span, when there is one.
    let end = if capture.flags & EVENT_OF_OPEN_SPAN != 0 && stack.top_entry_ns != 0 {
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
pub(crate) const ENTRY_ONLY_SLOT: u32 = MAX_DEPTH as u32;
