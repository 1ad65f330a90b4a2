//! Host files in an initramfs, at their own paths: the directories and symbolic links leading
//! to them kept as they are on the host, and with each ELF file, the shared libraries and the
//! dynamic loader it needs.

use std::{
    fs::{self, File},
    io::{self, Read as _, Seek as _, Write},
    os::unix::{ffi::OsStrExt as _, fs::MetadataExt as _},
    path::{Component, Path, PathBuf},
};

use super::cpio::{Archive, Owner};

impl<W: Write> Archive<W> {
    /// The host's `path` at the same path: the directories and symbolic links leading to it as
    /// they are on the host, then a file, or a directory with everything in it. With `deps`,
    /// also what ldd says each ELF file among them needs.
    pub(super) fn host_path(&mut self, path: &Path, deps: bool) -> io::Result<()> {
        let real = self.leading_to(path, 0)?;
        let metadata = fs::metadata(&real).map_err(|e| context(e, &real.display().to_string()))?;
        if metadata.is_dir() {
            self.host_tree(&real, deps)
        } else if metadata.is_file() {
            self.host_file(&real, &metadata, deps)
        } else {
            Err(io::Error::other(format!(
                "{}: neither a file nor a directory",
                real.display()
            )))
        }
    }

    /// Adds the directories and symbolic links on the way to `path` (and `path` itself when it
    /// is one of those) and returns the path without links, where the content is. `depth`
    /// counts the links followed so far.
    pub(super) fn leading_to(&mut self, path: &Path, depth: u32) -> io::Result<PathBuf> {
        // The kernel's own limit on links followed in one lookup.
        if depth > 40 {
            return Err(io::Error::other(format!(
                "{}: too many levels of symbolic links",
                path.display()
            )));
        }
        if !path.is_absolute() {
            return Err(io::Error::other(format!(
                "{}: not an absolute path",
                path.display()
            )));
        }
        if [Path::new("/proc"), Path::new("/sys"), Path::new("/dev")]
            .iter()
            .any(|special| path.starts_with(special))
        {
            return Err(io::Error::other(format!(
                "{}: the guest has its own /proc, /sys and /dev",
                path.display()
            )));
        }
        let mut real = PathBuf::from("/");
        for component in path.components() {
            match component {
                Component::Normal(name) => {
                    let next = real.join(name);
                    let metadata = fs::symlink_metadata(&next)
                        .map_err(|e| context(e, &next.display().to_string()))?;
                    if metadata.file_type().is_symlink() {
                        let target = fs::read_link(&next)?;
                        self.host_entry(&next, &metadata, target.as_os_str().as_bytes())?;
                        real = self.leading_to(&real.join(target), depth + 1)?;
                    } else {
                        if metadata.is_dir() {
                            self.host_entry(&next, &metadata, &[])?;
                        }
                        real = next;
                    }
                }
                // `real` has no links in it: `..` is its parent.
                Component::ParentDir => {
                    real.pop();
                }
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            }
        }
        Ok(real)
    }

    /// An entry for the host's `path` with its mode, owner and time, and `data`.
    fn host_entry(&mut self, path: &Path, metadata: &fs::Metadata, data: &[u8]) -> io::Result<()> {
        self.entry(&guest_name(path), metadata.mode(), owner(metadata), data)
    }

    /// The host's regular file `path` (without links), streamed, and what it needs with `deps`.
    fn host_file(&mut self, path: &Path, metadata: &fs::Metadata, deps: bool) -> io::Result<()> {
        let name = guest_name(path);
        if !self.claim(&name) {
            return Ok(());
        }
        let mut file = File::open(path).map_err(|e| context(e, &path.display().to_string()))?;
        // ELF executables and shared objects (not relocatable objects): e_type 2 or 3.
        let mut head = [0u8; 18];
        let is_linked_elf = file.read_exact(&mut head).is_ok()
            && head.starts_with(b"\x7fELF")
            && matches!(u16::from_le_bytes([head[16], head[17]]), 2 | 3);
        file.rewind()?;
        let copied = self.stream(
            &name,
            metadata.mode(),
            owner(metadata),
            &mut file,
            metadata.len(),
        )?;
        if copied != metadata.len() {
            return Err(io::Error::other(format!(
                "{}: changed while it was packed",
                path.display()
            )));
        }
        if deps && is_linked_elf {
            for library in needed_libraries(path)? {
                // ldd's list is already whole: no need to ask again for each library.
                self.host_path(&library, false)?;
            }
        }
        Ok(())
    }

    /// Everything in the host directory `dir` (without links), in name order; a link in it
    /// is kept with what it points to, a dangling one alone.
    fn host_tree(&mut self, dir: &Path, deps: bool) -> io::Result<()> {
        let mut entries: Vec<PathBuf> = fs::read_dir(dir)
            .map_err(|e| context(e, &dir.display().to_string()))?
            .map(|entry| entry.map(|e| e.path()))
            .collect::<io::Result<_>>()?;
        entries.sort();
        for path in entries {
            let metadata = fs::symlink_metadata(&path)?;
            let kind = metadata.file_type();
            if kind.is_dir() {
                self.host_entry(&path, &metadata, &[])?;
                self.host_tree(&path, deps)?;
            } else if kind.is_file() {
                self.host_file(&path, &metadata, deps)?;
            } else if kind.is_symlink() {
                if fs::metadata(&path).is_ok() {
                    self.host_path(&path, deps)?;
                } else {
                    let target = fs::read_link(&path)?;
                    self.host_entry(&path, &metadata, target.as_os_str().as_bytes())?;
                }
            }
            // Sockets, pipes and devices have no place in an initramfs.
        }
        Ok(())
    }
}

/// A host path's name in the archive: relative to /.
pub(super) fn guest_name(path: &Path) -> String {
    path.to_string_lossy().trim_start_matches('/').to_owned()
}

/// `e` with `what` said first.
pub(super) fn context(e: io::Error, what: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// A host file's owner and time, kept in the guest.
fn owner(metadata: &fs::Metadata) -> Owner {
    (metadata.uid(), metadata.gid(), metadata.mtime())
}

/// The shared libraries and the dynamic loader that the ELF file `path` needs, as ldd lists
/// them: `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)` and
/// `/lib64/ld-linux-x86-64.so.2 (0x...)`. Nothing for a static executable; a library ldd
/// cannot find is left out (the program fails the same way on the host).
fn needed_libraries(path: &Path) -> io::Result<Vec<PathBuf>> {
    let output = std::process::Command::new("ldd")
        .arg(path)
        .output()
        .map_err(|e| context(e, "ldd"))?;
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let path = line.split_once(" => ").map_or(line, |(_, path)| path);
            let path = path.split(" (").next()?.trim();
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect())
}
