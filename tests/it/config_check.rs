//! `latchkey config check`, the real binary against a live chain: a good configuration
//! passes every check, a wrong approving key or an unfunded relayer fails its check with
//! exit code 1, and an invalid field stops it with exit code 3 naming the field. Offline,
//! it shows the layers: a variable reaches the settings and its flag beats it, and help
//! names every variable without showing a secret's value.

use alloy::signers::local::PrivateKeySigner;
use serde_json::Value;

use crate::harness::TestChain;

/// Runs `latchkey config check --json` on a file holding `toml`, with `env`.
async fn check(toml: &str, env: &[(&str, String)]) -> (i32, Value, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("latchkey.toml");
    std::fs::write(&file, toml).expect("write config");
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_latchkey"));
    command
        .args(["config", "check", "--json", "--config"])
        .arg(&file);
    for name in [
        "LATCHKEY_RELAYER_PRIVATE_KEY",
        "LATCHKEY_SPONSOR_SIGNER_KEY",
        "LATCHKEY_PAYMASTER",
        "LATCHKEY_RPC_URL",
        "LATCHKEY_MASTER_KEY_FILE",
    ] {
        command.env_remove(name);
    }
    command.env("LATCHKEY_MASTER_KEY", crate::daemon::MASTER_KEY);
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().await.expect("run latchkey");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report = if stdout.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&stdout).unwrap_or_else(|error| panic!("{error}: {stdout}"))
    };
    (
        output.status.code().expect("an exit code"),
        report,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn key(signer: &PrivateKeySigner) -> String {
    format!("0x{}", alloy::hex::encode(signer.to_bytes()))
}

/// The detail of the check named `name`.
fn check_detail<'a>(report: &'a Value, name: &str) -> &'a str {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|check| check["name"] == name)
        .and_then(|check| check["detail"].as_str())
        .unwrap_or_else(|| panic!("no {name} check in {report}"))
}

fn failed(report: &Value) -> Vec<&str> {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|check| check["ok"] == false)
        .map(|check| check["name"].as_str().expect("name"))
        .collect()
}

#[tokio::test]
async fn config_check_passes_a_good_configuration_and_names_what_is_wrong() {
    let chain = TestChain::start().await;
    let toml = format!(
        "[chain]\nrpc_url = \"{}\"\nfactory = \"{}\"\n\n[sponsor]\npaymaster = \"{}\"\n",
        chain.chain.rpc_url(),
        chain.chain.deployment.factory,
        chain.chain.paymaster
    );
    let relayer = ("LATCHKEY_RELAYER_PRIVATE_KEY", key(&chain.chain.relayer));
    let sponsor = (
        "LATCHKEY_SPONSOR_SIGNER_KEY",
        key(&chain.chain.sponsor_signer),
    );

    let (code, report, stderr) = check(&toml, &[relayer.clone(), sponsor.clone()]).await;
    assert_eq!(code, 0, "{report} {stderr}");
    assert_eq!(report["ok"], true);
    let names: Vec<&str> = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|check| check["name"].as_str().expect("name"))
        .collect();
    for expected in [
        "configuration",
        "master key",
        "relayers",
        "chain",
        "sponsorship",
    ] {
        assert!(names.contains(&expected), "{expected} checked: {report}");
    }
    let master = latchkey::keys::MasterKey::from_hex(crate::daemon::MASTER_KEY).expect("key");
    assert!(
        check_detail(&report, "master key").contains(&master.id_hex()),
        "{report}"
    );
    assert!(
        names.contains(&format!("relayer {}", chain.chain.relayer.address()).as_str()),
        "{report}"
    );

    // An approving key the paymaster does not accept.
    let stranger = (
        "LATCHKEY_SPONSOR_SIGNER_KEY",
        key(&PrivateKeySigner::random()),
    );
    let (code, report, _) = check(&toml, &[relayer.clone(), stranger]).await;
    assert_eq!(code, 1, "{report}");
    assert_eq!(failed(&report), ["chain"], "{report}");
    let detail = check_detail(&report, "chain");
    assert!(detail.contains("accepts approvals from"), "{detail}");

    // A relayer with no ETH.
    let unfunded = PrivateKeySigner::random();
    let (code, report, _) = check(
        &toml,
        &[
            ("LATCHKEY_RELAYER_PRIVATE_KEY", key(&unfunded)),
            sponsor.clone(),
        ],
    )
    .await;
    assert_eq!(code, 1, "{report}");
    assert_eq!(
        failed(&report),
        [format!("relayer {}", unfunded.address()).as_str()],
        "{report}"
    );

    // A master key that is not one is an invalid configuration, named but never shown.
    let bad_key = "not-a-master-key-0123456789abcdef";
    let (code, report, stderr) = check(
        &toml,
        &[
            relayer.clone(),
            sponsor.clone(),
            ("LATCHKEY_MASTER_KEY", bad_key.to_owned()),
        ],
    )
    .await;
    assert_eq!(code, 3, "{report} {stderr}");
    assert!(stderr.contains("keys.master_key"), "{stderr}");
    assert!(!stderr.contains(bad_key), "{stderr}");

    // An invalid field stops the check before anything else.
    let (code, report, stderr) = check(
        &format!("{toml}\n[relayer]\nfee_bump_percent = 5\n"),
        &[relayer, sponsor],
    )
    .await;
    assert_eq!(code, 3, "{report} {stderr}");
    assert!(stderr.contains("relayer.fee_bump_percent"), "{stderr}");
}

/// Runs `latchkey <args>` with `env` and no other LATCHKEY_* variable.
async fn latchkey(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_latchkey"));
    command.args(args);
    for (name, _) in std::env::vars() {
        if name.starts_with("LATCHKEY_") {
            command.env_remove(name);
        }
    }
    command.envs(env.iter().copied());
    command.output().await.expect("run latchkey")
}

#[tokio::test]
async fn a_variable_reaches_the_settings_and_its_flag_beats_it() {
    let relayer = PrivateKeySigner::random();
    let relayer_key = key(&relayer);
    let env = [
        ("LATCHKEY_RELAYER_PRIVATE_KEY", relayer_key.as_str()),
        ("LATCHKEY_MASTER_KEY", crate::daemon::MASTER_KEY),
        ("LATCHKEY_DATA_DIR", "/from/env"),
    ];
    let offline = ["config", "check", "--offline", "--json"];
    let report = |output: &std::process::Output| -> Value {
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("a JSON report")
    };

    let from_env = report(&latchkey(&offline, &env).await);
    assert!(
        check_detail(&from_env, "data_dir").starts_with("/from/env "),
        "{from_env}"
    );
    assert!(
        check_detail(&from_env, "relayers").contains(&relayer.address().to_string()),
        "{from_env}"
    );

    let with_flag = [offline.as_slice(), &["--data-dir", "/from/flag"]].concat();
    let from_flag = report(&latchkey(&with_flag, &env).await);
    assert!(
        check_detail(&from_flag, "data_dir").starts_with("/from/flag "),
        "{from_flag}"
    );

    // A bad value from the environment is an invalid configuration, named by its field.
    let bad = [env.as_slice(), &[("LATCHKEY_LISTEN", "nowhere")]].concat();
    let output = latchkey(&offline, &bad).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("`listen`"), "{stderr}");
}

#[tokio::test]
async fn help_names_the_variables_and_never_shows_a_secret_value() {
    let secrets = [
        ("LATCHKEY_MASTER_KEY", crate::daemon::MASTER_KEY),
        ("LATCHKEY_ADMIN_TOKEN", "admin-token-value-0123456789abcdef"),
        ("LATCHKEY_RELAYER_PRIVATE_KEY", "relayer-key-value"),
        ("LATCHKEY_RELAYER_MNEMONIC", "mnemonic-value"),
        ("LATCHKEY_SPONSOR_SIGNER_KEY", "sponsor-key-value"),
    ];
    for args in [&["serve", "--help"][..], &["config", "check", "--help"]] {
        let output = latchkey(args, &secrets).await;
        let help = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{help}");
        for (name, value) in secrets {
            assert!(help.contains(name), "{args:?} names {name}: {help}");
            assert!(
                !help.contains(value),
                "{args:?} shows the value of {name}: {help}"
            );
        }
    }
}
