//! The errors the JSON-RPC answers with: JSON-RPC 2.0's own codes, and ERC-7769's for
//! operations the bundler refuses, each with a message and, where a client can act on it,
//! machine-readable data.

use alloy::primitives::Address;
use serde_json::{Value, json};

use crate::app::BundlerRefusal;

/// The error codes, by name.
pub mod codes {
    /// The body is not JSON.
    pub const PARSE_ERROR: i64 = -32700;
    /// The JSON is not a JSON-RPC request (or a batch of them), or is too large.
    pub const INVALID_REQUEST: i64 = -32600;
    /// No such method.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// A parameter is missing, of the wrong type, or wrong as given.
    pub const INVALID_PARAMS: i64 = -32602;
    /// The chain or the store failed; the call may be retried.
    pub const INTERNAL_ERROR: i64 = -32603;
    /// No credential, or one that is not valid (not standardized; the HTTP status is 401).
    pub const UNAUTHORIZED: i64 = -32001;
    /// The caller's request rate is used up (EIP-1474's "limit exceeded"; HTTP 429).
    pub const LIMIT_EXCEEDED: i64 = -32005;
    /// ERC-7769: refused by the EntryPoint's simulated validation (account or factory).
    pub const REJECTED_BY_ENTRY_POINT: i64 = -32500;
    /// ERC-7769: refused by the paymaster's `validatePaymasterUserOp`.
    pub const REJECTED_BY_PAYMASTER: i64 = -32501;
    /// ERC-7769: the validation breaks an ERC-7562 rule (opcode or storage access).
    pub const BANNED_OPCODE: i64 = -32502;
    /// ERC-7769: the validation's time range does not hold.
    pub const OUT_OF_TIME_RANGE: i64 = -32503;
    /// ERC-7769: an entity of the operation is throttled.
    pub const THROTTLED: i64 = -32504;
    /// ERC-7769: the account asks for a signature aggregator this bundler does not support.
    pub const UNSUPPORTED_AGGREGATOR: i64 = -32506;
    /// ERC-7769: the signature check failed.
    pub const INVALID_SIGNATURE: i64 = -32507;
    /// ERC-7769: the paymaster's deposit cannot pay for the operation.
    pub const PAYMASTER_DEPOSIT_TOO_LOW: i64 = -32508;
    /// ERC-7769: the operation's execution reverts (from gas estimation).
    pub const EXECUTION_REVERTED: i64 = -32521;
}

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    /// The code (see [`codes`]).
    pub code: i64,
    /// What went wrong, and what to do about it.
    pub message: String,
    /// Machine-readable details, when there are any.
    pub data: Option<Value>,
}

impl RpcError {
    /// An error with no data.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// The same error carrying `data`.
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    /// A parameter wrong as given: the message names it (as `params[0].callGasLimit`), and
    /// so does the data.
    pub fn invalid_param(field: &str, message: impl std::fmt::Display) -> Self {
        Self::new(codes::INVALID_PARAMS, format!("{field}: {message}"))
            .with_data(json!({ "field": field }))
    }

    /// The error object as JSON.
    pub fn to_json(&self) -> Value {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(data) = &self.data {
            error["data"] = data.clone();
        }
        error
    }
}

/// A refusal of the operation that is `params[0]`, with the code ERC-7769 gives it.
pub(super) fn refusal(refusal: BundlerRefusal) -> RpcError {
    use BundlerRefusal as R;
    let message = refusal.to_string();
    match refusal {
        R::Invalid { field, message } => {
            let field = match field {
                "entryPoint" => "params[1]".to_owned(),
                "chainId" => "params[2]".to_owned(),
                "context.policyId" => "params[3].policyId".to_owned(),
                "userOperation" => "params[0]".to_owned(),
                field => format!("params[0].{field}"),
            };
            RpcError::invalid_param(&field, message)
        }
        R::EntryPoint(refused) => {
            RpcError::new(codes::REJECTED_BY_ENTRY_POINT, refused.message.clone())
                .with_data(json!({ "reason": refused.message, "explanation": message }))
        }
        R::PolicyRefused(_) => RpcError::new(codes::INVALID_PARAMS, message)
            .with_data(json!({ "field": "params[3].policyId", "reason": "POLICY_REFUSED" })),
        R::RuleViolation(violation) => {
            let mut data = json!({ "entity": violation.entity, "rule": violation.rule });
            if let Some(opcode) = &violation.opcode {
                data["opcode"] = json!(opcode);
            }
            RpcError::new(codes::BANNED_OPCODE, message).with_data(data)
        }
        R::SimulationReverted(reason) => RpcError::new(codes::REJECTED_BY_ENTRY_POINT, message)
            .with_data(json!({ "reason": reason })),
        R::Paymaster { paymaster, refusal } => {
            RpcError::new(codes::REJECTED_BY_PAYMASTER, refusal.message.clone())
                .with_data(json!({ "paymaster": paymaster, "reason": refusal.message }))
        }
        R::OutOfTimeRange {
            valid_after,
            valid_until,
            paymaster,
            ..
        } => {
            let mut data = json!({
                "validAfter": hex_u64(valid_after),
                "validUntil": hex_u64(if valid_until == u64::MAX { 0 } else { valid_until }),
            });
            if let Some(paymaster) = paymaster {
                data["paymaster"] = json!(paymaster);
            }
            RpcError::new(codes::OUT_OF_TIME_RANGE, message).with_data(data)
        }
        R::SenderThrottled { sender, limit } => RpcError::new(codes::THROTTLED, message)
            .with_data(json!({ "sender": sender, "limit": limit })),
        R::UnsupportedAggregator(aggregator) => {
            RpcError::new(codes::UNSUPPORTED_AGGREGATOR, message)
                .with_data(json!({ "aggregator": aggregator }))
        }
        R::SignatureFailed { paymaster } => {
            let error = RpcError::new(codes::INVALID_SIGNATURE, message);
            match paymaster {
                Some(paymaster) => error.with_data(json!({ "paymaster": paymaster })),
                None => error,
            }
        }
        R::PaymasterDepositTooLow { paymaster, refusal } => {
            RpcError::new(codes::PAYMASTER_DEPOSIT_TOO_LOW, message)
                .with_data(json!({ "paymaster": paymaster, "reason": refusal.message }))
        }
        R::ExecutionReverted(reason) => {
            RpcError::new(codes::EXECUTION_REVERTED, message).with_data(json!({ "reason": reason }))
        }
        R::Unavailable(_) => RpcError::new(codes::INTERNAL_ERROR, message),
    }
}

/// A quantity as JSON-RPC writes it: `0x` and hex digits without leading zeros.
pub(super) fn hex_u64(value: u64) -> String {
    format!("{value:#x}")
}

/// An address in its checksummed form.
pub(super) fn address(value: Address) -> String {
    value.to_checksum(None)
}
