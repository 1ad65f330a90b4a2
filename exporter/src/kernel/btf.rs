//! Where a field of a kernel struct is, from the running kernel's BTF
//! (`/sys/kernel/btf/vmlinux`): the eBPF programs are built without CO-RE relocations, so
//! userspace tells them the offsets they read at. aya keeps its BTF types crate-private, so this
//! reads just enough of the format (<https://docs.kernel.org/bpf/btf.html>) to find a struct
//! member.

use std::path::Path;

/// The running kernel's BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

const MAGIC: u16 = 0xeb9f;
const TYPE_LEN: usize = 12;
const KIND_STRUCT: u32 = 4;

/// Why a field's offset could not be found.
#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error("cannot read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("not BTF, or truncated at byte {0}")]
    Malformed(usize),
    #[error("the kernel's BTF has no `struct {0}`")]
    NoStruct(String),
    #[error("the kernel's `struct {structure}` has no member `{member}`")]
    NoMember { structure: String, member: String },
    #[error("`struct {structure}`'s `{member}` is a bitfield")]
    Bitfield { structure: String, member: String },
}

/// The byte offset of `member` in `struct structure`, from the BTF file at `path`.
pub fn member_offset_in(path: &Path, structure: &str, member: &str) -> Result<u32, BtfError> {
    let btf = std::fs::read(path).map_err(|source| BtfError::Read {
        path: path.display().to_string(),
        source,
    })?;
    member_offset(&btf, structure, member)
}

/// The byte offset of `member` (a direct member, not a bitfield) in `struct structure`.
pub fn member_offset(btf: &[u8], structure: &str, member: &str) -> Result<u32, BtfError> {
    let reader = Reader(btf);
    if reader.u16(0)? != MAGIC {
        return Err(BtfError::Malformed(0));
    }
    let header_len = reader.u32(4)? as usize;
    let types = header_len + reader.u32(8)? as usize;
    let types_end = types + reader.u32(12)? as usize;
    let strings = header_len + reader.u32(16)? as usize;
    let name = |offset: u32| reader.c_str(strings + offset as usize);

    let mut at = types;
    while at < types_end {
        let info = reader.u32(at + 4)?;
        let (kind, vlen) = ((info >> 24) & 0x1f, (info & 0xffff) as usize);
        let members = at + TYPE_LEN;
        if kind == KIND_STRUCT && name(reader.u32(at)?)? == structure.as_bytes() {
            let bitfields = info >> 31 == 1;
            for m in (0..vlen).map(|i| members + i * TYPE_LEN) {
                if name(reader.u32(m)?)? != member.as_bytes() {
                    continue;
                }
                let offset = reader.u32(m + 8)?;
                let (bits, bit_size) = if bitfields {
                    (offset & 0xff_ffff, offset >> 24)
                } else {
                    (offset, 0)
                };
                if bit_size != 0 || bits % 8 != 0 {
                    return Err(BtfError::Bitfield {
                        structure: structure.to_owned(),
                        member: member.to_owned(),
                    });
                }
                return Ok(bits / 8);
            }
            return Err(BtfError::NoMember {
                structure: structure.to_owned(),
                member: member.to_owned(),
            });
        }
        at = members + trailing_len(kind, vlen).ok_or(BtfError::Malformed(at))?;
    }
    Err(BtfError::NoStruct(structure.to_owned()))
}

/// Bytes that follow a type's common part, by kind; `None` for a kind this reader does not
/// know (a BTF newer than it).
fn trailing_len(kind: u32, vlen: usize) -> Option<usize> {
    Some(match kind {
        // int, var, decl_tag: one u32.
        1 | 14 | 17 => 4,
        // array: element type, index type, count.
        3 => 12,
        // struct, union (members), datasec (variables), enum64 (name, value as two u32s).
        4 | 5 | 15 | 19 => 12 * vlen,
        // enum (name, value), func_proto (name, type of each parameter).
        6 | 13 => 8 * vlen,
        // ptr, fwd, typedef, volatile, const, restrict, func, float, type_tag.
        2 | 7 | 8 | 9 | 10 | 11 | 12 | 16 | 18 => 0,
        _ => return None,
    })
}

/// Bounds-checked little-endian reads (BTF is in the host's byte order: x86-64 here).
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn bytes<const N: usize>(&self, at: usize) -> Result<[u8; N], BtfError> {
        self.0
            .get(at..at + N)
            .and_then(|b| b.try_into().ok())
            .ok_or(BtfError::Malformed(at))
    }

    fn u16(&self, at: usize) -> Result<u16, BtfError> {
        self.bytes(at).map(u16::from_ne_bytes)
    }

    fn u32(&self, at: usize) -> Result<u32, BtfError> {
        self.bytes(at).map(u32::from_ne_bytes)
    }

    fn c_str(&self, at: usize) -> Result<&[u8], BtfError> {
        let rest = self.0.get(at..).ok_or(BtfError::Malformed(at))?;
        let len = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(BtfError::Malformed(at))?;
        Ok(&rest[..len])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER_LEN: usize = 24;

    /// A BTF blob: an int, then `struct pair { int a; int b; }` and a struct with a bitfield.
    fn sample() -> Vec<u8> {
        let strings = b"\0int\0pair\0a\0b\0bits\0flag\0";
        let (int, pair, a, b, bits, flag) = (1u32, 5, 10, 12, 14, 19);
        let mut types = Vec::new();
        let mut put = |words: &[u32]| {
            for w in words {
                types.extend_from_slice(&w.to_ne_bytes());
            }
        };
        put(&[int, 1 << 24, 4, 32]); // int: 4 bytes, 32 bits
        put(&[pair, (KIND_STRUCT << 24) | 2, 8]);
        put(&[a, 1, 0]);
        put(&[b, 1, 32]);
        put(&[bits, (1 << 31) | (KIND_STRUCT << 24) | 1, 4]);
        put(&[flag, 1, (1 << 24) | 3]); // 1 bit at bit 3
        let mut btf = Vec::new();
        btf.extend_from_slice(&MAGIC.to_ne_bytes());
        btf.extend_from_slice(&[1, 0]);
        for word in [
            HEADER_LEN as u32,
            0,
            types.len() as u32,
            types.len() as u32,
            strings.len() as u32,
        ] {
            btf.extend_from_slice(&word.to_ne_bytes());
        }
        btf.extend_from_slice(&types);
        btf.extend_from_slice(strings);
        btf
    }

    #[test]
    fn finds_members_by_name() {
        let btf = sample();
        assert_eq!(member_offset(&btf, "pair", "a").unwrap(), 0);
        assert_eq!(member_offset(&btf, "pair", "b").unwrap(), 4);
    }

    #[test]
    fn says_what_is_missing_or_unusable() {
        let btf = sample();
        let message = |structure, member| {
            member_offset(&btf, structure, member)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            message("nope", "a"),
            "the kernel's BTF has no `struct nope`"
        );
        assert_eq!(
            message("pair", "c"),
            "the kernel's `struct pair` has no member `c`"
        );
        assert_eq!(
            message("bits", "flag"),
            "`struct bits`'s `flag` is a bitfield"
        );
        assert!(matches!(
            member_offset(&btf[..30], "pair", "a"),
            Err(BtfError::Malformed(_))
        ));
        assert!(matches!(
            member_offset(b"ELF!", "pair", "a"),
            Err(BtfError::Malformed(0))
        ));
    }

    /// The kernel these tests run on: `tgid` follows `pid` in every kernel's `task_struct`.
    #[test]
    fn finds_task_struct_tgid_in_this_kernel() {
        let path = Path::new(VMLINUX_BTF);
        let pid = member_offset_in(path, "task_struct", "pid").unwrap();
        let tgid = member_offset_in(path, "task_struct", "tgid").unwrap();
        assert_eq!(tgid, pid + 4);
        assert!(pid > 0);
    }
}
