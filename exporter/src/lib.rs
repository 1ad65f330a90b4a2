//! spanprobe turns functions of unmodified binaries into OpenTelemetry spans: a uprobe at each
//! function's entry and a uretprobe at its return feed completed calls through a BPF ring
//! buffer to this crate, which builds spans and exports them.
//!
//! The modules follow the data: [`resolve`] (config → attach points, with [`binary`],
//! [`elf`] and [`symbols`]), [`capture`] (what each probe reads), [`links`] (which
//! links attach them), [`bpf`] (load and attach), [`reader`] (ring buffer), [`decode`], [`span`] (events → spans), [`resource`],
//! [`export`]; [`run`] wires them.

pub mod binary;
pub mod bpf;
pub mod capture;
pub mod child;
pub mod command;
pub mod decode;
pub mod dwarf;
pub mod elf;
pub mod export;
pub mod ids;
pub mod kernel;
pub mod kernel_btf;
pub mod ktime;
pub mod links;
pub mod load;
pub mod losses;
pub mod metrics;
pub mod pipeline;
pub mod reader;
pub mod resolve;
pub mod resource;
pub mod run;
pub mod span;
pub mod stacks;
pub mod summary;
pub mod symbols;
pub mod sysv;
#[cfg(test)]
mod test_span;
pub mod trace_buffer;
pub mod uncalled;
