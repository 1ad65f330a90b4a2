//! Where Go's register ABI (ABIInternal, Go 1.17 and later on amd64) puts each parameter of a
//! function: its integer words in RAX, RBX, RCX, RDI, RSI, R8, R9, R10, R11 in turn, its
//! floating-point words in X0..X14; a parameter whose words do not all fit goes on the stack,
//! and the registers it would have taken stay free for the next one.

use crate::probe::{
    dwarf::go::{GoParam, GoWord},
    usdt::Register,
};

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

/// The place of each of `params`, in order.
pub fn places(params: &[GoParam]) -> Vec<GoPlace> {
    let (mut integer, mut float) = (0, 0);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn param(words: Option<Vec<GoWord>>) -> GoParam {
        GoParam {
            name: None,
            go_type: String::new(),
            capture: None,
            words,
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
