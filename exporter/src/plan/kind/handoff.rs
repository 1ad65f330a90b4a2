//! Handoffs: a config's `handoffs` entries resolved to the probes that keep and take spans.
//! Each end is a function resolved as a traced one would be (its key read like an argument,
//! so that a `path` is resolved from DWARF and the probe is not moved past what writes it);
//! a function the config traces takes the role on its own probe, since the order two probes
//! at one address fire in is the kernel's, and the span it opens is the one handed off or
//! adopted. Any other becomes a [`ProbeKind::HandoffSite`], which makes no span.

use spanprobe_config::{FunctionSpec, HandoffAs, HandoffEnd, HandoffSpec, Located, UsdtSpec};

use crate::plan::{
    error::{ResolveError, ResolveErrorKind},
    probe::{HandoffRole, HandoffSide, Probe, ProbeKind},
    resolve::Resolved,
    target::Target,
};

use super::claims::Claims;

/// Resolves `handoffs`, the entries of the target at `field` (whose binary is `own`): each end
/// that a resolved function or USDT probe traces takes its role on that probe, and a handoff
/// site is added for each other. `open` opens an end's own `binary`, for its field.
pub fn resolve(
    own: &Target,
    handoffs: &[Located<HandoffSpec>],
    field: &str,
    open: impl Fn(&Located<String>, &str) -> Result<Target, ResolveError>,
    resolved: &mut Resolved,
    errors: &mut Vec<ResolveError>,
) {
    for (h, handoff) in handoffs.iter().enumerate() {
        let id = resolved.handoffs;
        resolved.handoffs += 1;
        let field = format!("{field}.handoffs[{h}]");
        for (end, side) in [
            (&handoff.from, HandoffSide::From),
            (&handoff.to, HandoffSide::To),
        ] {
            let end_field = format!("{field}.{}", side.name());
            let elsewhere = match &end.binary {
                Some(binary) => match open(binary, &end_field) {
                    Ok(target) => Some(target),
                    Err(error) => {
                        errors.push(error);
                        continue;
                    }
                },
                None => None,
            };
            let target = elsewhere.as_ref().unwrap_or(own);
            let error = |kind| ResolveError {
                position: end.position,
                field: end_field.clone(),
                kind,
            };
            if target.binary.elf.is_go {
                let binary = target.binary.path.clone();
                errors.push(error(ResolveErrorKind::GoHandoff { binary }));
                continue;
            }
            for mut site in sites(target, end, &end_field, resolved.functions.len(), errors) {
                let Some(key) = site.spec.args.pop() else {
                    continue;
                };
                if key.value_type().is_memory() {
                    let (symbol, ty) = (site.symbol.clone(), key.value_type());
                    errors.push(error(ResolveErrorKind::HandoffKeyType { symbol, ty }));
                    continue;
                }
                let role = HandoffRole {
                    end: side,
                    id,
                    field: field.clone(),
                    key: key.value,
                    link: handoff.adopt_as == HandoffAs::Link,
                    repeat: handoff.repeat,
                };
                let usdt = site.kind.is_usdt();
                match traced(&mut resolved.functions, &site) {
                    Some(traced) if traced.handoff.is_some() => {
                        let first = traced.handoff.as_ref().map(describe_role);
                        let symbol = site.symbol.clone();
                        let first = first.unwrap_or_default();
                        errors.push(error(ResolveErrorKind::HandoffTwice { symbol, first }));
                    }
                    Some(traced) => {
                        // The earlier of the two places: moving past a prologue only ever
                        // skips a prefix, and the shorter one keeps both configs' registers.
                        if site.entry_skip < traced.entry_skip {
                            traced.file_offset = site.file_offset;
                            traced.entry_skip = site.entry_skip;
                            traced.moved = site.moved.take();
                            traced.stays = site.stays.take();
                            traced.single_stepped = site.single_stepped.take();
                        }
                        traced.handoff = Some(role);
                    }
                    // A probe has no return at which to stop adopting.
                    None if usdt && side == HandoffSide::To => {
                        let probe = site.symbol.clone();
                        errors.push(error(ResolveErrorKind::HandoffToUntracedUsdt { probe }));
                    }
                    None => {
                        site.kind = ProbeKind::HandoffSite {
                            to: side == HandoffSide::To,
                            usdt,
                        };
                        site.spec.span_name = None;
                        site.handoff = Some(role);
                        resolved.functions.push(site);
                    }
                }
            }
        }
    }
}

/// The probes of `end` in `target` (at `field`), each with the key as its one argument,
/// resolved as a traced function's or USDT probe's would be: its `path` from DWARF, its type
/// from DWARF or the probe's note, and a function's probe not moved past what writes it.
fn sites(
    target: &Target,
    end: &Located<HandoffEnd>,
    field: &str,
    first_id: usize,
    errors: &mut Vec<ResolveError>,
) -> Vec<Probe> {
    let key = vec![Located {
        value: end.key(),
        position: end.position,
    }];
    if let Some(probe) = &end.probe {
        let spec = UsdtSpec {
            probe: probe.clone(),
            until: None,
            span_name: None,
            args: key,
            until_args: Vec::new(),
            attributes: Default::default(),
            stack: Default::default(),
            sample_rate: None,
            min_duration: None,
            event: Default::default(),
            when: None,
        };
        let spec = Located {
            value: spec,
            position: end.position,
        };
        // One entry: the pair numbers of its sites are never used.
        return super::usdt::probes(target, &[spec], field, 0, errors);
    }
    let spec = Located {
        value: FunctionSpec {
            symbol: end.symbol.clone(),
            args: key,
            ..FunctionSpec::default()
        },
        position: end.position,
    };
    let mut notes = Vec::new();
    super::function::probes(
        target,
        &spec,
        field,
        first_id,
        &mut Claims::default(),
        errors,
        &mut notes,
    )
}

/// The traced function or USDT site among `functions` that `site` probes: the same function
/// of the same file, or the same site (a USDT probe that opens a span or is one).
fn traced<'a>(functions: &'a mut [Probe], site: &Probe) -> Option<&'a mut Probe> {
    functions.iter_mut().find(|function| {
        function.binary == site.binary
            && function.address.is_some()
            && function.address == site.address
            && matches!(
                function.kind,
                ProbeKind::Function
                    | ProbeKind::EntryOnly
                    | ProbeKind::UsdtStart { .. }
                    | ProbeKind::UsdtPoint { .. }
            )
    })
}

/// A role as `check` and errors name it: "the `from` of probes[0].handoffs[1]".
pub fn describe_role(role: &HandoffRole) -> String {
    format!("the `{}` of {}", role.end.name(), role.field)
}

/// What `check` adds to the line of a probe with a handoff role: where the key is read, and
/// what the probe does with it.
pub fn clause(function: &Probe) -> String {
    let Some(role) = &function.handoff else {
        return String::new();
    };
    let key = &role.key;
    let mut at = format!("arg{}", key.index);
    if function.kind.reads_operands() {
        at = format!(
            "argument {} ({})",
            key.index,
            function.arg_location(key.index)
        );
    }
    if let Some(path) = &key.path {
        at.push_str(path);
    }
    let what = match (role.end, function.kind.makes_spans(), role.link) {
        (HandoffSide::From, true, _) => "keeps its span".to_owned(),
        (HandoffSide::From, false, _) => "keeps the span open on its thread".to_owned(),
        (HandoffSide::To, true, false) => "its span adopts the kept span as parent".to_owned(),
        (HandoffSide::To, true, true) => "its span links to the kept span".to_owned(),
        (HandoffSide::To, false, link) => format!(
            "the spans its thread opens until it returns {} the kept span",
            if link { "link to" } else { "adopt as parent" }
        ),
    };
    let repeat = if role.repeat && role.end == HandoffSide::To {
        ", kept for more"
    } else {
        ""
    };
    format!(
        "; {}: {what}, under the key in {at} ({}){repeat}",
        describe_role(role),
        key.value_type()
    )
}

/// The line `check` shows for a handoff site, which makes no span.
pub fn line(function: &Probe) -> String {
    let address = function
        .address
        .map_or("-".to_owned(), |a| format!("{a:#x}"));
    format!(
        "  (no span) {} at address {address}, file offset {:#x}{}",
        function.symbol,
        function.file_offset,
        clause(function)
    )
}
