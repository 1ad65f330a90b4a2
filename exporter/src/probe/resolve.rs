//! Config probes to attach points: each target's file found and checked once ([`Binary`]),
//! then each of its probes resolved by its kind ([`crate::probe::kind`]) to the file offsets
//! the kernel attaches uprobes at.
//!
//! We compute file offsets ourselves rather than letting aya resolve symbols: aya's
//! shared-library offset handling is wrong in some layouts (aya-rs/aya#1198). A function that
//! starts with `endbr64` and a push is probed just past the `endbr64` (see
//! [`elf::entry_skip`](crate::probe::elf::entry_skip)).

use std::{
    cell::OnceCell,
    collections::{BTreeMap, HashMap},
    fmt,
    num::NonZeroU32,
    path::{Path, PathBuf},
    sync::Arc,
};

use spanprobe_common::MAX_PROCESS_TREES;
use spanprobe_config::{
    ArgSpec, Config, FunctionSpec, LenArg, Located, Position, ProbeTarget, Problem, ValueType,
};

use crate::{
    probe::{
        binary::{self, BinaryError},
        dwarf::{DwarfError, DwarfFile, FunctionSignature, go::GoFunctions},
        elf::{Code, ElfError, ElfInfo},
        kind::{self, ArgLocation, ProbeKind, claims::Claims},
        symbols::SymbolTable,
    },
    x86_64::ArgOperand,
};

/// A function ready to attach: where it is, and what its spans capture.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbedFunction {
    pub binary: PathBuf,
    /// The demangled symbol, or `offset 0x..` / `address 0x..` for unnamed code.
    pub symbol: String,
    /// Virtual address of the function's entry in the ELF file, when known.
    pub address: Option<u64>,
    /// Offset in the file where the uprobe and uretprobe go: the function's entry, or
    /// `entry_skip` bytes past it.
    pub file_offset: u64,
    /// How far past the entry the probes are: the length of an `endbr64` the kernel would
    /// otherwise single-step on every call (see [`crate::probe::elf::entry_skip`]), a Go
    /// function's stack check, or a Go `RET`'s offset; 0 at the entry.
    pub entry_skip: u64,
    pub spec: FunctionSpec,
    /// Only this process is traced.
    pub pid: Option<NonZeroU32>,
    /// How its spans start and end, and where its arguments are.
    pub kind: ProbeKind,
    /// Where the function is defined, from DWARF: source file and line.
    pub source: Option<(String, u64)>,
    /// User stack frames captured at entry, 0 for none.
    pub stack_frames: u16,
    /// The probed instruction, when the kernel single-steps it (see
    /// [`ProbedInstruction`](crate::probe::elf::ProbedInstruction)): each call then pays a
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
    /// of its itab, which its `RET`s report (see [`ElfInfo::go_error_types`]).
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
}

impl ProbedFunction {
    /// A function probed at `file_offset` of `binary` (no `endbr64` skipped, every process,
    /// with a return probe): what the resolver refines, and what pure tests, benches and
    /// examples of the later stages start from.
    pub fn new(
        binary: impl Into<PathBuf>,
        symbol: impl Into<String>,
        file_offset: u64,
        spec: FunctionSpec,
    ) -> Self {
        ProbedFunction {
            binary: binary.into(),
            symbol: symbol.into(),
            address: Some(file_offset),
            file_offset,
            entry_skip: 0,
            spec,
            pid: None,
            kind: ProbeKind::Function,
            source: None,
            stack_frames: 0,
            single_stepped: None,
            return_type: None,
            operands: Vec::new(),
            semaphore: None,
            go_version: None,
            go_error_types: None,
            slot_base: 0,
            later_args: Vec::new(),
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
        source: crate::probe::symbols::SymbolsError,
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
        "{count} processes are named by `pid:`; at most {MAX_PROCESS_TREES} can be traced \
         apart (each with the processes it forks)"
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
        source: Box<crate::probe::dwarf::path::PathError>,
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
    Usdt(#[from] crate::probe::usdt::UsdtError),
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
    #[error("no process {pid} is running")]
    NoProcess { pid: u32 },
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

/// Every function of a config resolved, with what resolution noticed that is not wrong.
#[derive(Debug, Default)]
pub struct Resolved {
    pub functions: Vec<ProbedFunction>,
    /// Functions left out of a glob (another entry probes them, or the kernel cannot), each
    /// placed at the entry that left them out.
    pub notes: Vec<Problem>,
}

/// Resolves every function of `config`, or says every problem. A glob, or a symbol defined at
/// several addresses, yields one [`ProbedFunction`] per address; a function several entries
/// match, one (see [`Claims`]).
pub fn resolve(config: &Config) -> Result<Resolved, Vec<ResolveError>> {
    let mut resolved = Resolved::default();
    let mut errors = Vec::new();
    for (t, target) in config.probes.iter().enumerate() {
        let field = format!("probes[{t}]");
        let stack_frames = config.limits.stack_frames;
        resolve_target(
            target,
            &config.base_dir,
            &field,
            stack_frames,
            &mut resolved,
            &mut errors,
        );
    }
    let trees = crate::probe::capture::process_trees(&resolved.functions);
    if trees.len() > MAX_PROCESS_TREES
        && let Some((t, target)) = config
            .probes
            .iter()
            .enumerate()
            .filter(|(_, target)| target.pid.is_some())
            .nth(MAX_PROCESS_TREES)
    {
        errors.push(ResolveError {
            position: target
                .pid
                .as_ref()
                .map_or(target.position, |pid| pid.position),
            field: format!("probes[{t}].pid"),
            kind: ResolveErrorKind::TooManyTrees { count: trees.len() },
        });
    }
    if errors.is_empty() {
        Ok(resolved)
    } else {
        Err(errors)
    }
}

fn resolve_target(
    target: &Located<ProbeTarget>,
    base_dir: &Path,
    field: &str,
    stack_frames: u16,
    resolved: &mut Resolved,
    errors: &mut Vec<ResolveError>,
) {
    let functions = &mut resolved.functions;
    let binary_error = |kind: ResolveErrorKind| ResolveError {
        position: target.binary.position,
        field: format!("{field}.binary"),
        kind,
    };
    let path = match binary::locate(&target.binary, base_dir) {
        Ok(path) => path,
        Err(error) => return errors.push(binary_error(error.into())),
    };
    // Read once: the ELF facts, the symbols and the DWARF of every entry are parsed from it.
    let read = crate::probe::elf::read(&path).and_then(|data| {
        let elf = ElfInfo::parse(&path, &data)?;
        Ok((data, elf, Code::open(&path)?))
    });
    let (data, elf, code) = match read {
        Ok(read) => read,
        Err(error) => return errors.push(binary_error(error.into())),
    };
    let pid = target
        .pid
        .as_ref()
        .and_then(|pid| NonZeroU32::new(pid.value));
    if let (Some(located), Some(pid)) = (&target.pid, pid)
        && let Err(kind) = check_mapped(pid, &path)
    {
        errors.push(ResolveError {
            position: located.position,
            field: format!("{field}.pid"),
            kind,
        });
    }
    let binary = Binary {
        path,
        elf,
        code,
        pid,
        stack_frames,
        position: target.binary.position,
        field: format!("{field}.binary"),
        data,
        symbols: OnceCell::new(),
        go: OnceCell::new(),
        dwarf: OnceCell::new(),
        signatures: OnceCell::new(),
    };
    let target_start = functions.len();
    // Entries that name their function claim it before the globs that also match it; whether
    // a symbol is a glob depends on the names the binary has (see `NamePattern`).
    let table = match target.functions.iter().any(|f| f.symbol.is_some()) {
        true => binary.symbols(errors),
        false => None,
    };
    let mut entries: Vec<(bool, usize, &Located<FunctionSpec>)> = target
        .functions
        .iter()
        .enumerate()
        .map(|(f, function)| (kind::claims::is_glob(function, table), f, function))
        .collect();
    entries.sort_by_key(|(glob, f, _)| (*glob, *f));
    let mut claims = Claims::default();
    for (_, f, function) in entries {
        let field = format!("{field}.functions[{f}]");
        let first_id = functions.len();
        functions.extend(kind::function::resolve(
            &binary,
            function,
            &field,
            first_id,
            &mut claims,
            errors,
            &mut resolved.notes,
        ));
    }
    if functions[target_start..]
        .iter()
        .any(|f| matches!(f.kind, ProbeKind::GoCall { .. }))
    {
        functions.extend(kind::goruntime::helpers(&binary, errors));
    }
    if !target.usdt.is_empty() {
        // Unique in the config: each entry before has resolved to at least one probe.
        let first_pair = u32::try_from(functions.len()).unwrap_or(u32::MAX) + 1;
        let usdt = kind::usdt::resolve(&binary, &target.usdt, field, first_pair, errors);
        functions.extend(usdt);
    }
}

/// A target's binary, read once for all the probes in it: its bytes, and what is parsed from
/// them (symbols, DWARF) the first time an entry needs it, so that a config of thousands of
/// entries reads and parses the file once, as one glob does.
pub struct Binary {
    pub path: PathBuf,
    pub elf: ElfInfo,
    pub code: Code,
    /// Only this process is traced.
    pub pid: Option<NonZeroU32>,
    /// Stack frames a probe that captures its stack records.
    pub stack_frames: u16,
    /// Where the target's `binary` is in the config.
    position: Position,
    field: String,
    /// The file's contents, read once.
    data: Vec<u8>,
    /// Read the first time a probe needs them; `Err` once reading failed (and was reported).
    symbols: OnceCell<Result<SymbolTable, ()>>,
    /// For a Go binary: its functions' parameters from DWARF, read once like `symbols`.
    go: OnceCell<Result<GoFunctions, ()>>,
    /// Its DWARF (or its debug file's), loaded once; `Ok(None)` without any.
    dwarf: OnceCell<Result<Option<DwarfFile>, Arc<DwarfError>>>,
    /// What DWARF says of each function, by symbol (linkage name, else name); empty without
    /// DWARF.
    signatures: OnceCell<HashMap<String, FunctionSignature>>,
}

impl Binary {
    /// A problem with the binary as a whole, placed at its `binary` key.
    pub fn problem(&self, kind: ResolveErrorKind) -> ResolveError {
        ResolveError {
            position: self.position,
            field: self.field.clone(),
            kind,
        }
    }

    /// The binary's function symbols, read once; `None` (and the reason in `errors`, once)
    /// when they cannot be read.
    pub fn symbols(&self, errors: &mut Vec<ResolveError>) -> Option<&SymbolTable> {
        let table = self.symbols.get_or_init(|| {
            SymbolTable::parse(&self.path, &self.data).map_err(|source| {
                errors.push(ResolveError {
                    position: self.position,
                    field: self.field.clone(),
                    kind: ResolveErrorKind::Symbols {
                        binary: self.path.clone(),
                        source,
                    },
                });
            })
        });
        table.as_ref().ok()
    }

    /// What the DWARF of this Go binary says of its functions, read once for every entry of
    /// the target; `None` (and the reason in `errors`, once) when it cannot be read.
    pub fn go_functions(&self, errors: &mut Vec<ResolveError>) -> Option<&GoFunctions> {
        let functions = self.go.get_or_init(|| {
            let read = match self.dwarf() {
                Ok(Some(dwarf)) => {
                    crate::probe::dwarf::go::functions_in(dwarf, None).map_err(Arc::new)
                }
                Ok(None) => Ok(GoFunctions::default()),
                Err(error) => Err(error),
            };
            read.map_err(|source| errors.push(self.problem(ResolveErrorKind::GoDwarf(source))))
        });
        functions.as_ref().ok()
    }

    /// The binary's DWARF (or its debug file's), loaded once; `Ok(None)` without any.
    pub fn dwarf(&self) -> Result<Option<&DwarfFile>, Arc<DwarfError>> {
        self.dwarf
            .get_or_init(|| DwarfFile::load(&self.path, &self.data).map_err(Arc::new))
            .as_ref()
            .map(Option::as_ref)
            .map_err(Arc::clone)
    }

    /// What DWARF says of the function of symbol `raw`, from signatures read once for every
    /// entry; `None` without DWARF, or without that function in it (what it gives is
    /// optional).
    pub fn signature(&self, raw: &str) -> Option<&FunctionSignature> {
        self.signatures
            .get_or_init(|| {
                let Ok(Some(dwarf)) = self.dwarf() else {
                    return HashMap::new();
                };
                dwarf
                    .signatures()
                    .unwrap_or_default()
                    .into_values()
                    .map(|s| (s.linkage_name.clone().unwrap_or_else(|| s.name.clone()), s))
                    .collect()
            })
            .get(raw)
    }

    /// A probe at file offset `entry`, the first byte of the code it probes (`address` its
    /// virtual address, when known), moved past an `endbr64` the kernel would single-step.
    pub fn probe_at(
        &self,
        kind: ProbeKind,
        symbol: String,
        address: Option<u64>,
        entry: u64,
        spec: &FunctionSpec,
    ) -> ProbedFunction {
        let entry_skip = self.code.entry_skip(entry);
        let single_stepped = self
            .code
            .single_stepped(entry + entry_skip, address.unwrap_or(0) + entry_skip);
        ProbedFunction {
            binary: self.path.clone(),
            symbol,
            address,
            file_offset: entry + entry_skip,
            entry_skip,
            spec: spec.clone(),
            pid: self.pid,
            kind,
            source: None,
            stack_frames: if spec.stack.value {
                self.stack_frames
            } else {
                0
            },
            single_stepped,
            operands: Vec::new(),
            semaphore: None,
            go_version: self.elf.go_version,
            go_error_types: None,
            return_type: None,
            slot_base: 0,
            later_args: Vec::new(),
        }
    }
}

/// Checks that process `pid` runs and has `binary` mapped (its code or a library it loaded),
/// matched by inode as the kernel matches uprobes to files.
fn check_mapped(pid: NonZeroU32, binary: &Path) -> Result<(), ResolveErrorKind> {
    use std::os::unix::fs::MetadataExt as _;
    let pid = pid.get();
    let Ok(maps) = std::fs::read_to_string(format!("/proc/{pid}/maps")) else {
        // Another user's process, without the right to read its maps, cannot be told apart.
        return if Path::new(&format!("/proc/{pid}")).exists() {
            Ok(())
        } else {
            Err(ResolveErrorKind::NoProcess { pid })
        };
    };
    let Ok(inode) = std::fs::metadata(binary).map(|m| m.ino().to_string()) else {
        return Ok(());
    };
    // `address perms offset dev inode path`
    if maps
        .lines()
        .any(|line| line.split_whitespace().nth(4) == Some(inode.as_str()))
    {
        return Ok(());
    }
    let executable = std::fs::read_link(format!("/proc/{pid}/exe"))
        .map_or_else(|_| "?".to_owned(), |exe| exe.display().to_string());
    Err(ResolveErrorKind::NotMapped {
        pid,
        executable,
        binary: binary.to_owned(),
    })
}
