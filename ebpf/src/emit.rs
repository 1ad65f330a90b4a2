//! Sending completed calls through the ring buffer, and counting what could not be.

use core::{ffi::c_void, ptr::write_volatile};

use aya_ebpf::{
    bindings::{BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP, pt_regs},
    helpers::{bpf_get_attach_cookie, generated::bpf_ringbuf_output},
};
use spanprobe_common::{
    CallEnd, CallEvent, CallKey, CallRecord, CallStack, Counter, DATA_MAX, ERROR_WHEN, Ending,
    Frame, FunctionCapture, KEEP_ERRORS, MAX_DEPTH, NO_SPAN, RETURN_FAULT,
};

use crate::{
    args::{Faults, follow},
    conditions::number_holds,
    maps::{CALLS, COUNTERS, EVENTS, FUNCTIONS, UNANNOUNCED, WAKEUP_BYTES},
    records::fault_len,
    stacks::call_key,
};

/// Sends the event of the call in frame `index`, ended as `ending` says. Out of line: the
/// entry program ends skipped frames at two places.
#[inline(never)]
pub(crate) fn emit_call(tid: u32, stack: &CallStack, index: u32, ending: &Ending) {
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
pub(crate) fn send(
    tid: u32,
    stack: &CallStack,
    frame: &Frame,
    depth: u32,
    ending: &Ending,
    key: CallKey,
) {
    // The one lookup of the function's capture on the way out: its return value's chain and
    // its memory.
    let capture = FUNCTIONS.get(frame.function_id);
    // A frame that serves a handoff alone is no span.
    if capture.is_some_and(|capture| capture.flags & NO_SPAN != 0) {
        return;
    }
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
    if ending.end == CallEnd::Returned
        && frame.callees == 0
        && capture.is_some_and(|capture| !kept_at_return(capture, frame, ending, ret, flags))
    {
        count(Counter::LeftOutAtReturn);
        if data_len > 0
            && let Some(record) = CALLS.get_ptr_mut(key)
        {
            // SAFETY: as in `call_record`.
            clear_record(unsafe { &mut *record });
        }
        return;
    }
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

/// Sends a call's record, its header written, with `data_len` bytes of captured memory; the
/// record is then ready for the next call at its place.
#[inline(always)]
pub(crate) fn send_record(record: &mut CallRecord, data_len: u32) {
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
    clear_record(record);
}

/// Makes a call's record ready for the next call at its place: what the entry wrote into its
/// header is the next call's to write.
#[inline(always)]
fn clear_record(record: &mut CallRecord) {
    // Element by element: a whole-array store is a `memset` call, a byte loop in BPF.
    for len in record.header.arg_lens.iter_mut() {
        // SAFETY: a valid, aligned element of the record.
        unsafe { write_volatile(len, 0) };
    }
    record.header.stack_len = 0;
}

/// Whether a call with no probed callee, which returned as `ending` says (its return value
/// `ret`, followed along its chain, with `flags`), meets its function's keep rules: it ran
/// for `min_duration` at least, and with `keep: errors` it failed. Userspace keeps a call with
/// callees by the same rules, once its trace is whole.
#[inline(always)]
fn kept_at_return(
    capture: &FunctionCapture,
    frame: &Frame,
    ending: &Ending,
    ret: u64,
    flags: u16,
) -> bool {
    if ending.now.saturating_sub(frame.entry_ns) < capture.min_duration_ns {
        return false;
    }
    if capture.flags & KEEP_ERRORS == 0 {
        return true;
    }
    ending.error_type != 0
        || (capture.flags & ERROR_WHEN != 0
            && flags & RETURN_FAULT == 0
            && number_holds(ret, &capture.error_when))
}

#[inline(always)]
pub(crate) fn registers(ctx: *mut c_void) -> &'static pt_regs {
    // SAFETY: uprobe and uretprobe contexts are the probed thread's saved user registers.
    unsafe { &*ctx.cast::<pt_regs>() }
}

#[inline(always)]
pub(crate) fn function_id(ctx: *mut c_void) -> u32 {
    // SAFETY: ctx is this program's context; every attachment carries a cookie.
    unsafe { bpf_get_attach_cookie(ctx) as u32 }
}

/// Wakes the reader once this CPU has written [`WAKEUP_BYTES`] since it last did; the reader
/// drains on a timer otherwise. Counted here rather than asked of the ring buffer: how much is
/// pending is read from the consumer's position, a cache line the reader's CPU writes, which
/// cost each event ~65 ns here.
#[inline(always)]
pub(crate) fn wakeup_flags(bytes: u64) -> u64 {
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
pub(crate) fn ring_full() {
    count(Counter::RingBufFull);
    if let Some(written) = UNANNOUNCED.get_ptr_mut(0) {
        // SAFETY: this CPU's slot, as in `wakeup_flags`.
        unsafe { *written = WAKEUP_BYTES.load() };
    }
}

#[inline(always)]
pub(crate) fn count(counter: Counter) {
    if let Some(slot) = COUNTERS.get_ptr_mut(counter as u32) {
        // SAFETY: a valid per-CPU slot. Not atomic (the BPF target has no atomic RMW in core):
        // a sleepable entry program preempted on this CPU by another probe could lose a count.
        unsafe { *slot += 1 };
    }
}
