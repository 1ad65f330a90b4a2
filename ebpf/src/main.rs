//! A few entry programs and one return program serve every probed function: the BPF cookie of
//! each attachment says which function fired. An entry program pushes a frame on the thread's
//! call stack; the return program pops it and emits one `CallEvent` per completed call.
//!
//! This file holds the programs' entry points only; their bodies are cut by concern: `entry`
//! and `returns` (a call's two ends), `go` (Go's `RET` sites and goroutines), `processes`
//! (which are traced), `stacks` (call stacks and their frames), `args` and `context` (what a
//! call reads), `conditions` (`when`), `handoffs` (spans kept for another thread), `records`
//! and `at_return` (memory kept from entry to return), `windows` (stack copies for userspace to unwind), `emit` (the ring buffer), `maps` (what
//! both sides share).
#![no_std]
#![no_main]
// `atomic_or`, for the pid bitmap shared by every CPU.
#![feature(core_intrinsics)]
#![expect(internal_features, reason = "core_intrinsics: see `try_fork`")]

use aya_ebpf::{
    macros::{raw_tracepoint, uprobe, uretprobe},
    programs::{ProbeContext, RawTracePointContext, RetProbeContext},
};

use crate::{
    args::Faults,
    entry::try_entry,
    go::try_go,
    processes::{try_exec, try_fork, try_thread_exit},
    returns::try_return,
    stacks::Stacks,
};

mod args;
mod at_return;
mod conditions;
mod context;
mod emit;
mod entry;
mod go;
mod handoffs;
mod maps;
mod processes;
mod records;
mod returns;
mod stacks;
mod task_storage;
mod windows;

// Every program comes twice: in a `uprobe.multi` section, attached through one uprobe_multi link
// per binary (detached in one go, and needing no CAP_SYS_ADMIN), and in a plain `uprobe`
// section, the perf-event fallback for kernels without such links. Userspace loads only the
// variant it attaches; the bodies are shared.
macro_rules! both_variants {
    ($(#[$doc:meta])* $kind:ident($($flag:ident),*) $multi:ident, $perf:ident,
     $context:ty => $run:expr) => {
        $(#[$doc])*
        #[$kind(multi $(, $flag)*)]
        pub fn $multi(ctx: $context) -> u32 {
            let _ = ($run)(&ctx);
            0
        }

        #[$kind($($flag),*)]
        pub fn $perf(ctx: $context) -> u32 {
            let _ = ($run)(&ctx);
            0
        }
    };
}

both_variants! {
    uprobe() spanprobe_entry, spanprobe_entry_perf,
    ProbeContext => |ctx| try_entry(ctx, Faults::Fail, Stacks::Thread)
}

both_variants! {
    /// The entry program of functions that read memory their arguments point to, or keep a
    /// call record: sleepable, so that it may fault in pages the traced program has not touched
    /// yet (a string literal on a cold page, say). Only these fill call records (memory,
    /// stacks), so that `spanprobe_entry` loads without verifying that code, most of an entry
    /// program's.
    uprobe(sleepable) spanprobe_entry_sleepable, spanprobe_entry_sleepable_perf,
    ProbeContext => |ctx| try_entry(ctx, Faults::Allowed, Stacks::Thread)
}

both_variants! {
    /// The entry programs of Go calls, whose frames go on their goroutine's stack: programs of
    /// their own, because a program that may use either kind of stack has the rest of its code
    /// verified once per kind (the two maps' values are different pointers to the verifier),
    /// which doubled the start-up of configurations with no Go at all.
    uprobe() spanprobe_go_entry, spanprobe_go_entry_perf,
    ProbeContext => |ctx| try_entry(ctx, Faults::Fail, Stacks::Goroutine)
}

both_variants! {
    uprobe(sleepable) spanprobe_go_entry_sleepable, spanprobe_go_entry_sleepable_perf,
    ProbeContext => |ctx| try_entry(ctx, Faults::Allowed, Stacks::Goroutine)
}

both_variants! {
    /// The uprobe of a Go binary's other sites: its functions' `RET`s, and the runtime's
    /// `goexit0` and `recovery`. A program of its own, so that the entry program's
    /// verification, most of spanprobe's start-up, carries none of it.
    uprobe() spanprobe_go, spanprobe_go_perf, ProbeContext => try_go
}

both_variants! {
    uretprobe() spanprobe_return, spanprobe_return_perf, RetProbeContext => try_return
}

/// A thread is exiting: its calls in progress will never return. Report them and free its
/// stack, so that BPF-side state stays bounded however threads end.
#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn spanprobe_thread_exit(_ctx: RawTracePointContext) -> i32 {
    let _ = try_thread_exit();
    0
}

/// A process forked: when it is traced, so is the child, from its first instruction (the
/// tracepoint fires before the child is first woken). A new thread's tgid is its process's,
/// already traced.
#[raw_tracepoint(tracepoint = "sched_process_fork")]
pub fn spanprobe_fork(ctx: RawTracePointContext) -> i32 {
    let _ = try_fork(&ctx);
    0
}

/// A process started a program: userspace hears of it, to probe the file if it is one an
/// `executable:` target names. Loaded only for such targets.
#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn spanprobe_exec(_ctx: RawTracePointContext) -> i32 {
    try_exec();
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

// bpf_probe_read_user and friends are GPL-only helpers.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
