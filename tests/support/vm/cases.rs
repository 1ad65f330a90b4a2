//! Cases of the matrix: a script per machine, exporting to a receiver of its own, and the
//! checks on what came of it, all run by [`run_matrix`].

use std::{any::Any, panic::AssertUnwindSafe};

use super::{Machine, Script, ScriptOutput};
use crate::support::receiver::Receiver;

/// Makes a case's script for the receiver started for it.
type MakeScript = Box<dyn Fn(&Receiver) -> Script + Send + Sync>;

/// Checks what came of a case's script on a machine: its output, and what its receiver got.
type Check = Box<dyn Fn(&Machine, &ScriptOutput, &Receiver) + Send + Sync>;

/// One case of the matrix: a script, given the receiver started for it on each machine, and
/// the checks on what came of it there.
pub struct Case {
    script: MakeScript,
    check: Check,
}

impl Case {
    /// `script` makes the script that exports to a receiver; `check` asserts (panics) on what
    /// the script printed and the receiver got, by the time the script ended.
    pub fn new(
        script: impl Fn(&Receiver) -> Script + Send + Sync + 'static,
        check: impl Fn(&Machine, &ScriptOutput, &Receiver) + Send + Sync + 'static,
    ) -> Case {
        Case {
            script: Box::new(script),
            check: Box::new(check),
        }
    }
}

/// Runs `cases` on every machine ([`Machine::all`]): on each, a receiver per case, the
/// scripts in one batch, then each case's check. A check that fails does not stop the others:
/// the failures of the whole matrix are reported together at the end, by case and machine.
pub async fn run_matrix(cases: &[Case]) {
    let mut failures = Vec::new();
    let mut checks = 0;
    for machine in Machine::all() {
        let mut receivers = Vec::with_capacity(cases.len());
        for _ in cases {
            receivers.push(Receiver::start().await);
        }
        let scripts: Vec<Script> = cases
            .iter()
            .zip(&receivers)
            .map(|(case, receiver)| (case.script)(receiver))
            .collect();
        let outputs = match machine.try_run(&scripts).await {
            Ok(outputs) => outputs,
            Err(error) => {
                // Every case failed there; the other machines still run.
                checks += cases.len();
                failures.push(format!("every case on {machine}: {error}"));
                Vec::new()
            }
        };
        for ((case, output), receiver) in cases.iter().zip(&outputs).zip(&receivers) {
            checks += 1;
            let checked = std::panic::catch_unwind(AssertUnwindSafe(|| {
                (case.check)(&machine, output, receiver)
            }));
            if let Err(panic) = checked {
                let message = panic_message(&*panic);
                failures.push(format!("{:?} on {machine}: {message}", output.name));
            }
        }
        for receiver in receivers {
            receiver.stop().await;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checks} checks failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// What a failed check said: `panic!` and `assert!` give a `String`, or a `&str` when there is
/// nothing to format.
fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(a panic without a message)")
}
