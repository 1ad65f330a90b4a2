//! The sidecar stack and the Kubernetes manifests: there is no Docker engine nor cluster here, so
//! the files are checked for what they promise: docker-compose.yml is valid, the image's entry
//! command and the mounted config exist in the repository, the configs pass `spanprobe check`
//! (the DaemonSet's against a process running its executable in namespaces of its own), the
//! manifests match the Kubernetes API's schema, and their objects and collector configs refer
//! to one another consistently.

mod support;

use std::{
    collections::BTreeMap,
    io::{BufRead as _, BufReader, Write as _},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
};

use serde_json::Value;

use support::scenario::Workdir;

fn read(path: &str) -> String {
    std::fs::read_to_string(support::repo_root().join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Runs `spanprobe check` on `config` (written into `dir`), asserts it passes, returns its report.
fn check_passes(dir: &Workdir, config: &str) -> String {
    check_passes_with(dir, config, &[])
}

/// [`check_passes`] with environment variables `env` set.
fn check_passes_with(dir: &Workdir, config: &str, env: &[(&str, &str)]) -> String {
    let path = dir.write_yaml(config);
    let output = Command::new(support::spanprobe())
        .args(["check", "-c"])
        .arg(&path)
        .envs(env.iter().copied())
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

const DAEMONSET: &str = "examples/kubernetes/spanprobe-daemonset.yaml";
const GATEWAY: &str = "examples/kubernetes/collector-gateway.yaml";

/// The application the DaemonSet's config traces: `handle_request` fails (-1) on every seventh
/// request id. It handles one, says `ready`, then stays until its standard input closes.
const APP_SOURCE: &str = r#"#include <stdint.h>
#include <unistd.h>
__attribute__((noinline, noipa)) int handle_request(uint64_t request_id) {
    return request_id % 7 == 0 ? -1 : 0;
}
int main(void) {
    char byte;
    handle_request(1);
    write(1, "ready\n", 6);
    while (read(0, &byte, 1) > 0) {
    }
    return 0;
}
"#;

/// [`APP_SOURCE`] in a container of its own, as a pod runs it: a static build at `executable`
/// in a root directory holding nothing else, pid 1 of new mount and pid namespaces. Killed
/// when dropped: `unshare --kill-child` takes it along.
struct App {
    unshare: Child,
}

impl App {
    fn start(dir: &Path, executable: &str) -> App {
        let root = dir.join("root");
        let in_root = root.join(executable.strip_prefix('/').expect("an absolute path"));
        let (bin, name) = (in_root.parent().unwrap(), in_root.file_name().unwrap());
        std::fs::create_dir_all(bin).unwrap();
        let source = dir.join("app.c");
        std::fs::write(&source, APP_SOURCE).unwrap();
        support::compile_c(&source, bin, name.to_str().unwrap(), &["-static"]);
        let mut app = App {
            unshare: Command::new("unshare")
                .args(["--mount", "--pid", "--fork", "--kill-child"])
                .arg(format!("--root={}", root.display()))
                .arg(executable)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("unshare runs"),
        };
        let mut line = String::new();
        BufReader::new(app.unshare.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line, "ready\n");
        app
    }

    /// Its pid on the host: the one child of `unshare --fork`.
    fn pid(&self) -> u32 {
        let unshare = self.unshare.id();
        std::fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

/// The value of the first `key: value` line of `yaml` whose key is `key`, without a comment.
fn yaml_line_value<'a>(yaml: &'a str, key: &str) -> &'a str {
    yaml.lines()
        .find_map(|line| {
            line.trim_start()
                .trim_start_matches("- ")
                .strip_prefix(&format!("{key}: "))
        })
        .and_then(|value| value.split(" #").next())
        .unwrap_or_else(|| panic!("no `{key}:` in\n{yaml}"))
        .trim()
}

#[test]
fn the_daemonset_config_checks_and_the_pod_sees_the_host() {
    let manifest = read(DAEMONSET);
    for needle in [
        "kind: DaemonSet",
        "hostPID: true",
        "add: [BPF, PERFMON, SYS_PTRACE]",
        "drop: [ALL]",
        "- operator: Exists",
        "imagePullPolicy: IfNotPresent",
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
    // An `executable:` target checks only when a process runs it: the app the config names, in
    // a container's namespaces, at a path the host need not have.
    support::needs_root!("it runs the traced app in mount and pid namespaces of its own");
    let executable = yaml_line_value(&block, "executable");
    assert_eq!(yaml_line_value(&block, "symbol"), "handle_request");
    // The resource attributes the container's environment adds, as the kubelet expands them.
    let attributes = manifest
        .lines()
        .skip_while(|l| !l.contains("name: OTEL_RESOURCE_ATTRIBUTES"))
        .nth(1)
        .and_then(|l| l.trim().strip_prefix("value: "))
        .expect("the DaemonSet sets OTEL_RESOURCE_ATTRIBUTES")
        .replace("$(NODE_NAME)", "node-1");
    let dir = Workdir::new();
    let app = App::start(dir.path(), executable);
    let report = check_passes_with(
        &dir,
        &block,
        &[("OTEL_RESOURCE_ATTRIBUTES", attributes.as_str())],
    );
    assert!(report.contains("ok, 1 function to probe"), "{report}");
    // Found through the app's own root, as spanprobe finds a pod's program.
    let found = format!("/proc/{}/root{executable}", app.pid());
    assert!(report.contains(&found), "{found} not in {report}");
}

/// The venv where scripts/setup.sh installs kubernetes-validate, and PyYAML with it: `bin/NAME`.
fn validator_venv(name: &str) -> PathBuf {
    let path = support::repo_root()
        .join("target/kubernetes-validate/bin")
        .join(name);
    assert!(
        path.exists(),
        "{} missing: run scripts/setup.sh",
        path.display()
    );
    path
}

/// Kubernetes releases whose schemas the manifests must match: 1.30, the first with the
/// container's `securityContext.appArmorProfile`, and the newest the validator bundles.
const KUBERNETES_VERSIONS: [&str; 2] = ["1.30.0", "1.37.0"];

/// Validates `file` against Kubernetes `version`'s schemas, strictly (an unknown field is an
/// error): the `kind/name` of each object that passed, or all the validator said. An object
/// whose kind it has no schema for is only a warning to it, and a failure here.
fn validate(version: &str, file: &Path) -> Result<Vec<String>, String> {
    let output = Command::new(validator_venv("kubernetes-validate"))
        .args(["--strict", "--kubernetes-version", version])
        .arg(file)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if !output.status.success() || said.lines().any(|line| !line.starts_with("INFO ")) {
        return Err(said);
    }
    Ok(said
        .lines()
        .filter_map(|line| line.split(" passed for resource ").nth(1))
        .filter_map(|rest| rest.split(' ').next())
        .map(str::to_owned)
        .collect())
}

/// The documents of `yaml`, read by PyYAML (the tests have no YAML reader of their own).
fn yaml_documents(yaml: &str) -> Vec<Value> {
    let mut python = Command::new(validator_venv("python"))
        .args([
            "-c",
            "import json, sys, yaml\n\
             json.dump([d for d in yaml.safe_load_all(sys.stdin) if d is not None], sys.stdout)",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    python
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    let output: Output = python.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}\n{yaml}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn kind_and_name(object: &Value) -> String {
    format!(
        "{}/{}",
        object["kind"].as_str().unwrap().to_lowercase(),
        object["metadata"]["name"].as_str().unwrap()
    )
}

/// Offline: the schemas are kubernetes-validate's own. Each object of both files must pass,
/// and a misspelt field or kind must not, or the validator would pass anything.
#[test]
fn the_manifests_match_the_kubernetes_schemas() {
    for file in [DAEMONSET, GATEWAY] {
        let path = support::repo_root().join(file);
        let mut objects: Vec<String> = yaml_documents(&read(file))
            .iter()
            .map(kind_and_name)
            .collect();
        objects.sort();
        for version in KUBERNETES_VERSIONS {
            let mut passed = validate(version, &path)
                .unwrap_or_else(|said| panic!("{file} against Kubernetes {version}:\n{said}"));
            passed.sort();
            assert_eq!(passed, objects, "{file} against Kubernetes {version}");
        }
    }

    let dir = Workdir::new();
    let manifest = read(DAEMONSET);
    for (right, wrong, said) in [
        (
            "imagePullPolicy: IfNotPresent",
            "imagePullPolice: IfNotPresent",
            "'imagePullPolice' was unexpected",
        ),
        (
            "kind: DaemonSet",
            "kind: DaemonSett",
            "Couldn't find schema",
        ),
    ] {
        assert!(manifest.contains(right), "{DAEMONSET} lacks {right:?}");
        let path = dir.path().join("mistaken.yaml");
        std::fs::write(&path, manifest.replace(right, wrong)).unwrap();
        let error = validate(KUBERNETES_VERSIONS[1], &path)
            .expect_err(&format!("{wrong:?} passed validation"));
        assert!(error.contains(said), "{wrong:?}: {error}");
    }
}

/// Both manifests' objects by `kind/name`; the Namespace both declare, declared alike.
fn manifest_objects() -> BTreeMap<String, Value> {
    let mut objects = BTreeMap::new();
    for file in [DAEMONSET, GATEWAY] {
        for object in yaml_documents(&read(file)) {
            let key = kind_and_name(&object);
            if let Some(before) = objects.insert(key.clone(), object.clone()) {
                assert!(
                    key.starts_with("namespace/") && before == object,
                    "{key} declared twice, differently"
                );
            }
        }
    }
    objects
}

/// The strings of a JSON array, or none.
fn strings(value: &Value) -> Vec<&str> {
    value.as_array().map_or_else(Vec::new, |items| {
        items.iter().filter_map(Value::as_str).collect()
    })
}

/// The Service an endpoint (`[scheme://]name.namespace[.svc.cluster.local]:port`, or a k8s
/// resolver's `name.namespace` and `port`) names, asserting it exists and has that port.
fn service_at<'a>(objects: &'a BTreeMap<String, Value>, host: &str, port: u64) -> &'a Value {
    let host = host.split_once("://").map_or(host, |(_, rest)| rest);
    let host = host.strip_suffix(".svc.cluster.local").unwrap_or(host);
    let (name, namespace) = host.split_once('.').expect("name.namespace");
    let service = objects
        .get(&format!("service/{name}"))
        .unwrap_or_else(|| panic!("no Service {name} for {host}"));
    assert_eq!(service["metadata"]["namespace"], namespace, "{host}");
    let ports: Vec<u64> = service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["port"].as_u64())
        .collect();
    assert!(ports.contains(&port), "Service {name} has no port {port}");
    service
}

fn endpoint_service<'a>(objects: &'a BTreeMap<String, Value>, endpoint: &str) -> &'a Value {
    let (host, port) = endpoint.rsplit_once(':').expect("host:port");
    service_at(objects, host, port.parse().expect("a port number"))
}

/// The Deployments and DaemonSets.
fn workloads(objects: &BTreeMap<String, Value>) -> impl Iterator<Item = &Value> {
    objects
        .values()
        .filter(|o| matches!(o["kind"].as_str(), Some("Deployment" | "DaemonSet")))
}

/// What the manifests promise each other, which neither the schema nor a cluster's API server
/// checks, but the first span to arrive would: each Service selects a workload and reaches a
/// port it names; each endpoint a config sends to is such a Service; each collector config's
/// pipelines use the components it declares, and it is the one its container loads; the
/// load-balancing tier resolves the sampling tier's headless Service with the rights to; the
/// sampling tier keeps errors and slow traces.
#[test]
fn the_manifests_and_collector_configs_refer_to_each_other() {
    let objects = manifest_objects();
    for (key, object) in &objects {
        // Where every name below is looked up.
        if !key.starts_with("namespace/") {
            assert_eq!(object["metadata"]["namespace"], "observability", "{key}");
        }
    }

    // The collector configs, by ConfigMap name, with the workload that mounts each one.
    let mut collectors: BTreeMap<&str, (Value, &Value)> = BTreeMap::new();
    for workload in workloads(&objects) {
        let name = workload["metadata"]["name"].as_str().unwrap();
        let template = &workload["spec"]["template"];
        for (label, value) in workload["spec"]["selector"]["matchLabels"]
            .as_object()
            .unwrap()
        {
            assert_eq!(&template["metadata"]["labels"][label], value, "{name}");
        }
        let pod = &template["spec"];
        if let Some(account) = pod["serviceAccountName"].as_str() {
            assert!(
                objects.contains_key(&format!("serviceaccount/{account}")),
                "{name} runs as a missing ServiceAccount {account}"
            );
        }
        for container in pod["containers"].as_array().unwrap() {
            let image = container["image"].as_str().unwrap();
            // After the last colon, unless that is a registry's port.
            let tag = image.rsplit_once(':').map(|(_, tag)| tag);
            assert!(
                tag.is_some_and(|tag| tag != "latest" && !tag.contains('/')),
                "{name}: {image} is not pinned"
            );
            let args = strings(&container["args"]);
            let env: Vec<&str> = container["env"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|variable| variable["name"].as_str())
                .collect();
            for mount in container["volumeMounts"].as_array().into_iter().flatten() {
                let volume = pod["volumes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|v| v["name"] == mount["name"])
                    .unwrap();
                let Some(config_map) = volume["configMap"]["name"].as_str() else {
                    continue;
                };
                let data =
                    objects
                        .get(&format!("configmap/{config_map}"))
                        .unwrap_or_else(|| {
                            panic!("{name} mounts a missing ConfigMap {config_map}")
                        })["data"]
                        .as_object()
                        .unwrap();
                let mount_path = mount["mountPath"].as_str().unwrap();
                let loaded = data
                    .keys()
                    .find(|key| {
                        let file = format!("{mount_path}/{key}");
                        args.iter()
                            .any(|arg| *arg == file || arg.ends_with(&format!("={file}")))
                    })
                    .unwrap_or_else(|| panic!("{name} loads no file of {config_map}: {args:?}"));
                let text = data[loaded].as_str().unwrap();
                // The collector expands `${env:NAME}` from its container's environment.
                for reference in text.split("${env:").skip(1) {
                    let variable = reference.split('}').next().unwrap();
                    assert!(env.contains(&variable), "{name} does not set {variable}");
                }
                if loaded == "config.yaml" {
                    let config = yaml_documents(text).remove(0);
                    collectors.insert(config_map, (config, workload));
                }
            }
        }
    }

    for service in objects.values().filter(|o| o["kind"] == "Service") {
        let name = service["metadata"]["name"].as_str().unwrap();
        let selector = service["spec"]["selector"].as_object().unwrap();
        let selected: Vec<&Value> = workloads(&objects)
            .filter(|w| {
                selector
                    .iter()
                    .all(|(k, v)| &w["spec"]["template"]["metadata"]["labels"][k] == v)
            })
            .collect();
        assert_eq!(selected.len(), 1, "Service {name} selects {selected:?}");
        let containers = selected[0]["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap();
        for port in service["spec"]["ports"].as_array().unwrap() {
            assert!(
                containers
                    .iter()
                    .flat_map(|c| c["ports"].as_array().into_iter().flatten())
                    .any(|p| p["name"] == port["targetPort"]),
                "Service {name}: no container port named {}",
                port["targetPort"]
            );
        }
    }

    // spanprobe sends to the load-balancing tier.
    let spanprobe = yaml_documents(
        objects["configmap/spanprobe"]["data"]["spanprobe.yaml"]
            .as_str()
            .unwrap(),
    )
    .remove(0);
    let endpoint = spanprobe["exporter"]["otlp"]["endpoint"].as_str().unwrap();
    assert_eq!(
        endpoint_service(&objects, endpoint)["metadata"]["name"],
        "otel-gateway"
    );

    assert_eq!(
        collectors.keys().copied().collect::<Vec<_>>(),
        ["otel-gateway", "otel-sampler"]
    );
    for (name, (config, _)) in &collectors {
        let service = &config["service"];
        let mut used = Vec::new();
        for (pipeline, stages) in service["pipelines"].as_object().unwrap() {
            for section in ["receivers", "processors", "exporters"] {
                for component in strings(&stages[section]) {
                    assert!(
                        config[section].get(component).is_some(),
                        "{name}: {pipeline} uses {component}, not among its {section}"
                    );
                    used.push(component);
                }
            }
        }
        for section in ["receivers", "processors", "exporters"] {
            for declared in config[section].as_object().unwrap().keys() {
                assert!(
                    used.contains(&declared.as_str()),
                    "{name}: {declared} unused"
                );
            }
        }
        let mut extensions: Vec<&String> =
            config["extensions"].as_object().unwrap().keys().collect();
        extensions.sort();
        assert_eq!(strings(&service["extensions"]), extensions, "{name}");
        // Listening on localhost, the collector's default, a Service would not reach it.
        for (receiver, settings) in config["receivers"].as_object().unwrap() {
            for (protocol, settings) in settings["protocols"].as_object().unwrap() {
                let listen = settings["endpoint"].as_str().unwrap_or("localhost");
                assert!(
                    listen.starts_with("${env:") || listen.starts_with("0.0.0.0:"),
                    "{name}: {receiver} {protocol} listens on {listen}"
                );
            }
        }
        for exporter in config["exporters"].as_object().unwrap().values() {
            if let Some(endpoint) = exporter["endpoint"].as_str() {
                endpoint_service(&objects, endpoint);
            }
        }
    }

    // The load-balancing tier routes whole traces to the sampling tier's pods, which it finds
    // through the API with its own ServiceAccount's rights.
    let (gateway, gateway_workload) = &collectors["otel-gateway"];
    let balancing = &gateway["exporters"]["loadbalancing"];
    assert_eq!(balancing["routing_key"], "traceID", "{balancing}");
    let resolver = &balancing["resolver"]["k8s"];
    for port in resolver["ports"].as_array().unwrap() {
        let service = service_at(
            &objects,
            resolver["service"].as_str().unwrap(),
            port.as_u64().unwrap(),
        );
        assert_eq!(service["spec"]["clusterIP"], "None", "not headless");
        assert_eq!(service["metadata"]["name"], "otel-sampler");
    }
    let account = &gateway_workload["spec"]["template"]["spec"]["serviceAccountName"];
    let rules: Vec<&Value> = objects
        .values()
        .filter(|o| {
            o["kind"] == "RoleBinding"
                && o["subjects"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|s| s["kind"] == "ServiceAccount" && &s["name"] == account)
        })
        .flat_map(|binding| {
            let role = &objects[&format!("role/{}", binding["roleRef"]["name"].as_str().unwrap())];
            role["rules"].as_array().unwrap()
        })
        .collect();
    for (group, resource) in [("", "endpoints"), ("discovery.k8s.io", "endpointslices")] {
        assert!(
            rules.iter().any(|rule| {
                strings(&rule["apiGroups"]).contains(&group)
                    && strings(&rule["resources"]).contains(&resource)
                    && ["get", "list", "watch"]
                        .iter()
                        .all(|verb| strings(&rule["verbs"]).contains(verb))
            }),
            "the gateway cannot watch {resource}: {rules:?}"
        );
    }

    // The sampling tier: memory first, then the decision on whole traces, then batching.
    let (sampler, _) = &collectors["otel-sampler"];
    assert_eq!(
        strings(&sampler["service"]["pipelines"]["traces"]["processors"]),
        ["memory_limiter", "tail_sampling", "batch"]
    );
    let policies = sampler["processors"]["tail_sampling"]["policies"]
        .as_array()
        .unwrap();
    let policy = |kind: &str| {
        policies
            .iter()
            .find(|p| p["type"] == kind)
            .unwrap_or_else(|| panic!("no {kind} policy"))
            .get(kind)
            .unwrap()
            .clone()
    };
    let errors = policy("status_code");
    assert_eq!(strings(&errors["status_codes"]), ["ERROR"], "{errors}");
    let slow = policy("latency");
    assert!(slow["threshold_ms"].as_u64().is_some(), "{slow}");
    let baseline = policy("probabilistic");
    assert!(
        baseline["sampling_percentage"].as_f64().is_some(),
        "{baseline}"
    );
    // Jaeger's UI, beside the OTLP port the sampler sends to.
    service_at(&objects, "jaeger.observability", 16686);
}
