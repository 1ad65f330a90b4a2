//! One line per span on the terminal, for trying spanprobe without a backend.

use std::{
    fmt::Display,
    fs::File,
    io::Write as _,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use bytes::Bytes;
use opentelemetry::{
    Key, KeyValue, Value,
    trace::{Event, SpanId, Status},
};
use opentelemetry_sdk::{Resource, trace::SpanData};
use serde::{
    Serialize, Serializer,
    ser::{SerializeMap as _, SerializeSeq as _},
};
use spanprobe_config::StdoutFormat;

use super::QueuedSpan;

/// The file spans were to be written to cannot be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot write spans to {}", path.display())]
pub struct OutputError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

const SERVICE_NAME: Key = Key::from_static_str("service.name");
const PROCESS_PID: Key = Key::from_static_str("process.pid");

/// Writes each span as one line: text (`<start> <service> <name> <duration> pid=<pid>
/// trace=<id> span=<id> parent=<id|-> <key>=<value>...`) or a JSON object.
pub struct LineExporter {
    format: StdoutFormat,
    out: Mutex<Box<dyn std::io::Write + Send>>,
    /// The span file, until [`Self::start`] empties it.
    pending: Option<PendingFile>,
}

/// A span file opened at start-up and emptied only once tracing starts: a run that fails to
/// start (an attach refused, a port taken) leaves the previous capture as it was.
#[derive(Debug)]
struct PendingFile {
    path: PathBuf,
    file: File,
    /// Whether the file did not exist before: a failed start removes it again.
    created: bool,
}

impl LineExporter {
    /// Lines to `file`, or to standard error: the traced command's standard output stays its
    /// own. The file is opened now, so that a path that cannot be written is refused before
    /// anything is attached, but emptied only by [`Self::start`].
    pub fn to(format: StdoutFormat, file: Option<&Path>) -> Result<Self, OutputError> {
        let Some(path) = file else {
            return Ok(Self::new(format, Box::new(std::io::stderr())));
        };
        let error = |source| OutputError {
            path: path.to_owned(),
            source,
        };
        let created = !path.exists();
        let file = File::options()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(error)?;
        let mut exporter = Self::new(format, Box::new(file.try_clone().map_err(error)?));
        exporter.pending = Some(PendingFile {
            path: path.to_owned(),
            file,
            created,
        });
        Ok(exporter)
    }

    pub fn new(format: StdoutFormat, out: Box<dyn std::io::Write + Send>) -> Self {
        Self {
            format,
            out: Mutex::new(out),
            pending: None,
        }
    }

    /// Tracing has started: the span file, if any, is emptied of the previous capture. Only
    /// a regular file has one: `/dev/null`, a pipe or a terminal cannot be truncated.
    pub fn start(&mut self) -> Result<(), OutputError> {
        let Some(pending) = self.pending.take() else {
            return Ok(());
        };
        let error = |source| OutputError {
            path: pending.path.clone(),
            source,
        };
        if pending.file.metadata().map_err(error)?.is_file() {
            pending.file.set_len(0).map_err(error)?;
        }
        Ok(())
    }

    /// The lines for `spans`, each with its process's `service.name` and `process.pid`,
    /// written into one buffer.
    pub fn encode(&self, spans: &[QueuedSpan]) -> Bytes {
        let mut text = Vec::new();
        let mut last: Option<(&Arc<Resource>, Process)> = None;
        for queued in spans {
            let process = match &last {
                Some((resource, process)) if Arc::ptr_eq(resource, &queued.resource) => process,
                // Spans come in runs of one process: its resource is read once per run.
                _ => {
                    &last
                        .insert((&queued.resource, Process::of(&queued.resource)))
                        .1
                }
            };
            match self.format {
                StdoutFormat::Text => write_text(&mut text, process, &queued.span),
                StdoutFormat::Json => write_json(&mut text, process, &queued.span),
            }
            text.push(b'\n');
        }
        text.into()
    }

    /// Writes what [`Self::encode`] made, whole: requests in flight at once do not mix
    /// their lines.
    pub fn write(&self, lines: &[u8]) -> std::io::Result<()> {
        // A writer that panicked mid-line leaves nothing worth protecting.
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        out.write_all(lines)?;
        out.flush()
    }
}

impl Drop for LineExporter {
    /// A span file created for a run that never started is removed: nothing was captured.
    fn drop(&mut self) {
        if let Some(pending) = self.pending.take()
            && pending.created
        {
            let _ = std::fs::remove_file(&pending.path);
        }
    }
}

impl std::fmt::Debug for LineExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineExporter")
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

/// What a line says of the process a span came from, from its resource (as OTLP carries it).
#[derive(Debug, Default)]
struct Process {
    service: String,
    pid: Option<i64>,
}

impl Process {
    fn of(resource: &Resource) -> Self {
        let pid = match resource.get(&PROCESS_PID) {
            Some(Value::I64(pid)) => Some(pid),
            _ => None,
        };
        Self {
            service: resource
                .get(&SERVICE_NAME)
                .map(|v| v.to_string())
                .unwrap_or_default(),
            pid,
        }
    }
}

fn duration(span: &SpanData) -> Duration {
    span.end_time
        .duration_since(span.start_time)
        .unwrap_or(Duration::ZERO)
}

/// Appends one span as a line of text (without the newline).
fn write_text(line: &mut Vec<u8>, process: &Process, span: &SpanData) {
    // Writing to a Vec cannot fail.
    let _ = write!(
        line,
        "{start} {service} {name} {duration:?} ",
        start = humantime::format_rfc3339_micros(span.start_time),
        service = process.service,
        name = span.name,
        duration = duration(span),
    );
    if let Some(pid) = process.pid {
        let _ = write!(line, "pid={pid} ");
    }
    let _ = write!(
        line,
        "trace={trace} span={span_id} parent=",
        trace = span.span_context.trace_id(),
        span_id = span.span_context.span_id(),
    );
    let _ = if span.parent_span_id == SpanId::INVALID {
        write!(line, "-")
    } else {
        write!(line, "{}", span.parent_span_id)
    };
    if let Status::Error { description } = &span.status {
        let _ = write!(line, " status=ERROR({:?})", description.as_ref());
    }
    write_text_attributes(line, &span.attributes);
    // Each event after the span's attributes: its name, when it happened, and its own.
    for event in span.events.iter() {
        let offset = event
            .timestamp
            .duration_since(span.start_time)
            .unwrap_or(Duration::ZERO);
        let _ = write!(line, " event={}(+{offset:?}", event.name);
        write_text_attributes(line, &event.attributes);
        line.push(b')');
    }
}

fn write_text_attributes(line: &mut Vec<u8>, attributes: &[KeyValue]) {
    for kv in attributes {
        let _ = match &kv.value {
            Value::String(s) => write!(line, " {}={:?}", kv.key, s.as_str()),
            value => write!(line, " {}={value}", kv.key),
        };
    }
}

/// Appends one span as a JSON object on one line (without the newline), serialized as it
/// is read: no `serde_json::Value` tree per span.
fn write_json(line: &mut Vec<u8>, process: &Process, span: &SpanData) {
    // Serializing strings, numbers and `Display` values into a Vec cannot fail.
    let _ = serde_json::to_writer(line, &JsonSpan { process, span });
}

struct JsonSpan<'a> {
    process: &'a Process,
    span: &'a SpanData,
}

impl Serialize for JsonSpan<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let span = self.span;
        let parent = (span.parent_span_id != SpanId::INVALID).then_some(span.parent_span_id);
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry(
            "start",
            &Displayed(humantime::format_rfc3339_nanos(span.start_time)),
        )?;
        map.serialize_entry(
            "duration_ns",
            &u64::try_from(duration(span).as_nanos()).unwrap_or(u64::MAX),
        )?;
        map.serialize_entry("service", &self.process.service)?;
        if let Some(pid) = self.process.pid {
            map.serialize_entry("pid", &pid)?;
        }
        map.serialize_entry("name", span.name.as_ref())?;
        map.serialize_entry("trace_id", &Displayed(span.span_context.trace_id()))?;
        map.serialize_entry("span_id", &Displayed(span.span_context.span_id()))?;
        map.serialize_entry("parent_span_id", &parent.map(Displayed))?;
        map.serialize_entry("status", &JsonStatus(&span.status))?;
        map.serialize_entry("attributes", &JsonAttributes(&span.attributes))?;
        if !span.events.is_empty() {
            map.serialize_entry("events", &JsonEvents(&span.events.events))?;
        }
        map.end()
    }
}

struct JsonEvents<'a>(&'a [Event]);

impl Serialize for JsonEvents<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut events = serializer.serialize_seq(Some(self.0.len()))?;
        for event in self.0 {
            events.serialize_element(&JsonEvent(event))?;
        }
        events.end()
    }
}

struct JsonEvent<'a>(&'a Event);

impl Serialize for JsonEvent<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("name", self.0.name.as_ref())?;
        map.serialize_entry(
            "time",
            &Displayed(humantime::format_rfc3339_nanos(self.0.timestamp)),
        )?;
        map.serialize_entry("attributes", &JsonAttributes(&self.0.attributes))?;
        map.end()
    }
}

/// Serializes as its `Display` text, without an intermediate String.
struct Displayed<T>(T);

impl<T: Display> Serialize for Displayed<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

struct JsonStatus<'a>(&'a Status);

impl Serialize for JsonStatus<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        match self.0 {
            Status::Error { description } => {
                map.serialize_entry("code", "ERROR")?;
                map.serialize_entry("message", description.as_ref())?;
            }
            Status::Ok => map.serialize_entry("code", "OK")?,
            Status::Unset => map.serialize_entry("code", "UNSET")?,
        }
        map.end()
    }
}

struct JsonAttributes<'a>(&'a [KeyValue]);

impl Serialize for JsonAttributes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for kv in self.0 {
            map.serialize_entry(kv.key.as_str(), &JsonValue(&kv.value))?;
        }
        map.end()
    }
}

/// Booleans and numbers as JSON's own; strings and arrays as their text.
struct JsonValue<'a>(&'a Value);

impl Serialize for JsonValue<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::I64(i) => serializer.serialize_i64(*i),
            Value::F64(f) => serializer.serialize_f64(*f),
            Value::String(s) => serializer.serialize_str(s.as_str()),
            other => serializer.collect_str(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use opentelemetry::KeyValue;

    use crate::test_span::test_span;

    use super::*;

    fn span() -> SpanData {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut span = test_span("add", 0xabc, 0x12, 0x34, start, Duration::from_nanos(1_500));
        span.attributes = vec![
            KeyValue::new("a", 1),
            KeyValue::new("c", "x"),
            KeyValue::new("ok", true),
        ];
        span
    }

    fn demo() -> Process {
        Process {
            service: "demo".into(),
            pid: Some(4242),
        }
    }

    #[test]
    fn one_json_object_per_span() {
        let mut span = span();
        span.status = Status::error("rc = -1 (error_when < 0)");
        let mut line = Vec::new();
        write_json(&mut line, &demo(), &span);
        let json: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "start": "2023-11-14T22:13:20.000000000Z",
                "duration_ns": 1500,
                "service": "demo",
                "pid": 4242,
                "name": "add",
                "trace_id": "00000000000000000000000000000abc",
                "span_id": "0000000000000012",
                "parent_span_id": "0000000000000034",
                "status": { "code": "ERROR", "message": "rc = -1 (error_when < 0)" },
                "attributes": { "a": 1, "c": "x", "ok": true },
            })
        );
    }

    #[test]
    fn one_line_with_ids_duration_and_attributes() {
        let span = span();
        let mut line = Vec::new();
        write_text(&mut line, &demo(), &span);
        assert_eq!(
            String::from_utf8(line).unwrap(),
            "2023-11-14T22:13:20.000000Z demo add 1.5µs pid=4242 \
             trace=00000000000000000000000000000abc span=0000000000000012 \
             parent=0000000000000034 a=1 c=\"x\" ok=true"
        );
    }

    /// The previous capture is kept until tracing starts; a run that never started leaves it
    /// (or no file) behind.
    #[test]
    fn the_span_file_is_emptied_only_when_tracing_starts() {
        let dir = std::env::temp_dir().join(format!("spanprobe-stdout-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (old, new) = (dir.join("old.txt"), dir.join("new.txt"));
        std::fs::write(&old, "previous capture\n").unwrap();
        let _ = std::fs::remove_file(&new);
        for path in [&old, &new] {
            drop(LineExporter::to(StdoutFormat::Text, Some(path)).unwrap());
        }
        assert_eq!(std::fs::read_to_string(&old).unwrap(), "previous capture\n");
        assert!(!new.exists(), "a run that never started created {new:?}");

        let mut exporter = LineExporter::to(StdoutFormat::Text, Some(&old)).unwrap();
        exporter.start().unwrap();
        exporter.write(b"x\n").unwrap();
        drop(exporter);
        assert_eq!(std::fs::read_to_string(&old).unwrap(), "x\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A span "file" that is no regular file (`/dev/null`, where benchmarks throw lines away;
    /// a pipe) has no previous capture to empty, and takes the lines.
    #[test]
    fn a_device_takes_the_lines_without_being_emptied() {
        let mut exporter =
            LineExporter::to(StdoutFormat::Json, Some(Path::new("/dev/null"))).unwrap();
        exporter.start().unwrap();
        exporter.write(b"{}\n").unwrap();
        drop(exporter);
        assert!(Path::new("/dev/null").exists());
    }

    /// The pid is the resource's, as OTLP export carries it, one line per span of each process.
    #[test]
    fn each_line_names_its_process() {
        let resource = |pid: i64| {
            Arc::new(
                Resource::builder_empty()
                    .with_service_name("demo")
                    .with_attribute(KeyValue::new("process.pid", pid))
                    .build(),
            )
        };
        let (first, second) = (resource(11), resource(22));
        let spans: Vec<_> = [&first, &first, &second]
            .into_iter()
            .map(|resource| QueuedSpan::new(Arc::clone(resource), span()))
            .collect();
        let exporter = LineExporter::new(StdoutFormat::Json, Box::new(std::io::sink()));
        let pids: Vec<_> = std::str::from_utf8(&exporter.encode(&spans))
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()["pid"].clone())
            .collect();
        assert_eq!(pids, [11, 11, 22]);
        let exporter = LineExporter::new(StdoutFormat::Text, Box::new(std::io::sink()));
        let text = exporter.encode(&spans[2..]);
        assert!(
            std::str::from_utf8(&text)
                .unwrap()
                .contains(" demo add 1.5µs pid=22 trace="),
            "{text:?}"
        );
    }
}
