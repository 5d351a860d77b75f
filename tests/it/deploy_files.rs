//! The deployment files in `deploy/` checked against the product: the systemd unit passes
//! `systemd-analyze verify`, the Grafana dashboard charts only metrics the README says the
//! daemon exports, and the container image holds nothing but the binary.

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
        .find("\n## Metrics\n")
        .expect("README.md has a Metrics section");
    let rest = &readme[start + 1..];
    let section = rest.find("\n## ").map_or(rest, |end| &rest[..end]);
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
