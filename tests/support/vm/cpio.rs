//! A cpio archive in the "newc" format, the one the kernel unpacks as an initramfs, written
//! here rather than with cpio(1) so that host files are streamed from their own paths (no
//! copies: spanprobe's debug build is 250 MB); [`files`](super::files) places them.

use std::{
    collections::BTreeSet,
    io::{self, Read, Write},
    path::PathBuf,
};

/// An entry's owner and time: user id, group id, modification time (seconds since the epoch).
pub(super) type Owner = (u32, u32, i64);

/// Root's, at the epoch: for what the archive makes rather than takes from the host.
pub(super) const ROOT: Owner = (0, 0, 0);

/// An archive being written to `out`, without its trailer until [`Archive::finish`].
pub(super) struct Archive<W> {
    out: W,
    /// Bytes written so far: entries are aligned on 4 bytes.
    offset: u64,
    /// Paths in the archive (relative to /), each written once.
    written: BTreeSet<PathBuf>,
    /// Inode numbers only need to differ (every entry has one link).
    next_inode: u32,
}

impl Archive<Vec<u8>> {
    /// An empty archive, in memory.
    pub(super) fn new() -> Archive<Vec<u8>> {
        Archive {
            out: Vec::new(),
            offset: 0,
            written: BTreeSet::new(),
            next_inode: 1,
        }
    }

    /// This archive's entries written to `out`, to go on there with more: what every boot of
    /// a kernel has in common is made once.
    pub(super) fn continued<W: Write>(&self, mut out: W) -> io::Result<Archive<W>> {
        out.write_all(&self.out)?;
        Ok(Archive {
            out,
            offset: self.offset,
            written: self.written.clone(),
            next_inode: self.next_inode,
        })
    }
}

impl<W: Write> Archive<W> {
    /// Marks `name` (relative to /) as written; false if it already was, and must not be again.
    pub(super) fn claim(&mut self, name: &str) -> bool {
        self.written.insert(PathBuf::from(name))
    }

    /// Writes the entry `name` (relative to /) with `data`, unless `name` is there.
    pub(super) fn entry(
        &mut self,
        name: &str,
        mode: u32,
        owner: Owner,
        data: &[u8],
    ) -> io::Result<()> {
        if !self.claim(name) {
            return Ok(());
        }
        self.header(name, mode, owner, data.len() as u64)?;
        self.write(data)?;
        self.pad()
    }

    /// A file made here (not the host's), owned by root.
    pub(super) fn bytes(&mut self, name: &str, mode: u32, data: &[u8]) -> io::Result<()> {
        self.entry(name, libc::S_IFREG | mode, ROOT, data)
    }

    /// Writes the entry `name`, already claimed, with the `size` bytes that `data` holds,
    /// streamed; returns how many it held (fewer when it changed meanwhile).
    pub(super) fn stream(
        &mut self,
        name: &str,
        mode: u32,
        owner: Owner,
        data: impl Read,
        size: u64,
    ) -> io::Result<u64> {
        self.header(name, mode, owner, size)?;
        let copied = io::copy(&mut data.take(size), &mut WriteCounter(self))?;
        self.pad()?;
        Ok(copied)
    }

    /// Ends the archive; returns the writer and the archive's size.
    pub(super) fn finish(mut self) -> io::Result<(W, u64)> {
        self.header("TRAILER!!!", 0, ROOT, 0)?;
        Ok((self.out, self.offset))
    }

    /// An entry header; its data follows.
    fn header(
        &mut self,
        name: &str,
        mode: u32,
        (uid, gid, mtime): Owner,
        size: u64,
    ) -> io::Result<()> {
        let size = u32::try_from(size).map_err(|_| {
            io::Error::other(format!(
                "{name}: too large for a cpio archive (4 GiB at most)"
            ))
        })?;
        let inode = self.next_inode;
        self.next_inode += 1;
        let mtime = u32::try_from(mtime.max(0)).unwrap_or(u32::MAX);
        let header = format!(
            "070701{inode:08x}{mode:08x}{uid:08x}{gid:08x}{nlink:08x}{mtime:08x}{size:08x}\
             {zero:08x}{zero:08x}{zero:08x}{zero:08x}{namesize:08x}{zero:08x}",
            nlink = 1,
            zero = 0,
            namesize = name.len() + 1,
        );
        self.write(header.as_bytes())?;
        self.write(name.as_bytes())?;
        self.write(&[0])?;
        self.pad()
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.offset += bytes.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> io::Result<()> {
        let padding = (4 - self.offset % 4) % 4;
        self.write(&[0; 3][..padding as usize])
    }
}

/// Counts what `io::copy` writes through an archive, for its alignment.
struct WriteCounter<'a, W>(&'a mut Archive<W>);

impl<W: Write> Write for WriteCounter<'_, W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.write(bytes)?;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.out.flush()
    }
}
