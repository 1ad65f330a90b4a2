//! Ring-buffer records to typed values: the event itself, and each capture as an OpenTelemetry
//! value (how each type decodes is [`ValueType::decode`](spanprobe_config::ValueType::decode)'s).

use opentelemetry::Value;
use spanprobe_common::{CallEvent, EXEC_MARK, ExecNotice, STACK_WINDOW_MARK, StackWindowHeader};
use spanprobe_config::Decoded;

/// What a ring-buffer record holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    /// A call, and the memory it captured.
    Call(CallEvent, &'a [u8]),
    /// A call's stack window, and the stack's bytes, sent at entry ahead of the call. Boxed:
    /// the header is two and a half times an event's size.
    StackWindow(Box<StackWindowHeader>, &'a [u8]),
    /// A process started a program.
    Exec(ExecNotice),
}

/// Reads one ring-buffer record: a stack window starts with [`STACK_WINDOW_MARK`] where an
/// event has its pid.
pub fn decode(record: &[u8]) -> Result<Message<'_>, DecodeError> {
    match record
        .first_chunk::<4>()
        .map(|mark| u32::from_ne_bytes(*mark))
    {
        Some(STACK_WINDOW_MARK) => decode_window(record)
            .map(|(header, bytes)| Message::StackWindow(Box::new(header), bytes)),
        // SAFETY: a notice is plain integers.
        Some(EXEC_MARK) => unsafe { split_header(record, |_: &ExecNotice| 0) }
            .map(|(notice, _)| Message::Exec(notice)),
        _ => decode_event(record).map(|(event, data)| Message::Call(event, data)),
    }
}

/// Reads a stack window's header, and the stack bytes after it.
fn decode_window(record: &[u8]) -> Result<(StackWindowHeader, &[u8]), DecodeError> {
    // SAFETY: a window's header is plain integers.
    unsafe { split_header(record, |window: &StackWindowHeader| window.len as usize) }
}

/// Reads the header a record starts with, and the `len(header)` bytes after it.
///
/// # Safety
/// Every bit pattern must be a valid `T` (plain integers).
unsafe fn split_header<T>(
    record: &[u8],
    len: impl Fn(&T) -> usize,
) -> Result<(T, &[u8]), DecodeError> {
    let size = size_of::<T>();
    if record.len() < size {
        return Err(DecodeError {
            len: record.len(),
            expected: size,
        });
    }
    // SAFETY: the length was checked; every bit pattern is a `T` (the caller's promise), and
    // read_unaligned makes no alignment assumption about the record.
    let header = unsafe { record.as_ptr().cast::<T>().read_unaligned() };
    let expected = size + len(&header);
    let rest = record.get(size..expected).ok_or(DecodeError {
        len: record.len(),
        expected,
    })?;
    Ok((header, rest))
}

/// A ring-buffer record too short for its [`CallEvent`] and data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ring-buffer record of {len} bytes, expected {expected}")]
pub struct DecodeError {
    pub len: usize,
    pub expected: usize,
}

/// Reads one event, and the captured memory after it, from a ring-buffer record.
pub fn decode_event(record: &[u8]) -> Result<(CallEvent, &[u8]), DecodeError> {
    // SAFETY: an event is plain integers.
    unsafe { split_header(record, |event: &CallEvent| event.data_len as usize) }
}

/// A decoded capture as an OpenTelemetry value; `true` when a string was cut at its `max_len`.
pub fn otel_value(decoded: Decoded) -> (Value, bool) {
    match decoded {
        Decoded::Int(value) => (Value::I64(value), false),
        Decoded::Bool(value) => (Value::Bool(value), false),
        Decoded::Text(text) => (Value::String(text.into()), false),
        Decoded::Truncated(text) => (Value::String(text.into()), true),
    }
}

#[cfg(test)]
mod tests {
    use spanprobe_config::ValueType;

    use super::*;

    #[test]
    fn decodes_a_whole_record() {
        let event = CallEvent {
            pid: 1,
            tid: 2,
            function_id: 3,
            depth: 1,
            ret: 42,
            ..Default::default()
        };
        let bytes = as_bytes(&event);
        assert_eq!(decode_event(&bytes), Ok((event, &[][..])));
        // Unaligned records decode too.
        let mut shifted = vec![0u8];
        shifted.extend_from_slice(&bytes);
        assert_eq!(decode_event(&shifted[1..]), Ok((event, &[][..])));
    }

    #[test]
    fn captured_memory_follows_the_header() {
        let event = CallEvent {
            data_len: 3,
            ..Default::default()
        };
        let mut record = as_bytes(&event);
        // The kernel may pad records: extra bytes are ignored.
        record.extend_from_slice(b"abc\0\0");
        assert_eq!(decode_event(&record), Ok((event, &b"abc"[..])));
        record.truncate(size_of::<CallEvent>() + 2);
        let expected = size_of::<CallEvent>() + 3;
        assert_eq!(
            decode_event(&record),
            Err(DecodeError {
                len: expected - 1,
                expected
            })
        );
    }

    fn as_bytes(event: &CallEvent) -> Vec<u8> {
        // SAFETY: viewing a plain-integer struct as bytes.
        unsafe {
            std::slice::from_raw_parts(
                (event as *const CallEvent).cast::<u8>(),
                size_of::<CallEvent>(),
            )
        }
        .to_vec()
    }

    #[test]
    fn tells_stack_windows_from_events() {
        let mut window = StackWindowHeader {
            mark: STACK_WINDOW_MARK,
            pid: 7,
            stack_id: 8,
            entry_ns: 9,
            function_id: 1,
            len: 3,
            ip: 0x1000,
            sp: 0x7ff0,
            bp: 0,
            outer_len: 0,
            depth: 1,
            outer: [[0; 2]; spanprobe_common::MAX_DEPTH],
        };
        let mut record = window_bytes(&window);
        // The message has room for more than was copied.
        record.extend_from_slice(b"xyz\0\0\0");
        assert_eq!(
            decode(&record),
            Ok(Message::StackWindow(Box::new(window), &b"xyz"[..]))
        );
        window.len = 7;
        let header = window_bytes(&window);
        record[..header.len()].copy_from_slice(&header);
        assert!(decode(&record).is_err(), "a window longer than its record");
        let event = CallEvent {
            pid: 5,
            ..Default::default()
        };
        assert_eq!(decode(&as_bytes(&event)), Ok(Message::Call(event, &[][..])));
    }

    fn window_bytes(window: &StackWindowHeader) -> Vec<u8> {
        // SAFETY: viewing a plain-integer struct without padding as bytes.
        unsafe {
            std::slice::from_raw_parts(
                (window as *const StackWindowHeader).cast::<u8>(),
                size_of::<StackWindowHeader>(),
            )
        }
        .to_vec()
    }

    #[test]
    fn refuses_records_of_the_wrong_size() {
        let expected = size_of::<CallEvent>();
        assert_eq!(decode_event(&[0; 8]), Err(DecodeError { len: 8, expected }));
    }

    #[test]
    fn decoded_values_keep_their_kind() {
        assert_eq!(otel_value(Decoded::Int(-2)), (Value::I64(-2), false));
        assert_eq!(otel_value(Decoded::Bool(true)), (Value::Bool(true), false));
        assert_eq!(
            otel_value(Decoded::Truncated("ab".into())),
            (Value::String("ab".into()), true)
        );
        assert_eq!(
            otel_value(ValueType::I32.decode(0xffff_fffe, None, 0)).0,
            Value::I64(-2)
        );
    }
}
