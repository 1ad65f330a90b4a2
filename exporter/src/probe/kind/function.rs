//! Functions, the first kind of probe: a config `functions` entry (a symbol or glob, an
//! `offset`, or an `address`) resolved to one probe per address it names. A function gets a
//! return probe unless `[rsp]` at its entry is not a return address (the entry point); a Go
//! function gets a probe at each `RET` instead, since a uretprobe corrupts Go's moving stacks.

use std::{
    collections::{HashMap, HashSet},
    path::Path,
};

use spanprobe_config::{
    ArgSpec, FunctionSpec, LenArg, Located, MAX_MEMORY_LEN, MEMORY_BUDGET, Position, Problem,
    ReadAt, ValueType,
};

use crate::probe::{
    dwarf::FunctionSignature,
    dwarf::go::{GoFunctions, GoParam},
    dwarf::path::{self, PathBase, PathRequest},
    elf::ElfInfo,
    goabi::{self, GoPlace},
    gocode::GoSites,
    kind::ProbeKind,
    resolve::{Binary, ProbedFunction, ResolveError, ResolveErrorKind},
    symbols::{FunctionSymbol, NamePattern, SymbolTable},
    usdt::{Operand, Register, UsdtArg},
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
    fn owner(&self, entry: u64) -> Option<&str> {
        self.by_entry.get(&entry).map(String::as_str)
    }

    fn claim(&mut self, entry: u64, field: &str) {
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

/// Resolves `function` (at `field` in the config) in `binary`: its probes, or the problems
/// added to `errors`; what is worth telling but not wrong (functions it left to other entries
/// or that cannot be probed) is added to `notes`. `first_id` is the function id the first
/// probe returned will have.
pub fn resolve(
    binary: &Binary,
    function: &Located<FunctionSpec>,
    field: &str,
    first_id: usize,
    claims: &mut Claims,
    errors: &mut Vec<ResolveError>,
    notes: &mut Vec<Problem>,
) -> Vec<ProbedFunction> {
    let path = binary.path.clone();
    let error = |position: Position, key: &str, kind| ResolveError {
        position,
        field: format!("{field}.{key}"),
        kind,
    };
    if binary.elf.is_go
        && let Some((position, key, kind)) = go_refusal(function, &path, &binary.elf)
    {
        errors.push(error(position, key, kind));
        return Vec::new();
    }
    let kind_at = |elf: &ElfInfo, entry: u64| {
        if elf.is_go_code(elf.offset_to_address(entry)) {
            ProbeKind::GoEntry
        } else if elf.is_entry_point(entry) {
            ProbeKind::EntryOnly
        } else {
            ProbeKind::Function
        }
    };
    let probe = |binary: &Binary, symbol: String, address: Option<u64>, entry: u64| {
        binary.probe_at(
            kind_at(&binary.elf, entry),
            symbol,
            address,
            entry,
            function,
        )
    };
    let not_code = |what, value| ResolveErrorKind::NotCode {
        binary: path.clone(),
        what,
        value,
    };
    let mut resolved = Vec::new();
    if let Some(offset) = &function.offset {
        if binary.elf.offset_is_code(offset.value) {
            let address = binary.elf.offset_to_address(offset.value);
            let name = format!("offset {:#x}", offset.value);
            match mid_instruction(binary, "offset", offset.value, address, errors) {
                Some(kind) => errors.push(error(offset.position, "offset", kind)),
                None => resolved.push(probe(binary, name, address, offset.value)),
            }
        } else {
            let kind = not_code("offset", offset.value);
            errors.push(error(offset.position, "offset", kind));
        }
    } else if let Some(address) = &function.address {
        match binary.elf.address_to_offset(address.value) {
            Some(offset) => {
                let name = format!("address {:#x}", address.value);
                match mid_instruction(
                    binary,
                    "address",
                    address.value,
                    Some(address.value),
                    errors,
                ) {
                    Some(kind) => errors.push(error(address.position, "address", kind)),
                    None => resolved.push(probe(binary, name, Some(address.value), offset)),
                }
            }
            None => {
                let kind = not_code("address", address.value);
                errors.push(error(address.position, "address", kind));
            }
        }
    } else if let Some(symbol) = &function.symbol {
        let Some(table) = binary.symbols(errors) else {
            return Vec::new();
        };
        let mut found = table.find(symbol);
        if let Some(exclude) = &function.exclude {
            match excluded(table, &mut found, symbol, exclude) {
                Ok(()) => {}
                Err(kind) => errors.push(error(exclude.position, "exclude", kind)),
            }
        }
        let glob = is_glob(function, Some(table));
        let mut left = Vec::new();
        found.retain(|sym| {
            let owner = sym.file_offset.and_then(|entry| claims.owner(entry));
            match owner {
                None => true,
                Some(owner) if glob => {
                    left.push(format!("`{}` ({owner})", sym.name));
                    false
                }
                Some(owner) => {
                    let kind = ResolveErrorKind::AlreadyProbed {
                        symbol: sym.name.clone(),
                        by: owner.to_owned(),
                    };
                    errors.push(error(symbol.position, "symbol", kind));
                    false
                }
            }
        });
        if !left.is_empty() {
            notes.push(Problem::new(
                symbol.position,
                format!("{field}.symbol"),
                format!(
                    "`{}` also matches {} that other entries probe, left to them: {}",
                    symbol.value,
                    plural(left.len(), "function"),
                    left.join(", ")
                ),
            ));
        }
        if found.is_empty() && !left.is_empty() {
            return Vec::new();
        }
        if found.is_empty() {
            let hint = unknown_symbol_hint(&path, table, &binary.elf, symbol);
            let kind = ResolveErrorKind::UnknownSymbol {
                binary: path.clone(),
                symbol: symbol.value.clone(),
                hint,
            };
            errors.push(error(symbol.position, "symbol", kind));
        }
        // Go arguments are placed by their declared position, which DWARF gives, as it gives
        // where a goroutine's id is.
        let go_functions = if binary.elf.is_go {
            match binary.go_functions(errors) {
                Some(functions) => Some(functions),
                None => return Vec::new(),
            }
        } else {
            None
        };
        for sym in found {
            let Some(offset) = sym.file_offset else {
                let kind = ResolveErrorKind::NoFileOffset {
                    binary: path.clone(),
                    symbol: sym.name.clone(),
                };
                errors.push(error(symbol.position, "symbol", kind));
                continue;
            };
            let facts = binary.signature(&sym.raw).map(DwarfFacts::of);
            let facts = facts.as_ref();
            let mut probed = ProbedFunction {
                source: facts.and_then(|facts| facts.source.clone()),
                ..probe(binary, sym.name.clone(), Some(sym.address), offset)
            };
            // Go paths select fields in registers, placed with the Go arguments.
            let paths = if binary.elf.is_go && binary.elf.is_go_code(Some(sym.address)) {
                Ok(function.value.clone())
            } else {
                resolve_paths(binary, &sym.raw, function, field)
            };
            match paths {
                Ok(spec) => {
                    probed.spec = spec;
                    probed.return_type = probed
                        .spec
                        .return_value
                        .as_ref()
                        .and_then(|ret| ret.ty)
                        .or(facts.and_then(|facts| facts.return_type));
                    if let Some((a, kind)) = count_problem(&probed) {
                        let position = function.args[a].position;
                        errors.push(error(position, &format!("args[{a}].len_arg"), kind));
                        continue;
                    }
                    // A cgo binary's C functions are probed as any C function is.
                    let Some(go) = go_functions
                        .as_ref()
                        .filter(|_| binary.elf.is_go_code(Some(sym.address)))
                    else {
                        resolved.push(probed);
                        continue;
                    };
                    let placed =
                        place_go_args(go, &sym.raw, &binary.elf, &mut probed, function, field)
                            .and_then(|()| {
                                go_error_register(go, &sym.raw, &probed, function, field)
                            });
                    match placed {
                        Ok(error_register) if go_returns_probed(&binary.elf) => {
                            match go_call(binary, sym, probed, error_register) {
                                Ok(probes) => resolved.extend(probes),
                                Err((key, kind)) => {
                                    let position = match key {
                                        "return" => {
                                            function.return_value.as_ref().map(|r| r.position)
                                        }
                                        _ => function.min_duration.as_ref().map(|m| m.position),
                                    };
                                    let position = position.unwrap_or(function.position);
                                    errors.push(error(position, key, kind));
                                }
                            }
                        }
                        Ok(_) => resolved.push(probed),
                        Err(go_errors) => errors.extend(go_errors),
                    }
                }
                Err(path_errors) => errors.extend(path_errors),
            }
        }
    }
    if function.symbol.is_none() {
        for (a, arg) in function.args.iter().enumerate() {
            if arg.path.is_some() {
                let kind = ResolveErrorKind::PathWithoutSymbol;
                errors.push(error(arg.position, &format!("args[{a}].path"), kind));
            }
        }
        if let Some(ret) = function.return_value.as_ref().filter(|r| r.path.is_some()) {
            let kind = ResolveErrorKind::PathWithoutSymbol;
            errors.push(error(ret.position, "return.path", kind));
        }
    }
    let resolved = probeable(binary, resolved, function, field, errors, notes);
    // A return value is asked of every probe of the entry, so it is refused there by name:
    // once, with the Go `RET` sites of the function dropped along with it.
    let mut functions = Vec::new();
    for probed in resolved {
        match &function.return_value {
            Some(ret)
                if binary
                    .elf
                    .is_entry_point(probed.file_offset - probed.entry_skip) =>
            {
                if matches!(probed.kind, ProbeKind::GoReturn { .. }) {
                    continue;
                }
                let kind = ResolveErrorKind::EntryPointReturn {
                    binary: path.clone(),
                    symbol: probed.symbol,
                };
                errors.push(error(ret.position, "return", kind));
            }
            _ => functions.push(probed),
        }
    }
    for probed in &functions {
        claims.claim(probed.file_offset - probed.entry_skip, field);
    }
    number_go_pairs(&mut functions, first_id);
    functions
}

/// `resolved` without the functions whose probed instruction the kernel refuses (see
/// [`uprobe_insn`](crate::probe::uprobe_insn)), each with the probes of its other sites: a
/// glob leaves them out with one note, an entry that names one is an error.
fn probeable(
    binary: &Binary,
    resolved: Vec<ProbedFunction>,
    function: &Located<FunctionSpec>,
    field: &str,
    errors: &mut Vec<ResolveError>,
    notes: &mut Vec<Problem>,
) -> Vec<ProbedFunction> {
    let entry = |probed: &ProbedFunction| probed.file_offset - probed.entry_skip;
    let mut refused = HashMap::new();
    for probed in &resolved {
        let address = probed.address.unwrap_or_default() + probed.entry_skip;
        if let Some((instruction, why)) = binary.code.refused(probed.file_offset, address) {
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
    if is_glob(function, binary.symbols(errors)) {
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
struct Unprobeable {
    symbol: String,
    instruction: String,
    why: &'static str,
}

/// Leaves out of `found` (what the glob `symbol` matched in `table`) the names `exclude`
/// matches: names or globs, on the demangled or raw name, by the rule of `symbol`
/// ([`NamePattern`]). Each must leave something out, or it names nothing the glob matched (a
/// typo, say).
fn excluded(
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
fn mid_instruction(
    binary: &Binary,
    what: &'static str,
    value: u64,
    address: Option<u64>,
    errors: &mut Vec<ResolveError>,
) -> Option<ResolveErrorKind> {
    let address = address?;
    let table = binary.symbols(errors)?;
    let function = table
        .functions()
        .iter()
        .find(|f| f.address <= address && address < f.address + f.size as u64)?;
    let into = usize::try_from(address - function.address).ok()?;
    let code = binary.code.bytes(function.file_offset?, into + 15)?;
    match crate::probe::elf::starts_instruction(&code, into)? {
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
fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Whether the returns of the Go functions in a binary built by Go `version` are probed: Go
/// 1.17's register ABI keeps the goroutine in R14, where the return sites find its stack.
fn go_returns_probed(elf: &ElfInfo) -> bool {
    elf.go_version.is_some_and(|version| version >= (1, 17))
}

/// Makes Go function `probed` (of symbol `sym`) a call whose span ends at any of its `RET`
/// instructions: its entry probe moves onto the stack check (see [`GoSites`]), and a probe goes
/// at each `RET`, numbered with it by [`number_go_pairs`]. Left entry-only when its code shows
/// no `RET` (a function that only loops, panics, or jumps away): then a `return` or a
/// `min_duration` asked of it is refused (the config key, and why).
fn go_call(
    binary: &Binary,
    sym: &FunctionSymbol,
    mut probed: ProbedFunction,
    error: Option<Register>,
) -> Result<Vec<ProbedFunction>, (&'static str, ResolveErrorKind)> {
    let entry = probed.file_offset - probed.entry_skip;
    let sites = binary
        .code
        .bytes(entry, sym.size)
        .and_then(|code| GoSites::find(&code));
    let Some(sites) = sites.filter(|sites| !sites.returns.is_empty()) else {
        let reason = format!(
            "whose function `{}` has no RET instruction (it never returns: it loops, panics or \
             jumps away), so its spans are entry-only",
            sym.name
        );
        let binary = binary.path.clone();
        if probed.spec.return_value.is_some() {
            let reason = format!("{reason}: remove `return`");
            return Err(("return", ResolveErrorKind::GoReturn { binary, reason }));
        }
        if probed.spec.min_duration.is_some() {
            let reason = format!("{reason}, with no duration: remove `min_duration`");
            return Err((
                "min_duration",
                ResolveErrorKind::GoMinDuration { binary, reason },
            ));
        }
        return Ok(vec![probed]);
    };
    let single_stepped = |offset: u64| {
        binary
            .code
            .single_stepped(entry + offset, sym.address + offset)
    };
    // A `RET` site reads no argument and sends no span of its own.
    let spec = FunctionSpec {
        args: Vec::new(),
        return_value: None,
        trace_context: None,
        ..probed.spec.clone()
    };
    let returns: Vec<ProbedFunction> = sites
        .returns
        .iter()
        .map(|&offset| ProbedFunction {
            kind: ProbeKind::GoReturn { pair: 0, error },
            file_offset: entry + offset,
            entry_skip: offset,
            spec: spec.clone(),
            stack_frames: 0,
            single_stepped: single_stepped(offset),
            operands: Vec::new(),
            ..probed.clone()
        })
        .collect();
    probed.kind = ProbeKind::GoCall {
        pair: 0,
        at_stack_check: sites.at_stack_check,
    };
    if error.is_some() {
        probed.go_error_types = Some(binary.elf.go_error_types.clone());
    }
    probed.file_offset = entry + sites.entry;
    probed.entry_skip = sites.entry;
    probed.single_stepped = single_stepped(sites.entry);
    let mut probes = vec![probed];
    probes.extend(returns);
    Ok(probes)
}

/// Numbers each Go call and the `RET` sites that follow it with one pair, unique in the config:
/// the call's function id plus one (`functions[0]` has id `first_id`). USDT pairs, numbered
/// from the count of functions before their target's, cannot collide with it.
fn number_go_pairs(functions: &mut [ProbedFunction], first_id: usize) {
    let mut pair = 0;
    for (i, function) in functions.iter_mut().enumerate() {
        match &mut function.kind {
            ProbeKind::GoCall { pair: call, .. } => {
                pair = u32::try_from(first_id + i + 1).unwrap_or(u32::MAX);
                *call = pair;
            }
            ProbeKind::GoReturn { pair: site, .. } => *site = pair,
            _ => {}
        }
    }
}

/// `function`'s spec with each argument's `path` resolved, from the DWARF of `binary` (loaded
/// once for every entry), into the `offsets` the kernel follows; `raw` is the function's
/// symbol as the binary has it.
fn resolve_paths(
    binary: &Binary,
    raw: &str,
    function: &Located<FunctionSpec>,
    field: &str,
) -> Result<FunctionSpec, Vec<ResolveError>> {
    let stack_frames = binary.stack_frames;
    let mut spec = function.value.clone();
    let mut errors = Vec::new();
    // Which value each path starts from: an argument (by its place in `args`) or the return.
    let mut with_path: Vec<(Option<usize>, PathRequest<'_>)> = function
        .args
        .iter()
        .enumerate()
        .filter_map(|(a, arg)| {
            let request = PathRequest {
                base: PathBase::Parameter(arg.index),
                path: arg.path.as_deref()?,
                ty: arg.ty,
            };
            Some((Some(a), request))
        })
        .collect();
    if let Some(ret) = &function.return_value
        && let Some(path) = &ret.path
    {
        let request = PathRequest {
            base: PathBase::ReturnValue,
            path,
            ty: ret.ty,
        };
        with_path.push((None, request));
    }
    if with_path.is_empty() {
        return Ok(spec);
    }
    let path_error = |(a, request): &(Option<usize>, PathRequest<'_>), source| {
        let (position, key) = match a {
            Some(a) => (function.args[*a].position, format!("args[{a}]")),
            None => (
                function
                    .return_value
                    .as_ref()
                    .map_or(function.position, |r| r.position),
                "return".to_owned(),
            ),
        };
        ResolveError {
            position,
            field: format!("{field}.{key}.path"),
            kind: ResolveErrorKind::Path {
                binary: binary.path.clone(),
                path: request.path.to_owned(),
                source: Box::new(source),
            },
        }
    };
    let requests: Vec<_> = with_path.iter().map(|(_, request)| *request).collect();
    let chains = match binary
        .dwarf()
        .map_err(path::PathError::Dwarf)
        .and_then(|dwarf| {
            path::resolve_in(dwarf.ok_or(path::PathError::NoDebugInfo)?, raw, &requests)
        }) {
        Ok(chains) => chains,
        // What concerns every path (no debug info, no such function) is said once, at the first.
        Err(source) => return Err(vec![path_error(&with_path[0], source)]),
    };
    for (with, chain) in with_path.iter().zip(chains) {
        let chain = match chain {
            Ok(chain) => chain,
            Err(source) => {
                errors.push(path_error(with, source));
                continue;
            }
        };
        let enumerators = chain.enumerators.map(std::sync::Arc::new);
        let Some(a) = with.0 else {
            // Read as the return program reads RAX: a number, not memory behind it.
            if chain.ty.is_memory() {
                let source = path::PathError::MemoryReturn {
                    c_name: chain.c_name,
                    ty: chain.ty,
                };
                errors.push(path_error(with, source));
                continue;
            }
            if let Some(ret) = &mut spec.return_value {
                ret.value.ty = Some(chain.ty);
                ret.value.offsets = Some(chain.offsets);
                ret.value.enumerators = enumerators;
            }
            continue;
        };
        let arg = &mut spec.args[a].value;
        // A string in a `char[N]` is read no further than the array, unless asked.
        if arg.ty.is_none()
            && chain.ty == ValueType::Str
            && let Some(len) = chain.array_len
        {
            arg.max_len = arg
                .max_len
                .or(Some(len.clamp(1, u64::from(MAX_MEMORY_LEN)) as u16));
        }
        arg.ty = Some(chain.ty);
        arg.offsets = Some(chain.offsets);
        arg.enumerators = enumerators;
    }
    // The types DWARF inferred may read memory the config could not count when it was loaded.
    let mut bytes: usize = spec.args.iter().map(|arg| arg.data_size()).sum();
    if spec.stack.value {
        bytes = bytes.next_multiple_of(8) + spanprobe_config::stack_area(stack_frames);
    }
    if errors.is_empty() && bytes > MEMORY_BUDGET {
        errors.push(ResolveError {
            position: function.position,
            field: format!("{field}.args"),
            kind: ResolveErrorKind::MemoryBudget { bytes },
        });
    }
    if errors.is_empty() {
        Ok(spec)
    } else {
        Err(errors)
    }
}

/// What a function of a Go binary may not ask for: a return value or a duration where its
/// returns are not probed, and arguments (Go's own register order) without a symbol.
fn go_refusal(
    function: &FunctionSpec,
    path: &Path,
    elf: &ElfInfo,
) -> Option<(Position, &'static str, ResolveErrorKind)> {
    let binary = path.to_owned();
    let no_returns = if !go_returns_probed(elf) {
        Some(match elf.go_version {
            Some((major, minor)) => format!(
                "built by go{major}.{minor}, before the register ABI of Go 1.17 that returns \
                 are found through, so its functions get entry-only spans"
            ),
            None => "built by an unknown Go version, so its functions get entry-only spans".into(),
        })
    } else if function.symbol.is_none() {
        Some(
            "whose returns are probed at the RET instructions of a function named by `symbol`; \
             by `offset` or `address` its spans are entry-only"
                .into(),
        )
    } else {
        None
    };
    if let (Some(ret), Some(reason)) = (&function.return_value, &no_returns) {
        return Some((
            ret.position,
            "return",
            ResolveErrorKind::GoReturn {
                binary,
                reason: format!("{reason}: remove `return`"),
            },
        ));
    }
    if let Some(arg) = function.args.iter().find(|arg| arg.at == ReadAt::Return) {
        return Some((
            arg.position,
            "args",
            ResolveErrorKind::GoReadAtReturn { binary },
        ));
    }
    // Go arguments are found by their declared position in the function's DWARF.
    if let Some(arg) = function.args.first()
        && function.symbol.is_none()
    {
        return Some((
            arg.position,
            "args",
            ResolveErrorKind::GoArgsWithoutSymbol { binary },
        ));
    }
    let (min, reason) = (function.min_duration.as_ref()?, no_returns?);
    Some((
        min.position,
        "min_duration",
        ResolveErrorKind::GoMinDuration {
            binary,
            reason: format!("{reason}, with no duration: remove `min_duration`"),
        },
    ))
}

/// Checks the `return` of Go function `probed` (`raw` its symbol) against its results, and
/// finds where its `error`, if its last result is one, is at its `RET`s: the interface's type
/// word, non-nil for an error.
fn go_error_register(
    go: &GoFunctions,
    raw: &str,
    probed: &ProbedFunction,
    function: &Located<FunctionSpec>,
    field: &str,
) -> Result<Option<Register>, Vec<ResolveError>> {
    let results: &[GoParam] = go.results.get(raw).map_or(&[], Vec::as_slice);
    let places = goabi::places(results);
    if let Some(ret) = &function.return_value {
        let refuse = |reason: String| {
            Err(vec![ResolveError {
                position: ret.position,
                field: format!("{field}.return"),
                kind: ResolveErrorKind::GoArg {
                    symbol: probed.symbol.clone(),
                    reason,
                },
            }])
        };
        let (Some(first), Some(place)) = (results.first(), places.first()) else {
            return refuse("it has no results (or DWARF does not describe them)".into());
        };
        let go_type = &first.go_type;
        match place {
            GoPlace::Registers { integers, .. } if integers.len() == 1 => {}
            GoPlace::Registers { integers, .. } if integers.is_empty() => {
                return refuse(format!(
                    "its first result ({go_type}) is in a floating-point register, which \
                     uprobes do not capture"
                ));
            }
            GoPlace::Registers { integers, .. } => {
                return refuse(format!(
                    "its first result is a Go {go_type} of {} words: the return value is read \
                     as one number (RAX)",
                    integers.len()
                ));
            }
            GoPlace::Stack => {
                return refuse(format!(
                    "its first result ({go_type}) is returned on the stack, which is not read"
                ));
            }
        }
        if ret.path.is_some() {
            return refuse("`path` is not resolved for Go results: give `offsets`".into());
        }
    }
    let error = results
        .iter()
        .zip(&places)
        .next_back()
        .filter(|(result, _)| result.go_type == "error");
    Ok(match error {
        Some((_, GoPlace::Registers { integers, .. })) => integers.first().copied(),
        _ => None,
    })
}

/// Places the arguments of Go function `probed` (`raw` its symbol, its binary's DWARF read
/// as `go`) in the registers of Go's ABI, after the dictionary of a generic function's
/// shape instantiation: each checked against its Go type (see [`place_go_arg`]). Adds
/// `goroutine.id` where a capture slot is free.
fn place_go_args(
    go: &GoFunctions,
    raw: &str,
    elf: &ElfInfo,
    probed: &mut ProbedFunction,
    function: &Located<FunctionSpec>,
    field: &str,
) -> Result<(), Vec<ResolveError>> {
    if let Some((major, minor)) = elf.go_version
        && (major, minor) < (1, 17)
        && !function.args.is_empty()
    {
        let reason = format!(
            "built by go{major}.{minor}, which passes arguments on the stack (ABI0): arguments \
             are read for Go 1.17 and later (spans without them still work)"
        );
        return Err(vec![ResolveError {
            position: function.args[0].position,
            field: format!("{field}.args"),
            kind: ResolveErrorKind::GoArg {
                symbol: probed.symbol.clone(),
                reason,
            },
        }]);
    }
    let params = go.params.get(raw);
    if function.args.is_empty() {
        add_goroutine_id(go, probed, params.map_or(0, Vec::len));
        return Ok(());
    }
    let symbol = probed.symbol.clone();
    let problem = |a: usize, reason: String| ResolveError {
        position: function.args[a].position,
        field: format!("{field}.args[{a}]"),
        kind: ResolveErrorKind::GoArg {
            symbol: symbol.clone(),
            reason,
        },
    };
    let Some(params) = params else {
        let reason = "DWARF describes no such function: Go arguments are found by their declared \
                      position in DWARF (`go build` writes it; `-ldflags=-w` strips it)";
        return Err(vec![problem(0, reason.to_owned())]);
    };
    let places = goabi::parameter_places(raw, params);
    let mut operands: Vec<UsdtArg> = places
        .iter()
        .map(|place| match place {
            GoPlace::Registers { integers, .. } if !integers.is_empty() => word(integers[0]),
            _ => UsdtArg::UNREAD,
        })
        .collect();
    let mut errors = Vec::new();
    for (a, arg) in probed.spec.args.iter_mut().enumerate() {
        let index = usize::from(arg.index);
        let (Some(param), Some(place)) = (params.get(index), places.get(index)) else {
            errors.push(problem(
                a,
                format!(
                    "argument {index} does not exist: it has {} parameters",
                    params.len()
                ),
            ));
            continue;
        };
        let name = param.name.as_deref().unwrap_or("?");
        let integers = match place {
            GoPlace::Stack => {
                let go_type = &param.go_type;
                let reason =
                    format!("`{name}` ({go_type}) is passed on the stack, which is not read yet");
                errors.push(problem(a, reason));
                continue;
            }
            GoPlace::Registers { integers, .. } => integers,
        };
        match place_go_arg(&mut arg.value, param, name, integers, &mut operands) {
            Ok(()) => {}
            Err(reason) => errors.push(problem(a, reason)),
        }
    }
    probed.operands = operands;
    if !errors.is_empty() {
        return Err(errors);
    }
    add_goroutine_id(go, probed, params.len());
    Ok(())
}

/// An operand that reads `register` whole.
fn word(register: Register) -> UsdtArg {
    UsdtArg {
        size: 8,
        signed: false,
        operand: Operand::Register(register),
    }
}

/// Places `arg`, a capture of Go parameter `param` (called `name`, in `integers`), checked
/// against its Go type: on the parameter's first word (`operands[arg.index]`), or on a word
/// of its own added to `operands` (a field's, an interface's data), with its length's word
/// as its `len_arg` for a `string` or a `[]byte`. Why it cannot be read, if so.
fn place_go_arg(
    arg: &mut ArgSpec,
    param: &GoParam,
    name: &str,
    integers: &[Register],
    operands: &mut Vec<UsdtArg>,
) -> Result<(), String> {
    let Some(mut value) = goabi::GoValue::parameter(param, name, integers) else {
        return Err(format!(
            "`{name}` ({}) is passed on the stack",
            param.go_type
        ));
    };
    if let Some(path) = &arg.path {
        value = value.select(path)?;
    }
    let Some(ty) = arg.ty.or_else(|| value.default_type()) else {
        return Err(format!(
            "`{}` is a Go {}, which no type reads by default: give `type`",
            value.name, value.go_type
        ));
    };
    arg.ty = Some(ty);
    let (bytes, count) = match value.read(ty, arg.offsets.is_some())? {
        goabi::GoRead::Word(register) => (register, None),
        goabi::GoRead::Counted { bytes, count } => (bytes, Some(count)),
    };
    let index = |operands: &Vec<UsdtArg>| u8::try_from(operands.len()).unwrap_or(u8::MAX);
    // Another word than the parameter's first gets an operand of its own; the attribute keeps
    // the name the config's index gave it.
    if operands.get(usize::from(arg.index)) != Some(&word(bytes)) {
        arg.name = Some(arg.attribute_name());
        arg.index = index(operands);
        operands.push(word(bytes));
    }
    if let Some(count) = count
        && arg.len_arg.is_none()
    {
        arg.len_arg = Some(LenArg::Arg(index(operands)));
        operands.push(word(count));
    }
    Ok(())
}

/// Adds `goroutine.id` to what `probed` captures, when DWARF says where `runtime.g` keeps it
/// and a capture slot is free: R14 holds the running goroutine's `g` in Go code (ABIInternal).
/// `params` is the number of the function's parameters, whose operands come first.
fn add_goroutine_id(go: &GoFunctions, probed: &mut ProbedFunction, params: usize) {
    const NAME: &str = "goroutine.id";
    let spec = &mut probed.spec;
    let Some(offset) = go.goid_offset.and_then(|o| i32::try_from(o).ok()) else {
        return;
    };
    if spec.args.len() >= spanprobe_config::MAX_CAPTURED_ARGS
        || spec.args.iter().any(|arg| arg.attribute_name() == NAME)
    {
        return;
    }
    if probed.operands.len() < params {
        probed.operands.resize(params, UsdtArg::UNREAD);
    }
    let index = u8::try_from(probed.operands.len()).unwrap_or(u8::MAX);
    probed.operands.push(UsdtArg {
        size: 8,
        signed: true,
        operand: Operand::Register(crate::probe::usdt::Register::R14),
    });
    spec.args.push(Located::unplaced(ArgSpec {
        offsets: Some(vec![offset]),
        ..ArgSpec::new(index, Some(NAME), ValueType::I64)
    }));
}

/// What is wrong with an argument of `probed` counted at return by its return value (as
/// `len_arg: return` and `"*N"` are): the return value's type must be known, to tell its sign
/// and its width, whose upper bits a narrower value leaves undefined. (Its index, the reason.)
fn count_problem(probed: &ProbedFunction) -> Option<(usize, ResolveErrorKind)> {
    let (a, len_arg) = probed.spec.args.iter().enumerate().find_map(|(a, arg)| {
        arg.len_arg
            .filter(|len_arg| len_arg.needs_return())
            .map(|len_arg| (a, len_arg))
    })?;
    let symbol = probed.symbol.clone();
    let kind = match probed.return_type {
        None => ResolveErrorKind::ReturnTypeUnknown { symbol, len_arg },
        // A count is an integer; behind a pointer, a pointer return tells success too.
        Some(ty)
            if !matches!(ty.size(), 4 | 8)
                || (ty == ValueType::Ptr && len_arg == LenArg::Return) =>
        {
            ResolveErrorKind::ReturnNotCount {
                symbol,
                len_arg,
                ty,
            }
        }
        Some(_) => return None,
    };
    Some((a, kind))
}

/// What DWARF says of a function that the spans use without being asked.
struct DwarfFacts {
    /// Source file and line.
    source: Option<(String, u64)>,
    /// The return value's type, when it is one spanprobe reads.
    return_type: Option<ValueType>,
}

impl DwarfFacts {
    fn of(signature: &FunctionSignature) -> Self {
        Self {
            source: signature.file.clone().zip(signature.line),
            return_type: signature.return_type.as_ref().and_then(|ty| ty.capture),
        }
    }
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
    // A static function of a stripped binary is named only in its distribution's debug file:
    // said first, before names that merely look alike.
    if let Some(mut hint) = table.missing_debug_file_hint(path, symbol) {
        // Each quoted already, with its table: "`main.main` (.gopclntab)".
        let closest = table.closest(symbol, 3);
        if !closest.is_empty() {
            hint.push_str(&format!(
                "; the closest names it exports: {}",
                closest.join(", ")
            ));
        }
        return hint;
    }
    if table.pattern(symbol).is_glob() {
        return "the pattern matches no function".into();
    }
    let closest = table.closest(symbol, 3);
    let mut hint = if closest.is_empty() {
        String::new()
    } else {
        format!("closest: {}", closest.join(", "))
    };
    if !elf.has_symtab {
        if !hint.is_empty() {
            hint.push_str("; ");
        }
        hint.push_str("the binary is stripped, only its dynamic symbols are known");
    }
    hint
}
