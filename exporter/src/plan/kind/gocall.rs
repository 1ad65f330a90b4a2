//! Go calls: a Go function probed at its entry (or its stack check's branch) and at each `RET`,
//! since a uretprobe corrupts Go's moving stacks; its arguments placed by Go's register ABI
//! from its DWARF, and what a Go binary may not ask for.

use std::path::Path;

use spanprobe_config::{ArgSpec, FunctionSpec, LenArg, Located, Position, ReadAt, ValueType};

use crate::{
    binary::{
        dwarf::{
            go::GoFunctions,
            path::{FieldChain, PathBase, PathError, PathRequest},
        },
        elf::ElfInfo,
        symbols::FunctionSymbol,
    },
    plan::{
        error::{ResolveError, ResolveErrorKind},
        probe::{Probe, ProbeKind},
        target::Target,
    },
    x86_64::{
        ArgOperand, Operand, Register, go as goabi,
        go::{GoParam, GoPlace},
        gocode::GoSites,
    },
};

/// Whether the returns of the Go functions in a binary built by Go `version` are probed: Go
/// 1.17's register ABI keeps the goroutine in R14, where the return sites find its stack.
pub(super) fn go_returns_probed(elf: &ElfInfo) -> bool {
    elf.go_version.is_some_and(|version| version >= (1, 17))
}

/// Makes Go function `probed` (of symbol `sym`) a call whose span ends at any of its `RET`
/// instructions: its entry probe moves onto the stack check (see [`GoSites`]), and a probe goes
/// at each `RET`, numbered with it by [`number_go_pairs`]. Left entry-only when its code shows
/// no `RET` (a function that only loops, panics, or jumps away): then a `return` or a
/// `min_duration` asked of it is refused (the config key, and why).
pub(super) fn go_call(
    target: &Target,
    sym: &FunctionSymbol,
    mut probed: Probe,
    error: Option<Register>,
) -> Result<Vec<Probe>, (&'static str, ResolveErrorKind)> {
    let entry = probed.file_offset - probed.entry_skip;
    let sites = target
        .binary
        .code
        .bytes(entry, sym.size)
        .and_then(|code| GoSites::find(&code));
    let Some(sites) = sites.filter(|sites| !sites.returns.is_empty()) else {
        let reason = format!(
            "whose function `{}` has no RET instruction (it never returns: it loops, panics or \
             jumps away), so its spans are entry-only",
            sym.name
        );
        let binary = target.binary.path.clone();
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
        target
            .binary
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
    let returns: Vec<Probe> = sites
        .returns
        .iter()
        .map(|&offset| Probe {
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
        probed.go_error_types = Some(target.binary.elf.go_error_types.clone());
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
pub(super) fn number_go_pairs(functions: &mut [Probe], first_id: usize) {
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

/// What a function of a Go binary may not ask for: a return value or a duration where its
/// returns are not probed, and arguments (Go's own register order) without a symbol.
pub(super) fn go_refusal(
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
pub(super) fn go_error_register(
    go: &GoFunctions,
    raw: &str,
    probed: &Probe,
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
/// shape instantiation: each checked against its Go type (see [`place_go_arg`]), its `path`
/// into memory resolved from DWARF. Adds `goroutine.id` where a capture slot is free.
pub(super) fn place_go_args(
    go: &GoFunctions,
    raw: &str,
    target: &Target,
    probed: &mut Probe,
    function: &Located<FunctionSpec>,
    field: &str,
) -> Result<(), Vec<ResolveError>> {
    if let Some((major, minor)) = target.binary.elf.go_version
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
    let mut chains = memory_paths(target, raw, probed, function, field)?;
    let places = goabi::parameter_places(raw, params);
    let mut operands: Vec<ArgOperand> = places
        .iter()
        .map(|place| match place {
            GoPlace::Registers { integers, .. } if !integers.is_empty() => word(integers[0]),
            _ => ArgOperand::UNREAD,
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
        let chain = match chains.get_mut(a).and_then(Option::take).transpose() {
            Ok(chain) => chain,
            Err(error) => {
                errors.push(error);
                continue;
            }
        };
        match place_go_arg(&mut arg.value, param, name, integers, chain, &mut operands) {
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
pub(super) fn word(register: Register) -> ArgOperand {
    ArgOperand {
        size: 8,
        signed: false,
        operand: Operand::Register(register),
    }
}

/// Resolves the `path` of Go function `probed`'s `return` (`raw` its symbol) from its first
/// result, in RAX when it returns, into the chain the return site follows: to a number, as a
/// return value is read.
pub(super) fn resolve_go_return(
    target: &Target,
    raw: &str,
    probed: &mut Probe,
    function: &Located<FunctionSpec>,
    field: &str,
) -> Result<(), Vec<ResolveError>> {
    let Some(ret) = probed.spec.return_value.as_mut() else {
        return Ok(());
    };
    let Some(path) = ret.path.clone() else {
        return Ok(());
    };
    let request = PathRequest {
        base: PathBase::GoResult(0),
        path: &path,
        ty: ret.ty,
    };
    let chain = target
        .binary
        .path_chains(raw, &[request])
        .and_then(|mut chains| {
            chains
                .pop()
                .unwrap_or(Err(PathError::NoReturnValue(raw.into())))
        })
        .and_then(|chain| match chain.ty.is_memory() {
            false => Ok(chain),
            true => Err(PathError::MemoryReturn {
                c_name: chain.c_name,
                ty: chain.ty,
            }),
        });
    match chain {
        Ok(chain) => {
            ret.value.ty = Some(chain.ty);
            ret.value.offsets = Some(chain.offsets);
            ret.value.enumerators = chain.enumerators.map(std::sync::Arc::new);
            Ok(())
        }
        Err(source) => Err(vec![ResolveError {
            position: function
                .return_value
                .as_ref()
                .map_or(function.position, |ret| ret.position),
            field: format!("{field}.return.path"),
            kind: ResolveErrorKind::Path {
                binary: target.binary.path.clone(),
                path,
                source: Box::new(source),
            },
        }]),
    }
}

/// The part of a Go `path` that selects fields in registers (`.to` of `.to->name`), before
/// its first step into memory; the path whole when it has none.
fn in_registers(path: &str) -> &str {
    let end = [path.find("->"), path.find('[')]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(path.len());
    &path[..end]
}

/// The chain of each of `function`'s arguments whose `path` reaches into memory (`->name`,
/// `.to->name`, `[2]`), by argument, resolved from the binary's DWARF in one pass, or why it
/// cannot be; `None` for the others. The error is one for all when the DWARF cannot be read.
fn memory_paths(
    target: &Target,
    raw: &str,
    probed: &Probe,
    function: &Located<FunctionSpec>,
    field: &str,
) -> Result<Vec<Option<Result<FieldChain, ResolveError>>>, Vec<ResolveError>> {
    let requests: Vec<(usize, PathRequest<'_>)> = probed
        .spec
        .args
        .iter()
        .enumerate()
        .filter_map(|(a, arg)| {
            let path = arg.path.as_deref()?;
            (in_registers(path) != path).then_some((
                a,
                PathRequest {
                    base: PathBase::GoParameter(usize::from(arg.index)),
                    path,
                    ty: arg.ty,
                },
            ))
        })
        .collect();
    let mut chains: Vec<_> = probed.spec.args.iter().map(|_| None).collect();
    let Some(&(first, _)) = requests.first() else {
        return Ok(chains);
    };
    let problem = |a: usize, path: &str, source: PathError| ResolveError {
        position: function.args[a].position,
        field: format!("{field}.args[{a}].path"),
        kind: ResolveErrorKind::Path {
            binary: target.binary.path.clone(),
            path: path.to_owned(),
            source: Box::new(source),
        },
    };
    let asked: Vec<PathRequest<'_>> = requests.iter().map(|(_, request)| *request).collect();
    let resolved = target
        .binary
        .path_chains(raw, &asked)
        .map_err(|source| vec![problem(first, requests[0].1.path, source)])?;
    for ((a, request), chain) in requests.iter().zip(resolved) {
        chains[*a] = Some(chain.map_err(|source| problem(*a, request.path, source)));
    }
    Ok(chains)
}

/// Places `arg`, a capture of Go parameter `param` (called `name`, in `integers`), checked
/// against its Go type: on the parameter's first word (`operands[arg.index]`), or on a word
/// of its own added to `operands` (a field's, an interface's data), with its length's word
/// as its `len_arg` for a `string` or a `[]byte`; followed along `chain` when its `path`
/// reaches into memory. Why it cannot be read, if so.
pub(super) fn place_go_arg(
    arg: &mut ArgSpec,
    param: &GoParam,
    name: &str,
    integers: &[Register],
    chain: Option<FieldChain>,
    operands: &mut Vec<ArgOperand>,
) -> Result<(), String> {
    let Some(mut value) = goabi::GoValue::parameter(param, name, integers) else {
        return Err(format!(
            "`{name}` ({}) is passed on the stack",
            param.go_type
        ));
    };
    if let Some(path) = &arg.path {
        let fields = in_registers(path);
        if !fields.is_empty() {
            value = value.select(fields)?;
        }
    }
    if let Some(chain) = chain {
        // `len_arg` does not go with a path read at entry: the config says so.
        if chain.counted {
            arg.len_arg = Some(LenArg::Beside);
        }
        arg.ty = Some(chain.ty);
        arg.offsets = Some(chain.offsets);
        arg.enumerators = chain.enumerators.map(std::sync::Arc::new);
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
    let index = |operands: &Vec<ArgOperand>| u8::try_from(operands.len()).unwrap_or(u8::MAX);
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
pub(super) fn add_goroutine_id(go: &GoFunctions, probed: &mut Probe, params: usize) {
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
        probed.operands.resize(params, ArgOperand::UNREAD);
    }
    let index = u8::try_from(probed.operands.len()).unwrap_or(u8::MAX);
    probed.operands.push(ArgOperand {
        size: 8,
        signed: true,
        operand: Operand::Register(crate::x86_64::Register::R14),
    });
    spec.args.push(Located::unplaced(ArgSpec {
        offsets: Some(vec![offset]),
        ..ArgSpec::new(index, Some(NAME), ValueType::I64)
    }));
}

/// `check`'s line for a `RET` site of a Go call (`error` where its error's type word is):
/// `step_cost` is what its single step costs here.
pub(super) fn return_line(function: &Probe, error: Option<Register>, step_cost: &str) -> String {
    let mut line = format!(
        "    RET at file offset {:#x} (+{}): closes the span",
        function.file_offset, function.entry_skip
    );
    if let Some(register) = error {
        line.push_str(&format!(
            ", status ERROR when the error ({register}) is non-nil"
        ));
    }
    if function.single_stepped.is_some() {
        // Every RET is: the kernel emulates no return.
        line.push_str(&format!("; single-stepped by the kernel{step_cost}"));
    }
    line
}

/// What `check` says of a Go function: entry-only, or a call closed at its `RET` sites among
/// `functions`.
pub(super) fn clause(function: &Probe, functions: &[Probe]) -> String {
    let version = function
        .go_version
        .map_or_else(String::new, |(major, minor)| {
            format!(" (go{major}.{minor})")
        });
    let ProbeKind::GoCall { pair, .. } = function.kind else {
        return format!(", Go function{version}: entry-only (no return probe)");
    };
    let rets = functions
        .iter()
        .filter(|f| matches!(f.kind, ProbeKind::GoReturn { pair: p, .. } if p == pair))
        .count();
    let rets = match rets {
        1 => "1 RET".to_owned(),
        n => format!("{n} RETs"),
    };
    format!(", Go function{version}: span on its goroutine, closed at {rets}")
}

#[cfg(test)]
mod tests {
    use spanprobe_config::FunctionSpec;

    use super::*;

    fn site(kind: ProbeKind, file_offset: u64) -> Probe {
        Probe {
            kind,
            go_version: Some((1, 19)),
            ..Probe::new(
                "/bin/app",
                "main.handle",
                file_offset,
                FunctionSpec::default(),
            )
        }
    }

    /// Each call and the `RET`s after it share a pair, the call's id plus one, which no other
    /// call's sites take.
    #[test]
    fn a_call_and_its_returns_share_one_pair() {
        let call = ProbeKind::GoCall {
            pair: 0,
            at_stack_check: false,
        };
        let ret = ProbeKind::GoReturn {
            pair: 0,
            error: None,
        };
        let mut functions = vec![
            site(call, 0),
            site(ret, 9),
            site(ret, 12),
            site(call, 32),
            site(ret, 40),
        ];
        number_go_pairs(&mut functions, 5);
        let pairs: Vec<u32> = functions
            .iter()
            .map(|f| f.kind.kernel_flags(None).1)
            .collect();
        assert_eq!(pairs, [6, 6, 6, 9, 9]);
        assert_eq!(
            clause(&functions[0], &functions),
            ", Go function (go1.19): span on its goroutine, closed at 2 RETs"
        );
        assert_eq!(
            clause(&functions[3], &functions),
            ", Go function (go1.19): span on its goroutine, closed at 1 RET"
        );
        let entry_only = site(ProbeKind::GoEntry, 0);
        assert_eq!(
            clause(&entry_only, &functions),
            ", Go function (go1.19): entry-only (no return probe)"
        );
    }

    #[test]
    fn a_return_line_says_where_the_error_is_and_what_its_step_costs() {
        let ret = Probe {
            entry_skip: 30,
            single_stepped: Some("ret".into()),
            ..site(
                ProbeKind::GoReturn {
                    pair: 1,
                    error: Some(Register::Rbx),
                },
                0x815de,
            )
        };
        assert_eq!(
            return_line(&ret, Some(Register::Rbx), " (10.2 µs here)"),
            "    RET at file offset 0x815de (+30): closes the span, status ERROR when the error \
             (RBX) is non-nil; single-stepped by the kernel (10.2 µs here)"
        );
    }

    #[test]
    fn a_path_selects_fields_in_registers_up_to_its_first_step_into_memory() {
        assert_eq!(in_registers(".to->name"), ".to");
        assert_eq!(in_registers("->buyer->name"), "");
        assert_eq!(in_registers(".lines[1].Name"), ".lines");
        assert_eq!(in_registers(".weight"), ".weight");
    }
}
