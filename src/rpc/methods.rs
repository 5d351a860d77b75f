//! The methods: each reads its positional parameters by name, calls the use case and
//! writes the result in ERC-7769's shapes.

use alloy::{
    primitives::{Address, B256, U256},
    providers::Provider,
    rpc::types::{Log, TransactionReceipt},
    sol_types::SolEvent,
};
use serde_json::{Value, json};

use super::{
    error::{RpcError, address, codes, hex_u64, refusal},
    user_op::{self, Completeness, kind, quantity},
};
use crate::{
    app::{App, has_receipt},
    auth::{Caller, Scope},
    chain::{
        contracts::EntryPoint,
        simulation::{StateOverrides, state_override},
    },
    intent::Intent,
    policy::PolicyId,
};

/// Every method served, with the scope its caller needs.
pub const METHODS: [(&str, Scope); 10] = [
    ("eth_chainId", Scope::Read),
    ("eth_supportedEntryPoints", Scope::Read),
    ("eth_sendUserOperation", Scope::Write),
    ("eth_estimateUserOperationGas", Scope::Read),
    ("eth_getUserOperationByHash", Scope::Read),
    ("eth_getUserOperationReceipt", Scope::Read),
    ("pimlico_getUserOperationGasPrice", Scope::Read),
    ("rundler_maxPriorityFeePerGas", Scope::Read),
    ("pm_getPaymasterStubData", Scope::Write),
    ("pm_getPaymasterData", Scope::Write),
];

/// Answers `method` with `params` for `caller`.
pub(super) async fn call(
    app: &App,
    caller: &Caller,
    method: &str,
    params: &[Value],
) -> Result<Value, RpcError> {
    let Some((_, scope)) = METHODS.iter().find(|(name, _)| *name == method) else {
        return Err(RpcError::new(
            codes::METHOD_NOT_FOUND,
            format!(
                "{} is not a method of this bundler; it serves {}",
                user_op::shortened(method),
                METHODS.map(|(name, _)| name).join(", ")
            ),
        ));
    };
    if !caller.scopes.contains(*scope) {
        return Err(RpcError::new(
            codes::UNAUTHORIZED,
            format!("{method} needs the {scope} scope, which this API key lacks"),
        )
        .with_data(json!({ "reason": "SCOPE_MISSING", "scope": scope.name() })));
    }
    let tenant = caller.tenant.as_ref();
    match method {
        "eth_chainId" => {
            arity(params, 0, 0)?;
            Ok(json!(hex_u64(app.chain().chain_id())))
        }
        "eth_supportedEntryPoints" => {
            arity(params, 0, 0)?;
            Ok(json!([address(app.entry_point())]))
        }
        "eth_sendUserOperation" => {
            arity(params, 2, 2)?;
            let op = user_op::parse(&params[0], "params[0]", Completeness::Signed)?;
            let entry_point = address_param(&params[1], "params[1]")?;
            let Some(tenant) = tenant else {
                return Err(RpcError::new(
                    codes::UNAUTHORIZED,
                    "operations are sent by an API key of a tenant",
                ));
            };
            let hash = app
                .send_user_operation(tenant, op, entry_point)
                .await
                .map_err(refusal)?;
            Ok(json!(hash))
        }
        "eth_estimateUserOperationGas" => {
            arity(params, 2, 3)?;
            let op = user_op::parse(&params[0], "params[0]", Completeness::Draft)?;
            let entry_point = address_param(&params[1], "params[1]")?;
            let overrides = match params.get(2) {
                None | Some(Value::Null) => StateOverrides::new(),
                Some(value) => serde_json::from_value(value.clone()).map_err(|error| {
                    RpcError::invalid_param(
                        "params[2]",
                        format!("not a state override (address to balance, nonce, code, state or stateDiff): {error}"),
                    )
                })?,
            };
            if overrides.contains_key(&app.entry_point()) {
                return Err(RpcError::invalid_param(
                    "params[2]",
                    "the EntryPoint's own state cannot be overridden: the simulation replaces its code",
                ));
            }
            let estimate = app
                .estimate_user_operation_gas(op, entry_point, &state_override(overrides))
                .await
                .map_err(refusal)?;
            let mut result = json!({
                "preVerificationGas": quantity(estimate.pre_verification_gas),
                "verificationGasLimit": quantity(U256::from(estimate.verification_gas_limit)),
                "callGasLimit": quantity(U256::from(estimate.call_gas_limit)),
            });
            if estimate.paymaster_verification_gas_limit > 0 {
                result["paymasterVerificationGasLimit"] = json!(quantity(U256::from(
                    estimate.paymaster_verification_gas_limit
                )));
                result["paymasterPostOpGasLimit"] =
                    json!(quantity(U256::from(estimate.paymaster_post_op_gas_limit)));
            }
            Ok(result)
        }
        "eth_getUserOperationByHash" => {
            arity(params, 1, 1)?;
            let hash = hash_param(&params[0], "params[0]")?;
            let Some(intent) = app.user_operation(tenant, hash).await.map_err(refusal)? else {
                return Ok(Value::Null);
            };
            Ok(by_hash(&intent))
        }
        "eth_getUserOperationReceipt" => {
            arity(params, 1, 1)?;
            let hash = hash_param(&params[0], "params[0]")?;
            let Some(intent) = app.user_operation(tenant, hash).await.map_err(refusal)? else {
                return Ok(Value::Null);
            };
            receipt(app, &intent).await
        }
        "pimlico_getUserOperationGasPrice" => {
            arity(params, 0, 0)?;
            let price = app.user_operation_gas_price().await.map_err(refusal)?;
            let tier = json!({
                "maxFeePerGas": quantity(U256::from(price.max_fee_per_gas)),
                "maxPriorityFeePerGas": quantity(U256::from(price.max_priority_fee_per_gas)),
            });
            Ok(json!({ "slow": tier, "standard": tier, "fast": tier }))
        }
        "rundler_maxPriorityFeePerGas" => {
            arity(params, 0, 0)?;
            let price = app.user_operation_gas_price().await.map_err(refusal)?;
            Ok(json!(quantity(U256::from(price.max_priority_fee_per_gas))))
        }
        "pm_getPaymasterStubData" | "pm_getPaymasterData" => {
            arity(params, 4, 4)?;
            let op = user_op::parse(&params[0], "params[0]", Completeness::Draft)?;
            let entry_point = address_param(&params[1], "params[1]")?;
            let chain_id = chain_id_param(&params[2], "params[2]")?;
            let policy = policy_param(&params[3], "params[3]")?;
            let Some(tenant) = tenant else {
                return Err(RpcError::new(
                    codes::UNAUTHORIZED,
                    "sponsorship is asked for by an API key of a tenant",
                ));
            };
            let stub = method == "pm_getPaymasterStubData";
            let fields = if stub {
                app.paymaster_stub_data(tenant, &op, (entry_point, chain_id), &policy)
                    .await
            } else {
                app.paymaster_data(tenant, &op, (entry_point, chain_id), &policy)
                    .await
            }
            .map_err(refusal)?;
            let mut result = json!({
                "paymaster": fields.paymaster,
                "paymasterData": fields.paymaster_data,
                "paymasterVerificationGasLimit": quantity(U256::from(fields.verification_gas_limit)),
                "paymasterPostOpGasLimit": quantity(U256::from(fields.post_op_gas_limit)),
            });
            if stub {
                result["sponsor"] = json!({ "name": fields.sponsor_name });
                result["isFinal"] = json!(false);
            }
            Ok(result)
        }
        _ => unreachable!("every method of METHODS is answered above"),
    }
}

fn arity(params: &[Value], least: usize, most: usize) -> Result<(), RpcError> {
    if (least..=most).contains(&params.len()) {
        return Ok(());
    }
    let expected = if least == most {
        format!("{least}")
    } else {
        format!("{least} to {most}")
    };
    Err(RpcError::new(
        codes::INVALID_PARAMS,
        format!(
            "params: expected {expected} parameter(s), got {}",
            params.len()
        ),
    )
    .with_data(json!({ "field": "params" })))
}

fn address_param(value: &Value, field: &str) -> Result<Address, RpcError> {
    match value {
        Value::String(text) if text.len() == 42 && text.starts_with("0x") => {
            text.parse().map_err(|_| {
                RpcError::invalid_param(field, "expected an address, 0x and 40 hex digits")
            })
        }
        other => Err(RpcError::invalid_param(
            field,
            format!(
                "expected an address, 0x and 40 hex digits, got {}",
                describe(other)
            ),
        )),
    }
}

fn chain_id_param(value: &Value, field: &str) -> Result<u64, RpcError> {
    let parsed = match value {
        Value::String(text) => text
            .strip_prefix("0x")
            .and_then(|digits| u64::from_str_radix(digits, 16).ok()),
        _ => None,
    };
    parsed.ok_or_else(|| {
        RpcError::invalid_param(
            field,
            format!(
                "expected a chain id as a hex quantity, got {}",
                describe(value)
            ),
        )
    })
}

/// The policy an ERC-7677 context names: `{"policyId": "policies/pol_…"}` (or the bare id).
fn policy_param(value: &Value, field: &str) -> Result<PolicyId, RpcError> {
    let Value::Object(context) = value else {
        return Err(RpcError::invalid_param(
            field,
            format!(
                "expected a context object with a policyId, got {}",
                describe(value)
            ),
        ));
    };
    let field = format!("{field}.policyId");
    match context.get("policyId") {
        Some(Value::String(text)) => {
            PolicyId::parse(text.strip_prefix("policies/").unwrap_or(text)).ok_or_else(|| {
                RpcError::invalid_param(
                    &field,
                    format!(
                        "{:?} is not a policy: expected policies/pol_…",
                        user_op::shortened(text)
                    ),
                )
            })
        }
        Some(other) => Err(RpcError::invalid_param(
            &field,
            format!("expected a string, got {}", kind(other)),
        )),
        None => Err(RpcError::invalid_param(
            &field,
            "is required: the policy that sponsors the operation",
        )),
    }
}

fn hash_param(value: &Value, field: &str) -> Result<B256, RpcError> {
    match value {
        Value::String(text) if text.len() == 66 && text.starts_with("0x") => {
            text.parse().map_err(|_| {
                RpcError::invalid_param(field, "expected a userOpHash, 0x and 64 hex digits")
            })
        }
        other => Err(RpcError::invalid_param(
            field,
            format!(
                "expected a userOpHash, 0x and 64 hex digits, got {}",
                describe(other)
            ),
        )),
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::String(text) => format!("{:?}", user_op::shortened(text)),
        other => kind(other).to_owned(),
    }
}

/// `eth_getUserOperationByHash`'s result: the operation, and where it was included
/// (nulls until it is).
fn by_hash(intent: &Intent) -> Value {
    let included = intent.result.as_ref().filter(|_| has_receipt(intent));
    json!({
        "userOperation": user_op::to_json(&intent.user_op),
        "entryPoint": address(intent.entry_point),
        "blockNumber": included.map(|result| hex_u64(result.block_number)),
        "blockHash": included.map(|result| result.block_hash),
        "transactionHash": included.map(|result| result.tx_hash),
    })
}

/// `eth_getUserOperationReceipt`'s result, once the operation is in a block: its outcome
/// from the `UserOperationEvent`, the logs of its own execution and the transaction's
/// receipt. `null` before (and after a reorg took it out).
async fn receipt(app: &App, intent: &Intent) -> Result<Value, RpcError> {
    let Some(result) = intent.result.as_ref().filter(|_| has_receipt(intent)) else {
        return Ok(Value::Null);
    };
    let receipt: Option<TransactionReceipt> = app
        .chain()
        .provider()
        .get_transaction_receipt(result.tx_hash)
        .await
        .map_err(|error| {
            RpcError::new(codes::INTERNAL_ERROR, format!("the chain failed: {error}"))
        })?;
    let Some(receipt) = receipt.filter(|receipt| receipt.block_hash == Some(result.block_hash))
    else {
        // The chain moved on since the relay last looked: not in a block as far as it knows.
        return Ok(Value::Null);
    };
    let logs = own_logs(
        receipt.inner.logs(),
        intent.entry_point,
        intent.user_op_hash,
    );
    Ok(json!({
        "userOpHash": intent.user_op_hash,
        "entryPoint": address(intent.entry_point),
        "sender": intent.user_op.sender,
        "nonce": quantity(intent.user_op.nonce),
        "paymaster": intent.user_op.paymaster.unwrap_or(Address::ZERO),
        "actualGasCost": quantity(result.actual_cost),
        "actualGasUsed": quantity(result.gas_used),
        "success": result.success,
        "reason": result.revert.as_ref().map(|revert| revert.reason.clone()).unwrap_or_default(),
        "logs": logs,
        "receipt": receipt,
    }))
}

/// The logs an operation's execution emitted: those after the bundle's `BeforeExecution`
/// or the previous operation's `UserOperationEvent`, up to its own `UserOperationEvent`.
fn own_logs(logs: &[Log], entry_point: Address, hash: B256) -> Vec<Log> {
    let is_boundary = |log: &Log| {
        log.address() == entry_point
            && log.topics().first().is_some_and(|topic| {
                *topic == EntryPoint::UserOperationEvent::SIGNATURE_HASH
                    || *topic == EntryPoint::BeforeExecution::SIGNATURE_HASH
            })
    };
    let Some(end) = logs.iter().position(|log| {
        log.address() == entry_point
            && log.topics().first() == Some(&EntryPoint::UserOperationEvent::SIGNATURE_HASH)
            && log.topics().get(1) == Some(&hash)
    }) else {
        return Vec::new();
    };
    let start = logs[..end]
        .iter()
        .rposition(is_boundary)
        .map_or(0, |boundary| boundary + 1);
    logs[start..end].to_vec()
}
