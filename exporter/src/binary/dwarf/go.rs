//! The parameters and results of Go functions, from the DWARF `go build` writes: in declared
//! order (Go lists results as parameters too, marked `DW_AT_variable_parameter`), each
//! flattened into the scalar words Go's register ABI assigns one register each.

use std::{
    collections::{HashMap, HashSet},
    path::Path,
};

use super::{Ctx, DwarfError, DwarfFile, Leaf, Loc, Scalar, with_dwarf};
use crate::x86_64::{
    go::{GoField, GoKind, GoParam, GoWord},
    sysv::Abi,
};

/// A slice's and a string's `reflect.Kind`.
pub(super) const KIND_SLICE: u64 = 23;
pub(super) const KIND_STRING: u64 = 24;

/// `DW_AT_go_kind` and `DW_AT_go_elem`, Go's own DWARF attributes: a type's `reflect.Kind`,
/// and a slice's (or map's, or channel's) element type.
pub(super) const DW_AT_GO_KIND: gimli::DwAt = gimli::DwAt(0x2900);
const DW_AT_GO_ELEM: gimli::DwAt = gimli::DwAt(0x2902);

/// What the DWARF of a Go binary says of some of its functions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GoFunctions {
    /// The parameters of each function found, by symbol.
    pub params: HashMap<String, Vec<GoParam>>,
    /// The results of each function found, by symbol: placed in registers as parameters are,
    /// from RAX again, when the function returns.
    pub results: HashMap<String, Vec<GoParam>>,
    /// Where `runtime.g` keeps the goroutine's id (`goid`), from the start of the `g` that
    /// R14 points to in Go code.
    pub goid_offset: Option<u64>,
    /// Where `runtime.g` keeps `sigcode0`, which holds, when a recovered panic resumes, the
    /// stack pointer it resumes at.
    pub sigcode0_offset: Option<u64>,
}

/// The parameters of each of `functions` (symbols: `main.handle`, `main.(*order).apply`; every
/// function when `None`) found in the DWARF of the Go binary at `path`, and where a goroutine's
/// id is, read in one pass; empty without DWARF.
pub fn functions(
    path: &Path,
    functions: Option<&HashSet<&str>>,
) -> Result<GoFunctions, DwarfError> {
    Ok(with_dwarf(path, |dwarf| collect(dwarf, functions))?.unwrap_or_default())
}

/// [`functions`] from DWARF loaded already (`dwarf`, the binary's), as a run shares it.
pub fn functions_in(
    dwarf: &DwarfFile,
    functions: Option<&HashSet<&str>>,
) -> Result<GoFunctions, DwarfError> {
    dwarf.with(|dwarf| collect(dwarf, functions))
}

fn collect(
    dwarf: &gimli::Dwarf<super::Reader<'_>>,
    functions: Option<&HashSet<&str>>,
) -> gimli::Result<GoFunctions> {
    let ctx = Ctx::new(dwarf)?;
    let mut found = GoFunctions::default();
    for (_, loc) in ctx.defined_functions()? {
        if let Some(name) = ctx.string_attr(loc, gimli::DW_AT_name)?
            && functions.is_none_or(|wanted| wanted.contains(name.as_str()))
            && !found.params.contains_key(&name)
        {
            let (params, results) = params_of(&ctx, loc)?;
            found.results.insert(name.clone(), results);
            found.params.insert(name, params);
        }
    }
    found.goid_offset = member_offset(&ctx, "runtime.g", "goid")?;
    found.sigcode0_offset = member_offset(&ctx, "runtime.g", "sigcode0")?;
    Ok(found)
}

/// The offset of `member` in the struct type named `name`, if DWARF has both.
fn member_offset(ctx: &Ctx<'_, '_>, name: &str, member: &str) -> gimli::Result<Option<u64>> {
    for u in 0..ctx.units.len() {
        let mut cursor = ctx.units[u].entries();
        while let Some(entry) = cursor.next_dfs()? {
            if entry.tag() != gimli::DW_TAG_structure_type {
                continue;
            }
            let loc = (u, entry.offset());
            if ctx.string_attr(loc, gimli::DW_AT_name)?.as_deref() != Some(name) {
                continue;
            }
            for (tag, child) in ctx.children(loc)? {
                if tag == gimli::DW_TAG_member
                    && ctx.string_attr(child, gimli::DW_AT_name)?.as_deref() == Some(member)
                {
                    return Ok(ctx
                        .entry(child)?
                        .attr_value(gimli::DW_AT_data_member_location)
                        .and_then(|value| value.udata_value()));
                }
            }
        }
    }
    Ok(None)
}

/// The parameters of `function`, then its results.
fn params_of(ctx: &Ctx<'_, '_>, function: Loc) -> gimli::Result<(Vec<GoParam>, Vec<GoParam>)> {
    let (mut params, mut results) = (Vec::new(), Vec::new());
    for declared in declared(ctx, function)? {
        let ty = declared.ty;
        let (info, _) = ctx.type_info(ty, 0)?;
        let param = GoParam {
            name: declared.name,
            go_type: go_type_name(ctx, ty, &info.c_name)?,
            capture: info.capture,
            words: words(ctx, ty, &info.abi)?,
            kind: kind_of(ctx, ty, 0)?,
        };
        if declared.result {
            results.push(param);
        } else {
            params.push(param);
        }
    }
    Ok((params, results))
}

/// The types of the parameters of the Go function at `function`, then of its results, in
/// declared order as [`GoFunctions`] lists them.
pub(super) fn parameter_types(
    ctx: &Ctx<'_, '_>,
    function: Loc,
) -> gimli::Result<(Vec<Loc>, Vec<Loc>)> {
    let (results, params): (Vec<_>, Vec<_>) = declared(ctx, function)?
        .into_iter()
        .partition(|declared| declared.result);
    let types = |all: Vec<Declared>| all.into_iter().map(|declared| declared.ty).collect();
    Ok((types(params), types(results)))
}

/// A parameter or result as DWARF declares it.
struct Declared {
    name: Option<String>,
    /// Its type, as a generic function's shape gives it.
    ty: Loc,
    result: bool,
}

/// The parameters and results of `function` that DWARF gives a type, in declared order.
fn declared(ctx: &Ctx<'_, '_>, function: Loc) -> gimli::Result<Vec<Declared>> {
    let mut all = Vec::new();
    for param in ctx.parameters(function)? {
        let entry = ctx.entry(param)?;
        // Results are parameters marked as variable ones.
        let result = matches!(
            entry.attr_value(gimli::DW_AT_variable_parameter),
            Some(gimli::AttributeValue::Flag(true))
        );
        let Some((u, value)) = ctx.attr(param, gimli::DW_AT_type)? else {
            continue;
        };
        let Some(ty) = ctx.target(u, value) else {
            continue;
        };
        all.push(Declared {
            name: ctx.string_attr(param, gimli::DW_AT_name)?,
            ty: shape_of(ctx, ty)?,
            result,
        });
    }
    Ok(all)
}

/// Go's name for type `ty` (`c_name` as this reader writes it): Go names every type in its
/// own syntax (`*main.order`, `chan<- bool`).
fn go_type_name(ctx: &Ctx<'_, '_>, ty: Loc, c_name: &str) -> gimli::Result<String> {
    Ok(match ctx.string_attr(ty, gimli::DW_AT_name)? {
        Some(name) => name,
        None => c_name.trim_start_matches("struct ").to_owned(),
    })
}

/// The type a parameter of type `ty` has: a generic function's shape instantiation types
/// its parameters by an entry of its dictionary (a typedef named `.param0`), which stands for
/// the shape (`go.shape.string_0`) the code is compiled for.
fn shape_of(ctx: &Ctx<'_, '_>, ty: Loc) -> gimli::Result<Loc> {
    let entry = ctx.entry(ty)?;
    if entry.tag() != gimli::DW_TAG_typedef
        || !ctx
            .string_attr(ty, gimli::DW_AT_name)?
            .is_some_and(|name| name.starts_with(".param"))
    {
        return Ok(ty);
    }
    Ok(entry
        .attr_value(gimli::DW_AT_type)
        .and_then(|value| ctx.target(ty.0, value))
        .unwrap_or(ty))
}

/// How deep [`kind_of`] describes the fields of nested structs.
const MAX_FIELD_DEPTH: u8 = 4;

/// What a value of type `ty` is, from its `DW_AT_go_kind` (through typedefs, as Go's
/// interfaces are); from its DWARF tag where Go gives none.
fn kind_of(ctx: &Ctx<'_, '_>, ty: Loc, depth: u8) -> gimli::Result<GoKind> {
    let stripped = strip_typedefs(ctx, ty)?;
    let Some(kind) = go_kind(ctx, ty)? else {
        return Ok(match ctx.entry(stripped)?.tag() {
            gimli::DW_TAG_pointer_type => GoKind::Pointer,
            gimli::DW_TAG_base_type => GoKind::Number,
            _ => GoKind::Other,
        });
    };
    // reflect.Kind: Bool, the integers, Uintptr and the floats are 1 to 14; Array 17,
    // Chan 18, Func 19, Interface 20, Map 21, Pointer 22, Slice 23, String 24, Struct 25,
    // UnsafePointer 26.
    Ok(match kind {
        1..=14 => GoKind::Number,
        18 | 19 | 21 | 22 | 26 => GoKind::Pointer,
        20 => GoKind::Interface,
        KIND_SLICE => GoKind::Slice {
            bytes: byte_elements(ctx, stripped)?,
        },
        KIND_STRING => GoKind::String,
        25 if depth < MAX_FIELD_DEPTH => GoKind::Struct(fields(ctx, stripped, depth)?),
        _ => GoKind::Other,
    })
}

/// The `DW_AT_go_kind` of `ty`, or of the type a typedef of it names.
pub(super) fn go_kind(ctx: &Ctx<'_, '_>, mut ty: Loc) -> gimli::Result<Option<u64>> {
    for _ in 0..super::MAX_DEPTH {
        let entry = ctx.entry(ty)?;
        if let Some(kind) = entry.attr_value(DW_AT_GO_KIND) {
            return Ok(kind.udata_value());
        }
        match entry
            .attr_value(gimli::DW_AT_type)
            .and_then(|value| ctx.target(ty.0, value))
        {
            Some(inner) if entry.tag() == gimli::DW_TAG_typedef => ty = inner,
            _ => break,
        }
    }
    Ok(None)
}

/// Whether the slice type at `slice` has one-byte integer elements (`[]byte`, `[]int8`).
pub(super) fn byte_elements(ctx: &Ctx<'_, '_>, slice: Loc) -> gimli::Result<bool> {
    let element = ctx
        .entry(slice)?
        .attr_value(DW_AT_GO_ELEM)
        .and_then(|value| ctx.target(slice.0, value));
    // reflect.Int8 and reflect.Uint8 (byte).
    Ok(match element {
        Some(element) => matches!(go_kind(ctx, element)?, Some(3 | 8)),
        None => false,
    })
}

/// The fields of the struct at `loc`, each with the range of its words among the struct's.
fn fields(ctx: &Ctx<'_, '_>, loc: Loc, depth: u8) -> gimli::Result<Vec<GoField>> {
    let mut fields = Vec::new();
    let mut word = 0;
    for (tag, member) in ctx.children(loc)? {
        if tag != gimli::DW_TAG_member {
            continue;
        }
        let Some((u, value)) = ctx.attr(member, gimli::DW_AT_type)? else {
            continue;
        };
        let Some(ty) = ctx.target(u, value) else {
            continue;
        };
        let (info, _) = ctx.type_info(ty, 0)?;
        let count = words(ctx, ty, &info.abi)?.map_or(0, |words| words.len());
        fields.push(GoField {
            name: ctx
                .string_attr(member, gimli::DW_AT_name)?
                .unwrap_or_default(),
            go_type: go_type_name(ctx, ty, &info.c_name)?,
            kind: kind_of(ctx, ty, depth + 1)?,
            capture: info.capture,
            words: word..word + count,
        });
        word += count;
    }
    Ok(fields)
}

/// The register classes of the words of a value of type `ty` (`abi` its System V class).
fn words(ctx: &Ctx<'_, '_>, ty: Loc, abi: &Abi) -> gimli::Result<Option<Vec<GoWord>>> {
    let stripped = strip_typedefs(ctx, ty)?;
    let tag = ctx.entry(stripped)?.tag();
    match tag {
        gimli::DW_TAG_structure_type | gimli::DW_TAG_union_type => {
            let mut leaves: Vec<Scalar> = Vec::new();
            if !ctx.leaves(stripped, 0, 0, &mut leaves)? || has_array(ctx, stripped, 0)? {
                return Ok(None);
            }
            Ok(Some(
                leaves
                    .iter()
                    .map(|leaf| match leaf.leaf {
                        Leaf::Sse => GoWord::Float,
                        Leaf::Integer | Leaf::X87 => GoWord::Integer,
                    })
                    .collect(),
            ))
        }
        gimli::DW_TAG_array_type => match ctx.array_count(stripped)? {
            Some(0) => Ok(Some(Vec::new())),
            _ => Ok(None),
        },
        _ => Ok(Some(vec![match abi {
            Abi::Sse => GoWord::Float,
            _ => GoWord::Integer,
        }])),
    }
}

fn strip_typedefs(ctx: &Ctx<'_, '_>, mut loc: Loc) -> gimli::Result<Loc> {
    for _ in 0..super::MAX_DEPTH {
        let entry = ctx.entry(loc)?;
        if entry.tag() != gimli::DW_TAG_typedef {
            break;
        }
        match entry
            .attr_value(gimli::DW_AT_type)
            .and_then(|value| ctx.target(loc.0, value))
        {
            Some(inner) => loc = inner,
            None => break,
        }
    }
    Ok(loc)
}

/// Whether the aggregate at `loc` holds an array (of more than one element) anywhere: Go
/// passes such a value on the stack.
fn has_array(ctx: &Ctx<'_, '_>, loc: Loc, depth: u8) -> gimli::Result<bool> {
    if depth >= super::MAX_DEPTH {
        return Ok(true);
    }
    for (tag, member) in ctx.children(loc)? {
        if tag != gimli::DW_TAG_member {
            continue;
        }
        let Some(ty) = ctx
            .entry(member)?
            .attr_value(gimli::DW_AT_type)
            .and_then(|value| ctx.target(member.0, value))
        else {
            continue;
        };
        let ty = strip_typedefs(ctx, ty)?;
        let passed_on_stack = match ctx.entry(ty)?.tag() {
            gimli::DW_TAG_array_type => ctx.array_count(ty)?.is_none_or(|count| count > 1),
            gimli::DW_TAG_structure_type | gimli::DW_TAG_union_type => {
                has_array(ctx, ty, depth + 1)?
            }
            _ => false,
        };
        if passed_on_stack {
            return Ok(true);
        }
    }
    Ok(false)
}
