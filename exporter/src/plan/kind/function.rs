//! Functions, the first kind of probe: a config `functions` entry (a symbol or glob, an
//! `offset`, or an `address`) resolved to one probe per address it names. A function gets a
//! return probe unless `[rsp]` at its entry is not a return address (the entry point); a Go
//! function gets a probe at each `RET` instead ([`gocall`](super::gocall)). Which functions an
//! entry probes, beside the other entries of its target, [`claims`](super::claims) decides.

use std::path::Path;

use spanprobe_config::{
    FunctionSpec, LenArg, Located, MAX_MEMORY_LEN, MEMORY_BUDGET, Position, Problem, ReadAt,
    ValueType,
};

use crate::{
    binary::{
        dwarf::{
            FunctionSignature,
            path::{self, PathBase, PathRequest},
        },
        elf::ElfInfo,
        symbols::SymbolTable,
    },
    plan::{
        error::{ResolveError, ResolveErrorKind},
        probe::{Probe, ProbeKind, StackUnwind},
        target::Target,
    },
};

use super::{
    claims::{Claims, excluded, is_glob, mid_instruction, plural, probeable},
    gocall::{
        go_call, go_error_register, go_refusal, go_returns_probed, number_go_pairs, place_go_args,
        resolve_go_return,
    },
};

/// Resolves `function` (at `field` in the config) in `binary`: its probes, or the problems
/// added to `errors`; what is worth telling but not wrong (functions it left to other entries
/// or that cannot be probed) is added to `notes`. `first_id` is the function id the first
/// probe returned will have.
pub fn probes(
    target: &Target,
    function: &Located<FunctionSpec>,
    field: &str,
    first_id: usize,
    claims: &mut Claims,
    errors: &mut Vec<ResolveError>,
    notes: &mut Vec<Problem>,
) -> Vec<Probe> {
    let path = target.binary.path.clone();
    let error = |position: Position, key: &str, kind| ResolveError {
        position,
        field: format!("{field}.{key}"),
        kind,
    };
    if target.binary.elf.is_go
        && let Some((position, key, kind)) = go_refusal(function, &path, &target.binary.elf)
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
    let probe = |target: &Target, symbol: String, address: Option<u64>, entry: u64, size| {
        target.probe_at(
            kind_at(&target.binary.elf, entry),
            symbol,
            address,
            entry,
            size,
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
        if target.binary.elf.offset_is_code(offset.value) {
            let address = target.binary.elf.offset_to_address(offset.value);
            let name = format!("offset {:#x}", offset.value);
            match mid_instruction(target, "offset", offset.value, address, errors) {
                Some(kind) => errors.push(error(offset.position, "offset", kind)),
                None => resolved.push(probe(target, name, address, offset.value, None)),
            }
        } else {
            let kind = not_code("offset", offset.value);
            errors.push(error(offset.position, "offset", kind));
        }
    } else if let Some(address) = &function.address {
        match target.binary.elf.address_to_offset(address.value) {
            Some(offset) => {
                let name = format!("address {:#x}", address.value);
                match mid_instruction(
                    target,
                    "address",
                    address.value,
                    Some(address.value),
                    errors,
                ) {
                    Some(kind) => errors.push(error(address.position, "address", kind)),
                    None => resolved.push(probe(target, name, Some(address.value), offset, None)),
                }
            }
            None => {
                let kind = not_code("address", address.value);
                errors.push(error(address.position, "address", kind));
            }
        }
    } else if let Some(symbol) = &function.symbol {
        let Some(table) = target.symbols(errors) else {
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
            let hint = unknown_symbol_hint(&path, table, &target.binary.elf, symbol);
            let kind = ResolveErrorKind::UnknownSymbol {
                binary: path.clone(),
                symbol: symbol.value.clone(),
                hint,
            };
            errors.push(error(symbol.position, "symbol", kind));
        }
        // Go arguments are placed by their declared position, which DWARF gives, as it gives
        // where a goroutine's id is.
        let go_functions = if target.binary.elf.is_go {
            match target.go_functions(errors) {
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
            let facts = target.binary.signature(&sym.raw).map(DwarfFacts::of);
            let facts = facts.as_ref();
            let mut probed = Probe {
                source: facts.and_then(|facts| facts.source.clone()),
                ..probe(
                    target,
                    sym.name.clone(),
                    Some(sym.address),
                    offset,
                    Some(sym.size as u64),
                )
            };
            // Go paths select fields in registers, placed with the Go arguments.
            let paths =
                if target.binary.elf.is_go && target.binary.elf.is_go_code(Some(sym.address)) {
                    Ok(function.value.clone())
                } else {
                    resolve_paths(target, &sym.raw, function, field)
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
                        .filter(|_| target.binary.elf.is_go_code(Some(sym.address)))
                    else {
                        resolved.push(probed);
                        continue;
                    };
                    let placed = place_go_args(go, &sym.raw, target, &mut probed, function, field)
                        .and_then(|()| go_error_register(go, &sym.raw, &probed, function, field))
                        .and_then(|error| {
                            resolve_go_return(target, &sym.raw, &mut probed, function, field)
                                .map(|()| error)
                        });
                    match placed {
                        Ok(error_register) if go_returns_probed(&target.binary.elf) => {
                            match go_call(target, sym, probed, error_register) {
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
    let resolved = probeable(target, resolved, function, field, errors, notes);
    // A return value is asked of every probe of the entry, so it is refused there by name:
    // once, with the Go `RET` sites of the function dropped along with it.
    let mut functions = Vec::new();
    for probed in resolved {
        match &function.return_value {
            Some(ret)
                if target
                    .binary
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

/// `function`'s spec with each argument's `path` resolved, from the DWARF of `binary` (loaded
/// once for every entry), into the `offsets` the kernel follows; `raw` is the function's
/// symbol as the binary has it.
fn resolve_paths(
    target: &Target,
    raw: &str,
    function: &Located<FunctionSpec>,
    field: &str,
) -> Result<FunctionSpec, Vec<ResolveError>> {
    let stack_frames = target.stack_frames;
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
                binary: target.binary.path.clone(),
                path: request.path.to_owned(),
                source: Box::new(source),
            },
        }
    };
    let requests: Vec<_> = with_path.iter().map(|(_, request)| *request).collect();
    let chains = match target.binary.path_chains(raw, &requests) {
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
        if chain.counted {
            // Read at entry from where the pointer and its count are side by side; `len_arg`
            // goes with a path only at return.
            if arg.at == ReadAt::Return {
                let fix = match arg.len_arg {
                    Some(len_arg) => format!("remove `at: return` and `len_arg: {len_arg}`"),
                    None => "remove `at: return`".to_owned(),
                };
                let source = path::PathError::Counted {
                    c_name: chain.c_name,
                    fix,
                };
                errors.push(path_error(with, source));
                continue;
            }
            arg.len_arg = Some(LenArg::Beside);
        }
        arg.ty = Some(chain.ty);
        arg.offsets = Some(chain.offsets);
        arg.enumerators = enumerators;
    }
    // The types DWARF inferred may read memory the config could not count when it was loaded.
    let mut bytes: usize = spec.args.iter().map(|arg| arg.data_size()).sum();
    // A walked stack's addresses go in the call record; a copied window does not.
    if matches!(
        target.stack_unwind(&spec),
        Some(StackUnwind::FramePointers(_))
    ) {
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

/// What is wrong with an argument of `probed` counted at return by its return value (as
/// `len_arg: return` and `"*N"` are): the return value's type must be known, to tell its sign
/// and its width, whose upper bits a narrower value leaves undefined. (Its index, the reason.)
fn count_problem(probed: &Probe) -> Option<(usize, ResolveErrorKind)> {
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
    match crate::binary::elf::defining_library(path, symbol) {
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

/// What `check` says of a function of `kind`: nothing for one with a return probe.
pub(super) fn clause(kind: ProbeKind) -> String {
    match kind {
        ProbeKind::EntryOnly => ", entry-only (no return probe)".to_owned(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_entry_only_function_says_so() {
        assert_eq!(clause(ProbeKind::Function), "");
        assert_eq!(
            clause(ProbeKind::EntryOnly),
            ", entry-only (no return probe)"
        );
        assert_eq!(ProbeKind::Function.kernel_flags(None), (0, 0));
        assert_eq!(
            ProbeKind::EntryOnly.kernel_flags(None),
            (spanprobe_common::ENTRY_ONLY, 0)
        );
    }
}
