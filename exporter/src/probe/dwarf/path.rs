//! A path from a parameter to a value inside what it points to (`->user->name`, `->tags[2]`),
//! resolved once from DWARF into the chain of byte offsets the entry program follows: every
//! offset but the last is added and dereferenced, the last gives the value's address.

use std::{collections::BTreeMap, path::Path};

use spanprobe_config::ValueType;

use super::{Abi, Ctx, Loc, MAX_DEPTH, with_dwarf};
use crate::probe::sysv::{Place, places};

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
    #[error("`{step}`: the size of {c_name}'s elements is unknown")]
    UnknownSize { step: String, c_name: String },
    #[error("the path follows more than {max} pointers")]
    TooDeep { max: usize },
    #[error(
        "the value is {c_name}, which no type reads as a whole: give `type`, or a path to one of \
         its members"
    )]
    NoType { c_name: String },
    #[error("`{step}`: offset {offset} is out of range")]
    Offset { step: String, offset: u64 },
    #[error(transparent)]
    Dwarf(#[from] super::DwarfError),
    #[error("malformed DWARF: {0}")]
    Malformed(String),
}

fn members_hint(members: &[String]) -> String {
    if members.is_empty() {
        String::new()
    } else {
        format!("; it has {}", members.join(", "))
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
}

/// Where a function's values are, by DWARF type.
struct Bases {
    /// The type of each parameter passed in one slot, by slot.
    parameters: Vec<(u8, Loc)>,
    /// The return type (`None` for `void`), and whether it is returned in memory.
    ret: Option<(Loc, bool)>,
}

/// Resolves every one of `requests` from the parameters of `function` (its symbol as the
/// binary has it, or its DWARF name) in `binary`, reading and indexing the DWARF once; the
/// outer error is one that concerns them all (no debug info, no such function).
pub fn resolve(
    binary: &Path,
    function: &str,
    requests: &[PathRequest<'_>],
) -> Result<Vec<Result<FieldChain, PathError>>, PathError> {
    with_dwarf(binary, |dwarf| {
        let ctx = Ctx::new(dwarf)?;
        let bases = match bases(&ctx, function) {
            Ok(bases) => bases,
            Err(error) => return Ok(Err(error)),
        };
        let resolve_one = |request: &PathRequest<'_>| {
            let steps = parse(request.path)?;
            let (ty, at) = match request.base {
                PathBase::Parameter(index) => bases
                    .parameters
                    .iter()
                    .find(|(slot, _)| *slot == index)
                    .map(|(_, ty)| (*ty, At::Register))
                    .ok_or_else(|| PathError::NoParameter {
                        function: function.to_owned(),
                        index,
                    })?,
                PathBase::ReturnValue => match bases.ret {
                    // RAX holds the address of a struct returned in memory.
                    Some((ty, true)) => (ty, At::Memory { offset: 0 }),
                    Some((ty, false)) => (ty, At::Register),
                    None => return Err(PathError::NoReturnValue(function.to_owned())),
                },
            };
            chain(&ctx, ty, at, &steps, request.ty)
        };
        Ok(Ok(requests.iter().map(resolve_one).collect()))
    })?
    .ok_or(PathError::NoDebugInfo)?
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

/// The chain from a value of type `base` at `at` along `steps`.
fn chain(
    ctx: &Ctx<'_, '_>,
    base: Loc,
    mut at: At,
    steps: &[Step],
    declared: Option<ValueType>,
) -> Result<FieldChain, PathError> {
    let mut ty_loc = base;
    let mut derefs: Vec<u64> = Vec::new();
    // Loads the pointer at the current place, so that the walk continues where it points.
    let deref = |derefs: &mut Vec<u64>, at: At| {
        if let At::Memory { offset } = at {
            derefs.push(offset);
        }
    };
    for step in steps {
        let text = step_text(step);
        let here = strip(ctx, ty_loc)?;
        match step {
            Step::Arrow(member) => {
                let pointee = pointee(ctx, here)?.ok_or_else(|| PathError::NotPointer {
                    step: text.clone(),
                    c_name: c_name(ctx, here),
                })?;
                deref(&mut derefs, at);
                let (offset, member_ty) = find_member(ctx, strip(ctx, pointee)?, member, &text)?;
                at = At::Memory { offset };
                ty_loc = member_ty;
            }
            Step::Dot(member) => {
                let At::Memory { offset } = at else {
                    return Err(PathError::NotPointer {
                        step: text,
                        c_name: format!("{} (the value itself, in a register)", c_name(ctx, here)),
                    });
                };
                let (member_offset, member_ty) = find_member(ctx, here, member, &text)?;
                at = At::Memory {
                    offset: offset + member_offset,
                };
                ty_loc = member_ty;
            }
            Step::Index(n) => {
                let entry = ctx.entry(here)?;
                let element = entry
                    .attr_value(gimli::DW_AT_type)
                    .and_then(|value| ctx.target(here.0, value));
                let (element, in_place) = match (entry.tag(), element, at) {
                    (gimli::DW_TAG_array_type, Some(element), At::Memory { .. }) => (element, true),
                    _ => match pointee(ctx, here)? {
                        Some(element) => (element, false),
                        None => {
                            return Err(PathError::NotIndexable {
                                step: text,
                                c_name: c_name(ctx, here),
                            });
                        }
                    },
                };
                let size = ctx
                    .byte_size(element, 0)?
                    .ok_or_else(|| PathError::UnknownSize {
                        step: text.clone(),
                        c_name: c_name(ctx, here),
                    })?;
                let base = match (in_place, at) {
                    (true, At::Memory { offset }) => offset,
                    _ => {
                        deref(&mut derefs, at);
                        0
                    }
                };
                at = At::Memory {
                    offset: base + n * size,
                };
                ty_loc = element;
            }
        }
        if derefs.len() >= spanprobe_common::MAX_CHAIN {
            return Err(PathError::TooDeep {
                max: spanprobe_common::MAX_CHAIN - 1,
            });
        }
    }
    let end = strip(ctx, ty_loc)?;
    let (info, _) = ctx.type_info(ty_loc, 0)?;
    let array = ctx.entry(end)?.tag() == gimli::DW_TAG_array_type;
    let array_len = if array { ctx.array_count(end)? } else { None };
    // DWARF's word for what is at the end: a character array is a string in place.
    let inferred = if array && info.c_name.contains("char") {
        Some(ValueType::Str)
    } else {
        info.capture
    };
    let ty = declared.or(inferred).ok_or_else(|| PathError::NoType {
        c_name: info.c_name.clone(),
    })?;
    let At::Memory { offset } = at else {
        unreachable!("every step moves into memory");
    };
    // A string behind a `char *` member is one more pointer away; one in a `char[N]` member
    // is in place.
    let mut last = offset;
    if ty.is_memory() && !array {
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
        None => enumerators(ctx, end)?,
        // An explicit type wins: the number, as asked.
        Some(_) => None,
    };
    Ok(FieldChain {
        offsets,
        ty,
        c_name: info.c_name,
        array_len,
        enumerators,
    })
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

/// The types of `function`'s parameters and return value.
fn bases(ctx: &Ctx<'_, '_>, function: &str) -> Result<Bases, PathError> {
    for (_, loc) in ctx.defined_functions()? {
        let linkage = ctx.string_attr(loc, gimli::DW_AT_linkage_name)?;
        let name = ctx.string_attr(loc, gimli::DW_AT_name)?;
        if linkage.as_deref() != Some(function) && name.as_deref() != Some(function) {
            continue;
        }
        if let Some(bases) = bases_at(ctx, loc)? {
            return Ok(bases);
        }
    }
    Err(PathError::NoFunction(function.to_owned()))
}

/// The types of the parameters and return value of the function at `loc`; `None` when DWARF
/// gives it no signature.
fn bases_at(ctx: &Ctx<'_, '_>, loc: Loc) -> Result<Option<Bases>, PathError> {
    {
        let Some(signature) = ctx.signature(loc)? else {
            return Ok(None);
        };
        let returns_in_memory = signature
            .return_type
            .as_ref()
            .is_some_and(|ty| matches!(ty.abi, Abi::Memory { .. }));
        let slots = places(&signature.params, returns_in_memory);
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
        Ok(Some(Bases { parameters, ret }))
    }
}

/// A member of the struct a parameter points to, resolved as its path `->member` would be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberOffer {
    /// The parameter's slot.
    pub slot: u8,
    pub path: String,
    pub chain: FieldChain,
}

/// For each of `functions` (symbols as the binary has them, or DWARF names) found in
/// `binary`'s DWARF, the members of the structs its parameters point to that a type reads
/// whole (a nested struct is left out), in declaration order: what `init --members` offers.
/// The DWARF is read once for them all.
pub fn pointee_members(
    binary: &Path,
    functions: &std::collections::HashSet<&str>,
) -> Result<std::collections::HashMap<String, Vec<MemberOffer>>, PathError> {
    with_dwarf(binary, |dwarf| {
        let ctx = Ctx::new(dwarf)?;
        Ok(offers_in(&ctx, functions))
    })?
    .ok_or(PathError::NoDebugInfo)?
}

fn offers_in(
    ctx: &Ctx<'_, '_>,
    functions: &std::collections::HashSet<&str>,
) -> Result<std::collections::HashMap<String, Vec<MemberOffer>>, PathError> {
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
            let Some(pointee) = pointee(ctx, strip(ctx, ty)?)? else {
                continue;
            };
            for member in member_names(ctx, strip(ctx, pointee)?)? {
                let step = Step::Arrow(member);
                if let Ok(chain) = chain(ctx, ty, At::Register, std::slice::from_ref(&step), None) {
                    let path = step_text(&step);
                    found.push(MemberOffer { slot, path, chain });
                }
            }
        }
        offers.insert(key, found);
    }
    Ok(offers)
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
    use super::*;

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
