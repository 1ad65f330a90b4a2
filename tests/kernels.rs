//! The kernel matrix: the same scenarios on the host's kernel and, under QEMU, on each kernel
//! of `support::vm::matrix()` (Debian 12's 6.1 and its backported 6.12, prepared by
//! `scripts/kernels.sh`). Each machine runs all the cases of a test in one boot.
//!
//! One test proves the harness itself: each guest runs the right kernel, with BTF and uprobes,
//! runs host programs from their host paths with their shared libraries, runs spanprobe,
//! reaches an in-process receiver over the network, and its scripts' output, exit status and
//! time limit come back exactly.
//!
//! The other traces real programs, the same scenarios on every kernel, each checked exactly at
//! the receiver (names, values, counts, parent links) and in spanprobe's log (every span
//! exported; how it attached):
//!
//! - `calls.c`'s outer(x) -> middle -> inner(x + 1): arguments, return values, where DWARF
//!   places each function, and the attach mode the kernel allows (uprobe_multi links from
//!   Linux 6.6; before, perf-event uprobes, with the warning saying why);
//! - a `str` argument (the sleepable entry program);
//! - calls on three threads, each a tree of its own on its own thread;
//! - `run -- sh -c 'calls ...; calls fork'`: the shell's children and a fork without exec
//!   (the fork-following tracepoint program);
//! - USDT start/until pairs: `usdt.c`'s, guarded by semaphores, which only uprobe_multi links
//!   set, so traced from 6.6 and refused with the reason before loading anything on 6.1 (and
//!   with `--attach perf-event` everywhere); a pair without semaphore, traced everywhere;
//! - a Go program: arguments under the register ABI, spans closed at `RET`s, goroutines;
//! - `stack: true`: the frames of the callers, named and placed; and again unwound in userspace
//!   from a copy of the stack (`unwind: dwarf`);
//! - a W3C traceparent argument, and binary ids, joining the caller's trace;
//! - members read along DWARF paths (`->user->name`), and their faults;
//! - output buffers read at return (by the return program), counted by the return value and
//!   by the `size_t` behind an argument;
//! - a file started later: an `executable:` target's process found as it starts;
//! - a sidecar: `run` without a command, attached to a process already running, ended by
//!   SIGINT;
//! - a `pid:` target followed through the processes it forks;
//! - the chain again with `--attach perf-event`.
//!
//! # Adding a scenario
//!
//! A scenario is a [`Case`](vm::Case): a script made for the receiver started for it on each
//! machine, and checks on what the script printed and the receiver got. The script must work
//! under dash (host) and busybox's ash (guests); it finds spanprobe in `$SPANPROBE`, and the
//! receiver through [`vm::grpc_endpoint`] (`http://$OTLP_HOST:PORT`, `$OTLP_HOST` being
//! 127.0.0.1 on the host and 10.0.2.2 in a guest). Its config names no endpoint: spanprobe
//! takes `OTEL_EXPORTER_OTLP_ENDPOINT`, over gRPC unless `OTEL_EXPORTER_OTLP_PROTOCOL` says
//! `http/protobuf` (then with [`vm::http_endpoint`]). Everything it runs is built on the host
//! and named with [`Script::file`](vm::Script::file), which places it in the guest at the same
//! path, with the shared libraries ldd lists for it. By the time `spanprobe run -- COMMAND`
//! exits, every span is at the receiver. [`traced`](traced::traced) writes such a script, and
//! makes its case:
//!
//! ```ignore
//! let dir = Workdir::new();
//! let calls = dir.calls("calls", &[]);
//! let config = dir.write_named("nesting", &functions_config(&calls, chain_functions()));
//! // OTEL_EXPORTER_OTLP_ENDPOINT=http://$OTLP_HOST:PORT "$SPANPROBE" run \
//! //     --config CONFIG -- CALLS chain-wait
//! let nesting = traced("nesting", &config, &calls)
//!     .command(format!("{} chain-wait", calls.display()))
//!     .case(|_machine, output, receiver| {
//!         output.assert_success();
//!         assert_eq!(named(&receiver.spans(), "middle").len(), 1);
//!     });
//! vm::run_matrix(&[nesting /* , the other cases */]).await;
//! ```
//!
//! Put the cases of a test in one `run_matrix` call (one boot per kernel: a boot costs
//! seconds), give a slow case a longer [`Script::time_limit`](vm::Script::time_limit) (the
//! verifier runs about 6 times slower under TCG), and narrow the matrix while iterating with
//! `SPANPROBE_KERNELS=6.1.0`. A failing check does not stop the others: `run_matrix` reports
//! every case on every machine that failed. What a kernel cannot do, spanprobe must refuse up
//! front with the reason: the case checks the refusal there (see
//! [`Machine::has_uprobe_multi`](vm::Machine::has_uprobe_multi)).
//!
//! # Layout
//!
//! This file is the test crate; its modules are in `tests/kernels/`: `harness` (the first
//! test's cases); a module per kind of scenario, `processes`, `arguments`, `usdt`, `go`,
//! `stack`, `trace_context`, `handoffs` and `sidecar`; and what they share, `traced` (a scenario's script
//! and case), `chain` (calls.c's chain of spans) and `checks`.

mod support;

// Cargo builds this file as the crate root, where `mod` alone would look for the modules next
// to it, in tests/: they are in tests/kernels/.
#[path = "kernels/arguments.rs"]
mod arguments;
#[path = "kernels/chain.rs"]
mod chain;
#[path = "kernels/checks.rs"]
mod checks;
#[path = "kernels/go.rs"]
mod go;
#[path = "kernels/handoffs.rs"]
mod handoffs;
#[path = "kernels/harness.rs"]
mod harness;
#[path = "kernels/processes.rs"]
mod processes;
#[path = "kernels/sidecar.rs"]
mod sidecar;
#[path = "kernels/stack.rs"]
mod stack;
#[path = "kernels/trace_context.rs"]
mod trace_context;
#[path = "kernels/traced.rs"]
mod traced;
#[path = "kernels/usdt.rs"]
mod usdt;

use arguments::{member_path, moved_probes, output_buffers, str_argument, when_conditions};
use go::{behind_pointers, goroutine_parents, goroutines};
use handoffs::handoffs;
use processes::{forked_children, keep_rules, nesting, threads};
use sidecar::{pid_tree, sidecar, started_later};
use stack::{stack, unwound_stack};
use support::{scenario::Workdir, vm};
use trace_context::trace_context;
use usdt::{usdt_with_semaphores, usdt_without_semaphores};

#[tokio::test(flavor = "multi_thread")]
async fn every_machine_runs_host_programs_and_spanprobe_and_reaches_a_receiver() {
    support::needs_root!();
    let dir = Workdir::new();
    vm::run_matrix(&harness::cases(&dir).await).await;
}

/// Issue #29's scenarios, each checked exactly on every machine, in one boot per kernel.
#[tokio::test(flavor = "multi_thread")]
async fn real_scenarios_trace_the_same_on_every_kernel() {
    support::needs_root!();
    let dir = Workdir::new();
    let calls = dir.calls("calls", &[]);
    let mut cases = vec![
        nesting(&dir, &calls, false),
        str_argument(&dir),
        threads(&dir, &calls),
        keep_rules(&dir, &calls),
        forked_children(&dir, &calls),
    ];
    cases.extend(usdt_with_semaphores(&dir));
    cases.extend([
        usdt_without_semaphores(&dir),
        goroutines(&dir),
        goroutine_parents(&dir),
        behind_pointers(&dir),
        stack(&dir, &calls),
        unwound_stack(&dir, &calls),
        trace_context(&dir),
        handoffs(&dir),
        member_path(&dir),
        when_conditions(&dir),
        moved_probes(&dir),
        output_buffers(&dir),
        sidecar(&dir),
        started_later(&dir),
        pid_tree(&dir),
        nesting(&dir, &calls, true),
    ]);
    vm::run_matrix(&cases).await;
}
