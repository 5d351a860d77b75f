//! The bundler JSON-RPC over a real socket, against a real anvil and the EntryPoint
//! package's SimpleAccount: operations accepted, relayed and their receipts served; every
//! refusal code with a crafted operation; and hostile input, which gets the right JSON-RPC
//! error and writes nothing.

use std::time::Duration;

use alloy::{
    primitives::{Address, B256, Bytes, U256},
    signers::local::PrivateKeySigner,
    sol_types::{SolCall, SolEvent},
};
use latchkey::chain::{
    contracts::{Counter, SimpleAccountFactory, simple_account::SimpleAccount},
    signature::sign_hash,
    user_operation::UserOperation,
};
use serde_json::{Value, json};

use crate::{daemon::TestDaemon, harness::TestChain};

/// A JSON-RPC client of the daemon's bundler endpoint.
pub struct Rpc {
    url: String,
    http: alloy::transports::http::reqwest::Client,
    authorization: Option<String>,
}

impl Rpc {
    pub fn new(daemon: &TestDaemon) -> Self {
        Self {
            url: format!(
                "http://{}/",
                daemon
                    .jsonrpc_addr
                    .expect("test daemons serve the JSON-RPC")
            ),
            http: alloy::transports::http::reqwest::Client::new(),
            authorization: Some(format!("Bearer {}", daemon.api_key)),
        }
    }

    /// Posts `body` as it is; the HTTP status and the parsed answer (`null` when empty).
    pub async fn post(&self, body: impl Into<Vec<u8>>) -> (u16, Value) {
        let mut request = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .body(body.into());
        if let Some(authorization) = &self.authorization {
            request = request.header("authorization", authorization);
        }
        let response = request.send().await.expect("the JSON-RPC answers");
        let status = response.status().as_u16();
        let text = response.text().await.expect("a body");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON, not {text:?}"))
        };
        (status, value)
    }

    /// Calls `method` with `params`: its result, or its error object.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, Value> {
        let (_, answer) = self
            .post(
                json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params })
                    .to_string(),
            )
            .await;
        match answer.get("error") {
            Some(error) => Err(error.clone()),
            None => Ok(answer["result"].clone()),
        }
    }
}

fn hex_u128(value: u128) -> String {
    format!("{value:#x}")
}

/// A player with a SimpleAccount: its owner key and counterfactual address.
pub struct SimplePlayer {
    pub owner: PrivateKeySigner,
    pub sender: Address,
    pub factory: Address,
}

impl SimplePlayer {
    /// A fresh owner with a funded counterfactual SimpleAccount.
    pub async fn new(chain: &TestChain) -> Self {
        let owner = PrivateKeySigner::random();
        let factory = chain.chain.samples.simple_account_factory;
        let sender = SimpleAccountFactory::new(factory, &chain.relayer)
            .getAddress(owner.address(), U256::ZERO)
            .call()
            .await
            .expect("getAddress");
        chain.fund(sender).await;
        Self {
            owner,
            sender,
            factory,
        }
    }

    /// An unsigned operation that counts once on the Counter, deploying the account when
    /// `deploy`, under `nonce`, with generous gas and the given fees.
    pub fn op(
        &self,
        chain: &TestChain,
        nonce: U256,
        deploy: bool,
        fees: (u128, u128),
    ) -> UserOperation {
        let call = SimpleAccount::executeCall {
            target: chain.chain.samples.counter,
            value: U256::ZERO,
            data: Counter::countCall {}.abi_encode().into(),
        };
        UserOperation {
            sender: self.sender,
            nonce,
            factory: deploy.then_some(self.factory),
            factory_data: if deploy {
                SimpleAccountFactory::createAccountCall {
                    owner: self.owner.address(),
                    salt: U256::ZERO,
                }
                .abi_encode()
                .into()
            } else {
                Bytes::new()
            },
            call_data: call.abi_encode().into(),
            call_gas_limit: 100_000,
            verification_gas_limit: 500_000,
            pre_verification_gas: U256::from(80_000),
            max_fee_per_gas: fees.0,
            max_priority_fee_per_gas: fees.1,
            ..UserOperation::default()
        }
    }

    /// `op` signed by the owner, as SimpleAccount checks it: the bare userOpHash.
    pub fn sign(&self, chain: &TestChain, mut op: UserOperation) -> UserOperation {
        let hash = op
            .hash_v08(chain.chain.deployment.entry_point, chain.chain_id())
            .expect("hash");
        op.signature = sign_hash(&self.owner, hash).expect("sign");
        op
    }
}

/// `op` as ERC-7769 writes it.
pub fn rpc_op(op: &UserOperation) -> Value {
    let mut value = json!({
        "sender": op.sender,
        "nonce": format!("{:#x}", op.nonce),
        "callData": op.call_data,
        "callGasLimit": hex_u128(op.call_gas_limit),
        "verificationGasLimit": hex_u128(op.verification_gas_limit),
        "preVerificationGas": format!("{:#x}", op.pre_verification_gas),
        "maxFeePerGas": hex_u128(op.max_fee_per_gas),
        "maxPriorityFeePerGas": hex_u128(op.max_priority_fee_per_gas),
        "signature": op.signature,
    });
    if let Some(factory) = op.factory {
        value["factory"] = json!(factory);
        value["factoryData"] = json!(op.factory_data);
    }
    if let Some(paymaster) = op.paymaster {
        value["paymaster"] = json!(paymaster);
        value["paymasterVerificationGasLimit"] =
            json!(hex_u128(op.paymaster_verification_gas_limit));
        value["paymasterPostOpGasLimit"] = json!(hex_u128(op.paymaster_post_op_gas_limit));
        value["paymasterData"] = json!(op.paymaster_data);
    }
    value
}

/// The fees the bundler accepts now, from its own gas-price method.
pub async fn fees(rpc: &Rpc) -> (u128, u128) {
    let price = rpc
        .call("pimlico_getUserOperationGasPrice", json!([]))
        .await
        .expect("gas price");
    let read = |field: &str| {
        u128::from_str_radix(
            price["fast"][field]
                .as_str()
                .expect("a quantity")
                .trim_start_matches("0x"),
            16,
        )
        .expect("hex")
    };
    (read("maxFeePerGas"), read("maxPriorityFeePerGas"))
}

/// Polls `eth_getUserOperationReceipt` until it is not null.
pub async fn wait_receipt(rpc: &Rpc, hash: &Value) -> Value {
    for _ in 0..300 {
        let receipt = rpc
            .call("eth_getUserOperationReceipt", json!([hash]))
            .await
            .expect("receipt call");
        if !receipt.is_null() {
            return receipt;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no receipt for {hash} within 30 s");
}

fn entry_point(chain: &TestChain) -> Value {
    json!(chain.chain.deployment.entry_point)
}

#[tokio::test]
async fn a_simple_account_operation_is_estimated_accepted_relayed_and_served() {
    let chain = TestChain::start().await;
    let daemon = TestDaemon::start(&chain).await;
    let rpc = Rpc::new(&daemon);

    assert_eq!(
        rpc.call("eth_chainId", json!([])).await.expect("answered"),
        json!(format!("{:#x}", chain.chain_id()))
    );
    assert_eq!(
        rpc.call("eth_supportedEntryPoints", json!([]))
            .await
            .expect("as set up"),
        json!([chain.chain.deployment.entry_point.to_checksum(None)])
    );

    let player = SimplePlayer::new(&chain).await;
    let fees = fees(&rpc).await;
    // Estimated with a stub signature of the right shape from another key.
    let stub = SimplePlayer {
        owner: PrivateKeySigner::random(),
        sender: player.sender,
        factory: player.factory,
    };
    let draft = stub.sign(&chain, player.op(&chain, U256::ZERO, true, fees));
    let estimate = rpc
        .call(
            "eth_estimateUserOperationGas",
            json!([rpc_op(&draft), entry_point(&chain)]),
        )
        .await
        .expect("an estimate");
    let gas = |field: &str| {
        u128::from_str_radix(
            estimate[field]
                .as_str()
                .expect("a string")
                .trim_start_matches("0x"),
            16,
        )
        .expect("as set up")
    };
    let mut op = player.op(&chain, U256::ZERO, true, fees);
    op.call_gas_limit = gas("callGasLimit");
    op.verification_gas_limit = gas("verificationGasLimit");
    op.pre_verification_gas = U256::from(gas("preVerificationGas"));
    assert!(
        op.verification_gas_limit > 100_000,
        "deployment and validation: {estimate}"
    );
    assert!(
        op.call_gas_limit > 20_000 && op.call_gas_limit < 200_000,
        "{estimate}"
    );
    let op = player.sign(&chain, op);
    let expected_hash = op
        .hash_v08(chain.chain.deployment.entry_point, chain.chain_id())
        .expect("as set up");

    let hash = rpc
        .call(
            "eth_sendUserOperation",
            json!([rpc_op(&op), entry_point(&chain)]),
        )
        .await
        .expect("accepted");
    assert_eq!(hash, json!(expected_hash));
    // Sent again while on its way: refused, nothing written twice.
    let again = rpc
        .call(
            "eth_sendUserOperation",
            json!([rpc_op(&op), entry_point(&chain)]),
        )
        .await
        .expect_err("refused");
    assert_eq!(again["code"], -32602, "{again}");

    let receipt = wait_receipt(&rpc, &hash).await;
    assert_eq!(receipt["success"], json!(true), "{receipt}");
    assert_eq!(receipt["sender"], json!(player.sender));
    assert_eq!(receipt["userOpHash"], hash);
    let counted = Counter::Counted::SIGNATURE_HASH;
    let logs = receipt["logs"].as_array().expect("logs");
    assert!(
        logs.iter().any(|log| log["topics"][0] == json!(counted)),
        "the operation's own Counted event: {receipt}"
    );
    assert!(
        logs.iter()
            .all(|log| log["address"] != json!(chain.chain.deployment.entry_point)),
        "none of the EntryPoint's own events: {receipt}"
    );
    assert_eq!(receipt["receipt"]["status"], json!("0x1"));
    let count = Counter::new(chain.chain.samples.counter, &chain.relayer)
        .counts(player.sender)
        .call()
        .await
        .expect("as set up");
    assert_eq!(count, 1);

    let found = rpc
        .call("eth_getUserOperationByHash", json!([hash]))
        .await
        .expect("as set up");
    assert_eq!(
        found["transactionHash"],
        receipt["receipt"]["transactionHash"]
    );
    assert_eq!(found["userOperation"]["sender"], json!(player.sender));
    assert_eq!(
        found["entryPoint"],
        json!(chain.chain.deployment.entry_point.to_checksum(None))
    );

    // Unknown hashes are null, not errors.
    assert_eq!(
        rpc.call("eth_getUserOperationReceipt", json!([B256::ZERO]))
            .await
            .expect("as set up"),
        Value::Null
    );
    assert_eq!(
        rpc.call("eth_getUserOperationByHash", json!([B256::ZERO]))
            .await
            .expect("as set up"),
        Value::Null
    );
    daemon.stop().await;
}

/// Sends `op` and returns the error it gets, checking that the refusal wrote nothing.
async fn refused_op(
    daemon: &TestDaemon,
    rpc: &Rpc,
    chain: &TestChain,
    op: &UserOperation,
) -> Value {
    let before = daemon.store.content_digest().await.expect("digest");
    let error = rpc
        .call(
            "eth_sendUserOperation",
            json!([rpc_op(op), entry_point(chain)]),
        )
        .await
        .expect_err("refused");
    assert_eq!(
        daemon.store.content_digest().await.expect("digest"),
        before,
        "a refused operation wrote nothing: {error}"
    );
    error
}

/// `op` approved by the SponsorPaymaster's `signer` for `window` (validAfter, validUntil).
fn sponsored(
    chain: &TestChain,
    mut op: UserOperation,
    paymaster: Address,
    signer: &PrivateKeySigner,
    (valid_after, valid_until): (u64, u64),
) -> UserOperation {
    let sponsorship = latchkey::chain::sponsor::Sponsorship {
        paymaster,
        verification_gas_limit: 100_000,
        post_op_gas_limit: 0,
        valid_until,
        valid_after,
    };
    latchkey::chain::sponsor::approve(&mut op, &sponsorship, chain.chain_id(), signer)
        .expect("approve");
    op
}

#[tokio::test]
async fn each_refusal_gets_its_erc7769_code_and_writes_nothing() {
    let chain = TestChain::start().await;
    let daemon = TestDaemon::start_with(&chain, |config| {
        config.jsonrpc.max_operations_per_sender = 1;
    })
    .await;
    let rpc = Rpc::new(&daemon);
    let fees = fees(&rpc).await;
    let player = SimplePlayer::new(&chain).await;
    let first = || player.op(&chain, U256::ZERO, true, fees);

    // -32602: a field wrong as given, named.
    let mut bad = rpc_op(&player.sign(&chain, first()));
    bad["callGasLimit"] = json!("0xZZ");
    let error = rpc
        .call("eth_sendUserOperation", json!([bad, entry_point(&chain)]))
        .await
        .expect_err("refused");
    assert_eq!(error["code"], -32602, "{error}");
    assert_eq!(error["data"]["field"], "params[0].callGasLimit", "{error}");
    let error = rpc
        .call(
            "eth_sendUserOperation",
            json!([
                rpc_op(&player.sign(&chain, first())),
                Address::repeat_byte(7)
            ]),
        )
        .await
        .expect_err("refused");
    assert_eq!(
        (error["code"].clone(), error["data"]["field"].clone()),
        (json!(-32602), json!("params[1]")),
        "{error}"
    );

    // -32500: the EntryPoint refuses (AA25, a nonce the account is not at).
    let error = refused_op(
        &daemon,
        &rpc,
        &chain,
        &player.sign(&chain, player.op(&chain, U256::from(5), true, fees)),
    )
    .await;
    assert_eq!(error["code"], -32500, "{error}");
    assert!(
        error["message"]
            .as_str()
            .expect("a string")
            .starts_with("AA25"),
        "{error}"
    );

    // -32507: signed by another key.
    let stranger = SimplePlayer {
        owner: PrivateKeySigner::random(),
        sender: player.sender,
        factory: player.factory,
    };
    let error = refused_op(&daemon, &rpc, &chain, &stranger.sign(&chain, first())).await;
    assert_eq!(error["code"], -32507, "{error}");

    // -32501: the paymaster's validation reverts (an approval of the wrong length).
    let mut op = sponsored(
        &chain,
        first(),
        chain.chain.paymaster,
        &chain.chain.sponsor_signer,
        (0, 0),
    );
    op.paymaster_data = Bytes::from(vec![1, 2, 3]);
    let error = refused_op(&daemon, &rpc, &chain, &player.sign(&chain, op)).await;
    assert_eq!(error["code"], -32501, "{error}");
    assert_eq!(
        error["data"]["paymaster"],
        json!(chain.chain.paymaster),
        "{error}"
    );

    // -32503: the paymaster's approval window closed an hour ago.
    let now = chain.latest_timestamp().await;
    let op = sponsored(
        &chain,
        first(),
        chain.chain.paymaster,
        &chain.chain.sponsor_signer,
        (0, now - 3600),
    );
    let error = refused_op(&daemon, &rpc, &chain, &player.sign(&chain, op)).await;
    assert_eq!(error["code"], -32503, "{error}");
    assert_eq!(
        error["data"]["validUntil"],
        json!(format!("{:#x}", now - 3600)),
        "{error}"
    );
    assert_eq!(
        error["data"]["paymaster"],
        json!(chain.chain.paymaster),
        "{error}"
    );

    // -32508: a paymaster with no deposit.
    let broke_signer = PrivateKeySigner::random();
    let broke = latchkey::chain::deploy::deploy_paymaster(
        &chain.relayer,
        chain.chain.deployment.entry_point,
        chain.chain.dev_accounts()[0],
        broke_signer.address(),
        U256::ZERO,
    )
    .await
    .expect("deploy an unfunded paymaster");
    let op = sponsored(&chain, first(), broke, &broke_signer, (0, 0));
    let error = refused_op(&daemon, &rpc, &chain, &player.sign(&chain, op)).await;
    assert_eq!(error["code"], -32508, "{error}");
    assert_eq!(error["data"]["paymaster"], json!(broke), "{error}");

    // -32504: with the relay paused, the sender's one operation stays on its way, and a
    // second one under another nonce key is over the limit of one.
    let mut admin = crate::daemon::admin_client(daemon.admin_addr.expect("served")).await;
    admin
        .pause_relay(latchkey::api::proto::PauseRelayRequest {
            reason: "hold the queue".into(),
        })
        .await
        .expect("pause");
    rpc.call(
        "eth_sendUserOperation",
        json!([rpc_op(&player.sign(&chain, first())), entry_point(&chain)]),
    )
    .await
    .expect("the first is accepted");
    let other_key = U256::from(1) << 64;
    let error = refused_op(
        &daemon,
        &rpc,
        &chain,
        &player.sign(&chain, player.op(&chain, other_key, true, fees)),
    )
    .await;
    assert_eq!(error["code"], -32504, "{error}");
    assert_eq!(error["data"]["sender"], json!(player.sender), "{error}");
    daemon.stop().await;
}

#[tokio::test]
async fn hostile_input_gets_the_right_json_rpc_error_and_writes_nothing() {
    let chain = TestChain::start().await;
    let daemon = TestDaemon::start(&chain).await;
    let rpc = Rpc::new(&daemon);
    let fees = fees(&rpc).await;
    let player = SimplePlayer::new(&chain).await;
    let good_op = rpc_op(&player.sign(&chain, player.op(&chain, U256::ZERO, true, fees)));
    let send = |op: Value| {
        json!({ "jsonrpc": "2.0", "id": 1, "method": "eth_sendUserOperation", "params": [op, entry_point(&chain)] })
            .to_string()
    };
    let with = |field: &str, value: Value| {
        let mut op = good_op.clone();
        op[field] = value;
        send(op)
    };
    let call = |method: &str, params: Value| {
        json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params }).to_string()
    };
    let ten_thousand = format!(
        "[{}]",
        vec![call("eth_chainId", json!([])); 10_000].join(",")
    );
    let oversize = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":["{}"]}}"#,
        "a".repeat(1024 * 1024)
    );
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let long_call_data = format!("0x{}", "ab".repeat(64 * 1024 + 1));

    // (case, body, HTTP status, JSON-RPC code, what the message starts with)
    let table: Vec<(&str, String, u16, i64, &str)> = vec![
        (
            "malformed JSON",
            r#"{"jsonrpc":"2.0","#.to_owned(),
            200,
            -32700,
            "the body is not JSON",
        ),
        (
            "not JSON at all",
            "hello".to_owned(),
            200,
            -32700,
            "the body is not JSON",
        ),
        (
            "nested 100,000 deep",
            deep,
            200,
            -32700,
            "the body is not JSON",
        ),
        (
            "a number",
            "42".to_owned(),
            200,
            -32600,
            "a call must be a JSON object",
        ),
        (
            "an empty batch",
            "[]".to_owned(),
            200,
            -32600,
            "the batch is empty",
        ),
        (
            "a batch of 10,000 calls",
            ten_thousand,
            200,
            -32600,
            "the batch has 10000 calls",
        ),
        (
            "oversize",
            oversize,
            413,
            -32600,
            "the request body is larger than 1048576 bytes",
        ),
        (
            "no jsonrpc member",
            r#"{"id":1,"method":"eth_chainId"}"#.to_owned(),
            200,
            -32600,
            "jsonrpc must be \"2.0\"",
        ),
        (
            "params an object",
            r#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":{"a":1}}"#.to_owned(),
            200,
            -32600,
            "params must be an array",
        ),
        (
            "an unknown method",
            call("eth_sendTransaction", json!([])),
            200,
            -32601,
            "eth_sendTransaction is not a method",
        ),
        (
            "a method name of 10,000 bytes",
            call(&"m".repeat(10_000), json!([])),
            200,
            -32601,
            "mmmm",
        ),
        (
            "too many params",
            call("eth_chainId", json!([1])),
            200,
            -32602,
            "params: expected 0 parameter(s), got 1",
        ),
        (
            "too few params",
            call("eth_sendUserOperation", json!([good_op.clone()])),
            200,
            -32602,
            "params: expected 2",
        ),
        (
            "the operation a string",
            send(json!("0x00")),
            200,
            -32602,
            "params[0]: expected a user operation object, got a string",
        ),
        (
            "the nonce a number",
            with("nonce", json!(0)),
            200,
            -32602,
            "params[0].nonce: expected a 0x-prefixed hex string, got a number",
        ),
        (
            "the sender too short",
            with("sender", json!("0x1234")),
            200,
            -32602,
            "params[0].sender: \"0x1234\" is not an address",
        ),
        (
            "callData not hex",
            with("callData", json!("0xgg")),
            200,
            -32602,
            "params[0].callData: \"0xgg\" is not hex",
        ),
        (
            "callData too long",
            with("callData", json!(long_call_data)),
            200,
            -32602,
            "params[0].callData: is 65537 bytes long",
        ),
        (
            "a gas limit over 128 bits",
            with("callGasLimit", json!(format!("0x1{}", "0".repeat(32)))),
            200,
            -32602,
            "params[0].callGasLimit: does not fit in 128 bits",
        ),
        (
            "an unknown field",
            with("initCode", json!("0x")),
            200,
            -32602,
            "params[0].initCode: is not a field",
        ),
        (
            "factory without factoryData",
            {
                let mut op = good_op.clone();
                op.as_object_mut().expect("an object").remove("factoryData");
                send(op)
            },
            200,
            -32602,
            "params[0].factoryData: is required with factory",
        ),
        (
            "the entry point a number",
            call("eth_sendUserOperation", json!([good_op.clone(), 5])),
            200,
            -32602,
            "params[1]: expected an address",
        ),
        (
            "a userOpHash too short",
            call("eth_getUserOperationReceipt", json!(["0x12"])),
            200,
            -32602,
            "params[0]: expected a userOpHash",
        ),
        (
            "a state override of the wrong shape",
            call(
                "eth_estimateUserOperationGas",
                json!([good_op.clone(), entry_point(&chain), {"0x12": 5}]),
            ),
            200,
            -32602,
            "params[2]: not a state override",
        ),
    ];
    let before = daemon.store.content_digest().await.expect("digest");
    for (case, body, status, code, message) in table {
        let (got_status, answer) = rpc.post(body).await;
        assert_eq!(got_status, status, "{case}: {answer}");
        let error = &answer["error"];
        assert_eq!(error["code"], json!(code), "{case}: {answer}");
        let text = error["message"].as_str().unwrap_or_default();
        assert!(text.starts_with(message), "{case}: {text}");
        assert!(
            text.len() < 2_000,
            "{case}: the message repeats no hostile input at length"
        );
        assert_eq!(
            daemon.store.content_digest().await.expect("digest"),
            before,
            "{case} wrote nothing"
        );
    }

    // A batch answers each call in order, the good ones too.
    let (_, answer) = rpc
        .post(format!(
            "[{},{},{}]",
            call("eth_chainId", json!([])),
            "7",
            call("nope", json!([]))
        ))
        .await;
    let answers = answer.as_array().expect("a batch answer");
    assert_eq!(answers.len(), 3);
    assert_eq!(
        answers[0]["result"],
        json!(format!("{:#x}", chain.chain_id()))
    );
    assert_eq!(answers[1]["error"]["code"], -32600);
    assert_eq!(answers[2]["error"]["code"], -32601);

    // A notification gets no answer.
    let (status, answer) = rpc
        .post(r#"{"jsonrpc":"2.0","method":"eth_chainId","params":[]}"#)
        .await;
    assert_eq!((status, answer), (204, Value::Null));

    // Without a key, or with a wrong one: 401, and nothing is read.
    for authorization in [None, Some("Bearer lk_nope".to_owned())] {
        let stranger = Rpc {
            authorization,
            ..Rpc::new(&daemon)
        };
        let (status, answer) = stranger.post(call("eth_chainId", json!([]))).await;
        assert_eq!(status, 401, "{answer}");
        assert_eq!(answer["error"]["code"], -32001, "{answer}");
    }
    assert_eq!(daemon.store.content_digest().await.expect("digest"), before);
    daemon.stop().await;
}

#[tokio::test]
async fn a_validation_that_breaks_an_erc7562_rule_is_refused_with_32502() {
    use alloy::providers::ext::AnvilApi;

    let chain = TestChain::start().await;
    let daemon = TestDaemon::start(&chain).await;
    let rpc = Rpc::new(&daemon);
    let fees = fees(&rpc).await;
    // An account whose validateUserOp reads the block's timestamp, then approves anything:
    // TIMESTAMP POP, then return a zero word. Its EntryPoint deposit pays the prefund.
    let account = Address::repeat_byte(0x42);
    chain
        .relayer
        .anvil_set_code(
            account,
            Bytes::from_static(&[
                0x42, 0x50, 0x60, 0x00, 0x60, 0x00, 0x52, 0x60, 0x20, 0x60, 0x00, 0xf3,
            ]),
        )
        .await
        .expect("etch");
    latchkey::chain::deploy::top_up_deposit(
        &chain.relayer,
        chain.chain.deployment.entry_point,
        account,
        alloy::primitives::utils::parse_ether("1").expect("as set up"),
    )
    .await
    .expect("deposit");
    let op = UserOperation {
        sender: account,
        call_data: Bytes::new(),
        call_gas_limit: 50_000,
        verification_gas_limit: 100_000,
        pre_verification_gas: U256::from(60_000),
        max_fee_per_gas: fees.0,
        max_priority_fee_per_gas: fees.1,
        signature: Bytes::from(vec![1]),
        ..UserOperation::default()
    };
    let error = refused_op(&daemon, &rpc, &chain, &op).await;
    assert_eq!(error["code"], -32502, "{error}");
    assert_eq!(error["data"]["rule"], "OP-011", "{error}");
    assert_eq!(error["data"]["opcode"], "TIMESTAMP", "{error}");
    assert_eq!(error["data"]["entity"], "account", "{error}");
    daemon.stop().await;
}

/// `op` with the paymaster fields of a paymaster service's answer.
fn with_paymaster(mut op: UserOperation, fields: &Value) -> UserOperation {
    let quantity = |name: &str| {
        u128::from_str_radix(
            fields[name]
                .as_str()
                .expect("a string")
                .trim_start_matches("0x"),
            16,
        )
        .expect("a hex quantity")
    };
    op.paymaster = Some(
        fields["paymaster"]
            .as_str()
            .expect("a string")
            .parse()
            .expect("parses"),
    );
    op.paymaster_data = fields["paymasterData"]
        .as_str()
        .expect("a string")
        .parse()
        .expect("parses");
    op.paymaster_verification_gas_limit = quantity("paymasterVerificationGasLimit");
    op.paymaster_post_op_gas_limit = quantity("paymasterPostOpGasLimit");
    op
}

#[tokio::test]
async fn the_paymaster_service_sponsors_an_account_with_no_eth_under_a_policy() {
    use alloy::providers::{Provider, ext::AnvilApi};

    use crate::sponsorship::{
        contract_functions, create_policy, get_policy, open_policy, pending_operations, settled,
    };

    let chain = TestChain::start().await;
    let mut daemon = TestDaemon::start(&chain).await;
    let rpc = Rpc::new(&daemon);
    let policy = open_policy(&mut daemon.api).await;
    let context = json!({ "policyId": policy.name });
    let chain_id = json!(format!("{:#x}", chain.chain_id()));
    let fees = fees(&rpc).await;
    let player = SimplePlayer::new(&chain).await;
    chain
        .relayer
        .anvil_set_balance(player.sender, U256::ZERO)
        .await
        .expect("as set up");
    let stranger = SimplePlayer {
        owner: PrivateKeySigner::random(),
        sender: player.sender,
        factory: player.factory,
    };

    // The stub: the approval's length, then an estimate with it.
    let draft = player.op(&chain, U256::ZERO, true, fees);
    let stub = rpc
        .call(
            "pm_getPaymasterStubData",
            json!([
                rpc_op(&stranger.sign(&chain, draft.clone())),
                entry_point(&chain),
                chain_id,
                context
            ]),
        )
        .await
        .expect("stub data");
    assert_eq!(stub["isFinal"], json!(false), "{stub}");
    assert_eq!(
        stub["sponsor"]["name"],
        json!(policy.display_name),
        "{stub}"
    );
    let stubbed = stranger.sign(&chain, with_paymaster(draft.clone(), &stub));
    let estimate = rpc
        .call(
            "eth_estimateUserOperationGas",
            json!([rpc_op(&stubbed), entry_point(&chain)]),
        )
        .await
        .expect("an estimate with the stub");
    let gas = |field: &str| {
        u128::from_str_radix(
            estimate[field]
                .as_str()
                .expect("a string")
                .trim_start_matches("0x"),
            16,
        )
        .expect("as set up")
    };
    let mut op = with_paymaster(draft, &stub);
    op.call_gas_limit = gas("callGasLimit");
    op.verification_gas_limit = gas("verificationGasLimit");
    op.pre_verification_gas = U256::from(gas("preVerificationGas"));
    op.paymaster_verification_gas_limit = gas("paymasterVerificationGasLimit");
    op.paymaster_post_op_gas_limit = gas("paymasterPostOpGasLimit");
    op.signature = Bytes::new();

    // The approval, then the account's signature over the operation that carries it.
    let mut unsigned = rpc_op(&op);
    unsigned["signature"] = json!("0x");
    let approval = rpc
        .call(
            "pm_getPaymasterData",
            json!([unsigned, entry_point(&chain), chain_id, context]),
        )
        .await
        .expect("paymaster data");
    assert_eq!(
        approval["paymasterData"].as_str().expect("a string").len(),
        stub["paymasterData"].as_str().expect("a string").len(),
        "stub and final data are the same length"
    );
    assert_eq!(
        pending_operations(&get_policy(&mut daemon.api, &policy.name).await),
        1
    );
    let op = player.sign(&chain, with_paymaster(op, &approval));
    let hash = rpc
        .call(
            "eth_sendUserOperation",
            json!([rpc_op(&op), entry_point(&chain)]),
        )
        .await
        .expect("the sponsored operation is accepted");
    let receipt = wait_receipt(&rpc, &hash).await;
    assert_eq!(receipt["success"], json!(true), "{receipt}");
    assert_eq!(
        receipt["paymaster"],
        json!(chain.chain.paymaster),
        "{receipt}"
    );
    assert_eq!(
        chain
            .relayer
            .get_balance(player.sender)
            .await
            .expect("the chain answers"),
        U256::ZERO,
        "the account paid nothing"
    );
    // Settled from the receipt, as an intent's charge is.
    let mut settled_now = (0, U256::ZERO);
    for _ in 0..100 {
        settled_now = settled(&get_policy(&mut daemon.api, &policy.name).await);
        if settled_now.0 == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cost: U256 = receipt["actualGasCost"]
        .as_str()
        .expect("a string")
        .parse()
        .expect("parses");
    assert_eq!(settled_now, (1, cost));

    // A policy that covers other calls refuses, by its rule, and writes nothing.
    let narrow = create_policy(
        &mut daemon.api,
        "another contract",
        vec![contract_functions(&[(
            &Address::repeat_byte(9).to_string(),
            "*",
        )])],
    )
    .await;
    let before = daemon.store.content_digest().await.expect("digest");
    let draft = player.op(&chain, U256::from(1), false, fees);
    let error = rpc
        .call(
            "pm_getPaymasterData",
            json!([rpc_op(&draft), entry_point(&chain), chain_id, { "policyId": narrow.name }]),
        )
        .await
        .expect_err("refused");
    assert_eq!(error["code"], -32602, "{error}");
    assert_eq!(error["data"]["reason"], "POLICY_REFUSED", "{error}");
    let error = rpc
        .call(
            "pm_getPaymasterData",
            json!([rpc_op(&draft), entry_point(&chain), chain_id, { "policyId": "policies/pol_01J00000000000000000000000" }]),
        )
        .await
        .expect_err("refused");
    assert_eq!(error["data"]["field"], "params[3].policyId", "{error}");
    assert_eq!(daemon.store.content_digest().await.expect("digest"), before);
    daemon.stop().await;
}
