//! Handoffs: a span open at a `from` site is kept under a key (a task, a request), and a `to`
//! site that reads the same key, on any thread of the process, adopts it as the parent (or a
//! link) of what it opens. Decided here, so that no span waits in userspace for its parent.

use aya_ebpf::bindings::pt_regs;
use spanprobe_common::{
    CallStack, Counter, FunctionCapture, HANDOFF_LINK, HANDOFF_REPEAT, HANDS_OFF, HandoffKey,
    LINKED, NO_SPAN, NOT_SAMPLED, PARENT_HANDED_OFF, TRACE_DERIVED, TraceContext,
};

use crate::{
    args::{Faults, read_value},
    context::{ContextRead, copy_context, inherit},
    emit::count,
    maps::HANDOFFS,
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
    Some(HandoffKey {
        pid,
        handoff: capture.handoff_id,
        key,
    })
}

/// At a `from` site: keeps, under the site's key, the span that the calls of the top frame of
/// `stack` (at `depth`) would have for parent, with its trace and whether it was sampled. The
/// top frame is the site's own when it makes a span. A frame that carries a handoff it took
/// passes that on. With no span open, a key left from before is dropped, so that a reused
/// pointer adopts nothing stale. The stack's `entering` context is free by then, and holds
/// what is kept while it is built. Out of line, like the entry's other parts.
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
        let _ = HANDOFFS.remove(&key);
        return;
    };
    let carried = inherit(frames, top, stack_key.id, kept);
    if carried == ContextRead::Absent {
        if *top_entry_ns == 0 {
            let _ = HANDOFFS.remove(&key);
            return;
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
    if HANDOFFS.insert(&key, kept, 0).is_ok() {
        count(Counter::HandoffMade);
    }
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
