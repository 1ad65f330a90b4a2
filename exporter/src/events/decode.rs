//! Ring-buffer records to typed values: the event itself, and each capture as an OpenTelemetry
//! value (how each type decodes is [`ValueType::decode`](spanprobe_config::ValueType::decode)'s).

use opentelemetry::Value;
use spanprobe_common::CallEvent;
use spanprobe_config::Decoded;

/// A ring-buffer record too short for its [`CallEvent`] and data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ring-buffer record of {len} bytes, expected {expected}")]
pub struct DecodeError {
    pub len: usize,
    pub expected: usize,
}

/// Reads one event, and the captured memory after it, from a ring-buffer record.
pub fn decode_event(record: &[u8]) -> Result<(CallEvent, &[u8]), DecodeError> {
    let header = size_of::<CallEvent>();
    if record.len() < header {
        return Err(DecodeError {
            len: record.len(),
            expected: header,
        });
    }
    // SAFETY: the length was checked; CallEvent is plain integers (every bit pattern valid),
    // and read_unaligned makes no alignment assumption about the record.
    let event = unsafe { record.as_ptr().cast::<CallEvent>().read_unaligned() };
    let expected = header + event.data_len as usize;
    let data = record.get(header..expected).ok_or(DecodeError {
        len: record.len(),
        expected,
    })?;
    Ok((event, data))
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
