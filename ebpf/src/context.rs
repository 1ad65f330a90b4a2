//! The caller's W3C trace context, read from the arguments, and carried from caller to callee.

use core::{ffi::c_void, ptr::write_volatile};

use aya_ebpf::{bindings::pt_regs, helpers::generated::bpf_probe_read_user_str};
use spanprobe_common::{
    ContextFormat, Frame, FunctionCapture, HANDS_OFF, LINKED, MAX_DEPTH, SCRATCH_LEN,
    TRACE_DERIVED, TRACEPARENT_LEN, TraceContext,
};

use crate::{
    args::{Faults, read_arg, read_user},
    handoffs::adopted,
    records::fault_in,
};

/// What [`read_context`] found.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ContextRead {
    /// The function takes no context.
    Absent,
    /// The argument holds no valid context.
    Invalid,
    /// A valid context whose parent was sampled (or that carries no flag).
    Sampled,
    /// A valid context whose parent was not sampled.
    NotSampled,
    /// A handed-off span, adopted as the parent: its trace was sampled.
    HandedOff,
    /// A handed-off span, adopted as the parent: its trace was sampled out.
    HandedOffNotSampled,
    /// A handed-off span, adopted as a link: the call roots a trace of its own.
    Linked,
    /// A handed-off span, carried by a call that makes no span for the calls it makes.
    Carried,
}

/// Reads the trace context the caller passed into `context` (using `text` to read a
/// `traceparent` into). Out of line, to keep its locals off the entry program's stack.
#[inline(never)]
pub(crate) fn read_context(
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
pub(crate) fn hex_byte(high: u8, low: u8) -> Option<u8> {
    Some((hex_digit(high)? << 4) | hex_digit(low)?)
}

#[inline(always)]
pub(crate) fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// Writes into `out` what the calls of frame `index` inherit (zero ids: the trace userspace
/// derives from the thread's root), on the stack `stack_id`: its trace, and when it carries a
/// handoff it took ([`HANDS_OFF`]), the handed-off span too, which each of them adopts as if
/// it had taken the handoff: what that decides is returned ([`ContextRead::Absent`] for a
/// trace alone). Out of line like [`frame_at`], and writing through `out` because a BPF
/// function may not return a pointer to its caller's stack.
#[inline(never)]
pub(crate) fn inherit(
    frames: &[Frame; MAX_DEPTH],
    index: u32,
    stack_id: u64,
    out: &mut TraceContext,
) -> ContextRead {
    clear_context(out);
    let Some(frame) = frames.get(index as usize) else {
        return ContextRead::Absent;
    };
    let flags = frame.context.flags;
    if flags & HANDS_OFF != 0 {
        copy_context(out, &frame.context);
        return adopted(out);
    }
    // SAFETY: aligned words of a map value and of the caller's; see `clear_context`.
    unsafe {
        if flags & LINKED != 0 {
            // A call that took a link roots a trace of its own, derived from its entry.
            write_volatile(&mut out.trace_id[0], stack_id);
            write_volatile(&mut out.trace_id[1], frame.entry_ns);
            write_volatile(&mut out.flags, TRACE_DERIVED);
        } else {
            write_volatile(&mut out.trace_id[0], frame.context.trace_id[0]);
            write_volatile(&mut out.trace_id[1], frame.context.trace_id[1]);
            write_volatile(&mut out.flags, flags & TRACE_DERIVED);
        }
    }
    ContextRead::Absent
}

/// Zeroes `context` a word at a time: volatile, so that LLVM does not merge the stores into a
/// `memset` call, which BPF runs as a byte loop.
#[inline(always)]
pub(crate) fn clear_context(context: &mut TraceContext) {
    // SAFETY: writes to aligned words of a valid `TraceContext`.
    unsafe {
        write_volatile(&mut context.trace_id[0], 0);
        write_volatile(&mut context.trace_id[1], 0);
        write_volatile(&mut context.parent_span_id, 0);
        write_volatile(&mut context.parent_stack, 0);
        write_volatile(&mut context.flags, 0);
    }
}

/// Copies `from` into `to` a word at a time, for the reason [`clear_context`] gives.
#[inline(always)]
pub(crate) fn copy_context(to: &mut TraceContext, from: &TraceContext) {
    // SAFETY: aligned words of valid `TraceContext`s.
    unsafe {
        write_volatile(&mut to.trace_id[0], from.trace_id[0]);
        write_volatile(&mut to.trace_id[1], from.trace_id[1]);
        write_volatile(&mut to.parent_span_id, from.parent_span_id);
        write_volatile(&mut to.parent_stack, from.parent_stack);
        write_volatile(&mut to.flags, from.flags);
    }
}
