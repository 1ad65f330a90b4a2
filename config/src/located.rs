//! Values that remember where in the file they were written, so that a problem found after
//! parsing (an unknown symbol, a duplicate) can still point at its line and column.

use std::{fmt, ops::Deref};

use serde::{Deserialize, Deserializer};

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

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Located<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // The YAML library's own span wrapper; this is the only place that knows it.
        let spanned = serde_saphyr::Spanned::<T>::deserialize(deserializer)?;
        Ok(Self {
            value: spanned.value,
            position: Position {
                line: spanned.referenced.line() as u32,
                column: spanned.referenced.column() as u32,
            },
        })
    }
}
