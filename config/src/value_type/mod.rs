//! The types a captured argument or return value can be read as, each end to end in this
//! module: its name in the config ([`names`]), what the kernel reads for it ([`ValueType::memory`]),
//! how its register is cast ([`ValueType::extend`], which decoding and `error_when` share),
//! how a capture becomes a value ([`decode`]), how `check` shows it, and the DWARF base types
//! that map to it ([`dwarf`]). Adding a type is this folder and its tests.

mod decode;
mod dwarf;
mod names;

use std::fmt;

use serde::{Deserialize, Deserializer, de};
use spanprobe_common::MemoryKind;

pub use decode::Decoded;
pub use dwarf::BaseEncoding;
pub use names::ValueTypeError;

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

/// Default `max_len` of a `str` argument, and `len` of a `bytes` one with `len_arg`.
pub const DEFAULT_STR_LEN: u16 = 64;
/// Largest `max_len` / `len` of a memory argument.
pub const MAX_MEMORY_LEN: u16 = spanprobe_common::MAX_MEMORY_LEN as u16;

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

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(ty, _)| *ty == self)
            .map_or("?", |(_, name)| name)
    }

    /// What the kernel reads behind the register, if anything.
    pub fn memory(self) -> MemoryKind {
        match self {
            Self::Str => MemoryKind::Str,
            Self::Bytes => MemoryKind::Bytes,
            _ => MemoryKind::None,
        }
    }

    /// How the kernel reads the memory when another argument counts its bytes (`len_arg`): a
    /// counted string (a Rust `&str`) has no NUL, so it is read as bytes.
    pub fn counted_memory(self) -> MemoryKind {
        match self.memory() {
            MemoryKind::Str => MemoryKind::Bytes,
            memory => memory,
        }
    }

    /// Whether the value is memory the register points to, rather than the register itself.
    pub fn is_memory(self) -> bool {
        self.memory() != MemoryKind::None
    }

    /// Bytes a value of this type takes in memory, read at the end of a chain of pointers;
    /// 0 for a memory type, which is read behind the chain's last address instead.
    pub fn size(self) -> u8 {
        match self {
            Self::I8 | Self::U8 | Self::Bool | Self::Char => 1,
            Self::I16 | Self::U16 => 2,
            Self::I32 | Self::U32 => 4,
            Self::I64 | Self::U64 | Self::Ptr => 8,
            Self::Str | Self::Bytes => 0,
        }
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

    /// Bytes of memory read for a value of this type with the config's `max_len` and `len`
    /// (0 for register values).
    pub fn memory_len(self, max_len: Option<u16>, len: Option<u16>) -> u16 {
        match self {
            Self::Str => max_len.unwrap_or(DEFAULT_STR_LEN),
            // Without `len_arg`, `len` is required.
            Self::Bytes => len.unwrap_or(DEFAULT_STR_LEN),
            _ => 0,
        }
    }

    /// Bytes a value of this type takes in the call record's data area, reading `memory_len`
    /// bytes, `counted` by another argument or not (0 for register values, which travel in
    /// the event itself).
    pub fn data_size(self, memory_len: u16, counted: bool) -> usize {
        match self.memory() {
            MemoryKind::None => 0,
            memory => spanprobe_common::memory_area(
                counted || memory == MemoryKind::Str,
                usize::from(memory_len),
            ),
        }
    }

    /// Bytes the kernel reads at most: a string's area; a counted read one past `memory_len`,
    /// to tell that the count was larger.
    pub fn read_len(self, memory_len: u16, counted: bool) -> usize {
        if counted && self.is_memory() {
            usize::from(memory_len) + 1
        } else {
            self.data_size(memory_len, false)
        }
    }

    /// What is wrong with `max_len`, `len` and `len_arg` for this type: (the key, why).
    pub fn length_problems(
        self,
        max_len: Option<u16>,
        len: Option<u16>,
        counted: bool,
    ) -> Vec<(&'static str, String)> {
        let out_of_range = |n: u16| n == 0 || n > MAX_MEMORY_LEN;
        let range = |n: u16| format!("{n} is out of range: 1..={MAX_MEMORY_LEN}");
        let mut problems = Vec::new();
        match (self, max_len) {
            (Self::Str, Some(max)) if out_of_range(max) => problems.push(("max_len", range(max))),
            (Self::Str, _) | (_, None) => {}
            (_, Some(_)) => {
                problems.push(("max_len", "only `str` arguments take `max_len`".into()))
            }
        }
        if counted && !self.is_memory() {
            problems.push((
                "len_arg",
                "only `str` and `bytes` arguments take `len_arg`".into(),
            ));
        }
        match (self, len) {
            (Self::Bytes, None) if !counted => problems.push((
                "len",
                "`bytes` needs `len`, the number of bytes to read, or `len_arg`, the argument that \
                 counts them"
                    .into(),
            )),
            (Self::Bytes, Some(len)) if out_of_range(len) => problems.push(("len", range(len))),
            (Self::Bytes, _) | (_, None) => {}
            (_, Some(_)) => problems.push(("len", "only `bytes` arguments take `len`".into())),
        }
        problems
    }

    /// How `check` shows what is read for this type: ` up to 64 bytes`, or nothing. `counted`:
    /// another value says how many bytes there are (`len_arg`), so `memory_len` is a maximum.
    pub fn describe_read(self, memory_len: u16, counted: bool) -> String {
        match self {
            Self::Str => format!(" up to {memory_len} bytes"),
            Self::Bytes if counted => format!(" up to {memory_len} bytes"),
            Self::Bytes => format!(" {memory_len} bytes"),
            _ => String::new(),
        }
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
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
    fn a_counted_read_is_described_by_its_maximum() {
        assert_eq!(ValueType::Bytes.describe_read(16, false), " 16 bytes");
        assert_eq!(
            ValueType::Bytes.describe_read(512, true),
            " up to 512 bytes"
        );
        assert_eq!(ValueType::Str.describe_read(64, false), " up to 64 bytes");
        assert_eq!(ValueType::I32.describe_read(0, false), "");
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
    fn only_memory_types_read_memory() {
        for (ty, _) in ValueType::ALL {
            assert_eq!(
                ty.is_memory(),
                matches!(ty, ValueType::Str | ValueType::Bytes),
                "{ty}"
            );
            if !ty.is_memory() {
                assert_eq!(ty.memory_len(Some(8), Some(8)), 0, "{ty}");
                assert_eq!(ty.data_size(8, true), 0, "{ty}");
            }
        }
        assert_eq!(ValueType::Str.memory(), MemoryKind::Str);
        assert_eq!(ValueType::Str.size(), 0);
        assert_eq!(ValueType::I16.size(), 2);
        assert_eq!(ValueType::Ptr.size(), 8);
        assert_eq!(ValueType::Str.memory_len(None, None), DEFAULT_STR_LEN);
        assert_eq!(ValueType::Bytes.memory_len(None, Some(3)), 3);
        let string_area = spanprobe_common::memory_area(true, 64);
        assert_eq!(ValueType::Str.data_size(64, false), string_area);
        assert_eq!(ValueType::Bytes.data_size(3, false), 3);
        assert_eq!(ValueType::Bytes.read_len(3, false), 3);
    }

    #[test]
    fn a_counted_read_is_bytes_with_room_for_one_more() {
        assert_eq!(ValueType::Bytes.counted_memory(), MemoryKind::Bytes);
        assert_eq!(ValueType::Str.counted_memory(), MemoryKind::Bytes);
        assert_eq!(ValueType::Str.read_len(16, true), 17);
        assert_eq!(ValueType::Bytes.read_len(16, true), 17);
        assert!(ValueType::Bytes.data_size(16, true) >= 17);
    }

    #[test]
    fn lengths_belong_to_their_type() {
        assert!(
            ValueType::Str
                .length_problems(Some(16), None, false)
                .is_empty()
        );
        assert!(
            ValueType::Bytes
                .length_problems(None, Some(16), false)
                .is_empty()
        );
        assert!(
            ValueType::Bytes
                .length_problems(None, None, true)
                .is_empty()
        );
        assert!(ValueType::Str.length_problems(None, None, true).is_empty());
        assert!(ValueType::I32.length_problems(None, None, false).is_empty());
        let keys = |problems: Vec<(&'static str, String)>| {
            problems.into_iter().map(|(key, _)| key).collect::<Vec<_>>()
        };
        let bytes = ValueType::Bytes.length_problems(None, None, false);
        assert_eq!(keys(bytes), ["len"]);
        let str = ValueType::Str.length_problems(Some(0), Some(2), false);
        assert_eq!(keys(str), ["max_len", "len"]);
        let ptr = ValueType::Ptr.length_problems(Some(4), None, false);
        assert_eq!(keys(ptr), ["max_len"]);
        let int = ValueType::U64.length_problems(None, None, true);
        assert_eq!(keys(int), ["len_arg"]);
        let too_long = MAX_MEMORY_LEN + 1;
        assert_eq!(
            ValueType::Bytes.length_problems(None, Some(too_long), false),
            [(
                "len",
                format!("{too_long} is out of range: 1..={MAX_MEMORY_LEN}")
            )]
        );
    }
}
