//! Where Go's register ABI (ABIInternal, Go 1.17 and later on amd64) puts each parameter of a
//! function: its integer words in RAX, RBX, RCX, RDI, RSI, R8, R9, R10, R11 in turn, its
//! floating-point words in X0..X14; a parameter whose words do not all fit goes on the stack,
//! and the registers it would have taken stay free for the next one. Also what a Go value is,
//! as the ABI sees it: its kind and its words, which the binary's DWARF describes.

use spanprobe_config::ValueType;

use std::ops::Range;

use super::Register;

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
    /// What it is, which decides what reads it.
    pub kind: GoKind,
}

/// What a Go value is, by the kind Go's DWARF gives its type (`DW_AT_go_kind`, numbered as
/// `reflect.Kind`): what decides how a capture may read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GoKind {
    /// A number or a `bool`: one word.
    Number,
    /// A pointer, `unsafe.Pointer`, map, channel or func: one word, an address.
    Pointer,
    /// A `string`: a pointer to its bytes, and their count (no NUL ends them).
    String,
    /// A slice: a pointer to its array, its length and its capacity; `bytes` when an element
    /// is one byte (`[]byte`), so that its length counts bytes.
    Slice { bytes: bool },
    /// An interface: its dynamic type (an itab or a type descriptor), then its data word.
    Interface,
    /// A struct, by its fields in order.
    Struct(Vec<GoField>),
    /// Anything else (an array, a complex number).
    Other,
}

/// A field of a Go struct.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoField {
    pub name: String,
    pub go_type: String,
    pub kind: GoKind,
    /// What a config reads it as when it is one word.
    pub capture: Option<ValueType>,
    /// Its words, as a range of the words of the value that holds it.
    pub words: Range<usize>,
}

/// A scalar word of a parameter: in an integer register or a floating-point one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoWord {
    Integer,
    Float,
}

/// The integer argument registers, in order.
pub const INTEGER_REGISTERS: [Register; 9] = [
    Register::Rax,
    Register::Rbx,
    Register::Rcx,
    Register::Rdi,
    Register::Rsi,
    Register::R8,
    Register::R9,
    Register::R10,
    Register::R11,
];
const FLOAT_REGISTERS: usize = 15;

/// Where one parameter is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GoPlace {
    /// In these integer registers (one per word) and `floats` floating-point ones.
    Registers {
        integers: Vec<Register>,
        floats: usize,
    },
    /// On the stack.
    Stack,
}

/// The place of each of `params`, in order, from the first registers: a function's results,
/// or the parameters of a function without a dictionary.
pub fn places(params: &[GoParam]) -> Vec<GoPlace> {
    places_after(params, 0)
}

/// The place of each parameter of Go function `symbol`, in declared order: after its
/// dictionary, in RAX, when it takes one (see [`takes_dictionary`]).
pub fn parameter_places(symbol: &str, params: &[GoParam]) -> Vec<GoPlace> {
    places_after(params, usize::from(takes_dictionary(symbol)))
}

/// Whether Go function `symbol` takes a dictionary before its parameters: a generic function
/// compiled for a shape of its type arguments (`main.Sum[go.shape.int_0]`, or a method of a
/// generic type, `main.(*Stack[go.shape.string_0]).Push`) is passed the dictionary of the
/// instantiation called as its first argument, which its DWARF does not list. The closures
/// inside one (`main.Sum[go.shape.int_0].func1`, a method value's `-fm`) find it in their
/// closure context instead.
pub fn takes_dictionary(symbol: &str) -> bool {
    let (Some(open), Some(close)) = (symbol.find('['), symbol.rfind(']')) else {
        return false;
    };
    if close < open || !symbol[open..close].contains("go.shape.") {
        return false;
    }
    let rest = symbol[close + 1..].trim_start_matches(')');
    if rest.ends_with("-fm") {
        return false;
    }
    let segments: Vec<&str> = rest.split('.').filter(|s| !s.is_empty()).collect();
    match segments[..] {
        [] => true,
        // A method, unless the compiler named it: `func1`, `gowrap1`, `deferwrap1`.
        [method] => !is_closure_name(method),
        _ => false,
    }
}

/// Whether `segment` is a name the compiler gives a closure.
fn is_closure_name(segment: &str) -> bool {
    ["func", "gowrap", "deferwrap"].iter().any(|prefix| {
        segment
            .strip_prefix(prefix)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// The places of `params`, the first `taken` integer registers being taken already.
fn places_after(params: &[GoParam], taken: usize) -> Vec<GoPlace> {
    let (mut integer, mut float) = (taken, 0);
    params
        .iter()
        .map(|param| {
            let Some(words) = &param.words else {
                return GoPlace::Stack;
            };
            let integers = words.iter().filter(|w| **w == GoWord::Integer).count();
            let floats = words.len() - integers;
            if integer + integers > INTEGER_REGISTERS.len() || float + floats > FLOAT_REGISTERS {
                return GoPlace::Stack;
            }
            let place = GoPlace::Registers {
                integers: INTEGER_REGISTERS[integer..integer + integers].to_vec(),
                floats,
            };
            (integer, float) = (integer + integers, float + floats);
            place
        })
        .collect()
}

/// A Go value where a capture finds it at entry: a parameter, or a field of one, in registers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoValue<'a> {
    /// As messages name it: `it`, `it.Name`.
    pub name: String,
    pub go_type: &'a str,
    pub kind: &'a GoKind,
    pub capture: Option<ValueType>,
    /// Its words' register classes.
    pub words: &'a [GoWord],
    /// The integer registers of its integer words, in order.
    pub registers: &'a [Register],
}

/// Which registers a capture of a Go value reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoRead {
    /// One word, where a chain of `offsets` starts if there is one.
    Word(Register),
    /// The bytes the first register points to, as many as the second counts: a `string`'s,
    /// a `[]byte`'s.
    Counted { bytes: Register, count: Register },
}

impl<'a> GoValue<'a> {
    /// Parameter `param` (`name` as messages call it), in registers `registers`.
    pub fn parameter(param: &'a GoParam, name: &str, registers: &'a [Register]) -> Option<Self> {
        Some(GoValue {
            name: name.to_owned(),
            go_type: &param.go_type,
            kind: &param.kind,
            capture: param.capture,
            words: param.words.as_deref()?,
            registers,
        })
    }

    /// The field of this struct that `path` (`.Name`, `.Addr.City`) names, in its registers:
    /// Go passes a struct by value field by field, each in registers of its own.
    pub fn select(self, path: &str) -> Result<Self, String> {
        let Some(fields) = path.strip_prefix('.') else {
            return Err(format!(
                "`{path}`: a Go path starts with `.Name` (a field of a struct passed by value), \
                 `->Name` (through a pointer) or `[n]` (an element of a slice)"
            ));
        };
        fields
            .split('.')
            .try_fold(self, |value, field| value.field(field))
    }

    fn field(self, name: &str) -> Result<Self, String> {
        let GoKind::Struct(fields) = self.kind else {
            return Err(format!(
                "`.{name}`: `{}` is a Go {}, not a struct passed by value",
                self.name, self.go_type
            ));
        };
        let Some(field) = fields.iter().find(|field| field.name == name) else {
            let names: Vec<String> = fields.iter().map(|f| format!("`{}`", f.name)).collect();
            return Err(format!(
                "`.{name}`: {} has no field `{name}`; it has {}",
                self.go_type,
                names.join(", ")
            ));
        };
        let words = self.words.get(field.words.clone()).unwrap_or_default();
        let integers = |words: &[GoWord]| words.iter().filter(|w| **w == GoWord::Integer).count();
        let first = integers(self.words.get(..field.words.start).unwrap_or_default());
        let registers = self
            .registers
            .get(first..first + integers(words))
            .unwrap_or_default();
        Ok(GoValue {
            name: format!("{}.{name}", self.name),
            go_type: &field.go_type,
            kind: &field.kind,
            capture: field.capture,
            words,
            registers,
        })
    }

    /// The type a capture with no `type` reads this value as: a string's text, a `[]byte`'s
    /// bytes, one word as DWARF types it.
    pub fn default_type(&self) -> Option<ValueType> {
        match self.kind {
            GoKind::String => Some(ValueType::Str),
            GoKind::Slice { bytes: true } => Some(ValueType::Bytes),
            GoKind::Number | GoKind::Pointer => self.capture,
            _ => None,
        }
    }

    /// How a capture of type `ty` reads this value (following `offsets` from it when
    /// `chained`), or why it cannot: text only where Go keeps it with its length (a `string`,
    /// a `[]byte`), or behind a pointer the user follows; a struct by its fields.
    pub fn read(&self, ty: ValueType, chained: bool) -> Result<GoRead, String> {
        let (name, go_type) = (&self.name, self.go_type);
        let memory = ty.is_memory();
        let Some(&first) = self.registers.first() else {
            return Err(format!(
                "`{name}` ({go_type}) is in a floating-point register, which uprobes do not \
                 capture"
            ));
        };
        match (self.kind, self.registers) {
            // A struct of one word is that word.
            (GoKind::Struct(fields), [_]) => match &fields[..] {
                [field] => self.clone().field(&field.name)?.read(ty, chained),
                _ => Ok(GoRead::Word(first)),
            },
            (GoKind::Struct(fields), registers) => {
                let names: Vec<String> = fields.iter().map(|f| format!("`.{}`", f.name)).collect();
                Err(format!(
                    "`{name}` is a Go struct ({go_type}) passed by value, in {}: no type reads it \
                     whole (nor is it an address); read its fields by `path`: {}",
                    list(registers),
                    names.join(", ")
                ))
            }
            (GoKind::Interface, [_, data]) if !memory && (chained || ty == ValueType::Ptr) => {
                Ok(GoRead::Word(*data))
            }
            (GoKind::Interface, _) => Err(format!(
                "`{name}` is a Go interface ({go_type}): its words are its dynamic type and its \
                 data, a pointer to the value (or the pointer it holds): read the data word as \
                 `ptr`, or what it points to with `offsets`"
            )),
            // Offsets start from the address of the bytes, or of the array.
            (GoKind::String | GoKind::Slice { .. }, _) if chained => Ok(GoRead::Word(first)),
            (GoKind::String | GoKind::Slice { bytes: true }, [bytes, count, ..]) if memory => {
                Ok(GoRead::Counted {
                    bytes: *bytes,
                    count: *count,
                })
            }
            (GoKind::String | GoKind::Slice { .. }, _) if ty == ValueType::Ptr => {
                Ok(GoRead::Word(first))
            }
            (GoKind::Slice { bytes: false }, registers) => Err(format!(
                "`{name}` is a Go {go_type} of {} words: read it as `ptr` (its array), or an \
                 element by `path` (`[0]` is the first); its length counts elements, not the \
                 bytes `str` or `bytes` would read",
                registers.len()
            )),
            (GoKind::String | GoKind::Slice { .. }, registers) => Err(format!(
                "`{name}` is a Go {go_type} of {} words: read it as `str` or `bytes` (its length \
                 is the second word) or as `ptr` (its first word)",
                registers.len()
            )),
            (GoKind::Pointer, _) if memory && !chained => Err(format!(
                "`{name}` is a Go pointer ({go_type}), not text (Go strings are not \
                 NUL-terminated): read it as `ptr`, or what it points to by `path` (`->Name`)"
            )),
            (GoKind::Pointer, _) => Ok(GoRead::Word(first)),
            (GoKind::Number, _) if memory || chained => Err(format!(
                "`{name}` is a Go {go_type}, a number, not an address: read it as one (`i64`, \
                 `u64`, `bool`...), not followed into memory"
            )),
            (GoKind::Number, _) => Ok(GoRead::Word(first)),
            (GoKind::Other, [_]) if !memory => Ok(GoRead::Word(first)),
            (GoKind::Other, registers) => Err(format!(
                "`{name}` is a Go {go_type} of {}, which no type reads",
                match registers.len() {
                    1 => "1 word".to_owned(),
                    n => format!("{n} words"),
                }
            )),
        }
    }
}

/// `registers`, as `RAX, RBX`.
fn list(registers: &[Register]) -> String {
    let names: Vec<String> = registers.iter().map(ToString::to_string).collect();
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(words: Option<Vec<GoWord>>) -> GoParam {
        GoParam {
            name: None,
            go_type: String::new(),
            capture: None,
            words,
            kind: GoKind::Other,
        }
    }

    #[test]
    fn integers_in_order_floats_apart_and_what_does_not_fit_on_the_stack() {
        use GoWord::{Float, Integer};
        let string = param(Some(vec![Integer, Integer]));
        let int = param(Some(vec![Integer]));
        let float = param(Some(vec![Float]));
        let slice = param(Some(vec![Integer; 3]));
        let four = param(Some(vec![Integer; 4]));
        let array = param(None);
        let places = places(&[
            string.clone(),
            float,
            int.clone(),
            array,
            slice,
            four,
            int.clone(),
            int,
        ]);
        let registers = |integers: &[Register], floats| GoPlace::Registers {
            integers: integers.to_vec(),
            floats,
        };
        use Register::*;
        assert_eq!(
            places,
            [
                registers(&[Rax, Rbx], 0),
                registers(&[], 1),
                registers(&[Rcx], 0),
                GoPlace::Stack,
                registers(&[Rdi, Rsi, R8], 0),
                // Four words do not fit in the three left: on the stack, and the next
                // parameter takes the next register.
                GoPlace::Stack,
                registers(&[R9], 0),
                registers(&[R10], 0),
            ]
        );
    }
}

#[cfg(test)]
mod typed {
    use super::*;
    use crate::x86_64::go::GoField;
    use GoWord::Integer;
    use Register::*;

    #[test]
    fn shape_instantiations_take_a_dictionary_their_closures_do_not() {
        for (symbol, dictionary) in [
            ("main.Sum[go.shape.int_0]", true),
            ("main.Pair[go.shape.string_0,go.shape.int_1]", true),
            ("main.(*Stack[go.shape.string_0]).Push", true),
            ("main.Stack[go.shape.int_0].Len", true),
            // Go 1.21 names shapes without their index.
            ("main.Sum[go.shape.[]uint8]", true),
            ("main.Sum[go.shape.int_0].func1", false),
            ("main.Sum[go.shape.int_0].func1.2", false),
            ("main.(*Stack[go.shape.int_0]).Push.func1", false),
            ("main.Stack[go.shape.int_0].Len-fm", false),
            ("main.Sum[go.shape.int_0].gowrap1", false),
            // An instantiation's wrapper, and functions that are not generic.
            ("main.(*Stack[string]).Push", false),
            ("main.handle", false),
            ("main.(*order).apply", false),
        ] {
            assert_eq!(takes_dictionary(symbol), dictionary, "{symbol}");
        }
    }

    #[test]
    fn the_dictionary_takes_rax_and_the_parameters_follow() {
        let param = |words| GoParam {
            name: None,
            go_type: String::new(),
            capture: None,
            words: Some(words),
            kind: GoKind::Other,
        };
        let params = [param(vec![Integer; 2]), param(vec![Integer])];
        let registers = |symbol| -> Vec<Vec<Register>> {
            parameter_places(symbol, &params)
                .into_iter()
                .map(|place| match place {
                    GoPlace::Registers { integers, .. } => integers,
                    GoPlace::Stack => Vec::new(),
                })
                .collect()
        };
        assert_eq!(
            registers("main.Pair[go.shape.string_0,go.shape.int_1]"),
            [vec![Rbx, Rcx], vec![Rdi]]
        );
        assert_eq!(registers("main.pair"), [vec![Rax, Rbx], vec![Rcx]]);
    }

    fn field(name: &str, go_type: &str, kind: GoKind, words: std::ops::Range<usize>) -> GoField {
        GoField {
            name: name.into(),
            go_type: go_type.into(),
            kind,
            capture: Some(ValueType::I64),
            words,
        }
    }

    /// `struct { Name string; Count int; Tags []byte }` in RBX..R9.
    fn item() -> GoKind {
        GoKind::Struct(vec![
            field("Name", "string", GoKind::String, 0..2),
            field("Count", "int", GoKind::Number, 2..3),
            field("Tags", "[]uint8", GoKind::Slice { bytes: true }, 3..6),
        ])
    }

    fn value<'a>(kind: &'a GoKind, go_type: &'a str, registers: &'a [Register]) -> GoValue<'a> {
        const WORDS: [GoWord; 6] = [Integer; 6];
        GoValue {
            name: "it".into(),
            go_type,
            kind,
            capture: None,
            words: &WORDS[..registers.len()],
            registers,
        }
    }

    #[test]
    fn a_struct_by_value_is_read_by_its_fields_in_their_registers() {
        let kind = item();
        let registers = [Rbx, Rcx, Rdi, Rsi, R8, R9];
        let it = value(&kind, "main.item", &registers);
        let name = it.clone().select(".Name").unwrap();
        assert_eq!(name.name, "it.Name");
        assert_eq!(name.default_type(), Some(ValueType::Str));
        assert_eq!(
            name.read(ValueType::Str, false),
            Ok(GoRead::Counted {
                bytes: Rbx,
                count: Rcx
            })
        );
        let count = it.clone().select(".Count").unwrap();
        assert_eq!(count.read(ValueType::I64, false), Ok(GoRead::Word(Rdi)));
        let tags = it.clone().select(".Tags").unwrap();
        assert_eq!(tags.default_type(), Some(ValueType::Bytes));
        assert_eq!(
            tags.read(ValueType::Bytes, false),
            Ok(GoRead::Counted {
                bytes: Rsi,
                count: R8
            })
        );
        for ty in [ValueType::Str, ValueType::Ptr] {
            let refused = it.read(ty, false).unwrap_err();
            assert_eq!(
                refused,
                "`it` is a Go struct (main.item) passed by value, in RBX, RCX, RDI, RSI, R8, R9: \
                 no type reads it whole (nor is it an address); read its fields by `path`: \
                 `.Name`, `.Count`, `.Tags`"
            );
        }
        assert_eq!(
            it.clone().select(".Size").unwrap_err(),
            "`.Size`: main.item has no field `Size`; it has `Name`, `Count`, `Tags`"
        );
        assert_eq!(
            it.clone().select(".Name.len").unwrap_err(),
            "`.len`: `it.Name` is a Go string, not a struct passed by value"
        );
        assert!(
            it.select("->Name")
                .unwrap_err()
                .contains("`->Name` (through a pointer)")
        );
    }

    #[test]
    fn text_only_where_go_keeps_its_length() {
        let registers = [Rax, Rbx, Rcx];
        let read = |kind: &GoKind, go_type: &str, ty, chained| {
            let words = match kind {
                GoKind::String | GoKind::Interface => 2,
                GoKind::Slice { .. } => 3,
                _ => 1,
            };
            value(kind, go_type, &registers[..words]).read(ty, chained)
        };
        let counted = Ok(GoRead::Counted {
            bytes: Rax,
            count: Rbx,
        });
        use ValueType::{Bytes, I64, Ptr, Str};
        assert_eq!(read(&GoKind::String, "string", Str, false), counted);
        let bytes = GoKind::Slice { bytes: true };
        assert_eq!(read(&bytes, "[]uint8", Bytes, false), counted);
        let ints = GoKind::Slice { bytes: false };
        assert!(
            read(&ints, "[]int", Str, false)
                .unwrap_err()
                .contains("its length counts elements")
        );
        assert_eq!(read(&ints, "[]int", Ptr, false), Ok(GoRead::Word(Rax)));
        // An element, through the array's pointer.
        assert_eq!(read(&ints, "[]int", I64, true), Ok(GoRead::Word(Rax)));
        // A pointer is text only where the user follows it to some.
        let pointer = GoKind::Pointer;
        assert!(
            read(&pointer, "*main.shop", Str, false)
                .unwrap_err()
                .contains("not NUL-terminated")
        );
        assert_eq!(
            read(&pointer, "*main.shop", Str, true),
            Ok(GoRead::Word(Rax))
        );
        assert!(read(&GoKind::Number, "int", Str, false).is_err());
        assert!(read(&GoKind::Number, "int", I64, true).is_err());
        // An interface: its data word, never its type word as text.
        let any = GoKind::Interface;
        assert_eq!(
            read(&any, "interface {}", Ptr, false),
            Ok(GoRead::Word(Rbx))
        );
        assert_eq!(read(&any, "interface {}", I64, true), Ok(GoRead::Word(Rbx)));
        for (ty, chained) in [(Str, false), (Str, true), (I64, false)] {
            assert!(
                read(&any, "interface {}", ty, chained)
                    .unwrap_err()
                    .starts_with("`it` is a Go interface (interface {}): its words are")
            );
        }
    }
}
