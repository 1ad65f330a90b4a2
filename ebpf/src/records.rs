//! Call records: the memory arguments point to and the user stack, kept from entry to return.

use core::ffi::c_void;

use aya_ebpf::{
    bindings::{BPF_ANY, pt_regs},
    helpers::generated::{bpf_copy_from_user, bpf_probe_read_user, bpf_probe_read_user_str},
};
use spanprobe_common::{
    ArgCapture, ArgSource, CallKey, CallRecord, CallStack, Counter, DATA_MAX, FunctionCapture,
    MAX_ARGS, MAX_DEPTH, MAX_STACK_FRAMES, MEMORY_FAULT, MEMORY_READ_MAX, MemoryKind, NOT_READ,
    READ_AT_RETURN,
};

use crate::{
    args::{Faults, read_arg, read_user, read_user_u64},
    emit::count,
    maps::{CALLS, EMPTY_RECORD},
    stacks::{NOT_A_CALL, frame_at},
};

/// The record of the call in progress `key`, created if need be.
#[inline(always)]
pub(crate) fn call_record(key: CallKey) -> Option<&'static mut CallRecord> {
    if CALLS.get_ptr_mut(key).is_none() {
        let empty = EMPTY_RECORD.get(0)?;
        if CALLS.insert(key, empty, BPF_ANY.into()).is_err() {
            count(Counter::MemoryLost);
            return None;
        }
    }
    let record = CALLS.get_ptr_mut(key)?;
    // SAFETY: keyed by this thread and depth: only this call's probes touch the record.
    Some(unsafe { &mut *record })
}

/// How far above RSP a frame pointer may point: a thread's stack is 8 MiB by default.
pub(crate) const STACK_SPAN: u64 = 8 << 20;

/// Writes what `bpf_get_stack` would for the user stack, at most `frames` words into `out`:
/// the probed address, then the return address of each frame along the frame-pointer chain;
/// returns how many. Walked here rather than by the helper, whose walk follows a frame pointer
/// wherever it points: at the root of most stacks (glibc's `start_thread` and `_start` keep
/// no frame pointer) it points at unmapped memory, and the fault taken there cost each capture
/// ~1.5 µs here. This walk follows a frame pointer only upward, and within [`STACK_SPAN`].
/// (Its verification adds ~60 ms to start-up; through `bpf_loop` it measured the same.)
///
/// # Safety
/// `out` must have room for [`MAX_STACK_FRAMES`] words.
#[inline(always)]
pub(crate) unsafe fn walk_frames(regs: &pt_regs, out: *mut u64, frames: usize) -> usize {
    if frames == 0 {
        return 0;
    }
    // SAFETY: within `out`'s room.
    unsafe { out.write_unaligned(regs.rip) };
    let mut walked = 1;
    let (mut frame_pointer, mut lowest) = (regs.rbp, regs.rsp);
    for i in 1..MAX_STACK_FRAMES {
        if i >= frames
            || frame_pointer & 7 != 0
            || frame_pointer < lowest
            || frame_pointer - regs.rsp >= STACK_SPAN
        {
            break;
        }
        // The caller's frame pointer, then the return address into the caller. Left
        // uninitialized for the helper to fill: zeroed, it is a `memset` call, a byte loop
        // that the verifier walked once per frame of the walk.
        let mut frame = core::mem::MaybeUninit::<[u64; 2]>::uninit();
        // SAFETY: writes at most 16 bytes into `frame`; a bad address fails safely.
        let read = unsafe {
            bpf_probe_read_user(
                frame.as_mut_ptr().cast(),
                16,
                frame_pointer as *const c_void,
            )
        };
        if read != 0 {
            break;
        }
        // SAFETY: the helper filled all 16 bytes.
        let frame = unsafe { frame.assume_init() };
        if frame[1] == 0 {
            break;
        }
        // SAFETY: i < MAX_STACK_FRAMES: within `out`'s room.
        unsafe { out.add(i).write_unaligned(frame[1]) };
        walked = i + 1;
        lowest = frame_pointer + 16;
        frame_pointer = frame[0];
    }
    walked
}

/// Captures the user stack at entry into the record's stack area: the immediate caller first
/// (at entry the function has not pushed its frame, so a frame-pointer walk skips it; its
/// return address is at RSP), then the walk. After the walk's room come the uretprobe
/// trampoline address and the real return addresses of the outer probed calls, innermost
/// first: userspace puts them back where the walk shows the trampoline, so the stack reads as
/// without spanprobe. `return_address` is the word at RSP where the entry read it already
/// (for its frame; a read of user memory is dear), else 0 or [`NOT_A_CALL`].
///
/// Inlined, as it must be: a BPF function takes at most five arguments.
#[inline(always)]
pub(crate) fn capture_stack(
    record: &mut CallRecord,
    capture: &FunctionCapture,
    stack: &CallStack,
    depth: u32,
    regs: &pt_regs,
    return_address: u64,
) {
    let offset = usize::from(capture.stack_offset) & (DATA_MAX - 8);
    let frames = usize::from(capture.stack_frames).min(MAX_STACK_FRAMES);
    let area = record.data[offset..].as_mut_ptr();
    let caller = if return_address != 0 && return_address != NOT_A_CALL {
        return_address
    } else {
        read_user_u64(regs.rsp)
    };
    // SAFETY: offset < DATA_MAX and the area (8 + 8 * MAX_STACK_FRAMES bytes) fits in the
    // record's slack.
    let walked = unsafe {
        area.cast::<u64>().write_unaligned(caller);
        walk_frames(regs, area.add(8).cast(), frames)
    };
    record.header.stack_len = walked as u32 + 1;
    // The returns region follows the walk's room; it is cleared by its count (event depth).
    let returns_offset = (offset + 8 * (frames + 1)) & (DATA_MAX - 8);
    let returns = record.data[returns_offset..].as_mut_ptr().cast::<u64>();
    // A goroutine's calls have no trampoline in their return slots, and their frames' `sp`
    // are positions, not addresses: no trampoline address (0) to replace.
    if stack.key.is_goroutine() {
        // SAFETY: returns_offset < DATA_MAX, and the slack has room for the word.
        unsafe { returns.write_unaligned(0) };
        return;
    }
    let Some(outer) = depth.checked_sub(1) else {
        return;
    };
    let Some(parent) = frame_at(stack, outer) else {
        return;
    };
    // The parent's return slot holds the trampoline address now.
    let trampoline = read_user_u64(parent.sp);
    // SAFETY: returns_offset < DATA_MAX and 8 * (1 + MAX_DEPTH) bytes fit in the slack.
    unsafe { returns.write_unaligned(trampoline) };
    // The return slot of the frame inside the one at hand: this call's, at first.
    let mut inner_slot = regs.rsp;
    for k in 0..MAX_DEPTH {
        if k as u32 >= depth {
            break;
        }
        let index = (depth as usize - 1 - k) & (MAX_DEPTH - 1);
        let Some(frame) = stack.frames.get(index) else {
            break;
        };
        // A caller that tail-called the frame inside it shares that frame's return slot, which
        // the walk shows once: all ones, as for a USDT frame, which userspace passes over.
        let address = if frame.sp == inner_slot {
            u64::MAX
        } else {
            frame.return_address
        };
        inner_slot = frame.sp;
        // SAFETY: k < MAX_DEPTH: within the region, as above.
        unsafe { returns.add(1 + k).write_unaligned(address) };
    }
}

/// Reads the memory the arguments point to into the call's record, kept until return. Only
/// the sleepable entry programs fill records: pages may be faulted in.
#[inline(always)]
pub(crate) fn capture_memory(
    regs: &pt_regs,
    record: &mut CallRecord,
    capture: &FunctionCapture,
    args: &[u64; MAX_ARGS],
) {
    for i in 0..MAX_ARGS {
        let (Some(arg), Some(&pointer)) = (capture.args.get(i), args.get(i)) else {
            break;
        };
        let mut len = u32::from(arg.len);
        if arg.memory == MemoryKind::None as u8 || len as usize > MEMORY_READ_MAX {
            continue;
        }
        if arg.timing & READ_AT_RETURN != 0 {
            keep_for_return(regs, record, arg, i);
            continue;
        }
        let mut pointer = pointer;
        let count = if arg.count_source == ArgSource::Beside as u8 {
            // The pointer and its count, side by side where the chain ends.
            let mut pair = [0u64; 2];
            if read_user(&mut pair, pointer, Faults::Allowed).is_none() {
                if let Some(captured) = record.header.arg_lens.get_mut(i) {
                    *captured = MEMORY_FAULT;
                }
                continue;
            }
            pointer = pair[0];
            Some(pair[1])
        } else if arg.count_source != ArgSource::None as u8 {
            Some(read_arg(regs, arg.count_source, arg.count_slot))
        } else {
            None
        };
        if let Some(count) = count
            && count < u64::from(len)
        {
            len = count as u32;
        }
        let offset = usize::from(arg.offset) & (DATA_MAX - 1);
        let destination = record.data[offset..].as_mut_ptr().cast::<c_void>();
        let source = pointer as *const c_void;
        // SAFETY: offset < DATA_MAX and len <= MEMORY_READ_MAX, which `data` has room for; the
        // helpers fault safely on bad user pointers, and the program is sleepable.
        let read = unsafe {
            if arg.memory == MemoryKind::Str as u8 {
                fault_in(destination, pointer, len);
                bpf_probe_read_user_str(destination, read_len(&len), source)
            } else {
                let result = bpf_copy_from_user(destination, read_len(&len), source);
                if result == 0 { i64::from(len) } else { result }
            }
        };
        if let Some(captured) = record.header.arg_lens.get_mut(i) {
            *captured = if read < 0 { MEMORY_FAULT } else { read as u16 };
        }
    }
}

/// Prepares the record for argument `i`'s read at return: marked not read until then, and
/// the value of its count's source (a register or stack slot, which the call may reuse) kept
/// in its data area, whose first word the read at return only overwrites after using it.
#[inline(always)]
pub(crate) fn keep_for_return(regs: &pt_regs, record: &mut CallRecord, arg: &ArgCapture, i: usize) {
    if let Some(captured) = record.header.arg_lens.get_mut(i) {
        *captured = NOT_READ;
    }
    if arg.count_source == ArgSource::Return as u8 || arg.count_source == ArgSource::None as u8 {
        return;
    }
    let kept = read_arg(regs, arg.count_source, arg.count_slot);
    let offset = usize::from(arg.offset) & (DATA_MAX - 1);
    if let Some(word) = record.data.get_mut(offset..offset + 8) {
        word.copy_from_slice(&kept.to_ne_bytes());
    }
}

/// `len`, bounded by [`MEMORY_READ_MAX`] right where a helper takes it: 6.1's verifier loses
/// an earlier bound across the spills around other helper calls. Volatile, so that LLVM does
/// not drop the check as done already.
#[inline(always)]
pub(crate) fn read_len(len: &u32) -> u32 {
    // SAFETY: a read of a local.
    let len = unsafe { core::ptr::read_volatile(len) };
    len.min(MEMORY_READ_MAX as u32)
}

/// Faults in the (at most two) pages of `len` bytes at `pointer`, so that a non-faulting string
/// read sees them. Errors are ignored: the string read reports them.
///
/// # Safety
/// `scratch` must have room for one byte; only a sleepable program may call this.
#[inline(always)]
pub(crate) unsafe fn fault_in(scratch: *mut c_void, pointer: u64, len: u32) {
    const PAGE: u64 = 4096;
    let last = pointer.wrapping_add(u64::from(len).saturating_sub(1));
    // SAFETY: one byte into `scratch`, from user memory that may fault (sleepable context).
    unsafe { bpf_copy_from_user(scratch, 1, pointer as *const c_void) };
    if last / PAGE != pointer / PAGE {
        let next_page = (pointer / PAGE + 1) * PAGE;
        // SAFETY: as above.
        unsafe { bpf_copy_from_user(scratch, 1, next_page as *const c_void) };
    }
}

/// [`MEMORY_FAULT`] if bit `i` of `faults` is set, else 0: without a branch, which the
/// verifier would follow both ways for each argument.
#[inline(always)]
pub(crate) fn fault_len(faults: u32, i: usize) -> u16 {
    ((faults >> i) & 1) as u16 * MEMORY_FAULT
}
