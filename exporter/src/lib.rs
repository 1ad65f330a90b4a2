//! spanprobe turns functions of unmodified binaries into OpenTelemetry spans: a uprobe at each
//! function's entry and a uretprobe at its return feed completed calls through a BPF ring
//! buffer to this crate, which builds spans and exports them.
//!
//! The folders follow the data (docs/architecture.md), each using only those below it:
//! [`x86_64`] (calling conventions, operands), [`binary`] (a file's ELF, symbols, DWARF, USDT
//! notes and Go tables, parsed once), [`plan`] (config → probes → capture plans → links,
//! pure), [`kernel`] (aya programs and maps, the links attached), [`events`] (the ring
//! buffer's records, read back into attributes), [`spans`] (records → spans), [`export`]
//! (spans → OTLP or lines), [`command`] (`run` wires them; `check`, `init`, `symbols`); every
//! stage counts into [`metrics`], the one ledger, and names what it lost by a [`loss::Loss`];
//! [`suggest`] ranks the names offered when one matches nothing.

pub mod binary;
pub mod command;
pub mod events;
pub mod export;
pub mod kernel;
pub mod loss;
pub mod metrics;
pub mod plan;
pub mod spans;
pub mod suggest;
#[cfg(test)]
mod test_span;
pub mod x86_64;
