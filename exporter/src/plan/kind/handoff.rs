//! Handoffs: a config's `handoffs` entries resolved to the probes that keep and take spans.
//! Each end is a function resolved as a traced one would be (its key read like an argument,
//! so that a `path` is resolved from DWARF and the probe is not moved past what writes it);
//! a function the config traces takes the role on its own probe, since the order two probes
//! at one address fire in is the kernel's, and the span it opens is the one handed off or
//! adopted. Any other becomes a [`ProbeKind::HandoffSite`], which makes no span.

use spanprobe_config::{FunctionSpec, HandoffAs, HandoffSpec, Located};

use crate::plan::{
    error::{ResolveError, ResolveErrorKind},
    probe::{HandoffRole, HandoffSide, Probe, ProbeKind},
    resolve::Resolved,
    target::Target,
};

use super::claims::Claims;

/// Resolves `handoffs`, the entries of the target at `field` (whose binary is `own`): each end
/// that a resolved function traces takes its role on that function's probe, and a handoff
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
            if target.binary.elf.is_go {
                errors.push(ResolveError {
                    position: end.position,
                    field: end_field,
                    kind: ResolveErrorKind::GoHandoff {
                        binary: target.binary.path.clone(),
                    },
                });
                continue;
            }
            let spec = Located {
                value: FunctionSpec {
                    symbol: Some(end.symbol.clone()),
                    args: vec![Located {
                        value: end.key(),
                        position: end.position,
                    }],
                    ..FunctionSpec::default()
                },
                position: end.position,
            };
            let mut notes = Vec::new();
            let sites = super::function::probes(
                target,
                &spec,
                &end_field,
                resolved.functions.len(),
                &mut Claims::default(),
                errors,
                &mut notes,
            );
            for mut site in sites {
                let Some(key) = site.spec.args.pop() else {
                    continue;
                };
                if key.value_type().is_memory() {
                    errors.push(ResolveError {
                        position: end.position,
                        field: end_field.clone(),
                        kind: ResolveErrorKind::HandoffKeyType {
                            symbol: site.symbol.clone(),
                            ty: key.value_type(),
                        },
                    });
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
                match traced(&mut resolved.functions, &site) {
                    Some(traced) => {
                        if let Some(first) = &traced.handoff {
                            errors.push(ResolveError {
                                position: end.position,
                                field: end_field.clone(),
                                kind: ResolveErrorKind::HandoffTwice {
                                    symbol: site.symbol.clone(),
                                    first: describe_role(first),
                                },
                            });
                            continue;
                        }
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
                    None => {
                        site.kind = ProbeKind::HandoffSite {
                            to: side == HandoffSide::To,
                        };
                        site.handoff = Some(role);
                        resolved.functions.push(site);
                    }
                }
            }
        }
    }
}

/// The traced function among `functions` that `site` probes: same file, same function.
fn traced<'a>(functions: &'a mut [Probe], site: &Probe) -> Option<&'a mut Probe> {
    functions.iter_mut().find(|function| {
        function.binary == site.binary
            && function.address.is_some()
            && function.address == site.address
            && matches!(function.kind, ProbeKind::Function | ProbeKind::EntryOnly)
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
