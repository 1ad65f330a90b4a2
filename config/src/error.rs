//! Errors from loading a config, each saying which file, where, and which field is wrong.

use std::{fmt, path::PathBuf};

use crate::Position;

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read config", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Every problem found, in file order: all schema errors (wrong type, unknown key or name,
    /// missing field) and the semantic problems of the parts that parse. Malformed YAML has no
    /// document to search, so it gets one problem, the first met (usually its syntax error).
    #[error("{}", ProblemLines { path, problems })]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// The problems found, empty for an unreadable file.
    pub fn problems(&self) -> &[Problem] {
        match self {
            Self::Read { .. } => &[],
            Self::Invalid { problems, .. } => problems,
        }
    }
}

/// One mistake in a config: where, which field, what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Unknown (default) when the value did not come from the file (e.g. the environment).
    pub position: Position,
    /// Field path such as `probes[0].functions[2].args[1].type`.
    pub field: String,
    pub message: String,
}

impl Problem {
    pub fn new(position: Position, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            position,
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.position != Position::default() {
            write!(f, "{}: ", self.position)?;
        }
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// One line per problem: `file:line:column: field: message`.
struct ProblemLines<'a> {
    path: &'a std::path::Path,
    problems: &'a [Problem],
}

impl fmt::Display for ProblemLines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            // `file:line:col: field: ...`, or `file: field: ...` when there is no position.
            let gap = if problem.position == Position::default() {
                " "
            } else {
                ""
            };
            write!(f, "{}:{gap}{problem}", self.path.display())?;
        }
        Ok(())
    }
}
