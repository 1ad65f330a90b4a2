//! Function signatures from an ELF file's DWARF debug info, so `spanprobe init` can fill in
//! argument types, and the chains of struct members behind a parameter ([`path`]).

pub mod go;
pub mod path;

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use gimli::{
    AttributeValue, DwAt, DwAte, DwTag, Dwarf, DwarfSections, EndianSlice, RunTimeEndian, Unit,
    UnitOffset,
};
use object::{Object, ObjectSection};
use spanprobe_config::{BaseEncoding, ValueType};

use crate::x86_64::sysv::Abi;

type Reader<'a> = EndianSlice<'a, RunTimeEndian>;
type Value<'a> = AttributeValue<Reader<'a>>;
type Die<'a> = gimli::DebuggingInformationEntry<Reader<'a>>;
/// A DIE: index into [`Ctx::units`] and offset inside that unit.
type Loc = (usize, UnitOffset);

/// Bounds how many references are followed, so malformed (cyclic) DWARF cannot recurse forever.
const MAX_DEPTH: u8 = 16;

/// Why the DWARF of a file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DwarfError {
    /// The file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not an object file `object` can parse, or a debug section is corrupt.
    #[error("{}: not a readable object file", path.display())]
    Object {
        path: PathBuf,
        source: object::Error,
    },
    /// The DWARF could not be parsed.
    #[error("{}: malformed DWARF debug info", path.display())]
    Dwarf { path: PathBuf, source: gimli::Error },
}

/// A defined function as described by DWARF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionSignature {
    /// `DW_AT_name` (not demangled, e.g. just `foo` for a C++ method).
    pub name: String,
    /// `DW_AT_linkage_name` (the mangled symbol), when present.
    pub linkage_name: Option<String>,
    /// Formal parameters in declaration order, so the System V argument index is the position.
    pub params: Vec<Param>,
    /// `None` for `void`.
    pub return_type: Option<TypeInfo>,
    /// Declaring source file, resolved through the line program's file table.
    pub file: Option<String>,
    /// Declaring source line.
    pub line: Option<u64>,
}

/// A formal parameter of a function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub name: Option<String>,
    pub ty: TypeInfo,
}

/// A C type and the spanprobe capture type it maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeInfo {
    /// Printable C type name, e.g. `const char *`, `unsigned long`, `struct foo`.
    pub c_name: String,
    /// spanprobe capture type (`i32`, `ptr`, `str`, ...); `None` when a value of this type cannot
    /// be captured (floats live in XMM registers, aggregates by value are not in one register).
    pub capture: Option<ValueType>,
    /// How the System V AMD64 convention passes it.
    pub abi: Abi,
    /// For a pointer to bytes (`void *`, `char *`, `uint8_t *`): what they are.
    pub buffer: Option<ByteBuffer>,
}

/// What a pointer to bytes points to, so that `init` can read it with the size that
/// follows it (`const char *s, size_t n`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteBuffer {
    /// Plain `char`, C's text; `void`, `unsigned char`, `uint8_t` are bytes.
    pub text: bool,
    /// `const`: the function only reads them.
    pub read_only: bool,
}

impl TypeInfo {
    fn new(c_name: impl Into<String>, capture: Option<ValueType>) -> Self {
        TypeInfo {
            c_name: c_name.into(),
            capture,
            abi: Abi::INTEGER,
            buffer: None,
        }
    }

    fn with_abi(self, abi: Abi) -> Self {
        Self { abi, ..self }
    }
}

/// A scalar member of an aggregate, for its eightbyte's class.
#[derive(Debug)]
struct Scalar {
    /// Bytes from the aggregate's start.
    offset: u64,
    /// Its name and capture type, when it is an integer filling a whole eightbyte.
    field: Option<(String, ValueType)>,
    leaf: Leaf,
}

/// What an eightbyte of an aggregate holds, for its class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leaf {
    Integer,
    Sse,
    /// x87 `long double`: always in memory.
    X87,
}

/// One rank (dimension) of an array type, from its `DW_TAG_subrange_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rank {
    /// The first index: `DW_AT_lower_bound`, 0 when absent (C, C++ and Rust).
    lower: i64,
    /// How many elements, when DWARF says (`DW_AT_count`, or from `DW_AT_upper_bound`): a
    /// flexible array member `x[]` or a VLA has none; GNU's `x[0]` has 0.
    count: Option<u64>,
    /// Bytes from one index to the next: `DW_AT_byte_stride` (or `bit_stride`), else what
    /// the later ranks span; `None` when one of them has no count.
    stride: Option<u64>,
}

impl Rank {
    /// The number of elements an index is checked against: none for an array declared
    /// without one or with 0 (`x[]`, `x[0]`), the idioms for "as many as follow".
    fn bound(&self) -> Option<u64> {
        self.count.filter(|count| *count > 0)
    }
}

/// An array type: its element type and its ranks, outermost first.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ArrayShape {
    element: Loc,
    ranks: Vec<Rank>,
}

impl ArrayShape {
    /// Elements in all, over every rank.
    fn element_count(&self) -> Option<u64> {
        self.ranks
            .iter()
            .try_fold(1u64, |total, rank| total.checked_mul(rank.count?))
    }

    /// The bytes the whole array spans.
    fn byte_size(&self) -> Option<u64> {
        let outer = self.ranks.first()?;
        outer.stride?.checked_mul(outer.count?)
    }
}

/// `element` followed by the ranks' counts, as C writes the type: `int[2][3]`, `char[]`.
fn array_name(element: &str, ranks: &[Rank]) -> String {
    let mut name = element.to_owned();
    for rank in ranks {
        match rank.count {
            Some(count) => {
                let _ = write!(name, "[{count}]");
            }
            None => name.push_str("[]"),
        }
    }
    name
}

/// A constant attribute as a signed number: DWARF's data forms carry no sign, and bounds are
/// small, so they are read unsigned unless the form is `sdata`.
fn constant(value: &Value<'_>) -> Option<i64> {
    match *value {
        AttributeValue::Sdata(value) => Some(value),
        ref other => other
            .udata_value()
            .and_then(|value| i64::try_from(value).ok()),
    }
}

/// A type's or a rank's own stride in bytes, if DWARF gives one.
fn stride(entry: &Die<'_>) -> Option<u64> {
    match entry.attr_value(gimli::DW_AT_byte_stride) {
        Some(bytes) => bytes.udata_value(),
        None => entry
            .attr_value(gimli::DW_AT_bit_stride)
            .and_then(|bits| bits.udata_value())
            .map(|bits| bits / 8),
    }
}

/// Reads the DWARF of the ELF file at `path` and returns the signature of every defined function
/// (a `DW_TAG_subprogram` with `DW_AT_low_pc` or `DW_AT_ranges`, not mere declarations), keyed by
/// `DW_AT_name`. Names, types and declaration lines are looked up through `DW_AT_specification`
/// and `DW_AT_abstract_origin`; typedefs and qualifiers are followed to find the capture type.
/// When several functions share a name (statics in different files, C++ overloads) the first
/// one wins. Returns an empty map when the file has no `.debug_info` (e.g. stripped, or split
/// DWARF / separate debug files, which are not looked for). Meant for linked executables and
/// shared libraries: the relocations of an unlinked object (`.o`) are not applied.
pub fn function_signatures(path: &Path) -> Result<HashMap<String, FunctionSignature>, DwarfError> {
    Ok(with_dwarf(path, collect)?.unwrap_or_default())
}

/// Runs `f` on the DWARF of the file at `path`, or of its separate debug file (see
/// [`crate::binary::debug_file`]) when it was stripped; `None` when neither has any.
fn with_dwarf<R>(
    path: &Path,
    f: impl FnOnce(&Dwarf<Reader<'_>>) -> gimli::Result<R>,
) -> Result<Option<R>, DwarfError> {
    let data = std::fs::read(path).map_err(|source| DwarfError::Read {
        path: path.to_owned(),
        source,
    })?;
    match DwarfFile::load(path, &data)? {
        Some(dwarf) => dwarf.with(f).map(Some),
        None => Ok(None),
    }
}

/// The DWARF sections of one binary (or of its debug file), loaded once: read, decompressed
/// and owned, so that every question asked of them during a run (signatures, member paths)
/// borrows them instead of reading the file again.
#[derive(Debug)]
pub struct DwarfFile {
    /// The file the sections are from: the binary, or its debug file.
    path: PathBuf,
    sections: DwarfSections<Vec<u8>>,
    endian: RunTimeEndian,
}

impl DwarfFile {
    /// The DWARF of the binary at `path`, whose contents are `data`, or of its separate debug
    /// file when it has none of its own; `None` when neither has any.
    pub fn load(path: &Path, data: &[u8]) -> Result<Option<Self>, DwarfError> {
        let file = object::File::parse(data).map_err(|source| DwarfError::Object {
            path: path.to_owned(),
            source,
        })?;
        if file.section_by_name(".debug_info").is_some() {
            return Self::of(path, &file).map(Some);
        }
        let Some(debug) = crate::binary::debug_file::find(path, &file).found else {
            return Ok(None);
        };
        let file = object::File::parse(&*debug.data).map_err(|source| DwarfError::Object {
            path: debug.path.clone(),
            source,
        })?;
        if file.section_by_name(".debug_info").is_none() {
            return Ok(None);
        }
        Self::of(&debug.path, &file).map(Some)
    }

    fn of(path: &Path, file: &object::File<'_>) -> Result<Self, DwarfError> {
        let sections = DwarfSections::load(|id| -> Result<Vec<u8>, object::Error> {
            // `uncompressed_data` transparently handles SHF_COMPRESSED and `.zdebug_*` sections.
            match file.section_by_name(id.name()) {
                Some(section) => section.uncompressed_data().map(Cow::into_owned),
                None => Ok(Vec::new()),
            }
        })
        .map_err(|source| DwarfError::Object {
            path: path.to_owned(),
            source,
        })?;
        let endian = if file.is_little_endian() {
            RunTimeEndian::Little
        } else {
            RunTimeEndian::Big
        };
        Ok(Self {
            path: path.to_owned(),
            sections,
            endian,
        })
    }

    /// Runs `f` on the sections.
    pub fn with<R>(
        &self,
        f: impl FnOnce(&Dwarf<Reader<'_>>) -> gimli::Result<R>,
    ) -> Result<R, DwarfError> {
        let dwarf = self
            .sections
            .borrow(|section| EndianSlice::new(section, self.endian));
        f(&dwarf).map_err(|source| DwarfError::Dwarf {
            path: self.path.clone(),
            source,
        })
    }

    /// [`function_signatures`] of these sections.
    pub fn signatures(&self) -> Result<HashMap<String, FunctionSignature>, DwarfError> {
        self.with(collect)
    }
}

fn collect(dwarf: &Dwarf<Reader<'_>>) -> gimli::Result<HashMap<String, FunctionSignature>> {
    let ctx = Ctx::new(dwarf)?;
    let mut signatures = HashMap::new();
    for (_, loc) in ctx.defined_functions()? {
        if let Some(signature) = ctx.signature(loc)? {
            signatures
                .entry(signature.name.clone())
                .or_insert(signature);
        }
    }
    Ok(signatures)
}

struct Ctx<'d, 'a> {
    dwarf: &'d Dwarf<Reader<'a>>,
    units: Vec<Unit<Reader<'a>>>,
}

impl<'d, 'a> Ctx<'d, 'a> {
    fn new(dwarf: &'d Dwarf<Reader<'a>>) -> gimli::Result<Self> {
        // All units are parsed up front so cross-unit references (DW_FORM_ref_addr, as LTO
        // emits) can be resolved.
        let mut units = Vec::new();
        let mut headers = dwarf.units();
        while let Some(header) = headers.next()? {
            units.push(dwarf.unit(header)?);
        }
        Ok(Ctx { dwarf, units })
    }

    /// Every subprogram that has code, in DIE order, with its unit.
    fn defined_functions(&self) -> gimli::Result<Vec<(usize, Loc)>> {
        let mut functions = Vec::new();
        for u in 0..self.units.len() {
            let mut cursor = self.units[u].entries();
            while let Some(entry) = cursor.next_dfs()? {
                if entry.tag() == gimli::DW_TAG_subprogram && self.is_defined(u, entry)? {
                    functions.push((u, (u, entry.offset())));
                }
            }
        }
        Ok(functions)
    }

    /// Whether the subprogram `entry` of unit `u` has code, rather than only declaring it.
    fn is_defined(&self, u: usize, entry: &Die<'_>) -> gimli::Result<bool> {
        if entry.has_attr(gimli::DW_AT_ranges) {
            return Ok(true);
        }
        let Some(low_pc) = entry.attr_value(gimli::DW_AT_low_pc) else {
            return Ok(false);
        };
        let unit = &self.units[u];
        // Linkers mark functions they discarded (unused sections, duplicate COMDATs) with a
        // tombstone address: -1/-2, or 0 (where no code of an executable or library can be).
        Ok(match self.dwarf.attr_address(unit, low_pc)? {
            Some(addr) => addr != 0 && !unit.header.is_tombstone_address(addr),
            None => false,
        })
    }

    fn signature(&self, loc: Loc) -> gimli::Result<Option<FunctionSignature>> {
        let Some(name) = self.string_attr(loc, gimli::DW_AT_name)? else {
            return Ok(None);
        };
        let linkage_name = match self.string_attr(loc, gimli::DW_AT_linkage_name)? {
            Some(linkage_name) => Some(linkage_name),
            None => self.string_attr(loc, gimli::DW_AT_MIPS_linkage_name)?,
        };
        let mut params = Vec::new();
        for child in self.parameters(loc)? {
            let ty = self
                .type_attr(child, 0)?
                .unwrap_or_else(|| TypeInfo::new("?", None));
            params.push(Param {
                name: self.string_attr(child, gimli::DW_AT_name)?,
                ty,
            });
        }
        let file = match self.attr(loc, gimli::DW_AT_decl_file)? {
            Some((u, value)) => self.file_path(u, value)?,
            None => None,
        };
        let line = self
            .attr(loc, gimli::DW_AT_decl_line)?
            .and_then(|(_, value)| value.udata_value());
        Ok(Some(FunctionSignature {
            name,
            linkage_name,
            params,
            return_type: self.type_attr(loc, 0)?,
            file,
            line,
        }))
    }

    /// The formal parameters of the subprogram at `loc`, in order. An out-of-line copy of an
    /// inlined function may list them only in the abstract instance.
    fn parameters(&self, loc: Loc) -> gimli::Result<Vec<Loc>> {
        let mut children = self.children(loc)?;
        if !children
            .iter()
            .any(|(tag, _)| *tag == gimli::DW_TAG_formal_parameter)
            && let Some(origin) = self.origin(loc)?
        {
            children = self.children(origin)?;
        }
        Ok(children
            .into_iter()
            .filter(|(tag, _)| *tag == gimli::DW_TAG_formal_parameter)
            .map(|(_, param)| param)
            .collect())
    }

    fn entry(&self, (u, offset): Loc) -> gimli::Result<Die<'_>> {
        self.units[u].entry(offset)
    }

    /// Where a reference attribute of a DIE in unit `u` points to.
    fn target(&self, u: usize, value: Value<'_>) -> Option<Loc> {
        match value {
            AttributeValue::UnitRef(offset) => Some((u, offset)),
            AttributeValue::DebugInfoRef(offset) => {
                let after = self.units.partition_point(|unit| {
                    unit.header
                        .debug_info_offset()
                        .is_some_and(|start| start <= offset)
                });
                let u = after.checked_sub(1)?;
                Some((u, offset.to_unit_offset(&self.units[u].header)?))
            }
            _ => None,
        }
    }

    /// The declaration or abstract instance that `loc` completes.
    fn origin(&self, loc: Loc) -> gimli::Result<Option<Loc>> {
        let entry = self.entry(loc)?;
        let value = entry
            .attr_value(gimli::DW_AT_specification)
            .or_else(|| entry.attr_value(gimli::DW_AT_abstract_origin));
        Ok(value.and_then(|value| self.target(loc.0, value)))
    }

    /// Attribute `at` of `loc`, or of the DIEs it completes, with the unit it was found in.
    fn attr(&self, mut loc: Loc, at: DwAt) -> gimli::Result<Option<(usize, Value<'_>)>> {
        for _ in 0..MAX_DEPTH {
            if let Some(value) = self.entry(loc)?.attr_value(at) {
                return Ok(Some((loc.0, value)));
            }
            match self.origin(loc)? {
                Some(origin) => loc = origin,
                None => break,
            }
        }
        Ok(None)
    }

    fn string_attr(&self, loc: Loc, at: DwAt) -> gimli::Result<Option<String>> {
        match self.attr(loc, at)? {
            Some((u, value)) => Ok(Some(self.string(u, value)?)),
            None => Ok(None),
        }
    }

    fn string(&self, u: usize, value: Value<'_>) -> gimli::Result<String> {
        Ok(self
            .dwarf
            .attr_string(&self.units[u], value)?
            .to_string_lossy()
            .into_owned())
    }

    /// The `DW_AT_type` of `loc`; `None` for void.
    fn type_attr(&self, loc: Loc, depth: u8) -> gimli::Result<Option<TypeInfo>> {
        Ok(match self.attr(loc, gimli::DW_AT_type)? {
            Some((u, value)) => Some(match self.target(u, value) {
                Some(ty) if depth < MAX_DEPTH => self.type_info(ty, depth)?.0,
                _ => TypeInfo::new("?", None),
            }),
            None => None,
        })
    }

    /// Immediate children of `loc`, with their tags.
    fn children(&self, loc: Loc) -> gimli::Result<Vec<(DwTag, Loc)>> {
        let mut tree = self.units[loc.0].entries_tree(Some(loc.1))?;
        let mut children = tree.root()?.children();
        let mut out = Vec::new();
        while let Some(child) = children.next()? {
            out.push((child.entry().tag(), (loc.0, child.entry().offset())));
        }
        Ok(out)
    }

    /// The type at `loc` and, for a 1-byte character type (behind typedefs and qualifiers), its
    /// integer capture type: a pointer to it is a string, and a typedef of it (`uint8_t`) a number.
    fn type_info(&self, loc: Loc, depth: u8) -> gimli::Result<(TypeInfo, Option<ValueType>)> {
        let entry = self.entry(loc)?;
        let name = match entry.attr_value(gimli::DW_AT_name) {
            Some(value) => Some(self.string(loc.0, value)?),
            None => None,
        };
        let inner = entry
            .attr_value(gimli::DW_AT_type)
            .and_then(|value| self.target(loc.0, value));
        let inner_info = || match inner {
            _ if depth >= MAX_DEPTH => Ok((TypeInfo::new("?", None), None)),
            Some(inner) => self.type_info(inner, depth + 1),
            None => Ok((TypeInfo::new("void", None), None)), // no DW_AT_type means void
        };
        let size = entry
            .attr_value(gimli::DW_AT_byte_size)
            .and_then(|value| value.udata_value());
        let tag = entry.tag();
        let info = match tag {
            gimli::DW_TAG_base_type => {
                let encoding = match entry.attr_value(gimli::DW_AT_encoding) {
                    Some(AttributeValue::Encoding(encoding)) => encoding,
                    _ => DwAte(0),
                };
                let capture =
                    size.and_then(|size| ValueType::of_base(base_encoding(encoding), size));
                let char_int = match encoding {
                    _ if capture != Some(ValueType::Char) => None,
                    gimli::DW_ATE_signed_char => Some(ValueType::I8),
                    _ => Some(ValueType::U8),
                };
                let c_name = c_base_name(name.as_deref().unwrap_or("?"));
                let abi = match leaf_of_base(encoding, size.unwrap_or(0)) {
                    Leaf::Integer => Abi::INTEGER,
                    Leaf::Sse => Abi::Sse,
                    Leaf::X87 => Abi::Memory { eightbytes: 2 },
                };
                return Ok((TypeInfo::new(c_name, capture).with_abi(abi), char_int));
            }
            gimli::DW_TAG_typedef => {
                // A typedef of a character type (`uint8_t`, `int8_t`) is a small integer.
                let (inner, char_int) = inner_info()?;
                let capture = char_int.or(inner.capture);
                // Passed as what it names: a typedef'd struct keeps its class, a typedef'd
                // `char *` its bytes.
                let c_name = name.unwrap_or_else(|| inner.c_name.clone());
                return Ok((
                    TypeInfo {
                        c_name,
                        capture,
                        ..inner
                    },
                    char_int,
                ));
            }
            gimli::DW_TAG_const_type
            | gimli::DW_TAG_volatile_type
            | gimli::DW_TAG_restrict_type
            | gimli::DW_TAG_atomic_type => {
                let qualifier = match tag {
                    gimli::DW_TAG_const_type => "const",
                    gimli::DW_TAG_volatile_type => "volatile",
                    gimli::DW_TAG_restrict_type => "restrict",
                    _ => "_Atomic",
                };
                let (inner, char_int) = inner_info()?;
                // C puts a pointer's own qualifier after the `*`: `char *const`.
                let c_name = if inner.c_name.ends_with(['*', '&']) {
                    format!("{}{qualifier}", inner.c_name)
                } else {
                    format!("{qualifier} {}", inner.c_name)
                };
                return Ok((TypeInfo { c_name, ..inner }, char_int));
            }
            gimli::DW_TAG_pointer_type
            | gimli::DW_TAG_reference_type
            | gimli::DW_TAG_rvalue_reference_type => {
                let sigil = match tag {
                    gimli::DW_TAG_pointer_type => "*",
                    gimli::DW_TAG_reference_type => "&",
                    _ => "&&",
                };
                let (pointee, char_int) = inner_info()?;
                let inner_tag = match inner {
                    Some(inner) => Some(self.entry(inner)?.tag()),
                    None => None,
                };
                let c_name = match (inner, inner_tag) {
                    (Some(inner), Some(gimli::DW_TAG_subroutine_type)) => {
                        self.subroutine_name(inner, sigil, depth + 1)?
                    }
                    // `int (&)[10]`: the sigil goes inside, before the ranks.
                    (Some(_), Some(gimli::DW_TAG_array_type))
                        if let Some(ranks) = pointee.c_name.find('[') =>
                    {
                        let (element, ranks) = pointee.c_name.split_at(ranks);
                        format!("{element} ({sigil}){ranks}")
                    }
                    _ if pointee.c_name.ends_with(['*', '&']) => {
                        format!("{}{sigil}", pointee.c_name)
                    }
                    _ => format!("{} {sigil}", pointee.c_name),
                };
                let buffer = match tag {
                    gimli::DW_TAG_pointer_type => self.byte_buffer(inner, depth + 1)?,
                    _ => None,
                };
                TypeInfo {
                    buffer,
                    ..TypeInfo::new(
                        c_name,
                        Some(if char_int.is_some() {
                            ValueType::Str
                        } else {
                            ValueType::Ptr
                        }),
                    )
                }
            }
            gimli::DW_TAG_enumeration_type => {
                // Enums behave as their underlying integer type (GCC and Clang both emit it).
                let capture = match inner {
                    Some(_) => inner_info()?.0.capture,
                    None => ValueType::integer(true, size.unwrap_or(4)),
                };
                TypeInfo::new(
                    format!("enum {}", name.as_deref().unwrap_or("<anonymous>")),
                    capture,
                )
            }
            gimli::DW_TAG_structure_type | gimli::DW_TAG_union_type | gimli::DW_TAG_class_type => {
                let kind = match tag {
                    gimli::DW_TAG_structure_type => "struct",
                    gimli::DW_TAG_union_type => "union",
                    _ => "class",
                };
                let c_name = match name.as_deref() {
                    // Go names its types in its own syntax (`main.order`, `[]int`, `string`).
                    Some(name) if entry.attr_value(go::DW_AT_GO_KIND).is_some() => name.to_owned(),
                    name => format!("{kind} {}", name.unwrap_or("<anonymous>")),
                };
                // A C++ class that is not trivially copyable is passed by invisible reference.
                if entry.attr_value(gimli::DW_AT_calling_convention)
                    == Some(AttributeValue::CallingConvention(
                        gimli::DW_CC_pass_by_reference,
                    ))
                {
                    return Ok((
                        TypeInfo::new(format!("{c_name} (by reference)"), Some(ValueType::Ptr)),
                        None,
                    ));
                }
                let abi = self.aggregate_abi(loc, size.unwrap_or(0), depth)?;
                TypeInfo::new(c_name, None).with_abi(abi)
            }
            gimli::DW_TAG_array_type => {
                let element = inner_info()?.0.c_name;
                let name = match self.array_shape_at(loc, depth + 1)? {
                    Some(shape) => array_name(&element, &shape.ranks),
                    None => format!("{element}[]"),
                };
                TypeInfo::new(name, None)
            }
            gimli::DW_TAG_subroutine_type => {
                TypeInfo::new(self.subroutine_name(loc, "", depth)?, None)
            }
            _ => TypeInfo::new(name.unwrap_or_else(|| tag.to_string()), None),
        };
        Ok((info, None))
    }

    /// What a pointer to `pointee` (`None`: `void`) points to, when it is bytes: `void` or a
    /// one-byte character type, behind typedefs and qualifiers.
    fn byte_buffer(
        &self,
        mut pointee: Option<Loc>,
        depth: u8,
    ) -> gimli::Result<Option<ByteBuffer>> {
        let mut read_only = false;
        for _ in depth..MAX_DEPTH {
            let Some(loc) = pointee else {
                return Ok(Some(ByteBuffer {
                    text: false,
                    read_only,
                }));
            };
            let entry = self.entry(loc)?;
            match entry.tag() {
                gimli::DW_TAG_base_type => {
                    let encoding = entry.attr_value(gimli::DW_AT_encoding);
                    let one_byte = entry
                        .attr_value(gimli::DW_AT_byte_size)
                        .and_then(|size| size.udata_value())
                        == Some(1);
                    let character = matches!(
                        encoding,
                        Some(AttributeValue::Encoding(
                            gimli::DW_ATE_signed_char | gimli::DW_ATE_unsigned_char
                        ))
                    );
                    if !(one_byte && character) {
                        return Ok(None);
                    }
                    // DWARF tells plain `char` from `signed char` by name only.
                    let name = match entry.attr_value(gimli::DW_AT_name) {
                        Some(name) => self.string(loc.0, name)?,
                        None => String::new(),
                    };
                    return Ok(Some(ByteBuffer {
                        text: name == "char",
                        read_only,
                    }));
                }
                gimli::DW_TAG_const_type => read_only = true,
                gimli::DW_TAG_typedef
                | gimli::DW_TAG_volatile_type
                | gimli::DW_TAG_restrict_type
                | gimli::DW_TAG_atomic_type => {}
                _ => return Ok(None),
            }
            pointee = entry
                .attr_value(gimli::DW_AT_type)
                .and_then(|value| self.target(loc.0, value));
        }
        Ok(None)
    }

    /// The class of the struct, union or class at `loc`, `size` bytes (§3.2.3): over 16 bytes,
    /// or holding a `long double`, in memory; otherwise one class per eightbyte, INTEGER if any
    /// integer or pointer lies in it.
    fn aggregate_abi(&self, loc: Loc, size: u64, depth: u8) -> gimli::Result<Abi> {
        let memory = Abi::Memory {
            eightbytes: size.div_ceil(8),
        };
        if size > 16 || size == 0 {
            return Ok(memory);
        }
        let mut leaves = Vec::new();
        if !self.leaves(loc, 0, depth, &mut leaves)? {
            return Ok(memory);
        }
        if leaves.iter().any(|scalar| scalar.leaf == Leaf::X87) {
            return Ok(memory);
        }
        let eightbytes = size.div_ceil(8);
        let classes: Vec<Leaf> = (0..eightbytes)
            .map(|i| {
                let integer = leaves
                    .iter()
                    .any(|scalar| scalar.offset / 8 == i && scalar.leaf == Leaf::Integer);
                if integer { Leaf::Integer } else { Leaf::Sse }
            })
            .collect();
        Ok(if classes.iter().all(|c| *c == Leaf::Sse) {
            Abi::Sse
        } else if classes.iter().all(|c| *c == Leaf::Integer) {
            // Members that are a whole eightbyte each: capturable one by one.
            let whole: Vec<_> = leaves
                .iter()
                .filter_map(|scalar| Some((scalar.offset, scalar.field.clone()?)))
                .collect();
            let fields = if whole.len() as u64 == eightbytes
                && whole
                    .iter()
                    .enumerate()
                    .all(|(i, (o, _))| *o == 8 * i as u64)
            {
                whole.into_iter().map(|(_, field)| field).collect()
            } else {
                Vec::new()
            };
            Abi::Integer {
                eightbytes: eightbytes as u8,
                fields,
            }
        } else {
            Abi::Mixed
        })
    }

    /// Appends the scalar members of the aggregate at `loc` (placed at `base`), through nested
    /// aggregates and arrays. `false` for what this reader cannot place (a member without an
    /// offset, an array without a count): the caller then takes the ABI's safe answer, memory.
    fn leaves(&self, loc: Loc, base: u64, depth: u8, out: &mut Vec<Scalar>) -> gimli::Result<bool> {
        if depth >= MAX_DEPTH {
            return Ok(false);
        }
        let union = self.entry(loc)?.tag() == gimli::DW_TAG_union_type;
        for (tag, member) in self.children(loc)? {
            if tag != gimli::DW_TAG_member {
                continue;
            }
            let entry = self.entry(member)?;
            let offset = match entry.attr_value(gimli::DW_AT_data_member_location) {
                Some(value) => value.udata_value(),
                None if union => Some(0),
                // A bitfield: placed by its bit offset.
                None => entry
                    .attr_value(gimli::DW_AT_data_bit_offset)
                    .and_then(|bits| bits.udata_value())
                    .map(|bits| bits / 8),
            };
            let Some(offset) = offset else {
                return Ok(false);
            };
            let Some(ty) = entry
                .attr_value(gimli::DW_AT_type)
                .and_then(|value| self.target(member.0, value))
            else {
                return Ok(false);
            };
            let name = match entry.attr_value(gimli::DW_AT_name) {
                Some(value) => Some(self.string(member.0, value)?),
                None => None,
            };
            if !self.leaves_of_type(ty, base + offset, name, depth + 1, out)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// [`Self::leaves`] of one member of type `ty` at `at`.
    fn leaves_of_type(
        &self,
        ty: Loc,
        at: u64,
        name: Option<String>,
        depth: u8,
        out: &mut Vec<Scalar>,
    ) -> gimli::Result<bool> {
        if depth >= MAX_DEPTH {
            return Ok(false);
        }
        let entry = self.entry(ty)?;
        let inner = entry
            .attr_value(gimli::DW_AT_type)
            .and_then(|value| self.target(ty.0, value));
        match entry.tag() {
            gimli::DW_TAG_typedef
            | gimli::DW_TAG_const_type
            | gimli::DW_TAG_volatile_type
            | gimli::DW_TAG_atomic_type => match inner {
                Some(inner) => self.leaves_of_type(inner, at, name, depth + 1, out),
                None => Ok(false),
            },
            gimli::DW_TAG_structure_type | gimli::DW_TAG_union_type | gimli::DW_TAG_class_type => {
                self.leaves(ty, at, depth + 1, out)
            }
            gimli::DW_TAG_array_type => {
                // Every element of every rank, laid out one after the other; an aggregate
                // classified here is at most 16 bytes, so 16 elements cover it.
                let Some(shape) = self.array_shape_at(ty, depth + 1)? else {
                    return Ok(false);
                };
                let (Some(count), Some(size)) = (
                    shape.element_count(),
                    shape.ranks.last().and_then(|rank| rank.stride),
                ) else {
                    return Ok(false);
                };
                for i in 0..count.min(16) {
                    if !self.leaves_of_type(shape.element, at + i * size, None, depth + 1, out)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            _ => {
                let (info, _) = self.type_info(ty, depth + 1)?;
                let leaf = match info.abi {
                    Abi::Sse => Leaf::Sse,
                    Abi::Memory { .. } => Leaf::X87,
                    _ => Leaf::Integer,
                };
                let whole = self.byte_size(ty, depth + 1)? == Some(8) && at.is_multiple_of(8);
                let field = match (name, info.capture) {
                    (Some(name), Some(capture)) if whole && leaf == Leaf::Integer => {
                        Some((name, capture))
                    }
                    _ => None,
                };
                out.push(Scalar {
                    offset: at,
                    field,
                    leaf,
                });
                Ok(true)
            }
        }
    }

    /// The shape of the array type at `loc`: its element type and one [`Rank`] per
    /// `DW_TAG_subrange_type`, outermost first (`int y[2][3]` is one array type with two
    /// subranges, not an array of arrays); `None` for any other type, or one without an
    /// element type.
    fn array_shape(&self, loc: Loc) -> gimli::Result<Option<ArrayShape>> {
        self.array_shape_at(loc, 0)
    }

    /// [`Self::array_shape`], `depth` references deep into a type.
    fn array_shape_at(&self, loc: Loc, depth: u8) -> gimli::Result<Option<ArrayShape>> {
        let entry = self.entry(loc)?;
        if entry.tag() != gimli::DW_TAG_array_type {
            return Ok(None);
        }
        let Some(element) = entry
            .attr_value(gimli::DW_AT_type)
            .and_then(|value| self.target(loc.0, value))
        else {
            return Ok(None);
        };
        // The array's own stride, when its elements are not packed at their size.
        let element_stride = match stride(&entry) {
            Some(stride) => Some(stride),
            None => self.byte_size(element, depth + 1)?,
        };
        let mut subranges = Vec::new();
        for (tag, child) in self.children(loc)? {
            if tag == gimli::DW_TAG_subrange_type {
                let entry = self.entry(child)?;
                let lower = entry
                    .attr_value(gimli::DW_AT_lower_bound)
                    .map_or(Some(0), |value| constant(&value));
                let count = match (entry.attr_value(gimli::DW_AT_count), lower) {
                    (Some(count), _) => constant(&count).and_then(|n| u64::try_from(n).ok()),
                    (None, Some(lower)) => entry
                        .attr_value(gimli::DW_AT_upper_bound)
                        .and_then(|upper| constant(&upper))
                        .and_then(|upper| {
                            u64::try_from(upper.checked_sub(lower)?.checked_add(1)?).ok()
                        }),
                    (None, None) => None,
                };
                subranges.push((lower.unwrap_or(0), count, stride(&entry)));
            }
        }
        // Row-major: each rank's stride is the size of everything the later ranks span.
        let mut ranks = Vec::with_capacity(subranges.len());
        let mut inner = element_stride;
        for (lower, count, own_stride) in subranges.into_iter().rev() {
            let stride = own_stride.or(inner);
            ranks.push(Rank {
                lower,
                count,
                stride,
            });
            inner = stride
                .zip(count)
                .and_then(|(stride, count)| stride.checked_mul(count));
        }
        ranks.reverse();
        Ok(Some(ArrayShape { element, ranks }))
    }

    /// How many elements the array at `loc` holds in all (the product of its ranks' counts),
    /// if DWARF says.
    fn array_count(&self, loc: Loc) -> gimli::Result<Option<u64>> {
        Ok(self
            .array_shape(loc)?
            .and_then(|shape| shape.element_count()))
    }

    /// `DW_AT_byte_size` of the type at `loc`, through typedefs and qualifiers (8 for pointers;
    /// an array's, which DWARF seldom gives, from its shape).
    fn byte_size(&self, loc: Loc, depth: u8) -> gimli::Result<Option<u64>> {
        let entry = self.entry(loc)?;
        if let Some(size) = entry.attr_value(gimli::DW_AT_byte_size) {
            return Ok(size.udata_value());
        }
        match entry.tag() {
            gimli::DW_TAG_pointer_type
            | gimli::DW_TAG_reference_type
            | gimli::DW_TAG_rvalue_reference_type => Ok(Some(8)),
            gimli::DW_TAG_array_type if depth < MAX_DEPTH => Ok(self
                .array_shape_at(loc, depth + 1)?
                .and_then(|shape| shape.byte_size())),
            _ => match entry
                .attr_value(gimli::DW_AT_type)
                .and_then(|value| self.target(loc.0, value))
            {
                Some(inner) if depth < MAX_DEPTH => self.byte_size(inner, depth + 1),
                _ => Ok(None),
            },
        }
    }

    /// `ret (sigil)(args)`, e.g. `int (*)(int, int)`, or `ret (args)` with an empty `sigil`.
    fn subroutine_name(&self, loc: Loc, sigil: &str, depth: u8) -> gimli::Result<String> {
        let ret = self
            .type_attr(loc, depth + 1)?
            .map_or_else(|| "void".to_owned(), |ret| ret.c_name);
        let mut args = Vec::new();
        for (tag, child) in self.children(loc)? {
            match tag {
                gimli::DW_TAG_formal_parameter => args.push(
                    self.type_attr(child, depth + 1)?
                        .map_or_else(|| "?".to_owned(), |ty| ty.c_name),
                ),
                gimli::DW_TAG_unspecified_parameters => args.push("...".to_owned()),
                _ => {}
            }
        }
        let args = args.join(", ");
        Ok(if sigil.is_empty() {
            format!("{ret} ({args})")
        } else {
            format!("{ret} ({sigil})({args})")
        })
    }

    /// The path of file number `value` in unit `u`'s line program.
    fn file_path(&self, u: usize, value: Value<'_>) -> gimli::Result<Option<String>> {
        let unit = &self.units[u];
        let index = match value {
            AttributeValue::FileIndex(index) => Some(index),
            other => other.udata_value(),
        };
        let header = unit.line_program.as_ref().map(|program| program.header());
        let Some((header, file)) = header.zip(index).and_then(|(h, i)| Some((h, h.file(i)?)))
        else {
            return Ok(None);
        };
        // `push` replaces the path when given an absolute one, which gives DWARF's lookup order.
        let mut path = PathBuf::new();
        if let Some(comp_dir) = &unit.comp_dir {
            path.push(&*comp_dir.to_string_lossy());
        }
        for part in file.directory(header).into_iter().chain([file.path_name()]) {
            path.push(&*self.dwarf.attr_string(unit, part)?.to_string_lossy());
        }
        Ok(Some(path.to_string_lossy().into_owned()))
    }
}

/// The class of a `DW_TAG_base_type` (§3.2.3): floating point in XMM registers, except the
/// x87 `long double`, which goes in memory; everything else in integer registers.
fn leaf_of_base(encoding: DwAte, size: u64) -> Leaf {
    match encoding {
        gimli::DW_ATE_float if size > 8 => Leaf::X87,
        gimli::DW_ATE_float | gimli::DW_ATE_complex_float => Leaf::Sse,
        _ => Leaf::Integer,
    }
}

/// What a `DW_TAG_base_type`'s encoding means for capturing it.
fn base_encoding(encoding: DwAte) -> BaseEncoding {
    match encoding {
        gimli::DW_ATE_signed => BaseEncoding::Signed,
        gimli::DW_ATE_unsigned => BaseEncoding::Unsigned,
        gimli::DW_ATE_signed_char => BaseEncoding::SignedChar,
        gimli::DW_ATE_unsigned_char => BaseEncoding::UnsignedChar,
        gimli::DW_ATE_boolean => BaseEncoding::Boolean,
        gimli::DW_ATE_UTF => BaseEncoding::Utf,
        _ => BaseEncoding::Other,
    }
}

/// GCC spells some base types unusually (`long unsigned int`); use the customary spelling.
fn c_base_name(name: &str) -> &str {
    match name {
        "long int" => "long",
        "long unsigned int" => "unsigned long",
        "short int" => "short",
        "short unsigned int" => "unsigned short",
        "long long int" => "long long",
        "long long unsigned int" => "unsigned long long",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    const SOURCE: &str = r#"#include <stddef.h>
#include <stdint.h>
struct pair { int a; int b; };
enum color { RED, GREEN, BLUE };
int add(int a, int b) { return a + b; }
long sum3(long a, long b, long c) { return a + b + c; }
const char *greet(const char *name, unsigned char flag, _Bool ok, char c) { return ok && flag && c ? name : ""; }
void take(size_t n, uint8_t small, void *p, double d, struct pair pv) { (void)n; (void)small; (void)p; (void)d; (void)pv; }
enum color pick(enum color c) { return c; }
static float half(float x) { return x / 2; }
short misc(unsigned long ul, const char *const *argv, int (*f)(int, int), volatile int8_t v, int n, ...) { return (short)(ul + (argv != 0) + f(1, 2) + v + n); }
int main(void) { struct pair p = { 1, 2 }; take(1, 2, 0, 3.0, p); return add(1, 2) + (int)sum3(1, 2, 3) + *greet("a", 1, 1, 'c') + pick(RED) + (int)half(2) + misc(1, 0, add, 1, 0); }
"#;

    /// Compiles [`SOURCE`] with `flags` and returns the binary and the source file.
    fn compile(dir: &Path, flags: &[&str]) -> (PathBuf, PathBuf) {
        let source = dir.join("sample.c");
        std::fs::write(&source, SOURCE).unwrap();
        let binary = dir.join("sample");
        let status = Command::new("gcc")
            .args(flags)
            .arg("-o")
            .arg(&binary)
            .arg(&source)
            .status()
            .expect("gcc must be installed to run these tests");
        assert!(status.success(), "gcc failed");
        (binary, source)
    }

    fn ty(c_name: &str, capture: Option<&'static str>) -> TypeInfo {
        TypeInfo::new(c_name, capture.map(|name| name.parse().unwrap()))
    }

    /// `(name, c_name, capture)` of each parameter.
    fn params(signature: &FunctionSignature) -> Vec<(&str, &str, Option<&str>)> {
        let params = signature.params.iter();
        params
            .map(|Param { name, ty }| {
                let capture = ty.capture.map(ValueType::name);
                (name.as_deref().unwrap(), &*ty.c_name, capture)
            })
            .collect()
    }

    #[test]
    fn reads_signatures_from_gcc_debug_info() {
        let dir = tempfile::tempdir().unwrap();
        let (binary, source) = compile(dir.path(), &["-g", "-O0"]);
        let signatures = function_signatures(&binary).unwrap();

        let add = &signatures["add"];
        assert_eq!(
            params(add),
            [("a", "int", Some("i32")), ("b", "int", Some("i32"))]
        );
        assert_eq!(add.return_type, Some(ty("int", Some("i32"))));
        assert_eq!(add.file.as_deref(), source.to_str());
        assert_eq!(add.line, Some(5));
        assert_eq!(add.linkage_name, None);

        let sum3 = &signatures["sum3"];
        assert_eq!(
            params(sum3),
            [
                ("a", "long", Some("i64")),
                ("b", "long", Some("i64")),
                ("c", "long", Some("i64"))
            ]
        );
        assert_eq!(sum3.line, Some(6));

        let greet = &signatures["greet"];
        assert_eq!(
            params(greet),
            [
                ("name", "const char *", Some("str")),
                ("flag", "unsigned char", Some("char")),
                ("ok", "_Bool", Some("bool")),
                ("c", "char", Some("char")),
            ]
        );
        // A pointer to bytes says what they are, for `init` to pair it with a size.
        let text = ByteBuffer {
            text: true,
            read_only: true,
        };
        assert_eq!(
            greet.return_type,
            Some(TypeInfo {
                buffer: Some(text),
                ..ty("const char *", Some("str"))
            })
        );

        let take = &signatures["take"];
        assert_eq!(
            params(take),
            [
                ("n", "size_t", Some("u64")),
                ("small", "uint8_t", Some("u8")),
                ("p", "void *", Some("ptr")),
                ("d", "double", None),
                ("pv", "struct pair", None),
            ]
        );
        assert_eq!(take.return_type, None);
        let void = ByteBuffer {
            text: false,
            read_only: false,
        };
        assert_eq!(take.params[2].ty.buffer, Some(void));
        assert_eq!(signatures["misc"].params[1].ty.buffer, None, "char **");

        // GCC gives an enum without negative values `unsigned int` as its underlying type.
        let pick = &signatures["pick"];
        assert_eq!(params(pick), [("c", "enum color", Some("u32"))]);
        assert_eq!(pick.return_type, Some(ty("enum color", Some("u32"))));

        let half = &signatures["half"];
        assert_eq!(params(half), [("x", "float", None)]);
        assert_eq!(half.line, Some(10));

        // The variadic `...` is not a parameter.
        assert_eq!(
            params(&signatures["misc"]),
            [
                ("ul", "unsigned long", Some("u64")),
                ("argv", "const char *const *", Some("ptr")),
                ("f", "int (*)(int, int)", Some("ptr")),
                ("v", "volatile int8_t", Some("i8")),
                ("n", "int", Some("i32")),
            ]
        );
        assert_eq!(
            signatures["misc"].return_type,
            Some(ty("short", Some("i16")))
        );
    }

    #[test]
    fn binary_without_debug_info_gives_no_signatures() {
        let dir = tempfile::tempdir().unwrap();
        let (binary, _) = compile(dir.path(), &["-O0"]);
        assert_eq!(function_signatures(&binary).unwrap(), HashMap::new());
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let error = function_signatures(&missing).unwrap_err();
        assert!(matches!(error, DwarfError::Read { .. }));
        assert!(
            error.to_string().contains(missing.to_str().unwrap()),
            "{error}"
        );

        let text = dir.path().join("text");
        std::fs::write(&text, "not an ELF file").unwrap();
        let error = function_signatures(&text).unwrap_err();
        assert!(matches!(error, DwarfError::Object { .. }));
        assert!(
            error.to_string().contains(text.to_str().unwrap()),
            "{error}"
        );
    }
}
