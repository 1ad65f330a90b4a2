//! Finding the file a probe target names: a path, or a bare shared-library name looked up the
//! way the dynamic loader would.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// The target named no file that exists.
#[derive(Debug, thiserror::Error)]
pub enum BinaryError {
    #[error("{}: no such file", path.display())]
    NoSuchFile { path: PathBuf },
    #[error(
        "`{name}` is not a file next to the config, nor a library the dynamic loader knows \
         (searched LD_LIBRARY_PATH, the ld.so cache and the default directories)"
    )]
    NoSuchLibrary { name: String },
    #[error(
        "`{name}` is not a file here, a program in PATH, nor a library the dynamic loader \
         knows (searched LD_LIBRARY_PATH, the ld.so cache and the default directories)"
    )]
    NotFound { name: String },
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
/// relative to `base_dir`; a bare name is a file in `base_dir` if there is one, else a
/// library.
pub fn locate(name: &str, base_dir: &Path) -> Result<PathBuf, BinaryError> {
    let path = Path::new(name);
    if name.contains('/') {
        let path = base_dir.join(path);
        return if path.exists() {
            Ok(path)
        } else {
            Err(BinaryError::NoSuchFile { path })
        };
    }
    let local = base_dir.join(path);
    if local.exists() {
        return Ok(local);
    }
    find_library(name).ok_or_else(|| BinaryError::NoSuchLibrary {
        name: name.to_owned(),
    })
}

/// Where the file a command line names is (`spanprobe symbols NAME`, `init NAME`): a name
/// with a `/` is a path; a bare name is a file in the current directory, a program in PATH, or
/// a library, in that order.
pub fn locate_from_command_line(name: &str) -> Result<PathBuf, BinaryError> {
    if name.contains('/') {
        return locate(name, Path::new("."));
    }
    Some(PathBuf::from(name))
        .filter(|local| local.is_file())
        .or_else(|| find_in_path(name.as_ref()))
        .or_else(|| find_library(name))
        .ok_or_else(|| BinaryError::NotFound {
            name: name.to_owned(),
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
        assert!(matches!(err, BinaryError::NoSuchLibrary { .. }));
    }

    #[test]
    fn command_lines_name_programs_in_path_and_libraries() {
        let sh = locate_from_command_line("sh").unwrap();
        assert!(sh.is_absolute() && sh.ends_with("sh"), "{}", sh.display());
        assert!(locate_from_command_line("libc.so.6").unwrap().is_absolute());
        let err = locate_from_command_line("no-such-program").unwrap_err();
        assert_eq!(
            err.to_string(),
            "`no-such-program` is not a file here, a program in PATH, nor a library the \
             dynamic loader knows (searched LD_LIBRARY_PATH, the ld.so cache and the default \
             directories)"
        );
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
