//! Every `--json` output of the operator CLI, run as the real binary against a live daemon
//! and chain, held against golden files in `tests/it/golden/`: the keys in their order, the
//! nesting, the JSON type of every value, status and kind names, and every deterministic
//! value exactly. What differs from run to run (ids, addresses, hashes, times, balances and
//! measured numbers) is replaced by a marker that keeps its kind, such as `<hex:40>`.
//!
//! `LATCHKEY_BLESS=1 cargo test --test it cli_json` rewrites the golden files from what the
//! binary prints now.

use std::{fmt::Write as _, path::PathBuf};

use alloy::{
    primitives::utils::parse_ether, providers::ext::AnvilApi, signers::local::PrivateKeySigner,
};
use latchkey::api::proto;
use serde::{Deserialize, Serialize};

use crate::{
    daemon::{
        ADMIN_TOKEN, MASTER_KEY, TestDaemon, account_address, mint_interaction,
        mint_session_request,
    },
    harness::{TestChain, bare_anvil},
};

// ---------------------------------------------------------------------------------------
// JSON with its keys in the order printed.
// ---------------------------------------------------------------------------------------

/// A JSON value that keeps the order of an object's keys, which `serde_json::Value` sorts.
#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Integer(i128),
    Float(f64),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Json;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_unit<E>(self) -> Result<Json, E> {
                Ok(Json::Null)
            }
            fn visit_none<E>(self) -> Result<Json, E> {
                Ok(Json::Null)
            }
            fn visit_bool<E>(self, value: bool) -> Result<Json, E> {
                Ok(Json::Bool(value))
            }
            fn visit_i64<E>(self, value: i64) -> Result<Json, E> {
                Ok(Json::Integer(value.into()))
            }
            fn visit_u64<E>(self, value: u64) -> Result<Json, E> {
                Ok(Json::Integer(value.into()))
            }
            fn visit_f64<E>(self, value: f64) -> Result<Json, E> {
                Ok(Json::Float(value))
            }
            fn visit_str<E>(self, value: &str) -> Result<Json, E> {
                Ok(Json::String(value.to_owned()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Json::Array(items))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Json::Object(entries))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl Serialize for Json {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self {
            Json::Null => serializer.serialize_unit(),
            Json::Bool(value) => serializer.serialize_bool(*value),
            Json::Integer(value) => serializer.serialize_i128(*value),
            Json::Float(value) => serializer.serialize_f64(*value),
            Json::String(value) => serializer.serialize_str(value),
            Json::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Json::Object(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (key, value) in entries {
                    map.serialize_entry(key, value)?;
                }
                map.end()
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// What varies from run to run, replaced by markers.
// ---------------------------------------------------------------------------------------

/// Keys whose numbers are measured, counted from the chain, or times: their values become
/// `<integer>` or `<float>`. Every other number is deterministic and kept.
const MEASURED: &[&str] = &[
    "uptime_seconds",
    "block",
    "block_age_seconds",
    "relay_lag_blocks",
    "last_pass_block",
    "nonce",
    "relayer_nonce",
    "block_number",
    "valid_after",
    "valid_until",
];

/// Reports whose every number is measured: the load generator's.
const ALL_MEASURED: &str = "*";

fn normalize(value: &Json, key: Option<&str>, measured: &[&str]) -> Json {
    let is_measured = |key: Option<&str>| {
        measured.contains(&ALL_MEASURED) || key.is_some_and(|key| measured.contains(&key))
    };
    match value {
        Json::Integer(_) if is_measured(key) => Json::String("<integer>".to_owned()),
        Json::Float(_) if is_measured(key) => Json::String("<float>".to_owned()),
        Json::Float(value) if value.fract() != 0.0 => Json::String("<float>".to_owned()),
        Json::String(text) => Json::String(normalize_text(text)),
        Json::Array(items) => {
            // Lists of varying length collapse to their distinct elements, in order.
            let mut distinct: Vec<Json> = Vec::new();
            for item in items {
                let item = normalize(item, key, measured);
                if !distinct.contains(&item) {
                    distinct.push(item);
                }
            }
            Json::Array(distinct)
        }
        Json::Object(entries) => Json::Object(
            entries
                .iter()
                .map(|(key, value)| (key.clone(), normalize(value, Some(key), measured)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A string with its volatile parts replaced: a whole RFC 3339 time is `<time>`, a whole
/// decimal is `<decimal>`; inside any text, `0x` hex is `<hex:N>` (N digits), a ULID is
/// `<ulid>`, bare hex of 8 digits or more is `<hex:N>`, a run of 5 digits or more is
/// `<digits>`, and a temporary directory is `<tmp>`. Words, such as status names, stay.
fn normalize_text(text: &str) -> String {
    if humantime::parse_rfc3339(text).is_ok() {
        return "<time>".to_owned();
    }
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return "<decimal>".to_owned();
    }
    let mut out = String::new();
    let mut token = String::new();
    let flush = |token: &mut String, out: &mut String| {
        if !token.is_empty() {
            out.push_str(&normalize_token(token));
            token.clear();
        }
    };
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            token.push(c);
        } else {
            flush(&mut token, &mut out);
            out.push(c);
        }
    }
    flush(&mut token, &mut out);
    out
}

fn normalize_token(token: &str) -> String {
    let is_hex = |text: &str| !text.is_empty() && text.bytes().all(|b| b.is_ascii_hexdigit());
    if let Some(digits) = token.strip_prefix("0x").filter(|digits| is_hex(digits)) {
        return format!("<hex:{}>", digits.len());
    }
    if token.len() == 26
        && token
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
        && token.bytes().any(|b| b.is_ascii_digit())
    {
        return "<ulid>".to_owned();
    }
    if token.len() >= 8 && is_hex(token) && token.bytes().any(|b| b.is_ascii_digit()) {
        return format!("<hex:{}>", token.len());
    }
    if token.len() >= 5 && token.bytes().all(|b| b.is_ascii_digit()) {
        return "<digits>".to_owned();
    }
    if token.starts_with("tmp") && token.len() > 3 {
        return "<tmp>".to_owned();
    }
    token.to_owned()
}

// ---------------------------------------------------------------------------------------
// Golden files.
// ---------------------------------------------------------------------------------------

/// The outputs of one story, checked against their golden files at the end.
struct Golden {
    mismatches: Vec<String>,
    bless: bool,
}

impl Golden {
    fn new() -> Self {
        Self {
            mismatches: Vec::new(),
            bless: std::env::var_os("LATCHKEY_BLESS").is_some_and(|value| value == "1"),
        }
    }

    fn path(label: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/it/golden")
            .join(format!("{label}.json"))
    }

    /// Checks one command's output (one JSON document, or one per line) under `label`.
    fn check(&mut self, label: &str, stdout: &str, measured: &[&str]) {
        let documents: Vec<Json> = serde_json::Deserializer::from_str(stdout)
            .into_iter::<Json>()
            .collect::<Result<_, _>>()
            .unwrap_or_else(|error| panic!("{label}: not JSON ({error}): {stdout}"));
        assert!(!documents.is_empty(), "{label}: printed nothing");
        let normalized: Vec<Json> = documents
            .iter()
            .map(|document| normalize(document, None, measured))
            .collect();
        let mut text = String::new();
        for document in &normalized {
            let _ = writeln!(
                text,
                "{}",
                serde_json::to_string_pretty(document).expect("serializes")
            );
        }
        let path = Self::path(label);
        if self.bless {
            std::fs::create_dir_all(path.parent().expect("a parent")).expect("golden dir");
            std::fs::write(&path, &text).expect("write golden");
            return;
        }
        match std::fs::read_to_string(&path) {
            Ok(golden) if golden == text => {}
            Ok(golden) => self.mismatches.push(format!(
                "{label} ({}):\n--- golden\n{golden}\n+++ now\n{text}",
                path.display()
            )),
            Err(error) => self.mismatches.push(format!(
                "{label}: no golden file {} ({error})",
                path.display()
            )),
        }
    }

    fn finish(self) {
        assert!(
            self.mismatches.is_empty(),
            "the --json output changed (LATCHKEY_BLESS=1 rewrites the golden files, if the \
             change is meant and documented):\n\n{}",
            self.mismatches.join("\n\n")
        );
    }
}

// ---------------------------------------------------------------------------------------
// Running the binary.
// ---------------------------------------------------------------------------------------

/// Runs `latchkey <args>` with `env` (and no other LATCHKEY_* variable that matters),
/// asserts it exits 0 and returns its stdout.
async fn run(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_latchkey"));
    command.args(args).env("RUST_LOG", "warn");
    for (name, _) in std::env::vars() {
        if name.starts_with("LATCHKEY_") {
            command.env_remove(name);
        }
    }
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().await.expect("run latchkey");
    assert!(
        output.status.success(),
        "latchkey {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8")
}

/// The endpoints and credentials of `daemon`, as the CLI reads them.
fn daemon_env(daemon: &TestDaemon) -> Vec<(&'static str, String)> {
    vec![
        (
            "LATCHKEY_ADMIN_ENDPOINT",
            format!("http://{}", daemon.admin_addr.expect("the admin service")),
        ),
        ("LATCHKEY_ADMIN_TOKEN", ADMIN_TOKEN.to_owned()),
        ("LATCHKEY_ENDPOINT", format!("http://{}", daemon.addr)),
        ("LATCHKEY_API_KEY", daemon.api_key.clone()),
    ]
}

fn pairs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'a str, &'a str)> {
    env.iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect()
}

fn key(signer: &PrivateKeySigner) -> String {
    format!("0x{}", alloy::hex::encode(signer.to_bytes()))
}

/// The `id` of a JSON document printed by the CLI.
fn id_of(stdout: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(stdout).expect("JSON");
    value["id"].as_str().expect("an id").to_owned()
}

// ---------------------------------------------------------------------------------------
// The stories.
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_operator_commands_print_the_same_json() {
    let mut golden = Golden::new();
    let chain = TestChain::start().await;
    let mut daemon = TestDaemon::start(&chain).await;
    let session = daemon
        .active_held_session(&chain, &PrivateKeySigner::random(), 10)
        .await;
    let minted = daemon.create_mint(&chain, &session, 1).await;
    daemon.wait_final(&minted.name).await;

    let funder = PrivateKeySigner::random();
    chain
        .chain
        .provider
        .anvil_set_balance(funder.address(), parse_ether("5000").expect("constant"))
        .await
        .expect("fund the funder");
    let funder_key = key(&funder);
    let rpc = chain.chain.rpc_url().to_string();
    let env = daemon_env(&daemon);
    let mut with_funder = env.clone();
    with_funder.push(("LATCHKEY_FUNDER_PRIVATE_KEY", funder_key.clone()));
    with_funder.push(("LATCHKEY_RPC_URL", rpc.clone()));
    let (env, with_funder) = (pairs(&env), pairs(&with_funder));
    let measured = MEASURED;

    // The daemon and its relay.
    let out = run(&["status", "--json"], &env).await;
    golden.check("status", &out, measured);
    let out = run(&["relayer", "list", "--json"], &env).await;
    golden.check("relayer_list", &out, measured);
    let out = run(&["relayer", "pause", "--reason", "golden", "--json"], &env).await;
    golden.check("relayer_pause", &out, measured);
    let out = run(&["relayer", "resume", "--json"], &env).await;
    golden.check("relayer_resume", &out, measured);
    let out = run(
        &["relayer", "fund", "--up-to", "2000ether", "--json"],
        &with_funder,
    )
    .await;
    golden.check("relayer_fund_sent", &out, measured);
    let out = run(
        &["relayer", "fund", "--up-to", "1ether", "--json"],
        &with_funder,
    )
    .await;
    golden.check("relayer_fund_nothing", &out, measured);

    // Sessions and intents.
    let out = run(&["session", "list", "--json"], &env).await;
    golden.check("session_list", &out, measured);
    let out = run(&["session", "show", &session.id, "--json"], &env).await;
    golden.check("session_show", &out, measured);
    let out = run(&["intent", "list", "--json"], &env).await;
    golden.check("intent_list", &out, measured);
    let out = run(&["intent", "show", &minted.id, "--json"], &env).await;
    golden.check("intent_show", &out, measured);
    let out = run(&["intent", "watch", &minted.id, "--json"], &env).await;
    golden.check("intent_watch", &out, measured);

    // Sponsorship policies and the paymaster.
    let game = chain.chain.deployment.game_items.to_string();
    let mint_rule = format!("contract:{game}:mint(address,uint256,uint256)");
    let out = run(
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
            "--rule",
            "op-gas:3000000",
            "--json",
        ],
        &env,
    )
    .await;
    golden.check("policy_create", &out, measured);
    let policy = id_of(&out);
    let out = run(&["policy", "list", "--json"], &env).await;
    golden.check("policy_list", &out, measured);

    // A session and an intent the policy sponsors.
    let policy_name = format!("policies/{policy}");
    let owner = PrivateKeySigner::random();
    let mut request = mint_session_request(&chain, owner.address(), 10).await;
    request.policy = policy_name.clone();
    let sponsored = daemon
        .sessions
        .create_session(request)
        .await
        .expect("create a sponsored session")
        .into_inner();
    let sponsored = daemon.sign_and_activate(&owner, sponsored).await;
    let account = account_address(&sponsored.account).to_string();
    let paid = daemon
        .intents
        .create_transaction_intent(proto::CreateTransactionIntentRequest {
            session: sponsored.name.clone(),
            interactions: vec![mint_interaction(&chain, &account, 2, 1)],
            idempotency_key: "golden".to_owned(),
            policy: policy_name,
        })
        .await
        .expect("create a sponsored intent")
        .into_inner();
    daemon.wait_final(&paid.name).await;
    let out = run(&["session", "show", &sponsored.id, "--json"], &env).await;
    golden.check("session_show_sponsored", &out, measured);
    let out = run(&["intent", "show", &paid.id, "--json"], &env).await;
    golden.check("intent_show_sponsored", &out, measured);
    let out = run(&["policy", "show", &policy, "--json"], &env).await;
    golden.check("policy_show", &out, measured);
    let out = run(&["policy", "disable", &policy, "--json"], &env).await;
    golden.check("policy_disable", &out, measured);
    let out = run(&["paymaster", "balance", "--json"], &env).await;
    golden.check("paymaster_balance", &out, measured);
    let out = run(
        &["paymaster", "deposit", "--amount", "1.5ether", "--json"],
        &with_funder,
    )
    .await;
    golden.check("paymaster_deposit", &out, measured);

    // API keys.
    let out = run(
        &[
            "api-key",
            "create",
            "--tenant",
            "golden",
            "--scope",
            "read,write",
            "--name",
            "golden key",
            "--json",
        ],
        &env,
    )
    .await;
    golden.check("api_key_create", &out, measured);
    let created = id_of(&out);
    let out = run(&["api-key", "list", "--json"], &env).await;
    golden.check("api_key_list", &out, measured);
    let out = run(&["api-key", "revoke", &created, "--json"], &env).await;
    golden.check("api_key_revoke", &out, measured);

    // A revocation, last: it changes the session.
    let out = run(&["session", "revoke", &session.id, "--json"], &env).await;
    golden.check("session_revoke", &out, measured);

    // The master key, rotated on the stopped daemon's store.
    let dir = daemon.keep_dir();
    let data_dir = daemon.data_dir.to_str().expect("UTF-8 path").to_owned();
    daemon.stop().await;
    let out = run(&["keys", "generate", "--json"], &[]).await;
    golden.check("keys_generate", &out, measured);
    let new_key: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let new_key = new_key["master_key"].as_str().expect("a key").to_owned();
    let out = run(
        &["keys", "rotate-master", "--data-dir", &data_dir, "--json"],
        &[
            ("LATCHKEY_MASTER_KEY", MASTER_KEY),
            ("LATCHKEY_NEW_MASTER_KEY", &new_key),
        ],
    )
    .await;
    golden.check("keys_rotate_master", &out, measured);
    drop(dir);

    // The configuration, checked offline and against the chain.
    let config_dir = tempfile::tempdir().expect("temp dir");
    let config = config_dir.path().join("latchkey.toml");
    std::fs::write(
        &config,
        format!(
            "[chain]\nrpc_url = \"{rpc}\"\nfactory = \"{}\"\n\n[sponsor]\npaymaster = \"{}\"\n",
            chain.chain.deployment.factory, chain.chain.paymaster
        ),
    )
    .expect("write config");
    let config = config.to_str().expect("UTF-8 path");
    let relayer_key = key(&chain.chain.relayer);
    let sponsor_key = key(&chain.chain.sponsor_signer);
    let config_env = [
        ("LATCHKEY_MASTER_KEY", MASTER_KEY),
        ("LATCHKEY_RELAYER_PRIVATE_KEY", relayer_key.as_str()),
        ("LATCHKEY_SPONSOR_SIGNER_KEY", sponsor_key.as_str()),
    ];
    let out = run(
        &["config", "check", "--config", config, "--json"],
        &config_env,
    )
    .await;
    golden.check("config_check", &out, measured);
    let out = run(
        &["config", "check", "--offline", "--config", config, "--json"],
        &config_env,
    )
    .await;
    golden.check("config_check_offline", &out, measured);

    golden.finish();
}

#[tokio::test]
async fn contracts_deploy_prints_the_same_json() {
    let mut golden = Golden::new();
    let anvil = bare_anvil(&[]);
    let rpc_url = anvil.endpoint();
    let deployer_key = format!("0x{}", alloy::hex::encode(anvil.keys()[0].to_bytes()));
    let signer = PrivateKeySigner::from(anvil.keys()[2].clone())
        .address()
        .to_string();
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("latchkey.toml");
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
        config.to_str().expect("UTF-8 path"),
        "--json",
    ];
    let env = [("LATCHKEY_DEPLOYER_PRIVATE_KEY", deployer_key.as_str())];
    let out = run(&args, &env).await;
    golden.check("contracts_deploy_first", &out, MEASURED);
    let out = run(&args, &env).await;
    golden.check("contracts_deploy_again", &out, MEASURED);
    golden.finish();
}

#[tokio::test]
async fn the_load_generator_prints_the_same_json() {
    let mut golden = Golden::new();
    let out = run(
        &[
            "bench",
            "--accounts",
            "1",
            "--intents",
            "2",
            "--concurrency",
            "1",
            "--sponsored",
            "--json",
        ],
        &[],
    )
    .await;
    golden.check("bench", &out, &[ALL_MEASURED]);
    golden.finish();
}
