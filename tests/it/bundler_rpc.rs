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
        rpc.call("eth_chainId", json!([])).await.unwrap(),
        json!(format!("{:#x}", chain.chain_id()))
    );
    assert_eq!(
        rpc.call("eth_supportedEntryPoints", json!([]))
            .await
            .unwrap(),
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
            estimate[field].as_str().unwrap().trim_start_matches("0x"),
            16,
        )
        .unwrap()
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
        .unwrap();

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
        .unwrap_err();
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
        .unwrap();
    assert_eq!(count, 1);

    let found = rpc
        .call("eth_getUserOperationByHash", json!([hash]))
        .await
        .unwrap();
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
            .unwrap(),
        Value::Null
    );
    assert_eq!(
        rpc.call("eth_getUserOperationByHash", json!([B256::ZERO]))
            .await
            .unwrap(),
        Value::Null
    );
    daemon.stop().await;
}
