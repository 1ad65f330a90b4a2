//! `when`: conditions on a function's captured arguments, as written (`"== 42"`,
//! `"prefix /api/"`), and what each means for the argument it names: a comparison with a
//! number, or for a string or bytes with a text.

use std::fmt;

use serde::{Deserialize, Deserializer, de};

use crate::{ArgSpec, Comparison, Condition, ValueType};

/// The longest text a condition compares a string or bytes with: the kernel compares it.
pub const MAX_CONDITION_TEXT: usize = spanprobe_common::MAX_CONDITION_TEXT;

/// One condition of `when`, as written: an operator and its operand, which the argument's
/// type reads as a number or as a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhenCondition {
    pub op: WhenOp,
    /// What follows the operator, without the spaces around it.
    pub operand: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenOp {
    Compare(Comparison),
    /// `prefix`: a string or bytes that start with the text.
    Prefix,
}

/// A condition as its argument's type reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgTest {
    /// A number (or pointer) compared with a constant.
    Number(Condition),
    /// A string or bytes compared with a text.
    Text(TextTest),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextTest {
    pub op: TextOp,
    pub text: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextOp {
    Eq,
    Ne,
    Prefix,
}

impl WhenCondition {
    /// What the condition means for `arg`, whose type is known (written, or from DWARF); why
    /// it cannot be decided as written otherwise.
    pub fn for_arg(&self, arg: &ArgSpec) -> Result<ArgTest, String> {
        let ty = arg.value_type();
        if !ty.is_memory() {
            return self.number(ty).map(ArgTest::Number);
        }
        let test = self.text(ty)?;
        // Fixed-size bytes have one length: a text of another can never be found.
        if ty == ValueType::Bytes
            && arg.len_arg.is_none()
            && let Some(len) = arg.len
        {
            let (text_len, len) = (test.text.len(), usize::from(len));
            let never = match test.op {
                TextOp::Eq | TextOp::Ne => text_len != len,
                TextOp::Prefix => text_len > len,
            };
            if never {
                return Err(format!(
                    "the text is {text_len} bytes and the value always {len}: `{self}` could \
                     never be decided as written"
                ));
            }
        }
        // A C string ends at its first NUL; a counted one (`len_arg`, Go's, Rust's) need not.
        if ty == ValueType::Str && arg.len_arg.is_none() && test.text.contains(&0) {
            return Err(format!(
                "`{self}` holds a NUL, which ends a C string: it could never be found"
            ));
        }
        Ok(ArgTest::Text(test))
    }

    fn number(&self, ty: ValueType) -> Result<Condition, String> {
        let WhenOp::Compare(op) = self.op else {
            return Err(format!(
                "`prefix` compares strings and bytes; this value is a `{ty}`, a number"
            ));
        };
        let value = crate::condition::parse_integer(&self.operand).ok_or_else(|| {
            format!(
                "`{}` is not an integer, and this value is a `{ty}`, a number",
                self.operand
            )
        })?;
        if ty.extend(value as u64) != value {
            return Err(format!(
                "a `{ty}` never holds {value}: `{self}` could never be decided as written"
            ));
        }
        Ok(Condition { op, value })
    }

    fn text(&self, ty: ValueType) -> Result<TextTest, String> {
        let op = match self.op {
            WhenOp::Prefix => TextOp::Prefix,
            WhenOp::Compare(Comparison::Eq) => TextOp::Eq,
            WhenOp::Compare(Comparison::Ne) => TextOp::Ne,
            WhenOp::Compare(_) => {
                return Err(format!(
                    "a `{ty}` is compared with ==, != or prefix, not with `{self}`"
                ));
            }
        };
        let text = unquote(&self.operand)?;
        if text.len() > MAX_CONDITION_TEXT {
            return Err(format!(
                "the text is {} bytes; at most {MAX_CONDITION_TEXT} are compared in the kernel",
                text.len()
            ));
        }
        Ok(TextTest { op, text })
    }
}

/// A text as written: as it is, or between double quotes with `\"`, `\\`, `\n`, `\r`, `\t`,
/// `\0` and `\xNN` escapes (for spaces at its ends, and bytes that are not text).
fn unquote(operand: &str) -> Result<Vec<u8>, String> {
    let Some(inner) = operand.strip_prefix('"') else {
        return Ok(operand.as_bytes().to_vec());
    };
    let inner = inner
        .strip_suffix('"')
        .ok_or_else(|| format!("`{operand}` opens a quote it does not close"))?;
    let mut text = Vec::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut utf8 = [0; 4];
            text.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
            continue;
        }
        let byte = match chars.next() {
            Some('"') => b'"',
            Some('\\') => b'\\',
            Some('n') => b'\n',
            Some('r') => b'\r',
            Some('t') => b'\t',
            Some('0') => 0,
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                u8::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| hex.len() == 2)
                    .ok_or_else(|| format!("`\\x{hex}` in `{operand}` is not a byte"))?
            }
            other => {
                return Err(format!(
                    "`\\{}` in `{operand}` is no escape; write \\\", \\\\, \\n, \\r, \\t, \\0 \
                     or \\xNN",
                    other.map(String::from).unwrap_or_default()
                ));
            }
        };
        text.push(byte);
    }
    Ok(text)
}

impl std::str::FromStr for WhenCondition {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if let Some(rest) = text.strip_prefix("prefix")
            && (rest.is_empty() || rest.starts_with(char::is_whitespace))
        {
            return Ok(Self {
                op: WhenOp::Prefix,
                operand: rest.trim().to_owned(),
            });
        }
        let (op, operand) = crate::condition::split_comparison(text).map_err(|what| {
            format!(
                "{what}; write one of <, <=, >, >=, ==, != and a number, or for a string or \
                 bytes ==, != or prefix and a text, e.g. `== 42` or `prefix /api/`"
            )
        })?;
        Ok(Self {
            op: WhenOp::Compare(op),
            operand: operand.trim().to_owned(),
        })
    }
}

impl fmt::Display for WhenCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.op {
            WhenOp::Compare(op) => write!(f, "{} {}", op.symbol(), self.operand),
            WhenOp::Prefix => write!(f, "prefix {}", self.operand),
        }
    }
}

impl<'de> Deserialize<'de> for WhenCondition {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arg(ty: ValueType) -> ArgSpec {
        ArgSpec::new(0, Some("a"), ty)
    }

    fn test(condition: &str, ty: ValueType) -> Result<ArgTest, String> {
        condition.parse::<WhenCondition>()?.for_arg(&arg(ty))
    }

    fn text(op: TextOp, text: &[u8]) -> Result<ArgTest, String> {
        Ok(ArgTest::Text(TextTest {
            op,
            text: text.to_vec(),
        }))
    }

    #[test]
    fn numbers_for_numbers() {
        assert_eq!(
            test("== 42", ValueType::U32),
            Ok(ArgTest::Number(Condition {
                op: Comparison::Eq,
                value: 42
            }))
        );
        assert_eq!(
            test(">= -1", ValueType::I8),
            Ok(ArgTest::Number(Condition {
                op: Comparison::Ge,
                value: -1
            }))
        );
        assert!(
            test("== -1", ValueType::U8)
                .unwrap_err()
                .contains("never holds -1")
        );
        assert!(
            test("== GET", ValueType::U32)
                .unwrap_err()
                .contains("not an integer")
        );
        assert!(
            test("prefix 4", ValueType::U32)
                .unwrap_err()
                .contains("compares strings")
        );
    }

    #[test]
    fn texts_for_strings_and_bytes() {
        assert_eq!(
            test("prefix /api/", ValueType::Str),
            text(TextOp::Prefix, b"/api/")
        );
        assert_eq!(test("== 42", ValueType::Str), text(TextOp::Eq, b"42"));
        assert_eq!(test("!=GET", ValueType::Str), text(TextOp::Ne, b"GET"));
        assert_eq!(
            test(r#"== " a\"b ""#, ValueType::Str),
            text(TextOp::Eq, b" a\"b ")
        );
        assert_eq!(test("prefix", ValueType::Str), text(TextOp::Prefix, b""));
        assert_eq!(
            test(r#"prefix "\x7fELF\t""#, ValueType::Bytes),
            text(TextOp::Prefix, b"\x7fELF\t")
        );
        assert!(
            test("< abc", ValueType::Str)
                .unwrap_err()
                .contains("==, != or prefix")
        );
        assert!(
            test(r#"== "\0""#, ValueType::Str)
                .unwrap_err()
                .contains("NUL")
        );
        assert!(
            test(r#"== "ab"#, ValueType::Str)
                .unwrap_err()
                .contains("does not close")
        );
        assert!(
            test(r#"== "\q""#, ValueType::Str)
                .unwrap_err()
                .contains("no escape")
        );
        assert!(
            test(r#"== "\x4""#, ValueType::Str)
                .unwrap_err()
                .contains("not a byte")
        );
        let long = format!("== {}", "x".repeat(MAX_CONDITION_TEXT + 1));
        assert!(
            test(&long, ValueType::Str)
                .unwrap_err()
                .contains("at most 64")
        );
        assert!(
            test(
                &format!("== {}", "x".repeat(MAX_CONDITION_TEXT)),
                ValueType::Str
            )
            .is_ok()
        );
    }

    #[test]
    fn fixed_bytes_have_one_length() {
        let mut bytes = arg(ValueType::Bytes);
        bytes.len = Some(4);
        let condition = |text: &str| text.parse::<WhenCondition>().unwrap().for_arg(&bytes);
        assert!(condition("== abcd").is_ok());
        assert!(condition("prefix ab").is_ok());
        assert!(condition("== abc").unwrap_err().contains("always 4"));
        assert!(condition("prefix abcde").unwrap_err().contains("always 4"));
    }

    #[test]
    fn refuses_unknown_operators() {
        let error = "~= a".parse::<WhenCondition>().unwrap_err();
        assert!(error.contains("`~= a` is not a comparison"), "{error}");
        assert!("prefixed".parse::<WhenCondition>().is_err());
        assert_eq!(
            "prefix  /a ".parse::<WhenCondition>().unwrap().to_string(),
            "prefix /a"
        );
    }
}
