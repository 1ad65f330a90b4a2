//! The config file's shape, as serde types. Unknown keys are errors; values that later checks
//! may complain about remember their position ([`Located`]).

use std::{collections::BTreeMap, time::Duration};

use serde::{Deserialize, Deserializer};

use crate::{
    Condition, LenArg, Located, Names, ProcessFile, ReadAt, StackSpec, ValueType, WhenCondition,
};

/// A whole config file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `service.name` of the exported resources.
    pub service_name: Option<String>,
    /// Extra resource attributes for every traced process.
    #[serde(default)]
    pub resource: BTreeMap<String, String>,
    /// Where spans go; printed to the terminal when absent.
    #[serde(default)]
    pub exporter: ExporterConfig,
    #[serde(default)]
    pub batch: BatchConfig,
    #[serde(default)]
    pub limits: Limits,
    /// Where to serve spanprobe's own metrics (Prometheus text), e.g. `127.0.0.1:9464`.
    #[serde(default, rename = "metrics", deserialize_with = "metrics_listen")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Binaries and the functions to probe in each.
    pub probes: Vec<Located<ProbeTarget>>,
    /// The config file's directory, which relative binary paths are resolved against.
    #[serde(skip)]
    pub base_dir: std::path::PathBuf,
    /// Set from the OpenTelemetry environment variables only.
    #[serde(skip)]
    pub sampler: Sampler,
}

/// Span destination.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "ExporterSection")]
pub enum ExporterConfig {
    /// One line per span on standard output.
    Stdout(StdoutConfig),
    /// OTLP to a collector or Jaeger.
    Otlp(OtlpConfig),
}

impl Default for ExporterConfig {
    fn default() -> Self {
        Self::Stdout(StdoutConfig::default())
    }
}

/// The `exporter` section as written: one key naming the destination.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExporterSection {
    stdout: Option<StdoutConfig>,
    otlp: Option<OtlpConfig>,
}

impl TryFrom<ExporterSection> for ExporterConfig {
    type Error = &'static str;

    fn try_from(section: ExporterSection) -> Result<Self, Self::Error> {
        match section {
            ExporterSection {
                stdout: Some(stdout),
                otlp: None,
            } => Ok(Self::Stdout(stdout)),
            ExporterSection {
                stdout: None,
                otlp: Some(otlp),
            } => Ok(Self::Otlp(otlp)),
            ExporterSection {
                stdout: None,
                otlp: None,
            } => Err("name one exporter: `stdout` or `otlp`"),
            ExporterSection { .. } => Err("name one exporter, not both `stdout` and `otlp`"),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdoutConfig {
    #[serde(default)]
    pub format: StdoutFormat,
    /// Where the lines go, relative to the config file; standard error when absent, so that
    /// spans never mix with a traced command's output.
    pub file: Option<Located<std::path::PathBuf>>,
}

/// How the stdout exporter writes spans.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StdoutFormat {
    /// One human-readable line per span.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    /// Base URL, as in `OTEL_EXPORTER_OTLP_ENDPOINT`; the protocol's default when absent.
    pub endpoint: Option<Located<String>>,
    /// The variable `endpoint` was taken from, when the environment overrode the file: a
    /// problem with it is the variable's, not the file's.
    #[serde(skip)]
    pub endpoint_variable: Option<&'static str>,
    /// A full URL for traces, as in `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as is).
    #[serde(skip)]
    pub traces_endpoint: Option<String>,
    #[serde(default)]
    pub protocol: OtlpProtocol,
    /// Sent with every export request (e.g. authorization tokens).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Per-request timeout.
    #[serde(default, deserialize_with = "optional_duration")]
    pub timeout: Option<Duration>,
    #[serde(default)]
    pub compression: Compression,
    /// How an `https://` endpoint's certificate is checked; system roots when absent.
    pub tls: Option<Located<TlsConfig>>,
}

impl OtlpConfig {
    /// The URL traces are sent to, before HTTP's `/v1/traces` is added to a base endpoint: the
    /// traces endpoint, else the endpoint, else the protocol's default. Its scheme says
    /// whether TLS is used.
    pub fn endpoint_in_use(&self) -> &str {
        self.traces_endpoint
            .as_deref()
            .or(self
                .endpoint
                .as_ref()
                .map(|endpoint| endpoint.value.as_str()))
            .unwrap_or_else(|| self.protocol.default_endpoint())
    }

    /// The environment variable that gave the endpoint in use, if one did.
    pub fn endpoint_in_use_variable(&self) -> Option<&'static str> {
        if self.traces_endpoint.is_some() {
            Some(crate::otel_env::OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
        } else {
            self.endpoint.as_ref().and(self.endpoint_variable)
        }
    }

    /// Whether the endpoint in use is `https://`.
    pub fn uses_tls(&self) -> bool {
        self.endpoint_in_use().starts_with("https://")
    }
}

/// TLS for an `https://` endpoint. The system's trusted roots are always used; `ca_file` adds
/// to them (e.g. a private CA or a collector's self-signed certificate).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with one or more CA certificates, relative to the config file.
    pub ca_file: Option<Located<std::path::PathBuf>>,
    /// Accept any certificate: encryption without authentication, for testing only.
    #[serde(default)]
    pub insecure_skip_verify: Located<bool>,
}

/// OTLP transport, named as in `OTEL_EXPORTER_OTLP_PROTOCOL`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum OtlpProtocol {
    #[default]
    #[serde(rename = "grpc")]
    Grpc,
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
}

impl OtlpProtocol {
    /// The endpoint the OpenTelemetry spec defaults to for this protocol.
    pub fn default_endpoint(self) -> &'static str {
        match self {
            Self::Grpc => "http://localhost:4317",
            Self::HttpProtobuf => "http://localhost:4318",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    None,
    Gzip,
}

/// Export batching; the queue bounds memory when the backend is slow or down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Spans waiting for export at most; newer spans are dropped (and counted) beyond it.
    pub queue_size: usize,
    /// Spans per export request at most.
    pub batch_size: usize,
    /// How long a span may wait for its batch to fill.
    #[serde(deserialize_with = "duration")]
    pub delay: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            queue_size: 65_536,
            batch_size: 512,
            delay: Duration::from_millis(200),
        }
    }
}

/// Bounds on the kernel side's per-thread state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Probed calls tracked per thread; deeper calls get no span and are counted.
    pub max_depth: u32,
    /// User stack frames captured by `stack: true`.
    pub stack_frames: u16,
    /// Bytes of the ring buffer completed calls go through (a power of two, at least 4096).
    pub ring_buffer_size: u32,
}

/// The most user stack frames `stack: true` can capture.
pub const MAX_STACK_FRAMES: u16 = spanprobe_common::MAX_STACK_FRAMES as u16;
const _: () = assert!(spanprobe_common::MAX_STACK_FRAMES <= u16::MAX as usize);

/// The most nested probed calls a thread can have tracked.
pub const MAX_DEPTH: u32 = spanprobe_common::MAX_DEPTH as u32;

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_depth: MAX_DEPTH,
            stack_frames: 32,
            ring_buffer_size: spanprobe_common::DEFAULT_RING_BYTES,
        }
    }
}

/// One binary (executable or shared library) and the functions to probe in it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeTarget {
    /// A path (relative paths are against the config file's directory) or a bare shared
    /// library name such as `libc.so.6`, found the way the dynamic loader would. A target
    /// gives this or `executable`.
    pub binary: Option<Located<String>>,
    /// The processes running this executable, however their mount namespaces name it: the file
    /// each runs is probed (once per distinct file), wherever it is.
    pub executable: Option<Located<ProcessFile>>,
    /// With `executable`: instead of the executable, a shared library its processes have
    /// loaded (`libc.so.6`, `libssl.so*`, or its path in their namespace).
    pub library: Option<Located<ProcessFile>>,
    /// Only this process is traced.
    pub pid: Option<Located<u32>>,
    /// Only the processes of the containers whose id starts so (hex digits, as `docker ps`
    /// shows ids) are traced, and those they fork.
    pub container: Option<Located<String>>,
    #[serde(default)]
    pub functions: Vec<Located<FunctionSpec>>,
    /// Statically defined probes (USDT) of the binary that make spans.
    #[serde(default)]
    pub usdt: Vec<Located<UsdtSpec>>,
    /// Spans that cross threads: work handed in on one thread (a task, a request) and run on
    /// another joins the trace of the span that handed it in.
    #[serde(default)]
    pub handoffs: Vec<Located<HandoffSpec>>,
    /// Go: a goroutine started while a span is open on its creator joins that span's trace,
    /// as its child (at any depth of goroutines). On unless `false`.
    #[serde(default = "yes")]
    pub follow_goroutines: bool,
}

/// The file a target probes, as its config names it.
#[derive(Debug, Clone, Copy)]
pub enum TargetFile<'a> {
    Binary(&'a Located<String>),
    Executable(&'a Located<ProcessFile>),
}

impl ProbeTarget {
    /// Its `binary` or its `executable`; `None` when it gives neither or both, which
    /// validation refuses.
    pub fn file(&self) -> Option<TargetFile<'_>> {
        match (&self.binary, &self.executable) {
            (Some(binary), None) => Some(TargetFile::Binary(binary)),
            (None, Some(executable)) => Some(TargetFile::Executable(executable)),
            _ => None,
        }
    }
}

fn yes() -> bool {
    true
}

/// A handoff: where a key (a task pointer, a request id) is handed in, and where it comes out,
/// on any thread of the same process.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandoffSpec {
    /// Where the key is handed in: the span open on that thread (the function's own, when it is
    /// traced) is kept under the key.
    pub from: Located<HandoffEnd>,
    /// Where the key comes out: the span this function opens (when traced), or every span its
    /// thread opens until it returns, joins the kept span's trace as its child.
    pub to: Located<HandoffEnd>,
    /// `parent` (the default), or `link`: the span at `to` starts a trace of its own, with a
    /// link to the kept span (a batch that serves many requests).
    #[serde(default, rename = "as")]
    pub adopt_as: HandoffAs,
    /// The key stays after it is taken (a callback run many times); otherwise the first `to`
    /// consumes it.
    #[serde(default)]
    pub repeat: bool,
}

/// One end of a handoff: a function and where its key is, as an argument would be named.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandoffEnd {
    /// The binary the function is in, as a target's `binary`; the target's own when absent
    /// (a library's `submit` hands off to the program's callback).
    pub binary: Option<Located<String>>,
    /// The function, by its symbol (mangled or demangled).
    pub symbol: Option<Located<String>>,
    /// Or a USDT probe, `provider:name`, every site of it.
    pub probe: Option<Located<String>>,
    /// The argument holding the key, or leading to it with `path`; 0 when absent.
    #[serde(default)]
    pub arg: u8,
    /// A chain of members from the argument to the key, resolved from DWARF: `->task`.
    pub path: Option<String>,
    /// The key's type, a number or `ptr` (the default): how much of the register is the key.
    /// A `path`'s is DWARF's, a USDT argument's its note's.
    #[serde(rename = "type")]
    pub ty: Option<ValueType>,
}

impl HandoffEnd {
    /// The key, as an argument spec the resolver reads like any other.
    pub fn key(&self) -> ArgSpec {
        let inferred = self.path.is_some() || self.probe.is_some();
        ArgSpec {
            ty: self.ty.or((!inferred).then_some(ValueType::Ptr)),
            path: self.path.clone(),
            ..ArgSpec::new(self.arg, Some("handoff.key"), ValueType::Ptr)
        }
    }

    /// The symbol or probe it names, and where.
    pub fn place(&self) -> Option<&Located<String>> {
        self.symbol.as_ref().or(self.probe.as_ref())
    }
}

/// What a handed-off span becomes for the span that takes it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HandoffAs {
    #[default]
    Parent,
    Link,
}

/// `keep`: which of a function's calls are kept, besides `min_duration`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Keep {
    #[default]
    All,
    /// The calls that fail: their return meets `return.error_when`, a Go function returns a
    /// non-nil error, or the call never returned.
    Errors,
}

/// A USDT probe (`provider:name`) that opens a span, closed at `until` or sent at once.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsdtSpec {
    /// `provider:name`, as `spanprobe symbols --usdt` lists them; every site of the name.
    pub probe: Located<String>,
    /// The probe(s) that end the span, matched per thread like a return (`[p:commit, p:abort]`:
    /// whichever fires first); without, the span has no duration and is sent when `probe` fires.
    pub until: Option<Located<Names>>,
    /// Span name; `probe` when absent. `{name}` is replaced by the captured argument `name`.
    pub span_name: Option<String>,
    /// The probe's arguments by position; `type` may be left out, as the note's size and sign
    /// say it.
    #[serde(default)]
    pub args: Vec<Located<ArgSpec>>,
    /// Arguments of the `until` probe, read when the span ends and added to it (numbers:
    /// what a function's `return` would be).
    #[serde(default)]
    pub until_args: Vec<Located<ArgSpec>>,
    #[serde(default)]
    pub attributes: BTreeMap<String, AttributeValue>,
    #[serde(default)]
    pub stack: Located<StackSpec>,
    pub sample_rate: Option<Located<f64>>,
    #[serde(default, deserialize_with = "optional_located_duration")]
    pub min_duration: Option<Located<Duration>>,
    /// Without `until`: an event (named `span_name`, with the arguments as its attributes) of
    /// the innermost span open on the thread, rather than a span of its own; a span when none
    /// is open.
    #[serde(default)]
    pub event: Located<bool>,
    /// As a function's `when`, on the probe's arguments.
    pub when: Option<Located<BTreeMap<String, WhenCondition>>>,
}

impl UsdtSpec {
    /// What its start probe captures, as a function's spec: the stages after resolution treat
    /// a probe site like a function's entry.
    pub fn capture(&self) -> FunctionSpec {
        FunctionSpec {
            span_name: Some(
                self.span_name
                    .clone()
                    .unwrap_or_else(|| self.probe.value.clone()),
            ),
            args: self.args.clone(),
            attributes: self.attributes.clone(),
            stack: self.stack.clone(),
            sample_rate: self.sample_rate.clone(),
            min_duration: self.min_duration.clone(),
            when: self.when.clone(),
            ..FunctionSpec::default()
        }
    }
}

/// One function, or with a glob several, to turn into spans.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionSpec {
    /// A symbol name, mangled or demangled (C++, Rust), or a glob over demangled names.
    pub symbol: Option<Located<String>>,
    /// With a glob `symbol`: names (or globs) it leaves out.
    pub exclude: Option<Located<Names>>,
    /// A file offset, for stripped binaries.
    pub offset: Option<Located<u64>>,
    /// A virtual address in the ELF file.
    pub address: Option<Located<u64>>,
    /// Span name; the (demangled) symbol when absent.
    pub span_name: Option<String>,
    #[serde(default)]
    pub args: Vec<Located<ArgSpec>>,
    /// Captures the return value; spans end at return either way.
    #[serde(rename = "return")]
    pub return_value: Option<Located<ReturnSpec>>,
    /// Static attributes added to every span of this function.
    #[serde(default)]
    pub attributes: BTreeMap<String, AttributeValue>,
    /// Capture the user stack at entry, and how it is unwound.
    #[serde(default)]
    pub stack: Located<StackSpec>,
    /// Fraction of traces (decided at the root) to keep, 0 to 1.
    pub sample_rate: Option<Located<f64>>,
    /// Drop spans shorter than this, e.g. `50us`, with the spans under them.
    #[serde(default, deserialize_with = "optional_located_duration")]
    pub min_duration: Option<Located<Duration>>,
    /// `errors`: drop the calls that do not fail, with the spans under them.
    #[serde(default)]
    pub keep: Located<Keep>,
    /// Where the caller passes its W3C trace context, which the span then joins.
    pub trace_context: Option<Located<TraceContextSpec>>,
    /// Conditions on captured arguments, by name, all of which a call must meet to be traced
    /// (`{ tenant: "== 42", path: "prefix /api/" }`), decided in the kernel at entry; a call
    /// that does not is not exported, nor are the calls nested in it.
    pub when: Option<Located<BTreeMap<String, WhenCondition>>>,
}

/// A static attribute's value.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum AttributeValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
}

/// `trace_context`: the argument(s) that carry the caller's W3C trace context.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceContextSpec {
    pub format: TraceContextFormat,
    /// With `traceparent`: the index of the argument pointing to the string.
    pub arg: Option<u8>,
    /// With `ids`: the index of the argument pointing to the 16-byte trace id.
    pub trace_id_arg: Option<u8>,
    /// With `ids`: the index of the argument pointing to the 8-byte parent span id.
    pub span_id_arg: Option<u8>,
}

/// How the trace context is passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceContextFormat {
    /// A NUL-terminated `traceparent` header value: `00-<trace id>-<parent id>-<flags>`.
    Traceparent,
    /// The binary ids, big-endian, each behind a pointer.
    Ids,
}

/// How traces are sampled, from `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`
/// (OpenTelemetry's default: `parentbased_always_on`). A function's `sample_rate` is its own
/// root ratio.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampler {
    /// The share of traces kept that start at a probed call with no trace context.
    pub root_ratio: f64,
    /// Whether a call with a trace context follows its parent's sampled flag (`parentbased_*`)
    /// rather than the ratio, decided on its trace id.
    pub parent_based: bool,
}

impl Default for Sampler {
    fn default() -> Self {
        Sampler {
            root_ratio: 1.0,
            parent_based: true,
        }
    }
}

/// An argument captured at entry, or at return.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArgSpec {
    /// 0-based position in the System V calling convention: 0..=5 are registers, 6 and up
    /// are read from the caller's stack.
    pub index: u8,
    /// Attribute key; `arg<index>` when absent.
    pub name: Option<String>,
    /// Required, except with a `path`, where DWARF says it: resolution fills it in, so every
    /// argument of a resolved function has one (see [`ArgSpec::value_type`]).
    #[serde(rename = "type")]
    pub ty: Option<ValueType>,
    /// For `str`: bytes read at most (default 64, at most 512).
    pub max_len: Option<u16>,
    /// For `bytes`: bytes read (at most 512); with `len_arg`, the most read (default 64).
    pub len: Option<u16>,
    /// For `str` and `bytes`: what counts the bytes: another argument (a Rust `&str`'s length,
    /// a buffer's size), or at return the return value or the word behind an argument; at
    /// most `max_len`/`len` of them are kept.
    pub len_arg: Option<LenArg>,
    /// When the value is read: at entry, or at return for what the call writes (an output
    /// buffer), from the argument's value at entry.
    #[serde(default)]
    pub at: ReadAt,
    /// A chain of pointers from the argument to the value, as byte offsets: each but the last
    /// is added and dereferenced, the last added to give the value's address (`[8, 0]`: the
    /// pointer at offset 8 of what the argument points to, and the value it points to).
    pub offsets: Option<Vec<i32>>,
    /// The same chain by member names, resolved from the binary's DWARF: `->user->name`,
    /// `->tags[2]`, `->hdr.len`.
    pub path: Option<String>,
    /// Set by resolution for a `path` to an enum whose type DWARF gave: its enumerators'
    /// names by value, shown instead of the number.
    #[serde(skip)]
    pub enumerators: Option<std::sync::Arc<BTreeMap<i64, String>>>,
}

impl ArgSpec {
    /// Argument `index` read as `ty`, named `name` (`arg<index>` when `None`), with nothing else
    /// asked of it.
    pub fn new(index: u8, name: Option<&str>, ty: ValueType) -> Self {
        ArgSpec {
            index,
            name: name.map(Into::into),
            ty: Some(ty),
            max_len: None,
            len: None,
            len_arg: None,
            at: ReadAt::Entry,
            offsets: None,
            path: None,
            enumerators: None,
        }
    }

    pub fn attribute_name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("arg{}", self.index))
    }

    /// The type the value is read as. Validation requires `type` unless a `path` is given,
    /// and resolution infers that one from DWARF, so a resolved argument always has its own;
    /// `ptr` (the register as it is) only stands in before then.
    pub fn value_type(&self) -> ValueType {
        self.ty.unwrap_or(ValueType::Ptr)
    }

    /// Bytes of memory read for this argument (0 for register values).
    pub fn memory_len(&self) -> u16 {
        self.value_type().memory_len(self.max_len, self.len)
    }

    /// Bytes this argument takes in the call record's data. Memory read at return with its
    /// count in an argument keeps that argument's value there from entry, a word.
    pub fn data_size(&self) -> usize {
        let size = self
            .value_type()
            .data_size(self.memory_len(), self.len_arg.is_some());
        if self.at == ReadAt::Return && self.len_arg.and_then(LenArg::arg).is_some() {
            size.max(8)
        } else {
            size
        }
    }
}

/// The return value, captured at return.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReturnSpec {
    /// Attribute key; `return_value` when absent.
    pub name: Option<String>,
    /// Required, except with a `path`, as for an argument.
    #[serde(rename = "type")]
    pub ty: Option<ValueType>,
    /// Marks the span as an error when the value meets this comparison, e.g. `< 0`.
    pub error_when: Option<Condition>,
    /// A chain of pointers from the return value to what is reported, as [`ArgSpec::offsets`],
    /// followed when the function returns.
    pub offsets: Option<Vec<i32>>,
    /// The same chain by member names, as [`ArgSpec::path`]: `->code`, or `.code` for a
    /// struct returned in memory.
    pub path: Option<String>,
    /// As [`ArgSpec::enumerators`].
    #[serde(skip)]
    pub enumerators: Option<std::sync::Arc<BTreeMap<i64, String>>>,
}

impl ReturnSpec {
    /// The return value read as `ty`, named `name` (`return_value` when `None`).
    pub fn new(name: Option<&str>, ty: ValueType) -> Self {
        ReturnSpec {
            name: name.map(Into::into),
            ty: Some(ty),
            error_when: None,
            offsets: None,
            path: None,
            enumerators: None,
        }
    }

    pub fn attribute_name(&self) -> &str {
        self.name.as_deref().unwrap_or("return_value")
    }

    /// The type the value is read as, as [`ArgSpec::value_type`].
    pub fn value_type(&self) -> ValueType {
        self.ty.unwrap_or(ValueType::Ptr)
    }
}

/// `metrics: { listen: ADDRESS }`.
fn metrics_listen<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<std::net::SocketAddr>, D::Error> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Section {
        listen: String,
    }
    let section = Section::deserialize(deserializer)?;
    section.listen.parse().map(Some).map_err(|_| {
        serde::de::Error::custom(format!(
            "`{}` is not an address such as 127.0.0.1:9464",
            section.listen
        ))
    })
}

fn parse_duration<E: serde::de::Error>(text: &str) -> Result<Duration, E> {
    humantime::parse_duration(text).map_err(|e| {
        E::custom(format!(
            "`{text}` is not a duration ({e}); write e.g. `50us`, `10ms`, `5s`"
        ))
    })
}

fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    parse_duration(&String::deserialize(deserializer)?)
}

fn optional_duration<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    duration(deserializer).map(Some)
}

fn optional_located_duration<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Located<Duration>>, D::Error> {
    let text = Located::<String>::deserialize(deserializer)?;
    Ok(Some(Located {
        value: parse_duration(&text.value)?,
        position: text.position,
    }))
}
