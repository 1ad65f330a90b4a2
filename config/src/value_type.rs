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
        let suggestion = ValueType::ALL
            .iter()
            .map(|(_, candidate)| (strsim::damerau_levenshtein(name, candidate), *candidate))
            .filter(|(distance, _)| *distance <= 2)
            .min()
            .map(|(_, candidate)| candidate);
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
        let err = "string".parse::<ValueType>().unwrap_err();
        assert_eq!(
            err,
            ValueTypeError::Unknown {
                name: "string".into(),
                suggestion: None
            }
        );
    }
}
