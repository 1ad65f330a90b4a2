//! The kinds of probe: how a probed place's span starts and ends, and where its arguments are
//! read. Each kind resolves its config entries to [`ProbedFunction`]s (its own file here); the
//! capture plan, the link plan and `check` ask the kind, not the config, so a new kind (USDT
//! start/end pairs) is a file here, a variant of [`ProbeKind`], and its
//! config list in the schema.
//!
//! [`ProbedFunction`]: crate::probe::resolve::ProbedFunction

pub mod claims;
pub mod function;
pub mod gocall;
pub mod goruntime;
pub mod usdt;

use std::fmt;

use spanprobe_common::{
    ArgSource, ENTRY_ONLY, GO_CALL, GO_EXIT, GO_RECOVERY, GO_RETURN, GO_STACK_CHECK, USDT_END,
    USDT_EVENT, USDT_START,
};

use crate::x86_64::{Operand, Register};

/// How a probed place makes spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    /// A function called by the System V convention: the span opens at the entry uprobe and
    /// closes at the uretprobe, with the return value.
    Function,
    /// An entry uprobe only: the span is sent at entry, with no duration. For code where
    /// `[rsp]` is not a trustworthy return address: Go functions (Go moves goroutine stacks)
    /// and the ELF entry point (jumped to, not called).
    EntryOnly,
    /// A USDT site that opens a span, closed by a [`ProbeKind::UsdtEnd`] site of the same
    /// `pair` on the same thread.
    UsdtStart { pair: u32 },
    /// A USDT site that closes the innermost span, when its pair's start opened it.
    UsdtEnd { pair: u32 },
    /// A USDT site whose span is sent when it fires, with no duration; with `event`, an
    /// event of the innermost span open on its thread instead, when there is one.
    UsdtPoint { event: bool },
    /// A Go function's entry where its returns cannot be probed (built before Go 1.17, or
    /// probed by address): entry-only, since a uretprobe corrupts Go's moving stacks.
    GoEntry,
    /// A Go function's entry: the span opens on the goroutine's stack, its arguments in the
    /// registers of Go's ABI; a [`ProbeKind::GoReturn`] site of the same `pair` closes it.
    /// `at_stack_check`: the probe is on the prologue's branch to morestack, and a firing
    /// where it is taken is no entry (see [`crate::x86_64::gocode`]).
    GoCall { pair: u32, at_stack_check: bool },
    /// A `RET` instruction of the Go function whose [`ProbeKind::GoCall`] has the same `pair`:
    /// closes its span with the results; `error` is where the type word of its last result,
    /// an `error`, is.
    GoReturn { pair: u32, error: Option<Register> },
    /// `runtime.goexit0`, where goroutines end: closes the spans still open on the ending
    /// goroutine's stack (`runtime.Goexit`).
    GoExit,
    /// `runtime.recovery`, where a recovered panic resumes: closes the spans it unwound.
    GoRecovery,
}

impl ProbeKind {
    /// What the kernel side is told of a place of this kind ([`FunctionCapture::flags`]), and
    /// the start/end pair it belongs to (0 for none), in a binary built by Go `go_version`.
    ///
    /// [`FunctionCapture::flags`]: spanprobe_common::FunctionCapture::flags
    pub fn kernel_flags(self, go_version: Option<(u32, u32)>) -> (u32, u32) {
        match self {
            Self::Function => (0, 0),
            Self::EntryOnly => (ENTRY_ONLY, 0),
            // On its goroutine's stack where R14 holds the goroutine (Go 1.17 and later), so
            // that its span has its caller for parent.
            Self::GoEntry if go_version >= Some((1, 17)) => (ENTRY_ONLY | GO_CALL, 0),
            Self::GoEntry => (ENTRY_ONLY, 0),
            Self::UsdtPoint { event: false } => (ENTRY_ONLY | USDT_START, 0),
            Self::UsdtPoint { event: true } => (ENTRY_ONLY | USDT_START | USDT_EVENT, 0),
            Self::UsdtStart { pair } => (USDT_START, pair),
            Self::UsdtEnd { pair } => (USDT_END, pair),
            Self::GoCall {
                pair,
                at_stack_check: true,
            } => (GO_CALL | GO_STACK_CHECK, pair),
            Self::GoCall { pair, .. } => (GO_CALL, pair),
            Self::GoReturn { pair, .. } => (GO_RETURN, pair),
            Self::GoExit => (GO_EXIT, 0),
            Self::GoRecovery => (GO_RECOVERY, 0),
        }
    }

    /// At a Go `RET` whose function's last result is an `error`: the register of the error's
    /// type word, by its DWARF number plus one (0: none), as the kernel side reads it.
    pub fn error_register(self) -> u8 {
        match self {
            Self::GoReturn {
                error: Some(register),
                ..
            } => register.number() + 1,
            _ => 0,
        }
    }

    /// Whether a uretprobe closes the span.
    pub fn has_return(self) -> bool {
        matches!(self, Self::Function)
    }

    /// Whether the span is sent when the probe fires, with no duration.
    pub fn is_entry_only(self) -> bool {
        matches!(
            self,
            Self::EntryOnly | Self::UsdtPoint { .. } | Self::GoEntry
        )
    }

    /// Whether its arguments are read where [`ProbedFunction::operands`] say, not by the
    /// System V convention.
    ///
    /// [`ProbedFunction::operands`]: crate::probe::resolve::ProbedFunction::operands
    pub fn reads_operands(self) -> bool {
        self.is_usdt() || matches!(self, Self::GoEntry | Self::GoCall { .. } | Self::GoRecovery)
    }

    /// Whether the probe only serves the spans of another: a Go function's `RET`, or where
    /// goroutines end. It sends no span of its own, and `check` shows it with its function.
    pub fn is_go_helper(self) -> bool {
        matches!(
            self,
            Self::GoReturn { .. } | Self::GoExit | Self::GoRecovery
        )
    }

    /// Whether the probe is a USDT site (not a function's entry).
    pub fn is_usdt(self) -> bool {
        matches!(
            self,
            Self::UsdtStart { .. } | Self::UsdtEnd { .. } | Self::UsdtPoint { .. }
        )
    }
}

/// Where an argument is when its probe fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgLocation {
    /// The `n`th System V integer argument register (RDI, RSI, RDX, RCX, R8, R9).
    Register(u8),
    /// The `n`th eightbyte above the return address on the stack.
    Stack(u8),
    /// A register, memory at a register plus an offset, or a constant: where a USDT note
    /// says, or a register of Go's ABI.
    Operand(Operand),
}

/// How the kernel side reads an [`ArgLocation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelPlace {
    pub source: ArgSource,
    pub slot: u8,
    /// For a memory operand: the offset from the register to the value, the first step of
    /// its chain of pointers.
    pub offset: Option<i32>,
    /// For a constant ([`ArgSource::Constant`]): its value.
    pub constant: Option<u64>,
}

/// The System V integer argument registers, in order.
const SYSV_REGISTERS: [&str; 6] = ["RDI", "RSI", "RDX", "RCX", "R8", "R9"];

impl ArgLocation {
    /// The place of argument `index` under the System V AMD64 convention.
    pub fn sysv(index: u8) -> Self {
        match index.checked_sub(SYSV_REGISTERS.len() as u8) {
            None => Self::Register(index),
            Some(slot) => Self::Stack(slot),
        }
    }

    /// As the kernel side's capture table has it: (source, slot).
    pub fn kernel(self) -> (ArgSource, u8) {
        let place = self.place();
        (place.source, place.slot)
    }

    /// As the kernel side reads it.
    pub fn place(self) -> KernelPlace {
        let at = |source, slot| KernelPlace {
            source,
            slot,
            offset: None,
            constant: None,
        };
        match self {
            Self::Register(n) => at(ArgSource::Register, n),
            Self::Stack(n) => at(ArgSource::Stack, n),
            Self::Operand(Operand::Register(register)) => at(ArgSource::Gpr, register.number()),
            Self::Operand(Operand::Memory { base, offset }) => KernelPlace {
                offset: Some(offset),
                ..at(ArgSource::Gpr, base.number())
            },
            Self::Operand(Operand::Constant(value)) => KernelPlace {
                constant: Some(value as u64),
                ..at(ArgSource::Constant, 0)
            },
        }
    }
}

impl fmt::Display for ArgLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Register(n) => f.write_str(SYSV_REGISTERS.get(usize::from(n)).unwrap_or(&"?")),
            // [rsp] holds the return address.
            Self::Stack(n) => write!(f, "stack+{}", 8 * (u32::from(n) + 1)),
            Self::Operand(operand) => write!(f, "{operand}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_v_registers_then_the_stack() {
        let places: Vec<_> = (0..8).map(|i| ArgLocation::sysv(i).to_string()).collect();
        assert_eq!(
            places,
            [
                "RDI", "RSI", "RDX", "RCX", "R8", "R9", "stack+8", "stack+16"
            ]
        );
        assert_eq!(ArgLocation::sysv(7).kernel(), (ArgSource::Stack, 1));
        assert_eq!(ArgLocation::sysv(2).kernel(), (ArgSource::Register, 2));
        assert!(ProbeKind::Function.has_return());
        assert!(!ProbeKind::EntryOnly.has_return());
    }
}
