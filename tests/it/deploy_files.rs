//! The deployment files in `deploy/` checked against the product: the systemd unit passes
//! `systemd-analyze verify`, the Grafana dashboard charts only metrics the README says the
//! daemon exports, the container image holds nothing but the binary, and the compose
//! stack's commands deploy the contracts and configure a daemon that passes its checks.

use std::{
    collections::BTreeSet,
    fs,
    io::ErrorKind,
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value;

fn repo_file(relative: &str) -> (PathBuf, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    let text = fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("read {}: {error}", path.display()));
    (path, text)
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let (_, unit) = repo_file("deploy/latchkey.service");
    // `systemd-analyze verify` checks that ExecStart's binary exists and is executable, and
    // /usr/local/bin/latchkey is not installed where the tests run. So it checks a copy of
    // the unit whose ExecStart runs the binary this test suite built, with the same
    // arguments; every other line is the file as shipped.
    let shipped = "ExecStart=/usr/local/bin/latchkey ";
    assert_eq!(
        unit.matches(shipped).count(),
        1,
        "deploy/latchkey.service should have one `{shipped}…` line"
    );
    // Quoted, and with `%` escaped, so that any path reads as one word to systemd.
    let built = env!("CARGO_BIN_EXE_latchkey").replace('%', "%%");
    let copy = unit.replace(shipped, &format!("ExecStart=\"{built}\" "));
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("latchkey.service");
    fs::write(&path, copy).expect("write the unit's copy");

    let output = match Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
    {
        Ok(output) => output,
        Err(error) if error.kind() == ErrorKind::NotFound => panic!(
            "systemd-analyze is not installed, so deploy/latchkey.service cannot be checked: \
             install Debian's `systemd` package (apt-get install systemd)"
        ),
        Err(error) => panic!("run systemd-analyze: {error}"),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "systemd-analyze verify failed ({}):\n{stderr}{stdout}",
        output.status
    );
    assert!(
        stderr.trim().is_empty(),
        "systemd-analyze verify warned about deploy/latchkey.service:\n{stderr}"
    );
}

/// The metric names in the first column of README.md's "Metrics" table, without labels.
fn readme_metrics(readme: &str) -> BTreeSet<String> {
    let start = readme
        .find("\n### Metrics\n")
        .expect("README.md has a Metrics section");
    let rest = &readme[start + 1..];
    let section = rest.find("\n#").map_or(rest, |end| &rest[..end]);
    let mut names = BTreeSet::new();
    for line in section.lines().filter(|line| line.starts_with('|')) {
        let first_cell = line.split('|').nth(1).unwrap_or_default();
        for quoted in first_cell.split('`').skip(1).step_by(2) {
            let name = quoted.split('{').next().unwrap_or_default().trim();
            if name.starts_with("latchkey_") {
                names.insert(name.to_owned());
            }
        }
    }
    names
}

/// Every PromQL expression in a dashboard, at any depth (rows may nest panels).
fn exprs<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr", Value::String(expr)) => found.push(expr),
                    _ => exprs(value, found),
                }
            }
        }
        Value::Array(values) => values.iter().for_each(|value| exprs(value, found)),
        _ => {}
    }
}

#[test]
fn the_grafana_dashboard_charts_only_metrics_the_readme_lists() {
    let (_, readme) = repo_file("README.md");
    let exported = readme_metrics(&readme);
    assert!(
        exported.contains("latchkey_grpc_requests_total"),
        "README.md's Metrics table was not found or has changed shape: {exported:?}"
    );

    let (_, text) = repo_file("deploy/grafana/latchkey.json");
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is valid JSON");
    let mut found = Vec::new();
    exprs(&dashboard, &mut found);
    assert!(!found.is_empty(), "the dashboard has no queries");

    let mut charted = BTreeSet::new();
    for expr in found {
        for (start, _) in expr.match_indices("latchkey_") {
            let name: String = expr[start..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            charted.insert(name);
        }
    }
    // A histogram is listed by its name and queried through its series.
    let unknown: Vec<&String> = charted
        .iter()
        .filter(|name| {
            !exported.contains(name.as_str())
                && !["_bucket", "_sum", "_count"].iter().any(|suffix| {
                    name.strip_suffix(suffix)
                        .is_some_and(|base| exported.contains(base))
                })
        })
        .collect();
    assert!(
        unknown.is_empty(),
        "deploy/grafana/latchkey.json queries metrics that README.md's Metrics table does not \
         list: {unknown:?} (listed: {exported:?})"
    );
}

#[test]
fn the_container_image_holds_only_the_binary() {
    let (_, dockerfile) = repo_file("deploy/Dockerfile");
    let lines: Vec<&str> = dockerfile.lines().map(str::trim).collect();
    let last_from = lines
        .iter()
        .rposition(|line| line.to_ascii_uppercase().starts_with("FROM "))
        .expect("deploy/Dockerfile has a FROM");
    assert!(
        lines[last_from].contains("gcr.io/distroless/cc-debian12:nonroot"),
        "the final stage is distroless/cc, which brings glibc and the CA certificates: {}",
        lines[last_from]
    );
    let copies: Vec<&str> = lines[last_from..]
        .iter()
        .copied()
        .filter(|line| {
            let upper = line.to_ascii_uppercase();
            upper.starts_with("COPY ") || upper.starts_with("ADD ")
        })
        .collect();
    // The binary, and an empty directory owned by the non-root user for the store's volume.
    assert_eq!(
        copies,
        [
            "COPY --from=builder /out/latchkey /usr/local/bin/latchkey",
            "COPY --from=builder --chown=65532:65532 /out/data /var/lib/latchkey",
        ],
        "the final stage of deploy/Dockerfile should copy the binary and nothing else"
    );
}

#[test]
fn the_image_builds_the_binary_the_way_make_release_does() {
    let (_, makefile) = repo_file("Makefile");
    let (_, dockerfile) = repo_file("deploy/Dockerfile");
    let recipe = makefile
        .lines()
        .skip_while(|line| !line.starts_with("release:"))
        .nth(1)
        .expect("a `release` target with a recipe")
        .trim()
        .replace("$(CARGO)", "cargo");
    assert!(
        dockerfile.contains(&recipe),
        "deploy/Dockerfile should run `{recipe}`, as `make release` does"
    );
}

/// A compose service's `command:` (or any list of strings).
fn yaml_strings(value: &serde_yaml_ng::Value) -> Vec<String> {
    value
        .as_sequence()
        .unwrap_or_else(|| panic!("a list: {value:?}"))
        .iter()
        .map(|item| {
            item.as_str()
                .unwrap_or_else(|| panic!("a string: {item:?}"))
                .to_owned()
        })
        .collect()
}

/// A compose service's `environment:` mapping.
fn yaml_env(service: &serde_yaml_ng::Value) -> Vec<(String, String)> {
    service["environment"]
        .as_mapping()
        .unwrap_or_else(|| panic!("an environment mapping: {service:?}"))
        .iter()
        .map(|(name, value)| {
            let text = match value {
                serde_yaml_ng::Value::String(text) => text.clone(),
                serde_yaml_ng::Value::Number(number) => number.to_string(),
                other => panic!("{name:?}: a scalar value, not {other:?}"),
            };
            (name.as_str().expect("a variable name").to_owned(), text)
        })
        .collect()
}

/// Runs the built `latchkey` with `args` and exactly the LATCHKEY_* variables in `env`.
async fn run_latchkey(args: &[String], env: &[(String, String)]) -> (i32, String) {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_latchkey"));
    command.args(args);
    for (name, _) in std::env::vars() {
        if name.starts_with("LATCHKEY_") {
            command.env_remove(name);
        }
    }
    command.envs(env.iter().map(|(name, value)| (name, value)));
    let output = command.output().await.expect("run latchkey");
    (
        output.status.code().expect("an exit code"),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

#[tokio::test]
async fn the_compose_stack_deploys_the_contracts_and_configures_a_daemon_that_checks_out() {
    let (_, text) = repo_file("deploy/compose.yaml");
    let mut compose: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&text).expect("deploy/compose.yaml is valid YAML");
    compose.apply_merge().expect("merge keys resolve");
    let services = &compose["services"];

    let anvil_service = &services["anvil"];
    let image = anvil_service["image"].as_str().expect("anvil's image");
    assert!(
        image.starts_with("ghcr.io/foundry-rs/foundry:v1.7."),
        "anvil runs Foundry 1.7, as the tests do: {image}"
    );
    let anvil_command = yaml_strings(&anvil_service["command"]);
    assert!(
        anvil_command.len() == 1
            && anvil_command[0].starts_with("anvil ")
            && anvil_command[0].contains("--host 0.0.0.0"),
        "Foundry's image runs its command with `/bin/sh -c`, so it is one string: \
         {anvil_command:?}"
    );

    // Both latchkey services run deploy/Dockerfile's image, whose entrypoint is the binary:
    // their commands are the binary's arguments.
    let (_, dockerfile) = repo_file("deploy/Dockerfile");
    assert!(
        dockerfile
            .lines()
            .any(|line| line.trim() == r#"ENTRYPOINT ["/usr/local/bin/latchkey"]"#),
        "deploy/Dockerfile's entrypoint is the binary"
    );
    for name in ["contracts", "latchkey"] {
        let service = &services[name];
        assert_eq!(service["build"]["context"].as_str(), Some(".."), "{name}");
        assert_eq!(
            service["build"]["dockerfile"].as_str(),
            Some("deploy/Dockerfile"),
            "{name}"
        );
        assert!(
            service.get("entrypoint").is_none(),
            "{name} keeps the image's entrypoint"
        );
    }
    let contracts = &services["contracts"];
    let daemon = &services["latchkey"];
    assert_eq!(
        contracts["depends_on"]["anvil"]["condition"].as_str(),
        Some("service_healthy")
    );
    assert_eq!(
        daemon["depends_on"]["contracts"]["condition"].as_str(),
        Some("service_completed_successfully")
    );
    assert_eq!(
        yaml_strings(&daemon["ports"]),
        [
            "127.0.0.1:50051:50051",
            "127.0.0.1:50052:50052",
            "127.0.0.1:9464:9464"
        ],
        "the API, the admin service and metrics are published to the host's loopback only"
    );
    let daemon_env = yaml_env(daemon);
    let var = |name: &str| {
        daemon_env
            .iter()
            .find(|(known, _)| known == name)
            .map(|(_, value)| value.as_str())
    };
    assert_eq!(var("LATCHKEY_LISTEN"), Some("0.0.0.0:50051"));
    assert_eq!(var("LATCHKEY_METRICS_LISTEN"), Some("0.0.0.0:9464"));
    assert_eq!(var("LATCHKEY_ADMIN_LISTEN"), Some("0.0.0.0:50052"));
    assert!(
        var("LATCHKEY_ADMIN_TOKEN").is_some(),
        "the admin service is on"
    );

    // The containers' addresses and volumes, here: a real anvil and a temporary directory.
    let anvil = crate::harness::bare_anvil(&[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let shared = dir.path().join("shared");
    let data = dir.path().join("data");
    fs::create_dir(&shared).expect("create the shared volume");
    let substitute = |text: &str| {
        text.replace("http://anvil:8545", &anvil.endpoint())
            .replace("/shared", shared.to_str().expect("UTF-8"))
            .replace("/var/lib/latchkey", data.to_str().expect("UTF-8"))
    };
    let substitute_env = |env: Vec<(String, String)>| -> Vec<(String, String)> {
        env.into_iter()
            .map(|(name, value)| (name, substitute(&value)))
            .collect()
    };

    // The keys are anvil's public dev keys #0, #1 and #2, as the comments say, and the
    // paymaster's signer is the daemon's approving key.
    let dev_key =
        |index: usize| format!("0x{}", alloy::hex::encode(anvil.keys()[index].to_bytes()));
    let contracts_env = yaml_env(contracts);
    assert_eq!(
        contracts_env,
        [("LATCHKEY_DEPLOYER_PRIVATE_KEY".to_owned(), dev_key(0))]
    );
    assert_eq!(
        var("LATCHKEY_RELAYER_PRIVATE_KEY"),
        Some(dev_key(1).as_str())
    );
    assert_eq!(
        var("LATCHKEY_SPONSOR_SIGNER_KEY"),
        Some(dev_key(2).as_str())
    );
    let deploy_command = yaml_strings(&contracts["command"]);
    let after = |flag: &str| {
        deploy_command
            .iter()
            .skip_while(|arg| *arg != flag)
            .nth(1)
            .unwrap_or_else(|| panic!("{flag} in {deploy_command:?}"))
            .clone()
    };
    assert_eq!(
        after("--paymaster-signer")
            .parse::<alloy::primitives::Address>()
            .expect("an address"),
        anvil.addresses()[2]
    );

    // The `contracts` service's command, run as it is.
    let deploy_args: Vec<String> = deploy_command.iter().map(|arg| substitute(arg)).collect();
    let (code, output) = run_latchkey(&deploy_args, &substitute_env(contracts_env)).await;
    assert_eq!(code, 0, "the contracts service's command failed:\n{output}");
    let config = substitute(&after("--config-out"));
    assert!(
        Path::new(&config).starts_with(&shared),
        "the config is written to the shared volume: {config}"
    );

    // The `latchkey` service's `serve --config FILE`, checked as `latchkey config check
    // --config FILE` with the service's environment.
    let serve: Vec<String> = yaml_strings(&daemon["command"])
        .iter()
        .map(|arg| substitute(arg))
        .collect();
    assert_eq!(serve, ["serve", "--config", config.as_str()]);
    let mut check = vec!["config".to_owned(), "check".to_owned()];
    check.extend(serve[1..].iter().cloned());
    let (code, output) = run_latchkey(&check, &substitute_env(daemon_env.clone())).await;
    assert_eq!(
        code, 0,
        "the latchkey service's configuration fails `latchkey config check`:\n{output}"
    );
}
