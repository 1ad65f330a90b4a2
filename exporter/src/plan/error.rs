//! Why a config entry cannot be probed: placed at its file, line and field.

use std::{fmt, path::PathBuf, sync::Arc};

use spanprobe_common::MAX_PROCESS_TREES;
use spanprobe_config::{LenArg, Position, Problem, ValueType};

use crate::binary::{dwarf::DwarfError, elf::ElfError, locate::BinaryError, symbols::SymbolsError};

/// Why a configured function cannot be probed.
#[derive(Debug, thiserror::Error)]
pub enum ResolveErrorKind {
    #[error(transparent)]
    Binary(#[from] BinaryError),
    #[error(transparent)]
    Elf(#[from] ElfError),
    #[error("{}: cannot read symbols", binary.display())]
    Symbols {
        binary: PathBuf,
        #[source]
        source: Arc<SymbolsError>,
    },
    #[error("{}: no function `{symbol}`{}", binary.display(), Hint(hint))]
    UnknownSymbol {
        binary: PathBuf,
        symbol: String,
        hint: String,
    },
    #[error("{}: `{symbol}` has no file offset (not in a loaded segment)", binary.display())]
    NoFileOffset { binary: PathBuf, symbol: String },
    #[error("{}: {what} {value:#x} is not in an executable segment", binary.display())]
    NotCode {
        binary: PathBuf,
        what: &'static str,
        value: u64,
    },
    #[error("{}: is a Go binary {reason}", binary.display())]
    GoReturn { binary: PathBuf, reason: String },
    #[error(
        "{}: is a Go binary, whose arguments are found by their declared position in the \
         function's DWARF: probe it by `symbol`",
        binary.display()
    )]
    GoArgsWithoutSymbol { binary: PathBuf },
    #[error("{symbol}: {reason}")]
    GoArg { symbol: String, reason: String },
    #[error("cannot read the Go parameters from DWARF")]
    GoDwarf(#[source] Arc<DwarfError>),
    #[error("{}: is a Go binary {reason}", binary.display())]
    GoMinDuration { binary: PathBuf, reason: String },
    #[error(
        "{}: is a Go binary, whose arguments are read at entry only: remove `at: return`",
        binary.display()
    )]
    GoReadAtReturn { binary: PathBuf },
    #[error(
        "{count} processes or containers are named by `pid:` and `container:`; at most \
         {MAX_PROCESS_TREES} can be traced apart (each with the processes it forks)"
    )]
    TooManyTrees { count: usize },
    #[error("`{symbol}` cannot be probed: its first instruction `{instruction}` has {why}")]
    Unprobeable {
        symbol: String,
        instruction: String,
        why: &'static str,
    },
    #[error(
        "`{symbol}` is probed by {by} already: give one entry per function (a glob leaves to \
         an entry that names a function what both match)"
    )]
    AlreadyProbed { symbol: String, by: String },
    #[error("`exclude` leaves names out of a glob, and `{symbol}` names one function")]
    ExcludeWithoutGlob { symbol: String },
    #[error("`{pattern}` matches none of the functions `{symbol}` matches")]
    ExcludeMatchesNothing { pattern: String, symbol: String },
    #[error(
        "{what} {value:#x} is inside an instruction of `{symbol}` (at +{into:#x}), where a \
         breakpoint would change what the CPU executes: give where an instruction starts \
         (`objdump -d` lists them)"
    )]
    MidInstruction {
        what: &'static str,
        value: u64,
        symbol: String,
        into: usize,
    },
    #[error(
        "`{symbol}`: `len_arg: {len_arg}` reads the return value, whose type no DWARF gives: \
         give it as `return: {{ type: i32 }}` (an `int`) or `i64` (an `ssize_t`), so that its \
         sign and width are known"
    )]
    ReturnTypeUnknown { symbol: String, len_arg: LenArg },
    #[error(
        "`{symbol}`: `len_arg: {len_arg}` reads the return value, a `{ty}`: a count is a 32- or \
         64-bit integer"
    )]
    ReturnNotCount {
        symbol: String,
        len_arg: LenArg,
        ty: ValueType,
    },
    #[error(
        "{}: `{symbol}` is the program's entry point: it is jumped to, not called, so where a \
         return address would be ([rsp]) is argc, which a return probe would overwrite; remove \
         `return` (the span is then entry-only)",
        binary.display()
    )]
    EntryPointReturn { binary: PathBuf, symbol: String },
    #[error("{}: cannot resolve `{path}`", binary.display())]
    Path {
        binary: PathBuf,
        path: String,
        #[source]
        source: Box<crate::binary::dwarf::path::PathError>,
    },
    #[error(
        "with the types inferred from DWARF, the `str`/`bytes` arguments and the stack take \
         {bytes} bytes per call; at most {} fit: give a smaller `max_len`",
        spanprobe_config::MEMORY_BUDGET
    )]
    MemoryBudget { bytes: usize },
    #[error("`path` needs the function given by `symbol`, whose DWARF describes its parameters")]
    PathWithoutSymbol,
    #[error(transparent)]
    Usdt(#[from] crate::binary::usdt::UsdtError),
    #[error("{}: no USDT probe `{probe}`{hint}", binary.display())]
    UnknownUsdt {
        binary: PathBuf,
        probe: String,
        hint: String,
    },
    #[error("{probe} (the site at {address:#x}): {reason}")]
    ArgOperand {
        probe: String,
        address: u64,
        reason: String,
    },
    #[error("{}: is a Go binary: handoffs are for C, C++ and Rust code", binary.display())]
    GoHandoff { binary: PathBuf },
    #[error(
        "`{symbol}`: the handoff key is a `{ty}`, read from memory: a key is a number or a \
         pointer (its `path` may lead to one)"
    )]
    HandoffKeyType { symbol: String, ty: ValueType },
    #[error(
        "`{probe}` is a USDT probe the target does not trace: a `to` adopts until its function \
         returns, and a probe has no return; list it under `usdt` (its span then adopts), or \
         name the function it is in"
    )]
    HandoffToUntracedUsdt { probe: String },
    #[error("`{symbol}` is {first} already, and a probe reads one key")]
    HandoffTwice { symbol: String, first: String },
    #[error("{reason}")]
    When { reason: String },
    #[error(
        "`keep: errors` keeps the calls that fail, and nothing tells a failure of `{symbol}`: \
         give its `return` an `error_when` (a Go function fails when it returns a non-nil error)"
    )]
    KeepErrorsUndecidable { symbol: String },
    #[error(
        "`keep: errors` keeps the calls that fail, and `{symbol}` is traced at its entry only \
         (as a Go function built before Go 1.17, or probed by address, is): remove `keep`"
    )]
    KeepErrorsWithoutReturn { symbol: String },
    #[error("no process {pid} is running")]
    NoProcess { pid: u32 },
    #[error(
        "no running process runs `{executable}` yet (looked at {processes} processes, each \
         one's executable as its own mount namespace names it{}): its file is probed when a \
         process starts running it",
        Unreadable(*unreadable)
    )]
    NoProcessRuns {
        executable: String,
        processes: usize,
        unreadable: usize,
    },
    #[error(
        "{processes} processes run `{executable}`, and none has loaded a library `{library}` \
         (looked for in their /proc/PID/maps)"
    )]
    NoProcessLoads {
        library: String,
        executable: String,
        processes: usize,
    },
    #[error(
        "no running process is in a container whose id starts with `{id}` (read from each \
         process's cgroup, as container runtimes name them)"
    )]
    NoContainer { id: String },
    #[error("cannot list the processes in /proc")]
    Proc {
        #[source]
        source: Arc<std::io::Error>,
    },
    #[error(
        "process {pid} ({executable}) has not loaded {}: its probes would never fire",
        binary.display()
    )]
    NotMapped {
        pid: u32,
        executable: String,
        binary: PathBuf,
    },
}

struct Hint<'a>(&'a str);

impl fmt::Display for Hint<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            Ok(())
        } else {
            write!(f, " ({})", self.0)
        }
    }
}

/// A resolution problem, with where in the config it is.
#[derive(Debug)]
pub struct ResolveError {
    pub position: Position,
    pub field: String,
    pub kind: ResolveErrorKind,
}

impl ResolveError {
    /// As a config problem: the message carries the causes, since a list of problems has no
    /// single `source`.
    pub fn to_problem(&self) -> Problem {
        let mut message = self.kind.to_string();
        let mut source = std::error::Error::source(&self.kind);
        while let Some(cause) = source {
            message.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        Problem::new(self.position, self.field.clone(), message)
    }
}

/// Processes whose executable could not be read, if any.
struct Unreadable(usize);

impl fmt::Display for Unreadable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => Ok(()),
            n => write!(
                f,
                "; {n} could not be read: reading another process's /proc/PID/exe needs \
                 CAP_SYS_PTRACE"
            ),
        }
    }
}
