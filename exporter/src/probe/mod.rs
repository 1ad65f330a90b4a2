//! From config to attached probes: where each function is ([`binary`], [`elf`], [`symbols`],
//! [`dwarf`], [`resolve`], [`load`]), what its probes capture ([`capture`], [`sysv`]), which
//! links attach them ([`links`]), and the only code that touches aya programs and maps
//! ([`bpf`], with the kernel's features in [`kernel`] and [`kernel_btf`]).

pub mod binary;
pub mod bpf;
pub mod capture;
pub mod debug_file;
pub mod dwarf;
pub mod elf;
pub mod gopclntab;
pub mod kernel;
pub mod kernel_btf;
pub mod kind;
pub mod links;
pub mod load;
pub mod process_tree;
pub mod ref_ctr_link;
pub mod resolve;
pub mod symbols;
pub mod task_storage;
pub mod trap_cost;
pub mod usdt;
