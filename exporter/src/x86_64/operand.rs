//! x86-64 operands: a general-purpose register, where a value is (a register, memory at an
//! offset from one, a constant), and an argument's operand as `sys/sdt.h` writes it
//! (`-4@%eax`, `8@-80(%rbx)`, `8@$5`). USDT notes and Go's register ABI both place values so.

use std::fmt;

/// A general-purpose register, as an operand names it (`%rax`, `%eax`, `%ax`, `%al`...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Register {
    Rax,
    Rdx,
    Rcx,
    Rbx,
    Rsi,
    Rdi,
    Rbp,
    Rsp,
    R8,
    R9,
    R10,
    R11,
    R12,
    R13,
    R14,
    R15,
}

impl Register {
    /// In the kernel side's numbering (the DWARF register numbers of x86-64).
    pub const ALL: [Register; 16] = [
        Self::Rax,
        Self::Rdx,
        Self::Rcx,
        Self::Rbx,
        Self::Rsi,
        Self::Rdi,
        Self::Rbp,
        Self::Rsp,
        Self::R8,
        Self::R9,
        Self::R10,
        Self::R11,
        Self::R12,
        Self::R13,
        Self::R14,
        Self::R15,
    ];

    /// The register any of its names (64, 32, 16 or 8 bits) refers to.
    fn from_name(name: &str) -> Option<Register> {
        let legacy = [
            ("ax", Self::Rax),
            ("dx", Self::Rdx),
            ("cx", Self::Rcx),
            ("bx", Self::Rbx),
            ("si", Self::Rsi),
            ("di", Self::Rdi),
            ("bp", Self::Rbp),
            ("sp", Self::Rsp),
        ];
        for (core, register) in legacy {
            let low8 = match core {
                "ax" | "dx" | "cx" | "bx" => format!("{}l", &core[..1]),
                _ => format!("{core}l"),
            };
            if [
                format!("r{core}"),
                format!("e{core}"),
                core.to_owned(),
                low8,
            ]
            .contains(&name.to_owned())
            {
                return Some(register);
            }
        }
        let number = name.strip_prefix('r')?;
        let digits = number.trim_end_matches(['d', 'w', 'b']);
        let n: usize = digits.parse().ok()?;
        (8..=15).contains(&n).then(|| Self::ALL[n])
    }

    /// The kernel side's number for it.
    pub fn number(self) -> u8 {
        Self::ALL.iter().position(|&r| r == self).unwrap_or(0) as u8
    }
}

impl fmt::Display for Register {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = format!("{self:?}").to_uppercase();
        f.write_str(&name)
    }
}

/// Where an argument's value is when the probe fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operand {
    Register(Register),
    /// `offset(%base)`: in memory.
    Memory {
        base: Register,
        offset: i32,
    },
    /// `$value`: the same at every firing.
    Constant(i64),
}

/// One argument as a note describes it: its size in bytes, whether it is signed, and where
/// it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArgOperand {
    pub size: u8,
    pub signed: bool,
    pub operand: Operand,
}

impl ArgOperand {
    /// Stands for an argument that is never read (one that cannot be, or a parameter no
    /// capture asks for): resolution refuses captures of it.
    pub const UNREAD: ArgOperand = ArgOperand {
        size: 8,
        signed: false,
        operand: Operand::Constant(0),
    };

    /// Parses `SIZE@OPERAND` as `sys/sdt.h` writes it for x86-64 (`-4@%eax`, `8@-80(%rbx)`,
    /// `8@$5`, `4@(%rdi)`); an indexed or symbolic operand is refused with the reason.
    pub fn parse(spec: &str) -> Result<ArgOperand, String> {
        let (size, operand) = spec
            .split_once('@')
            .ok_or_else(|| format!("`{spec}` has no `SIZE@` prefix"))?;
        let size: i8 = size
            .parse()
            .map_err(|_| format!("`{spec}`: `{size}` is not a size"))?;
        if ![1, 2, 4, 8].contains(&size.unsigned_abs()) {
            return Err(format!(
                "`{spec}`: {size} is not a size of 1, 2, 4 or 8 bytes"
            ));
        }
        let register = |name: &str| {
            name.strip_prefix('%')
                .and_then(Register::from_name)
                .ok_or_else(|| format!("`{spec}`: `{name}` is not a general-purpose register"))
        };
        let operand = if let Some(value) = operand.strip_prefix('$') {
            let value = parse_int(value).ok_or_else(|| {
                format!("`{spec}`: `{value}` is not a number (a symbol's address is not read)")
            })?;
            Operand::Constant(value)
        } else if operand.starts_with('%') {
            Operand::Register(register(operand)?)
        } else if let Some((offset, rest)) = operand.split_once('(') {
            let base = rest
                .strip_suffix(')')
                .ok_or_else(|| format!("`{spec}`: `(` without `)`"))?;
            if base.contains(',') {
                return Err(format!("`{spec}`: an indexed memory operand is not read"));
            }
            let offset = if offset.is_empty() {
                0
            } else {
                parse_int(offset)
                    .and_then(|o| i32::try_from(o).ok())
                    .ok_or_else(|| {
                        format!("`{spec}`: `{offset}` is not an offset (a symbol is not read)")
                    })?
            };
            Operand::Memory {
                base: register(base)?,
                offset,
            }
        } else {
            return Err(format!(
                "`{spec}`: `{operand}` is not an operand spanprobe reads"
            ));
        };
        Ok(ArgOperand {
            size: size.unsigned_abs(),
            signed: size < 0,
            operand,
        })
    }
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Register(register) => write!(f, "{register}"),
            Self::Memory { base, offset } => write!(f, "[{base}{offset:+}]"),
            Self::Constant(value) => write!(f, "constant {value}"),
        }
    }
}

fn parse_int(text: &str) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let value = match digits.strip_prefix("0x") {
        Some(hex) => i64::from_str_radix(hex, 16).ok()?,
        None => digits.parse().ok()?,
    };
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_operands_sdt_h_writes() {
        let arg = |spec| ArgOperand::parse(spec).unwrap();
        assert_eq!(
            arg("-4@%eax"),
            ArgOperand {
                size: 4,
                signed: true,
                operand: Operand::Register(Register::Rax)
            }
        );
        assert_eq!(arg("8@%r14").operand, Operand::Register(Register::R14));
        assert_eq!(arg("1@%r9b").operand, Operand::Register(Register::R9));
        assert_eq!(arg("2@%si").operand, Operand::Register(Register::Rsi));
        assert_eq!(arg("1@%dil").operand, Operand::Register(Register::Rdi));
        assert_eq!(arg("1@%bl").operand, Operand::Register(Register::Rbx));
        assert_eq!(
            arg("8@-80(%rbx)").operand,
            Operand::Memory {
                base: Register::Rbx,
                offset: -80
            }
        );
        assert_eq!(
            arg("4@(%rdi)").operand,
            Operand::Memory {
                base: Register::Rdi,
                offset: 0
            }
        );
        assert_eq!(arg("-8@$-5").operand, Operand::Constant(-5));
        assert_eq!(arg("8@$0x10").operand, Operand::Constant(16));
        assert!(!arg("8@%rdx").signed);
        for (spec, reason) in [
            ("8@(%rax,%rdx,8)", "indexed"),
            ("8@%xmm0", "not a general-purpose register"),
            ("3@%rax", "not a size"),
            ("%rax", "no `SIZE@`"),
            ("8@$sym", "not a number"),
            ("8@sym(%rip)", "not an offset"),
        ] {
            let error = ArgOperand::parse(spec).unwrap_err();
            assert!(error.contains(reason), "{spec}: {error}");
        }
        assert_eq!(Register::R14.number(), 14);
        assert_eq!(Register::Rdi.to_string(), "RDI");
    }
}
