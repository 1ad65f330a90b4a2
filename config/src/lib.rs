//! spanprobe's configuration: which functions of which binaries become spans, what each span
//! captures, and where spans go. [`load`] reads, parses and validates a file in one step and
//! reports every problem with its position and field path.

mod condition;
mod env;
mod error;
mod load;
mod located;
mod names;
mod otel_env;
mod process_file;
mod read_at;
mod recover;
mod schema;
mod span_name;
mod stack;
mod tree;
mod validate;
mod value_type;
mod when;
mod yaml;

pub use condition::{Comparison, Condition};
pub use error::{ConfigError, Problem};
pub use load::{load, load_with, parse};
pub use located::{Located, Position};
pub use names::Names;
pub use process_file::ProcessFile;
pub use read_at::{LenArg, ReadAt};
pub use schema::{
    ArgSpec, AttributeValue, BatchConfig, Compression, Config, ExporterConfig, FunctionSpec,
    HandoffAs, HandoffEnd, HandoffSpec, Keep, Limits, MAX_DEPTH, OtlpConfig, OtlpProtocol,
    ProbeTarget, ReturnSpec, Sampler, StdoutConfig, StdoutFormat, TargetFile, TlsConfig,
    TraceContextFormat, TraceContextSpec, UsdtSpec,
};
pub use span_name::{NamePart, name_parts};
pub use stack::{DEFAULT_STACK_WINDOW, MIN_STACK_WINDOW, StackOptions, StackSpec, Unwind};
pub use validate::{MAX_ARG_INDEX, MAX_CAPTURED_ARGS, MEMORY_BUDGET, stack_area};
pub use value_type::{
    BaseEncoding, DEFAULT_STR_LEN, Decoded, MAX_MEMORY_LEN, ValueType, ValueTypeError,
};
pub use when::{ArgTest, MAX_CONDITION_TEXT, TextOp, TextTest, WhenCondition, WhenOp};
