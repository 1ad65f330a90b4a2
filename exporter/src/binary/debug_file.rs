//! A stripped binary's separate debug file, found as gdb finds it: by the binary's build-id
//! under `/usr/lib/debug/.build-id/`, else by its `.gnu_debuglink` (a file name and the
//! file's CRC-32) beside the binary, in `.debug/` beside it, or under `/usr/lib/debug/` plus
//! the binary's directory. Distributions ship these files in their `-dbg`/`-dbgsym`
//! packages: the DWARF and the full `.symtab` of the exact build.
//!
//! A debug file has the binary's virtual addresses but none of its code (its code sections
//! are `NOBITS`): what it names is probed at the stripped binary's addresses, and file offsets
//! come from the stripped binary's program headers.

use std::path::{Path, PathBuf};

use object::{Object as _, read::File};

use crate::binary::elf::LoadSegments;

/// Where debug files are installed, as gdb's `debug-file-directory` defaults to.
pub const DEBUG_ROOT: &str = "/usr/lib/debug";

/// A candidate debug file that was found but cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DebugFileError {
    #[error("{}: cannot read the debug file", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not an ELF debug file", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: object::Error,
    },
    #[error(
        "{}: CRC-32 {actual:#010x}, but {}'s .gnu_debuglink expects {expected:#010x}: a debug \
         file of another build",
        path.display(),
        binary.display()
    )]
    CrcMismatch {
        path: PathBuf,
        binary: PathBuf,
        expected: u32,
        actual: u32,
    },
    #[error(
        "{}: its build-id differs from {}'s: a debug file of another build",
        path.display(),
        binary.display()
    )]
    BuildIdMismatch { path: PathBuf, binary: PathBuf },
}

/// A binary's debug file, read.
#[derive(Debug)]
pub struct DebugFile {
    pub path: PathBuf,
    pub data: Vec<u8>,
}

/// What a binary says of its debug file: its build-id and its `.gnu_debuglink`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DebugLinks {
    pub build_id: Option<Vec<u8>>,
    pub debuglink: Option<DebugLink>,
}

/// The `.gnu_debuglink` section: the debug file's name, without a directory, and the CRC-32
/// of its whole contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebugLink {
    pub name: String,
    pub crc: u32,
}

/// How a candidate is checked to be the debug file of this very build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check<'a> {
    BuildId(&'a [u8]),
    Crc(u32),
}

/// The outcome of looking for a binary's debug file.
#[derive(Debug, Default)]
pub struct Lookup {
    pub found: Option<DebugFile>,
    /// Where the binary's build-id says its debug file is, found or not: what to install.
    pub build_id_path: Option<PathBuf>,
    /// Candidates that exist but are not this build's (logged by [`find`]).
    pub rejected: Vec<DebugFileError>,
}

impl DebugLinks {
    pub fn of(file: &File<'_>) -> Self {
        // A malformed note or link is as good as none: the binary is probed without it.
        let build_id = file.build_id().ok().flatten().map(<[u8]>::to_vec);
        let debuglink = file
            .gnu_debuglink()
            .ok()
            .flatten()
            .map(|(name, crc)| DebugLink {
                name: String::from_utf8_lossy(name).into_owned(),
                crc,
            });
        Self {
            build_id,
            debuglink,
        }
    }

    /// `<root>/.build-id/xx/yyyy….debug`, from the build-id's first byte and the rest.
    pub fn build_id_path(&self, root: &Path) -> Option<PathBuf> {
        let (first, rest) = self.build_id.as_deref()?.split_first()?;
        // gdb ignores build-ids too short to name a build.
        if rest.is_empty() {
            return None;
        }
        let rest: String = rest.iter().map(|byte| format!("{byte:02x}")).collect();
        Some(
            root.join(".build-id")
                .join(format!("{first:02x}"))
                .join(format!("{rest}.debug")),
        )
    }

    /// The places to look, in gdb's order, with how each is checked. `binary` is the
    /// binary's real path (symbolic links resolved), whose directory the debug link is
    /// relative to.
    fn candidates(&self, binary: &Path, root: &Path) -> Vec<(PathBuf, Check<'_>)> {
        let mut candidates = Vec::new();
        if let (Some(path), Some(id)) = (self.build_id_path(root), &self.build_id) {
            candidates.push((path, Check::BuildId(id)));
        }
        let Some(link) = &self.debuglink else {
            return candidates;
        };
        // A link names a file, not a path: anything else is not followed out of the dirs.
        if link.name.is_empty() || link.name.contains('/') {
            return candidates;
        }
        let dir = binary.parent().unwrap_or(Path::new("/"));
        let under_root = root.join(dir.strip_prefix("/").unwrap_or(dir));
        for dir in [dir.to_owned(), dir.join(".debug"), under_root] {
            let path = dir.join(&link.name);
            // A binary that names itself (not stripped after all) is no debug file of its own.
            if path != binary {
                candidates.push((path, Check::Crc(link.crc)));
            }
        }
        candidates
    }
}

/// A stripped binary's debug file, for symbolizing the binary's code: what blazesym is given
/// in place of the binary, at the virtual address of each of the binary's file offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeparateDebug {
    pub path: PathBuf,
    segments: LoadSegments,
}

impl SeparateDebug {
    /// The debug file of the binary at `path`, if the binary has no DWARF of its own and the
    /// file is found.
    pub fn of(path: &Path) -> Option<Self> {
        let data = std::fs::read(path).ok()?;
        let file = File::parse(&*data).ok()?;
        if file.section_by_name(".debug_info").is_some() {
            return None;
        }
        let found = find(path, &file).found?;
        Some(Self {
            path: found.path,
            segments: LoadSegments::of(&file),
        })
    }

    /// The virtual address, in both files, of the binary's file offset `offset`.
    pub fn address(&self, offset: u64) -> Option<u64> {
        self.segments.address(offset)
    }
}

/// Looks for the debug file of the binary at `path` (parsed as `file`) in [`DEBUG_ROOT`];
/// candidates of another build are logged and passed over, as gdb does.
pub fn find(path: &Path, file: &File<'_>) -> Lookup {
    let lookup = find_in(path, file, Path::new(DEBUG_ROOT));
    for rejected in &lookup.rejected {
        let cause = std::error::Error::source(rejected).map(ToString::to_string);
        tracing::warn!(binary = %path.display(), cause = cause.as_deref(), "debug file passed over: {rejected}");
    }
    lookup
}

/// [`find`], with debug files installed under `root`.
pub fn find_in(path: &Path, file: &File<'_>, root: &Path) -> Lookup {
    let links = DebugLinks::of(file);
    let binary = path.canonicalize().unwrap_or_else(|_| path.to_owned());
    let mut lookup = Lookup {
        build_id_path: links.build_id_path(root),
        ..Lookup::default()
    };
    for (candidate, check) in links.candidates(&binary, root) {
        if !candidate.is_file() {
            continue;
        }
        match read_checked(&candidate, &binary, check) {
            Ok(found) => {
                lookup.found = Some(found);
                break;
            }
            Err(error) => lookup.rejected.push(error),
        }
    }
    lookup
}

/// The debug file at `path`, if it is the one of this build of `binary`.
fn read_checked(path: &Path, binary: &Path, check: Check<'_>) -> Result<DebugFile, DebugFileError> {
    let data = std::fs::read(path).map_err(|source| DebugFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    match check {
        Check::Crc(expected) => {
            let actual = crc32(&data);
            if actual != expected {
                return Err(DebugFileError::CrcMismatch {
                    path: path.to_owned(),
                    binary: binary.to_owned(),
                    expected,
                    actual,
                });
            }
        }
        Check::BuildId(expected) => {
            let file = File::parse(&*data).map_err(|source| DebugFileError::Parse {
                path: path.to_owned(),
                source,
            })?;
            if file.build_id().ok().flatten() != Some(expected) {
                return Err(DebugFileError::BuildIdMismatch {
                    path: path.to_owned(),
                    binary: binary.to_owned(),
                });
            }
        }
    }
    Ok(DebugFile {
        path: path.to_owned(),
        data,
    })
}

/// The CRC-32 `.gnu_debuglink` records (zlib's, as gdb and objcopy compute it).
fn crc32(data: &[u8]) -> u32 {
    let mut crc = flate2::Crc::new();
    crc.update(data);
    crc.sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links(build_id: Option<&[u8]>, link: Option<(&str, u32)>) -> DebugLinks {
        DebugLinks {
            build_id: build_id.map(<[u8]>::to_vec),
            debuglink: link.map(|(name, crc)| DebugLink {
                name: name.to_owned(),
                crc,
            }),
        }
    }

    #[test]
    fn crc_is_zlib_s() {
        // The check value of CRC-32/ISO-HDLC, which zlib, gdb and objcopy compute.
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn build_id_names_a_path_under_the_root() {
        let links = links(Some(&[0xc5, 0x61, 0xf3, 0xaa]), None);
        assert_eq!(
            links.build_id_path(Path::new("/usr/lib/debug")),
            Some(PathBuf::from("/usr/lib/debug/.build-id/c5/61f3aa.debug"))
        );
        assert_eq!(
            self::links(Some(&[0xc5]), None).build_id_path(Path::new("/r")),
            None
        );
        assert_eq!(self::links(None, None).build_id_path(Path::new("/r")), None);
    }

    #[test]
    fn candidates_in_gdb_s_order() {
        let links = links(Some(&[1, 2, 3]), Some(("app.debug", 7)));
        let candidates = links.candidates(Path::new("/opt/bin/app"), Path::new("/usr/lib/debug"));
        assert_eq!(
            candidates,
            [
                (
                    PathBuf::from("/usr/lib/debug/.build-id/01/0203.debug"),
                    Check::BuildId(&[1, 2, 3])
                ),
                (PathBuf::from("/opt/bin/app.debug"), Check::Crc(7)),
                (PathBuf::from("/opt/bin/.debug/app.debug"), Check::Crc(7)),
                (
                    PathBuf::from("/usr/lib/debug/opt/bin/app.debug"),
                    Check::Crc(7)
                ),
            ]
        );
        // A link that names a path, or the binary itself, is not followed.
        let odd = self::links(None, Some(("../../etc/passwd", 7)));
        assert!(
            odd.candidates(Path::new("/bin/app"), Path::new("/r"))
                .is_empty()
        );
        let own = self::links(None, Some(("app", 7)));
        assert_eq!(
            own.candidates(Path::new("/bin/app"), Path::new("/r")).len(),
            2
        );
    }

    /// A copy of this test binary stands for a debug file: it is only checked, not read.
    #[test]
    fn a_debug_link_is_followed_only_to_a_file_with_its_crc() {
        let dir = tempfile::tempdir().unwrap();
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let file = File::parse(&*exe).unwrap();
        std::fs::create_dir(dir.path().join(".debug")).unwrap();
        std::fs::write(dir.path().join(".debug/app.debug"), b"debug info").unwrap();
        let binary = dir.path().join("app");
        let mut links = DebugLinks::of(&file);
        links.build_id = None;
        links.debuglink = Some(DebugLink {
            name: "app.debug".into(),
            crc: crc32(b"debug info"),
        });
        let found = links
            .candidates(&binary, dir.path())
            .into_iter()
            .filter(|(path, _)| path.is_file())
            .map(|(path, check)| read_checked(&path, &binary, check))
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(found.path, dir.path().join(".debug/app.debug"));
        assert_eq!(found.data, b"debug info");

        let stale = read_checked(&found.path, &binary, Check::Crc(1)).unwrap_err();
        assert_eq!(
            stale.to_string(),
            format!(
                "{}: CRC-32 {:#010x}, but {}'s .gnu_debuglink expects 0x00000001: a debug file \
                 of another build",
                found.path.display(),
                crc32(b"debug info"),
                binary.display()
            )
        );
        let other = read_checked(&found.path, &binary, Check::BuildId(&[1, 2])).unwrap_err();
        assert!(matches!(other, DebugFileError::Parse { .. }), "{other}");
    }

    #[test]
    fn a_binary_with_its_own_debug_info_has_no_debug_file() {
        let path = std::env::current_exe().unwrap();
        let exe = std::fs::read(&path).unwrap();
        let file = File::parse(&*exe).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let lookup = find_in(&path, &file, dir.path());
        assert!(lookup.found.is_none() && lookup.rejected.is_empty());
    }
}
