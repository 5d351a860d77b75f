//! The operator's sponsorship commands, run as the real `latchkey` binary against a live
//! daemon: `policy create|list|show|disable` and `paymaster balance|deposit`, each with its
//! `--json` output parsed, and their errors.

use alloy::{
    primitives::{U256, utils::parse_ether},
    providers::ext::AnvilApi,
    signers::local::PrivateKeySigner,
};
use serde_json::Value;

use crate::{daemon::TestDaemon, harness::TestChain};

/// Runs `latchkey <args>` against `daemon`, with `env`; returns (success, stdout, stderr).
async fn latchkey(
    daemon: &TestDaemon,
    args: &[&str],
    env: &[(&str, &str)],
) -> (bool, String, String) {
    let endpoint = format!("http://{}", daemon.addr);
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_latchkey"));
    command
        .args(args)
        .args(["--endpoint", &endpoint])
        .env("LATCHKEY_API_KEY", &daemon.api_key)
        .env_remove("LATCHKEY_FUNDER_PRIVATE_KEY")
        .env_remove("LATCHKEY_RPC_URL");
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().await.expect("run latchkey");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs a command that must succeed and print JSON.
async fn json(daemon: &TestDaemon, args: &[&str], env: &[(&str, &str)]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let (ok, stdout, stderr) = latchkey(daemon, &all, env).await;
    assert!(ok, "latchkey {args:?} failed: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|error| panic!("{error}: {stdout}"))
}

#[tokio::test]
async fn operators_create_list_show_and_disable_policies_and_fund_the_paymaster() {
    let chain = TestChain::start().await;
    let daemon = TestDaemon::start(&chain).await;
    let game = chain.chain.deployment.game_items.to_string();
    let mint_rule = format!("contract:{game}:mint(address,uint256,uint256)");

    let created = json(
        &daemon,
        &[
            "policy",
            "create",
            "--name",
            "season 1",
            "--rule",
            "account:register,revoke,deploy",
            "--rule",
            &mint_rule,
            "--rule",
            "ops:100/1h",
            "--rule",
            "spend:0.5ether/1d",
        ],
        &[],
    )
    .await;
    let name = created["name"].as_str().expect("name").to_owned();
    assert!(name.starts_with("policies/pol_"), "{created}");
    assert_eq!(created["display_name"], "season 1");
    assert_eq!(created["enabled"], true);
    assert_eq!(created["chain_id"], chain.chain_id());
    let rules: Vec<&str> = created["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|rule| rule.as_str().expect("a spec"))
        .collect();
    assert_eq!(
        rules,
        [
            "account:register,revoke,deploy",
            mint_rule.as_str(),
            "ops:100/1h",
            "spend:0.5ether/1d"
        ],
        "rules print back as the specs they came from"
    );
    assert_eq!(created["windows"].as_array().expect("windows").len(), 2);

    let listed = json(&daemon, &["policy", "list"], &[]).await;
    let names: Vec<&str> = listed
        .as_array()
        .expect("a list")
        .iter()
        .map(|policy| policy["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, [name.as_str()]);

    let id = name.trim_start_matches("policies/");
    let shown = json(&daemon, &["policy", "show", id], &[]).await;
    assert_eq!(shown["name"], name.as_str());
    assert_eq!(shown["usage"]["settled"]["operations"], 0);

    let disabled = json(&daemon, &["policy", "disable", &name], &[]).await;
    assert_eq!(disabled["enabled"], false);
    let (ok, stdout, _) = latchkey(&daemon, &["policy", "show", &name], &[]).await;
    assert!(ok);
    assert!(
        stdout.starts_with(&name),
        "the human view opens with the name: {stdout}"
    );

    // Errors: a bad spec is refused before anything is sent; the daemon's refusals are
    // printed with their code.
    let (ok, _, stderr) = latchkey(
        &daemon,
        &["policy", "create", "--name", "x", "--rule", "ops:10/1w"],
        &[],
    )
    .await;
    assert!(!ok);
    assert!(stderr.contains("ops:10/1w"), "{stderr}");
    let (ok, _, stderr) = latchkey(
        &daemon,
        &["policy", "create", "--name", " x", "--rule", "op-gas:1"],
        &[],
    )
    .await;
    assert!(!ok);
    assert!(
        stderr.contains("INVALID_ARGUMENT") && stderr.contains("display_name"),
        "{stderr}"
    );
    let (ok, _, stderr) = latchkey(
        &daemon,
        &["policy", "show", "pol_01JAAAAAAAAAAAAAAAAAAAAAAA"],
        &[],
    )
    .await;
    assert!(!ok);
    assert!(stderr.contains("NOT_FOUND"), "{stderr}");

    // The paymaster: its balance, then a deposit from a funder key given in the environment.
    let balance = json(&daemon, &["paymaster", "balance"], &[]).await;
    assert_eq!(balance["address"], chain.chain.paymaster.to_string());
    assert_eq!(
        balance["signer"],
        chain.chain.sponsor_signer.address().to_string()
    );
    let before: U256 = balance["deposit_wei"]
        .as_str()
        .expect("deposit")
        .parse()
        .expect("wei");
    let funder = PrivateKeySigner::random();
    chain
        .chain
        .provider
        .anvil_set_balance(funder.address(), parse_ether("10").expect("constant"))
        .await
        .expect("fund the funder");
    let key = format!("0x{}", alloy::hex::encode(funder.to_bytes()));
    let rpc = chain.chain.rpc_url().to_string();
    let deposit = json(
        &daemon,
        &[
            "paymaster",
            "deposit",
            "--amount",
            "1.5ether",
            "--rpc-url",
            &rpc,
        ],
        &[("LATCHKEY_FUNDER_PRIVATE_KEY", key.as_str())],
    )
    .await;
    let after: U256 = deposit["paymaster"]["deposit_wei"]
        .as_str()
        .expect("deposit")
        .parse()
        .expect("wei");
    assert_eq!(after - before, parse_ether("1.5").expect("constant"));
    let on_chain = chain
        .entry_point()
        .balanceOf(chain.chain.paymaster)
        .call()
        .await
        .expect("deposit");
    assert_eq!(on_chain, after);

    let (ok, stdout, stderr) = latchkey(
        &daemon,
        &[
            "paymaster",
            "deposit",
            "--amount",
            "1ether",
            "--rpc-url",
            &rpc,
        ],
        &[],
    )
    .await;
    assert!(!ok, "no funder key: {stdout}");
    assert!(stderr.contains("LATCHKEY_FUNDER_PRIVATE_KEY"), "{stderr}");
    assert!(!stderr.contains(&key[2..]) && !stdout.contains(&key[2..]));
}
