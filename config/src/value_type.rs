//! The types a captured argument or return value can be decoded as.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, de};

/// How to decode a captured register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueType {
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    Bool,
    /// A C `char`: one byte, exported as a one-character string.
    Char,
    /// A pointer, exported as a hex string.
    Ptr,
    /// A NUL-terminated string the argument points to, read at entry (up to `max_len`).
    Str,
    /// `len` bytes the argument points to, read at entry, exported as hex.
    Bytes,
}

impl ValueType {
    /// Every type, with the name the config uses for it.
    pub const ALL: [(ValueType, &'static str); 13] = [
        (ValueType::I8, "i8"),
        (ValueType::I16, "i16"),
        (ValueType::I32, "i32"),
        (ValueType::I64, "i64"),
        (ValueType::U8, "u8"),
        (ValueType::U16, "u16"),
        (ValueType::U32, "u32"),
        (ValueType::U64, "u64"),
        (ValueType::Bool, "bool"),
        (ValueType::Char, "char"),
        (ValueType::Ptr, "ptr"),
        (ValueType::Str, "str"),
        (ValueType::Bytes, "bytes"),
    ];

    /// Whether the value is memory the register points to, rather than the register itself.
    pub fn is_memory(self) -> bool {
        matches!(self, Self::Str | Self::Bytes)
    }

    /// A raw 64-bit register read as this type: the low bits of its width, sign-extended for
    /// signed types (the System V ABI leaves the upper bits of a narrow argument undefined).
    /// `bool` and `char` are one byte; a pointer, and the address behind a memory type, all
    /// 64 bits. The one table of these casts: decoding and `error_when` both read it.
    pub fn extend(self, raw: u64) -> i128 {
        match self {
            Self::I8 => i128::from(raw as i8),
            Self::I16 => i128::from(raw as i16),
            Self::I32 => i128::from(raw as i32),
            Self::I64 => i128::from(raw as i64),
            Self::U8 | Self::Char | Self::Bool => i128::from(raw as u8),
            Self::U16 => i128::from(raw as u16),
            Self::U32 => i128::from(raw as u32),
            Self::U64 | Self::Ptr | Self::Str | Self::Bytes => i128::from(raw),
        }
    }

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(ty, _)| *ty == self)
            .map_or("?", |(_, name)| name)
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a type name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueTypeError {
    #[error(
        "`{0}` cannot be captured: floating-point arguments and return values are passed in XMM \
         registers, which uprobes do not see"
    )]
    Float(String),
    #[error("unknown type `{name}`{}; expected one of {}", did_you_mean(.suggestion), expected())]
    Unknown {
        name: String,
        suggestion: Option<&'static str>,
    },
}

/// The names people type for the types, from C and other languages: suggested, not accepted,
/// so that a config says exactly how each value is read.
const ALIASES: [(&str, ValueType); 34] = [
    ("int", ValueType::I32),
    ("signed", ValueType::I32),
    ("signed int", ValueType::I32),
    ("unsigned", ValueType::U32),
    ("unsigned int", ValueType::U32),
    ("short", ValueType::I16),
    ("unsigned short", ValueType::U16),
    ("long", ValueType::I64),
    ("long long", ValueType::I64),
    ("unsigned long", ValueType::U64),
    ("unsigned long long", ValueType::U64),
    ("int8_t", ValueType::I8),
    ("int16_t", ValueType::I16),
    ("int32_t", ValueType::I32),
    ("int64_t", ValueType::I64),
    ("uint8_t", ValueType::U8),
    ("uint16_t", ValueType::U16),
    ("uint32_t", ValueType::U32),
    ("uint64_t", ValueType::U64),
    ("size_t", ValueType::U64),
    ("ssize_t", ValueType::I64),
    ("off_t", ValueType::I64),
    ("isize", ValueType::I64),
    ("usize", ValueType::U64),
    ("_Bool", ValueType::Bool),
    ("boolean", ValueType::Bool),
    ("string", ValueType::Str),
    ("char *", ValueType::Str),
    ("char*", ValueType::Str),
    ("const char *", ValueType::Str),
    ("const char*", ValueType::Str),
    ("pointer", ValueType::Ptr),
    ("void *", ValueType::Ptr),
    ("void*", ValueType::Ptr),
];

fn did_you_mean(suggestion: &Option<&'static str>) -> String {
    suggestion.map_or_else(String::new, |s| format!(" (did you mean `{s}`?)"))
}

fn expected() -> String {
    let names: Vec<_> = ValueType::ALL.iter().map(|(_, name)| *name).collect();
    names.join(", ")
}

impl FromStr for ValueType {
    type Err = ValueTypeError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        if let Some((ty, _)) = ValueType::ALL.iter().find(|(_, n)| *n == name) {
            return Ok(*ty);
        }
        if matches!(name, "f32" | "f64" | "float" | "double") {
            return Err(ValueTypeError::Float(name.to_owned()));
        }
        let spaced = name.split_whitespace().collect::<Vec<_>>().join(" ");
        let suggestion = ALIASES
            .iter()
            .find(|(alias, _)| *alias == spaced)
            .map(|(_, ty)| ty.name())
            .or_else(|| {
                ValueType::ALL
                    .iter()
                    .map(|(_, candidate)| {
                        (strsim::damerau_levenshtein(name, candidate), *candidate)
                    })
                    .filter(|(distance, _)| *distance <= 1)
                    .min()
                    .map(|(_, candidate)| candidate)
            });
        Err(ValueTypeError::Unknown {
            name: name.to_owned(),
            suggestion,
        })
    }
}

impl<'de> Deserialize<'de> for ValueType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_listed_name() {
        for (ty, name) in ValueType::ALL {
            assert_eq!(name.parse::<ValueType>(), Ok(ty));
            assert_eq!(ty.to_string(), name);
        }
    }

    #[test]
    fn extends_by_width_and_sign() {
        let raw = 0xdead_beef_ffff_fffe_u64;
        assert_eq!(ValueType::I32.extend(raw), -2);
        assert_eq!(ValueType::U32.extend(raw), 0xffff_fffe);
        assert_eq!(ValueType::I16.extend(raw), -2);
        assert_eq!(ValueType::U16.extend(raw), 0xfffe);
        assert_eq!(ValueType::I8.extend(raw), -2);
        assert_eq!(ValueType::Bool.extend(0x100), 0);
        assert_eq!(ValueType::U64.extend(u64::MAX), i128::from(u64::MAX));
        assert_eq!(ValueType::I64.extend(u64::MAX), -1);
    }

    #[test]
    fn refuses_floats_with_the_reason() {
        let err = "f64".parse::<ValueType>().unwrap_err();
        assert_eq!(err, ValueTypeError::Float("f64".into()));
        assert!(err.to_string().contains("XMM"));
    }

    #[test]
    fn suggests_the_closest_name() {
        let err = "i33".parse::<ValueType>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown type `i33` (did you mean `i32`?); expected one of \
             i8, i16, i32, i64, u8, u16, u32, u64, bool, char, ptr, str, bytes"
        );
        let err = "text".parse::<ValueType>().unwrap_err();
        assert_eq!(
            err,
            ValueTypeError::Unknown {
                name: "text".into(),
                suggestion: None
            }
        );
    }

    #[test]
    fn suggests_the_type_for_the_names_people_type() {
        let suggestion = |name: &str| match name.parse::<ValueType>() {
            Err(ValueTypeError::Unknown { suggestion, .. }) => suggestion,
            other => panic!("{name}: {other:?}"),
        };
        for (name, expected) in [
            ("int", "i32"),
            ("string", "str"),
            ("long", "i64"),
            ("size_t", "u64"),
            ("char *", "str"),
            ("const  char *", "str"),
            ("unsigned int", "u32"),
            ("void*", "ptr"),
            ("uint8_t", "u8"),
        ] {
            assert_eq!(suggestion(name), Some(expected), "{name}");
        }
    }
}
