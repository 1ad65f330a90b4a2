//! USDT probes, the second kind of probe: a config `usdt` entry (`provider:name`, and an
//! optional `until` that ends its span) resolved to one probe per site the binary's notes list
//! for each name, with each argument read where the site's note says.

use spanprobe_common::MAX_CHAIN;
use spanprobe_config::{ArgSpec, FunctionSpec, LenArg, Located, UsdtSpec, ValueType};

use crate::{
    binary::usdt::{UsdtProbe, read_probes},
    plan::{
        error::{ResolveError, ResolveErrorKind},
        probe::{ArgLocation, Probe, ProbeKind},
        target::Target,
    },
    suggest::closest_hint,
    x86_64::{ArgOperand, Operand},
};

/// Resolves the `usdt` entries of one target (at `field`), reading the binary's notes once;
/// the start/end pairs are numbered from `first_pair`, unique in the whole config.
pub fn probes(
    target: &Target,
    entries: &[Located<UsdtSpec>],
    field: &str,
    first_pair: u32,
    errors: &mut Vec<ResolveError>,
) -> Vec<Probe> {
    let probes = match read_probes(&target.binary.path) {
        Ok(probes) => probes,
        Err(error) => {
            errors.push(target.problem(ResolveErrorKind::Usdt(error)));
            return Vec::new();
        }
    };
    let mut resolved = Vec::new();
    for (u, entry) in entries.iter().enumerate() {
        let field = format!("{field}.usdt[{u}]");
        let pair = first_pair + u as u32;
        let error = |position, key: &str, kind| ResolveError {
            position,
            field: format!("{field}.{key}"),
            kind,
        };
        let sites = |name: &str, position, key: &str, errors: &mut Vec<ResolveError>| {
            let sites: Vec<&UsdtProbe> = probes.iter().filter(|p| p.full_name() == name).collect();
            if sites.is_empty() {
                let names: Vec<String> = probes.iter().map(UsdtProbe::full_name).collect();
                let kind = ResolveErrorKind::UnknownUsdt {
                    binary: target.binary.path.clone(),
                    probe: name.to_owned(),
                    hint: if names.is_empty() {
                        " (the binary has no USDT probes)".to_owned()
                    } else {
                        closest_hint(name, &names)
                    },
                };
                errors.push(error(position, key, kind));
            }
            sites
        };
        let starts = sites(&entry.probe, entry.probe.position, "probe", errors);
        // Every end probe closes the span its start opened: they share the pair.
        let ends: Option<Vec<(&str, Vec<&UsdtProbe>)>> = entry.until.as_ref().map(|until| {
            until
                .iter()
                .map(|name| (name, sites(name, until.position, "until", errors)))
                .collect()
        });
        let kind = match ends {
            Some(_) => ProbeKind::UsdtStart { pair },
            None => ProbeKind::UsdtPoint {
                event: entry.event.value,
            },
        };
        // The end sites first: the starts decode what they read.
        let mut later_args = Vec::new();
        for (until, sites) in ends.into_iter().flatten() {
            let spec = FunctionSpec {
                span_name: Some(until.to_owned()),
                args: entry.until_args.clone(),
                ..FunctionSpec::default()
            };
            for site in sites {
                let (spec, operands) = match site_spec(spec.clone(), site, &field, "until_args") {
                    Ok(typed) => typed,
                    Err(site_errors) => {
                        errors.extend(site_errors);
                        continue;
                    }
                };
                if later_args.is_empty() {
                    later_args = spec
                        .args
                        .iter()
                        .map(|arg| {
                            let at = operands.get(usize::from(arg.index));
                            let at = at.unwrap_or(&ArgOperand::UNREAD).operand;
                            (arg.value.clone(), ArgLocation::Operand(at))
                        })
                        .collect();
                }
                let kind = ProbeKind::UsdtEnd { pair };
                resolved.push(Probe {
                    slot_base: entry.args.len(),
                    ..probe(target, site, kind, spec, operands)
                });
            }
        }
        for site in starts {
            match site_spec(entry.capture(), site, &field, "args") {
                Ok((spec, operands)) => resolved.push(Probe {
                    later_args: later_args.clone(),
                    ..probe(target, site, kind, spec, operands)
                }),
                Err(site_errors) => errors.extend(site_errors),
            }
        }
    }
    resolved
}

/// The probe at `site`.
fn probe(
    target: &Target,
    site: &UsdtProbe,
    kind: ProbeKind,
    spec: FunctionSpec,
    operands: Vec<ArgOperand>,
) -> Probe {
    let stack_frames = if spec.stack.value.is_on() {
        target.stack_frames
    } else {
        0
    };
    Probe {
        processes: target.processes.clone(),
        kind,
        address: Some(site.address),
        stack_frames,
        unwind: target.stack_unwind(&spec),
        operands,
        semaphore: site.semaphore.map(|(_, offset)| offset),
        ..Probe::new(
            &target.binary.path,
            site.full_name(),
            site.file_offset,
            spec,
        )
    }
}

/// `spec` with each argument's type filled in from the note at `site` where the config left
/// it out, and the site's operands; or what is wrong with the arguments there.
fn site_spec(
    mut spec: FunctionSpec,
    site: &UsdtProbe,
    field: &str,
    args_key: &str,
) -> Result<(FunctionSpec, Vec<ArgOperand>), Vec<ResolveError>> {
    let mut errors = Vec::new();
    // An operand that cannot be read is only an error for an argument that asks for it.
    let operands: Vec<_> = site
        .args
        .iter()
        .map(|operand| ArgOperand::parse(operand))
        .collect();
    for (a, arg) in spec.args.iter_mut().enumerate() {
        let problem = |reason: String| ResolveError {
            position: arg.position,
            field: format!("{field}.{args_key}[{a}]"),
            kind: ResolveErrorKind::ArgOperand {
                probe: site.full_name(),
                address: site.address,
                reason,
            },
        };
        match check_arg(&arg.value, &operands) {
            Ok(ty) => arg.value.ty = Some(ty),
            Err(reason) => errors.push(problem(reason)),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    // Every argument asked for parsed; the others are never read.
    let operands = operands
        .into_iter()
        .map(|operand| operand.unwrap_or(ArgOperand::UNREAD))
        .collect();
    Ok((spec, operands))
}

/// The type `arg` is read as at a site whose operands are `operands`, or why it cannot be.
fn check_arg(arg: &ArgSpec, operands: &[Result<ArgOperand, String>]) -> Result<ValueType, String> {
    let operand = |index: u8| match operands.get(usize::from(index)) {
        Some(Ok(operand)) => Ok(*operand),
        Some(Err(reason)) => Err(reason.clone()),
        None => Err(format!(
            "argument {index} does not exist: the probe has {} argument(s)",
            operands.len()
        )),
    };
    let here = operand(arg.index)?;
    if arg.path.is_some() {
        return Err(
            "`path` needs a function's DWARF parameters; at a USDT probe give the chain as \
             `offsets`"
                .to_owned(),
        );
    }
    let ty = arg.ty.unwrap_or_else(|| note_type(here));
    match here.operand {
        Operand::Constant(_) if ty.is_memory() || arg.offsets.is_some() => {
            return Err(format!(
                "argument {} is a constant: there is no memory behind it to read",
                arg.index
            ));
        }
        Operand::Memory { .. } if arg.offsets.as_ref().is_some_and(|o| o.len() >= MAX_CHAIN) => {
            return Err(format!(
                "argument {} is in memory, which takes one step of the chain: give at most {} \
                 offsets",
                arg.index,
                MAX_CHAIN - 1
            ));
        }
        _ => {}
    }
    if let Some(LenArg::Arg(count)) = arg.len_arg
        && !matches!(operand(count)?.operand, Operand::Register(_))
    {
        return Err(format!(
            "`len_arg`: argument {count} is not in a register, where a count is read from"
        ));
    }
    Ok(ty)
}

/// The type a note's size and sign say.
fn note_type(arg: ArgOperand) -> ValueType {
    match (arg.size, arg.signed) {
        (1, true) => ValueType::I8,
        (1, false) => ValueType::U8,
        (2, true) => ValueType::I16,
        (2, false) => ValueType::U16,
        (4, true) => ValueType::I32,
        (4, false) => ValueType::U32,
        (_, true) => ValueType::I64,
        (_, false) => ValueType::U64,
    }
}

/// What `check` says of a USDT site of `kind`.
pub(super) fn clause(kind: ProbeKind) -> String {
    match kind {
        ProbeKind::UsdtStart { .. } => ", USDT site opening a span that its `until` closes",
        ProbeKind::UsdtEnd { .. } => ", USDT site closing the span its `probe` opened",
        ProbeKind::UsdtPoint { event: true } => {
            ", USDT site: an event of the innermost open span (a span of its own when none is)"
        }
        _ => ", USDT site: a span with no duration",
    }
    .to_owned()
}

#[cfg(test)]
mod tests {
    use spanprobe_common::{ENDS_PAIRED_SPAN, ENTRY_ONLY, EVENT_OF_OPEN_SPAN, NOT_AT_CALL};

    use super::*;

    #[test]
    fn check_says_what_each_site_does_with_its_span() {
        assert_eq!(
            clause(ProbeKind::UsdtStart { pair: 1 }),
            ", USDT site opening a span that its `until` closes"
        );
        assert_eq!(
            clause(ProbeKind::UsdtEnd { pair: 1 }),
            ", USDT site closing the span its `probe` opened"
        );
        assert_eq!(
            clause(ProbeKind::UsdtPoint { event: false }),
            ", USDT site: a span with no duration"
        );
        // The kernel is told the same: not at a call, closing a pair, an event of a span.
        assert_eq!(
            ProbeKind::UsdtStart { pair: 3 }.kernel_flags(None),
            (NOT_AT_CALL, 3)
        );
        assert_eq!(
            ProbeKind::UsdtEnd { pair: 3 }.kernel_flags(None),
            (ENDS_PAIRED_SPAN, 3)
        );
        assert_eq!(
            ProbeKind::UsdtPoint { event: true }.kernel_flags(None),
            (ENTRY_ONLY | NOT_AT_CALL | EVENT_OF_OPEN_SPAN, 0)
        );
    }

    #[test]
    fn types_follow_the_notes_size_and_sign() {
        let arg = |spec| ArgOperand::parse(spec).unwrap();
        assert_eq!(note_type(arg("-4@%eax")), ValueType::I32);
        assert_eq!(note_type(arg("8@%rbx")), ValueType::U64);
        assert_eq!(note_type(arg("1@%al")), ValueType::U8);
        assert_eq!(note_type(arg("-2@$3")), ValueType::I16);
    }

    #[test]
    fn arguments_are_checked_against_the_sites_operands() {
        let operands = vec![
            Ok(arg("8@%rdi")),
            Ok(arg("-4@$7")),
            Err("`8@(%rax,%rdx,8)`: an indexed memory operand is not read".to_owned()),
            Ok(arg("8@-80(%rbx)")),
        ];
        fn arg(spec: &str) -> ArgOperand {
            ArgOperand::parse(spec).unwrap()
        }
        let spec = |index: u8, ty: Option<ValueType>| ArgSpec {
            ty,
            ..ArgSpec::new(index, None, ValueType::U64)
        };
        assert_eq!(check_arg(&spec(0, None), &operands), Ok(ValueType::U64));
        assert_eq!(check_arg(&spec(1, None), &operands), Ok(ValueType::I32));
        assert_eq!(
            check_arg(&spec(0, Some(ValueType::Str)), &operands),
            Ok(ValueType::Str)
        );
        let error = |arg: ArgSpec| check_arg(&arg, &operands).unwrap_err();
        assert!(error(spec(1, Some(ValueType::Str))).contains("is a constant"));
        assert!(error(spec(2, None)).contains("indexed"));
        assert!(error(spec(4, None)).contains("the probe has 4 argument(s)"));
        let deep = ArgSpec {
            offsets: Some(vec![0; MAX_CHAIN]),
            ..spec(3, None)
        };
        assert!(error(deep).contains("at most 4 offsets"));
        let counted = ArgSpec {
            len_arg: Some(LenArg::Arg(3)),
            ..spec(0, Some(ValueType::Str))
        };
        assert!(error(counted).contains("not in a register"));
    }
}
