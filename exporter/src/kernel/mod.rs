//! The kernel side: the only code that touches aya programs and maps ([`bpf`]), the kernel's
//! features ([`features`], [`btf`]), the raw `bpf(2)` and perf calls aya lacks
//! ([`ref_ctr_link`], [`task_storage`], [`tree_uprobe`]), `pid:` trees seeded from /proc
//! ([`process_tree`]), and what a single step costs on this machine ([`trap_cost`]).

pub mod bpf;
pub mod btf;
pub mod features;
pub mod process_tree;
pub mod ref_ctr_link;
pub mod task_storage;
pub mod trap_cost;
pub mod tree_uprobe;
