//! spanprobe's configuration: which functions of which binaries become spans, what each span
//! captures, and where spans go. [`load`] reads, parses and validates a file in one step.

mod error;
mod load;
mod schema;
mod validate;
mod value_type;

pub use error::{ConfigError, Problem};
pub use load::{load, parse};
pub use schema::{
    ArgSpec, Config, ExporterConfig, FunctionSpec, OtlpConfig, OtlpProtocol, ProbeTarget,
    ReturnSpec, StdoutConfig,
};
pub use value_type::ValueType;

/// Argument registers a uprobe can read: RDI, RSI, RDX, RCX, R8, R9 (System V x86-64).
pub const MAX_ARG_INDEX: u8 = 5;
