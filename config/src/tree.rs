//! The document as a tree of positioned nodes, and a serde `Deserializer` over it, for the
//! diagnostic pass ([`crate::recover`]): the schema's own `Deserialize` impls run over the tree,
//! an error says which node it came from, and nodes can be pruned between runs.
//!
//! serde-saphyr builds the tree and still reads every scalar: when the schema asks for a type,
//! the scalar's source text goes back to serde-saphyr, so `300` is an "invalid u8" and `'42'` a
//! u32 exactly as in the normal pass.
//!
//! `${VAR}` in a value is expanded here, before the schema asks for a type, and the expanded
//! text is typed again as YAML would type it: `pid: ${PID}` is a number when `PID=42`. The node
//! keeps its place in the file, so a problem with the value still points at it.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, Visitor};
use serde_saphyr::{Error as YamlError, Spanned};

use crate::{
    Position, Problem, env, located,
    yaml::{bare_message, looks_like, yaml_options},
};

/// Reads an environment variable (injected, for tests).
pub(crate) type Lookup<'l> = &'l dyn Fn(&str) -> Option<String>;

/// A node's index in [`Tree::nodes`].
pub(crate) type NodeId = usize;

pub(crate) const ROOT: NodeId = 0;

/// The nodes in document order, keys before their values.
pub(crate) struct Tree<'a> {
    nodes: Vec<Node<'a>>,
    /// Values whose `${VAR}` could not be expanded; their nodes are pruned.
    unexpanded: Vec<Problem>,
}

struct Node<'a> {
    position: Position,
    /// As the user writes it, `probes[0].functions[2]`; empty for the root. A key has the path
    /// of its entry.
    path: String,
    kind: Kind<'a>,
    /// One past this node's last descendant.
    end: NodeId,
    /// Left out of every later run: the element, or the entry of the key or value.
    pruned: bool,
}

enum Kind<'a> {
    Scalar {
        value: Scalar,
        source: &'a str,
    },
    /// A value with `${VAR}` in it, expanded: `text` is what the schema reads, `value` how YAML
    /// types it.
    Expanded {
        value: Scalar,
        text: String,
    },
    Seq(Vec<NodeId>),
    Map(Vec<(NodeId, NodeId)>),
}

/// A scalar as serde-saphyr's `deserialize_any` resolves it.
enum Scalar {
    Null,
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    Str(String),
}

/// A document as serde-saphyr reads it, before it is numbered into a [`Tree`].
enum Raw {
    Scalar(Scalar),
    Seq(Vec<Spanned<Raw>>),
    Map(Vec<(Spanned<Raw>, Spanned<Raw>)>),
}

impl<'a> Tree<'a> {
    /// None when `text` is not a YAML document serde-saphyr can read. `${VAR}` in values is
    /// expanded with `lookup`.
    pub(crate) fn parse(text: &'a str, lookup: Lookup<'_>) -> Option<Self> {
        let root = serde_saphyr::from_str_with_options(text, yaml_options()).ok()?;
        let mut tree = Self {
            nodes: Vec::new(),
            unexpanded: Vec::new(),
        };
        tree.add(root, String::new(), text, Some(lookup))?;
        Some(tree)
    }

    /// Whether a value had `$` in it: the tree, not serde-saphyr alone, must read the file.
    pub(crate) fn has_expansions(&self) -> bool {
        !self.unexpanded.is_empty()
            || self
                .nodes
                .iter()
                .any(|node| matches!(node.kind, Kind::Expanded { .. }))
    }

    /// The values whose `${VAR}` could not be expanded (a variable not set), in file order.
    pub(crate) fn unexpanded(&self) -> &[Problem] {
        &self.unexpanded
    }

    /// Adds `raw` and what it holds; `lookup` expands a scalar, None for a key.
    fn add(
        &mut self,
        raw: Spanned<Raw>,
        path: String,
        text: &'a str,
        lookup: Option<Lookup<'_>>,
    ) -> Option<NodeId> {
        let id = self.nodes.len();
        self.nodes.push(Node {
            position: Position::of(raw.referenced),
            path: path.clone(),
            kind: Kind::Seq(Vec::new()),
            end: id,
            pruned: false,
        });
        let kind = match raw.value {
            Raw::Scalar(Scalar::Str(value)) if lookup.is_some() && value.contains('$') => {
                let source = source(&raw.defined, text)?;
                let lookup = lookup?;
                match env::expand(&value, lookup) {
                    Ok(expanded) => Kind::Expanded {
                        value: retyped(&expanded, source),
                        text: expanded,
                    },
                    Err(message) => {
                        // Left out of the config, as a value of the wrong type is.
                        let position = self.nodes[id].position;
                        self.unexpanded
                            .push(Problem::new(position, path.clone(), message));
                        self.nodes[id].pruned = true;
                        Kind::Scalar {
                            value: Scalar::Str(value),
                            source,
                        }
                    }
                }
            }
            Raw::Scalar(value) => Kind::Scalar {
                source: source(&raw.defined, text)?,
                value,
            },
            Raw::Seq(items) => {
                let mut ids = Vec::with_capacity(items.len());
                for (i, item) in items.into_iter().enumerate() {
                    ids.push(self.add(item, format!("{path}[{i}]"), text, lookup)?);
                }
                Kind::Seq(ids)
            }
            Raw::Map(entries) => {
                let mut ids = Vec::with_capacity(entries.len());
                for (key, value) in entries {
                    let name = key_name(&key, text);
                    let path = match path.as_str() {
                        "" => name.to_owned(),
                        path => format!("{path}.{name}"),
                    };
                    ids.push((
                        self.add(key, path.clone(), text, None)?,
                        self.add(value, path, text, lookup)?,
                    ));
                }
                Kind::Map(ids)
            }
        };
        let end = self.nodes.len();
        let node = &mut self.nodes[id];
        (node.kind, node.end) = (kind, end);
        Some(id)
    }

    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    pub(crate) fn position(&self, id: NodeId) -> Position {
        self.nodes[id].position
    }

    /// The field path as problems name it: `.` for the root.
    pub(crate) fn path(&self, id: NodeId) -> &str {
        match self.nodes[id].path.as_str() {
            "" => ".",
            path => path,
        }
    }

    pub(crate) fn prune(&mut self, id: NodeId) {
        self.nodes[id].pruned = true;
    }

    /// Runs `T`'s `Deserialize` over the nodes not pruned.
    pub(crate) fn deserialize<T: de::Deserialize<'a>>(&self) -> Result<T, Error> {
        self.at(ROOT).run(std::marker::PhantomData)
    }

    fn at(&self, id: NodeId) -> At<'_, 'a> {
        At { tree: self, id }
    }

    fn is_pruned(&self, id: NodeId) -> bool {
        self.nodes[id].pruned
    }

    /// A scalar key as the user wrote it.
    fn key(&self, id: NodeId) -> Option<&str> {
        match &self.nodes[id].kind {
            Kind::Scalar {
                value: Scalar::Str(key),
                ..
            } => Some(key),
            Kind::Scalar { source, .. } => Some(source),
            Kind::Expanded { text, .. } => Some(text),
            _ => None,
        }
    }

    /// Whether `error`, raised by node `id`, is only there because of what was pruned from it:
    /// a missing field that was written but pruned or misspelt (`functoins`), or any other
    /// error of a node that lost a value. A pruned unknown key changes nothing else, so other
    /// errors after it are the user's.
    pub(crate) fn follows_from_pruning(&self, id: NodeId, error: &Error) -> bool {
        let entries = match &self.nodes[id].kind {
            Kind::Scalar { .. } | Kind::Expanded { .. } => return false,
            Kind::Seq(items) => return items.iter().any(|&item| self.is_pruned(item)),
            Kind::Map(entries) => entries,
        };
        entries.iter().any(|&(key, value)| {
            let name = self.key(key).unwrap_or_default();
            match error.missing {
                None => self.is_pruned(value),
                Some(field) if self.is_pruned(value) => name == field,
                Some(field) => self.is_pruned(key) && looks_like(name, field),
            }
        })
    }

    /// Follows a field path of the config deserialized from the tree, whose lists hold only the
    /// elements kept, as far as the tree has it: the node reached and the rest of the path
    /// (fields the file does not have, such as defaults). None when the path leads into a
    /// pruned entry.
    pub(crate) fn follow<'p>(&self, path: &'p str) -> Option<(NodeId, &'p str)> {
        let (mut id, mut rest) = (ROOT, path);
        loop {
            let next = match &self.nodes[id].kind {
                Kind::Scalar { .. } | Kind::Expanded { .. } => None,
                Kind::Seq(items) => self.element(items, rest),
                Kind::Map(entries) => {
                    let fields = if id == ROOT {
                        Some(rest)
                    } else {
                        rest.strip_prefix('.')
                    };
                    match fields.and_then(|fields| self.entry(entries, fields)) {
                        Some((key, value, _)) if self.is_pruned(key) || self.is_pruned(value) => {
                            return None;
                        }
                        entry => entry.map(|(_, value, after)| (value, after)),
                    }
                }
            };
            match next {
                Some((next, after)) => (id, rest) = (next, after),
                None => return Some((id, rest)),
            }
        }
    }

    /// The element `rest` starts with, `[index]`, counting the elements kept.
    fn element<'p>(&self, items: &[NodeId], rest: &'p str) -> Option<(NodeId, &'p str)> {
        let (index, after) = rest.strip_prefix('[')?.split_once(']')?;
        let mut kept = items.iter().filter(|&&item| !self.is_pruned(item));
        Some((*kept.nth(index.parse().ok()?)?, after))
    }

    /// The entry whose key `fields` starts with. Keys may hold dots (`deployment.environment`),
    /// so the longest wins.
    fn entry<'p>(
        &self,
        entries: &[(NodeId, NodeId)],
        fields: &'p str,
    ) -> Option<(NodeId, NodeId, &'p str)> {
        entries
            .iter()
            .filter_map(|&(key, value)| {
                let after = fields.strip_prefix(self.key(key)?)?;
                (after.is_empty() || after.starts_with(['.', '['])).then_some((key, value, after))
            })
            .min_by_key(|&(.., after)| after.len())
    }

    /// Whether a node in `id`'s subtree was pruned.
    pub(crate) fn lost_part(&self, id: NodeId) -> bool {
        self.nodes[id..self.nodes[id].end]
            .iter()
            .any(|node| node.pruned)
    }
}

/// How YAML types `expanded`, the text of a scalar written as `source`: a quoted or block
/// scalar stays a string, a plain one may be a number, a bool or null (`${PID:-}`). Text that
/// would read as more than one scalar (`a: b`, `x # y`) stays the string it is.
fn retyped(expanded: &str, source: &str) -> Scalar {
    let quoted = source.starts_with(['\'', '"', '|', '>']);
    if quoted {
        return Scalar::Str(expanded.to_owned());
    }
    if expanded.trim().is_empty() {
        return Scalar::Null;
    }
    match serde_saphyr::from_str_with_options::<Raw>(expanded, yaml_options()) {
        Ok(Raw::Scalar(Scalar::Str(_))) | Ok(Raw::Seq(_) | Raw::Map(_)) | Err(_) => {
            Scalar::Str(expanded.to_owned())
        }
        Ok(Raw::Scalar(scalar)) => scalar,
    }
}

/// An expanded scalar read as `T`, by serde-saphyr as the file's own scalars are.
fn typed<T: de::DeserializeOwned>(text: &str) -> Result<T, Error> {
    Ok(serde_saphyr::from_str_with_options(text, yaml_options())?)
}

/// A key as field paths name it.
fn key_name<'k>(key: &'k Spanned<Raw>, text: &'k str) -> &'k str {
    match &key.value {
        Raw::Scalar(Scalar::Str(name)) => name,
        Raw::Scalar(_) => source(&key.defined, text).unwrap_or("?"),
        _ => "?",
    }
}

/// The source text of a scalar, for serde-saphyr to read again.
fn source<'a>(location: &serde_saphyr::Location, text: &'a str) -> Option<&'a str> {
    let span = location.span();
    let start = usize::try_from(span.byte_offset()?).ok()?;
    let len = usize::try_from(span.byte_len()?).ok()?;
    let source = text.get(start..start.checked_add(len)?)?;
    // An empty plain scalar is a null, which serde-saphyr reads as it reads `~`.
    Some(if source.is_empty() { "~" } else { source })
}

impl<'de> de::Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RawVisitor;

        impl<'de> Visitor<'de> for RawVisitor {
            type Value = Raw;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any YAML node")
            }

            fn visit_unit<E>(self) -> Result<Raw, E> {
                Ok(Raw::Scalar(Scalar::Null))
            }

            fn visit_none<E>(self) -> Result<Raw, E> {
                Ok(Raw::Scalar(Scalar::Null))
            }

            fn visit_bool<E>(self, value: bool) -> Result<Raw, E> {
                Ok(Raw::Scalar(Scalar::Bool(value)))
            }

            fn visit_u64<E>(self, value: u64) -> Result<Raw, E> {
                Ok(Raw::Scalar(Scalar::U64(value)))
            }

            fn visit_i64<E>(self, value: i64) -> Result<Raw, E> {
                Ok(Raw::Scalar(Scalar::I64(value)))
            }

            fn visit_f64<E>(self, value: f64) -> Result<Raw, E> {
                Ok(Raw::Scalar(Scalar::F64(value)))
            }

            fn visit_str<E>(self, value: &str) -> Result<Raw, E> {
                Ok(Raw::Scalar(Scalar::Str(value.to_owned())))
            }

            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Raw::Seq(items))
            }

            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Raw::Map(entries))
            }
        }

        deserializer.deserialize_any(RawVisitor)
    }
}

/// A deserialization error, and the innermost node it came from.
#[derive(Debug)]
pub(crate) struct Error {
    pub(crate) message: String,
    /// Set on the way out by the first node it passes.
    pub(crate) node: Option<NodeId>,
    /// The field a "missing field" error names.
    missing: Option<&'static str>,
}

impl Error {
    fn at(mut self, id: NodeId) -> Self {
        self.node.get_or_insert(id);
        self
    }
}

impl From<YamlError> for Error {
    fn from(error: YamlError) -> Self {
        Self {
            message: bare_message(&error.to_string()),
            node: None,
            missing: None,
        }
    }
}

/// Worded by serde-saphyr, as in the normal pass.
impl de::Error for Error {
    fn custom<T: fmt::Display>(message: T) -> Self {
        YamlError::custom(message).into()
    }

    fn invalid_type(unexpected: de::Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        YamlError::invalid_type(unexpected, expected).into()
    }

    fn invalid_value(unexpected: de::Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        YamlError::invalid_value(unexpected, expected).into()
    }

    fn invalid_length(len: usize, expected: &dyn de::Expected) -> Self {
        YamlError::invalid_length(len, expected).into()
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        YamlError::unknown_variant(variant, expected).into()
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        YamlError::unknown_field(field, expected).into()
    }

    fn missing_field(field: &'static str) -> Self {
        Self {
            missing: Some(field),
            ..YamlError::missing_field(field).into()
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// One node, as a `Deserializer`.
#[derive(Clone, Copy)]
struct At<'t, 'a> {
    tree: &'t Tree<'a>,
    id: NodeId,
}

impl<'t, 'a> At<'t, 'a> {
    fn kind(self) -> &'t Kind<'a> {
        &self.tree.nodes[self.id].kind
    }

    /// Runs `seed` on this node: an error is this node's unless a node within it claimed it.
    fn run<S: DeserializeSeed<'a>>(self, seed: S) -> Result<S::Value, Error> {
        seed.deserialize(self).map_err(|error| error.at(self.id))
    }

    /// The scalar's source text, or serde-saphyr's error for a collection where a scalar is
    /// wanted.
    fn source(self) -> Result<&'a str, Error> {
        match self.kind() {
            Kind::Scalar { source, .. } => Ok(source),
            _ => Err(de::Error::custom("expected string scalar")),
        }
    }

    /// The expanded text, if this is an expanded scalar.
    fn expanded(self) -> Option<&'t str> {
        match self.kind() {
            Kind::Expanded { text, .. } => Some(text),
            _ => None,
        }
    }
}

/// Has serde-saphyr read a scalar from its source text.
fn reparse<'a, R>(
    source: &'a str,
    read: impl for<'e> FnOnce(serde_saphyr::Deserializer<'a, 'e>) -> Result<R, YamlError>,
) -> Result<R, Error> {
    Ok(serde_saphyr::with_deserializer_from_str_with_options(
        source,
        yaml_options(),
        read,
    )?)
}

/// Methods that only a scalar answers, read by serde-saphyr: from the file, or from the
/// expanded text as a `$ty` handed on with `$visit` (the visitor cannot borrow from it).
macro_rules! reparsed {
    ($($method:ident: $ty:ty => $visit:ident;)*) => {$(
        fn $method<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
            match self.expanded() {
                Some(text) => visitor.$visit(typed::<$ty>(text)?),
                None => reparse(self.source()?, |de| de.$method(visitor)),
            }
        }
    )*};
}

impl<'a> Deserializer<'a> for At<'_, 'a> {
    type Error = Error;

    reparsed! {
        deserialize_bool: bool => visit_bool;
        deserialize_i8: i8 => visit_i8;
        deserialize_i16: i16 => visit_i16;
        deserialize_i32: i32 => visit_i32;
        deserialize_i64: i64 => visit_i64;
        deserialize_i128: i128 => visit_i128;
        deserialize_u8: u8 => visit_u8;
        deserialize_u16: u16 => visit_u16;
        deserialize_u32: u32 => visit_u32;
        deserialize_u64: u64 => visit_u64;
        deserialize_u128: u128 => visit_u128;
        deserialize_f32: f32 => visit_f32;
        deserialize_f64: f64 => visit_f64;
        deserialize_char: char => visit_char;
        deserialize_byte_buf: String => visit_string;
    }

    fn deserialize_bytes<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_byte_buf(visitor)
    }

    fn deserialize_unit<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.expanded() {
            Some(text) => typed::<()>(text).and_then(|()| visitor.visit_unit()),
            None => reparse(self.source()?, |de| de.deserialize_unit(visitor)),
        }
    }

    fn deserialize_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.kind() {
            Kind::Scalar { value, .. } | Kind::Expanded { value, .. } => match value {
                Scalar::Null => visitor.visit_unit(),
                Scalar::Bool(value) => visitor.visit_bool(*value),
                Scalar::U64(value) => visitor.visit_u64(*value),
                Scalar::I64(value) => visitor.visit_i64(*value),
                Scalar::F64(value) => visitor.visit_f64(*value),
                Scalar::Str(value) => visitor.visit_str(value),
            },
            Kind::Seq(_) => self.deserialize_seq(visitor),
            Kind::Map(_) => self.deserialize_map(visitor),
        }
    }

    fn deserialize_str<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.kind() {
            // Quoted and block scalars are only right as serde-saphyr read them in place.
            Kind::Scalar {
                value: Scalar::Str(value),
                ..
            } => visitor.visit_str(value),
            // A string field takes the text as expanded, whatever YAML would make of it.
            Kind::Expanded { text, .. } => visitor.visit_str(text),
            _ => reparse(self.source()?, |de| de.deserialize_str(visitor)),
        }
    }

    fn deserialize_string<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.kind() {
            Kind::Scalar {
                value: Scalar::Null,
                ..
            }
            | Kind::Expanded {
                value: Scalar::Null,
                ..
            } => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'a>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        if self.expanded().is_some() {
            return self.deserialize_unit(visitor);
        }
        reparse(self.source()?, |de| {
            de.deserialize_unit_struct(name, visitor)
        })
    }

    fn deserialize_newtype_struct<V: Visitor<'a>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        if name == located::NEWTYPE_NAME {
            visitor.visit_seq(Placed { at: self, step: 0 })
        } else {
            visitor.visit_newtype_struct(self)
        }
    }

    fn deserialize_seq<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.kind() {
            Kind::Seq(items) => visitor.visit_seq(Elements {
                tree: self.tree,
                items: items.iter(),
            }),
            // serde-saphyr's words for the same mismatch.
            Kind::Map(_) => Err(de::Error::custom("expected sequence start")),
            Kind::Scalar { source, .. } => reparse(source, |de| de.deserialize_seq(visitor)),
            Kind::Expanded { .. } => Err(de::Error::custom("expected sequence start")),
        }
    }

    fn deserialize_tuple<V: Visitor<'a>>(self, _: usize, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'a>>(
        self,
        _: &'static str,
        _: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.kind() {
            Kind::Map(entries) => visitor.visit_map(Entries {
                tree: self.tree,
                entries: entries.iter(),
                value: None,
            }),
            Kind::Seq(_) | Kind::Expanded { .. } => {
                Err(de::Error::custom("expected mapping start"))
            }
            Kind::Scalar { source, .. } => reparse(source, |de| de.deserialize_map(visitor)),
        }
    }

    fn deserialize_struct<V: Visitor<'a>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_map(visitor)
    }

    /// The schema's enums are unit variants, written as a scalar.
    fn deserialize_enum<V: Visitor<'a>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.kind() {
            Kind::Scalar {
                value: Scalar::Str(value),
                ..
            } => visitor.visit_enum(value.as_str().into_deserializer()),
            Kind::Expanded { text, .. } => visitor.visit_enum(text.as_str().into_deserializer()),
            _ => reparse(self.source()?, |de| {
                de.deserialize_enum(name, variants, visitor)
            }),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
}

/// A sequence's elements; a pruned element is skipped, and those after it keep their index in
/// the paths.
struct Elements<'t, 'a> {
    tree: &'t Tree<'a>,
    items: std::slice::Iter<'t, NodeId>,
}

impl<'a> de::SeqAccess<'a> for Elements<'_, 'a> {
    type Error = Error;

    fn next_element_seed<S: DeserializeSeed<'a>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, Error> {
        let tree = self.tree;
        match self.items.find(|&&item| !tree.is_pruned(item)) {
            Some(&item) => tree.at(item).run(seed).map(Some),
            None => Ok(None),
        }
    }
}

/// A mapping's entries, but those with a pruned key or value.
struct Entries<'t, 'a> {
    tree: &'t Tree<'a>,
    entries: std::slice::Iter<'t, (NodeId, NodeId)>,
    value: Option<NodeId>,
}

impl<'a> de::MapAccess<'a> for Entries<'_, 'a> {
    type Error = Error;

    fn next_key_seed<S: DeserializeSeed<'a>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, Error> {
        let tree = self.tree;
        let entry = self
            .entries
            .find(|&&(key, value)| !tree.is_pruned(key) && !tree.is_pruned(value));
        match entry {
            Some(&(key, value)) => {
                self.value = Some(value);
                tree.at(key).run(seed).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<S: DeserializeSeed<'a>>(&mut self, seed: S) -> Result<S::Value, Error> {
        match self.value.take() {
            Some(value) => self.tree.at(value).run(seed),
            None => Err(de::Error::custom("a value asked for before its key")),
        }
    }
}

/// A [`crate::Located`]'s request answered: the node's line, column, then the node itself.
struct Placed<'t, 'a> {
    at: At<'t, 'a>,
    step: u8,
}

impl<'a> de::SeqAccess<'a> for Placed<'_, 'a> {
    type Error = Error;

    fn next_element_seed<S: DeserializeSeed<'a>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, Error> {
        let position = self.at.tree.nodes[self.at.id].position;
        self.step += 1;
        match self.step {
            1 => seed
                .deserialize(position.line.into_deserializer())
                .map(Some),
            2 => seed
                .deserialize(position.column.into_deserializer())
                .map(Some),
            3 => seed.deserialize(self.at).map(Some),
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    /// Over a valid document the tree gives what serde-saphyr gives, positions included.
    #[test]
    fn reads_a_config_as_serde_saphyr_does() {
        let text = r#"
service_name: "42"
resource: { deployment.environment: prod, 7: yes }
exporter:
  otlp:
    endpoint: https://collector:4318
    protocol: http/protobuf
    headers: { authorization: "Bearer x" }
    timeout: 5s
    compression: gzip
    tls: { ca_file: ca.pem }
batch: { queue_size: 0x400, batch_size: '100', delay: 50ms }
limits: { max_depth: 8, stack_frames: 16 }
metrics: { listen: "127.0.0.1:9464" }
probes:
  - binary: &bin ./server
    pid: ~
    functions:
      - symbol: |
          myapp::query
        span_name: 123
        args:
          - { index: 0, name: sql, type: str, max_len: 256 }
          - index: "1"
            type: >-
              u64
        return: { name: rc, type: i32, error_when: "< 0" }
        attributes: { db.system: postgresql, retries: 3, ratio: 0.5, cached: false }
        stack: yes
        sample_rate: .25
        min_duration: 10us
      - offset: 0x1139
  - binary: *bin
    functions: [{ address: 4198713 }]
"#;
        let expected: Config = serde_saphyr::from_str_with_options(text, yaml_options()).unwrap();
        let tree = Tree::parse(text, &|_| None).unwrap();
        assert_eq!(tree.deserialize::<Config>().unwrap(), expected);
    }
}
