//! The harness's own test: each machine runs the right kernel, with BTF and uprobes, runs host
//! programs from their host paths with their shared libraries, runs spanprobe, reaches an
//! in-process receiver over the network, and its scripts' output, exit status and time limit
//! come back exactly.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest,
    trace::v1::{ResourceSpans, ScopeSpans, Span},
};
use prost::Message as _;

use crate::support::{
    self,
    receiver::Protocol,
    scenario::Workdir,
    vm::{self, Case, Script},
};

/// A well-formed OTLP request with one span called `name`, as a file to post.
fn request_file(dir: &Path, name: &str) -> PathBuf {
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: vec![7; 16],
                    span_id: vec![9; 8],
                    name: name.to_owned(),
                    ..Span::default()
                }],
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    };
    let path = dir.join("request.pb");
    std::fs::write(&path, request.encode_to_vec()).expect("request written");
    path
}

/// The line of `spanprobe check`'s report that places `function`, up to its file offset:
/// what resolving the symbol found, the same on every kernel (what the report says after it,
/// about the first instruction and what a trap costs, is the kernel's).
fn placement<'a>(report: &'a str, function: &str) -> Option<&'a str> {
    let line = report
        .lines()
        .find(|line| line.starts_with(&format!("  {function}: ")))?;
    let start = line.find("file offset 0x")? + "file offset 0x".len();
    let digits = line[start..]
        .find(|c: char| !c.is_ascii_hexdigit())
        .unwrap_or(line.len() - start);
    Some(&line[..start + digits])
}

/// The harness's cases, with what they run built in `dir`.
pub async fn cases(dir: &Workdir) -> Vec<Case> {
    let (library, program) = dir.greet();
    let request = request_file(dir.path(), "posted-by-the-script");
    let config = dir.write_yaml(&format!(
        "probes:\n  - binary: {}\n    functions:\n      - symbol: greet_len\n",
        library.display()
    ));
    // What resolving greet_len gives on the host, to be found the same in every guest.
    let host_check =
        support::spanprobe_with(&["check", "--config", config.to_str().expect("a UTF-8 path")])
            .await;
    let host_report = support::stdout(&host_check);
    let expected_placement = placement(&host_report, "greet_len")
        .unwrap_or_else(|| panic!("no placement of greet_len in {host_report}"))
        .to_owned();

    vec![
        Case::new(
            |_| Script::new("release", "uname -r"),
            |machine, output, _| {
                output.assert_success();
                assert_eq!(output.stdout, format!("{}\n", machine.release()));
            },
        ),
        Case::new(
            |_| {
                Script::new(
                    "btf and uprobes",
                    "[ -s /sys/kernel/btf/vmlinux ] && echo btf\n\
                     [ -e /sys/bus/event_source/devices/uprobe/type ] && echo uprobes\n\
                     true",
                )
            },
            |_, output, _| {
                output.assert_success();
                assert_eq!(output.stdout, "btf\nuprobes\n");
            },
        ),
        Case::new(
            move |receiver| {
                Script::new(
                    "otlp round trip",
                    format!(
                        "busybox wget -q -O /dev/null --header 'Content-Type: application/x-protobuf' \
                         --post-file {} {}/v1/traces && echo posted",
                        request.display(),
                        vm::http_endpoint(receiver)
                    ),
                )
                .file(&request)
            },
            |_, output, receiver| {
                output.assert_success();
                assert_eq!(output.stdout, "posted\n");
                let spans = receiver.spans();
                assert_eq!(spans.len(), 1, "{spans:?}");
                assert_eq!(spans[0].name(), "posted-by-the-script");
                assert_eq!(spans[0].protocol, Protocol::Http);
                let headers = receiver.request_headers();
                assert_eq!(headers.len(), 1);
                assert_eq!(
                    headers[0].1.get("user-agent").map(|v| v.as_bytes()),
                    Some(&b"Wget"[..])
                );
            },
        ),
        Case::new(
            move |_| Script::new("host program", program.display().to_string()).file(&program),
            |_, output, _| {
                output.assert_success();
                assert_eq!(output.stdout, "use_greet 14\n");
            },
        ),
        Case::new(
            |_| Script::new("spanprobe version", "\"$SPANPROBE\" --version"),
            |_, output, _| {
                output.assert_success();
                assert_eq!(
                    output.stdout,
                    format!("spanprobe {}\n", env!("CARGO_PKG_VERSION"))
                );
            },
        ),
        {
            let first_line = format!("{}: ok, 1 function to probe", config.display());
            Case::new(
                move |_| {
                    Script::new(
                        "spanprobe check",
                        format!("\"$SPANPROBE\" check --config {}", config.display()),
                    )
                    .file(&config)
                    .file(&library)
                },
                move |_, output, _| {
                    output.assert_success();
                    assert_eq!(output.stdout.lines().next(), Some(first_line.as_str()));
                    assert_eq!(
                        placement(&output.stdout, "greet_len"),
                        Some(expected_placement.as_str()),
                        "{}",
                        output.stdout
                    );
                },
            )
        },
        Case::new(
            |_| {
                Script::new(
                    "exit status and streams",
                    "printf 'no newline'; printf 'to stderr\\n' >&2; exit 3",
                )
            },
            |_, output, _| {
                assert_eq!((output.status, output.timed_out), (3, false), "{output}");
                assert_eq!(output.stdout, "no newline");
                assert_eq!(output.stderr, "to stderr\n");
            },
        ),
        Case::new(
            // The background sleep outlives the script unless its whole group is killed.
            |_| {
                Script::new("time limit", "sleep 300 & echo started; sleep 300")
                    .time_limit(Duration::from_secs(2))
            },
            |_, output, _| {
                assert!(output.timed_out, "{output}");
                assert_eq!(output.status, 128 + libc::SIGKILL, "{output}");
                assert_eq!(output.stdout, "started\n");
                assert!(
                    output.elapsed >= Duration::from_secs(2)
                        && output.elapsed < Duration::from_secs(10),
                    "{output}"
                );
            },
        ),
    ]
}
