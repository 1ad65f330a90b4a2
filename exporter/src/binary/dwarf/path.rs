//! A path from a parameter to a value inside what it points to (`->user->name`, `->tags[2]`),
//! resolved once from DWARF into the chain of byte offsets the entry program follows: every
//! offset but the last is added and dereferenced, the last gives the value's address.

use std::{collections::BTreeMap, path::Path};

use spanprobe_config::ValueType;

use super::{Ctx, DwarfFile, Loc, MAX_DEPTH, Rank, go, with_dwarf};
use crate::x86_64::sysv::Abi;
use crate::x86_64::sysv::{Place, places};

/// One step of a path as written.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// `->name`: dereference, then select the member.
    Arrow(String),
    /// `.name`: select the member of the struct in place.
    Dot(String),
    /// `[n]`: index the array in place, or the array a pointer points to.
    Index(u64),
}

/// A path resolved: the chain the kernel follows, and what is at its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldChain {
    pub offsets: Vec<i32>,
    /// The type the value is read as: as the config gave it, or as DWARF says.
    pub ty: ValueType,
    /// The value's C type, for `check` and messages.
    pub c_name: String,
    /// For a `char[N]` read in place: N, the most a string there can hold.
    pub array_len: Option<u64>,
    /// For an enum whose type was left to DWARF: its enumerators' names by value.
    pub enumerators: Option<BTreeMap<i64, String>>,
    /// The chain ends at a pointer with its count beside it (a Go `string` or `[]byte`, a
    /// Rust `&str` or `&[u8]`), which the kernel reads both of: the bytes have no NUL after
    /// them.
    pub counted: bool,
}

/// Why a path cannot be resolved.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    #[error("`{path}` is not a path: {reason} (write `->member`, `.member` or `[n]` steps)")]
    Syntax { path: String, reason: String },
    #[error("the binary has no DWARF debug info: give the chain as `offsets` instead")]
    NoDebugInfo,
    #[error("DWARF describes no function `{0}`")]
    NoFunction(String),
    #[error("no parameter of `{function}` is passed in slot {index}")]
    NoParameter { function: String, index: u8 },
    #[error(
        "the value is {c_name}, read as `{ty}`: a return value is captured as a number, not \
         the memory behind it; give `type: ptr`, or a path to a number"
    )]
    MemoryReturn { c_name: String, ty: ValueType },
    #[error("`{0}` returns nothing (void)")]
    NoReturnValue(String),
    #[error("`{step}`: {c_name} is not a pointer")]
    NotPointer { step: String, c_name: String },
    #[error("`{step}`: {c_name} is not a struct, union or class")]
    NotStruct { step: String, c_name: String },
    #[error("`{step}`: {c_name} has no member `{member}`{}", members_hint(.members))]
    NoMember {
        step: String,
        c_name: String,
        member: String,
        members: Vec<String>,
    },
    #[error("`{step}`: `{member}` is a bitfield, which cannot be read as a whole number of bytes")]
    Bitfield { step: String, member: String },
    #[error("`{step}`: {c_name} is neither an array nor a pointer")]
    NotIndexable { step: String, c_name: String },
    #[error(
        "`{step}`: index {index} is out of bounds of {array} ({c_name}): {}",
        valid_indexes(*.lower, *.count)
    )]
    OutOfBounds {
        step: String,
        /// The path to the array, quoted, or "the array" at the parameter itself.
        array: String,
        c_name: String,
        index: u64,
        lower: i64,
        count: Option<u64>,
    },
    #[error(
        "the value is an array, {c_name}, which no type reads as a whole: index it down to an \
         element (`[n]`), or give `type: bytes` with a `len` to read its bytes in place"
    )]
    WholeArray { c_name: String },
    #[error("`{step}`: the size of {c_name}'s elements is unknown")]
    UnknownSize { step: String, c_name: String },
    #[error("the path follows more than {max} pointers")]
    TooDeep { max: usize },
    #[error(
        "the value is {c_name}, which no type reads as a whole: give `type`, or a path to one of \
         its members"
    )]
    NoType { c_name: String },
    #[error(
        "the value is {c_name}, which is in registers itself: a Go path reaches memory through \
         a pointer (`->field`) or a slice (`[n]`)"
    )]
    InRegisters { c_name: String },
    #[error(
        "the value is {c_name}, which Go keeps no text in (its strings are not NUL-terminated): \
         read a `string` or a `[]byte`, or this as `ptr`, or as `bytes` with a `len`"
    )]
    GoText { c_name: String },
    #[error(
        "the value is {c_name}, whose bytes are read at entry with the length kept beside them: \
         {fix}"
    )]
    Counted { c_name: String, fix: String },
    #[error("`{step}`: offset {offset} is out of range")]
    Offset { step: String, offset: u64 },
    /// Shared: a binary's DWARF is loaded once for all the paths of a config.
    #[error(transparent)]
    Dwarf(std::sync::Arc<super::DwarfError>),
    #[error("malformed DWARF: {0}")]
    Malformed(String),
}

fn valid_indexes(lower: i64, count: Option<u64>) -> String {
    match count.and_then(|count| lower.checked_add_unsigned(count - 1)) {
        Some(last) => format!("its indexes are {lower} to {last}"),
        None => format!("its indexes start at {lower}"),
    }
}

fn members_hint(members: &[String]) -> String {
    if members.is_empty() {
        String::new()
    } else {
        format!("; it has {}", members.join(", "))
    }
}

impl From<super::DwarfError> for PathError {
    fn from(error: super::DwarfError) -> Self {
        PathError::Dwarf(std::sync::Arc::new(error))
    }
}

impl From<gimli::Error> for PathError {
    fn from(error: gimli::Error) -> Self {
        PathError::Malformed(error.to_string())
    }
}

/// One path to resolve: from `base`, read as `ty`, or as DWARF says when `None`.
#[derive(Debug, Clone, Copy)]
pub struct PathRequest<'a> {
    pub base: PathBase,
    pub path: &'a str,
    pub ty: Option<ValueType>,
}

/// What a path starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathBase {
    /// The parameter passed in this slot.
    Parameter(u8),
    /// The return value, in RAX when the function returns: the value itself, or for a
    /// struct returned in memory, its address.
    ReturnValue,
    /// A Go function's parameter, by its declared position. Go passes a struct by value field
    /// by field, each in registers of its own: a path's `.field` steps before its first
    /// pointer select the field in its registers, which the caller reads.
    GoParameter(usize),
    /// A Go function's result, by its declared position, in registers when it returns.
    GoResult(usize),
}

impl PathBase {
    fn is_go(self) -> bool {
        matches!(self, PathBase::GoParameter(_) | PathBase::GoResult(_))
    }
}

/// Where a function's values are, by DWARF type.
enum Bases {
    C(SlotBases),
    /// A Go function's parameters and results, in declared order.
    Go {
        params: Vec<Loc>,
        results: Vec<Loc>,
    },
}

/// Where a function's values are by System V's rules.
struct SlotBases {
    /// The type of each parameter passed in one slot, by slot.
    parameters: Vec<(u8, Loc)>,
    /// The return type (`None` for `void`), and whether it is returned in memory.
    ret: Option<(Loc, bool)>,
}

/// Resolves every one of `requests` from the parameters of `function` (its symbol as the
/// binary has it, or its DWARF name) in `binary`, reading and indexing the DWARF once; the
/// outer error is one that concerns them all (no debug info, no such function).
pub fn chains(
    binary: &Path,
    function: &str,
    requests: &[PathRequest<'_>],
) -> Result<Vec<Result<FieldChain, PathError>>, PathError> {
    let data = std::fs::read(binary).map_err(|source| super::DwarfError::Read {
        path: binary.to_owned(),
        source,
    })?;
    let dwarf = DwarfFile::load(binary, &data)?.ok_or(PathError::NoDebugInfo)?;
    chains_in(&dwarf, function, requests)
}

/// [`chains`] in DWARF loaded already (`dwarf`, the binary's), as a config's entries share it.
pub fn chains_in(
    dwarf: &DwarfFile,
    function: &str,
    requests: &[PathRequest<'_>],
) -> Result<Vec<Result<FieldChain, PathError>>, PathError> {
    dwarf.with(|dwarf| {
        let ctx = Ctx::new(dwarf)?;
        let go = requests.iter().any(|request| request.base.is_go());
        let bases = match bases(&ctx, function, go) {
            Ok(bases) => bases,
            Err(error) => return Ok(Err(error)),
        };
        let no_parameter = |index: usize| PathError::NoParameter {
            function: function.to_owned(),
            index: u8::try_from(index).unwrap_or(u8::MAX),
        };
        let resolve_one = |request: &PathRequest<'_>| {
            let steps = parse(request.path)?;
            let (ty, at) = match (request.base, &bases) {
                (PathBase::Parameter(index), Bases::C(SlotBases { parameters, .. })) => parameters
                    .iter()
                    .find(|(slot, _)| *slot == index)
                    .map(|(_, ty)| (*ty, At::Register))
                    .ok_or_else(|| no_parameter(usize::from(index)))?,
                (PathBase::ReturnValue, Bases::C(SlotBases { ret, .. })) => match ret {
                    // RAX holds the address of a struct returned in memory.
                    Some((ty, true)) => (*ty, At::Memory { offset: 0 }),
                    Some((ty, false)) => (*ty, At::Register),
                    None => return Err(PathError::NoReturnValue(function.to_owned())),
                },
                (PathBase::GoParameter(index), Bases::Go { params, .. }) => params
                    .get(index)
                    .map(|ty| (*ty, At::Register))
                    .ok_or_else(|| no_parameter(index))?,
                (PathBase::GoResult(index), Bases::Go { results, .. }) => results
                    .get(index)
                    .map(|ty| (*ty, At::Register))
                    .ok_or_else(|| PathError::NoReturnValue(function.to_owned()))?,
                (base, _) => {
                    return Err(PathError::Malformed(format!(
                        "{base:?} asked with other requests of another language"
                    )));
                }
            };
            chain(&ctx, ty, at, &steps, request.ty, request.base.is_go())
        };
        Ok(Ok(requests.iter().map(resolve_one).collect()))
    })?
}

/// The steps of `path`: `->a.b[2]->c`.
fn parse(path: &str) -> Result<Vec<Step>, PathError> {
    let error = |reason: &str| PathError::Syntax {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    let name = |rest: &str| -> (String, usize) {
        let len = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        (rest[..len].to_owned(), len)
    };
    let mut steps = Vec::new();
    let mut rest = path.trim();
    while !rest.is_empty() {
        let member_step = if let Some(after) = rest.strip_prefix("->") {
            Some(("->", Step::Arrow as fn(String) -> Step, after))
        } else {
            rest.strip_prefix('.')
                .map(|after| (".", Step::Dot as fn(String) -> Step, after))
        };
        if let Some((sigil, step, after)) = member_step {
            let (member, len) = name(after);
            if member.is_empty() {
                return Err(error(&format!("`{sigil}` needs a member name")));
            }
            steps.push(step(member));
            rest = &after[len..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let Some((number, after)) = after.split_once(']') else {
                return Err(error("`[` without `]`"));
            };
            let index = number
                .trim()
                .parse()
                .map_err(|_| error("an index is a whole number"))?;
            steps.push(Step::Index(index));
            rest = after;
        } else {
            return Err(error(&format!("unexpected `{rest}`")));
        }
    }
    if steps.is_empty() {
        return Err(error("it is empty"));
    }
    Ok(steps)
}

/// Where the walk is: the value in the register (the parameter or return value itself), or a place in memory
/// at `offset` past the last pointer dereferenced.
#[derive(Clone, Copy)]
enum At {
    Register,
    Memory { offset: u64 },
}

/// Where the walk is in the types: the type at `loc`, of which the first `indexed` ranks are
/// indexed already when it is a multi-dimensional array (`->y[1]` of `int y[2][3]` is a row,
/// an `int[3]`, at the array's own DIE).
#[derive(Clone, Copy)]
struct Cursor {
    loc: Loc,
    indexed: usize,
}

impl Cursor {
    fn whole(loc: Loc) -> Cursor {
        Cursor { loc, indexed: 0 }
    }
}

/// The chain from a value of type `base` at `at` along `steps`; `.field` steps select a field
/// in its own registers while the walk is in registers when `fields_in_registers` (Go's).
fn chain(
    ctx: &Ctx<'_, '_>,
    base: Loc,
    mut at: At,
    steps: &[Step],
    declared: Option<ValueType>,
    fields_in_registers: bool,
) -> Result<FieldChain, PathError> {
    let mut ty = Cursor::whole(base);
    let mut derefs: Vec<u64> = Vec::new();
    // The path up to the current step, to name the array an index is checked against.
    let mut walked = String::new();
    // Loads the pointer at the current place, so that the walk continues where it points.
    let deref = |derefs: &mut Vec<u64>, at: At| {
        if let At::Memory { offset } = at {
            derefs.push(offset);
        }
    };
    for step in steps {
        let text = step_text(step);
        let mut here = strip(ctx, ty.loc)?;
        // A reference is a pointer the language dereferences by itself: the step applies to
        // what it refers to (`->member` through a `T&` also follows it as the pointer it is
        // in the ABI, unless it refers to a pointer: `gp->x` of a `grid *&gp`).
        if ty.indexed == 0
            && is_reference(ctx, here)?
            && let Some(referent) = pointee(ctx, here)?
            && (!matches!(step, Step::Arrow(_)) || pointee(ctx, strip(ctx, referent)?)?.is_some())
        {
            deref(&mut derefs, at);
            at = At::Memory { offset: 0 };
            ty = Cursor::whole(referent);
            here = strip(ctx, referent)?;
        }
        match step {
            Step::Arrow(member) => {
                let pointee = match ty.indexed {
                    0 => pointee(ctx, here)?,
                    _ => None,
                };
                let pointee = pointee.ok_or_else(|| PathError::NotPointer {
                    step: text.clone(),
                    c_name: cursor_name(ctx, ty),
                })?;
                deref(&mut derefs, at);
                let (offset, member_ty) = find_member(ctx, strip(ctx, pointee)?, member, &text)?;
                at = At::Memory { offset };
                ty = Cursor::whole(member_ty);
            }
            Step::Dot(member) => {
                let offset = match at {
                    At::Memory { offset } => Some(offset),
                    // The field is in registers of its own, which the caller reads.
                    At::Register if fields_in_registers => None,
                    At::Register => {
                        return Err(PathError::NotPointer {
                            step: text,
                            c_name: format!(
                                "{} (the value itself, in a register)",
                                c_name(ctx, here)
                            ),
                        });
                    }
                };
                if ty.indexed > 0 {
                    return Err(PathError::NotStruct {
                        step: text,
                        c_name: cursor_name(ctx, ty),
                    });
                }
                let (member_offset, member_ty) = find_member(ctx, here, member, &text)?;
                if let Some(offset) = offset {
                    at = At::Memory {
                        offset: offset + member_offset,
                    };
                }
                ty = Cursor::whole(member_ty);
            }
            Step::Index(n) => {
                // A Go slice is indexed through its array, the pointer it starts with (in the
                // first of its registers, when the walk is there).
                if ty.indexed == 0
                    && let Some((array_offset, array)) = go_slice_array(ctx, here, &text)?
                {
                    if let At::Memory { offset } = at {
                        at = At::Memory {
                            offset: offset + array_offset,
                        };
                    }
                    ty = Cursor::whole(array);
                    here = strip(ctx, array)?;
                }
                let shape = match at {
                    At::Memory { offset } => ctx.array_shape(here)?.map(|shape| (shape, offset)),
                    At::Register => None,
                };
                if let Some((shape, offset)) = shape {
                    // In place: one rank of the array at a time.
                    let rank = shape.ranks.get(ty.indexed).ok_or_else(|| {
                        PathError::Malformed(format!(
                            "{} has no rank {}",
                            c_name(ctx, here),
                            ty.indexed
                        ))
                    })?;
                    let array = Indexed {
                        step: &text,
                        array: &walked,
                        c_name: &cursor_name(ctx, ty),
                    };
                    let within = array.offset(rank, *n)?;
                    at = At::Memory {
                        offset: offset
                            .checked_add(within)
                            .ok_or_else(|| array.too_far(within))?,
                    };
                    ty = if ty.indexed + 1 < shape.ranks.len() {
                        Cursor {
                            loc: here,
                            indexed: ty.indexed + 1,
                        }
                    } else {
                        Cursor::whole(shape.element)
                    };
                } else if let Some(element) = pointee(ctx, here)? {
                    // Through a pointer: how many elements it points to is not in the type.
                    let size =
                        ctx.byte_size(element, 0)?
                            .ok_or_else(|| PathError::UnknownSize {
                                step: text.clone(),
                                c_name: c_name(ctx, here),
                            })?;
                    deref(&mut derefs, at);
                    let offset = n.checked_mul(size).ok_or_else(|| PathError::Offset {
                        step: text.clone(),
                        offset: u64::MAX,
                    })?;
                    at = At::Memory { offset };
                    ty = Cursor::whole(element);
                } else {
                    return Err(PathError::NotIndexable {
                        step: text,
                        c_name: cursor_name(ctx, ty),
                    });
                }
            }
        }
        walked.push_str(&text);
        if derefs.len() >= spanprobe_common::MAX_CHAIN {
            return Err(PathError::TooDeep {
                max: spanprobe_common::MAX_CHAIN - 1,
            });
        }
    }
    let end = End::of(ctx, ty)?;
    let counted = match declared {
        Some(declared) if !declared.is_memory() => None,
        _ => counted(ctx, end.loc)?,
    };
    let ty = declared
        .or(counted)
        .or(end.inferred)
        .ok_or_else(|| match end.array {
            true => PathError::WholeArray {
                c_name: end.c_name.clone(),
            },
            false => PathError::NoType {
                c_name: end.c_name.clone(),
            },
        })?;
    if fields_in_registers && ty == ValueType::Str && counted.is_none() && !end.array {
        return Err(PathError::GoText { c_name: end.c_name });
    }
    let At::Memory { offset } = at else {
        // Only a Go path's fields stay in registers.
        return Err(PathError::InRegisters { c_name: end.c_name });
    };
    // A string behind a `char *` member is one more pointer away; one in a `char[N]` member
    // is in place, as any array (or row of one) is, and a counted one is read from where its
    // pointer and count are.
    let mut last = offset;
    if ty.is_memory() && !end.array && counted.is_none() {
        derefs.push(offset);
        last = 0;
    }
    if derefs.len() >= spanprobe_common::MAX_CHAIN {
        return Err(PathError::TooDeep {
            max: spanprobe_common::MAX_CHAIN - 1,
        });
    }
    let to_i32 = |offset: u64| {
        i32::try_from(offset).map_err(|_| PathError::Offset {
            step: steps.iter().map(step_text).collect(),
            offset,
        })
    };
    let mut offsets = derefs
        .into_iter()
        .map(to_i32)
        .collect::<Result<Vec<_>, _>>()?;
    offsets.push(to_i32(last)?);
    let enumerators = match declared {
        None => enumerators(ctx, end.loc)?,
        // An explicit type wins: the number, as asked.
        Some(_) => None,
    };
    Ok(FieldChain {
        offsets,
        ty,
        c_name: end.c_name,
        array_len: end.string_len,
        enumerators,
        counted: counted.is_some(),
    })
}

/// What reads the bytes that a value of the type at `loc` (stripped) keeps with their count,
/// a pointer then a 64-bit count (`{ptr, len}`): `str` for a Go `string` or a Rust `&str`,
/// `bytes` for a Go `[]byte` or a Rust `&[u8]`; `None` for any other type.
fn counted(ctx: &Ctx<'_, '_>, loc: Loc) -> Result<Option<ValueType>, PathError> {
    let (ty, [pointer, count]) = match go::go_kind(ctx, loc)? {
        Some(go::KIND_STRING) => (ValueType::Str, ["str", "len"]),
        Some(go::KIND_SLICE) if go::byte_elements(ctx, loc)? => {
            (ValueType::Bytes, ["array", "len"])
        }
        Some(_) => return Ok(None),
        None => match ctx.string_attr(loc, gimli::DW_AT_name)?.as_deref() {
            Some("&str" | "&mut str") => (ValueType::Str, ["data_ptr", "length"]),
            Some("&[u8]" | "&mut [u8]") => (ValueType::Bytes, ["data_ptr", "length"]),
            _ => return Ok(None),
        },
    };
    let offset = |member| {
        find_member(ctx, loc, member, "")
            .ok()
            .map(|(offset, _)| offset)
    };
    Ok((offset(pointer) == Some(0) && offset(count) == Some(8)).then_some(ty))
}

/// For the Go slice type at `loc` (stripped): the offset and type of its array pointer.
fn go_slice_array(
    ctx: &Ctx<'_, '_>,
    loc: Loc,
    step: &str,
) -> Result<Option<(u64, Loc)>, PathError> {
    if go::go_kind(ctx, loc)? != Some(go::KIND_SLICE) {
        return Ok(None);
    }
    find_member(ctx, loc, "array", step).map(Some)
}

/// What a path ends at, for the type it is read as.
struct End {
    /// The type, without typedefs and qualifiers.
    loc: Loc,
    c_name: String,
    /// An array, or a row of one: read in place.
    array: bool,
    /// DWARF's word for the type to read.
    inferred: Option<ValueType>,
    /// For a string in place (a `char[N]`, or a row of a `char[M][N]`): N.
    string_len: Option<u64>,
}

impl End {
    fn of(ctx: &Ctx<'_, '_>, ty: Cursor) -> Result<End, PathError> {
        let loc = strip(ctx, ty.loc)?;
        let Some(shape) = ctx.array_shape(loc)? else {
            let (info, _) = ctx.type_info(ty.loc, 0)?;
            return Ok(End {
                loc,
                c_name: info.c_name,
                array: false,
                inferred: info.capture,
                string_len: None,
            });
        };
        let (element, _) = ctx.type_info(shape.element, 0)?;
        let ranks = shape.ranks.get(ty.indexed..).unwrap_or_default();
        // One rank of characters is a string in place; any other array has no type that
        // reads it whole (`type: bytes` reads its bytes).
        let string_len = match ranks {
            [rank] if element.capture == Some(ValueType::Char) => Some(rank.count),
            _ => None,
        };
        Ok(End {
            loc,
            c_name: super::array_name(&element.c_name, ranks),
            array: true,
            inferred: string_len.map(|_| ValueType::Str),
            string_len: string_len.flatten(),
        })
    }
}

/// An index into one rank of an array in place, for its bound check and its errors.
struct Indexed<'a> {
    step: &'a str,
    /// The path to the array (`->y[1]`), empty at the parameter itself.
    array: &'a str,
    c_name: &'a str,
}

impl Indexed<'_> {
    /// The bytes from the rank's first element to index `index`, which must be within the
    /// rank's bound when it has one.
    fn offset(&self, rank: &Rank, index: u64) -> Result<u64, PathError> {
        let from_first = i128::from(index) - i128::from(rank.lower);
        let within = u64::try_from(from_first)
            .ok()
            .filter(|n| rank.bound().is_none_or(|bound| *n < bound));
        let Some(n) = within else {
            return Err(PathError::OutOfBounds {
                step: self.step.to_owned(),
                array: match self.array.trim_start_matches("->").trim_start_matches('.') {
                    "" => "the array".to_owned(),
                    array => format!("`{array}`"),
                },
                c_name: self.c_name.to_owned(),
                index,
                lower: rank.lower,
                count: rank.bound(),
            });
        };
        let stride = rank.stride.ok_or_else(|| PathError::UnknownSize {
            step: self.step.to_owned(),
            c_name: self.c_name.to_owned(),
        })?;
        n.checked_mul(stride).ok_or_else(|| self.too_far(u64::MAX))
    }

    fn too_far(&self, offset: u64) -> PathError {
        PathError::Offset {
            step: self.step.to_owned(),
            offset,
        }
    }
}

/// The C type the walk is at, a row of an array included (`int[3]` for `->y[1]` of
/// `int y[2][3]`).
fn cursor_name(ctx: &Ctx<'_, '_>, ty: Cursor) -> String {
    if ty.indexed > 0
        && let Ok(Some(shape)) = ctx.array_shape(ty.loc)
    {
        let element = c_name(ctx, shape.element);
        return super::array_name(&element, shape.ranks.get(ty.indexed..).unwrap_or_default());
    }
    c_name(ctx, ty.loc)
}

/// The enumerators of the enum type at `loc` by value; `None` for any other type.
fn enumerators(ctx: &Ctx<'_, '_>, loc: Loc) -> Result<Option<BTreeMap<i64, String>>, PathError> {
    if ctx.entry(loc)?.tag() != gimli::DW_TAG_enumeration_type {
        return Ok(None);
    }
    let mut names = BTreeMap::new();
    for (tag, child) in ctx.children(loc)? {
        if tag != gimli::DW_TAG_enumerator {
            continue;
        }
        let entry = ctx.entry(child)?;
        let value = match entry.attr_value(gimli::DW_AT_const_value) {
            Some(value) => value
                .sdata_value()
                .or_else(|| value.udata_value().and_then(|v| i64::try_from(v).ok())),
            None => None,
        };
        if let (Some(value), Some(name)) = (value, entry.attr_value(gimli::DW_AT_name)) {
            names.insert(value, ctx.string(child.0, name)?);
        }
    }
    Ok(Some(names))
}

fn step_text(step: &Step) -> String {
    match step {
        Step::Arrow(member) => format!("->{member}"),
        Step::Dot(member) => format!(".{member}"),
        Step::Index(n) => format!("[{n}]"),
    }
}

/// The types of `function`'s parameters and return value: by Go's rules when `go`.
fn bases(ctx: &Ctx<'_, '_>, function: &str, go: bool) -> Result<Bases, PathError> {
    for (_, loc) in ctx.defined_functions()? {
        let linkage = ctx.string_attr(loc, gimli::DW_AT_linkage_name)?;
        let name = ctx.string_attr(loc, gimli::DW_AT_name)?;
        if linkage.as_deref() != Some(function) && name.as_deref() != Some(function) {
            continue;
        }
        if go {
            let (params, results) = go::parameter_types(ctx, loc)?;
            return Ok(Bases::Go { params, results });
        }
        if let Some(bases) = bases_at(ctx, loc)? {
            return Ok(Bases::C(bases));
        }
    }
    Err(PathError::NoFunction(function.to_owned()))
}

/// The types of the parameters and return value of the function at `loc`; `None` when DWARF
/// gives it no signature.
fn bases_at(ctx: &Ctx<'_, '_>, loc: Loc) -> Result<Option<SlotBases>, PathError> {
    {
        let Some(signature) = ctx.signature(loc)? else {
            return Ok(None);
        };
        let returns_in_memory = signature
            .return_type
            .as_ref()
            .is_some_and(|ty| matches!(ty.abi, Abi::Memory { .. }));
        let slots = places(
            signature.params.iter().map(|param| &param.ty.abi),
            returns_in_memory,
        );
        let mut parameters = Vec::new();
        for (param, place) in ctx.parameters(loc)?.into_iter().zip(slots) {
            if let Place::Slots { index, count: 1 } = place
                && let Some((u, value)) = ctx.attr(param, gimli::DW_AT_type)?
                && let Some(ty) = ctx.target(u, value)
            {
                parameters.push((index, ty));
            }
        }
        let ret = match ctx.attr(loc, gimli::DW_AT_type)? {
            Some((u, value)) => ctx.target(u, value).map(|ty| (ty, returns_in_memory)),
            None => None,
        };
        Ok(Some(SlotBases { parameters, ret }))
    }
}

/// A value inside what a parameter points to or refers to, resolved as its `path` would be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberOffer {
    /// The parameter's slot.
    pub slot: u8,
    pub path: String,
    pub chain: FieldChain,
}

/// The values offered inside what one parameter points to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamOffers {
    /// The parameter's slot.
    pub slot: u8,
    pub members: Vec<MemberOffer>,
    /// More values are there than [`MAX_OFFERS`]: the rest are left to the user.
    pub truncated: bool,
}

/// How many values `init --members` offers per parameter at most, and how many structs deep
/// it goes into nested ones: enough for a request, still readable for a server's context.
pub const MAX_OFFERS: usize = 48;
const OFFER_DEPTH: u8 = 3;

/// For each of `functions` (symbols as the binary has them, or DWARF names) found in
/// `binary`'s DWARF, the values inside what its parameters point to (a struct, union or
/// class) or refer to (those, or an array): every member a type reads whole, in declaration
/// order, through nested structs and unions (`->hdr.len`); an array's first and last
/// elements (`->y[0][0]`, `->y[1][2]`), and a character array (or a row of one) as a string.
/// Pointers are not followed. What `init --members` offers; the DWARF is read once for them all.
pub fn pointee_members(
    binary: &Path,
    functions: &std::collections::HashSet<&str>,
) -> Result<std::collections::HashMap<String, Vec<ParamOffers>>, PathError> {
    with_dwarf(binary, |dwarf| {
        let ctx = Ctx::new(dwarf)?;
        Ok(offers_in(&ctx, functions))
    })?
    .ok_or(PathError::NoDebugInfo)?
}

fn offers_in(
    ctx: &Ctx<'_, '_>,
    functions: &std::collections::HashSet<&str>,
) -> Result<std::collections::HashMap<String, Vec<ParamOffers>>, PathError> {
    let mut offers = std::collections::HashMap::new();
    for (_, loc) in ctx.defined_functions()? {
        let linkage = ctx.string_attr(loc, gimli::DW_AT_linkage_name)?;
        let name = ctx.string_attr(loc, gimli::DW_AT_name)?;
        let Some(key) = [linkage, name]
            .into_iter()
            .flatten()
            .find(|key| functions.contains(key.as_str()))
        else {
            continue;
        };
        if offers.contains_key(&key) {
            continue;
        }
        let Some(bases) = bases_at(ctx, loc)? else {
            continue;
        };
        let mut found = Vec::new();
        for (slot, ty) in bases.parameters {
            let mut paths = Vec::new();
            let truncated = offer_paths(ctx, ty, &mut paths)?;
            let members: Vec<_> = paths
                .into_iter()
                .filter_map(|path| {
                    let steps = parse(&path).ok()?;
                    let chain = chain(ctx, ty, At::Register, &steps, None, false).ok()?;
                    Some(MemberOffer { slot, path, chain })
                })
                .collect();
            if !members.is_empty() {
                found.push(ParamOffers {
                    slot,
                    members,
                    truncated,
                });
            }
        }
        offers.insert(key, found);
    }
    Ok(offers)
}

/// The paths to offer inside what a parameter of type `ty` points to or refers to, at most
/// [`MAX_OFFERS`]; `true` when there were more. A pointer to an array is left alone: `[n]`
/// on it steps over whole arrays.
fn offer_paths(ctx: &Ctx<'_, '_>, ty: Loc, out: &mut Vec<String>) -> Result<bool, PathError> {
    let here = strip(ctx, ty)?;
    let Some(target) = pointee(ctx, here)? else {
        return Ok(false);
    };
    let target = strip(ctx, target)?;
    let reference = is_reference(ctx, here)?;
    let mut offers = Offers { out, full: false };
    match ctx.entry(target)?.tag() {
        gimli::DW_TAG_structure_type | gimli::DW_TAG_union_type | gimli::DW_TAG_class_type => {
            // C++ writes `.member` through a reference.
            let sigil = if reference { "." } else { "->" };
            offers.members(ctx, target, sigil, "", 0)?;
        }
        gimli::DW_TAG_array_type if reference => offers.value(ctx, target, String::new(), 0)?,
        _ => {}
    }
    Ok(offers.full)
}

/// The paths found so far, and whether more were met than are offered.
struct Offers<'a> {
    out: &'a mut Vec<String>,
    full: bool,
}

impl Offers<'_> {
    fn push(&mut self, path: String) {
        if self.out.len() < MAX_OFFERS {
            self.out.push(path);
        } else {
            self.full = true;
        }
    }

    /// The members of the struct, union or class at `loc`, each after `prefix` and `sigil`.
    fn members(
        &mut self,
        ctx: &Ctx<'_, '_>,
        loc: Loc,
        sigil: &str,
        prefix: &str,
        depth: u8,
    ) -> Result<(), PathError> {
        for name in member_names(ctx, loc)? {
            if self.full {
                break;
            }
            let path = format!("{prefix}{sigil}{name}");
            // A bitfield, or a member with no place: nothing a path reads.
            if let Ok((_, member)) = find_member(ctx, loc, &name, &path) {
                self.value(ctx, member, path, depth + 1)?;
            }
        }
        Ok(())
    }

    /// The value of type `ty` at `path`: itself, or inside it.
    fn value(
        &mut self,
        ctx: &Ctx<'_, '_>,
        ty: Loc,
        path: String,
        depth: u8,
    ) -> Result<(), PathError> {
        let loc = strip(ctx, ty)?;
        match ctx.entry(loc)?.tag() {
            gimli::DW_TAG_structure_type | gimli::DW_TAG_union_type | gimli::DW_TAG_class_type => {
                if depth < OFFER_DEPTH {
                    self.members(ctx, loc, ".", &path, depth)?;
                }
            }
            gimli::DW_TAG_array_type => {
                if let Some(shape) = ctx.array_shape(loc)? {
                    self.elements(ctx, &shape, &path, depth)?;
                }
            }
            _ => self.push(path),
        }
        Ok(())
    }

    /// An array's first and last elements, which between them show every rank's stride; a
    /// row of characters as a string. An array without a bound (`x[]`) may hold none: it is
    /// left out.
    fn elements(
        &mut self,
        ctx: &Ctx<'_, '_>,
        shape: &super::ArrayShape,
        path: &str,
        depth: u8,
    ) -> Result<(), PathError> {
        let chars = ctx.type_info(shape.element, 0)?.0.capture == Some(ValueType::Char);
        let indexed = match &shape.ranks[..] {
            [rows @ .., _] if chars => rows,
            ranks => ranks,
        };
        let Some(lasts) = indexed
            .iter()
            .map(|rank| rank.lower.checked_add_unsigned(rank.bound()? - 1))
            .collect::<Option<Vec<i64>>>()
        else {
            return Ok(());
        };
        let firsts: Vec<i64> = indexed.iter().map(|rank| rank.lower).collect();
        let corners = if firsts == lasts {
            vec![firsts]
        } else {
            vec![firsts, lasts]
        };
        for corner in corners {
            let mut element = path.to_owned();
            for index in corner {
                element.push_str(&format!("[{index}]"));
            }
            if chars {
                self.push(element);
            } else {
                self.value(ctx, shape.element, element, depth + 1)?;
            }
        }
        Ok(())
    }
}

/// The names of the members of the struct, union or class at `loc`, anonymous members' own
/// included; none for any other type.
fn member_names(ctx: &Ctx<'_, '_>, loc: Loc) -> Result<Vec<String>, PathError> {
    let tag = ctx.entry(loc)?.tag();
    if !matches!(
        tag,
        gimli::DW_TAG_structure_type | gimli::DW_TAG_union_type | gimli::DW_TAG_class_type
    ) {
        return Ok(Vec::new());
    }
    // A search for a name no member has lists them all.
    let mut names = Vec::new();
    search_member(ctx, loc, "", "", 0, &mut names)?;
    Ok(names)
}

/// `loc` without typedefs and qualifiers.
fn strip(ctx: &Ctx<'_, '_>, mut loc: Loc) -> Result<Loc, PathError> {
    for _ in 0..MAX_DEPTH {
        let entry = ctx.entry(loc)?;
        match entry.tag() {
            gimli::DW_TAG_typedef
            | gimli::DW_TAG_const_type
            | gimli::DW_TAG_volatile_type
            | gimli::DW_TAG_restrict_type
            | gimli::DW_TAG_atomic_type => {
                match entry
                    .attr_value(gimli::DW_AT_type)
                    .and_then(|value| ctx.target(loc.0, value))
                {
                    Some(inner) => loc = inner,
                    None => return Ok(loc),
                }
            }
            _ => return Ok(loc),
        }
    }
    Ok(loc)
}

/// Whether the type at `loc` is a C++ reference (`T&`, `T&&`); Rust's `&T` is a pointer.
fn is_reference(ctx: &Ctx<'_, '_>, loc: Loc) -> Result<bool, PathError> {
    Ok(matches!(
        ctx.entry(loc)?.tag(),
        gimli::DW_TAG_reference_type | gimli::DW_TAG_rvalue_reference_type
    ))
}

/// What the pointer or reference type at `loc` points to; `None` if it is not one, or
/// points to `void`.
fn pointee(ctx: &Ctx<'_, '_>, loc: Loc) -> Result<Option<Loc>, PathError> {
    let entry = ctx.entry(loc)?;
    Ok(match entry.tag() {
        gimli::DW_TAG_pointer_type
        | gimli::DW_TAG_reference_type
        | gimli::DW_TAG_rvalue_reference_type => entry
            .attr_value(gimli::DW_AT_type)
            .and_then(|value| ctx.target(loc.0, value)),
        _ => None,
    })
}

fn c_name(ctx: &Ctx<'_, '_>, loc: Loc) -> String {
    ctx.type_info(loc, 0)
        .map_or_else(|_| "?".to_owned(), |(info, _)| info.c_name)
}

/// The offset and type of `member` in the struct, union or class at `loc`, looking through
/// anonymous members.
fn find_member(
    ctx: &Ctx<'_, '_>,
    loc: Loc,
    member: &str,
    step: &str,
) -> Result<(u64, Loc), PathError> {
    let tag = ctx.entry(loc)?.tag();
    if !matches!(
        tag,
        gimli::DW_TAG_structure_type | gimli::DW_TAG_union_type | gimli::DW_TAG_class_type
    ) {
        return Err(PathError::NotStruct {
            step: step.to_owned(),
            c_name: c_name(ctx, loc),
        });
    }
    let mut names = Vec::new();
    if let Some(found) = search_member(ctx, loc, member, step, 0, &mut names)? {
        return Ok(found);
    }
    Err(PathError::NoMember {
        step: step.to_owned(),
        c_name: c_name(ctx, loc),
        member: member.to_owned(),
        members: names,
    })
}

fn search_member(
    ctx: &Ctx<'_, '_>,
    loc: Loc,
    member: &str,
    step: &str,
    depth: u8,
    names: &mut Vec<String>,
) -> Result<Option<(u64, Loc)>, PathError> {
    if depth >= MAX_DEPTH {
        return Ok(None);
    }
    let union = ctx.entry(loc)?.tag() == gimli::DW_TAG_union_type;
    for (tag, child) in ctx.children(loc)? {
        if tag != gimli::DW_TAG_member && tag != gimli::DW_TAG_inheritance {
            continue;
        }
        let entry = ctx.entry(child)?;
        let offset = match entry.attr_value(gimli::DW_AT_data_member_location) {
            Some(value) => value.udata_value(),
            None if union => Some(0),
            None => None,
        };
        let ty = entry
            .attr_value(gimli::DW_AT_type)
            .and_then(|value| ctx.target(child.0, value));
        let name = match entry.attr_value(gimli::DW_AT_name) {
            Some(value) => Some(ctx.string(child.0, value)?),
            None => None,
        };
        let bitfield = entry.attr_value(gimli::DW_AT_bit_size).is_some();
        match (name, ty) {
            (Some(name), Some(ty)) if name == member => {
                if bitfield {
                    return Err(PathError::Bitfield {
                        step: step.to_owned(),
                        member: name,
                    });
                }
                let Some(offset) = offset else {
                    return Ok(None);
                };
                return Ok(Some((offset, ty)));
            }
            (Some(name), _) if tag == gimli::DW_TAG_member => names.push(name),
            // An anonymous struct or union (or a base class): its members are this one's.
            (None, Some(ty)) | (Some(_), Some(ty)) => {
                let inner = strip(ctx, ty)?;
                if let Some((inner_offset, found)) =
                    search_member(ctx, inner, member, step, depth + 1, names)?
                {
                    return Ok(Some((offset.unwrap_or(0) + inner_offset, found)));
                }
            }
            _ => {}
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    /// Arrays of every kind a path indexes: 2-D and 3-D in place, a typedef'd row, a flexible
    /// member, GNU's zero-length one, and a pointer.
    const ARRAYS: &str = r#"
typedef int row[3];
struct arrays {
    int y[2][2];
    long cube[2][3][4];
    row rows[2];
    char names[3][5];
    int x[4];
    int *p;
    int zero[0];
    int tail[];
};
int probe(struct arrays *a) { return a->y[1][0]; }
int main(void) { return probe(0); }
"#;

    /// Compiles `source` (C, or C++ with `cpp`) with DWARF into a temporary directory.
    fn compile(source: &str, cpp: bool) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let (compiler, file) = if cpp {
            ("g++", "t.cpp")
        } else {
            ("gcc", "t.c")
        };
        std::fs::write(dir.path().join(file), source).unwrap();
        let binary = dir.path().join("t");
        let status = Command::new(compiler)
            .args(["-g", "-O0", "-o"])
            .arg(&binary)
            .arg(dir.path().join(file))
            .status()
            .expect("gcc and g++ must be installed to run these tests");
        assert!(status.success());
        (dir, binary)
    }

    /// Each of `paths` from `function`'s parameter in `slot`, as DWARF types it (or as `ty`).
    fn resolve_all(
        binary: &Path,
        function: &str,
        slot: u8,
        paths: &[(&str, Option<ValueType>)],
    ) -> Vec<Result<FieldChain, PathError>> {
        let requests: Vec<_> = paths
            .iter()
            .map(|(path, ty)| PathRequest {
                base: PathBase::Parameter(slot),
                path,
                ty: *ty,
            })
            .collect();
        chains(binary, function, &requests).unwrap()
    }

    fn offsets(chain: &Result<FieldChain, PathError>) -> &[i32] {
        &chain.as_ref().unwrap().offsets
    }

    #[test]
    fn every_rank_is_indexed_at_its_own_stride() {
        let (_dir, binary) = compile(ARRAYS, false);
        let chains = resolve_all(
            &binary,
            "probe",
            0,
            &[
                ("->y[1][0]", None),
                ("->y[0][1]", None),
                ("->cube[1][2][3]", None),
                ("->rows[1][2]", None),
                ("->names[2]", None),
                ("->y[1]", Some(ValueType::Bytes)),
            ],
        );
        // y at 0: a row is 8 bytes; cube at 16: 96, 32 and 8; rows at 208: 12 and 4.
        assert_eq!(offsets(&chains[0]), [8]);
        assert_eq!(offsets(&chains[1]), [4]);
        assert_eq!(offsets(&chains[2]), [16 + 96 + 2 * 32 + 3 * 8]);
        assert_eq!(offsets(&chains[3]), [208 + 12 + 2 * 4]);
        // A row of characters is a string in place, no longer than the row.
        let names = chains[4].as_ref().unwrap();
        assert_eq!(
            (&names.offsets[..], names.ty, names.array_len),
            (&[232 + 10][..], ValueType::Str, Some(5))
        );
        assert_eq!(names.c_name, "char[5]");
        // A row read as bytes is read in place, as a whole array is.
        assert_eq!(offsets(&chains[5]), [8]);
    }

    #[test]
    fn a_row_is_an_array_that_no_type_reads_whole() {
        let (_dir, binary) = compile(ARRAYS, false);
        let chains = resolve_all(
            &binary,
            "probe",
            0,
            &[("->y[1]", None), ("->cube[1]", None)],
        );
        for (chain, row) in chains.iter().zip(["int[2]", "long[3][4]"]) {
            let error = chain.as_ref().unwrap_err();
            assert!(
                matches!(error, PathError::WholeArray { c_name } if c_name == row),
                "{error:?}"
            );
            assert!(error.to_string().contains("`type: bytes`"), "{error}");
        }
    }

    #[test]
    fn indexes_past_a_known_bound_are_refused_with_the_member_and_the_bound() {
        let (_dir, binary) = compile(ARRAYS, false);
        let chains = resolve_all(
            &binary,
            "probe",
            0,
            &[
                ("->x[4]", None),
                ("->y[2][0]", None),
                ("->y[0][2]", None),
                ("->cube[1][3][0]", None),
            ],
        );
        let messages: Vec<String> = chains
            .iter()
            .map(|chain| chain.as_ref().unwrap_err().to_string())
            .collect();
        assert_eq!(
            messages,
            [
                "`[4]`: index 4 is out of bounds of `x` (int[4]): its indexes are 0 to 3",
                "`[2]`: index 2 is out of bounds of `y` (int[2][2]): its indexes are 0 to 1",
                "`[2]`: index 2 is out of bounds of `y[0]` (int[2]): its indexes are 0 to 1",
                "`[3]`: index 3 is out of bounds of `cube[1]` (long[3][4]): its indexes are 0 to 2",
            ]
        );
        assert!(matches!(
            chains[0],
            Err(PathError::OutOfBounds {
                index: 4,
                count: Some(4),
                ..
            })
        ));
    }

    #[test]
    fn arrays_without_a_bound_and_pointers_take_any_index() {
        let (_dir, binary) = compile(ARRAYS, false);
        let chains = resolve_all(
            &binary,
            "probe",
            0,
            &[
                ("->tail[100]", None),
                ("->zero[7]", None),
                ("->p[1000]", None),
            ],
        );
        // tail and zero at 272; p at 264 is followed.
        assert_eq!(offsets(&chains[0]), [272 + 400]);
        assert_eq!(offsets(&chains[1]), [272 + 28]);
        assert_eq!(offsets(&chains[2]), [264, 4000]);
    }

    #[test]
    fn references_are_followed_as_the_language_does() {
        let source = r#"
struct point { short x, y; int grid[2][3]; };
int touch(point &p, int (&array)[10], point *&pp, const point &&r) {
    return p.y + array[1] + pp->x + r.x;
}
int main() { point p{}; int a[10]{}; point *pp = &p; return touch(p, a, pp, point{}); }
"#;
        let (_dir, binary) = compile(source, true);
        let at = |slot, path: &str| resolve_all(&binary, "touch", slot, &[(path, None)]).remove(0);
        assert_eq!(offsets(&at(0, ".y")), [2]);
        assert_eq!(offsets(&at(0, ".grid[1][2]")), [4 + 12 + 8]);
        // `->member` through a `T&` is what it is in the ABI, a pointer.
        assert_eq!(offsets(&at(0, "->y")), [2]);
        assert_eq!(offsets(&at(1, "[9]")), [36]);
        assert_eq!(
            at(1, "[10]").unwrap_err().to_string(),
            "`[10]`: index 10 is out of bounds of the array (int[10]): its indexes are 0 to 9"
        );
        // A reference to a pointer: the reference is loaded, then the pointer.
        assert_eq!(offsets(&at(2, "->y")), [0, 2]);
        assert_eq!(offsets(&at(3, ".y")), [2]);
    }

    #[test]
    fn a_rank_from_another_lower_bound_counts_from_it() {
        // Fortran's default: `integer :: a(1:4)`, 4 bytes each.
        let rank = Rank {
            lower: 1,
            count: Some(4),
            stride: Some(4),
        };
        let indexed = Indexed {
            step: "[n]",
            array: "->a",
            c_name: "integer(1:4)",
        };
        assert_eq!(indexed.offset(&rank, 1).unwrap(), 0);
        assert_eq!(indexed.offset(&rank, 4).unwrap(), 12);
        for index in [0, 5] {
            let error = indexed.offset(&rank, index).unwrap_err();
            assert!(
                error.to_string().ends_with("its indexes are 1 to 4"),
                "{error}"
            );
        }
    }

    #[test]
    fn parses_steps() {
        assert_eq!(
            parse("->user->name").unwrap(),
            [Step::Arrow("user".into()), Step::Arrow("name".into())]
        );
        assert_eq!(
            parse("->tags[2].x").unwrap(),
            [
                Step::Arrow("tags".into()),
                Step::Index(2),
                Step::Dot("x".into())
            ]
        );
        assert!(matches!(parse("user"), Err(PathError::Syntax { .. })));
        assert!(matches!(parse("->"), Err(PathError::Syntax { .. })));
        assert!(matches!(parse("[x]"), Err(PathError::Syntax { .. })));
        assert!(matches!(parse(""), Err(PathError::Syntax { .. })));
    }
}
