//! Memory read when a call returns: output buffers (`read`'s, `SSL_read`'s), which hold what the
//! call wrote only then. The entry kept each such argument's value in its frame (the register
//! may hold anything by now) and, in the argument's data area, the value of its count's source;
//! here the chain is followed, the count taken, and the memory read into the call's record.

use core::ffi::c_void;

use aya_ebpf::helpers::generated::{bpf_loop, bpf_probe_read_user, bpf_probe_read_user_str};
use spanprobe_common::{
    ArgSource, COUNT_32, COUNT_BEHIND, COUNT_SIGNED, CallRecord, CallStack, DATA_MAX, MAX_ARGS,
    MAX_DEPTH, MEMORY_FAULT, MemoryKind, READ_AT_RETURN, READS_AT_RETURN,
};

use crate::{
    args::{Faults, follow},
    maps::{CALLS, FUNCTIONS},
    records::read_len,
    stacks::call_key,
};

/// Reads the memory the call in frame `index` of `stack` asks for at return into its record,
/// the call having returned `ret`. Out of line, like `emit_call`: the index is bounded where
/// the frame is addressed.
#[inline(never)]
pub fn read_at_return(stack: &CallStack, index: u32, ret: u64) {
    if index as usize >= MAX_DEPTH {
        return;
    }
    // Masked as well as checked, as in `emit_call`.
    // SAFETY: a read of a local.
    let index = unsafe { core::ptr::read_volatile(&index) } & (MAX_DEPTH as u32 - 1);
    let frame = &stack.frames[index as usize];
    let Some(capture) = FUNCTIONS.get(frame.function_id) else {
        return;
    };
    if capture.flags & READS_AT_RETURN == 0 {
        return;
    }
    let Some(record) = CALLS.get_ptr_mut(call_key(&stack.key, index)) else {
        return;
    };
    let mut reading = Reading {
        // SAFETY: keyed by this thread and depth: only this call's probes touch the record.
        record: unsafe { &mut *record },
        args: &frame.args,
        capture,
        ret,
    };
    let steps = u32::from(capture.args_end).min(MAX_ARGS as u32);
    // One step per argument, verified once (see `read_args`).
    // SAFETY: the callback takes the state as its context, which outlives the call.
    unsafe { bpf_loop(steps, read_one as *mut c_void, (&raw mut reading).cast(), 0) };
}

/// The state of [`read_at_return`]'s loop.
#[repr(C)]
struct Reading<'a> {
    record: &'a mut CallRecord,
    /// The arguments' values at entry.
    args: &'a [u64; MAX_ARGS],
    capture: &'a spanprobe_common::FunctionCapture,
    ret: u64,
}

/// One step of [`read_at_return`]: argument `index`, if it is read at return; 0 to go on.
///
/// # Safety
/// `reading` must point to a [`Reading`], as `read_at_return` passes it.
unsafe extern "C" fn read_one(index: u64, reading: *mut c_void) -> i64 {
    // SAFETY: `read_at_return` passes its `Reading`.
    let Reading {
        record,
        args,
        capture,
        ret,
    } = unsafe { &mut *reading.cast::<Reading>() };
    let i = index as usize;
    let (Some(arg), Some(&value)) = (capture.args.get(i), args.get(i)) else {
        return 1;
    };
    if arg.timing & READ_AT_RETURN == 0 || arg.memory == MemoryKind::None as u8 {
        return 0;
    }
    let offset = usize::from(arg.offset) & (DATA_MAX - 1);
    let mut len = u32::from(arg.len);
    if arg.count_source != ArgSource::None as u8 {
        let Some(count) = count(record, offset, arg.count_source, arg.timing, *ret) else {
            // Left as the entry marked it: not read.
            return 0;
        };
        if count < u64::from(len) {
            len = count as u32;
        }
    }
    let mut address = value;
    let captured = if arg.chain != 0 && !follow(arg, value, Faults::Fail, &mut address) {
        MEMORY_FAULT
    } else {
        let destination = record.data[offset..].as_mut_ptr().cast::<c_void>();
        let source = address as *const c_void;
        // SAFETY: offset < DATA_MAX and the length is at most MEMORY_READ_MAX, which `data` has
        // room for; the helpers fault safely on bad user pointers. The call just wrote the
        // memory, so its pages are in: no faulting in is needed, nor possible here.
        let read = unsafe {
            if arg.memory == MemoryKind::Str as u8 {
                bpf_probe_read_user_str(destination, read_len(&len), source)
            } else {
                let result = bpf_probe_read_user(destination, read_len(&len), source);
                if result == 0 { i64::from(len) } else { result }
            }
        };
        if read < 0 { MEMORY_FAULT } else { read as u16 }
    };
    if let Some(lens) = record.header.arg_lens.get_mut(i) {
        *lens = captured;
    }
    0
}

/// The bytes the call wrote, by the count's `source` and the return value `ret`; `None` when
/// nothing is to be read: the call returned 0 or less (failed, or wrote nothing), or the word
/// behind the count's pointer could not be read. What the entry read of the count's source is
/// the first word of the argument's data area, at `offset`.
#[inline(always)]
fn count(record: &CallRecord, offset: usize, source: u8, timing: u8, ret: u64) -> Option<u64> {
    let ret = if timing & COUNT_32 == 0 {
        ret
    } else if timing & COUNT_SIGNED != 0 {
        ret as u32 as i32 as i64 as u64
    } else {
        u64::from(ret as u32)
    };
    let returned_some = if timing & COUNT_SIGNED != 0 {
        ret as i64 > 0
    } else {
        ret != 0
    };
    if source == ArgSource::Return as u8 {
        return returned_some.then_some(ret);
    }
    let mut word = [0u8; 8];
    word.copy_from_slice(record.data.get(offset..offset + 8)?);
    let kept = u64::from_ne_bytes(word);
    if timing & COUNT_BEHIND == 0 {
        return Some(kept);
    }
    if !returned_some {
        return None;
    }
    let mut count = 0u64;
    // SAFETY: the helper writes at most 8 bytes into `count` and faults safely.
    let result = unsafe { bpf_probe_read_user((&raw mut count).cast(), 8, kept as *const c_void) };
    (result == 0).then_some(count)
}
