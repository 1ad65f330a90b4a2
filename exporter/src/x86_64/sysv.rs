//! Where the System V AMD64 calling convention puts each parameter of a function (§3.2.3), from
//! the classes DWARF gives its types: what an argument `index` in a config means.

use spanprobe_config::ValueType;

/// How the System V AMD64 calling convention passes a value (§3.2.3): which registers it takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Abi {
    /// In integer registers (RDI, RSI, RDX, RCX, R8, R9, then the stack), one per eightbyte: one
    /// for scalars and pointers, two for a 9 to 16 byte aggregate of integers. `fields` are an
    /// aggregate's members that fill an eightbyte each, as (name, capture type), when every
    /// eightbyte is one such member.
    Integer {
        eightbytes: u8,
        fields: Vec<(String, ValueType)>,
    },
    /// In XMM registers: float, double, and aggregates of them. No integer register.
    Sse,
    /// A 9 to 16 byte aggregate with one integer and one floating-point eightbyte: one integer
    /// and one XMM register.
    Mixed,
    /// In memory: as an argument, copied onto the stack (`eightbytes` of it); as a return value,
    /// into space the caller passes a hidden pointer to in RDI (and gets back in RAX).
    Memory { eightbytes: u64 },
}

impl Abi {
    pub(crate) const INTEGER: Abi = Abi::Integer {
        eightbytes: 1,
        fields: Vec::new(),
    };
}

/// Integer argument registers: RDI, RSI, RDX, RCX, R8, R9.
const INTEGER_REGISTERS: u8 = 6;

/// Where one parameter is passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// In `count` integer slots from `index`, as a config's `index` counts them: 0-5 are the
    /// registers, 6 and up the caller's stack, one per eightbyte.
    Slots { index: u8, count: u8 },
    /// In an XMM register, which uprobes do not capture.
    Xmm,
    /// One integer and one XMM register (a mixed 16-byte aggregate); not captured.
    Mixed,
    /// Copied onto the stack by value, `eightbytes` long from slot `index`; not captured.
    Stack { index: u8, eightbytes: u64 },
}

/// The place of each parameter of the classes `params`; `returns_in_memory` when the return
/// value is (its hidden pointer then takes RDI, the first slot).
pub fn places<'a>(
    params: impl IntoIterator<Item = &'a Abi>,
    returns_in_memory: bool,
) -> Vec<Place> {
    let mut register = u8::from(returns_in_memory);
    // The next stack eightbyte, counted from slot 6.
    let mut stack: u64 = 0;
    let stack_slot =
        |stack: u64| u8::try_from(u64::from(INTEGER_REGISTERS) + stack).unwrap_or(u8::MAX);
    params
        .into_iter()
        .map(|abi| match abi {
            Abi::Integer { eightbytes, .. } => {
                let count = *eightbytes;
                // An aggregate goes whole in registers or whole on the stack.
                if register + count <= INTEGER_REGISTERS {
                    register += count;
                    Place::Slots {
                        index: register - count,
                        count,
                    }
                } else {
                    let index = stack_slot(stack);
                    stack += u64::from(count);
                    Place::Slots { index, count }
                }
            }
            Abi::Mixed => {
                if register < INTEGER_REGISTERS {
                    register += 1;
                } else {
                    stack += 2;
                }
                Place::Mixed
            }
            Abi::Sse => Place::Xmm,
            Abi::Memory { eightbytes } => {
                let index = stack_slot(stack);
                stack += eightbytes;
                Place::Stack {
                    index,
                    eightbytes: *eightbytes,
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn integer(eightbytes: u8) -> Abi {
        Abi::Integer {
            eightbytes,
            fields: Vec::new(),
        }
    }

    #[test]
    fn floats_take_no_integer_slot_and_pairs_take_two() {
        let params = [Abi::Sse, integer(1), integer(2), integer(1)];
        assert_eq!(
            places(&params, false),
            [
                Place::Xmm,
                Place::Slots { index: 0, count: 1 },
                Place::Slots { index: 1, count: 2 },
                Place::Slots { index: 3, count: 1 },
            ]
        );
    }

    #[test]
    fn a_large_return_value_takes_the_first_slot() {
        assert_eq!(
            places(&[integer(1)], true),
            [Place::Slots { index: 1, count: 1 }]
        );
    }

    #[test]
    fn memory_aggregates_and_overflow_go_on_the_stack_in_order() {
        let params = [
            Abi::Memory { eightbytes: 4 },
            integer(1),
            integer(1),
            integer(1),
            integer(1),
            integer(1),
            // One register left: a pair goes whole onto the stack, after the big aggregate.
            integer(2),
            integer(1),
            integer(1),
        ];
        assert_eq!(
            places(&params, false),
            [
                Place::Stack {
                    index: 6,
                    eightbytes: 4
                },
                Place::Slots { index: 0, count: 1 },
                Place::Slots { index: 1, count: 1 },
                Place::Slots { index: 2, count: 1 },
                Place::Slots { index: 3, count: 1 },
                Place::Slots { index: 4, count: 1 },
                Place::Slots {
                    index: 10,
                    count: 2
                },
                Place::Slots { index: 5, count: 1 },
                Place::Slots {
                    index: 12,
                    count: 1
                },
            ]
        );
    }
}
