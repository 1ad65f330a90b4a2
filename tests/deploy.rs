//! The sidecar stack and the Kubernetes manifest: there is no Docker engine here, so the files
//! are checked for what they promise: docker-compose.yml is valid, the image's entry command
//! and the mounted config exist in the repository, and the configs pass `spanprobe check`.

mod support;

use std::process::Command;

use support::scenario::Workdir;

fn read(path: &str) -> String {
    std::fs::read_to_string(support::repo_root().join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Runs `spanprobe check` on `config` (written into `dir`), asserts it passes, returns its report.
fn check_passes(dir: &Workdir, config: &str) -> String {
    let path = dir.write_yaml(config);
    let output = Command::new(support::spanprobe())
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}\n{config}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn compose_file_is_valid_and_runs_spanprobe_with_least_privilege() {
    let output = Command::new("docker-compose")
        .current_dir(support::repo_root())
        .args(["-f", "docker-compose.yml", "config"])
        .output()
        .expect("docker-compose runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let resolved = String::from_utf8_lossy(&output.stdout);
    // docker-compose prints the resolved file in its long syntax.
    for needle in [
        "published: 16686",
        "published: 4317",
        "published: 4318",
        "pid: host",
        "- BPF",
        "- PERFMON",
        "- ALL",
        "target: spanprobe",
        "target: demo",
        "- demo-bin:/opt/demo:ro",
    ] {
        assert!(
            resolved.contains(needle),
            "docker-compose config lacks {needle:?}:\n{resolved}"
        );
    }
    assert!(!resolved.contains("SYS_ADMIN"), "{resolved}");
}

/// The image builds with the compiler the workspace pins, not whatever a tag points to.
#[test]
fn the_image_builds_with_the_pinned_toolchain() {
    let pinned = read("rust-toolchain.toml")
        .lines()
        .find_map(|line| line.strip_prefix("channel = "))
        .map(|channel| channel.trim_matches('"').to_owned())
        .expect("rust-toolchain.toml has a channel");
    assert!(
        read("Dockerfile").contains(&format!("FROM rust:{pinned}-bookworm AS build")),
        "the Dockerfile's build stage is not rust:{pinned}"
    );
}

#[test]
fn the_image_entry_command_and_mounted_config_exist_and_check() {
    let dockerfile = read("Dockerfile");
    assert!(dockerfile.contains("FROM debian:bookworm-slim AS spanprobe"));
    assert!(dockerfile.contains("ENTRYPOINT [\"/usr/local/bin/spanprobe\"]"));
    assert!(
        dockerfile
            .contains("COPY --from=build /src/target/release/spanprobe /usr/local/bin/spanprobe")
    );
    assert!(dockerfile.contains("COPY --from=build /src/examples/demo/demo /opt/demo/demo"));
    let compose = read("docker-compose.yml");
    assert!(compose.contains("./examples/compose/spanprobe.yaml:/etc/spanprobe/spanprobe.yaml:ro"));
    assert!(
        dockerfile.contains("\"/etc/spanprobe/spanprobe.yaml\"")
            && compose.contains("/etc/spanprobe/spanprobe.yaml")
    );

    // The mounted config, with the demo where this machine has it, passes check.
    let dir = Workdir::new();
    let demo = dir.demo();
    let config =
        read("examples/compose/spanprobe.yaml").replace("/opt/demo/demo", demo.to_str().unwrap());
    let report = check_passes(&dir, &config);
    assert!(report.contains("ok, 4 functions to probe"), "{report}");
}

#[test]
fn the_daemonset_config_checks_and_the_pod_sees_the_host() {
    let manifest = read("examples/kubernetes/spanprobe-daemonset.yaml");
    for needle in [
        "kind: DaemonSet",
        "hostPID: true",
        "add: [BPF, PERFMON]",
        "drop: [ALL]",
    ] {
        assert!(manifest.contains(needle), "manifest lacks {needle:?}");
    }
    // The ConfigMap's spanprobe.yaml block, de-indented.
    let block: String = manifest
        .lines()
        .skip_while(|l| !l.contains("spanprobe.yaml: |"))
        .skip(1)
        .take_while(|l| l.starts_with("    ") || l.is_empty())
        .map(|l| format!("{}\n", l.get(4..).unwrap_or("")))
        .collect();
    check_passes(&Workdir::new(), &block);
}
