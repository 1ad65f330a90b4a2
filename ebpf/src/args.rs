//! Arguments: where each is (register, stack slot, USDT operand), followed along its chain of
//! pointers, read into the call's frame.

use core::{ffi::c_void, ptr::write_volatile};

use aya_ebpf::{
    bindings::pt_regs,
    helpers::generated::{bpf_copy_from_user, bpf_loop, bpf_probe_read_user},
};
use spanprobe_common::{
    ArgCapture, ArgSource, FunctionCapture, MAX_ARGS, MAX_CHAIN, READ_AT_RETURN,
};

/// Whether the running program may fault user pages in: a sleepable program may. Those are
/// also the programs that fill call records (see `spanprobe_entry_sleepable`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Faults {
    Fail,
    Allowed,
}

/// Fills `out` (plain integers) from user memory at `pointer`, faulting pages in where the
/// program may.
#[inline(always)]
pub(crate) fn read_user<T: Copy>(out: &mut T, pointer: u64, faults: Faults) -> Option<()> {
    let destination = (out as *mut T).cast::<c_void>();
    let len = size_of::<T>() as u32;
    // SAFETY: writes at most size_of::<T>() bytes into `out`, a `T` of plain integers (any
    // bytes are a valid value); the helpers fail safely on bad pointers.
    let result = unsafe {
        if faults == Faults::Allowed {
            bpf_copy_from_user(destination, len, pointer as *const c_void)
        } else {
            bpf_probe_read_user(destination, len, pointer as *const c_void)
        }
    };
    (result == 0).then_some(())
}

/// Reads the arguments `capture` asks for into `out`, in its order, each followed along its
/// chain of pointers if it has one; returns the faults: bit `i` is set where argument `i`'s
/// chain faulted. What happens to the slots it has no argument for, `unread` says.
///
/// One `bpf_loop` step per argument, up to the capture's last: the verifier checks the step
/// once, where it walks a plain loop's eight steps through every combination of their sources
/// and chains (on 6.1, past its million instructions).
#[inline(never)]
pub(crate) fn read_args(
    out: &mut [u64; MAX_ARGS],
    regs: &pt_regs,
    capture: &FunctionCapture,
    faults: Faults,
    unread: Unread,
) -> u32 {
    if unread == Unread::Zeroed {
        for slot in out.iter_mut() {
            // SAFETY: a valid, aligned element; volatile, or the stores become a `memset`.
            unsafe { write_volatile(slot, 0) };
        }
    }
    let steps = u32::from(capture.args_end).min(MAX_ARGS as u32);
    if steps == 0 {
        return 0;
    }
    let mut reading = ArgsReading {
        out,
        regs,
        capture,
        faulted: 0,
    };
    // A step for each kind of program: the verifier must see which helpers a step may call
    // (a sleepable one only where faults are allowed).
    let step = match faults {
        Faults::Allowed => read_one_arg::<true> as *mut c_void,
        Faults::Fail => read_one_arg::<false> as *mut c_void,
    };
    // SAFETY: the callback takes the state as its context, which outlives the call.
    unsafe { bpf_loop(steps, step, (&raw mut reading).cast(), 0) };
    reading.faulted
}

/// What [`read_args`] does with the slots it reads no argument into.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unread {
    /// Zeroes them: the arguments of a call being entered.
    Zeroed,
    /// Leaves them as they are: a USDT end site's arguments go beside its start's.
    Kept,
}

/// The state of [`read_args`]' loop.
#[repr(C)]
pub(crate) struct ArgsReading<'a> {
    pub(crate) out: &'a mut [u64; MAX_ARGS],
    pub(crate) regs: &'a pt_regs,
    pub(crate) capture: &'a FunctionCapture,
    pub(crate) faulted: u32,
}

/// One step of [`read_args`]: reads argument `index`, if it has a source, faulting pages in
/// if `FAULTS_ALLOWED`; 0 to go on.
///
/// # Safety
/// `reading` must point to an [`ArgsReading`], as `read_args` passes it.
pub(crate) unsafe extern "C" fn read_one_arg<const FAULTS_ALLOWED: bool>(
    index: u64,
    reading: *mut c_void,
) -> i64 {
    // SAFETY: `read_args` passes its `ArgsReading`.
    let ArgsReading {
        out,
        regs,
        capture,
        faulted,
    } = unsafe { &mut *reading.cast::<ArgsReading>() };
    let faults = if FAULTS_ALLOWED {
        Faults::Allowed
    } else {
        Faults::Fail
    };
    let i = index as usize;
    let (Some(to), Some(arg)) = (out.get_mut(i), capture.args.get(i)) else {
        return 1;
    };
    if arg.source != ArgSource::None as u8 && !read_value(to, arg, regs, faults) {
        *to = 0;
        *faulted |= 1 << i;
    }
    0
}

/// Writes the value of one argument into `to`, followed along its chain; false when a read
/// faults.
#[inline(always)]
pub(crate) fn read_value(to: &mut u64, arg: &ArgCapture, regs: &pt_regs, faults: Faults) -> bool {
    if arg.source == ArgSource::Constant as u8 {
        *to = arg.constant();
        return true;
    }
    let register = read_arg(regs, arg.source, arg.slot);
    // Memory read at return follows its chain then, from the value the entry keeps.
    if arg.chain == 0 || arg.timing & READ_AT_RETURN != 0 {
        *to = register;
        return true;
    }
    follow(arg, register, faults, to)
}

/// Writes into `out` the value at the end of `arg`'s chain from `value`: every offset but the
/// last is added and dereferenced; the last gives the address read (`field_size` bytes,
/// zero-extended), or for a memory type the address itself. False when a read faults.
#[inline(always)]
pub(crate) fn follow(arg: &ArgCapture, mut value: u64, faults: Faults, out: &mut u64) -> bool {
    // In 0..MAX_CHAIN whatever `chain` holds: 6.1's verifier loses a caller's `chain != 0`, and
    // `chain.min(MAX_CHAIN) - 1` then reaches -1 for it.
    let last = usize::from(arg.chain).saturating_sub(1).min(MAX_CHAIN - 1);
    for i in 0..MAX_CHAIN - 1 {
        if i >= last {
            break;
        }
        let address = value.wrapping_add(arg.path[i] as i64 as u64);
        let mut pointer = 0u64;
        if read_user(&mut pointer, address, faults).is_none() {
            return false;
        }
        value = pointer;
    }
    let address = value.wrapping_add(arg.path.get(last).copied().unwrap_or(0) as i64 as u64);
    if arg.field_size == 0 {
        *out = address;
        return true;
    }
    // Little-endian: the first `field_size` bytes of a zeroed word are the field's value.
    let mut field = [0u8; 8];
    let size = u32::from(arg.field_size).min(8);
    // SAFETY: writes at most 8 bytes into `field`; the helpers fail safely on bad pointers.
    let result = unsafe {
        if faults == Faults::Allowed {
            bpf_copy_from_user(field.as_mut_ptr().cast(), size, address as *const c_void)
        } else {
            bpf_probe_read_user(field.as_mut_ptr().cast(), size, address as *const c_void)
        }
    };
    *out = u64::from_le_bytes(field);
    result == 0
}

/// The value of register or stack slot `slot` of `source` (an [`ArgSource`]).
#[inline(always)]
pub(crate) fn read_arg(regs: &pt_regs, source: u8, slot: u8) -> u64 {
    if source == ArgSource::Register as u8 {
        match slot {
            0 => register(&regs.rdi),
            1 => register(&regs.rsi),
            2 => register(&regs.rdx),
            3 => register(&regs.rcx),
            4 => register(&regs.r8),
            5 => register(&regs.r9),
            _ => 0,
        }
    } else if source == ArgSource::Gpr as u8 {
        match slot {
            0 => register(&regs.rax),
            1 => register(&regs.rdx),
            2 => register(&regs.rcx),
            3 => register(&regs.rbx),
            4 => register(&regs.rsi),
            5 => register(&regs.rdi),
            6 => register(&regs.rbp),
            7 => register(&regs.rsp),
            8 => register(&regs.r8),
            9 => register(&regs.r9),
            10 => register(&regs.r10),
            11 => register(&regs.r11),
            12 => register(&regs.r12),
            13 => register(&regs.r13),
            14 => register(&regs.r14),
            15 => register(&regs.r15),
            _ => 0,
        }
    } else if source == ArgSource::Stack as u8 {
        // At entry [rsp] is the return address; stack arguments follow it.
        let address = regs.rsp + 8 * (u64::from(slot) + 1);
        let mut value = 0u64;
        // SAFETY: the helper writes at most 8 bytes into `value` and faults safely.
        unsafe { bpf_probe_read_user((&raw mut value).cast(), 8, address as *const c_void) };
        value
    } else {
        0
    }
}

/// A saved register, read where it is used: read plainly, LLVM hoists the reads of every
/// register out of a loop over the arguments and spills all sixteen onto the BPF stack.
#[inline(always)]
pub(crate) fn register(saved: &u64) -> u64 {
    // SAFETY: a read of a valid, aligned field of the probe's context.
    unsafe { core::ptr::read_volatile(saved) }
}

#[inline(always)]
pub(crate) fn read_user_u64(address: u64) -> u64 {
    let mut value = 0u64;
    // SAFETY: the helper writes at most 8 bytes into `value` and faults safely.
    unsafe { bpf_probe_read_user((&raw mut value).cast(), 8, address as *const c_void) };
    value
}
