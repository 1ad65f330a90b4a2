//! Ring-buffer records to typed values: the event itself, and each captured register decoded
//! as the type the config gave it.

use opentelemetry::Value;
use spanprobe_common::CallEvent;
use spanprobe_config::ValueType;

/// A ring-buffer record that is not a [`CallEvent`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ring-buffer record of {len} bytes, expected {expected}")]
pub struct DecodeError {
    pub len: usize,
    pub expected: usize,
}

/// Reads one event from a ring-buffer record.
pub fn decode_event(record: &[u8]) -> Result<CallEvent, DecodeError> {
    let expected = size_of::<CallEvent>();
    if record.len() != expected {
        return Err(DecodeError {
            len: record.len(),
            expected,
        });
    }
    // SAFETY: the length was checked; CallEvent is plain integers (every bit pattern valid),
    // and read_unaligned makes no alignment assumption about the record.
    Ok(unsafe { record.as_ptr().cast::<CallEvent>().read_unaligned() })
}

/// Decodes a raw 64-bit register as `ty`. Narrow types use the low bits, as the System V ABI
/// leaves the upper bits of a register holding a narrow argument undefined.
pub fn register_value(raw: u64, ty: ValueType) -> Value {
    match ty {
        ValueType::I8 => Value::I64(i64::from(raw as i8)),
        ValueType::I16 => Value::I64(i64::from(raw as i16)),
        ValueType::I32 => Value::I64(i64::from(raw as i32)),
        ValueType::I64 => Value::I64(raw as i64),
        ValueType::U8 => Value::I64(i64::from(raw as u8)),
        ValueType::U16 => Value::I64(i64::from(raw as u16)),
        ValueType::U32 => Value::I64(i64::from(raw as u32)),
        // OTLP integers are signed 64-bit: values beyond i64::MAX would read as negative, so
        // they are exported as their decimal string instead.
        ValueType::U64 => match i64::try_from(raw) {
            Ok(value) => Value::I64(value),
            Err(_) => Value::String(raw.to_string().into()),
        },
        ValueType::Bool => Value::Bool(raw as u8 != 0),
        ValueType::Char => Value::String(char::from(raw as u8).to_string().into()),
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
        // SAFETY: viewing a plain-integer struct as bytes.
        let bytes = unsafe {
            std::slice::from_raw_parts((&raw const event).cast::<u8>(), size_of::<CallEvent>())
        };
        assert_eq!(decode_event(bytes), Ok(event));
        // Unaligned records decode too.
        let mut shifted = vec![0u8];
        shifted.extend_from_slice(bytes);
        assert_eq!(decode_event(&shifted[1..]), Ok(event));
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
