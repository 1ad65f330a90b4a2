//! When an argument is read, and where a memory argument's length comes from: an output
//! buffer (`read`'s, `SSL_read`'s) holds what the call wrote only once it returns, and its
//! length is the return value or a word the call wrote behind another argument.

use std::fmt;

use serde::{Deserialize, Deserializer, de};

/// When an argument is read: `at: entry` (the default) or `at: return`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadAt {
    /// When the call enters, as every argument by default.
    #[default]
    Entry,
    /// When the call returns, from the argument's value at entry (kept by the kernel, as the
    /// register may hold anything by then): what the call wrote behind a pointer.
    Return,
}

impl fmt::Display for ReadAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReadAt::Entry => "entry",
            ReadAt::Return => "return",
        })
    }
}

/// `len_arg`: what counts the bytes of a `str` or `bytes` argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LenArg {
    /// `len_arg: N`: argument `N`'s value (a `write` buffer's count, a Rust `&str`'s length).
    Arg(u8),
    /// `len_arg: return`: the return value, with `at: return` (`read`'s, `SSL_read`'s).
    Return,
    /// `len_arg: "*N"`: the word argument `N` points to, read at return, with `at: return`
    /// (`SSL_read_ex`'s `size_t *readbytes`).
    Behind(u8),
    /// Set by resolution, never written in a config: the word after the pointer a `path` ends
    /// at, where Go keeps the length of its strings and slices, and Rust of its `&str` and
    /// `&[u8]`.
    Beside,
}

impl LenArg {
    /// The argument it reads, if any.
    pub fn arg(self) -> Option<u8> {
        match self {
            LenArg::Arg(index) | LenArg::Behind(index) => Some(index),
            LenArg::Return | LenArg::Beside => None,
        }
    }

    /// Whether only the return can count the bytes: the count is what the call did.
    pub fn needs_return(self) -> bool {
        matches!(self, LenArg::Return | LenArg::Behind(_))
    }
}

impl fmt::Display for LenArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LenArg::Arg(index) => write!(f, "{index}"),
            LenArg::Return => f.write_str("return"),
            LenArg::Behind(index) => write!(f, "\"*{index}\""),
            LenArg::Beside => f.write_str("its length beside it"),
        }
    }
}

const EXPECTED: &str = "an argument's index (`2`), `return` (the return value), or `\"*N\"` (the \
                        word argument N points to, read at return)";

impl std::str::FromStr for LenArg {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let index = |digits: &str| {
            digits
                .trim()
                .parse::<u8>()
                .map_err(|_| format!("`{text}` is not {EXPECTED}"))
        };
        if text == "return" {
            Ok(LenArg::Return)
        } else if let Some(behind) = text.strip_prefix('*') {
            index(behind.trim_start_matches("arg")).map(LenArg::Behind)
        } else {
            index(text).map(LenArg::Arg)
        }
    }
}

impl<'de> Deserialize<'de> for LenArg {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LenArgVisitor;

        impl de::Visitor<'_> for LenArgVisitor {
            type Value = LenArg;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(EXPECTED)
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<LenArg, E> {
                u8::try_from(value)
                    .map(LenArg::Arg)
                    .map_err(|_| E::custom(format!("`{value}` is not {EXPECTED}")))
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<LenArg, E> {
                u8::try_from(value)
                    .map(LenArg::Arg)
                    .map_err(|_| E::custom(format!("`{value}` is not {EXPECTED}")))
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<LenArg, E> {
                text.parse().map_err(E::custom)
            }
        }

        deserializer.deserialize_any(LenArgVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        for (text, expected) in [
            ("2", LenArg::Arg(2)),
            ("return", LenArg::Return),
            ("*3", LenArg::Behind(3)),
            ("*arg3", LenArg::Behind(3)),
        ] {
            assert_eq!(text.parse::<LenArg>(), Ok(expected), "{text}");
        }
    }

    #[test]
    fn refuses_what_names_no_count() {
        for text in ["ret", "*", "-1", "300", "*x"] {
            let error = text.parse::<LenArg>().unwrap_err();
            assert!(
                error.contains(&format!("`{text}` is not an argument's index")),
                "{error}"
            );
        }
    }

    #[test]
    fn shows_as_written() {
        for (len_arg, text) in [
            (LenArg::Arg(2), "2"),
            (LenArg::Return, "return"),
            (LenArg::Behind(3), "\"*3\""),
        ] {
            assert_eq!(len_arg.to_string(), text);
        }
    }
}
