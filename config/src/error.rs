//! Errors from loading a config, each saying which file and which field is wrong.

use std::{fmt, path::PathBuf};

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read config", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The YAML is malformed or does not fit the schema. Parsing stops at the first such error.
    #[error("{}: {field}: {message}", location(path, *line, *column))]
    Parse {
        path: PathBuf,
        /// 1-based line, when the parser knows it.
        line: Option<usize>,
        column: Option<usize>,
        /// Field path such as `probes[0].functions[2].args[1].type`, `.` for the document.
        field: String,
        message: String,
    },
    /// The config parsed but makes no sense; every problem found is listed.
    #[error("{}: {} problem{} found:\n{}", path.display(), problems.len(),
        if problems.len() == 1 { "" } else { "s" }, ProblemList(problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

/// One semantic mistake in a config, with the field it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub field: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

struct ProblemList<'a>(&'a [Problem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "  - {problem}")?;
        }
        Ok(())
    }
}

/// `file:line:column`, or as much of it as is known.
fn location(path: &std::path::Path, line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(line), Some(column)) => format!("{}:{line}:{column}", path.display()),
        (Some(line), None) => format!("{}:{line}", path.display()),
        _ => path.display().to_string(),
    }
}
