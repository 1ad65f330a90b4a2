//! A type's name as the config spells it, and the names people type instead: C's, other
//! languages', suggested rather than accepted, so that a config says exactly how a value is read.

use std::str::FromStr;

use super::ValueType;

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
