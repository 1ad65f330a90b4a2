//! What resolution makes of a config: probes ready to attach, each of a kind that says how
//! its spans start and end and where its arguments are.

use std::{collections::BTreeMap, fmt, path::PathBuf, sync::Arc};

use spanprobe_config::{ArgSpec, ArgTest, FunctionSpec, StackOptions, Unwind, ValueType};

use spanprobe_common::{
    AT_STACK_CHECK, ArgSource, ENDS_GOROUTINE, ENDS_PAIRED_SPAN, ENTRY_ONLY, EVENT_OF_OPEN_SPAN,
    NO_SPAN, NOT_AT_CALL, ON_GOROUTINE_STACK, QUEUES_GOROUTINE, RESUMES_AFTER_PANIC,
    STARTS_GOROUTINE,
};

use crate::{
    binary::frame_pointers::FramePointers,
    plan::processes::ProcessTree,
    x86_64::{ArgOperand, Operand, Register, prologue::ProbeSite},
};

/// A function ready to attach: where it is, and what its spans capture.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub binary: PathBuf,
    /// The demangled symbol, or `offset 0x..` / `address 0x..` for unnamed code.
    pub symbol: String,
    /// Virtual address of the function's entry in the ELF file, when known.
    pub address: Option<u64>,
    /// Offset in the file where the uprobe and uretprobe go: the function's entry, or
    /// `entry_skip` bytes past it.
    pub file_offset: u64,
    /// How far past the entry the probes are: the length of an `endbr64` the kernel would
    /// otherwise single-step on every call (see [`crate::binary::elf::entry_skip`]), a Go
    /// function's stack check, or a Go `RET`'s offset; 0 at the entry.
    pub entry_skip: u64,
    /// Where the probes were moved past the first instructions, onto one the kernel emulates;
    /// `None` at the entry, or for a Go function's stack check.
    pub moved: Option<ProbeSite>,
    /// Why the probes stay at the entry of a function whose first instruction the kernel
    /// single-steps, when that was looked into.
    pub stays: Option<String>,
    pub spec: FunctionSpec,
    /// Only these processes are traced.
    pub processes: Option<ProcessTree>,
    /// How its spans start and end, and where its arguments are.
    pub kind: ProbeKind,
    /// Where the function is defined, from DWARF: source file and line.
    pub source: Option<(String, u64)>,
    /// User stack frames captured at entry, 0 for none.
    pub stack_frames: u16,
    /// With a stack: how it is unwound.
    pub unwind: Option<StackUnwind>,
    /// The probed instruction, when the kernel single-steps it (see
    /// [`ProbedInstruction`](crate::binary::elf::ProbedInstruction)): each call then pays a
    /// second trap, inside its span.
    pub single_stepped: Option<String>,
    /// For a USDT site: its arguments, as its note describes them. For a Go function: where
    /// each parameter's first word is, then the length words of those read as strings.
    pub operands: Vec<ArgOperand>,
    /// For a USDT site guarded by a semaphore: the semaphore's file offset, which the kernel
    /// increments while the probe is attached.
    pub semaphore: Option<u64>,
    /// For a Go function: the version of Go that built it, when known.
    pub go_version: Option<(u32, u32)>,
    /// For a Go call whose last result is an `error`: the error's dynamic type by the address
    /// of its itab, which its `RET`s report (see [`ElfInfo::go_error_types`](crate::binary::elf::ElfInfo::go_error_types)).
    pub go_error_types: Option<Arc<BTreeMap<u64, String>>>,
    /// The type of the return value, from the config's `return` or DWARF, when known: how a
    /// count taken at return from it is read (see [`LenArg`](spanprobe_config::LenArg)).
    pub return_type: Option<ValueType>,
    /// The event slot of the first argument: after the start's, for a USDT site that ends a
    /// span and adds its own arguments to the start's.
    pub slot_base: usize,
    /// For a USDT start: the arguments its `until` site reads when the span ends (into the
    /// slots after this site's), and where they are there; decoded with this site's events.
    pub later_args: Vec<(ArgSpec, ArgLocation)>,
    /// Its part in a handoff of the config, if it has one.
    pub handoff: Option<HandoffRole>,
}

/// How a probe's stacks are unwound, as its `stack` asks and its binary's code allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackUnwind {
    /// In the kernel, along the frame pointers, which the binary's code keeps or not.
    FramePointers(FramePointers),
    /// In userspace, from a copy of `bytes` of the stack taken at entry, by the unwind tables
    /// of the files the process maps; `picked` when `auto` chose it, the binary's code omitting
    /// frame pointers.
    Window { bytes: u32, picked: bool },
}

impl StackUnwind {
    /// How `options` unwind the stacks of a binary whose code does `frame_pointers`.
    pub fn of(options: StackOptions, frame_pointers: FramePointers) -> Self {
        let window = |picked| Self::Window {
            bytes: options.bytes,
            picked,
        };
        match options.unwind {
            Unwind::FramePointers => Self::FramePointers(frame_pointers),
            Unwind::Dwarf => window(false),
            Unwind::Auto if frame_pointers == FramePointers::Omitted => window(true),
            Unwind::Auto => Self::FramePointers(frame_pointers),
        }
    }

    /// The window's bytes, when the stack is copied for userspace.
    pub fn window_bytes(self) -> Option<u32> {
        match self {
            Self::Window { bytes, .. } => Some(bytes),
            Self::FramePointers(_) => None,
        }
    }
}

/// A probe's part in a handoff: which end, of which handoff, and where the key is.
#[derive(Debug, Clone, PartialEq)]
pub struct HandoffRole {
    pub end: HandoffSide,
    /// The handoff's number in the config, which keeps its keys apart from other handoffs'.
    pub id: u32,
    /// Where the handoff's config entry is, as `probes[0].handoffs[1]`.
    pub field: String,
    /// The key, resolved like an argument (its `path` to offsets, its type from DWARF).
    pub key: ArgSpec,
    /// `as: link`: the span at `to` links to the handed-off one instead of being its child.
    pub link: bool,
    /// `repeat`: the key stays once taken.
    pub repeat: bool,
}

/// Which end of a handoff a probe is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HandoffSide {
    From,
    To,
}

impl HandoffSide {
    /// As the config names it.
    pub fn name(self) -> &'static str {
        match self {
            Self::From => "from",
            Self::To => "to",
        }
    }
}

/// One condition of a function's `when`, as [`Probe::when_tests`] reads it.
#[derive(Debug)]
pub struct WhenTest<'a> {
    pub name: &'a str,
    /// The slot the argument is read into.
    pub slot: u8,
    pub arg: &'a ArgSpec,
    pub test: Result<ArgTest, String>,
}

impl Probe {
    /// Each condition of the function's `when` with the argument it names, read in that
    /// argument's type (`Err` says why it cannot be decided as written). A condition naming
    /// no argument is validation's to report, and left out here.
    pub fn when_tests(&self) -> Vec<WhenTest<'_>> {
        let Some(when) = &self.spec.when else {
            return Vec::new();
        };
        when.iter()
            .filter_map(|(name, condition)| {
                let a = self
                    .spec
                    .args
                    .iter()
                    .position(|arg| arg.attribute_name() == *name)?;
                let arg = &self.spec.args[a];
                Some(WhenTest {
                    name,
                    slot: (self.slot_base + a) as u8,
                    arg,
                    test: condition.for_arg(arg),
                })
            })
            .collect()
    }

    /// A function probed at `file_offset` of `binary` (no `endbr64` skipped, every process,
    /// with a return probe): what the resolver refines, and what pure tests, benches and
    /// examples of the later stages start from.
    pub fn new(
        binary: impl Into<PathBuf>,
        symbol: impl Into<String>,
        file_offset: u64,
        spec: FunctionSpec,
    ) -> Self {
        Probe {
            binary: binary.into(),
            symbol: symbol.into(),
            address: Some(file_offset),
            file_offset,
            entry_skip: 0,
            moved: None,
            stays: None,
            spec,
            processes: None,
            kind: ProbeKind::Function,
            source: None,
            stack_frames: 0,
            unwind: None,
            single_stepped: None,
            return_type: None,
            operands: Vec::new(),
            semaphore: None,
            go_version: None,
            go_error_types: None,
            slot_base: 0,
            later_args: Vec::new(),
            handoff: None,
        }
    }

    /// Where the config's argument `index` is when the probe fires: the System V place for a
    /// function, the note's operand for a USDT site.
    pub fn arg_location(&self, index: u8) -> ArgLocation {
        if !self.kind.reads_operands() {
            return ArgLocation::sysv(index);
        }
        // Resolution refuses an index past the operands; a constant 0 stands in.
        let operand = self
            .operands
            .get(usize::from(index))
            .unwrap_or(&ArgOperand::UNREAD)
            .operand;
        ArgLocation::Operand(operand)
    }
}

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
    /// `runtime.newproc1`, where goroutines are created: keeps the span open on the creator's
    /// stack for the new goroutine, which [`ProbeKind::GoQueue`] then learns.
    GoStart,
    /// `runtime.runqput`, where a goroutine just created is queued to run: it takes the span
    /// [`ProbeKind::GoStart`] kept.
    GoQueue,
    /// A place the config does not trace, probed for a handoff alone ([`Probe::handoff`]): a
    /// function's entry or, with `usdt`, a USDT site (a `from` only: a `to` there has no
    /// return to end what it adopts). A `to` also has a return probe, since what it adopts
    /// lasts until its function returns. It makes no span.
    HandoffSite { to: bool, usdt: bool },
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
            Self::GoEntry if go_version >= Some((1, 17)) => (ENTRY_ONLY | ON_GOROUTINE_STACK, 0),
            Self::GoEntry => (ENTRY_ONLY, 0),
            Self::UsdtPoint { event: false } => (ENTRY_ONLY | NOT_AT_CALL, 0),
            Self::UsdtPoint { event: true } => (ENTRY_ONLY | NOT_AT_CALL | EVENT_OF_OPEN_SPAN, 0),
            Self::UsdtStart { pair } => (NOT_AT_CALL, pair),
            Self::UsdtEnd { pair } => (ENDS_PAIRED_SPAN, pair),
            Self::GoCall {
                pair,
                at_stack_check: true,
            } => (ON_GOROUTINE_STACK | AT_STACK_CHECK, pair),
            Self::GoCall { pair, .. } => (ON_GOROUTINE_STACK, pair),
            // The Go program takes any site that ends no goroutine and resumes no panic as a
            // `RET`.
            Self::GoReturn { pair, .. } => (0, pair),
            Self::GoExit => (ENDS_GOROUTINE, 0),
            Self::GoRecovery => (RESUMES_AFTER_PANIC, 0),
            Self::GoStart => (STARTS_GOROUTINE, 0),
            Self::GoQueue => (QUEUES_GOROUTINE, 0),
            Self::HandoffSite { to: true, .. } => (NO_SPAN, 0),
            Self::HandoffSite {
                to: false,
                usdt: false,
            } => (ENTRY_ONLY | NO_SPAN, 0),
            Self::HandoffSite {
                to: false,
                usdt: true,
            } => (ENTRY_ONLY | NOT_AT_CALL | NO_SPAN, 0),
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
        matches!(self, Self::Function | Self::HandoffSite { to: true, .. })
    }

    /// Whether the probe's calls make spans: not a Go helper's, nor a handoff site's.
    pub fn makes_spans(self) -> bool {
        !self.is_go_helper() && !matches!(self, Self::HandoffSite { .. })
    }

    /// Whether the span is sent when the probe fires, with no duration.
    pub fn is_entry_only(self) -> bool {
        matches!(
            self,
            Self::EntryOnly
                | Self::UsdtPoint { .. }
                | Self::GoEntry
                | Self::HandoffSite { to: false, .. }
        )
    }

    /// Whether its arguments are read where [`Probe::operands`] say, not by the
    /// System V convention.
    ///
    /// [`Probe::operands`]: crate::plan::probe::Probe::operands
    pub fn reads_operands(self) -> bool {
        self.is_usdt()
            || matches!(
                self,
                Self::GoEntry
                    | Self::GoCall { .. }
                    | Self::GoRecovery
                    | Self::HandoffSite { usdt: true, .. }
            )
    }

    /// Whether the probe only serves the spans of another: a Go function's `RET`, or where
    /// goroutines end. It sends no span of its own, and `check` shows it with its function.
    pub fn is_go_helper(self) -> bool {
        matches!(
            self,
            Self::GoReturn { .. } | Self::GoExit | Self::GoRecovery | Self::GoStart | Self::GoQueue
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
