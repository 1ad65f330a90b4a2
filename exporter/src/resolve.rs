//! Config functions to attach points: each symbol looked up in its binary's symbol tables
//! (with blazesym) and turned into the file offset the kernel attaches uprobes at.
//!
//! We compute file offsets ourselves rather than letting aya resolve symbols: aya's
//! shared-library offset handling is wrong in some layouts (aya-rs/aya#1198).

use std::{
    fmt,
    path::{Path, PathBuf},
};

use blazesym::{
    SymType,
    inspect::{Inspector, SymInfo, source::Elf},
};
use spanprobe_config::{Config, FunctionSpec};

/// A function ready to attach: where it is, and what its spans capture.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbedFunction {
    pub binary: PathBuf,
    pub symbol: String,
    /// Virtual address in the ELF file.
    pub address: u64,
    /// Offset in the file, where the uprobe goes.
    pub file_offset: u64,
    pub spec: FunctionSpec,
}

/// Why a configured function cannot be probed.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("{field}.binary: {}", binary.display())]
    Binary {
        field: String,
        binary: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{field}.binary: {}: cannot read symbols", binary.display())]
    Symbols {
        field: String,
        binary: PathBuf,
        #[source]
        source: blazesym::Error,
    },
    #[error("{field}.symbol: {}: no function `{symbol}`{}", binary.display(), Suggestions(suggestions))]
    UnknownSymbol {
        field: String,
        binary: PathBuf,
        symbol: String,
        /// The closest function names in the binary, best first.
        suggestions: Vec<String>,
    },
    #[error("{field}.symbol: {}: `{symbol}` has no file offset (not in a loaded segment)", binary.display())]
    NoFileOffset {
        field: String,
        binary: PathBuf,
        symbol: String,
    },
}

/// Every resolution error of a config, reported together, one line each.
#[derive(Debug)]
pub struct ResolveErrors {
    /// The config file the errors are in.
    pub config: PathBuf,
    pub errors: Vec<ResolveError>,
}

impl std::error::Error for ResolveErrors {}

impl fmt::Display for ResolveErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}: {error}", self.config.display())?;
            // Each line carries its own causes: this error has no single `source`.
            let mut source = std::error::Error::source(error);
            while let Some(cause) = source {
                write!(f, ": {cause}")?;
                source = cause.source();
            }
        }
        Ok(())
    }
}

struct Suggestions<'a>(&'a [String]);

impl fmt::Display for Suggestions<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            [] => Ok(()),
            names => {
                let names: Vec<_> = names.iter().map(|n| format!("`{n}`")).collect();
                write!(f, " (closest: {})", names.join(", "))
            }
        }
    }
}

/// Resolves every function of `config`, in config order. A symbol defined at several
/// addresses (e.g. `static` functions of one name in different files) yields one
/// [`ProbedFunction`] per address.
pub fn resolve(config: &Config, config_path: &Path) -> Result<Vec<ProbedFunction>, ResolveErrors> {
    let inspector = Inspector::new();
    let mut functions = Vec::new();
    let mut errors = Vec::new();
    for (t, target) in config.probes.iter().enumerate() {
        let target_field = format!("probes[{t}]");
        if let Err(source) = std::fs::metadata(&target.binary) {
            errors.push(ResolveError::Binary {
                field: target_field,
                binary: target.binary.clone(),
                source,
            });
            continue;
        }
        let elf = Elf::new(&target.binary).into();
        let names: Vec<&str> = target.functions.iter().map(|f| f.symbol.as_str()).collect();
        let found = match inspector.lookup(&elf, &names) {
            Ok(found) => found,
            Err(source) => {
                errors.push(ResolveError::Symbols {
                    field: target_field,
                    binary: target.binary.clone(),
                    source,
                });
                continue;
            }
        };
        for ((f, spec), symbols) in target.functions.iter().enumerate().zip(found) {
            let field = format!("{target_field}.functions[{f}]");
            match attach_points(&symbols) {
                Some(points) if !points.is_empty() => {
                    functions.extend(points.into_iter().map(|(address, file_offset)| {
                        ProbedFunction {
                            binary: target.binary.clone(),
                            symbol: spec.symbol.clone(),
                            address,
                            file_offset,
                            spec: spec.clone(),
                        }
                    }));
                }
                Some(_) => errors.push(ResolveError::UnknownSymbol {
                    field,
                    binary: target.binary.clone(),
                    symbol: spec.symbol.clone(),
                    suggestions: closest_functions(&inspector, &elf, &spec.symbol),
                }),
                None => errors.push(ResolveError::NoFileOffset {
                    field,
                    binary: target.binary.clone(),
                    symbol: spec.symbol.clone(),
                }),
            }
        }
    }
    if errors.is_empty() {
        Ok(functions)
    } else {
        Err(ResolveErrors {
            config: config_path.to_owned(),
            errors,
        })
    }
}

/// Distinct (address, file offset) pairs of the functions among `symbols`; `None` when a
/// function has no file offset.
fn attach_points(symbols: &[SymInfo<'_>]) -> Option<Vec<(u64, u64)>> {
    let mut points = Vec::new();
    for sym in symbols.iter().filter(|s| s.sym_type == SymType::Function) {
        let point = (sym.addr, sym.file_offset?);
        if !points.contains(&point) {
            points.push(point);
        }
    }
    Some(points)
}

/// The three function names in the binary closest to `wanted`.
fn closest_functions(
    inspector: &Inspector,
    elf: &blazesym::inspect::source::Source,
    wanted: &str,
) -> Vec<String> {
    let mut scored = Vec::new();
    let _ = inspector.for_each(elf, |sym| {
        if sym.sym_type == SymType::Function {
            let score = strsim::jaro_winkler(wanted, &sym.name);
            if score > 0.7 {
                scored.push((score, sym.name.to_string()));
            }
        }
        std::ops::ControlFlow::Continue(())
    });
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().take(3).map(|(_, name)| name).collect()
}
