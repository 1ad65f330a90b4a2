//! `when`: the conditions a call's captured arguments must meet to be traced, decided at entry
//! on the values alone, before any memory is copied or a record filled.

use core::ffi::c_void;

use aya_ebpf::{
    bindings::pt_regs,
    helpers::generated::{bpf_copy_from_user, bpf_probe_read_user, bpf_probe_read_user_str},
};
use spanprobe_common::{
    ArgCapture, ArgCondition, ArgSource, ConditionOp, FunctionCapture, MAX_ARGS,
    MAX_CONDITION_TEXT, MemoryKind, SCRATCH_LEN,
};

use crate::{
    args::{Faults, read_arg, read_user},
    records::fault_in,
};

/// Whether the values in `args` meet every condition of `capture`'s `when`, reading the
/// strings and bytes compared into `scratch`. Out of line, so that its locals are never on
/// the BPF stack with the entry's other callees'.
#[inline(never)]
pub(crate) fn conditions_hold(
    args: &[u64; MAX_ARGS],
    capture: &FunctionCapture,
    regs: &pt_regs,
    faults: Faults,
    scratch: &mut [u8; SCRATCH_LEN],
) -> bool {
    for (i, condition) in capture.conditions.iter().enumerate() {
        if i >= capture.conditions_len as usize {
            break;
        }
        let Some(&raw) = args.get(usize::from(condition.slot)) else {
            return false;
        };
        let holds = if condition.op >= ConditionOp::TextEq as u8 {
            let Some(arg) = capture.args.get(usize::from(condition.slot)) else {
                return false;
            };
            text_holds(raw, arg, condition, regs, faults, scratch)
        } else {
            number_holds(raw, condition)
        };
        if !holds {
            return false;
        }
    }
    true
}

/// Whether the number `raw` (a register's or a member's bits) meets `condition`, in its type.
#[inline(always)]
pub(crate) fn number_holds(raw: u64, condition: &ArgCondition) -> bool {
    let bits = 8 * u32::from(condition.size).clamp(1, 8);
    let unused = 64 - bits;
    let ordering = if condition.signed != 0 {
        let value = ((raw << unused) as i64) >> unused;
        value.cmp(&(condition.value as i64))
    } else {
        let value = (raw << unused) >> unused;
        value.cmp(&condition.value)
    };
    match condition.op {
        op if op == ConditionOp::Lt as u8 => ordering.is_lt(),
        op if op == ConditionOp::Le as u8 => ordering.is_le(),
        op if op == ConditionOp::Gt as u8 => ordering.is_gt(),
        op if op == ConditionOp::Ge as u8 => ordering.is_ge(),
        op if op == ConditionOp::Eq as u8 => ordering.is_eq(),
        _ => ordering.is_ne(),
    }
}

/// Whether the string or bytes at `address` (argument `arg`'s) meet `condition`. One that
/// cannot be read equals no text and starts with none.
#[inline(always)]
fn text_holds(
    address: u64,
    arg: &ArgCapture,
    condition: &ArgCondition,
    regs: &pt_regs,
    faults: Faults,
    scratch: &mut [u8; SCRATCH_LEN],
) -> bool {
    let prefix = condition.op == ConditionOp::Prefix as u8;
    let found = read_text(address, arg, condition, prefix, regs, faults, scratch)
        .is_some_and(|read| read && same_start(scratch, condition));
    if condition.op == ConditionOp::TextNe as u8 {
        !found
    } else {
        found
    }
}

/// Reads the first bytes of the argument's value into `scratch`, as many as `condition`'s
/// text has. `Some(false)` when its length alone rules the text out (another length, or for a
/// `prefix` a shorter one), `None` when it cannot be read.
#[inline(always)]
fn read_text(
    address: u64,
    arg: &ArgCapture,
    condition: &ArgCondition,
    prefix: bool,
    regs: &pt_regs,
    faults: Faults,
    scratch: &mut [u8; SCRATCH_LEN],
) -> Option<bool> {
    // Bounded where a helper takes it: the verifier cannot follow a bound from the map value.
    // SAFETY: a read of a valid field.
    let text_len = unsafe { core::ptr::read_volatile(&condition.text_len) };
    let text_len = text_len.min(MAX_CONDITION_TEXT as u32);
    let destination = scratch.as_mut_ptr().cast::<c_void>();
    // Counted bytes (a Go or Rust string, a buffer and its size, fixed-size bytes): the
    // length is known before anything is read.
    let (address, count) = if arg.count_source == ArgSource::Beside as u8 {
        let mut pair = [0u64; 2];
        read_user(&mut pair, address, faults)?;
        (pair[0], Some(pair[1]))
    } else if arg.count_source != ArgSource::None as u8 {
        (
            address,
            Some(read_arg(regs, arg.count_source, arg.count_slot)),
        )
    } else if arg.memory == MemoryKind::Bytes as u8 {
        (address, Some(u64::from(arg.len)))
    } else {
        (address, None)
    };
    let source = address as *const c_void;
    if let Some(count) = count {
        let fits = if prefix {
            count >= u64::from(text_len)
        } else {
            count == u64::from(text_len)
        };
        if !fits {
            return Some(false);
        }
        if text_len == 0 {
            return Some(true);
        }
        // SAFETY: at most MAX_CONDITION_TEXT bytes into `scratch`, which is longer; the
        // helpers fail safely on bad pointers.
        let result = unsafe {
            if faults == Faults::Allowed {
                bpf_copy_from_user(destination, text_len, source)
            } else {
                bpf_probe_read_user(destination, text_len, source)
            }
        };
        return (result == 0).then_some(true);
    }
    // A NUL-terminated string: two bytes past the text tell its length from a longer one.
    let read_len = text_len + 2;
    if faults == Faults::Allowed {
        // SAFETY: `scratch` has room for the byte; a sleepable program is running.
        unsafe { fault_in(destination, address, read_len) };
    }
    // SAFETY: at most MAX_CONDITION_TEXT + 2 bytes into `scratch`, which has room for them.
    let read = unsafe { bpf_probe_read_user_str(destination, read_len, source) };
    // The count includes the NUL.
    let len = u64::try_from(read).ok()?.checked_sub(1)?;
    Some(if prefix {
        len >= u64::from(text_len)
    } else {
        len == u64::from(text_len)
    })
}

/// Whether `scratch` starts with `condition`'s text, compared a word at a time.
#[inline(always)]
fn same_start(scratch: &[u8; SCRATCH_LEN], condition: &ArgCondition) -> bool {
    // SAFETY: the scratch space is word-aligned in its stack entry and a whole number of words
    // long (both asserted where it is defined), and any bits are a valid `u64`.
    let words = unsafe { &*(scratch as *const [u8; SCRATCH_LEN]).cast::<[u64; SCRATCH_LEN / 8]>() };
    let text_len = u64::from(condition.text_len);
    for (i, (&word, &read)) in condition.text.iter().zip(words).enumerate() {
        let start = 8 * i as u64;
        if start >= text_len {
            break;
        }
        // The bytes past the text's end, in its last word, are not compared: they are what
        // followed it in memory (or nothing the read wrote).
        let left = text_len - start;
        let mask = if left >= 8 {
            u64::MAX
        } else {
            (1u64 << (8 * left)) - 1
        };
        if (read ^ word) & mask != 0 {
            return false;
        }
    }
    true
}
