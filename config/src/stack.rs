//! `stack:`: whether a span carries the user stack that led to its call, and how that stack is
//! unwound: along frame pointers in the kernel, or from a copy of the stack in userspace by the
//! binaries' unwind tables, for code built without frame pointers.

use std::fmt;

use serde::{
    Deserialize, Deserializer,
    de::{self, MapAccess, Visitor, value::MapAccessDeserializer},
};

/// A function's or probe's `stack`: `false` (the default), `true`, or
/// `{ unwind: fp | dwarf | auto, bytes: N }`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StackSpec {
    #[default]
    Off,
    On(StackOptions),
}

impl StackSpec {
    /// How the stack is captured, if it is.
    pub fn options(self) -> Option<StackOptions> {
        match self {
            Self::Off => None,
            Self::On(options) => Some(options),
        }
    }

    pub fn is_on(self) -> bool {
        self != Self::Off
    }

    /// What is wrong with the options, as (key under `stack`, problem).
    pub fn problems(self) -> Option<(&'static str, String)> {
        let options = self.options()?;
        let bytes = options.bytes;
        let fits = (MIN_STACK_WINDOW..=spanprobe_common::MAX_STACK_WINDOW).contains(&bytes);
        (!fits || bytes % 8 != 0).then(|| {
            (
                "bytes",
                format!(
                    "{bytes}: the bytes of stack copied at each entry are a multiple of 8 from \
                     {MIN_STACK_WINDOW} to {}",
                    spanprobe_common::MAX_STACK_WINDOW
                ),
            )
        })
    }
}

/// How a stack is captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StackOptions {
    pub unwind: Unwind,
    /// With `dwarf` (or `auto` picking it): bytes of stack copied at entry, from the stack
    /// pointer up. A stack deeper than this is cut where the copy ends, marked truncated.
    pub bytes: u32,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            unwind: Unwind::Auto,
            bytes: DEFAULT_STACK_WINDOW,
        }
    }
}

/// The bytes of stack `unwind: dwarf` copies unless told: enough for the frames of most
/// programs' deepest calls (Debian's python3.11 reaches `main` from a nested Python call in
/// under 8 KiB), at a copy cost of about a microsecond.
pub const DEFAULT_STACK_WINDOW: u32 = 16 << 10;
/// The fewest bytes of stack a window may copy.
pub const MIN_STACK_WINDOW: u32 = 512;

/// How a stack is unwound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unwind {
    /// Frame pointers where the probed binary's code keeps them, else `dwarf`.
    #[default]
    Auto,
    /// Along the frame-pointer chain, in the kernel.
    #[serde(rename = "fp")]
    FramePointers,
    /// From a copy of the stack, by the unwind tables (`.eh_frame`, `.debug_frame`) of the
    /// files the process maps, in userspace.
    Dwarf,
}

impl fmt::Display for Unwind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::FramePointers => "fp",
            Self::Dwarf => "dwarf",
        })
    }
}

impl<'de> Deserialize<'de> for StackSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StackVisitor;
        impl<'de> Visitor<'de> for StackVisitor {
            type Value = StackSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`true`, `false`, or `{ unwind: fp | dwarf | auto, bytes: N }`")
            }
            fn visit_bool<E: de::Error>(self, on: bool) -> Result<StackSpec, E> {
                Ok(if on {
                    StackSpec::On(StackOptions::default())
                } else {
                    StackSpec::Off
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<StackSpec, A::Error> {
                StackOptions::deserialize(MapAccessDeserializer::new(map)).map(StackSpec::On)
            }
        }
        deserializer.deserialize_any(StackVisitor)
    }
}
