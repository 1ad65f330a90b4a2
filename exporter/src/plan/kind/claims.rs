//! Which functions an entry of a target probes: an entry that names a function claims it before
//! the globs that also match it ([`Claims`]), `exclude:` leaves names out of a glob, and what
//! the kernel cannot probe (see [`uprobe_insn`](crate::x86_64::uprobe_insn)) is left out of a
//! glob or refused by name.

use std::collections::{HashMap, HashSet};

use spanprobe_config::{FunctionSpec, Located, Problem};

use crate::{
    binary::symbols::{FunctionSymbol, NamePattern, SymbolTable},
    plan::{
        error::{ResolveError, ResolveErrorKind},
        probe::Probe,
        target::Target,
    },
};

/// Which entry of a target probes each function, by the file offset of its entry: a function
/// that several entries match is probed once. Explicit entries (a name, an offset, an address)
/// claim theirs first; globs then take what is left, in config order.
#[derive(Debug, Default)]
pub struct Claims {
    by_entry: HashMap<u64, String>,
}

impl Claims {
    /// The entry that claimed the function at file offset `entry`, if one did.
    pub(super) fn owner(&self, entry: u64) -> Option<&str> {
        self.by_entry.get(&entry).map(String::as_str)
    }

    pub(super) fn claim(&mut self, entry: u64, field: &str) {
        self.by_entry
            .entry(entry)
            .or_insert_with(|| field.to_owned());
    }
}

/// Whether `function` names its code by a glob, which leaves to other entries what they name:
/// by [`NamePattern`]'s rule, a `symbol` some function of `table` has verbatim is no glob,
/// whatever its characters (`main.(*T).M`, `operator[]`). Without a table, by its characters.
pub fn is_glob(function: &FunctionSpec, table: Option<&SymbolTable>) -> bool {
    function.symbol.as_ref().is_some_and(|symbol| match table {
        Some(table) => table.pattern(symbol).is_glob(),
        None => NamePattern::of(symbol, |_| false).is_glob(),
    })
}

/// `resolved` without the functions whose probed instruction the kernel refuses (see
/// [`uprobe_insn`](crate::x86_64::uprobe_insn)), each with the probes of its other sites: a
/// glob leaves them out with one note, an entry that names one is an error.
pub(super) fn probeable(
    target: &Target,
    resolved: Vec<Probe>,
    function: &Located<FunctionSpec>,
    field: &str,
    errors: &mut Vec<ResolveError>,
    notes: &mut Vec<Problem>,
) -> Vec<Probe> {
    let entry = |probed: &Probe| probed.file_offset - probed.entry_skip;
    let mut refused = HashMap::new();
    for probed in &resolved {
        let address = probed.address.unwrap_or_default() + probed.entry_skip;
        if let Some((instruction, why)) = target.binary.code.refused(probed.file_offset, address) {
            refused.entry(entry(probed)).or_insert(Unprobeable {
                symbol: probed.symbol.clone(),
                instruction,
                why,
            });
        }
    }
    if refused.is_empty() {
        return resolved;
    }
    let entries: HashSet<u64> = refused.keys().copied().collect();
    let (position, key) = match &function.symbol {
        Some(symbol) => (symbol.position, "symbol"),
        None => (function.position, "offset"),
    };
    let mut refused: Vec<Unprobeable> = refused.into_values().collect();
    refused.sort_by(|a, b| (a.why, &a.symbol).cmp(&(b.why, &b.symbol)));
    if is_glob(function, target.symbols(errors)) {
        // By reason: a glob over a library leaves out dozens of functions for one or two.
        let reasons: Vec<String> = refused
            .chunk_by(|a, b| a.why == b.why)
            .map(|same| {
                let names: Vec<String> = same
                    .iter()
                    .map(|f| format!("`{}` (`{}`)", f.symbol, f.instruction))
                    .collect();
                format!("{}: {}", same[0].why, names.join(", "))
            })
            .collect();
        notes.push(Problem::new(
            position,
            format!("{field}.{key}"),
            format!(
                "left out {} whose first instruction the kernel cannot probe, for {}",
                plural(refused.len(), "function"),
                reasons.join("; for ")
            ),
        ));
    } else {
        errors.extend(refused.into_iter().map(|f| ResolveError {
            position,
            field: format!("{field}.{key}"),
            kind: ResolveErrorKind::Unprobeable {
                symbol: f.symbol,
                instruction: f.instruction,
                why: f.why,
            },
        }));
    }
    resolved
        .into_iter()
        .filter(|probed| !entries.contains(&entry(probed)))
        .collect()
}

/// A function whose probed instruction the kernel refuses, and why.
pub(super) struct Unprobeable {
    symbol: String,
    instruction: String,
    why: &'static str,
}

/// Leaves out of `found` (what the glob `symbol` matched in `table`) the names `exclude`
/// matches: names or globs, on the demangled or raw name, by the rule of `symbol`
/// ([`NamePattern`]). Each must leave something out, or it names nothing the glob matched (a
/// typo, say).
pub(super) fn excluded(
    table: &SymbolTable,
    found: &mut Vec<&FunctionSymbol>,
    symbol: &Located<String>,
    exclude: &Located<spanprobe_config::Names>,
) -> Result<(), ResolveErrorKind> {
    if !table.pattern(symbol).is_glob() {
        return Err(ResolveErrorKind::ExcludeWithoutGlob {
            symbol: symbol.value.clone(),
        });
    }
    for pattern in exclude.iter() {
        let pattern_of = table.pattern(pattern);
        let matches = |name: &str| pattern_of.matches(name);
        let before = found.len();
        found.retain(|sym| !matches(&sym.name) && !matches(&sym.raw));
        if found.len() == before {
            return Err(ResolveErrorKind::ExcludeMatchesNothing {
                pattern: pattern.to_owned(),
                symbol: symbol.value.clone(),
            });
        }
    }
    Ok(())
}

/// Why a probe at `value` (an `offset` or `address`, at virtual address `address`) would cut
/// an instruction of the function around it, if it would: a breakpoint there changes what the
/// CPU executes. Functions are decoded from their symbol's start, so a stripped binary's code
/// cannot be told.
pub(super) fn mid_instruction(
    target: &Target,
    what: &'static str,
    value: u64,
    address: Option<u64>,
    errors: &mut Vec<ResolveError>,
) -> Option<ResolveErrorKind> {
    let address = address?;
    let table = target.symbols(errors)?;
    let function = table
        .functions()
        .iter()
        .find(|f| f.address <= address && address < f.address + f.size as u64)?;
    let into = usize::try_from(address - function.address).ok()?;
    let code = target.binary.code.bytes(function.file_offset?, into + 15)?;
    match crate::binary::elf::starts_instruction(&code, into)? {
        true => None,
        false => Some(ResolveErrorKind::MidInstruction {
            what,
            value,
            symbol: function.name.clone(),
            into,
        }),
    }
}

/// `n` and `noun`, plural when `n` is not 1.
pub(super) fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
