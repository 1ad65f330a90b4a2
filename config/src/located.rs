//! Values that remember where in the file they were written, so that a problem found after
//! parsing (an unknown symbol, a duplicate) can still point at its line and column.

use std::{fmt, marker::PhantomData, ops::Deref};

use serde::{
    Deserialize, Deserializer,
    de::{self, SeqAccess, Visitor},
};

/// A 1-based line and column in the config file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub line: u32,
    pub column: u32,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// A config value and its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Located<T> {
    pub value: T,
    pub position: Position,
}

impl<T> Located<T> {
    /// A value with no position in a file (built in code, or from the environment).
    pub fn unplaced(value: T) -> Self {
        Self {
            value,
            position: Position::default(),
        }
    }
}

impl<T: Default> Default for Located<T> {
    fn default() -> Self {
        Self::unplaced(T::default())
    }
}

impl<T> Deref for Located<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

impl Position {
    /// Where serde-saphyr says a node is (not a `From`, to keep the library out of the API).
    pub(crate) fn of(location: serde_saphyr::Location) -> Self {
        Self {
            line: location.line() as u32,
            column: location.column() as u32,
        }
    }
}

/// The newtype name under which a [`Located`] asks for its value. serde-saphyr handles it as
/// any newtype, and then its own span wrapper gives the position; the diagnostic pass's tree
/// ([`crate::tree`]) recognises it and answers with the sequence (line, column, value).
pub(crate) const NEWTYPE_NAME: &str = "spanprobe::Located";

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Located<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_newtype_struct(NEWTYPE_NAME, LocatedVisitor(PhantomData))
    }
}

struct LocatedVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for LocatedVisitor<T> {
    type Value = Located<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value")
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Located<T>, D::Error> {
        // serde-saphyr's own span wrapper knows where the value is.
        let spanned = serde_saphyr::Spanned::<T>::deserialize(deserializer)?;
        Ok(Located {
            value: spanned.value,
            position: Position::of(spanned.referenced),
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Located<T>, A::Error> {
        let line = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let column = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(1, &self))?;
        let value = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(2, &self))?;
        Ok(Located {
            value,
            position: Position { line, column },
        })
    }
}
