//! A config target as resolution sees it: its binary, read once, and what the config says of
//! where it is and which processes it traces.

use std::cell::{Cell, OnceCell};

use spanprobe_config::{FunctionSpec, LenArg, Position};

use crate::{
    binary::{Binary, dwarf::go::GoFunctions, frame_pointers::FramePointers, symbols::SymbolTable},
    plan::processes::ProcessTree,
    plan::{
        error::{ResolveError, ResolveErrorKind},
        probe::{Probe, ProbeKind, StackUnwind},
    },
    x86_64::prologue::ReadArguments,
};

/// A target's binary and config.
pub struct Target {
    pub binary: Binary,
    /// Only these processes are traced.
    pub processes: Option<ProcessTree>,
    /// Stack frames a probe that captures its stack records.
    pub stack_frames: u16,
    /// Go: goroutines join the trace of the span they were started under.
    pub follow_goroutines: bool,
    /// Where the target's `binary` is in the config.
    pub position: Position,
    pub field: String,
    /// What could not be read and was reported already, once for all the target's entries.
    pub reported: Reported,
    /// Whether the binary's code keeps frame pointers, found the first time a probe asks.
    pub frame_pointers: OnceCell<FramePointers>,
}

/// What of a binary could not be read and was reported.
#[derive(Default)]
pub struct Reported {
    symbols: Cell<bool>,
    go_functions: Cell<bool>,
}

impl Target {
    /// Whether the binary's code keeps frame pointers, for the stacks its probes capture.
    pub fn frame_pointers(&self) -> FramePointers {
        *self
            .frame_pointers
            .get_or_init(|| FramePointers::of(&self.binary))
    }

    /// How the stacks of a probe with `spec` are unwound, if it captures them.
    pub fn stack_unwind(&self, spec: &FunctionSpec) -> Option<StackUnwind> {
        let options = spec.stack.value.options()?;
        Some(StackUnwind::of(options, self.frame_pointers()))
    }

    /// A problem with the binary as a whole, placed at its `binary` key.
    pub fn problem(&self, kind: ResolveErrorKind) -> ResolveError {
        ResolveError {
            position: self.position,
            field: self.field.clone(),
            kind,
        }
    }

    /// The binary's function symbols; `None` (and the reason in `errors`, once) when they
    /// cannot be read.
    pub fn symbols(&self, errors: &mut Vec<ResolveError>) -> Option<&SymbolTable> {
        self.binary
            .symbols()
            .map_err(|source| {
                if !self.reported.symbols.replace(true) {
                    errors.push(self.problem(ResolveErrorKind::Symbols {
                        binary: self.binary.path.clone(),
                        source,
                    }));
                }
            })
            .ok()
    }

    /// What the DWARF of this Go binary says of its functions; `None` (and the reason in
    /// `errors`, once) when it cannot be read.
    pub fn go_functions(&self, errors: &mut Vec<ResolveError>) -> Option<&GoFunctions> {
        self.binary
            .go_functions()
            .map_err(|source| {
                if !self.reported.go_functions.replace(true) {
                    errors.push(self.problem(ResolveErrorKind::GoDwarf(source)));
                }
            })
            .ok()
    }

    /// A probe at file offset `entry`, the first byte of the code it probes (`address` its
    /// virtual address, when known; `size` its function's bytes, when known), moved past the
    /// first instructions to one the kernel emulates where that is safe (see
    /// [`prologue`](crate::x86_64::prologue)), or past an `endbr64` before a push.
    pub fn probe_at(
        &self,
        kind: ProbeKind,
        symbol: String,
        address: Option<u64>,
        entry: u64,
        size: Option<u64>,
        spec: &FunctionSpec,
    ) -> Probe {
        let code = &self.binary.code;
        let site = match (kind, size) {
            (ProbeKind::Function, Some(size)) => {
                Some(code.probe_site(entry, address, size, read_arguments(spec)))
            }
            _ => None,
        };
        let stays = site
            .as_ref()
            .and_then(|site| site.as_ref().err())
            .map(ToString::to_string);
        let moved = site
            .and_then(Result::ok)
            .or_else(|| code.past_endbr64(entry, address.unwrap_or(0)));
        let entry_skip = moved.as_ref().map_or(0, |site| site.skip);
        let single_stepped = self
            .binary
            .code
            .single_stepped(entry + entry_skip, address.unwrap_or(0) + entry_skip);
        Probe {
            binary: self.binary.path.clone(),
            symbol,
            address,
            file_offset: entry + entry_skip,
            entry_skip,
            moved,
            stays,
            spec: spec.clone(),
            processes: self.processes.clone(),
            kind,
            source: None,
            stack_frames: if spec.stack.value.is_on() {
                self.stack_frames
            } else {
                0
            },
            unwind: self.stack_unwind(spec),
            single_stepped,
            operands: Vec::new(),
            semaphore: None,
            go_version: self.binary.elf.go_version,
            go_error_types: None,
            return_type: None,
            slot_base: 0,
            later_args: Vec::new(),
            handoff: None,
        }
    }
}

/// The argument registers a function's entry probe reads under `spec`: its captures' slots,
/// with the next for a path into a struct passed by value (which may take two), a length's,
/// and the trace context's. What else a probe reads (the stack, RSP, RBP) no moved-past
/// instruction may change at all.
fn read_arguments(spec: &FunctionSpec) -> ReadArguments {
    let mut read = ReadArguments::NONE;
    for arg in &spec.args {
        read = read.and(arg.index);
        if arg
            .path
            .as_deref()
            .is_some_and(|path| path.starts_with('.'))
        {
            read = read.and(arg.index.saturating_add(1));
        }
        if let Some(slot) = arg.len_arg.and_then(LenArg::arg) {
            read = read.and(slot);
        }
    }
    if let Some(context) = &spec.trace_context {
        for slot in [context.arg, context.trace_id_arg, context.span_id_arg]
            .into_iter()
            .flatten()
        {
            read = read.and(slot);
        }
    }
    read
}
