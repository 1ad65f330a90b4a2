//! What runs on a machine, a [`Script`], and what came of it, a [`ScriptOutput`].

use std::{
    fmt,
    path::{Path, PathBuf},
    time::Duration,
};

/// A script's time limit unless it sets one: generous, since a guest runs the verifier and
/// everything else several times slower than the host.
pub const DEFAULT_TIME_LIMIT: Duration = Duration::from_secs(120);

/// A shell script to run on a machine, and what it needs from the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// Names it in reports.
    pub name: String,
    /// The shell text (see the [`vm`](super) module's documentation for its environment).
    pub text: String,
    /// Host files and directories the guest needs, placed at the same paths (directories with
    /// everything in them).
    pub files: Vec<PathBuf>,
    /// Past it, the script is killed (and reported with [`ScriptOutput::timed_out`]).
    pub time_limit: Duration,
}

impl Script {
    /// `text`, called `name`, needing no file and limited to [`DEFAULT_TIME_LIMIT`].
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Script {
        Script {
            name: name.into(),
            text: text.into(),
            files: Vec::new(),
            time_limit: DEFAULT_TIME_LIMIT,
        }
    }

    /// Also needs `path` (a file or a directory) from the host. spanprobe itself is always
    /// there; the shared libraries of ELF files come with them.
    pub fn file(mut self, path: impl AsRef<Path>) -> Script {
        self.files.push(path.as_ref().to_owned());
        self
    }

    /// Also needs each of `paths`, in order: [`Script::file`] for each.
    pub fn with_files(self, paths: impl IntoIterator<Item = impl AsRef<Path>>) -> Script {
        paths.into_iter().fold(self, Script::file)
    }

    /// Limited to `limit` rather than [`DEFAULT_TIME_LIMIT`].
    pub fn time_limit(mut self, limit: Duration) -> Script {
        self.time_limit = limit;
        self
    }
}

/// What came of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptOutput {
    /// The script's name.
    pub name: String,
    /// Its exit status as the shell reports it: 128 + N when signal N ended it.
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
    /// From its start to its end, on the machine's clock (a guest's counts in hundredths).
    pub elapsed: Duration,
    /// Killed at its time limit.
    pub timed_out: bool,
}

impl ScriptOutput {
    /// Asserts that the script exited with status 0, showing what it wrote if not.
    pub fn assert_success(&self) -> &ScriptOutput {
        assert!(self.status == 0 && !self.timed_out, "{self}");
        self
    }
}

impl fmt::Display for ScriptOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ended = if self.timed_out {
            "killed at its time limit".to_owned()
        } else {
            format!("exited with status {}", self.status)
        };
        write!(
            f,
            "script {:?} {ended} after {:.2?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.name, self.elapsed, self.stdout, self.stderr
        )
    }
}

/// How long each script took, for the log of a batch.
pub(super) fn each_took(outputs: &[ScriptOutput]) -> String {
    let each: Vec<String> = outputs
        .iter()
        .map(|output| format!("{} {:.2?}", output.name, output.elapsed))
        .collect();
    each.join(", ")
}
