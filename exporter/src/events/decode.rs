//! Ring-buffer records to typed values: the event itself, and each captured register decoded
//! as the type the config gave it.

use opentelemetry::Value;
use spanprobe_common::CallEvent;
use spanprobe_config::ValueType;

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

/// Decodes a raw 64-bit register as `ty` (read as [`ValueType::extend`] says).
pub fn register_value(raw: u64, ty: ValueType) -> Value {
    let value = ty.extend(raw);
    match ty {
        ValueType::Bool => Value::Bool(value != 0),
        ValueType::Char => Value::String(char::from(value as u8).to_string().into()),
        // Pointers (and the pointers behind memory captures) as hex addresses.
        ValueType::Ptr | ValueType::Str | ValueType::Bytes => {
            Value::String(format!("{raw:#x}").into())
        }
        // OTLP integers are signed 64-bit: a `u64` beyond i64::MAX would read as negative, so
        // it is exported as its decimal string instead.
        _ => match i64::try_from(value) {
            Ok(value) => Value::I64(value),
            Err(_) => Value::String(value.to_string().into()),
        },
    }
}

#[cfg(test)]
mod tests {
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
    fn narrow_types_ignore_the_upper_bits() {
        let raw = 0xdead_beef_ffff_fffe;
        assert_eq!(register_value(raw, ValueType::I32), Value::I64(-2));
        assert_eq!(register_value(raw, ValueType::U32), Value::I64(0xffff_fffe));
        assert_eq!(register_value(raw, ValueType::I16), Value::I64(-2));
        assert_eq!(register_value(raw, ValueType::U16), Value::I64(0xfffe));
        assert_eq!(register_value(raw, ValueType::I8), Value::I64(-2));
        assert_eq!(register_value(raw, ValueType::U8), Value::I64(0xfe));
    }

    #[test]
    fn wide_types() {
        assert_eq!(register_value(u64::MAX, ValueType::I64), Value::I64(-1));
        assert_eq!(register_value(7, ValueType::U64), Value::I64(7));
        assert_eq!(
            register_value(u64::MAX, ValueType::U64),
            Value::String("18446744073709551615".into())
        );
    }

    #[test]
    fn bool_and_char() {
        assert_eq!(register_value(0x100, ValueType::Bool), Value::Bool(false));
        assert_eq!(register_value(1, ValueType::Bool), Value::Bool(true));
        assert_eq!(
            register_value(0x4161, ValueType::Char),
            Value::String("a".into())
        );
    }
}
