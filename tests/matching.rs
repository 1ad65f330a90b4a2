//! Which functions a target's entries probe: an entry that names a function wins over a glob
//! that also matches it (one probe, one span per call), `exclude` leaves names out of a glob,
//! a function whose first instruction the kernel refuses is left out of a glob with a note and
//! refused when named, an `offset`/`address` inside an instruction is refused, and a USDT span
//! ends at whichever of its `until` probes fires.

mod support;

use serde_json::{Value, json};
use support::scenario::{Scenario, named};

/// `spanprobe check`'s output for `config`, which must pass.
async fn checked(s: &Scenario, config: &Value) -> String {
    s.check(config, 0).await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_entry_that_names_a_function_wins_over_a_glob_that_matches_it() {
    support::needs_root!();
    let s = Scenario::start().await;
    let program = s.c_program("matching");
    let functions = json!([
        { "symbol": "handle_*" },
        { "symbol": "handle_get", "args": [{ "index": 0, "name": "key", "type": "i32" }] },
    ]);
    let config = s.config(&program, functions);
    let report = checked(&s, &config).await;
    assert!(
        report.contains(
            "probes[0].functions[0].symbol: `handle_*` also matches 1 function that other \
             entries probe, left to them: `handle_get` (probes[0].functions[1])"
        ),
        "{report}"
    );
    assert!(report.contains("ok, 3 functions to probe"), "{report}");
    let (_, spans) = s
        .trace(&config, &[program.to_str().unwrap()])
        .exits(0)
        .await;
    // One span per call, each with the explicit entry's argument; no false "did not return".
    let gets = named(&spans, "handle_get");
    let mut keys: Vec<_> = gets.iter().map(|g| g.int_attr("key")).collect();
    keys.sort();
    assert_eq!(keys, [Some(0), Some(1), Some(2)]);
    for span in &spans {
        assert_ne!(
            span.span.status.as_ref().map(|s| s.code),
            Some(2),
            "{span:#?}"
        );
        assert!(span.span.parent_span_id.is_empty(), "{span:#?}");
    }
    assert_eq!(spans.len(), 9);
}

#[tokio::test(flavor = "multi_thread")]
async fn exclude_leaves_names_out_of_a_glob() {
    support::needs_root!();
    let s = Scenario::start().await;
    let program = s.c_program("matching");
    let config = s.config(
        &program,
        json!([{ "symbol": "handle_*", "exclude": ["handle_d*", "handle_set"] }]),
    );
    let (_, spans) = s
        .trace(&config, &[program.to_str().unwrap()])
        .exits(0)
        .await;
    assert_eq!(named(&spans, "handle_get").len(), 3);
    assert_eq!(spans.len(), 3);

    let typo = s.config(
        &program,
        json!([{ "symbol": "handle_*", "exclude": "handle_put" }]),
    );
    let errors = s.check(&typo, 2).await;
    assert!(
        errors.contains(
            "probes[0].functions[0].exclude: `handle_put` matches none of the functions \
             `handle_*` matches"
        ),
        "{errors}"
    );
    let not_a_glob = s.config(
        &program,
        json!([{ "symbol": "handle_get", "exclude": "x" }]),
    );
    let errors = s.check(&not_a_glob, 2).await;
    assert!(
        errors.contains("`exclude` leaves names out of a glob, and `handle_get` names one"),
        "{errors}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_function_the_kernel_cannot_probe_is_left_out_of_a_glob_and_refused_by_name() {
    support::needs_root!();
    let s = Scenario::start().await;
    let program = s.c_program("matching");
    let glob = s.config(&program, json!([{ "symbol": "spin_*" }]));
    let report = checked(&s, &glob).await;
    assert!(
        report.contains(
            "probes[0].functions[0].symbol: left out 1 function whose first instruction the \
             kernel cannot probe, for a LOCK prefix, which uprobes do not single-step: \
             `spin_lock` (`lock decl (%rdi)`)"
        ),
        "{report}"
    );
    // The rest of the glob attaches and is traced.
    let (_, spans) = s.trace(&glob, &[program.to_str().unwrap()]).exits(0).await;
    assert_eq!(named(&spans, "spin_unlock").len(), 1);
    assert_eq!(spans.len(), 1);

    let alone = s.config(&program, json!([{ "symbol": "spin_lock" }]));
    let errors = s.check(&alone, 2).await;
    assert!(
        errors.contains(
            "probes[0].functions[0].symbol: `spin_lock` cannot be probed: its first \
             instruction `lock decl (%rdi)` has a LOCK prefix"
        ),
        "{errors}"
    );
}

#[tokio::test]
async fn an_address_inside_an_instruction_is_refused() {
    let s = Scenario::start().await;
    let program = s.c_program("matching");
    let nm = std::process::Command::new("nm")
        .arg(&program)
        .output()
        .unwrap();
    let nm = String::from_utf8(nm.stdout).unwrap();
    let address = nm
        .lines()
        .find_map(|line| line.strip_suffix(" T handle_get"))
        .map(|hex| u64::from_str_radix(hex, 16).unwrap())
        .expect("handle_get in nm's list");
    // `lea 0x1(%rdi),%eax` is three bytes: one past the entry is inside it.
    let inside = s.config(&program, json!([{ "address": address + 1 }]));
    let errors = s.check(&inside, 2).await;
    assert!(
        errors.contains(&format!(
            "probes[0].functions[0].address: address {:#x} is inside an instruction of \
             `handle_get` (at +0x1)",
            address + 1
        )),
        "{errors}"
    );
    checked(&s, &s.config(&program, json!([{ "address": address }]))).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_usdt_span_ends_at_whichever_until_probe_fires() {
    support::needs_root!();
    let s = Scenario::start().await;
    let program = s.c_program("matching");
    let config = json!({
        "exporter": { "otlp": { "endpoint": s.receiver.grpc_endpoint() } },
        "probes": [{
            "binary": program,
            "usdt": [{
                "probe": "app:tx__begin",
                "until": ["app:tx__commit", "app:tx__abort"],
                "args": [{ "index": 0, "name": "tx" }],
                "until_args": [{ "index": 0, "name": "ended" }],
            }],
        }],
    });
    let (_, spans) = s
        .trace(&config, &[program.to_str().unwrap()])
        .exits(0)
        .await;
    let mut ended: Vec<_> = spans
        .iter()
        .map(|span| (span.int_attr("tx"), span.int_attr("ended")))
        .collect();
    ended.sort();
    assert_eq!(ended, [(Some(1), Some(1)), (Some(2), Some(2))]);
}
