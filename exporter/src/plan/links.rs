//! Which links `run` creates: the probed functions grouped into one uprobe_multi link per
//! (program, binary), return links first. Pure, so that `check` can show it and tests
//! need no kernel.

use std::{fmt, path::Path};

use spanprobe_common::programs;

use crate::plan::{capture::CapturePlan, probe::Probe};

/// Above this many probes, a command's probes are placed in every process by default, by
/// uprobe_multi links, rather than in its processes only ([`AttachMode::CommandTree`]): perf
/// events are removed one at a time, a kernel grace period each (~0.1 s here), where a
/// uprobe_multi link goes at once.
pub const COMMAND_TREE_PROBES: usize = 32;

/// One of the uprobe programs, in the order their links are attached.
///
/// Returns come first: a call that enters between the attaching of its entry and of its return
/// would push a frame that never pops, and show up as a false "a longjmp skipped it" span.
/// With every return in place before any entry, each call seen entering is also seen
/// returning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Program {
    /// The uretprobe: every function but entry-only ones.
    Return,
    /// The uprobe of a Go function's `RET`s, and of the Go runtime's `goexit0` and
    /// `recovery`: what ends Go calls, attached before their entries as returns are.
    GoReturn,
    /// The entry uprobe of functions that capture values only.
    Entry,
    /// The entry uprobe of functions that read memory their arguments point to (sleepable, so
    /// it may fault pages in) or keep a call record (memory, their stack).
    EntrySleepable,
    /// The entry uprobe of Go functions whose calls go on their goroutine's stack, and capture
    /// values only: programs apart, so that the other entry programs need not be verified with
    /// goroutines' stacks too.
    GoEntry,
    /// The entry uprobe of such Go functions that read memory or keep a call record.
    GoEntrySleepable,
}

impl Program {
    pub const ALL: [Program; 6] = [
        Program::Return,
        Program::GoReturn,
        Program::Entry,
        Program::EntrySleepable,
        Program::GoEntry,
        Program::GoEntrySleepable,
    ];

    /// Whether this program is attached to `function`, captured as `plan`.
    pub fn serves(self, function: &Probe, plan: &CapturePlan) -> bool {
        match self {
            Self::Return => function.kind.has_return(),
            Self::GoReturn => function.kind.is_go_helper(),
            Self::Entry => {
                is_entry(function) && !plan.on_goroutine_stack() && !plan.sleepable_entry()
            }
            Self::EntrySleepable => {
                is_entry(function) && !plan.on_goroutine_stack() && plan.sleepable_entry()
            }
            Self::GoEntry => {
                is_entry(function) && plan.on_goroutine_stack() && !plan.sleepable_entry()
            }
            Self::GoEntrySleepable => {
                is_entry(function) && plan.on_goroutine_stack() && plan.sleepable_entry()
            }
        }
    }

    /// The program's name in the eBPF object, for the way it is attached.
    pub fn name(self, mode: AttachMode) -> &'static str {
        let [multi, perf_event] = match self {
            Self::Return => programs::RETURN,
            Self::GoReturn => programs::GO,
            Self::Entry => programs::ENTRY,
            Self::EntrySleepable => programs::ENTRY_SLEEPABLE,
            Self::GoEntry => programs::GO_ENTRY,
            Self::GoEntrySleepable => programs::GO_ENTRY_SLEEPABLE,
        };
        match mode {
            AttachMode::Multi => multi,
            AttachMode::PerfEvent | AttachMode::CommandTree => perf_event,
        }
    }

    /// `uprobe` or `uretprobe`, as users know them.
    pub fn kind(self) -> &'static str {
        match self {
            Self::Return => "uretprobe",
            Self::GoReturn
            | Self::Entry
            | Self::EntrySleepable
            | Self::GoEntry
            | Self::GoEntrySleepable => "uprobe",
        }
    }
}

/// Whether `function`'s probe is served by an entry program: any but those that end Go calls.
fn is_entry(function: &Probe) -> bool {
    !function.kind.is_go_helper()
}

/// How uprobes are attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AttachMode {
    /// One uprobe_multi link per (program, binary, process), carrying each function's id as its
    /// cookie: attached and detached in one system call each, with CAP_BPF and CAP_PERFMON.
    /// Linux 6.6 and later.
    Multi,
    /// One perf event per function and program: every kernel with uprobes, but each is removed
    /// alone (a kernel grace period each, ~0.1 s here), and attaching needs CAP_SYS_ADMIN.
    PerfEvent,
    /// With a command, where tracefs is mounted: one tracefs uprobe per function and program,
    /// opened as a perf event on the command's first process and inherited by every task it
    /// starts, so that only the command's processes take the probes' traps. Each is removed
    /// alone, as perf events are. What `run` does with a command by default, for up to 32
    /// probes where the kernel has uprobe_multi links, and for any number where not.
    #[value(name = "command")]
    CommandTree,
}

impl AttachMode {
    /// Whether the probes are perf events, each attached and removed alone.
    pub fn attaches_perf_events(self) -> bool {
        matches!(self, Self::PerfEvent | Self::CommandTree)
    }
}

impl fmt::Display for AttachMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Multi => "uprobe_multi links",
            Self::PerfEvent => "perf-event uprobes",
            Self::CommandTree => "uprobes in the command's processes only",
        })
    }
}

/// One attachment of a program: a uprobe_multi link, or with [`AttachMode::PerfEvent`] one
/// perf event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link<'a> {
    pub program: Program,
    pub binary: &'a Path,
    /// The ids (indices in the function table, and cookies) of the functions attached to.
    pub functions: Vec<u32>,
}

/// The links that attach `functions` (whose indices are their ids, and those of their `plans`)
/// with `mode`, in the order they are to be attached: every return link before any entry link.
/// Only programs that serve some function appear.
pub fn links<'a>(functions: &'a [Probe], plans: &[CapturePlan], mode: AttachMode) -> Vec<Link<'a>> {
    let mut links: Vec<Link<'a>> = Vec::new();
    for program in Program::ALL {
        let first_of_program = links.len();
        for (id, (function, plan)) in functions.iter().zip(plans).enumerate() {
            if !program.serves(function, plan) {
                continue;
            }
            let id = u32::try_from(id).unwrap_or(u32::MAX);
            // A `pid:` target's probes fire in every process that runs the binary: the
            // kernel side keeps those of the process's tree (see `PROCESS_TREES`).
            let same_target = |link: &&mut Link<'_>| link.binary == function.binary.as_path();
            match links[first_of_program..].iter_mut().find(same_target) {
                Some(link) if mode == AttachMode::Multi => link.functions.push(id),
                _ => links.push(Link {
                    program,
                    binary: &function.binary,
                    functions: vec![id],
                }),
            }
        }
    }
    links
}

/// How many uprobes `links` place in the kernel: one per function and program.
pub fn probe_count(links: &[Link<'_>]) -> usize {
    links.iter().map(|link| link.functions.len()).sum()
}

#[cfg(test)]
mod tests {

    use spanprobe_config::{ArgSpec, FunctionSpec, Located, ValueType};

    use super::*;
    use crate::plan::{capture::plans, probe::ProbeKind};

    fn links_of(functions: &[Probe], mode: AttachMode) -> Vec<Link<'_>> {
        links(functions, &plans(functions, &Default::default()), mode)
    }

    /// Each link's program and functions.
    fn programs_of(functions: &[Probe]) -> Vec<(Program, Vec<u32>)> {
        links_of(functions, AttachMode::Multi)
            .iter()
            .map(|l| (l.program, l.functions.clone()))
            .collect()
    }

    fn function(binary: &str, pid: Option<u32>, return_probe: bool) -> Probe {
        Probe {
            processes: pid
                .and_then(std::num::NonZeroU32::new)
                .map(crate::plan::processes::ProcessTree::Pid),
            kind: if return_probe {
                ProbeKind::Function
            } else {
                ProbeKind::EntryOnly
            },
            ..Probe::new(binary, "f", 0x1000, FunctionSpec::default())
        }
    }

    #[test]
    fn one_link_per_program_and_binary_returns_first() {
        let functions = [
            function("/a", None, true),
            function("/b", None, true),
            function("/a", None, false),
            // A `pid:` target's functions go in the same links: the kernel keeps the tree.
            function("/a", Some(7), true),
            function("/a", None, true),
        ];
        let links = links_of(&functions, AttachMode::Multi);
        let summary: Vec<_> = links
            .iter()
            .map(|l| (l.program, l.binary.to_str().unwrap()))
            .collect();
        assert_eq!(
            summary,
            [
                (Program::Return, "/a"),
                (Program::Return, "/b"),
                (Program::Entry, "/a"),
                (Program::Entry, "/b"),
            ]
        );
        assert_eq!(
            links[0].functions,
            [0, 3, 4],
            "the entry-only function has no return"
        );
        assert_eq!(links[2].functions, [0, 2, 3, 4]);
        assert_eq!(probe_count(&links), 9);
    }

    #[test]
    fn perf_events_are_one_per_function_and_program_in_the_same_order() {
        let functions = [function("/a", None, true), function("/a", None, true)];
        let links = links_of(&functions, AttachMode::PerfEvent);
        let summary: Vec<_> = links
            .iter()
            .map(|l| (l.program, l.functions.clone()))
            .collect();
        assert_eq!(
            summary,
            [
                (Program::Return, vec![0]),
                (Program::Return, vec![1]),
                (Program::Entry, vec![0]),
                (Program::Entry, vec![1]),
            ]
        );
    }

    #[test]
    fn functions_reading_memory_get_the_sleepable_entry() {
        let mut reads = function("/a", None, true);
        reads.spec.args = vec![Located::unplaced(ArgSpec::new(0, None, ValueType::Str))];
        let functions = [reads, function("/a", None, true)];
        let programs = programs_of(&functions);
        assert_eq!(
            programs,
            [
                (Program::Return, vec![0, 1]),
                (Program::Entry, vec![1]),
                (Program::EntrySleepable, vec![0]),
            ]
        );
    }

    #[test]
    fn functions_capturing_their_stack_get_the_sleepable_entries() {
        let with_stack = |function| Probe {
            stack_frames: 8,
            ..function
        };
        let functions = [
            function("/a", None, true),
            with_stack(function("/a", None, true)),
            with_stack(function("/a", None, false)),
            with_stack(Probe {
                kind: ProbeKind::GoCall {
                    pair: 1,
                    at_stack_check: true,
                },
                go_version: Some((1, 19)),
                ..function("/a", None, false)
            }),
        ];
        assert_eq!(
            programs_of(&functions),
            [
                (Program::Return, vec![0, 1]),
                (Program::Entry, vec![0]),
                (Program::EntrySleepable, vec![1, 2]),
                (Program::GoEntrySleepable, vec![3]),
            ]
        );
    }

    #[test]
    fn calls_on_goroutine_stacks_get_the_go_entries() {
        let go = |kind, go_version| Probe {
            kind,
            go_version,
            ..function("/go", None, false)
        };
        let functions = [
            go(
                ProbeKind::GoCall {
                    pair: 1,
                    at_stack_check: true,
                },
                Some((1, 19)),
            ),
            go(ProbeKind::GoEntry, Some((1, 19))),
            // Before Go 1.17 no register holds the goroutine: the thread's stack serves.
            go(ProbeKind::GoEntry, Some((1, 16))),
            function("/go", None, false),
        ];
        let programs = programs_of(&functions);
        assert_eq!(
            programs,
            [(Program::Entry, vec![2, 3]), (Program::GoEntry, vec![0, 1])]
        );
    }
}
