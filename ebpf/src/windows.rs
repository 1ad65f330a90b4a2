//! Stack windows: a copy of the user stack at a call's entry, sent ahead of its event for
//! userspace to unwind by the binaries' unwind tables, where frame pointers are not kept
//! (see [`STACK_WINDOW`](spanprobe_common::STACK_WINDOW)).

use core::ffi::c_void;

use aya_ebpf::{
    bindings::pt_regs,
    helpers::generated::{bpf_copy_from_user, bpf_ringbuf_reserve, bpf_ringbuf_submit},
};
use spanprobe_common::{
    CallStack, Counter, Frame, FunctionCapture, MAX_DEPTH, MAX_STACK_WINDOW, STACK_WINDOW_MARK,
    StackWindowHeader,
};

use crate::{
    emit::{count, wakeup_flags},
    maps::{EVENTS, STACK_WINDOW_BYTES},
};

const PAGE: u64 = 4096;
/// Pages a window spans at most: its first and last are partial.
const MAX_PAGES: u64 = MAX_STACK_WINDOW as u64 / PAGE + 1;
const HEADER: u64 = size_of::<StackWindowHeader>() as u64;

/// Sends the window of the call in `frame`, `depth` frames deep on `stack` (the calls outside
/// it are the stack's first `depth`). Only the sleepable entry programs send windows: the
/// stack's pages may have to be faulted in. Out of line, so that its locals are never on the
/// BPF stack with the entry's callees'.
#[inline(never)]
pub(crate) fn send_window(
    stack: &CallStack,
    frame: &Frame,
    depth: u32,
    regs: &pt_regs,
    capture: &FunctionCapture,
) {
    // A constant to the verifier (a frozen read-only global): the reservation's size, and
    // the mask that keeps every copy inside it.
    let room = u64::from(STACK_WINDOW_BYTES.load());
    if room == 0 || room > u64::from(MAX_STACK_WINDOW) {
        return;
    }
    let size = HEADER + room + PAGE;
    // SAFETY: the ring buffer map and a size the verifier knows.
    let message = unsafe { bpf_ringbuf_reserve((&raw const EVENTS).cast_mut().cast(), size, 0) };
    if message.is_null() {
        count(Counter::StackWindowLost);
        return;
    }
    // SAFETY: the reservation starts with room for a header, ours until submitted; the header
    // is plain integers, so whatever bytes the kernel handed over are a valid value.
    let header = unsafe { &mut *message.cast::<StackWindowHeader>() };
    header.mark = STACK_WINDOW_MARK;
    header.pid = stack.key.pid;
    // As the event's stack id: a thread's id, or the goroutine's key.
    header.stack_id = stack.key.id;
    header.entry_ns = frame.entry_ns;
    header.function_id = frame.function_id;
    header.depth = depth + 1;
    header.ip = regs.rip;
    header.sp = regs.rsp;
    header.bp = regs.rbp;
    let want = u64::from(capture.window_bytes).min(room);
    // SAFETY: the bytes follow the header, with `room + PAGE` bytes of room.
    header.len = unsafe {
        copy_stack(
            message.cast::<u8>().add(HEADER as usize),
            regs.rsp,
            want,
            room,
        )
    };
    header.outer_len = outer_returns(header, stack, depth);
    // SAFETY: the reservation, submitted once.
    unsafe { bpf_ringbuf_submit(message, wakeup_flags(size)) };
}

/// Copies `want` bytes of user stack from `sp` to `bytes`, a page at a time, and returns how
/// many it copied: it stops at the first page that cannot be read, past the stack's top.
///
/// # Safety
/// `bytes` must have room for `room + PAGE` bytes; `room` is a power of two.
#[inline(always)]
unsafe fn copy_stack(bytes: *mut u8, sp: u64, want: u64, room: u64) -> u32 {
    let mut copied = 0u64;
    for _ in 0..MAX_PAGES {
        if copied >= want {
            break;
        }
        let address = sp + copied;
        let chunk = (PAGE - (address & (PAGE - 1))).min(want - copied);
        // Bounded where the helper takes it: the verifier does not carry the bound of a
        // `min` between two unknowns. Volatile, so that LLVM keeps the check.
        // SAFETY: a read of a local.
        let chunk = unsafe { core::ptr::read_volatile(&chunk) };
        if chunk == 0 || chunk > PAGE {
            break;
        }
        // `copied < want <= room`: the mask changes nothing but tells the verifier.
        let offset = copied & (room - 1);
        // SAFETY: offset < room and chunk <= PAGE: within the caller's room; a page that
        // cannot be read fails safely (the program is sleepable).
        let failed = unsafe {
            bpf_copy_from_user(
                bytes.add(offset as usize).cast::<c_void>(),
                chunk as u32,
                address as *const c_void,
            )
        } != 0;
        if failed {
            break;
        }
        copied += chunk;
    }
    copied as u32
}

/// Writes into `header` the return slots of the calls outside the one at `depth`, and their
/// real return addresses, innermost first; returns how many. A goroutine's calls have no
/// uretprobe, so nothing of theirs needs putting back.
#[inline(always)]
fn outer_returns(header: &mut StackWindowHeader, stack: &CallStack, depth: u32) -> u32 {
    if stack.key.is_goroutine() {
        return 0;
    }
    let mut written = 0;
    for k in 0..MAX_DEPTH {
        if k as u32 >= depth {
            break;
        }
        let index = (depth as usize - 1 - k) & (MAX_DEPTH - 1);
        let (Some(frame), Some(slot)) = (stack.frames.get(index), header.outer.get_mut(k)) else {
            break;
        };
        *slot = [frame.sp, frame.return_address];
        written = k as u32 + 1;
    }
    written
}
