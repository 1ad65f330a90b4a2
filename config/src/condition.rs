//! `error_when` conditions on a return value, such as `< 0` or `== -1`.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, de};

/// A comparison of a return value with a constant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Condition {
    pub op: Comparison,
    pub value: i128,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Comparison {
    const ALL: [(Comparison, &'static str); 6] = [
        (Comparison::Le, "<="),
        (Comparison::Ge, ">="),
        (Comparison::Eq, "=="),
        (Comparison::Ne, "!="),
        (Comparison::Lt, "<"),
        (Comparison::Gt, ">"),
    ];

    pub(crate) fn symbol(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(op, _)| *op == self)
            .map_or("?", |(_, s)| s)
    }
}

impl Condition {
    /// Whether `value` (the decoded return value, widened) meets the condition.
    pub fn holds(&self, value: i128) -> bool {
        match self.op {
            Comparison::Lt => value < self.value,
            Comparison::Le => value <= self.value,
            Comparison::Gt => value > self.value,
            Comparison::Ge => value >= self.value,
            Comparison::Eq => value == self.value,
            Comparison::Ne => value != self.value,
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.op.symbol(), self.value)
    }
}

impl FromStr for Condition {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let (op, rest) = split_comparison(text).map_err(|what| {
            format!("{what}; write one of <, <=, >, >=, ==, != and a number, e.g. `< 0`")
        })?;
        let number = rest.trim();
        let value = parse_integer(number)
            .ok_or_else(|| format!("`{number}` in `{text}` is not an integer"))?;
        Ok(Self { op, value })
    }
}

/// The comparison `text` starts with, and what follows it; what is wrong otherwise. The
/// operator is every sign before the operand: `<>` is one wrong operator, not `<` followed by
/// a wrong operand `> 0`.
pub(crate) fn split_comparison(text: &str) -> Result<(Comparison, &str), String> {
    let operand_at = text
        .find(|c: char| !"<>=!".contains(c))
        .unwrap_or(text.len());
    let (symbol, rest) = text.split_at(operand_at);
    let op = Comparison::ALL
        .iter()
        .find(|(_, known)| *known == symbol)
        .map(|(op, _)| *op)
        .ok_or_else(|| {
            if symbol.is_empty() {
                format!("`{text}` is not a comparison")
            } else {
                format!("`{symbol}` in `{text}` is not a comparison")
            }
        })?;
    Ok((op, rest))
}

/// Decimal or `0x` hexadecimal, optionally negative.
pub(crate) fn parse_integer(text: &str) -> Option<i128> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let magnitude = match digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        Some(hex) => i128::from_str_radix(hex, 16).ok()?,
        None => digits.parse::<i128>().ok()?,
    };
    Some(if negative { -magnitude } else { magnitude })
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_comparison() {
        for (text, op, value) in [
            ("< 0", Comparison::Lt, 0),
            ("<=-1", Comparison::Le, -1),
            ("> 10", Comparison::Gt, 10),
            (">= 0x10", Comparison::Ge, 16),
            ("== -1", Comparison::Eq, -1),
            ("!= 0", Comparison::Ne, 0),
        ] {
            assert_eq!(
                text.parse::<Condition>(),
                Ok(Condition { op, value }),
                "{text}"
            );
        }
    }

    #[test]
    fn evaluates() {
        let negative: Condition = "< 0".parse().unwrap();
        assert!(negative.holds(-22));
        assert!(!negative.holds(0));
        let minus_one: Condition = "== -1".parse().unwrap();
        assert!(minus_one.holds(-1));
        assert!(!minus_one.holds(1));
        assert_eq!(minus_one.to_string(), "== -1");
    }

    #[test]
    fn refuses_nonsense() {
        assert!(
            "0".parse::<Condition>()
                .unwrap_err()
                .contains("not a comparison")
        );
        assert_eq!(
            "< zero".parse::<Condition>().unwrap_err(),
            "`zero` in `< zero` is not an integer"
        );
    }
}
