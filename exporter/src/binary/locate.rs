//! Finding the file a probe target names: a path, or a bare name looked up as a shell finds a
//! program (PATH) and the dynamic loader a shared library.

use std::{
    fmt,
    path::{Path, PathBuf},
    process::Command,
};

/// The target named no file that exists.
#[derive(Debug, thiserror::Error)]
pub enum BinaryError {
    #[error("{}: no such file", path.display())]
    NoSuchFile { path: PathBuf },
    #[error(
        "`{name}` is not a file {dir}, a program in PATH ({path}), nor a library the dynamic \
         loader knows (searched LD_LIBRARY_PATH, the ld.so cache and the default directories)"
    )]
    NotFound {
        name: String,
        dir: SearchedDir,
        /// The directories of PATH searched, as PATH lists them.
        path: SearchedPath,
    },
}

/// The directory a bare name was first looked for in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchedDir {
    /// The config's: a config's paths are relative to it.
    Config,
    /// The current directory: a command line's.
    Current,
}

impl fmt::Display for SearchedDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Config => "next to the config",
            Self::Current => "here",
        })
    }
}

/// PATH as it was searched: spanprobe runs as root, often through sudo, whose PATH is not the
/// user's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchedPath(Option<String>);

impl SearchedPath {
    fn now() -> Self {
        Self(std::env::var_os("PATH").map(|path| path.to_string_lossy().into_owned()))
    }
}

impl fmt::Display for SearchedPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(path) => f.write_str(path),
            None => f.write_str("not set"),
        }
    }
}

/// Default library directories of the x86-64 dynamic loader, after LD_LIBRARY_PATH and the
/// ld.so cache.
const DEFAULT_DIRS: [&str; 6] = [
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
];

/// Where the file `name` (from a config in `base_dir`) is. A name with a `/` is a path,
/// relative to `base_dir`; a bare name is a file in `base_dir` if there is one, else a program
/// in PATH or a library, as [`locate_from_command_line`] finds them: `binary: redis-server`
/// names what `spanprobe symbols redis-server` lists.
pub fn locate(name: &str, base_dir: &Path) -> Result<PathBuf, BinaryError> {
    if name.contains('/') {
        let path = base_dir.join(name);
        return if path.exists() {
            Ok(path)
        } else {
            Err(BinaryError::NoSuchFile { path })
        };
    }
    find_bare(name, base_dir, SearchedDir::Config)
}

/// Where the file a command line names is (`spanprobe symbols NAME`, `init NAME`): a name
/// with a `/` is a path; a bare name is a file in the current directory, a program in PATH, or
/// a library, in that order.
pub fn locate_from_command_line(name: &str) -> Result<PathBuf, BinaryError> {
    if name.contains('/') {
        return locate(name, Path::new("."));
    }
    // An empty directory keeps the name as given: `demo`, not `./demo`.
    find_bare(name, Path::new(""), SearchedDir::Current)
}

/// A bare name: a file in `dir`, a program in PATH, or a library, in that order.
fn find_bare(name: &str, dir: &Path, searched: SearchedDir) -> Result<PathBuf, BinaryError> {
    Some(dir.join(name))
        .filter(|local| local.is_file())
        .or_else(|| find_in_path(name.as_ref()))
        .or_else(|| find_library(name))
        .ok_or_else(|| BinaryError::NotFound {
            name: name.to_owned(),
            dir: searched,
            path: SearchedPath::now(),
        })
}

/// The program `name` (a bare name) in the directories of PATH, as `exec` finds it.
pub fn find_in_path(name: &std::ffi::OsStr) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Looks a library up as the loader does: LD_LIBRARY_PATH, the ld.so cache, default dirs.
pub fn find_library(name: &str) -> Option<PathBuf> {
    let from_env = std::env::var("LD_LIBRARY_PATH").unwrap_or_default();
    let in_dirs = |dirs: &mut dyn Iterator<Item = &str>| {
        dirs.filter(|d| !d.is_empty())
            .map(|dir| Path::new(dir).join(name))
            .find(|candidate| candidate.exists())
    };
    in_dirs(&mut from_env.split(':'))
        .or_else(|| from_ld_cache(name))
        .or_else(|| in_dirs(&mut DEFAULT_DIRS.into_iter()))
}

/// `ldconfig -p` lists the cache as `\tlibc.so.6 (libc6,x86-64) => /lib/x86_64-linux-gnu/libc.so.6`.
fn from_ld_cache(name: &str) -> Option<PathBuf> {
    let output = Command::new("ldconfig").arg("-p").output().ok()?;
    parse_ld_cache(&String::from_utf8_lossy(&output.stdout), name)
}

fn parse_ld_cache(listing: &str, name: &str) -> Option<PathBuf> {
    listing.lines().find_map(|line| {
        let (entry, path) = line.trim().split_once(" => ")?;
        let (library, flags) = entry.split_once(' ')?;
        (library == name && flags.contains("x86-64")).then(|| PathBuf::from(path.trim()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_relative_to_the_config() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        std::fs::write(dir.path().join("bin/app"), "").unwrap();
        std::fs::write(dir.path().join("app"), "").unwrap();
        assert_eq!(
            locate("bin/app", dir.path()).unwrap(),
            dir.path().join("bin/app")
        );
        assert_eq!(locate("app", dir.path()).unwrap(), dir.path().join("app"));
        let err = locate("./missing", dir.path()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{}: no such file", dir.path().join("./missing").display())
        );
    }

    #[test]
    fn bare_library_names_are_found_like_the_loader_does() {
        let libc = locate("libc.so.6", Path::new("/nonexistent")).unwrap();
        assert!(
            libc.ends_with("libc.so.6") && libc.is_absolute(),
            "{}",
            libc.display()
        );
        let err = locate("libnothing.so.9", Path::new("/nonexistent")).unwrap_err();
        assert!(
            matches!(
                &err,
                BinaryError::NotFound {
                    dir: SearchedDir::Config,
                    ..
                }
            ),
            "{err}"
        );
    }

    /// A config's bare name is a program in PATH too, as on a command line.
    #[test]
    fn a_config_names_programs_in_path() {
        let dir = tempfile::tempdir().unwrap();
        let sh = locate("sh", dir.path()).unwrap();
        assert_eq!(sh, locate_from_command_line("sh").unwrap());
        assert!(sh.is_absolute() && sh.ends_with("sh"), "{}", sh.display());
    }

    #[test]
    fn command_lines_name_programs_in_path_and_libraries() {
        let sh = locate_from_command_line("sh").unwrap();
        assert!(sh.is_absolute() && sh.ends_with("sh"), "{}", sh.display());
        assert!(locate_from_command_line("libc.so.6").unwrap().is_absolute());
        let err = locate_from_command_line("no-such-program").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "`no-such-program` is not a file here, a program in PATH ({}), nor a library \
                 the dynamic loader knows (searched LD_LIBRARY_PATH, the ld.so cache and the \
                 default directories)",
                std::env::var("PATH").unwrap()
            )
        );
    }

    #[test]
    fn says_when_path_is_not_set() {
        assert_eq!(SearchedPath(None).to_string(), "not set");
        assert_eq!(SearchedPath(Some("/bin".into())).to_string(), "/bin");
    }

    #[test]
    fn parses_the_ld_cache_listing() {
        let listing = "1234 libs found in cache `/etc/ld.so.cache'\n\
            \tlibz.so.1 (libc6,x86-64) => /lib/x86_64-linux-gnu/libz.so.1\n\
            \tlibc.so.6 (libc6) => /lib32/libc.so.6\n\
            \tlibc.so.6 (libc6,x86-64) => /lib/x86_64-linux-gnu/libc.so.6\n";
        assert_eq!(
            parse_ld_cache(listing, "libc.so.6"),
            Some(PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"))
        );
        assert_eq!(parse_ld_cache(listing, "libm.so.6"), None);
    }
}
