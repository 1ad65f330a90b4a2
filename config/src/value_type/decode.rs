//! A capture read as its type: the one place that knows how each type is shown.

use super::ValueType;

/// A captured value, decoded: what an exporter turns into an attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    Int(i64),
    Bool(bool),
    Text(String),
    /// A string cut at `max_len`; the span also gets `<name>.truncated = true`.
    Truncated(String),
}

impl ValueType {
    /// Decodes a capture: `raw` is the register (or stack slot); for a memory type, `memory`
    /// is what the kernel read behind it (a string without its NUL), `None` when the read
    /// faulted, and `max_len` is the most bytes kept.
    pub fn decode(self, raw: u64, memory: Option<&[u8]>, max_len: usize) -> Decoded {
        let value = self.extend(raw);
        match self {
            Self::Bool => Decoded::Bool(value != 0),
            Self::Char => Decoded::Text(char::from(value as u8).to_string()),
            Self::Ptr => Decoded::Text(format!("{raw:#x}")),
            Self::Str | Self::Bytes => {
                let Some(bytes) = memory else {
                    return Decoded::Text(unreadable(raw));
                };
                // Past `max_len` only when the read had room for more: a string's, or one
                // whose count is another argument.
                let kept = &bytes[..bytes.len().min(max_len)];
                let text = match self {
                    Self::Bytes => kept.iter().map(|b| format!("{b:02x}")).collect(),
                    _ => String::from_utf8_lossy(kept).into_owned(),
                };
                if bytes.len() > max_len {
                    Decoded::Truncated(text)
                } else {
                    Decoded::Text(text)
                }
            }
            // OTLP integers are signed 64-bit: a `u64` beyond i64::MAX would read as negative,
            // so it is shown as its decimal string instead.
            _ => match i64::try_from(value) {
                Ok(value) => Decoded::Int(value),
                Err(_) => Decoded::Text(value.to_string()),
            },
        }
    }
}

/// What a pointer whose memory could not be read shows.
fn unreadable(pointer: u64) -> String {
    if pointer == 0 {
        "(null)".to_owned()
    } else {
        format!("(unreadable {pointer:#x})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn register(raw: u64, ty: ValueType) -> Decoded {
        ty.decode(raw, None, 0)
    }

    #[test]
    fn narrow_integers_ignore_the_upper_bits() {
        let raw = 0xdead_beef_ffff_fffe_u64;
        assert_eq!(register(raw, ValueType::I32), Decoded::Int(-2));
        assert_eq!(register(raw, ValueType::U32), Decoded::Int(0xffff_fffe));
        assert_eq!(register(raw, ValueType::I16), Decoded::Int(-2));
        assert_eq!(register(raw, ValueType::U16), Decoded::Int(0xfffe));
        assert_eq!(register(raw, ValueType::I8), Decoded::Int(-2));
        assert_eq!(register(raw, ValueType::U8), Decoded::Int(0xfe));
    }

    #[test]
    fn wide_integers_keep_their_value() {
        assert_eq!(register(u64::MAX, ValueType::I64), Decoded::Int(-1));
        assert_eq!(register(7, ValueType::U64), Decoded::Int(7));
        assert_eq!(
            register(u64::MAX, ValueType::U64),
            Decoded::Text("18446744073709551615".into())
        );
    }

    #[test]
    fn bools_chars_and_pointers() {
        assert_eq!(register(0x100, ValueType::Bool), Decoded::Bool(false));
        assert_eq!(register(1, ValueType::Bool), Decoded::Bool(true));
        assert_eq!(register(0x4161, ValueType::Char), Decoded::Text("a".into()));
        assert_eq!(
            register(0x1000, ValueType::Ptr),
            Decoded::Text("0x1000".into())
        );
    }

    #[test]
    fn memory_is_text_hex_or_the_reason_it_is_missing() {
        let str = |memory, max_len| ValueType::Str.decode(0x10, memory, max_len);
        assert_eq!(str(Some(b"abc"), 4), Decoded::Text("abc".into()));
        assert_eq!(str(Some(b"abcde"), 4), Decoded::Truncated("abcd".into()));
        assert_eq!(str(None, 4), Decoded::Text("(unreadable 0x10)".into()));
        assert_eq!(
            ValueType::Str.decode(0, None, 4),
            Decoded::Text("(null)".into())
        );
        assert_eq!(
            ValueType::Bytes.decode(0x10, Some(&[0, 0xab, 7]), 3),
            Decoded::Text("00ab07".into())
        );
        assert_eq!(
            ValueType::Bytes.decode(0x10, Some(&[0, 0xab, 7]), 2),
            Decoded::Truncated("00ab".into())
        );
    }
}
