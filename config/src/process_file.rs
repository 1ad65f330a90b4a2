//! `executable:` and `library:`: a target named by the processes that run or load a file,
//! rather than by a file of spanprobe's own filesystem: in a container, a program's path means
//! something only inside its own mount namespace.

use std::{fmt, path::PathBuf};

use serde::{Deserialize, Deserializer, de};

/// A file as the processes that run or load it name it: at this path in their own mount
/// namespace, or with a file name that matches a glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessFile {
    /// An absolute path, as the process's own root sees it (`/usr/local/bin/app`).
    Path(PathBuf),
    /// A file name or a glob on it (`app`, `python3*`), without a directory.
    Name(glob::Pattern),
}

impl ProcessFile {
    /// Reads `text`: an absolute path, or a file name that may be a glob.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("must not be empty".to_owned());
        }
        if text.starts_with('/') {
            return Ok(Self::Path(PathBuf::from(text)));
        }
        if text.contains('/') {
            return Err(format!(
                "`{text}`: an absolute path, as the processes' own mount namespace names it \
                 (`/usr/local/bin/app`), or a file name that may be a glob (`app*`), without a \
                 directory"
            ));
        }
        glob::Pattern::new(text)
            .map(Self::Name)
            .map_err(|error| format!("`{text}`: not a glob: {error}"))
    }

    /// Whether a file named `name` matches, by name alone (a path needs the process's own
    /// root to be told; see the exporter's discovery).
    pub fn matches_name(&self, name: &str) -> bool {
        match self {
            Self::Path(path) => path.file_name().is_some_and(|own| own == name),
            Self::Name(pattern) => pattern.matches(name),
        }
    }
}

impl fmt::Display for ProcessFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Path(path) => write!(f, "{}", path.display()),
            Self::Name(pattern) => f.write_str(pattern.as_str()),
        }
    }
}

impl<'de> Deserialize<'de> for ProcessFile {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_names() {
        assert_eq!(
            ProcessFile::parse("/usr/local/bin/app"),
            Ok(ProcessFile::Path("/usr/local/bin/app".into()))
        );
        let glob = ProcessFile::parse("python3*").unwrap();
        assert!(glob.matches_name("python3.11"));
        assert!(!glob.matches_name("python"));
        let path = ProcessFile::parse("/opt/app").unwrap();
        assert!(path.matches_name("app"));
        assert!(!path.matches_name("apps"));
    }

    #[test]
    fn relative_paths_empty_text_and_bad_globs_are_refused() {
        for (text, says) in [
            ("bin/app", "an absolute path"),
            ("./app", "an absolute path"),
            ("", "must not be empty"),
            ("app[", "not a glob"),
        ] {
            let error = ProcessFile::parse(text).unwrap_err();
            assert!(error.contains(says), "{text:?}: {error}");
        }
    }
}
