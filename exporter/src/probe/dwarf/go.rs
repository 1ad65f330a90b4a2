//! The parameters and results of Go functions, from the DWARF `go build` writes: in declared
//! order (Go lists results as parameters too, marked `DW_AT_variable_parameter`), each
//! flattened into the scalar words Go's register ABI assigns one register each.

use std::{
    collections::{HashMap, HashSet},
    path::Path,
};

use spanprobe_config::ValueType;

use super::{Abi, Ctx, DwarfError, Leaf, Loc, Scalar, with_dwarf};

/// One parameter of a Go function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoParam {
    pub name: Option<String>,
    /// Go's name for its type, as DWARF has it (`string`, `[]int`, `*main.order`).
    pub go_type: String,
    /// What a config reads it as when it is one word.
    pub capture: Option<ValueType>,
    /// Its words, in order, as register classes; `None` where Go passes it on the stack
    /// whatever registers are free (an array of more than one element).
    pub words: Option<Vec<GoWord>>,
}

/// A scalar word of a parameter: in an integer register or a floating-point one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoWord {
    Integer,
    Float,
}

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
    Ok(with_dwarf(path, |dwarf| {
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
    })?
    .unwrap_or_default())
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
    for param in ctx.parameters(function)? {
        let entry = ctx.entry(param)?;
        // Results are parameters marked as variable ones.
        let is_result = matches!(
            entry.attr_value(gimli::DW_AT_variable_parameter),
            Some(gimli::AttributeValue::Flag(true))
        );
        let name = ctx.string_attr(param, gimli::DW_AT_name)?;
        let Some((u, value)) = ctx.attr(param, gimli::DW_AT_type)? else {
            continue;
        };
        let Some(ty) = ctx.target(u, value) else {
            continue;
        };
        let (info, _) = ctx.type_info(ty, 0)?;
        // Go names every type in its own syntax (`*main.order`, `chan<- bool`).
        let go_type = match ctx.string_attr(ty, gimli::DW_AT_name)? {
            Some(name) => name,
            None => info.c_name.trim_start_matches("struct ").to_owned(),
        };
        let param = GoParam {
            name,
            go_type,
            capture: info.capture,
            words: words(ctx, ty, &info.abi)?,
        };
        if is_result {
            results.push(param);
        } else {
            params.push(param);
        }
    }
    Ok((params, results))
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
