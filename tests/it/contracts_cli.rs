//! `latchkey contracts deploy`, the real binary against a bare anvil. The first run puts
//! EntryPoint v0.8 at its canonical address, the factory and the paymaster with its deposit
//! on the chain; a second run sends nothing; the config it writes passes `latchkey config
//! check`. A bad key, an unreachable node, a missing flag, an unfunded deployer and a chain
//! without the CREATE2 deployer each fail with a message naming the problem, and the key
//! never shows.

use alloy::{
    node_bindings::AnvilInstance,
    primitives::{Address, Bytes, address, utils::parse_ether},
    providers::{DynProvider, Provider, ProviderBuilder},
    signers::local::PrivateKeySigner,
};
use latchkey::chain::{
    contracts::{CREATE2_DEPLOYER, ENTRY_POINT_V08, EntryPoint, SponsorPaymaster},
    deploy::expected_addresses,
};
use serde_json::Value;

use crate::harness::bare_anvil;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Fails the test if `key` shows anywhere in what the command printed.
    fn assert_hides(&self, key: &str) {
        let bare = key.trim_start_matches("0x").to_ascii_lowercase();
        for (stream, text) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            assert!(
                !text.to_ascii_lowercase().contains(&bare),
                "the private key shows on {stream}:\n{text}"
            );
        }
    }
}

/// Runs `latchkey <args>` with `env` and no other LATCHKEY_* variables that matter here.
async fn latchkey(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_latchkey"));
    command.args(args);
    for name in [
        "LATCHKEY_DEPLOYER_PRIVATE_KEY",
        "LATCHKEY_RELAYER_PRIVATE_KEY",
        "LATCHKEY_RELAYER_MNEMONIC",
        "LATCHKEY_SPONSOR_SIGNER_KEY",
        "LATCHKEY_PAYMASTER",
        "LATCHKEY_FACTORY",
        "LATCHKEY_ENTRY_POINT",
        "LATCHKEY_RPC_URL",
        "LATCHKEY_DATA_DIR",
        "LATCHKEY_MASTER_KEY",
        "LATCHKEY_MASTER_KEY_FILE",
    ] {
        command.env_remove(name);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().await.expect("run latchkey");
    Run {
        code: output.status.code().expect("an exit code"),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// anvil's dev key `index`, as 0x-prefixed hex.
fn dev_key(anvil: &AnvilInstance, index: usize) -> String {
    format!("0x{}", alloy::hex::encode(anvil.keys()[index].to_bytes()))
}

fn dev_signer(anvil: &AnvilInstance, index: usize) -> PrivateKeySigner {
    anvil.keys()[index].clone().into()
}

fn reader(anvil: &AnvilInstance) -> DynProvider {
    ProviderBuilder::new()
        .connect_http(anvil.endpoint_url())
        .erased()
}

fn address_at(json: &Value, pointer: &str) -> Address {
    json.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{pointer} in {json}"))
        .parse()
        .unwrap_or_else(|error| panic!("{pointer}: {error}"))
}

#[tokio::test]
async fn a_first_run_deploys_everything_and_a_second_sends_nothing() {
    let anvil = bare_anvil(&[]);
    let chain = reader(&anvil);
    let rpc_url = anvil.endpoint();
    assert!(
        chain
            .get_code_at(ENTRY_POINT_V08)
            .await
            .expect("getCode")
            .is_empty(),
        "a bare anvil has no EntryPoint"
    );
    let deployer_key = dev_key(&anvil, 0);
    let deployer = dev_signer(&anvil, 0).address();
    let sponsor = dev_signer(&anvil, 2);
    let signer = sponsor.address().to_string();
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("latchkey.toml");
    let config_arg = config.to_str().expect("a UTF-8 path");
    let args = [
        "contracts",
        "deploy",
        "--rpc-url",
        &rpc_url,
        "--paymaster-signer",
        &signer,
        "--deposit",
        "1.5ether",
        "--config-out",
        config_arg,
    ];

    // First run: the key from the environment, JSON on stdout.
    let mut json_args = args.to_vec();
    json_args.push("--json");
    let first = latchkey(
        &json_args,
        &[("LATCHKEY_DEPLOYER_PRIVATE_KEY", &deployer_key)],
    )
    .await;
    first.assert_hides(&deployer_key);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let report: Value = serde_json::from_str(&first.stdout)
        .unwrap_or_else(|error| panic!("{error}: {}", first.stdout));
    assert_eq!(report["chain_id"], 31_337);
    assert_eq!(
        address_at(&report, "/entry_point"),
        address!("4337084D9E255Ff0702461CF8895CE9E3b5Ff108"),
        "EntryPoint v0.8 at its canonical address"
    );
    let factory = address_at(&report, "/factory");
    assert_eq!(factory, expected_addresses(ENTRY_POINT_V08).factory);
    let paymaster = address_at(&report, "/paymaster");
    assert_eq!(
        report["game_items"],
        Value::Null,
        "only with --example-contracts"
    );
    for (key, address) in [
        ("entry_point", ENTRY_POINT_V08),
        ("factory", factory),
        ("paymaster", paymaster),
    ] {
        assert_eq!(
            report["contracts"][key]["status"], "deployed",
            "{key}: {report}"
        );
        assert_eq!(
            address_at(&report, &format!("/contracts/{key}/address")),
            address
        );
        assert!(
            report["contracts"][key]["transaction_hash"].is_string(),
            "{key}: {report}"
        );
        assert!(
            !chain
                .get_code_at(address)
                .await
                .expect("getCode")
                .is_empty(),
            "{key} has code at {address}"
        );
    }
    let on_chain = SponsorPaymaster::new(paymaster, &chain);
    assert_eq!(
        on_chain.signer().call().await.expect("signer"),
        sponsor.address()
    );
    assert_eq!(on_chain.owner().call().await.expect("owner"), deployer);
    assert_eq!(
        on_chain.entryPoint().call().await.expect("entryPoint"),
        ENTRY_POINT_V08
    );
    let deposit = EntryPoint::new(ENTRY_POINT_V08, &chain)
        .balanceOf(paymaster)
        .call()
        .await
        .expect("balanceOf");
    assert_eq!(deposit, parse_ether("1.5").expect("constant"));
    assert_eq!(report["deposit"]["wei"], "1500000000000000000");
    assert_eq!(report["deposit"]["added_wei"], "1500000000000000000");
    assert!(
        first.stderr.contains(
            "[1/4] EntryPoint v0.8 ... deployed at 0x4337084D9E255Ff0702461CF8895CE9E3b5Ff108 (tx "
        ),
        "{}",
        first.stderr
    );
    assert!(first.stderr.contains("chain 31337 at "), "{}", first.stderr);
    assert!(
        first
            .stderr
            .contains("[4/4] paymaster deposit ... topped up"),
        "{}",
        first.stderr
    );

    // Second run: the key on the command line, a table on stdout, nothing sent.
    let nonce = chain.get_transaction_count(deployer).await.expect("nonce");
    let mut flag_args = args.to_vec();
    flag_args.extend(["--private-key", &deployer_key]);
    let second = latchkey(&flag_args, &[]).await;
    second.assert_hides(&deployer_key);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(
        chain.get_transaction_count(deployer).await.expect("nonce"),
        nonce,
        "nothing sent"
    );
    assert!(
        second.stderr.contains("nothing to send"),
        "{}",
        second.stderr
    );
    for line in [
        "[1/4] EntryPoint v0.8 ... already deployed at 0x4337084D9E255Ff0702461CF8895CE9E3b5Ff108",
        &format!("[2/4] SessionKeyAccountFactory ... already deployed at {factory}"),
        &format!("[3/4] SponsorPaymaster ... already deployed at {paymaster}"),
        "[4/4] paymaster deposit ... holds 1.5 ETH",
    ] {
        assert!(second.stderr.contains(line), "{line}:\n{}", second.stderr);
    }
    assert_eq!(
        second.stdout.matches("already deployed").count(),
        3,
        "{}",
        second.stdout
    );
    assert!(
        second.stdout.contains("enough already"),
        "{}",
        second.stdout
    );

    // The config it wrote is one `latchkey serve` accepts, with the keys from the
    // environment: a funded relayer, and the key the paymaster accepts approvals from.
    let data_dir = dir.path().join("data");
    let check = latchkey(
        &["config", "check", "--config", config_arg],
        &[
            ("LATCHKEY_RELAYER_PRIVATE_KEY", &dev_key(&anvil, 1)),
            ("LATCHKEY_SPONSOR_SIGNER_KEY", &dev_key(&anvil, 2)),
            ("LATCHKEY_DATA_DIR", data_dir.to_str().expect("UTF-8")),
            ("LATCHKEY_MASTER_KEY", crate::daemon::MASTER_KEY),
        ],
    )
    .await;
    assert_eq!(check.code, 0, "{}\n{}", check.stdout, check.stderr);
    let written = std::fs::read_to_string(&config).expect("read the config");
    assert!(written.contains(&paymaster.to_string()), "{written}");
    assert!(
        !written.contains("private_key"),
        "no key in the file: {written}"
    );
}

#[tokio::test]
async fn bad_input_fails_naming_the_problem_and_never_shows_the_key() {
    let anvil = bare_anvil(&[]);
    let chain = reader(&anvil);
    let rpc_url = anvil.endpoint();
    let signer = dev_signer(&anvil, 2).address().to_string();
    let deploy = |rpc_url: &str| {
        vec![
            "contracts".to_owned(),
            "deploy".to_owned(),
            "--rpc-url".to_owned(),
            rpc_url.to_owned(),
            "--paymaster-signer".to_owned(),
            signer.clone(),
        ]
    };
    let run = |args: Vec<String>, key: String| async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = latchkey(&args, &[("LATCHKEY_DEPLOYER_PRIVATE_KEY", &key)]).await;
        run.assert_hides(&key);
        run
    };

    let bad_key = format!("0x{}", "de".repeat(20));
    let run_bad_key = run(deploy(&rpc_url), bad_key).await;
    assert_eq!(run_bad_key.code, 1, "{}", run_bad_key.stderr);
    assert!(
        run_bad_key
            .stderr
            .contains("error: the deployer private key")
            && run_bad_key.stderr.contains("not a 32-byte hex key"),
        "{}",
        run_bad_key.stderr
    );

    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let unreachable = format!("http://127.0.0.1:{port}");
    let run_unreachable = run(deploy(&unreachable), dev_key(&anvil, 0)).await;
    assert_eq!(run_unreachable.code, 1, "{}", run_unreachable.stderr);
    assert!(
        run_unreachable
            .stderr
            .contains(&format!("error: cannot reach the chain at {unreachable}")),
        "{}",
        run_unreachable.stderr
    );

    let mut no_signer = deploy(&rpc_url);
    no_signer.truncate(4);
    let run_no_signer = run(no_signer, dev_key(&anvil, 0)).await;
    assert_eq!(run_no_signer.code, 2, "{}", run_no_signer.stderr);
    assert!(
        run_no_signer.stderr.contains("--paymaster-signer"),
        "{}",
        run_no_signer.stderr
    );

    // A deployer without ETH is refused before anything is sent.
    let pauper = PrivateKeySigner::random();
    let pauper_key = format!("0x{}", alloy::hex::encode(pauper.to_bytes()));
    let mut with_deposit = deploy(&rpc_url);
    with_deposit.extend(["--deposit".to_owned(), "1ether".to_owned()]);
    let run_pauper = run(with_deposit, pauper_key).await;
    assert_eq!(run_pauper.code, 1, "{}", run_pauper.stderr);
    assert!(
        run_pauper
            .stderr
            .contains(&format!("the deployer {} holds 0 ETH", pauper.address()))
            && run_pauper.stderr.contains("Nothing was sent"),
        "{}",
        run_pauper.stderr
    );
    assert!(
        chain
            .get_code_at(ENTRY_POINT_V08)
            .await
            .expect("getCode")
            .is_empty(),
        "nothing deployed"
    );
}

#[tokio::test]
async fn a_chain_without_the_create2_deployer_is_told_how_to_get_it() {
    let anvil = bare_anvil(&["--disable-default-create2-deployer"]);
    let chain = ProviderBuilder::new()
        .wallet(dev_signer(&anvil, 0))
        .connect_http(anvil.endpoint_url())
        .erased();
    let rpc_url = anvil.endpoint();
    let key = dev_key(&anvil, 0);
    let args = [
        "contracts",
        "deploy",
        "--rpc-url",
        &rpc_url,
        "--no-paymaster",
    ];
    let env = [("LATCHKEY_DEPLOYER_PRIVATE_KEY", key.as_str())];

    let refused = latchkey(&args, &env).await;
    refused.assert_hides(&key);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    let message = refused.stderr;
    assert!(
        message.contains("no CREATE2 deployer at 0x4e59b44847b379578588920cA78FbF26c0B4956C"),
        "{message}"
    );

    // Doing what the message says puts the deployer there, and then the run succeeds.
    let funded = "0x3fab184622dc19b6109349b94811493bf2a45362";
    assert!(
        message.contains(&format!(
            "send 0.01 ETH to its one-time deployer account {funded}"
        )),
        "{message}"
    );
    let raw = message
        .split("cast publish --rpc-url URL ")
        .nth(1)
        .and_then(|rest| rest.split('`').next())
        .unwrap_or_else(|| panic!("a raw transaction in: {message}"));
    let raw: Bytes = raw.parse().expect("the raw transaction is hex");
    chain
        .send_transaction(
            alloy::rpc::types::TransactionRequest::default()
                .to(funded.parse().expect("address"))
                .value(parse_ether("0.01").expect("constant")),
        )
        .await
        .expect("fund the one-time account")
        .get_receipt()
        .await
        .expect("receipt");
    chain
        .send_raw_transaction(&raw)
        .await
        .expect("publish the presigned transaction")
        .get_receipt()
        .await
        .expect("receipt");

    assert!(
        !chain
            .get_code_at(CREATE2_DEPLOYER)
            .await
            .expect("getCode")
            .is_empty(),
        "the CREATE2 deployer is there now"
    );
    let deployed = latchkey(&args, &env).await;
    deployed.assert_hides(&key);
    assert_eq!(deployed.code, 0, "{}", deployed.stderr);
    assert!(
        !chain
            .get_code_at(ENTRY_POINT_V08)
            .await
            .expect("getCode")
            .is_empty(),
        "EntryPoint deployed"
    );
}
