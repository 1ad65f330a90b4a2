//! The config file's shape, as serde types. Unknown keys are errors.

use std::path::PathBuf;

use serde::Deserialize;

use crate::ValueType;

/// A whole config file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `service.name` of the exported resource.
    pub service_name: Option<String>,
    /// Where spans go; printed to the terminal when absent.
    #[serde(default)]
    pub exporter: ExporterConfig,
    /// Binaries and the functions to probe in each.
    pub probes: Vec<ProbeTarget>,
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
pub struct StdoutConfig {}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    /// Base URL, as in `OTEL_EXPORTER_OTLP_ENDPOINT`; the protocol's default when absent.
    pub endpoint: Option<String>,
    #[serde(default)]
    pub protocol: OtlpProtocol,
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

/// One binary (executable or shared library) and the functions to probe in it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeTarget {
    /// Relative paths are resolved against the config file's directory by [`crate::load`].
    pub binary: PathBuf,
    pub functions: Vec<FunctionSpec>,
}

/// One function to turn into spans.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionSpec {
    pub symbol: String,
    /// Span name; the symbol when absent.
    pub span_name: Option<String>,
    #[serde(default)]
    pub args: Vec<ArgSpec>,
    /// Captures the return value; spans end at return either way.
    #[serde(rename = "return")]
    pub return_value: Option<ReturnSpec>,
}

impl FunctionSpec {
    pub fn span_name(&self) -> &str {
        self.span_name.as_deref().unwrap_or(&self.symbol)
    }
}

/// An argument captured at entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArgSpec {
    /// 0-based position in the System V calling convention.
    pub index: u8,
    /// Attribute key; `arg<index>` when absent.
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub ty: ValueType,
}

impl ArgSpec {
    pub fn attribute_name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("arg{}", self.index))
    }
}

/// The return value, captured at return.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReturnSpec {
    /// Attribute key; `return_value` when absent.
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub ty: ValueType,
}

impl ReturnSpec {
    pub fn attribute_name(&self) -> &str {
        self.name.as_deref().unwrap_or("return_value")
    }
}
