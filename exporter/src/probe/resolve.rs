//! Config functions to attach points: each target's file found, checked, and each function's
//! symbol, offset or address turned into the file offset the kernel attaches uprobes at.
//!
//! We compute file offsets ourselves rather than letting aya resolve symbols: aya's
//! shared-library offset handling is wrong in some layouts (aya-rs/aya#1198). A function that
//! starts with `endbr64` and a push is probed just past the `endbr64` (see
//! [`elf::entry_skip`](crate::probe::elf::entry_skip)).

use std::{
    collections::HashMap,
    fmt,
    num::NonZeroU32,
    path::{Path, PathBuf},
};

use spanprobe_config::{Config, FunctionSpec, Located, Position, ProbeTarget, Problem};

use crate::{
    probe::binary::{self, BinaryError},
    probe::elf::{Code, ElfError, ElfInfo, ProbedInstruction},
    probe::symbols::{SymbolTable, glob_pattern},
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
    /// otherwise single-step on every call (see [`crate::probe::elf::entry_skip`]), or 0.
    pub entry_skip: u64,
    pub spec: FunctionSpec,
    /// Only this process is traced.
    pub pid: Option<NonZeroU32>,
    /// No return probe: the span is sent at entry, with no duration (Go binaries).
    pub entry_only: bool,
    /// Where the function is defined, from DWARF: source file and line.
    pub source: Option<(String, u64)>,
    /// User stack frames captured at entry, 0 for none.
    pub stack_frames: u16,
    /// The probed instruction, when the kernel single-steps it (see
    /// [`ProbedInstruction`]): each call then pays a second trap, inside its span.
    pub single_stepped: Option<String>,
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
        source: blazesym::Error,
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
    #[error(
        "{}: is a Go binary; uretprobes corrupt Go stacks (Go moves goroutine stacks, and the \
         hijacked return address goes with them), so Go functions get entry-only spans: remove \
         `return`",
        binary.display()
    )]
    GoReturn { binary: PathBuf },
    #[error(
        "{}: is a Go binary; Go passes arguments in its own register order, which spanprobe \
         does not decode yet: remove `args`",
        binary.display()
    )]
    GoArgs { binary: PathBuf },
    #[error(
        "{}: is a Go binary, whose functions get entry-only spans, with no duration: remove \
         `min_duration`",
        binary.display()
    )]
    GoMinDuration { binary: PathBuf },
    #[error(
        "{}: `{symbol}` is the program's entry point: it is jumped to, not called, so where a \
         return address would be ([rsp]) is argc, which a return probe would overwrite; remove \
         `return` (the span is then entry-only)",
        binary.display()
    )]
    EntryPointReturn { binary: PathBuf, symbol: String },
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

/// Resolves every function of `config`, in config order, or says every problem. A glob, or a
/// symbol defined at several addresses, yields one [`ProbedFunction`] per address.
pub fn resolve(config: &Config) -> Result<Vec<ProbedFunction>, Vec<ResolveError>> {
    let mut functions = Vec::new();
    let mut errors = Vec::new();
    for (t, target) in config.probes.iter().enumerate() {
        let field = format!("probes[{t}]");
        let stack_frames = config.limits.stack_frames;
        resolve_target(
            target,
            &config.base_dir,
            &field,
            stack_frames,
            &mut functions,
            &mut errors,
        );
    }
    if errors.is_empty() {
        Ok(functions)
    } else {
        Err(errors)
    }
}

fn resolve_target(
    target: &Located<ProbeTarget>,
    base_dir: &Path,
    field: &str,
    stack_frames: u16,
    functions: &mut Vec<ProbedFunction>,
    errors: &mut Vec<ResolveError>,
) {
    let binary_error = |kind: ResolveErrorKind| ResolveError {
        position: target.binary.position,
        field: format!("{field}.binary"),
        kind,
    };
    let path = match binary::locate(&target.binary, base_dir) {
        Ok(path) => path,
        Err(error) => return errors.push(binary_error(error.into())),
    };
    let (elf, code) = match ElfInfo::read(&path).and_then(|elf| Ok((elf, Code::open(&path)?))) {
        Ok(read) => read,
        Err(error) => return errors.push(binary_error(error.into())),
    };
    // Read once per binary, and only if some function is given by symbol.
    let mut symbols: Option<Result<SymbolTable, ()>> = None;
    let mut signatures: Option<HashMap<String, (String, u64)>> = None;
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
    for (f, function) in target.functions.iter().enumerate() {
        let field = format!("{field}.functions[{f}]");
        // What this function resolves to, checked below before it joins `functions`.
        let mut resolved = Vec::new();
        let error = |position: Position, field: String, kind| ResolveError {
            position,
            field,
            kind,
        };
        if elf.is_go {
            if let Some(ret) = &function.return_value {
                let kind = ResolveErrorKind::GoReturn {
                    binary: path.clone(),
                };
                errors.push(error(ret.position, format!("{field}.return"), kind));
                continue;
            }
            if let Some(arg) = function.args.first() {
                let kind = ResolveErrorKind::GoArgs {
                    binary: path.clone(),
                };
                errors.push(error(arg.position, format!("{field}.args"), kind));
                continue;
            }
            if let Some(min) = &function.min_duration {
                let kind = ResolveErrorKind::GoMinDuration {
                    binary: path.clone(),
                };
                errors.push(error(min.position, format!("{field}.min_duration"), kind));
                continue;
            }
        }
        // `entry` is the function's first byte in the file.
        let probe = |symbol: String, address: Option<u64>, entry: u64| {
            let entry_skip = code.entry_skip(entry);
            let single_stepped = match code
                .probed_instruction(entry + entry_skip, address.unwrap_or(0) + entry_skip)
            {
                Some(ProbedInstruction::SingleStepped(text)) => Some(text),
                _ => None,
            };
            ProbedFunction {
                binary: path.clone(),
                symbol,
                address,
                file_offset: entry + entry_skip,
                entry_skip,
                spec: function.value.clone(),
                pid,
                // Neither Go functions nor the entry point may get a return probe.
                entry_only: elf.is_go || elf.is_entry_point(entry),
                source: None,
                stack_frames: if function.stack.value {
                    stack_frames
                } else {
                    0
                },
                single_stepped,
            }
        };
        if let Some(offset) = &function.offset {
            if elf.offset_is_code(offset.value) {
                resolved.push(probe(
                    format!("offset {:#x}", offset.value),
                    elf.offset_to_address(offset.value),
                    offset.value,
                ));
            } else {
                errors.push(error(
                    offset.position,
                    format!("{field}.offset"),
                    ResolveErrorKind::NotCode {
                        binary: path.clone(),
                        what: "offset",
                        value: offset.value,
                    },
                ));
            }
        } else if let Some(address) = &function.address {
            match elf.address_to_offset(address.value) {
                Some(offset) => resolved.push(probe(
                    format!("address {:#x}", address.value),
                    Some(address.value),
                    offset,
                )),
                None => errors.push(error(
                    address.position,
                    format!("{field}.address"),
                    ResolveErrorKind::NotCode {
                        binary: path.clone(),
                        what: "address",
                        value: address.value,
                    },
                )),
            }
        } else if let Some(symbol) = &function.symbol {
            let table = symbols.get_or_insert_with(|| {
                SymbolTable::read(&path).map_err(|source| {
                    errors.push(binary_error(ResolveErrorKind::Symbols {
                        binary: path.clone(),
                        source,
                    }));
                })
            });
            let Ok(table) = table else { continue };
            let found = table.find(symbol);
            if found.is_empty() {
                let hint = unknown_symbol_hint(&path, table, &elf, symbol);
                errors.push(error(
                    symbol.position,
                    format!("{field}.symbol"),
                    ResolveErrorKind::UnknownSymbol {
                        binary: path.clone(),
                        symbol: symbol.value.clone(),
                        hint,
                    },
                ));
            }
            for sym in found {
                match sym.file_offset {
                    Some(offset) => resolved.push(ProbedFunction {
                        source: sources(&path, &mut signatures).get(&sym.raw).cloned(),
                        ..probe(sym.name.clone(), Some(sym.address), offset)
                    }),
                    None => errors.push(error(
                        symbol.position,
                        format!("{field}.symbol"),
                        ResolveErrorKind::NoFileOffset {
                            binary: path.clone(),
                            symbol: sym.name.clone(),
                        },
                    )),
                }
            }
        }
        for probed in resolved {
            match &function.return_value {
                Some(ret) if elf.is_entry_point(probed.file_offset - probed.entry_skip) => errors
                    .push(error(
                        ret.position,
                        format!("{field}.return"),
                        ResolveErrorKind::EntryPointReturn {
                            binary: path.clone(),
                            symbol: probed.symbol,
                        },
                    )),
                _ => functions.push(probed),
            }
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

/// Source locations of `path`'s functions by symbol, read from DWARF once (empty without debug
/// info: the attributes are optional).
fn sources<'a>(
    path: &Path,
    cache: &'a mut Option<HashMap<String, (String, u64)>>,
) -> &'a HashMap<String, (String, u64)> {
    cache.get_or_insert_with(|| {
        let Ok(signatures) = crate::probe::dwarf::function_signatures(path) else {
            return HashMap::new();
        };
        signatures
            .into_values()
            .filter_map(|s| {
                let location = (s.file?, s.line?);
                Some((s.linkage_name.unwrap_or(s.name), location))
            })
            .collect()
    })
}

/// What to tell a user whose symbol is not in the binary.
fn unknown_symbol_hint(path: &Path, table: &SymbolTable, elf: &ElfInfo, symbol: &str) -> String {
    match crate::probe::elf::defining_library(path, symbol) {
        Some(Some(library)) => {
            return format!(
                "the binary imports it from {library}, where it is defined: probe it there, \
                 `binary: {library}`"
            );
        }
        Some(None) => {
            return "the binary imports it from a shared library: probe it in the library that \
                    defines it"
                .into();
        }
        None => {}
    }
    if table.functions().is_empty() {
        return "the binary has no function symbols (stripped?): probe by `offset` or `address`"
            .into();
    }
    if glob_pattern(symbol).is_some() {
        return "the pattern matches no function".into();
    }
    let closest = table.closest(symbol, 3);
    let mut hint = if closest.is_empty() {
        String::new()
    } else {
        let names: Vec<_> = closest.iter().map(|n| format!("`{n}`")).collect();
        format!("closest: {}", names.join(", "))
    };
    if !elf.has_symtab {
        if !hint.is_empty() {
            hint.push_str("; ");
        }
        hint.push_str("the binary is stripped, only its dynamic symbols are known");
    }
    hint
}
