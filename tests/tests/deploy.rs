//! The deployment files (`Dockerfile`, `docker-compose.yml`, `deploy/`) and the operations
//! guide, checked the way an operator would trip over them: the Kubernetes manifests against
//! Kubernetes' schemas (`kubernetes-validate`, rendered by `kubectl kustomize` when there is
//! one), the compose file against the compose spec, the Dockerfile with hadolint (all pinned in
//! `tests/tools/requirements.txt`, installed by `scripts/setup-test-deps`), then the properties
//! a user would notice. Every setting name is taken from the gateway itself
//! (`layer-mcp-gateway settings`), never copied here, so a setting added later and missing
//! from `docs/operations.md`, or a variable the manifests set that the gateway does not read,
//! fails a test.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use e2e_tests::gateway::{GatewayOptions, GatewayProcess};
use e2e_tests::paths::{binary, workspace_root};
use e2e_tests::sim::TestSim;
use serde_json::Value;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn root() -> PathBuf {
    workspace_root()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// A validator from `tests/tools/.venv` (scripts/setup-test-deps installs it).
fn tool(name: &str) -> PathBuf {
    let path = root().join("tests/tools/.venv/bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/setup-test-deps",
        path.display()
    );
    path
}

/// Runs a command; its exit status and everything it printed.
fn run(command: &mut Command) -> (bool, String) {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {command:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// A scratch directory for this test binary, emptied first.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("deploy-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every document of a YAML text, as JSON (PyYAML from the tools venv: anchors and merge
/// keys resolved as compose and Kubernetes resolve them).
fn yaml_docs(text: &str) -> Vec<Value> {
    let mut child = Command::new(tool("python"))
        .args([
            "-c",
            "import sys, json, yaml; print(json.dumps([d for d in yaml.safe_load_all(sys.stdin) if d is not None]))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "YAML does not parse: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn has_kubectl() -> bool {
    Command::new("kubectl")
        .args(["version", "--client"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The manifests a kustomization renders to: `kubectl kustomize` when kubectl is installed;
/// otherwise its `resources` and `components`, followed by hand (what ours use; overlays that
/// patch need kubectl).
fn render(dir: &str) -> String {
    if has_kubectl() {
        let (ok, text) = run(Command::new("kubectl")
            .arg("kustomize")
            .arg(root().join(dir)));
        assert!(ok, "kubectl kustomize {dir} failed:\n{text}");
        return text;
    }
    let mut out = String::new();
    render_by_hand(&root().join(dir), &mut out);
    out
}

fn render_by_hand(dir: &Path, out: &mut String) {
    let text = std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap();
    let kustomization = &yaml_docs(&text)[0];
    for list in ["resources", "components"] {
        for entry in kustomization[list].as_array().into_iter().flatten() {
            let path = dir.join(entry.as_str().unwrap());
            if path.is_dir() {
                render_by_hand(&path, out);
            } else {
                out.push_str("---\n");
                out.push_str(&std::fs::read_to_string(&path).unwrap());
                out.push('\n');
            }
        }
    }
}

/// The three ways to apply the set: everything (with the in-cluster Redis), the gateway
/// with an external Redis, and the base alone.
const KUSTOMIZATIONS: &[&str] = &[
    "deploy/kubernetes",
    "deploy/kubernetes/overlays/external-redis",
    "deploy/kubernetes/base",
];

fn manifests() -> Vec<Value> {
    yaml_docs(&render("deploy/kubernetes"))
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the rendered manifests"))
}

fn gateway_deployment(docs: &[Value]) -> &Value {
    find(docs, "Deployment", "layer-mcp-gateway")
}

fn gateway_container(deployment: &Value) -> &Value {
    deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "gateway")
        .expect("a container named gateway")
}

/// Every variable the gateway container gets: the ConfigMaps it imports, then its own `env`
/// (value or `valueFrom`).
fn gateway_env(docs: &[Value]) -> BTreeMap<String, Value> {
    let container = gateway_container(gateway_deployment(docs));
    let mut env = BTreeMap::new();
    for source in container["envFrom"].as_array().into_iter().flatten() {
        let name = source["configMapRef"]["name"]
            .as_str()
            .expect("envFrom only from ConfigMaps");
        let map = find(docs, "ConfigMap", name);
        for (k, v) in map["data"].as_object().unwrap() {
            env.insert(k.clone(), v.clone());
        }
    }
    for var in container["env"].as_array().into_iter().flatten() {
        let value = if var.get("valueFrom").is_some() {
            var["valueFrom"].clone()
        } else {
            var["value"].clone()
        };
        env.insert(var["name"].as_str().unwrap().to_owned(), value);
    }
    env
}

fn as_u64(value: &Value) -> u64 {
    match value {
        Value::Number(n) => n.as_u64().unwrap(),
        Value::String(s) => s.parse().unwrap_or_else(|_| panic!("not a number: {s}")),
        other => panic!("not a number: {other}"),
    }
}

/// One setting as `layer-mcp-gateway settings` prints it.
#[derive(Debug)]
struct Setting {
    toml_key: Option<String>,
    env: Option<String>,
    flag: Option<String>,
    secret: bool,
    /// Older variable and flag names that still work.
    aliases: Vec<String>,
}

impl Setting {
    /// Its variables: the current name, then the older ones.
    fn envs(&self) -> impl Iterator<Item = &String> {
        self.env
            .iter()
            .chain(self.aliases.iter().filter(|a| a.starts_with("LAYER_MCP_")))
    }
}

fn settings() -> Vec<Setting> {
    let (ok, text) = run(Command::new(binary("layer-mcp-gateway")).arg("settings"));
    assert!(ok, "layer-mcp-gateway settings failed:\n{text}");
    let name = |s: &str| (s != "-").then(|| s.to_owned());
    let settings: Vec<Setting> = text
        .lines()
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            assert_eq!(cols.len(), 5, "bad line {line:?}");
            Setting {
                toml_key: name(cols[0]),
                env: name(cols[1]),
                flag: name(cols[2]),
                secret: cols[3] == "secret",
                aliases: name(cols[4])
                    .map(|a| a.split(',').map(str::to_owned).collect())
                    .unwrap_or_default(),
            }
        })
        .collect();
    // The list is only worth checking against if it is the real one.
    for expected in [
        "LAYER_MCP_LISTEN",
        "LAYER_MCP_REDIS_URL",
        "LAYER_MCP_OAUTH_ENCRYPTION_KEY",
        "LAYER_MCP_OAUTH_ACCESS_TOKEN_TTL",
    ] {
        assert!(
            settings.iter().any(|s| s.envs().any(|e| e == expected)),
            "{expected} missing from:\n{text}"
        );
    }
    settings
}

fn known_env(settings: &[Setting]) -> BTreeSet<String> {
    settings.iter().flat_map(|s| s.envs().cloned()).collect()
}

/// `LAYER_MCP_*` words in a text (a trailing `_`, as in `LAYER_MCP_*`, is no name).
fn layer_mcp_words(text: &str) -> BTreeSet<String> {
    let mut words = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("LAYER_MCP_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        let word = &tail[..end];
        if !word.ends_with('_') {
            words.insert(word.to_owned());
        }
        rest = &tail[end..];
    }
    words
}

/// The Dockerfile as instructions (continuation lines joined, comments dropped).
fn dockerfile() -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in read("Dockerfile").lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
        } else {
            current.push_str(trimmed);
            out.push(std::mem::take(&mut current));
        }
    }
    out
}

/// The instructions of the last stage (the image `docker build .` makes).
fn final_stage() -> Vec<String> {
    let all = dockerfile();
    let start = all
        .iter()
        .rposition(|i| i.starts_with("FROM "))
        .expect("a FROM");
    all[start..].to_vec()
}

fn compose() -> Value {
    yaml_docs(&read("docker-compose.yml"))
        .into_iter()
        .next()
        .unwrap()
}

fn compose_gateways(compose: &Value) -> Vec<(String, Value)> {
    compose["services"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(name, _)| name.starts_with("gateway"))
        .map(|(n, s)| (n.clone(), s.clone()))
        .collect()
}

/// `20s`, `1m`, `1h`, `90` → seconds.
fn duration_secs(text: &str) -> u64 {
    let text = text.trim().trim_end_matches(';');
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = number
        .parse()
        .unwrap_or_else(|_| panic!("bad duration {text}"));
    match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        other => panic!("unit {other} in {text}"),
    }
}

// ---------------------------------------------------------------------------------------
// Schemas and linters
// ---------------------------------------------------------------------------------------

#[test]
fn every_kubernetes_manifest_passes_the_kubernetes_schemas() {
    let dir = scratch("k8s");
    for (i, kustomization) in KUSTOMIZATIONS.iter().enumerate() {
        let rendered = render(kustomization);
        let docs = yaml_docs(&rendered);
        assert!(
            docs.len() >= 7,
            "{kustomization}: only {} resources",
            docs.len()
        );
        let file = dir.join(format!("rendered-{i}.yaml"));
        std::fs::write(&file, &rendered).unwrap();
        let (ok, text) = run(Command::new(tool("kubernetes-validate"))
            .args(["--strict", "--quiet"])
            .arg(&file));
        assert!(ok, "{kustomization} does not validate:\n{text}");
    }

    // The validator does catch a mistake: a string for the replica count, an unknown field
    // (in another resource: it reports the first error of each).
    let broken = render("deploy/kubernetes")
        .replacen("replicas: 3", "replicas: three", 1)
        .replacen("minReplicas:", "minReplicass:", 1);
    let file = dir.join("broken.yaml");
    std::fs::write(&file, broken).unwrap();
    let (ok, text) = run(Command::new(tool("kubernetes-validate"))
        .args(["--strict", "--quiet"])
        .arg(&file));
    assert!(!ok, "a broken manifest passed:\n{text}");
    assert!(
        text.contains("'three'") && text.contains("minReplicass"),
        "{text}"
    );
}

#[test]
fn every_manifest_file_is_part_of_a_kustomization() {
    // A file no kustomization lists is never applied and never validated.
    let rendered: BTreeSet<(String, String)> = KUSTOMIZATIONS
        .iter()
        .flat_map(|k| yaml_docs(&render(k)))
        .map(|d| {
            (
                d["kind"].as_str().unwrap().to_owned(),
                d["metadata"]["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut stack = vec![root().join("deploy/kubernetes")];
    let mut files = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.file_name().unwrap() == "kustomization.yaml" {
                continue;
            }
            assert_eq!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml"),
                "{}",
                path.display()
            );
            for doc in yaml_docs(&std::fs::read_to_string(&path).unwrap()) {
                files += 1;
                let id = (
                    doc["kind"].as_str().unwrap().to_owned(),
                    doc["metadata"]["name"].as_str().unwrap().to_owned(),
                );
                assert!(
                    rendered.contains(&id),
                    "{} ({id:?}) is in no kustomization",
                    path.display()
                );
            }
        }
    }
    assert!(files >= 12, "only {files} manifests found");
}

#[test]
fn the_compose_file_passes_the_compose_spec() {
    let (ok, text) = run(Command::new(tool("check-jsonschema"))
        .args(["--builtin-schema", "vendor.compose-spec"])
        .arg(root().join("docker-compose.yml")));
    assert!(ok, "docker-compose.yml does not validate:\n{text}");
    // Docker's own reading, where a Docker with compose is installed.
    let has_compose = Command::new("docker")
        .args(["compose", "version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if has_compose {
        let (ok, text) = run(Command::new("docker")
            .args(["compose", "-f"])
            .arg(root().join("docker-compose.yml"))
            .args(["config", "-q"]));
        assert!(ok, "docker compose config:\n{text}");
    }

    // The schema does catch a mistake.
    let dir = scratch("compose");
    let broken =
        read("docker-compose.yml").replacen("stop_grace_period: 20s", "stop_grace: 20s", 1);
    std::fs::write(dir.join("docker-compose.yml"), broken).unwrap();
    let (ok, text) = run(Command::new(tool("check-jsonschema"))
        .args(["--builtin-schema", "vendor.compose-spec"])
        .arg(dir.join("docker-compose.yml")));
    assert!(!ok, "a broken compose file passed:\n{text}");
}

#[test]
fn the_dockerfile_passes_hadolint_and_builds_with_the_pinned_toolchain() {
    let (ok, text) = run(Command::new(tool("hadolint"))
        .arg("--no-color")
        .arg(root().join("Dockerfile")));
    assert!(ok, "hadolint:\n{text}");

    // The builder is the toolchain rust-toolchain.toml pins.
    let toolchain = read("rust-toolchain.toml");
    let channel = toolchain
        .lines()
        .find_map(|l| l.trim().strip_prefix("channel"))
        .and_then(|rest| rest.split('"').nth(1))
        .expect("a channel in rust-toolchain.toml");
    let instructions = dockerfile();
    assert!(
        instructions
            .iter()
            .any(|i| *i == format!("ARG RUST_VERSION={channel}")),
        "the Dockerfile does not build with Rust {channel}"
    );
    let builds: Vec<&String> = instructions
        .iter()
        .filter(|i| i.contains("cargo build"))
        .collect();
    assert!(!builds.is_empty());
    for build in builds {
        assert!(
            build.contains("--locked")
                && build.contains("--release")
                && build.contains("-p layer-mcp-gateway"),
            "{build}"
        );
        // The production binary leaves the simulator (the default feature `demo`) out.
        assert!(
            build.contains("-p layer-mcp-gateway --no-default-features --features jemalloc"),
            "{build}"
        );
    }

    let ignore = read(".dockerignore");
    for needed in [".git", "target", "**/node_modules", "**/.venv"] {
        assert!(
            ignore.lines().any(|l| l.trim() == needed),
            ".dockerignore lacks {needed}"
        );
    }
}

#[test]
fn the_image_runs_one_binary_as_a_non_root_user_on_the_port_it_listens_on() {
    let stage = final_stage();
    let from = &stage[0];
    assert!(
        from.contains("distroless") && from.contains(":nonroot"),
        "{from}"
    );
    let user = stage
        .iter()
        .rev()
        .find_map(|i| i.strip_prefix("USER "))
        .expect("the final stage sets USER");
    let uid = user.split(':').next().unwrap();
    assert!(uid != "0" && uid != "root", "runs as {user}");
    let copies: Vec<&String> = stage
        .iter()
        .filter(|i| i.starts_with("COPY ") && i.contains("/usr/local/bin/"))
        .collect();
    assert_eq!(copies.len(), 1, "{copies:?}");
    assert!(copies[0].ends_with("/usr/local/bin/layer-mcp-gateway"));
    assert!(
        stage
            .iter()
            .any(|i| i.starts_with("ENTRYPOINT [\"/usr/local/bin/layer-mcp-gateway\"]"))
    );

    // EXPOSE, the listen address and the health check agree.
    let listen = stage
        .iter()
        .find_map(|i| {
            i.split_whitespace()
                .find_map(|w| w.strip_prefix("LAYER_MCP_LISTEN="))
        })
        .expect("the image sets LAYER_MCP_LISTEN");
    let port = listen.rsplit(':').next().unwrap();
    assert!(listen.starts_with("0.0.0.0:"), "{listen}");
    assert!(
        stage.iter().any(|i| *i == format!("EXPOSE {port}")),
        "EXPOSE {port}"
    );
    let health = stage
        .iter()
        .find(|i| i.starts_with("HEALTHCHECK"))
        .expect("a HEALTHCHECK");
    assert!(
        health.contains("\"healthcheck\"") && health.contains("CMD ["),
        "{health}"
    );

    // Every variable the image sets is a setting.
    let known = known_env(&settings());
    for word in layer_mcp_words(&stage.join("\n")) {
        assert!(
            known.contains(&word),
            "the image sets {word}, which no setting reads"
        );
    }
}

#[test]
fn the_dockerfile_dependency_layer_loads_the_workspace_from_manifests_alone() {
    // The Dockerfile keeps only Cargo.toml files and the lock, then stub-sources.sh fills
    // in empty sources: the workspace must load like that, or `docker build` fails at its
    // first cargo step (a new crate, a new [[bench]]…).
    let dir = scratch("stubs");
    std::fs::copy(root().join("Cargo.toml"), dir.join("Cargo.toml")).unwrap();
    std::fs::copy(root().join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    let mut members = vec![root().join("tests")];
    for entry in std::fs::read_dir(root().join("crates")).unwrap() {
        members.push(entry.unwrap().path());
    }
    for member in members {
        let rel = member.strip_prefix(root()).unwrap();
        std::fs::create_dir_all(dir.join(rel)).unwrap();
        std::fs::copy(member.join("Cargo.toml"), dir.join(rel).join("Cargo.toml")).unwrap();
    }
    let (ok, text) = run(Command::new("sh")
        .arg(root().join("deploy/docker/stub-sources.sh"))
        .current_dir(&dir));
    assert!(ok, "stub-sources.sh:\n{text}");
    assert!(dir.join("crates/gateway/src/main.rs").exists());
    let (ok, text) = run(Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--locked",
            "--offline",
            "--format-version",
            "1",
            "--no-deps",
        ])
        .current_dir(&dir));
    assert!(ok, "the stubbed workspace does not load:\n{text}");
    let metadata: Value =
        serde_json::from_str(text.lines().find(|l| l.starts_with('{')).unwrap()).unwrap();
    let packages: Vec<&str> = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(packages.contains(&"layer-mcp-gateway") && packages.contains(&"layer-sim"));
}

// ---------------------------------------------------------------------------------------
// What an operator would notice
// ---------------------------------------------------------------------------------------

#[test]
fn three_replicas_probed_on_the_port_the_gateway_listens_on() {
    let docs = manifests();
    let deployment = gateway_deployment(&docs);
    assert_eq!(deployment["spec"]["replicas"], 3);
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let container = gateway_container(deployment);
    let env = gateway_env(&docs);

    let listen = env["LAYER_MCP_LISTEN"].as_str().unwrap();
    assert!(listen.starts_with("0.0.0.0:"), "{listen}");
    let listen_port: u64 = listen.rsplit(':').next().unwrap().parse().unwrap();
    let ports = container["ports"].as_array().unwrap();
    let port_of = |port: &Value| -> u64 {
        match port {
            Value::String(name) => ports
                .iter()
                .find(|p| p["name"] == *name.as_str())
                .map(|p| as_u64(&p["containerPort"]))
                .unwrap_or_else(|| panic!("no container port named {name}")),
            n => as_u64(n),
        }
    };
    for (probe, path) in [
        ("startupProbe", "/healthz"),
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
    ] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe}");
        assert_eq!(port_of(&get["port"]), listen_port, "{probe} port");
    }

    // The Service, the Ingress, the PDB and the HPA reach these pods.
    let service = find(&docs, "Service", "layer-mcp-gateway");
    for (k, v) in service["spec"]["selector"].as_object().unwrap() {
        assert_eq!(&pod_labels[k], v, "Service selector {k}");
    }
    assert_eq!(
        port_of(&service["spec"]["ports"][0]["targetPort"]),
        listen_port
    );
    let pdb = find(&docs, "PodDisruptionBudget", "layer-mcp-gateway");
    for (k, v) in pdb["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(&pod_labels[k], v, "PDB selector {k}");
    }
    let max_unavailable = as_u64(&pdb["spec"]["maxUnavailable"]);
    assert!((1..3).contains(&max_unavailable));
    let hpa = find(&docs, "HorizontalPodAutoscaler", "layer-mcp-gateway");
    assert_eq!(hpa["apiVersion"], "autoscaling/v2");
    assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], "layer-mcp-gateway");
    assert!(as_u64(&hpa["spec"]["minReplicas"]) >= 3);
    assert_eq!(hpa["spec"]["metrics"][0]["resource"]["name"], "cpu");
    let ingress = find(&docs, "Ingress", "layer-mcp-gateway");
    let backend = &ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"];
    assert_eq!(backend["name"], "layer-mcp-gateway");

    for kind in ["requests", "limits"] {
        for what in ["cpu", "memory"] {
            assert!(
                container["resources"][kind][what].is_string(),
                "resources.{kind}.{what}"
            );
        }
    }
}

#[test]
fn the_grace_period_outlasts_the_drain() {
    let docs = manifests();
    let deployment = gateway_deployment(&docs);
    let pod = &deployment["spec"]["template"]["spec"];
    let grace = as_u64(&pod["terminationGracePeriodSeconds"]);
    let drain = as_u64(&gateway_env(&docs)["LAYER_MCP_SHUTDOWN_DRAIN_SECS"]);
    let pre_stop = &gateway_container(deployment)["lifecycle"]["preStop"];
    // The image has no shell: a preStop hook can only be the kubelet's own sleep.
    assert!(
        pre_stop.get("exec").is_none(),
        "no shell in the image: {pre_stop}"
    );
    let sleep = pre_stop["sleep"]["seconds"].as_u64().unwrap_or(0);
    assert!(
        grace > sleep + drain + 5,
        "terminationGracePeriodSeconds {grace} must exceed preStop {sleep} + drain {drain} + time to close"
    );

    let compose = compose();
    for (name, service) in compose_gateways(&compose) {
        let drain = as_u64(&service["environment"]["LAYER_MCP_SHUTDOWN_DRAIN_SECS"]);
        let grace = duration_secs(service["stop_grace_period"].as_str().unwrap());
        assert!(
            grace > drain,
            "{name}: stop_grace_period {grace} s <= drain {drain} s"
        );
    }
}

#[test]
fn no_sticky_sessions_and_no_buffering_in_front_of_the_gateways() {
    let docs = manifests();
    let ingress = find(&docs, "Ingress", "layer-mcp-gateway");
    let annotations = ingress["metadata"]["annotations"].as_object().unwrap();
    let get = |k: &str| {
        annotations
            .get(&format!("nginx.ingress.kubernetes.io/{k}"))
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("annotation {k} missing"))
    };
    assert_eq!(get("proxy-buffering"), "off");
    assert_eq!(get("proxy-request-buffering"), "off");
    assert!(as_u64(&Value::String(get("proxy-read-timeout").into())) >= 3600);
    assert!(as_u64(&Value::String(get("proxy-send-timeout").into())) >= 3600);
    for key in annotations.keys() {
        for sticky in ["affinity", "session-cookie", "upstream-hash-by"] {
            assert!(!key.contains(sticky), "sticky-session annotation {key}");
        }
    }
    let service = find(&docs, "Service", "layer-mcp-gateway");
    assert!(
        service["spec"]["sessionAffinity"].is_null()
            || service["spec"]["sessionAffinity"] == "None"
    );

    // The compose demo's nginx: round-robin over the three gateways, unbuffered, long reads.
    let conf = read("deploy/compose/nginx.conf");
    let directives: Vec<String> = conf
        .lines()
        .map(|l| l.split('#').next().unwrap().trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect();
    let has = |d: &str| directives.iter().any(|l| l == d);
    assert!(has("proxy_buffering off;") && has("proxy_request_buffering off;"));
    assert!(has("proxy_http_version 1.1;"));
    assert!(has("proxy_next_upstream error timeout;"));
    let read_timeout = directives
        .iter()
        .find_map(|l| l.strip_prefix("proxy_read_timeout "))
        .expect("proxy_read_timeout");
    assert!(duration_secs(read_timeout) >= 3600);
    for sticky in ["ip_hash", "hash ", "sticky", "least_conn"] {
        assert!(
            !directives.iter().any(|l| l.starts_with(sticky)),
            "nginx.conf uses {sticky}"
        );
    }
    let compose = compose();
    let gateways = compose_gateways(&compose);
    assert_eq!(gateways.len(), 3);
    for (name, _) in &gateways {
        assert!(
            directives
                .iter()
                .any(|l| l.starts_with(&format!("server {name}:8080"))),
            "nginx does not send to {name}"
        );
    }
}

#[test]
fn pods_run_as_non_root_with_a_read_only_root_and_no_capabilities() {
    for doc in manifests() {
        let Some(pod) = ["Deployment", "StatefulSet"]
            .contains(&doc["kind"].as_str().unwrap())
            .then(|| &doc["spec"]["template"]["spec"])
        else {
            continue;
        };
        let name = doc["metadata"]["name"].as_str().unwrap();
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{name}");
        assert_ne!(pod["securityContext"]["runAsUser"], 0, "{name}");
        assert_eq!(pod["automountServiceAccountToken"], false, "{name}");
        for container in pod["containers"].as_array().unwrap() {
            let sc = &container["securityContext"];
            assert_eq!(sc["readOnlyRootFilesystem"], true, "{name}");
            assert_eq!(sc["allowPrivilegeEscalation"], false, "{name}");
            assert_eq!(
                sc["capabilities"]["drop"],
                serde_json::json!(["ALL"]),
                "{name}"
            );
        }
    }
    let docs = manifests();
    let spec = &gateway_deployment(&docs)["spec"]["template"]["spec"];
    assert!(
        spec["topologySpreadConstraints"].is_array()
            || spec["affinity"]["podAntiAffinity"].is_object(),
        "replicas are not spread"
    );
}

#[test]
fn every_variable_the_deployment_sets_is_a_setting_and_secrets_come_from_secrets() {
    let settings = settings();
    let known = known_env(&settings);
    let secret: BTreeSet<String> = settings
        .iter()
        .filter(|s| s.secret)
        .flat_map(|s| s.envs().cloned())
        .collect();
    assert!(secret.contains("LAYER_MCP_REDIS_URL"));

    let docs = manifests();
    let env = gateway_env(&docs);
    for name in env.keys() {
        assert!(
            known.contains(name),
            "the Deployment sets {name}, which the gateway does not read"
        );
    }
    // Every LAYER_MCP_ word anywhere in the manifests, too (comments included).
    for word in layer_mcp_words(&render("deploy/kubernetes")) {
        assert!(
            known.contains(&word),
            "the manifests mention {word}, which no setting reads"
        );
    }
    for setting in settings.iter().filter(|s| s.secret) {
        let Some(value) = setting.envs().find_map(|name| env.get(name)) else {
            continue;
        };
        // `limiter` may be a bare word (`redis`); anything that can carry a URL or a key
        // comes from a Secret.
        let bare_word = setting.toml_key.is_some()
            && value
                .as_str()
                .is_some_and(|v| !v.contains(':') && !v.contains('@'));
        assert!(
            bare_word || value.get("secretKeyRef").is_some(),
            "{:?} may hold a credential and must come from a Secret, not {value}",
            setting.env
        );
    }
    // The Secrets are templates: placeholders only.
    for doc in &docs {
        if doc["kind"] == "Secret" {
            for (key, value) in doc["stringData"].as_object().unwrap() {
                assert!(
                    value.as_str().unwrap().contains("CHANGE-ME"),
                    "Secret {} key {key} is not a placeholder",
                    doc["metadata"]["name"]
                );
            }
            assert!(doc.get("data").is_none());
        }
    }

    let compose = compose();
    for (name, service) in compose_gateways(&compose) {
        for var in service["environment"].as_object().unwrap().keys() {
            assert!(
                known.contains(var),
                "compose {name} sets {var}, which the gateway does not read"
            );
        }
    }
}

#[test]
fn the_operations_guide_documents_every_setting() {
    let guide = read("docs/operations.md");
    let start = guide
        .find("## Configuration reference")
        .expect("docs/operations.md has a `## Configuration reference` section");
    let section = &guide[start..];
    let section = match section[3..].find("\n## ") {
        Some(end) => &section[..end + 3],
        None => section,
    };
    let settings = settings();
    let mut missing = Vec::new();
    for setting in &settings {
        for name in [&setting.env, &setting.flag, &setting.toml_key]
            .into_iter()
            .flatten()
            .chain(&setting.aliases)
        {
            if !section.contains(&format!("`{name}`")) {
                missing.push(name.clone());
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/operations.md's configuration reference lacks: {}",
        missing.join(", ")
    );
    // And it names nothing the gateway does not read.
    let known = known_env(&settings);
    for word in layer_mcp_words(&guide) {
        assert!(
            known.contains(&word),
            "docs/operations.md names {word}, which no setting reads"
        );
    }
}

#[tokio::test]
async fn the_container_health_check_answers_for_a_gateway_on_a_wildcard_address() {
    let sim = TestSim::start().await;
    let gateway = GatewayProcess::start(GatewayOptions {
        layer_api_url: sim.api_url(),
        ..GatewayOptions::default()
    })
    .await;
    // The image sets LAYER_MCP_LISTEN=0.0.0.0:8080 and runs `healthcheck` with no flags.
    let check = |listen: String| {
        let mut command = Command::new(binary("layer-mcp-gateway"));
        command.arg("healthcheck").env("LAYER_MCP_LISTEN", listen);
        run(&mut command)
    };
    let (ok, text) = check(format!("0.0.0.0:{}", gateway.port));
    assert!(ok, "healthcheck of a running gateway failed: {text}");
    let port = gateway.port;
    drop(gateway);
    // The process may take a moment to die and close its socket.
    let mut outcome = check(format!("0.0.0.0:{port}"));
    for _ in 0..25 {
        if !outcome.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        outcome = check(format!("0.0.0.0:{port}"));
    }
    let (ok, text) = outcome;
    assert!(!ok, "healthcheck passed with the gateway gone: {text}");
    assert!(text.contains("cannot reach"), "{text}");
}

#[tokio::test]
async fn the_shipped_configmap_starts_a_gateway_that_is_ready() {
    // Every value in the ConfigMap must be one the gateway accepts (a `25s` where whole
    // seconds are expected would stop every pod at start). OAuth is left out: it would ask
    // the placeholder identity provider; the listen address, public URL and Layer URL are
    // overridden by flags to reach this machine's simulator and Redis.
    let sim = TestSim::start().await;
    let redis = e2e_tests::redis::RedisServer::start();
    let docs = manifests();
    let configmap = find(&docs, "ConfigMap", "layer-mcp-gateway");
    let mut env: Vec<(String, String)> = configmap["data"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| {
            !k.starts_with("LAYER_MCP_OAUTH_") && *k != "LAYER_MCP_TRUST_FORWARDED_FOR"
        })
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    assert!(env.len() >= 5, "{env:?}");
    env.push(("LAYER_MCP_REDIS_URL".into(), redis.url()));
    let gateway = GatewayProcess::start(GatewayOptions {
        layer_api_url: sim.api_url(),
        env,
        ..GatewayOptions::default()
    })
    .await;
    let ready = reqwest::get(gateway.url("/readyz")).await.unwrap();
    let status = ready.status();
    let body = ready.text().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("limiter (redis): ok"), "{body}");
    assert!(
        !gateway.log_text().contains("ignoring environment variable"),
        "{}",
        gateway.log_text()
    );
}
