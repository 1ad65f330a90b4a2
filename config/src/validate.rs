//! Semantic checks that need nothing but the config itself. Every problem is reported, not
//! just the first.

use std::collections::HashSet;

use crate::{Config, MAX_ARG_INDEX, Problem};

pub(crate) fn validate(config: &Config) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut problem = |field: String, message: String| problems.push(Problem { field, message });
    if config.probes.is_empty() {
        problem(
            "probes".into(),
            "at least one probe target is needed".into(),
        );
    }
    for (t, target) in config.probes.iter().enumerate() {
        let target_field = format!("probes[{t}]");
        if target.functions.is_empty() {
            problem(
                format!("{target_field}.functions"),
                "at least one function is needed".into(),
            );
        }
        let mut symbols = HashSet::new();
        for (f, function) in target.functions.iter().enumerate() {
            let field = format!("{target_field}.functions[{f}]");
            if function.symbol.is_empty() {
                problem(format!("{field}.symbol"), "must not be empty".into());
            } else if !symbols.insert(function.symbol.as_str()) {
                problem(
                    format!("{field}.symbol"),
                    format!("`{}` is listed twice for this binary", function.symbol),
                );
            }
            let mut indexes = HashSet::new();
            let mut names = HashSet::new();
            for (a, arg) in function.args.iter().enumerate() {
                let field = format!("{field}.args[{a}]");
                if arg.index > MAX_ARG_INDEX {
                    problem(
                        format!("{field}.index"),
                        format!(
                            "{} is out of range: arguments 0..={MAX_ARG_INDEX} (RDI, RSI, RDX, \
                             RCX, R8, R9) can be captured",
                            arg.index
                        ),
                    );
                }
                if !indexes.insert(arg.index) {
                    problem(
                        format!("{field}.index"),
                        format!("argument {} is captured twice", arg.index),
                    );
                }
                if !names.insert(arg.attribute_name()) {
                    problem(
                        format!("{field}.name"),
                        format!(
                            "attribute `{}` is used twice in this function",
                            arg.attribute_name()
                        ),
                    );
                }
            }
            if let Some(ret) = &function.return_value
                && names.contains(ret.attribute_name())
            {
                problem(
                    format!("{field}.return.name"),
                    format!(
                        "attribute `{}` is also an argument's name",
                        ret.attribute_name()
                    ),
                );
            }
        }
    }
    problems
}
