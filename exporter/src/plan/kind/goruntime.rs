//! Functions of the Go runtime that serve the spans of probed Go calls, added to a Go target
//! that has some: where goroutines end (`runtime.goexit0`, which `runtime.Goexit` reaches with
//! calls still open) and where a recovered panic resumes (`runtime.recovery`, which skips the
//! calls the panic unwound). Neither sends a span of its own.

use spanprobe_config::{ArgSpec, FunctionSpec, Located, ValueType};

use crate::{
    plan::{
        error::ResolveError,
        probe::{Probe, ProbeKind},
        target::Target,
    },
    x86_64::{ArgOperand, Operand, Register},
};

/// The probes that serve the Go calls of `binary`: those of its runtime's functions that it
/// has (a binary without them still gets its spans, ended later; see each).
pub fn helpers(target: &Target, errors: &mut Vec<ResolveError>) -> Vec<Probe> {
    let mut probes: Vec<Probe> = goexit(target, errors).into_iter().collect();
    probes.extend(recovery(target, errors));
    probes.extend(goroutine_starts(target, errors));
    probes
}

/// `runtime.newproc1(fn, callergp, callerpc)`, where goroutines are created (on the system
/// stack, `callergp` in RBX), and `runtime.runqput(pp, gp, next)`, which queues the new one
/// (`gp` in RBX) right after: together they tell the kernel side under which span each
/// goroutine was started, which its calls then join. Both or neither; from Go 1.17 (the
/// register ABI), unless the target turns it off (`follow_goroutines: false`).
fn goroutine_starts(target: &Target, errors: &mut Vec<ResolveError>) -> Vec<Probe> {
    if !target.follow_goroutines || target.binary.elf.go_version < Some((1, 17)) {
        return Vec::new();
    }
    let start = runtime_probe(target, "runtime.newproc1", ProbeKind::GoStart, errors);
    let queue = runtime_probe(target, "runtime.runqput", ProbeKind::GoQueue, errors);
    match (start, queue) {
        (Some(start), Some(queue)) => vec![start, queue],
        _ => Vec::new(),
    }
}

/// `runtime.goexit0(gp)`, where every goroutine ends: the calls `runtime.Goexit` leaves open
/// end there. Without it, they end with their process.
fn goexit(target: &Target, errors: &mut Vec<ResolveError>) -> Option<Probe> {
    runtime_probe(target, "runtime.goexit0", ProbeKind::GoExit, errors)
}

/// `runtime.recovery(gp)`, where a goroutine resumes after a recovered panic, in the function
/// that deferred the recovering call, at the stack pointer `gp.sigcode0` holds: the calls
/// below it were unwound. Read so from Go 1.17 (the register ABI puts `gp` in RAX) to 1.21
/// (Go 1.22 keeps it elsewhere), with DWARF to say where `sigcode0` is. Without it, such calls
/// end when a call at or above them starts or returns.
fn recovery(target: &Target, errors: &mut Vec<ResolveError>) -> Option<Probe> {
    let version = target.binary.elf.go_version?;
    if !((1, 17)..=(1, 21)).contains(&version) {
        return None;
    }
    let sigcode0 = target.go_functions(errors)?.sigcode0_offset?;
    let mut probe = runtime_probe(target, "runtime.recovery", ProbeKind::GoRecovery, errors)?;
    // Both read through gp (RAX): where execution resumes, and the top of gp's stack, to
    // measure it as the frames are measured.
    let word = |name: &str, offset: u64| {
        Some(Located::unplaced(ArgSpec {
            offsets: Some(vec![i32::try_from(offset).ok()?]),
            ..ArgSpec::new(0, Some(name), ValueType::U64)
        }))
    };
    probe.spec.args = [word("resume_sp", sigcode0), word("stack_top", 8)]
        .into_iter()
        .collect::<Option<Vec<_>>>()?;
    let rax = ArgOperand {
        size: 8,
        signed: false,
        operand: Operand::Register(Register::Rax),
    };
    probe.operands = vec![rax];
    Some(probe)
}

/// A probe of kind `kind` at the Go runtime's function `name` in `binary`, if it has it.
fn runtime_probe(
    target: &Target,
    name: &str,
    kind: ProbeKind,
    errors: &mut Vec<ResolveError>,
) -> Option<Probe> {
    let symbol = *target.symbols(errors)?.find(name).first()?;
    let spec = FunctionSpec {
        symbol: Some(Located::unplaced(name.to_owned())),
        ..FunctionSpec::default()
    };
    Some(target.probe_at(
        kind,
        symbol.name.clone(),
        Some(symbol.address),
        symbol.file_offset?,
        Some(symbol.size as u64),
        &spec,
    ))
}

/// `check`'s line for a runtime helper: what it closes.
pub(super) fn line(function: &Probe) -> String {
    let what = match function.kind {
        ProbeKind::GoExit => {
            "where goroutines end, closing the spans they leave open (runtime.Goexit)"
        }
        ProbeKind::GoStart => {
            "where goroutines are created: one started inside a span joins its trace"
        }
        ProbeKind::GoQueue => "where a goroutine just created is queued: it learns its parent",
        _ => "where recovered panics resume, closing the spans they unwound",
    };
    format!(
        "  {} at file offset {:#x}: {what}",
        function.symbol, function.file_offset
    )
}

#[cfg(test)]
mod tests {
    use spanprobe_common::{ENDS_GOROUTINE, RESUMES_AFTER_PANIC};
    use spanprobe_config::FunctionSpec;

    use super::*;

    #[test]
    fn helpers_send_no_span_and_say_what_they_close() {
        let helper = |kind, symbol| Probe {
            kind,
            ..Probe::new("/bin/app", symbol, 0x3b720, FunctionSpec::default())
        };
        let exit = helper(ProbeKind::GoExit, "runtime.goexit0");
        assert_eq!(
            line(&exit),
            "  runtime.goexit0 at file offset 0x3b720: where goroutines end, closing the spans \
             they leave open (runtime.Goexit)"
        );
        assert_eq!(exit.kind.kernel_flags(Some((1, 19))), (ENDS_GOROUTINE, 0));
        let recovery = helper(ProbeKind::GoRecovery, "runtime.recovery");
        assert!(
            line(&recovery)
                .ends_with("where recovered panics resume, closing the spans they unwound")
        );
        assert_eq!(
            recovery.kind.kernel_flags(Some((1, 19))),
            (RESUMES_AFTER_PANIC, 0)
        );
        assert!(!exit.kind.has_return() && !recovery.kind.has_return());
    }
}
