//! The DWARF base types each value type stands for, so that `init` and `check` read a
//! function's parameters as types, not as names.

use super::ValueType;

/// A base type's encoding (DWARF's `DW_ATE_*`), as far as capturing it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaseEncoding {
    Signed,
    Unsigned,
    SignedChar,
    UnsignedChar,
    Boolean,
    /// `char16_t`, `char32_t`, Rust's `char`: code units, shown as numbers.
    Utf,
    /// Floating point, decimal, and anything else no register capture reads.
    Other,
}

impl ValueType {
    /// The type a base type of `size` bytes is captured as.
    pub fn of_base(encoding: BaseEncoding, size: u64) -> Option<ValueType> {
        use BaseEncoding::*;
        match encoding {
            SignedChar | UnsignedChar if size == 1 => Some(Self::Char),
            Boolean if size == 1 => Some(Self::Bool),
            Signed | SignedChar => Self::integer(true, size),
            Unsigned | UnsignedChar | Boolean | Utf => Self::integer(false, size),
            Other => None,
        }
    }

    /// The integer type of `size` bytes.
    pub fn integer(signed: bool, size: u64) -> Option<ValueType> {
        Some(match (signed, size) {
            (true, 1) => Self::I8,
            (true, 2) => Self::I16,
            (true, 4) => Self::I32,
            (true, 8) => Self::I64,
            (false, 1) => Self::U8,
            (false, 2) => Self::U16,
            (false, 4) => Self::U32,
            (false, 8) => Self::U64,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_types_by_encoding_and_size() {
        use BaseEncoding::*;
        assert_eq!(ValueType::of_base(SignedChar, 1), Some(ValueType::Char));
        assert_eq!(ValueType::of_base(Boolean, 1), Some(ValueType::Bool));
        assert_eq!(ValueType::of_base(Signed, 4), Some(ValueType::I32));
        assert_eq!(ValueType::of_base(Unsigned, 8), Some(ValueType::U64));
        assert_eq!(ValueType::of_base(Utf, 4), Some(ValueType::U32));
        assert_eq!(ValueType::of_base(Signed, 16), None);
        assert_eq!(ValueType::of_base(Other, 8), None);
    }
}
