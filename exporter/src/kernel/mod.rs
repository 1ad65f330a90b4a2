//! The kernel side: the only code that touches aya programs and maps ([`bpf`]), the kernel's
//! features ([`features`], [`btf`]), what aya lacks, made with raw `bpf(2)` and perf calls
//! ([`syscalls`]; [`ref_ctr_link`], [`tree_uprobe`], [`task_storage`]), `pid:` trees seeded
//! from /proc ([`process_tree`]), and what a single step costs on this machine
//! ([`trap_cost`]).

pub mod bpf;
pub mod btf;
pub mod features;
pub mod process_tree;
pub mod ref_ctr_link;
pub mod syscalls;
pub mod task_storage;
pub mod trap_cost;
pub mod tree_uprobe;
