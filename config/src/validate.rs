//! Semantic checks that need nothing but the config itself. Every problem is reported, each
//! with its position and field path.

use std::collections::HashSet;

use crate::{
    ArgSpec, Config, ExporterConfig, FunctionSpec, HandoffSpec, LenArg, Located, OtlpConfig,
    Position, Problem, ReadAt, TraceContextFormat, TraceContextSpec, Unwind, UsdtSpec,
    span_name::{NamePart, name_parts},
};

/// Highest argument index: 0..=5 are registers, 6.. are read from the caller's stack.
pub const MAX_ARG_INDEX: u8 = 15;
/// Offsets in one argument's chain of pointers.
pub const MAX_CHAIN: usize = spanprobe_common::MAX_CHAIN;
/// Conditions one function's `when` may give (see `spanprobe_common::MAX_CONDITIONS`).
pub const MAX_CONDITIONS: usize = spanprobe_common::MAX_CONDITIONS;
/// Arguments one function may capture.
pub const MAX_CAPTURED_ARGS: usize = spanprobe_common::MAX_ARGS;
/// Bytes of `str`/`bytes` data and stack one call may capture in all (the call record's data:
/// see `spanprobe_common::memory_area` and `stack_area`).
pub const MEMORY_BUDGET: usize = spanprobe_common::DATA_MAX;

/// Bytes a captured stack of `frames` frames takes in the call record.
pub fn stack_area(frames: u16) -> usize {
    spanprobe_common::stack_area(usize::from(frames))
}

struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, position: Position, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem::new(position, field, message));
    }
}

pub(crate) fn validate(config: &Config) -> Vec<Problem> {
    let mut problems = Problems(Vec::new());
    validate_export(config, &mut problems);
    if config.probes.is_empty() {
        problems.add(
            Position::default(),
            "probes",
            "at least one probe target is needed",
        );
    }
    for (t, target) in config.probes.iter().enumerate() {
        let field = format!("probes[{t}]");
        match (&target.binary, &target.executable) {
            (Some(binary), None) if binary.is_empty() => {
                problems.add(
                    binary.position,
                    format!("{field}.binary"),
                    "must not be empty",
                );
            }
            (Some(_), None) | (None, Some(_)) => {}
            (None, None) => problems.add(
                target.position,
                field.clone(),
                "give `binary` (a file to probe) or `executable` (the processes running one)",
            ),
            (Some(_), Some(executable)) => problems.add(
                executable.position,
                format!("{field}.executable"),
                "give `binary` or `executable`, not both",
            ),
        }
        if let Some(pid) = &target.pid
            && pid.value == 0
        {
            problems.add(
                pid.position,
                format!("{field}.pid"),
                "must be a process id, not 0",
            );
        }
        if let (Some(library), None) = (&target.library, &target.executable) {
            problems.add(
                library.position,
                format!("{field}.library"),
                "names a library of the processes an `executable` finds: give `executable` \
                 (for a library of spanprobe's own filesystem, `binary`)",
            );
        }
        if let Some(container) = &target.container {
            let id = container.value.as_str();
            if target.pid.is_some() {
                problems.add(
                    container.position,
                    format!("{field}.container"),
                    "give `pid` or `container`, not both",
                );
            } else if id.is_empty()
                || id.len() > 64
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                problems.add(
                    container.position,
                    format!("{field}.container"),
                    format!(
                        "`{id}`: a container id, or its start, is up to 64 lowercase hex digits \
                         (as `docker ps` or `crictl ps` show it)"
                    ),
                );
            }
        }
        if target.functions.is_empty() && target.usdt.is_empty() && target.handoffs.is_empty() {
            problems.add(
                target.position,
                format!("{field}.functions"),
                "at least one function, `usdt` probe or handoff is needed",
            );
        }
        validate_handoffs(&target.handoffs, &field, &mut problems);
        let mut seen = HashSet::new();
        for (f, function) in target.functions.iter().enumerate() {
            let field = format!("{field}.functions[{f}]");
            validate_function(
                function,
                &field,
                config.limits.stack_frames,
                &mut seen,
                &mut problems,
            );
        }
        let mut seen = HashSet::new();
        for (u, usdt) in target.usdt.iter().enumerate() {
            let field = format!("{field}.usdt[{u}]");
            validate_usdt(
                usdt,
                &field,
                config.limits.stack_frames,
                &mut seen,
                &mut problems,
            );
        }
    }
    problems.0
}

/// Each end names a function and an argument; a function is one end of one handoff, since its
/// probe reads one key.
fn validate_handoffs(handoffs: &[Located<HandoffSpec>], field: &str, problems: &mut Problems) {
    let mut ends: Vec<(&str, String)> = Vec::new();
    for (h, handoff) in handoffs.iter().enumerate() {
        for (side, end) in [("from", &handoff.from), ("to", &handoff.to)] {
            let field = format!("{field}.handoffs[{h}].{side}");
            let (key, place) = match (&end.symbol, &end.probe) {
                (Some(symbol), None) => ("symbol", symbol),
                (None, Some(probe)) => ("probe", probe),
                _ => {
                    problems.add(
                        end.position,
                        field,
                        "give one of `symbol` (a function) or `probe` (a USDT probe)",
                    );
                    continue;
                }
            };
            let symbol = place.value.as_str();
            if symbol.is_empty() {
                problems.add(
                    place.position,
                    format!("{field}.{key}"),
                    "must not be empty",
                );
                continue;
            }
            if end.arg > MAX_ARG_INDEX {
                problems.add(
                    end.position,
                    format!("{field}.arg"),
                    format!(
                        "argument index {} is past the last, {MAX_ARG_INDEX}",
                        end.arg
                    ),
                );
            }
            if let Some((_, other)) = ends.iter().find(|(name, _)| *name == symbol) {
                problems.add(
                    place.position,
                    format!("{field}.{key}"),
                    format!(
                        "`{symbol}` is already {other}: a function or probe is one end of one \
                         handoff, since its probe reads one key"
                    ),
                );
                continue;
            }
            ends.push((symbol, format!("the `{side}` of handoffs[{h}]")));
        }
    }
}

fn validate_usdt(
    usdt: &Located<UsdtSpec>,
    field: &str,
    stack_frames: u16,
    seen: &mut HashSet<String>,
    problems: &mut Problems,
) {
    let untils = usdt
        .until
        .iter()
        .flat_map(|until| until.iter().map(|name| ("until", name, until.position)));
    let names = [("probe", usdt.probe.value.as_str(), usdt.probe.position)];
    for (key, name, position) in names.into_iter().chain(untils) {
        let well_formed = name
            .split_once(':')
            .is_some_and(|(provider, probe)| !provider.is_empty() && !probe.is_empty());
        if !well_formed {
            let shown = if name.is_empty() {
                "an empty name".to_owned()
            } else {
                format!("`{name}`")
            };
            problems.add(
                position,
                format!("{field}.{key}"),
                format!("{shown} is not `provider:name`"),
            );
        }
    }
    if !seen.insert(usdt.probe.value.clone()) {
        problems.add(
            usdt.probe.position,
            format!("{field}.probe"),
            "this probe already starts a span for this binary",
        );
    }
    if usdt.event.value && usdt.until.is_some() {
        problems.add(
            usdt.event.position,
            format!("{field}.event"),
            "an event has no duration: give `event` or `until`, not both",
        );
    }
    if usdt
        .until
        .as_ref()
        .is_some_and(|until| until.iter().any(|name| name == usdt.probe.value))
    {
        problems.add(
            usdt.position,
            format!("{field}.until"),
            "a span cannot end at the probe that starts it",
        );
    }
    let capture = Located {
        value: usdt.capture(),
        position: usdt.position,
    };
    validate_capture(
        &capture,
        field,
        "args",
        stack_frames,
        Typing::FromNote,
        problems,
    );
    if usdt.until_args.is_empty() {
        return;
    }
    if usdt.until.is_none() {
        problems.add(
            usdt.position,
            format!("{field}.until_args"),
            "`until_args` are read at the `until` probe: give `until`",
        );
    }
    let ending = Located {
        value: FunctionSpec {
            args: usdt.until_args.clone(),
            ..FunctionSpec::default()
        },
        position: usdt.position,
    };
    validate_capture(
        &ending,
        field,
        "until_args",
        stack_frames,
        Typing::FromNote,
        problems,
    );
    let total = usdt.args.len() + usdt.until_args.len();
    if total > MAX_CAPTURED_ARGS {
        problems.add(
            usdt.position,
            format!("{field}.until_args"),
            format!(
                "{total} arguments in `args` and `until_args`; at most {MAX_CAPTURED_ARGS} can \
                 be captured"
            ),
        );
    }
    for (a, arg) in usdt.until_args.iter().enumerate() {
        let name = arg.attribute_name();
        if usdt.args.iter().any(|start| start.attribute_name() == name) {
            problems.add(
                arg.position,
                format!("{field}.until_args[{a}].name"),
                format!("attribute `{name}` is also an argument of the start probe"),
            );
        }
        if arg.ty.is_some_and(|ty| ty.is_memory()) {
            problems.add(
                arg.position,
                format!("{field}.until_args[{a}].type"),
                "an `until` argument is read as a number when the span ends; its memory is not \
                 captured (capture a pointer as `ptr`)",
            );
        }
    }
}

fn validate_export(config: &Config, problems: &mut Problems) {
    if let ExporterConfig::Otlp(otlp) = &config.exporter {
        validate_endpoints(otlp, problems);
        validate_tls(otlp, problems);
    }
    let max_depth = config.limits.max_depth;
    if !(1..=crate::schema::MAX_DEPTH).contains(&max_depth) {
        problems.add(
            Position::default(),
            "limits.max_depth",
            format!(
                "{max_depth} is out of range: 1..={}",
                crate::schema::MAX_DEPTH
            ),
        );
    }
    let frames = config.limits.stack_frames;
    if !(1..=crate::schema::MAX_STACK_FRAMES).contains(&frames) {
        problems.add(
            Position::default(),
            "limits.stack_frames",
            format!(
                "{frames} is out of range: 1..={}",
                crate::schema::MAX_STACK_FRAMES
            ),
        );
    }
    let ring = config.limits.ring_buffer_size;
    if ring < 4096 || !ring.is_power_of_two() {
        problems.add(
            Position::default(),
            "limits.ring_buffer_size",
            format!("{ring} is not a power of two of at least 4096"),
        );
    }
    let batch = &config.batch;
    if batch.queue_size == 0 {
        problems.add(
            Position::default(),
            "batch.queue_size",
            "must be at least 1",
        );
    }
    if batch.batch_size == 0 {
        problems.add(
            Position::default(),
            "batch.batch_size",
            "must be at least 1",
        );
    } else if batch.batch_size > batch.queue_size {
        problems.add(
            Position::default(),
            "batch.batch_size",
            format!(
                "{} is larger than batch.queue_size ({})",
                batch.batch_size, batch.queue_size
            ),
        );
    }
}

/// Each endpoint is an http:// or https:// URL. One from the environment is the variable's
/// problem: the file does not hold it.
fn validate_endpoints(otlp: &OtlpConfig, problems: &mut Problems) {
    let file = otlp.endpoint.as_ref().map(|endpoint| {
        let place = match otlp.endpoint_variable {
            Some(variable) => (Position::default(), format!("${variable}")),
            None => (endpoint.position, "exporter.otlp.endpoint".to_owned()),
        };
        (place, endpoint.value.as_str())
    });
    let traces = otlp.traces_endpoint.as_deref().map(|url| {
        let variable = crate::otel_env::OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
        ((Position::default(), format!("${variable}")), url)
    });
    for ((position, field), url) in file.into_iter().chain(traces) {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            problems.add(
                position,
                field,
                format!("`{url}` is not an http:// or https:// URL"),
            );
        }
    }
}

/// `tls` only means something for an `https://` endpoint, and trusting a CA while
/// verifying nothing is a contradiction.
fn validate_tls(otlp: &OtlpConfig, problems: &mut Problems) {
    let Some(tls) = &otlp.tls else { return };
    let url = otlp.endpoint_in_use();
    if !otlp.uses_tls() {
        let from = otlp
            .endpoint_in_use_variable()
            .map(|variable| format!(" (from ${variable})"))
            .unwrap_or_default();
        problems.add(
            tls.position,
            "exporter.otlp.tls",
            format!(
                "the endpoint `{url}`{from} is not https://, so TLS settings would not be used"
            ),
        );
    }
    if let Some(ca_file) = &tls.ca_file
        && tls.insecure_skip_verify.value
    {
        problems.add(
            ca_file.position,
            "exporter.otlp.tls.ca_file",
            "is unused when insecure_skip_verify is true; set one or the other",
        );
    }
}

/// The `tls.ca_file`, relative to `base_dir`, can be read and holds a PEM certificate, checked
/// with the config so that a missing file is reported with its other problems, before anything
/// is attached. (Whether the certificates are usable is the TLS library's to say.)
pub(crate) fn check_tls_files(config: &Config) -> Vec<Problem> {
    let ExporterConfig::Otlp(otlp) = &config.exporter else {
        return Vec::new();
    };
    let Some(ca_file) = otlp.tls.as_ref().and_then(|tls| tls.ca_file.as_ref()) else {
        return Vec::new();
    };
    let path = config.base_dir.join(&ca_file.value);
    let message = match std::fs::read_to_string(&path) {
        Err(error) => format!(
            "cannot read `{}` as PEM certificates: {error}",
            path.display()
        ),
        Ok(text) if !text.contains("-----BEGIN CERTIFICATE-----") => {
            format!("`{}` holds no PEM certificate", path.display())
        }
        Ok(_) => return Vec::new(),
    };
    vec![Problem::new(
        ca_file.position,
        "exporter.otlp.tls.ca_file",
        message,
    )]
}

/// What identifies a function within its binary, for duplicate detection.
#[derive(Debug, PartialEq, Eq, Hash)]
enum Target {
    Symbol(String),
    Offset(u64),
    Address(u64),
}

fn validate_function(
    function: &Located<FunctionSpec>,
    field: &str,
    stack_frames: u16,
    seen: &mut HashSet<Target>,
    problems: &mut Problems,
) {
    let here = function.position;
    let targets: Vec<(Target, Position)> = [
        function
            .symbol
            .as_ref()
            .map(|s| (Target::Symbol(s.value.clone()), s.position)),
        function
            .offset
            .as_ref()
            .map(|o| (Target::Offset(o.value), o.position)),
        function
            .address
            .as_ref()
            .map(|a| (Target::Address(a.value), a.position)),
    ]
    .into_iter()
    .flatten()
    .collect();
    match targets.as_slice() {
        [(target, position)] => {
            if matches!(target, Target::Symbol(s) if s.is_empty()) {
                problems.add(*position, format!("{field}.symbol"), "must not be empty");
            } else if !seen.insert(match target {
                Target::Symbol(s) => Target::Symbol(s.clone()),
                Target::Offset(o) => Target::Offset(*o),
                Target::Address(a) => Target::Address(*a),
            }) {
                problems.add(
                    *position,
                    field.to_owned(),
                    "this function is listed twice for this binary",
                );
            }
        }
        [] => problems.add(
            here,
            field.to_owned(),
            "give one of `symbol`, `offset` or `address`",
        ),
        _ => problems.add(
            here,
            field.to_owned(),
            "give only one of `symbol`, `offset` or `address`",
        ),
    }
    validate_capture(
        function,
        field,
        "args",
        stack_frames,
        Typing::Required,
        problems,
    );
}

/// Whether an argument must say its `type`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Typing {
    /// Unless a `path` lets DWARF say it.
    Required,
    /// A USDT argument's note gives its size and sign.
    FromNote,
}

/// What is wrong with when `arg` is read and what counts its bytes: (the key, why).
fn timing_problems(arg: &ArgSpec, typing: Typing) -> Vec<(&'static str, String)> {
    let mut problems = Vec::new();
    let at_return = arg.at == ReadAt::Return;
    if at_return && typing == Typing::FromNote {
        problems.push((
            "at",
            "a USDT probe has no return to read at; read what an `until` probe sees with \
             `until_args`"
                .into(),
        ));
    } else if at_return && arg.ty.is_some_and(|ty| !ty.is_memory()) {
        problems.push((
            "at",
            "only `str` and `bytes` arguments are read at return (what the call wrote behind a \
             pointer)"
                .into(),
        ));
    }
    if let Some(len_arg) = arg.len_arg
        && len_arg.needs_return()
        && !at_return
    {
        problems.push((
            "len_arg",
            format!(
                "`len_arg: {len_arg}` counts what the call wrote, known when it returns: add \
                 `at: return`"
            ),
        ));
    }
    // At entry the count is a register read beside the argument's; at return the chain is
    // followed from the argument's value kept since entry, and the count read after it.
    if arg.len_arg.is_some() && !at_return && (arg.path.is_some() || arg.offsets.is_some()) {
        problems.push((
            "len_arg",
            "`len_arg` does not go with a chain of pointers (`path` or `offsets`) at entry; it \
             does with `at: return`"
                .into(),
        ));
    }
    problems
}

/// `when`: each condition names an argument read at entry, and means something for its type,
/// and there are at most [`MAX_CONDITIONS`]. (A `path`'s type is DWARF's: resolution checks
/// the conditions on one.)
fn validate_when(
    when: &Located<std::collections::BTreeMap<String, crate::WhenCondition>>,
    args: &[Located<ArgSpec>],
    field: &str,
    problems: &mut Problems,
) {
    if when.len() > MAX_CONDITIONS {
        problems.add(
            when.position,
            field,
            format!(
                "{} conditions; at most {MAX_CONDITIONS} are decided in the kernel",
                when.len()
            ),
        );
    }
    for (name, condition) in when.iter() {
        let field = format!("{field}.{name}");
        let Some(arg) = args.iter().find(|arg| arg.attribute_name() == *name) else {
            let names: Vec<String> = args.iter().map(|a| a.attribute_name()).collect();
            problems.add(
                when.position,
                field,
                format!("`{name}` names no captured argument{}", captured(&names)),
            );
            continue;
        };
        if arg.at == ReadAt::Return {
            problems.add(
                when.position,
                field,
                format!("`{name}` is read at return; `when` decides at entry"),
            );
        } else if arg.ty.is_some()
            && let Err(reason) = condition.for_arg(arg)
        {
            problems.add(when.position, field, reason);
        }
    }
}

/// ` (captured: a, b)`, what a message about an unknown argument name lists; empty for none.
fn captured(names: &[String]) -> String {
    if names.is_empty() {
        String::new()
    } else {
        format!(" (captured: {})", names.join(", "))
    }
}

/// What a function or a USDT probe captures, and how its spans are kept.
fn validate_capture(
    function: &Located<FunctionSpec>,
    field: &str,
    args_key: &str,
    stack_frames: u16,
    typing: Typing,
    problems: &mut Problems,
) {
    let here = function.position;
    if function.span_name.as_deref() == Some("") {
        problems.add(here, format!("{field}.span_name"), "must not be empty");
    }
    let names: Vec<String> = function.args.iter().map(|a| a.attribute_name()).collect();
    for part in function
        .span_name
        .as_deref()
        .map(name_parts)
        .unwrap_or_default()
    {
        if let NamePart::Argument(name) = part
            && !names.iter().any(|captured| captured == name)
        {
            problems.add(
                here,
                format!("{field}.span_name"),
                format!(
                    "`{{{name}}}` names no captured argument{}",
                    captured(&names)
                ),
            );
        }
    }
    if let Some(when) = &function.when {
        validate_when(when, &function.args, &format!("{field}.when"), problems);
    }
    if function.args.len() > MAX_CAPTURED_ARGS {
        problems.add(
            here,
            format!("{field}.{args_key}"),
            format!(
                "{} arguments listed; at most {MAX_CAPTURED_ARGS} can be captured",
                function.args.len()
            ),
        );
    }
    let mut indexes = HashSet::new();
    let mut names = HashSet::new();
    let mut memory = 0usize;
    for (a, arg) in function.args.iter().enumerate() {
        let field = format!("{field}.{args_key}[{a}]");
        let at = arg.position;
        if arg.index > MAX_ARG_INDEX {
            problems.add(
                at,
                format!("{field}.index"),
                format!(
                    "{} is out of range: arguments 0..={MAX_ARG_INDEX} can be captured (0 to 5 from \
                     registers, 6 and up from the caller's stack)",
                    arg.index
                ),
            );
        }
        match arg.len_arg.and_then(LenArg::arg) {
            Some(count) if count > MAX_ARG_INDEX => problems.add(
                at,
                format!("{field}.len_arg"),
                format!("{count} is out of range: arguments 0..={MAX_ARG_INDEX} can be read"),
            ),
            Some(count) if count == arg.index => problems.add(
                at,
                format!("{field}.len_arg"),
                format!(
                    "{count} is this argument's own index; name the argument that counts its bytes"
                ),
            ),
            _ => {}
        }
        for (key, problem) in chain_problems(arg.path.as_deref(), arg.offsets.as_deref()) {
            problems.add(at, format!("{field}.{key}"), problem);
        }
        for (key, problem) in timing_problems(arg, typing) {
            problems.add(at, format!("{field}.{key}"), problem);
        }
        // One argument may be captured several times: at the ends of different chains, as
        // different types, at entry and at return.
        if !indexes.insert((
            arg.index,
            arg.offsets.clone(),
            arg.path.clone(),
            arg.ty,
            arg.at,
        )) {
            problems.add(
                at,
                format!("{field}.index"),
                format!("argument {} is captured twice", arg.index),
            );
        }
        if !names.insert(arg.attribute_name()) {
            problems.add(
                at,
                format!("{field}.name"),
                format!(
                    "attribute `{}` is used twice in this function",
                    arg.attribute_name()
                ),
            );
        }
        match arg.ty {
            Some(ty) => {
                for (key, problem) in
                    ty.length_problems(arg.max_len, arg.len, arg.len_arg.is_some())
                {
                    problems.add(at, format!("{field}.{key}"), problem);
                }
            }
            // Inferred from DWARF (or the note) when resolved, and checked then.
            None if arg.path.is_some() || typing == Typing::FromNote => {}
            None => problems.add(
                at,
                format!("{field}.type"),
                "`type` is required (only an argument with a `path` may leave it to DWARF)",
            ),
        }
        memory += arg.data_size();
    }
    // A walk's addresses go in the call record; a copied window goes through the ring buffer.
    if function
        .stack
        .value
        .options()
        .is_some_and(|options| options.unwind != Unwind::Dwarf)
    {
        memory = memory.next_multiple_of(8) + stack_area(stack_frames);
    }
    if let Some((key, problem)) = function.stack.value.problems() {
        problems.add(
            function.stack.position,
            format!("{field}.stack.{key}"),
            problem,
        );
    }
    if memory > MEMORY_BUDGET {
        problems.add(
            here,
            format!("{field}.{args_key}"),
            format!(
                "the `str`/`bytes` arguments and the stack take {memory} bytes per call; at most \
                 {MEMORY_BUDGET} fit"
            ),
        );
    }
    if let Some(ret) = &function.return_value {
        let at = ret.position;
        match ret.ty {
            Some(ty) if ty.is_memory() => problems.add(
                at,
                format!("{field}.return.type"),
                format!("a `{ty}` return value cannot be captured yet; capture it as `ptr`"),
            ),
            Some(_) => {}
            None if ret.path.is_some() => {}
            None => problems.add(
                at,
                format!("{field}.return.type"),
                "`type` is required (only a return value with a `path` may leave it to DWARF)",
            ),
        }
        for (key, problem) in chain_problems(ret.path.as_deref(), ret.offsets.as_deref()) {
            problems.add(at, format!("{field}.return.{key}"), problem);
        }
        if names.contains(ret.attribute_name()) {
            problems.add(
                ret.position,
                format!("{field}.return.name"),
                format!(
                    "attribute `{}` is also an argument's name",
                    ret.attribute_name()
                ),
            );
        }
    }
    if let Some(rate) = &function.sample_rate
        && !(0.0..=1.0).contains(&rate.value)
    {
        problems.add(
            rate.position,
            format!("{field}.sample_rate"),
            format!("{} is not between 0 and 1", rate.value),
        );
    }
    if let Some(context) = &function.trace_context {
        let field = format!("{field}.trace_context");
        for (key, problem) in trace_context_problems(context) {
            problems.add(context.position, format!("{field}{key}"), problem);
        }
    }
}

/// What is wrong with a chain of pointers given as `path` or `offsets`: (the key, and why).
fn chain_problems(path: Option<&str>, offsets: Option<&[i32]>) -> Vec<(&'static str, String)> {
    let mut problems = Vec::new();
    if path.is_some() && offsets.is_some() {
        problems.push((
            "path",
            "give `path` or `offsets` (the same chain, by number), not both".to_owned(),
        ));
    }
    if let Some(offsets) = offsets
        && (offsets.is_empty() || offsets.len() > MAX_CHAIN)
    {
        problems.push((
            "offsets",
            format!(
                "{} offsets: give 1 to {MAX_CHAIN} (at most {} pointers followed)",
                offsets.len(),
                MAX_CHAIN - 1
            ),
        ));
    }
    problems
}

/// What is wrong with a `trace_context`: (the key, `""` for the whole, and why).
fn trace_context_problems(context: &TraceContextSpec) -> Vec<(&'static str, String)> {
    let mut problems = Vec::new();
    let (needed, refused): (&[_], &[_]) = match context.format {
        TraceContextFormat::Traceparent => (
            &[("arg", context.arg)],
            &[
                ("trace_id_arg", context.trace_id_arg),
                ("span_id_arg", context.span_id_arg),
            ],
        ),
        TraceContextFormat::Ids => (
            &[
                ("trace_id_arg", context.trace_id_arg),
                ("span_id_arg", context.span_id_arg),
            ],
            &[("arg", context.arg)],
        ),
    };
    let format = match context.format {
        TraceContextFormat::Traceparent => "traceparent",
        TraceContextFormat::Ids => "ids",
    };
    for (key, index) in needed {
        match index {
            None => problems.push((
                "",
                format!("`format: {format}` needs `{key}`, the argument index"),
            )),
            Some(index) if *index > MAX_ARG_INDEX => problems.push((
                "",
                format!(
                    "{key}: {index} is out of range: arguments 0..={MAX_ARG_INDEX} can be read"
                ),
            )),
            Some(_) => {}
        }
    }
    for (key, index) in refused {
        if index.is_some() {
            problems.push(("", format!("`{key}` does not go with `format: {format}`")));
        }
    }
    problems
}
