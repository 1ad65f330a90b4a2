//! Handoffs: a span open at a `from` site is kept under a key (a task, a request), and a `to`
//! site that reads the same key, on any thread of the process, adopts it as the parent (or a
//! link) of what it opens. Decided here, so that no span waits in userspace for its parent.

use aya_ebpf::bindings::pt_regs;
use spanprobe_common::{
    CallStack, Counter, FunctionCapture, GOROUTINE_HANDOFF, HANDOFF_LINK, HANDOFF_REPEAT,
    HANDS_OFF, HandoffKey, LINKED, NO_SPAN, NOT_SAMPLED, PARENT_HANDED_OFF, PENDING_GOROUTINE,
    StackKey, TRACE_DERIVED, TraceContext,
};

use crate::{
    args::{Faults, read_value},
    context::{ContextRead, copy_context, inherit},
    emit::count,
    maps::HANDOFFS,
    stacks::existing_stack,
};

/// The key `capture`'s handoff reads, in process `pid`; `None` when its chain faults.
#[inline(always)]
fn key_of(
    pid: u32,
    capture: &FunctionCapture,
    regs: &pt_regs,
    faults: Faults,
) -> Option<HandoffKey> {
    let mut key = 0;
    if !read_value(&mut key, &capture.handoff, regs, faults) {
        return None;
    }
    // A narrower key in a register (an `int` id): its upper bits are not the key's, and may
    // differ between the two ends.
    let size = u32::from(capture.handoff.field_size);
    if capture.handoff.chain == 0 && (1..8).contains(&size) {
        key &= (1u64 << (8 * size)) - 1;
    }
    Some(HandoffKey {
        pid,
        handoff: capture.handoff_id,
        key,
    })
}

/// At a `from` site: keeps, under the site's key, the span open at the top of `stack` (at
/// `depth`), which is the site's own when it makes a span. With no span open, a key left from
/// before is dropped, so that a reused pointer adopts nothing stale. Out of line, like the
/// entry's other parts.
#[inline(never)]
pub(crate) fn hand_off(
    pid: u32,
    stack: &mut CallStack,
    depth: u32,
    capture: &FunctionCapture,
    regs: &pt_regs,
) {
    let Some(key) = key_of(pid, capture, regs, Faults::Fail) else {
        return;
    };
    if keep_top_span(stack, depth) {
        if HANDOFFS.insert(&key, &stack.entering, 0).is_ok() {
            count(Counter::HandoffMade);
        }
    } else {
        let _ = HANDOFFS.remove(&key);
    }
}

/// Writes into the stack's `entering` context (free outside an entry's own use) what a taker
/// of the span at the top of `stack` (at `depth`) adopts: that span, with its trace and whether
/// it was sampled. A frame that carries a handoff it took passes that on. False when no span
/// is open.
#[inline(never)]
pub(crate) fn keep_top_span(stack: &mut CallStack, depth: u32) -> bool {
    let CallStack {
        frames,
        entering: kept,
        key: stack_key,
        top_entry_ns,
        root_entry_ns,
        unsampled,
        ..
    } = stack;
    let Some(top) = depth.checked_sub(1) else {
        return false;
    };
    let carried = inherit(frames, top, stack_key.id, kept);
    if carried == ContextRead::Absent {
        if *top_entry_ns == 0 {
            return false;
        }
        if kept.flags & TRACE_DERIVED == 0 && kept.trace_id == [0; 2] {
            // The thread's own trace, which userspace derives from its root.
            kept.trace_id = [stack_key.id, *root_entry_ns];
            kept.flags = TRACE_DERIVED;
        }
        kept.parent_stack = stack_key.id;
        kept.parent_span_id = *top_entry_ns;
        kept.flags |= PARENT_HANDED_OFF;
    }
    // What a taker adopts as its parent: a link is made one at the `to` site.
    kept.flags &= TRACE_DERIVED | PARENT_HANDED_OFF;
    if *unsampled != 0 || carried == ContextRead::HandedOffNotSampled {
        kept.flags |= NOT_SAMPLED;
    }
    true
}

/// At a `to` site: adopts into `entering` the span kept under the site's key, if any. A site
/// that makes a span adopts it for that span; one that makes none carries it in its frame for
/// the calls it makes ([`HANDS_OFF`]).
#[inline(never)]
pub(crate) fn take_handoff(
    pid: u32,
    capture: &FunctionCapture,
    regs: &pt_regs,
    faults: Faults,
    entering: &mut TraceContext,
) -> ContextRead {
    let Some(key) = key_of(pid, capture, regs, faults) else {
        count(Counter::HandoffMissing);
        return ContextRead::Absent;
    };
    // SAFETY: the value is copied out at once; a concurrent update can only tear a context
    // that is then adopted as it was written, word by word.
    let Some(kept) = (unsafe { HANDOFFS.get(&key) }) else {
        count(Counter::HandoffMissing);
        return ContextRead::Absent;
    };
    copy_context(entering, kept);
    if capture.flags & HANDOFF_REPEAT == 0 {
        let _ = HANDOFFS.remove(&key);
    }
    count(Counter::HandoffTaken);
    if capture.flags & HANDOFF_LINK != 0 {
        entering.flags = (entering.flags & !NOT_SAMPLED) | LINKED;
    }
    if capture.flags & NO_SPAN != 0 {
        entering.flags |= HANDS_OFF;
        return ContextRead::Carried;
    }
    adopted(entering)
}

/// What adopting `context`, a handoff, decides: a link leaves sampling to the call's own trace;
/// a parent's trace is kept or dropped as the parent's was.
#[inline(always)]
pub(crate) fn adopted(context: &mut TraceContext) -> ContextRead {
    let flags = context.flags;
    context.flags = flags & (TRACE_DERIVED | PARENT_HANDED_OFF | LINKED);
    if flags & LINKED != 0 {
        ContextRead::Linked
    } else if flags & NOT_SAMPLED != 0 {
        ContextRead::HandedOffNotSampled
    } else {
        ContextRead::HandedOff
    }
}

/// At the entry of a call that starts on goroutine stack `stack_id` with none open: adopts
/// into `entering` the span the goroutine was started under, if any (see
/// [`GOROUTINE_HANDOFF`]).
#[inline(never)]
pub(crate) fn take_goroutine_parent(
    pid: u32,
    stack_id: u64,
    entering: &mut TraceContext,
) -> ContextRead {
    let key = HandoffKey {
        pid,
        handoff: GOROUTINE_HANDOFF,
        key: stack_id,
    };
    // SAFETY: copied out at once, as in `take_handoff`.
    match unsafe { HANDOFFS.get(&key) } {
        Some(kept) => {
            copy_context(entering, kept);
            adopted(entering)
        }
        None => ContextRead::Absent,
    }
}

/// `runtime.newproc1(fn, callergp, callerpc)`, creating a goroutine for `callergp` (RBX) on
/// thread `tid`: keeps, for the `runtime.runqput` that follows on this thread, the span open
/// on the creator's stack, or else the one the creator was started under; an empty context
/// when neither, so that the new goroutine adopts nothing stale.
#[inline(never)]
pub(crate) fn goroutine_created(pid: u32, tid: u32, creator: &StackKey) {
    let pending = HandoffKey {
        pid,
        handoff: PENDING_GOROUTINE,
        key: u64::from(tid),
    };
    if let Some(stack) = existing_stack(creator) {
        let depth = stack.depth;
        if keep_top_span(stack, depth) {
            let _ = HANDOFFS.insert(&pending, &stack.entering, 0);
            return;
        }
    }
    let inherited = HandoffKey {
        pid,
        handoff: GOROUTINE_HANDOFF,
        key: creator.id,
    };
    // SAFETY: a map value, passed back to the map as the value to store.
    if let Some(kept) = unsafe { HANDOFFS.get(&inherited) } {
        let _ = HANDOFFS.insert(&pending, kept, 0);
        return;
    }
    let _ = HANDOFFS.insert(&pending, &TraceContext::default(), 0);
}

/// `runtime.runqput(pp, gp, next)` on thread `tid`: when it queues the goroutine the thread
/// just created (not one woken up), what was kept for it becomes `goroutine`'s.
#[inline(never)]
pub(crate) fn goroutine_queued(pid: u32, tid: u32, goroutine: u64) {
    let pending = HandoffKey {
        pid,
        handoff: PENDING_GOROUTINE,
        key: u64::from(tid),
    };
    // SAFETY: a map value, stored under another key before its own is removed.
    let Some(kept) = (unsafe { HANDOFFS.get(&pending) }) else {
        return;
    };
    let key = HandoffKey {
        pid,
        handoff: GOROUTINE_HANDOFF,
        key: goroutine,
    };
    if kept.flags & PARENT_HANDED_OFF != 0 {
        let _ = HANDOFFS.insert(&key, kept, 0);
    } else {
        let _ = HANDOFFS.remove(&key);
    }
    let _ = HANDOFFS.remove(&pending);
}
