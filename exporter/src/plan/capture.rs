//! What the kernel captures for each function, and where userspace finds it in the event:
//! the one place that maps config arguments to event slots and data offsets, so both sides
//! agree (the reading back is [`crate::events::readback`]'s).

use opentelemetry::Key;
use spanprobe_common::{
    ArgCapture, ArgCondition, ArgSource, COUNT_32, COUNT_BEHIND, COUNT_SIGNED, ConditionOp,
    ContextFormat, ContextPolicy, ERROR_WHEN, FunctionCapture, HANDOFF_FROM, HANDOFF_LINK,
    HANDOFF_REPEAT, HANDOFF_TO, KEEP_ERRORS, MAX_CHAIN, MemoryKind, ON_GOROUTINE_STACK,
    READ_AT_RETURN, READS_AT_RETURN, SAMPLE_ALWAYS, STACK_WINDOW,
};
use spanprobe_config::{
    ArgSpec, ArgTest, Comparison, Condition, Keep, LenArg, ReadAt, Sampler, TextOp, TextTest,
    TraceContextFormat, ValueType,
};

use crate::{
    events::readback::{ArgPlan, BacktracePlan, ReturnPlan, WalkedStack, for_the_run},
    plan::probe::{ArgLocation, HandoffSide, Probe, StackUnwind},
    plan::processes::ProcessTree,
};

/// One function's captures: what the kernel side records and how userspace reads it back.
/// Built once per function after resolution ([`plans`]); every stage reads it by function id.
#[derive(Debug, Clone, PartialEq)]
pub struct CapturePlan {
    /// What the kernel side needs to know: the captures, how the function's traces are
    /// sampled, and whether it has a return probe.
    pub kernel: FunctionCapture,
    /// How each captured argument is read back, in config order.
    pub args: Vec<ArgPlan>,
    /// Where the captured stack is, if the function captures one.
    pub stack: Option<BacktracePlan>,
    /// How the return value is read back, if it is captured.
    pub ret: Option<ReturnPlan>,
}

impl CapturePlan {
    /// The plan of `function`, its traces sampled by `sampler` (a `sample_rate` is the
    /// function's own root ratio).
    pub fn of(function: &Probe, sampler: &Sampler) -> Self {
        let mut plan = plan(function);
        let rate = function
            .spec
            .sample_rate
            .as_ref()
            .map_or(sampler.root_ratio, |r| r.value);
        plan.kernel.sample_threshold = if rate >= 1.0 {
            SAMPLE_ALWAYS
        } else {
            (rate * f64::from(u32::MAX)) as u32
        };
        let reads_at_return = function
            .spec
            .args
            .iter()
            .any(|arg| arg.at == ReadAt::Return);
        (plan.kernel.flags, plan.kernel.pair) = function.kind.kernel_flags(function.go_version);
        if plan.kernel.window_bytes > 0 {
            plan.kernel.flags |= STACK_WINDOW;
        }
        plan.kernel.error_register = function.kind.error_register();
        if reads_at_return {
            plan.kernel.flags |= READS_AT_RETURN;
        }
        keep_rules(function, &mut plan.kernel);
        let conditions = conditions(function);
        plan.kernel.conditions_len = conditions.len() as u32;
        for (to, from) in plan.kernel.conditions.iter_mut().zip(conditions) {
            *to = from;
        }
        if let Some(role) = &function.handoff {
            plan.kernel.flags |= match role.end {
                HandoffSide::From => HANDOFF_FROM,
                HandoffSide::To => {
                    HANDOFF_TO
                        | if role.link { HANDOFF_LINK } else { 0 }
                        | if role.repeat { HANDOFF_REPEAT } else { 0 }
                }
            };
            let location = function.arg_location(role.key.index);
            plan.kernel.handoff = capture_arg(&role.key, location, None, 0, 0).0;
            plan.kernel.handoff_id = role.id;
        }
        if let Some(context) = &function.spec.trace_context {
            plan.kernel.context_policy = if sampler.parent_based {
                ContextPolicy::FollowParent
            } else {
                ContextPolicy::TraceIdRatio
            } as u8;
            let at = |index: Option<u8>| {
                index.map_or((ArgSource::None, 0), |index| {
                    function.arg_location(index).kernel()
                })
            };
            let (format, (source, slot), (span_source, span_slot)) = match context.format {
                TraceContextFormat::Traceparent => {
                    (ContextFormat::Traceparent, at(context.arg), at(None))
                }
                TraceContextFormat::Ids => (
                    ContextFormat::Ids,
                    at(context.trace_id_arg),
                    at(context.span_id_arg),
                ),
            };
            plan.kernel.context_format = format as u8;
            plan.kernel.context_source = source as u8;
            plan.kernel.context_slot = slot;
            plan.kernel.span_id_source = span_source as u8;
            plan.kernel.span_id_slot = span_slot;
        }
        plan
    }

    /// Whether the function reads memory when it returns (an output buffer).
    pub fn reads_at_return(&self) -> bool {
        self.kernel.flags & READS_AT_RETURN != 0
    }

    /// Whether the probe keeps or takes a handed-off span.
    pub fn serves_handoff(&self) -> bool {
        self.kernel.flags & (HANDOFF_FROM | HANDOFF_TO) != 0
    }

    /// Whether the function reads its caller's trace context.
    pub fn reads_trace_context(&self) -> bool {
        self.kernel.context_format != ContextFormat::None as u8
    }

    /// Whether the entry goes to a sleepable program: the kernel side reads memory the
    /// arguments point to, which may have to be faulted in, or keeps a call record (memory, the
    /// stack). Those programs alone hold the code that fills records: verifying it is most of
    /// an entry program's load time, which functions capturing values only are spared.
    pub fn sleepable_entry(&self) -> bool {
        self.reads_memory() || self.kernel.data_len > 0 || self.copies_stack_window()
    }

    /// Whether the entry copies a window of the stack for userspace to unwind: the sleepable
    /// entry, which may fault its pages in.
    pub fn copies_stack_window(&self) -> bool {
        self.kernel.flags & STACK_WINDOW != 0
    }

    /// Whether the kernel side reads memory the arguments point to.
    fn reads_memory(&self) -> bool {
        self.kernel.context_format != ContextFormat::None as u8
            || self
                .kernel
                .args
                .iter()
                .any(|arg| arg.memory != MemoryKind::None as u8)
    }

    /// Whether the entry puts the call on its goroutine's stack (a Go call, or a Go entry-only
    /// function where R14 holds the goroutine).
    /// Whether its return decides keep rules in the kernel.
    pub fn keeps_at_return(&self) -> bool {
        self.kernel.min_duration_ns != 0 || self.kernel.flags & KEEP_ERRORS != 0
    }

    pub fn on_goroutine_stack(&self) -> bool {
        self.kernel.flags & ON_GOROUTINE_STACK != 0
    }
}

/// The keep rules of `function` that its return decides in the kernel for a call with no
/// probed callee: `min_duration`, and `keep: errors` with what tells a failure.
fn keep_rules(function: &Probe, kernel: &mut FunctionCapture) {
    let spec = &function.spec;
    if let Some(min) = &spec.min_duration {
        kernel.min_duration_ns = u64::try_from(min.value.as_nanos()).unwrap_or(u64::MAX);
    }
    if spec.keep.value == Keep::Errors {
        kernel.flags |= KEEP_ERRORS;
    }
    if let Some(ret) = &spec.return_value
        && let Some(condition) = ret.error_when
    {
        kernel.flags |= ERROR_WHEN;
        kernel.error_when = number_condition(0, ret.value_type(), condition);
    }
}

/// The kernel's form of `function`'s `when`: each condition on the slot its argument is read
/// into, in the argument's type. Resolution has refused those that cannot be decided.
fn conditions(function: &Probe) -> Vec<ArgCondition> {
    function
        .when_tests()
        .into_iter()
        .filter_map(|tested| {
            Some(match tested.test.ok()? {
                ArgTest::Number(condition) => {
                    number_condition(tested.slot, tested.arg.value_type(), condition)
                }
                ArgTest::Text(test) => text_condition(tested.slot, &test),
            })
        })
        .collect()
}

fn number_condition(slot: u8, ty: ValueType, condition: Condition) -> ArgCondition {
    ArgCondition {
        slot,
        op: match condition.op {
            Comparison::Lt => ConditionOp::Lt,
            Comparison::Le => ConditionOp::Le,
            Comparison::Gt => ConditionOp::Gt,
            Comparison::Ge => ConditionOp::Ge,
            Comparison::Eq => ConditionOp::Eq,
            Comparison::Ne => ConditionOp::Ne,
        } as u8,
        size: ty.size().max(1),
        signed: u8::from(ty.extend(u64::MAX) < 0),
        // Two's complement in 64 bits; the kernel compares in the value's width.
        value: condition.value as i64 as u64,
        ..ArgCondition::default()
    }
}

fn text_condition(slot: u8, test: &TextTest) -> ArgCondition {
    let mut condition = ArgCondition {
        slot,
        op: match test.op {
            TextOp::Eq => ConditionOp::TextEq,
            TextOp::Ne => ConditionOp::TextNe,
            TextOp::Prefix => ConditionOp::Prefix,
        } as u8,
        text_len: test.text.len() as u32,
        ..ArgCondition::default()
    };
    for (word, bytes) in condition.text.iter_mut().zip(test.text.chunks(8)) {
        let mut padded = [0u8; 8];
        padded[..bytes.len()].copy_from_slice(bytes);
        *word = u64::from_le_bytes(padded);
    }
    condition
}

/// The plan of each of `functions`, indexed as they are (by function id), each `pid:`
/// target's functions in their process's tree (see [`process_trees`]).
pub fn plans(functions: &[Probe], sampler: &Sampler) -> Vec<CapturePlan> {
    let trees = process_trees(functions);
    functions
        .iter()
        .map(|function| {
            let mut plan = CapturePlan::of(function, sampler);
            let tree = function
                .processes
                .as_ref()
                .and_then(|processes| trees.iter().position(|tree| tree == processes));
            plan.kernel.process_tree = tree.map_or(0, |t| (t + 1) as u8);
            plan
        })
        .collect()
}

/// The processes `pid:` and `container:` targets name, each a tree that the kernel side
/// follows through forks; a function's tree is its position here plus one. Resolution allows at
/// most [`MAX_PROCESS_TREES`](spanprobe_common::MAX_PROCESS_TREES).
pub fn process_trees(functions: &[Probe]) -> Vec<ProcessTree> {
    let mut trees: Vec<ProcessTree> = Vec::new();
    for processes in functions
        .iter()
        .filter_map(|function| function.processes.as_ref())
    {
        if !trees.contains(processes) {
            trees.push(processes.clone());
        }
    }
    trees
}

/// The captures of `function`'s spec, with its stack if it captures one, sampled always.
fn plan(function: &Probe) -> CapturePlan {
    let (spec, stack_frames) = (&function.spec, function.stack_frames);
    let mut capture = FunctionCapture::default();
    let mut plans = Vec::with_capacity(spec.args.len() + function.later_args.len());
    let mut data_len = 0usize;
    let slots = function.slot_base..spanprobe_common::MAX_ARGS;
    for (slot, arg) in slots.clone().zip(&spec.args) {
        let location = function.arg_location(arg.index);
        let count = arg.len_arg.map(|len_arg| Count::of(len_arg, function));
        let (kernel, plan) = capture_arg(arg, location, count, slot, data_len);
        capture.args[slot] = kernel;
        capture.args_end = slot as u8 + 1;
        data_len += arg.data_size();
        plans.push(plan);
    }
    // Read by the probe that ends the span, into the slots after these; decoded here.
    for (slot, (arg, location)) in slots.skip(spec.args.len()).zip(&function.later_args) {
        plans.push(capture_arg(arg, *location, None, slot, data_len).1);
    }
    let stack = match function.unwind {
        _ if stack_frames == 0 => None,
        None | Some(StackUnwind::FramePointers(_)) => {
            let start = data_len.next_multiple_of(8);
            data_len = start + spanprobe_config::stack_area(stack_frames);
            capture.stack_frames = stack_frames;
            capture.stack_offset = start as u16;
            Some(BacktracePlan::Walked(WalkedStack {
                data: start..data_len,
                frames: usize::from(stack_frames),
                at_entry: !function.kind.is_usdt(),
            }))
        }
        Some(StackUnwind::Window { bytes, .. }) => {
            // Its flag is set with the function's others (see `CapturePlan::of`).
            capture.window_bytes = bytes;
            Some(BacktracePlan::Unwound {
                frames: usize::from(stack_frames),
            })
        }
    };
    capture.data_len = data_len as u32;
    let ret = spec.return_value.as_ref().map(|ret| {
        capture.ret = chain_capture(ret.offsets.as_deref(), ret.value_type());
        ReturnPlan {
            key: Key::from_static_str(for_the_run(ret.attribute_name())),
            ty: ret.value_type(),
            enumerators: ret.enumerators.clone(),
            chained: ret.offsets.is_some(),
            error_when: ret.error_when,
        }
    });
    CapturePlan {
        kernel: capture,
        args: plans,
        stack,
        ret,
    }
}

/// Where the kernel finds what counts a memory argument's bytes, and how it reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Count {
    source: ArgSource,
    slot: u8,
    /// [`COUNT_BEHIND`], [`COUNT_32`], [`COUNT_SIGNED`]: how the return value and the count
    /// are read, for a read at return.
    timing: u8,
}

impl Count {
    /// The count `len_arg` names, for an argument of `function`.
    fn of(len_arg: LenArg, function: &Probe) -> Self {
        let (source, slot) = match len_arg {
            LenArg::Arg(index) | LenArg::Behind(index) => function.arg_location(index).kernel(),
            LenArg::Return => (ArgSource::Return, 0),
            LenArg::Beside => (ArgSource::Beside, 0),
        };
        let mut timing = match len_arg {
            LenArg::Behind(_) => COUNT_BEHIND,
            LenArg::Arg(_) | LenArg::Return | LenArg::Beside => 0,
        };
        // Resolution refuses counts at return from a return value of no known type.
        if let Some(ty) = function.return_type {
            if ty.size() == 4 {
                timing |= COUNT_32;
            }
            // All ones, widened: negative only for a signed type.
            if ty.extend(u64::MAX) < 0 {
                timing |= COUNT_SIGNED;
            }
        }
        Count {
            source,
            slot,
            timing,
        }
    }
}

/// How the kernel captures `arg`, at `location` (its count, if any, as `count` says), into
/// event slot `slot` and data at `data_offset`; and how it is read back.
fn capture_arg(
    arg: &ArgSpec,
    location: ArgLocation,
    count: Option<Count>,
    slot: usize,
    data_offset: usize,
) -> (ArgCapture, ArgPlan) {
    let place = location.place();
    let memory = match count {
        Some(_) => arg.value_type().counted_memory(),
        None => arg.value_type().memory(),
    };
    let (count_source, count_slot) = count.map_or((ArgSource::None, 0), |c| (c.source, c.slot));
    let timing = match arg.at {
        ReadAt::Entry => 0,
        ReadAt::Return => READ_AT_RETURN | count.map_or(0, |count| count.timing),
    };
    // A memory operand's offset is the first step of the chain: the value is read there.
    let offsets = match (place.offset, &arg.offsets) {
        (None, offsets) => offsets.clone(),
        (Some(first), Some(offsets)) => Some([&[first][..], offsets].concat()),
        (Some(first), None) if arg.value_type().is_memory() => Some(vec![first, 0]),
        (Some(first), None) => Some(vec![first]),
    };
    let mut kernel = ArgCapture {
        source: place.source as u8,
        slot: place.slot,
        memory: memory as u8,
        count_source: count_source as u8,
        len: arg.value_type().read_len(arg.memory_len(), count.is_some()) as u16,
        offset: data_offset as u16,
        count_slot,
        timing,
        ..chain_capture(offsets.as_deref(), arg.value_type())
    };
    if let Some(value) = place.constant {
        kernel.set_constant(value);
    }
    let plan = ArgPlan {
        slot,
        key: Key::from_static_str(for_the_run(&arg.attribute_name())),
        ty: arg.value_type(),
        enumerators: arg.enumerators.clone(),
        chained: offsets.is_some(),
        memory,
        data: data_offset..data_offset + arg.data_size(),
        max_len: usize::from(arg.memory_len()),
    };
    (kernel, plan)
}

/// The part of an [`ArgCapture`] that follows a chain of `offsets` (none: the register itself)
/// to a value of type `ty`.
fn chain_capture(offsets: Option<&[i32]>, ty: ValueType) -> ArgCapture {
    let mut capture = ArgCapture {
        field_size: ty.size(),
        ..ArgCapture::default()
    };
    if let Some(offsets) = offsets {
        capture.chain = offsets.len().min(MAX_CHAIN) as u8;
        for (to, from) in capture.path.iter_mut().zip(offsets) {
            *to = *from;
        }
    }
    capture
}

#[cfg(test)]
mod tests {
    use opentelemetry::Value;
    use spanprobe_common::{CallEvent, MEMORY_FAULT};
    use spanprobe_config::{ArgSpec, FunctionSpec, Located};

    use super::*;
    use crate::{plan::probe::ProbeKind, x86_64::ArgOperand};

    fn arg(
        index: u8,
        name: &str,
        ty: ValueType,
        max_len: Option<u16>,
        len: Option<u16>,
    ) -> Located<ArgSpec> {
        Located::unplaced(ArgSpec {
            max_len,
            len,
            ..ArgSpec::new(index, Some(name), ty)
        })
    }

    /// A function capturing four arguments, and its stack when `stack_frames` is not 0.
    fn function(stack_frames: u16) -> Probe {
        let spec = FunctionSpec {
            args: vec![
                arg(0, "path", ValueType::Str, Some(4), None),
                arg(7, "flag", ValueType::Bool, None, None),
                arg(2, "key", ValueType::Bytes, None, Some(3)),
                arg(1, "buf", ValueType::Ptr, None, None),
            ],
            ..Default::default()
        };
        Probe {
            stack_frames,
            ..Probe::new("/bin/app", "f", 0x1000, spec)
        }
    }

    #[test]
    fn texts_kept_for_the_run_are_kept_once_each() {
        let file = String::from("/src/kept_once.c");
        let first = for_the_run(&file);
        assert_eq!(first, file);
        assert!(std::ptr::eq(first, for_the_run(&file.clone())));
        assert!(!std::ptr::eq(first, for_the_run("/src/another.c")));
    }

    #[test]
    fn usdt_operands_read_registers_memory_and_constants() {
        let spec = FunctionSpec {
            args: vec![
                arg(0, "id", ValueType::I32, None, None),
                arg(1, "query", ValueType::Str, Some(8), None),
                arg(2, "rows", ValueType::I64, None, None),
                arg(3, "seven", ValueType::I32, None, None),
            ],
            ..Default::default()
        };
        let operands = ["-4@%eax", "8@-80(%rbx)", "8@16(%rsp)", "-4@$7"]
            .map(|spec| ArgOperand::parse(spec).unwrap())
            .to_vec();
        let site = Probe {
            kind: ProbeKind::UsdtPoint { event: false },
            operands,
            ..Probe::new("/bin/app", "app:probe", 0x1000, spec)
        };
        let plan = plan(&site);
        let read: Vec<_> = plan.kernel.args[..4]
            .iter()
            .map(|a| {
                (
                    a.source,
                    a.slot,
                    a.chain,
                    a.path[..2].to_vec(),
                    a.field_size,
                )
            })
            .collect();
        let gpr = ArgSource::Gpr as u8;
        assert_eq!(
            read,
            [
                (gpr, 0, 0, vec![0, 0], 4),
                // The pointer in memory, then the string it points to.
                (gpr, 3, 2, vec![-80, 0], 0),
                (gpr, 7, 1, vec![16, 0], 8),
                // A constant is its value, which the kernel copies into the event.
                (ArgSource::Constant as u8, 0, 0, vec![7, 0], 4),
            ]
        );
        assert_eq!(plan.kernel.args[3].constant(), 7);
        let mut negative = ArgCapture::default();
        negative.set_constant(-5i64 as u64);
        assert_eq!(negative.constant() as i64, -5);
    }

    #[test]
    fn lays_out_registers_stack_slots_and_data() {
        let CapturePlan {
            kernel: capture,
            args: plans,
            ..
        } = plan(&function(0));
        let kernel: Vec<_> = capture.args[..4]
            .iter()
            .map(|a| (a.source, a.slot, a.memory, a.len, a.offset))
            .collect();
        assert_eq!(
            kernel,
            [
                (ArgSource::Register as u8, 0, MemoryKind::Str as u8, 6, 0),
                (ArgSource::Stack as u8, 1, MemoryKind::None as u8, 0, 6),
                (ArgSource::Register as u8, 2, MemoryKind::Bytes as u8, 3, 6),
                (ArgSource::Register as u8, 1, MemoryKind::None as u8, 0, 9),
            ]
        );
        assert_eq!(capture.args[4].source, ArgSource::None as u8);
        // The entry reads no slot from here on.
        assert_eq!(capture.args_end, 4);
        assert_eq!(capture.data_len, 9);
        assert_eq!(plans[2].data, 6..9);
    }

    fn decode(event: &CallEvent, data: &[u8]) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        for plan in &plan(&function(0)).args {
            plan.attributes(event, data, &mut out);
        }
        out.into_iter()
            .map(|kv| (kv.key.to_string(), kv.value))
            .collect()
    }

    #[test]
    fn a_stack_unwound_from_a_window_takes_no_room_in_the_record() {
        let walked = plan(&function(4));
        let copying = Probe {
            unwind: Some(StackUnwind::Window {
                bytes: 8192,
                picked: true,
            }),
            ..function(4)
        };
        let unwound = CapturePlan::of(&copying, &Sampler::default());
        assert_eq!(unwound.stack, Some(BacktracePlan::Unwound { frames: 4 }));
        assert_eq!(unwound.kernel.window_bytes, 8192);
        assert_eq!(unwound.kernel.stack_frames, 0);
        assert_ne!(unwound.kernel.flags & STACK_WINDOW, 0);
        assert!(unwound.sleepable_entry());
        // The arguments' memory alone.
        let no_stack = plan(&function(0)).kernel.data_len;
        assert_eq!(unwound.kernel.data_len, no_stack);
        assert!(walked.kernel.data_len > no_stack);
        assert_eq!(walked.kernel.flags & STACK_WINDOW, 0);
    }

    #[test]
    fn stacks_follow_the_arguments_aligned_and_read_back_in_order() {
        let CapturePlan {
            kernel: capture,
            stack,
            ..
        } = plan(&function(4));
        let Some(BacktracePlan::Walked(stack)) = stack else {
            panic!("walked by frame pointers: {stack:?}")
        };
        let size = 8 * 5 + 8 * 33;
        assert_eq!(stack.data, 16..16 + size);
        assert_eq!((capture.stack_frames, capture.stack_offset), (4, 16));
        assert_eq!(capture.data_len as usize, 16 + size);
        let mut data = vec![0u8; 16 + size];
        // caller, then the walk: the function, two trampolines (outer probed calls), main.
        let words = [
            0xca11e7u64,
            0xf00,
            0x7a4,
            0x7a4,
            0x3a1,
            /* returns: */ 0x7a4,
            0xaaa,
            0xbbb,
        ];
        for (i, word) in words.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&word.to_ne_bytes());
        }
        // Called at depth 3: two outer probed calls, innermost first in the returns region.
        let event = CallEvent {
            stack_len: 5,
            depth: 3,
            ..Default::default()
        };
        assert_eq!(
            stack.addresses(&event, &data),
            [0xf00, 0xca11e7, 0xaaa, 0xbbb, 0x3a1]
        );
        let event = CallEvent {
            stack_len: 2,
            depth: 1,
            ..Default::default()
        };
        assert_eq!(stack.addresses(&event, &data), [0xf00, 0xca11e7]);
        let event = CallEvent {
            stack_len: 0,
            ..Default::default()
        };
        assert!(stack.addresses(&event, &data).is_empty());
    }

    #[test]
    fn decodes_strings_bytes_pointers_and_stack_values() {
        let mut event = CallEvent {
            args: [0x1000, 1, 0x2000, 0xdead, 0, 0, 0, 0],
            ..Default::default()
        };
        event.arg_lens = [4, 0, 3, 0, 0, 0, 0, 0]; // "abc" + NUL, 3 bytes
        let data = b"abc\0\0\0\x01\xab\xff";
        assert_eq!(
            decode(&event, data),
            [
                ("path".into(), Value::from("abc")),
                ("flag".into(), Value::Bool(true)),
                ("key".into(), Value::from("01abff")),
                ("buf".into(), Value::from("0xdead")),
            ]
        );
    }

    #[test]
    fn marks_truncated_strings() {
        let mut event = CallEvent {
            args: [0x1000, 0, 0x2000, 0, 0, 0, 0, 0],
            ..Default::default()
        };
        // Five characters and the NUL were read: longer than max_len 4.
        event.arg_lens = [6, 0, 3, 0, 0, 0, 0, 0];
        let data = b"abcde\0xyz";
        let values = decode(&event, data);
        assert_eq!(values[0], ("path.truncated".into(), Value::Bool(true)));
        assert_eq!(values[1], ("path".into(), Value::from("abcd")));
    }

    #[test]
    fn unreadable_memory_says_so() {
        let mut event = CallEvent {
            args: [0, 0, 0x2000, 0, 0, 0, 0, 0],
            ..Default::default()
        };
        event.arg_lens = [MEMORY_FAULT, 0, MEMORY_FAULT, 0, 0, 0, 0, 0];
        let values = decode(&event, &[0; 9]);
        assert_eq!(values[0], ("path".into(), Value::from("(null)")));
        assert_eq!(
            values[2],
            ("key".into(), Value::from("(unreadable 0x2000)"))
        );
    }
}
