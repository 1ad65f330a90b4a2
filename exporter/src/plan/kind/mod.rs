//! The kinds of probe: how a probed place's span starts and ends, and where its arguments are
//! read. Each kind resolves its config entries to [`Probe`]s and says what `check`
//! shows of them (its own file here); the capture plan and the link plan ask the kind
//! ([`ProbeKind`], with its kernel flags), not the config, so a new kind (USDT start/end pairs)
//! is a file here, a variant of [`ProbeKind`], and its config list in the schema.

pub mod claims;
pub mod function;
pub mod gocall;
pub mod goruntime;
pub mod handoff;
pub mod usdt;

use crate::plan::probe::{Probe, ProbeKind};

/// The line `check` shows for a site that sends no span of its own (a Go `RET`, a Go runtime
/// helper), `step_cost` what a single step costs here; `None` for a probe that opens spans.
pub fn site_line(function: &Probe, step_cost: &str) -> Option<String> {
    match function.kind {
        ProbeKind::GoReturn { error, .. } => Some(gocall::return_line(function, error, step_cost)),
        ProbeKind::GoExit | ProbeKind::GoRecovery | ProbeKind::GoStart | ProbeKind::GoQueue => {
            Some(goruntime::line(function))
        }
        ProbeKind::HandoffSite { .. } => Some(handoff::line(function)),
        _ => None,
    }
}

/// What `check` says of `function`'s kind after its place (`, USDT site: ...`), among
/// `functions` (a Go call counts its `RET` sites there); empty for a plain function.
pub fn clause(function: &Probe, functions: &[Probe]) -> String {
    let own = match function.kind {
        ProbeKind::Function | ProbeKind::EntryOnly => function::clause(function.kind),
        ProbeKind::GoEntry | ProbeKind::GoCall { .. } => gocall::clause(function, functions),
        ProbeKind::UsdtStart { .. } | ProbeKind::UsdtEnd { .. } | ProbeKind::UsdtPoint { .. } => {
            usdt::clause(function.kind)
        }
        ProbeKind::GoReturn { .. }
        | ProbeKind::GoExit
        | ProbeKind::GoRecovery
        | ProbeKind::GoStart
        | ProbeKind::GoQueue
        | ProbeKind::HandoffSite { .. } => String::new(),
    };
    own + &handoff::clause(function)
}

/// Where `function`'s probe sits past its entry, and why (`+4 past `endbr64`, onto `push
/// %rbp`, which the kernel emulates`), for `check`; `None` at the entry.
pub fn skipped(function: &Probe) -> Option<String> {
    let skip = function.entry_skip;
    if skip == 0 {
        return None;
    }
    Some(match (&function.kind, &function.moved) {
        (ProbeKind::GoCall { .. }, _) => format!("+{skip}, the stack check's branch"),
        (_, Some(site)) => format!(
            "+{skip} past `{}`, onto `{}`, which the kernel emulates",
            site.moved_past.join("; "),
            site.onto
        ),
        (_, None) => format!("+{skip}"),
    })
}
