//! Where the System V AMD64 calling convention puts each parameter of a function (§3.2.3), from
//! the classes DWARF gives its types: what an argument `index` in a config means.

use crate::probe::dwarf::{Abi, Param};

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

/// The place of each of `params`; `returns_in_memory` when the return value is (its hidden
/// pointer then takes RDI, the first slot).
pub fn places(params: &[Param], returns_in_memory: bool) -> Vec<Place> {
    let mut register = u8::from(returns_in_memory);
    // The next stack eightbyte, counted from slot 6.
    let mut stack: u64 = 0;
    let stack_slot =
        |stack: u64| u8::try_from(u64::from(INTEGER_REGISTERS) + stack).unwrap_or(u8::MAX);
    params
        .iter()
        .map(|param| match &param.ty.abi {
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
    use crate::probe::dwarf::TypeInfo;

    fn param(abi: Abi) -> Param {
        Param {
            name: None,
            ty: TypeInfo {
                c_name: String::new(),
                capture: None,
                abi,
                buffer: None,
            },
        }
    }

    fn integer(eightbytes: u8) -> Abi {
        Abi::Integer {
            eightbytes,
            fields: Vec::new(),
        }
    }

    #[test]
    fn floats_take_no_integer_slot_and_pairs_take_two() {
        let params = [
            param(Abi::Sse),
            param(integer(1)),
            param(integer(2)),
            param(integer(1)),
        ];
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
            places(&[param(integer(1))], true),
            [Place::Slots { index: 1, count: 1 }]
        );
    }

    #[test]
    fn memory_aggregates_and_overflow_go_on_the_stack_in_order() {
        let params = [
            param(Abi::Memory { eightbytes: 4 }),
            param(integer(1)),
            param(integer(1)),
            param(integer(1)),
            param(integer(1)),
            param(integer(1)),
            // One register left: a pair goes whole onto the stack, after the big aggregate.
            param(integer(2)),
            param(integer(1)),
            param(integer(1)),
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
