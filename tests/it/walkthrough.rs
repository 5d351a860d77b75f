//! The README's walkthrough, run exactly as written against `latchkey dev`: the commands are
//! read from README.md between the walkthrough markers, so the document cannot drift from
//! the product.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

const BEGIN: &str = "<!-- walkthrough:begin -->";
const END: &str = "<!-- walkthrough:end -->";

/// The shell blocks of the README's walkthrough, in order.
fn walkthrough_script(readme: &str) -> String {
    let start = readme.find(BEGIN).expect("walkthrough begin marker");
    let end = readme.find(END).expect("walkthrough end marker");
    let mut script = String::new();
    let mut in_block = false;
    for line in readme[start..end].lines() {
        match (in_block, line.trim_end()) {
            (false, "```sh") => in_block = true,
            (true, "```") => in_block = false,
            (true, _) => {
                script.push_str(line);
                script.push('\n');
            }
            _ => {}
        }
    }
    script
}

#[tokio::test]
async fn the_readme_walkthrough_runs_as_written_against_latchkey_dev() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let script = walkthrough_script(&readme);
    assert!(
        script.contains("CreateSession"),
        "the walkthrough creates a session"
    );

    let dir = tempfile::tempdir().expect("temp dir");
    // The daemon's default ports (50051, 50052) lie in the kernel's ephemeral range, where
    // a test running alongside may hold them: take free ones. The walkthrough reads the
    // endpoint from the env file `latchkey dev` writes, so it needs no change. Anvil keeps
    // 8545, below that range, as the walkthrough's RPC.
    let free = || format!("127.0.0.1:{}", crate::daemon::free_port());
    let mut dev = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args([
            "dev",
            "--data-dir",
            &dir.path().join("store").display().to_string(),
            "--listen",
            &free(),
            "--admin-listen",
            &free(),
            "--metrics-listen",
            &free(),
            // The web example has a test of its own, in a real browser.
            "--no-web",
        ])
        .current_dir(root)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn latchkey dev");
    let stdout = dev.stdout.take().expect("stdout");
    let banner = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stdout).lines();
        let mut banner = String::new();
        for line in lines.by_ref() {
            let line = line.expect("read stdout");
            banner.push_str(&line);
            banner.push('\n');
            if line.contains("gRPC") {
                break;
            }
        }
        // Keep draining so the child never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        banner
    });
    let banner = tokio::time::timeout(Duration::from_secs(60), banner)
        .await
        .expect("latchkey dev came up within a minute")
        .expect("banner");
    assert!(banner.contains("latchkey dev stack is up"), "{banner}");

    let run = tokio::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(root)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), run).await;

    // Stop the stack gracefully, so it takes its anvil down with it.
    let _ = Command::new("kill")
        .args(["-TERM", &dev.id().to_string()])
        .status();
    let _ = dev.wait();

    let output = output
        .expect("the walkthrough finished within two minutes")
        .expect("bash ran");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "walkthrough failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("TRANSACTION_INTENT_STATUS_CONFIRMED"),
        "{stdout}"
    );
    let lines: Vec<&str> = stdout.lines().map(str::trim).collect();
    assert_eq!(
        lines.first(),
        Some(&"0"),
        "the player's account starts with no ETH: {stdout}"
    );
    let item = lines
        .iter()
        .position(|line| *line == "1")
        .unwrap_or_else(|| panic!("one item on chain: {stdout}"));
    assert_eq!(
        lines.get(item + 1),
        Some(&"0"),
        "the account still holds no ETH after minting: {stdout}"
    );
    // The paymaster paid for the registration and the mint, and the policy recorded both.
    assert!(
        lines.iter().any(|line| line.starts_with("settled  2 ops,")),
        "{stdout}"
    );
}
