//! A user operation as ERC-7769 writes it for EntryPoint v0.8: a JSON object of hex
//! strings, `factory` and `factoryData` given together or not at all, and the four paymaster
//! fields likewise. Parsing is strict: every field is checked by its name (an unknown one
//! too), and bounded, so a hostile request costs little and gets an error naming the field.

use alloy::primitives::{Address, Bytes, U256};
use serde_json::{Map, Value, json};

use super::error::RpcError;
use crate::{chain::user_operation::UserOperation, intent::calldata::MAX_CALLDATA_SIZE};

/// Longest value of a bytes field (`callData`, `factoryData`, `paymasterData`,
/// `signature`), in bytes: what one operation's calldata may hold.
pub(super) const MAX_FIELD_BYTES: usize = MAX_CALLDATA_SIZE;

/// Which fields a request may leave out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Completeness {
    /// `eth_sendUserOperation`: every field but the optional groups.
    Signed,
    /// `eth_estimateUserOperationGas` and the paymaster service: the gas limits and fees
    /// may be missing (read as 0), since they are what is asked for.
    Draft,
}

const FIELDS: [&str; 16] = [
    "sender",
    "nonce",
    "factory",
    "factoryData",
    "callData",
    "callGasLimit",
    "verificationGasLimit",
    "preVerificationGas",
    "maxFeePerGas",
    "maxPriorityFeePerGas",
    "paymaster",
    "paymasterVerificationGasLimit",
    "paymasterPostOpGasLimit",
    "paymasterData",
    "signature",
    "eip7702Auth",
];

/// Reads `value`, the parameter named `at` (such as `params[0]`), as a user operation.
pub(super) fn parse(
    value: &Value,
    at: &str,
    completeness: Completeness,
) -> Result<UserOperation, RpcError> {
    let Value::Object(object) = value else {
        return Err(RpcError::invalid_param(
            at,
            format!("expected a user operation object, got {}", kind(value)),
        ));
    };
    if let Some(unknown) = object.keys().find(|key| !FIELDS.contains(&key.as_str())) {
        return Err(RpcError::invalid_param(
            &format!("{at}.{}", shortened(unknown)),
            "is not a field of a v0.8 user operation",
        ));
    }
    let fields = Fields { object, at };
    if fields.present("eip7702Auth") {
        return Err(fields.error(
            "eip7702Auth",
            "EIP-7702 operations are not supported by this bundler",
        ));
    }
    let gas = |name: &'static str| match completeness {
        Completeness::Signed => fields.u128(name),
        Completeness::Draft => fields
            .optional(name, Fields::u128)
            .map(Option::unwrap_or_default),
    };
    let mut op = UserOperation {
        sender: fields.address("sender")?,
        nonce: fields.quantity("nonce")?,
        call_data: fields.bytes("callData")?,
        call_gas_limit: gas("callGasLimit")?,
        verification_gas_limit: gas("verificationGasLimit")?,
        pre_verification_gas: match completeness {
            Completeness::Signed => fields.quantity("preVerificationGas")?,
            Completeness::Draft => fields
                .optional("preVerificationGas", Fields::quantity)?
                .unwrap_or_default(),
        },
        max_fee_per_gas: gas("maxFeePerGas")?,
        max_priority_fee_per_gas: gas("maxPriorityFeePerGas")?,
        signature: fields.bytes("signature")?,
        ..UserOperation::default()
    };
    match (fields.present("factory"), fields.present("factoryData")) {
        (true, true) => {
            op.factory = Some(fields.address("factory")?);
            op.factory_data = fields.bytes("factoryData")?;
        }
        (false, false) => {}
        (true, false) => return Err(fields.error("factoryData", "is required with factory")),
        (false, true) => return Err(fields.error("factory", "is required with factoryData")),
    }
    let paymaster_fields = [
        "paymaster",
        "paymasterVerificationGasLimit",
        "paymasterPostOpGasLimit",
        "paymasterData",
    ];
    let given: Vec<bool> = paymaster_fields
        .iter()
        .map(|name| fields.present(name))
        .collect();
    if given.iter().any(|given| *given) {
        let paymaster_gas = |name: &'static str| match completeness {
            Completeness::Signed => fields.u128(name),
            Completeness::Draft => fields
                .optional(name, Fields::u128)
                .map(Option::unwrap_or_default),
        };
        match (fields.present("paymaster"), completeness) {
            (true, _) => op.paymaster = Some(fields.address("paymaster")?),
            // A draft on its way to a paymaster service may carry the limits an estimate
            // gave before it has a paymaster.
            (false, Completeness::Draft) => {}
            (false, Completeness::Signed) => {
                return Err(
                    fields.error("paymaster", "is required with the other paymaster fields")
                );
            }
        }
        op.paymaster_verification_gas_limit = paymaster_gas("paymasterVerificationGasLimit")?;
        op.paymaster_post_op_gas_limit = paymaster_gas("paymasterPostOpGasLimit")?;
        op.paymaster_data = match completeness {
            Completeness::Signed => fields.bytes("paymasterData")?,
            Completeness::Draft => fields
                .optional("paymasterData", Fields::bytes)?
                .unwrap_or_default(),
        };
    }
    if op.factory == Some(Address::ZERO) {
        return Err(fields.error("factory", "is the zero address: leave factory out instead"));
    }
    Ok(op)
}

/// `op` as ERC-7769 writes it, the optional groups only when present.
pub(super) fn to_json(op: &UserOperation) -> Value {
    let mut value = json!({
        "sender": op.sender,
        "nonce": quantity(op.nonce),
        "callData": op.call_data,
        "callGasLimit": quantity(U256::from(op.call_gas_limit)),
        "verificationGasLimit": quantity(U256::from(op.verification_gas_limit)),
        "preVerificationGas": quantity(op.pre_verification_gas),
        "maxFeePerGas": quantity(U256::from(op.max_fee_per_gas)),
        "maxPriorityFeePerGas": quantity(U256::from(op.max_priority_fee_per_gas)),
        "signature": op.signature,
    });
    if let Some(factory) = op.factory {
        value["factory"] = json!(factory);
        value["factoryData"] = json!(op.factory_data);
    }
    if let Some(paymaster) = op.paymaster {
        value["paymaster"] = json!(paymaster);
        value["paymasterVerificationGasLimit"] =
            json!(quantity(U256::from(op.paymaster_verification_gas_limit)));
        value["paymasterPostOpGasLimit"] =
            json!(quantity(U256::from(op.paymaster_post_op_gas_limit)));
        value["paymasterData"] = json!(op.paymaster_data);
    }
    value
}

/// A quantity as JSON-RPC writes it: `0x` and hex digits without leading zeros.
pub(super) fn quantity(value: U256) -> String {
    format!("{value:#x}")
}

/// The fields of one user operation object, read by name.
struct Fields<'a> {
    object: &'a Map<String, Value>,
    at: &'a str,
}

impl Fields<'_> {
    fn error(&self, name: &str, message: impl std::fmt::Display) -> RpcError {
        RpcError::invalid_param(&format!("{}.{name}", self.at), message)
    }

    /// Whether `name` is given and not `null`.
    fn present(&self, name: &str) -> bool {
        self.object.get(name).is_some_and(|value| !value.is_null())
    }

    fn text(&self, name: &'static str) -> Result<&str, RpcError> {
        match self.object.get(name) {
            None | Some(Value::Null) => Err(self.error(name, "is required")),
            Some(Value::String(text)) => Ok(text),
            Some(other) => Err(self.error(
                name,
                format!("expected a 0x-prefixed hex string, got {}", kind(other)),
            )),
        }
    }

    fn optional<T>(
        &self,
        name: &'static str,
        read: impl Fn(&Self, &'static str) -> Result<T, RpcError>,
    ) -> Result<Option<T>, RpcError> {
        if self.present(name) {
            read(self, name).map(Some)
        } else {
            Ok(None)
        }
    }

    fn hex<'t>(&self, name: &'static str, text: &'t str) -> Result<&'t str, RpcError> {
        text.strip_prefix("0x")
            .filter(|digits| digits.bytes().all(|byte| byte.is_ascii_hexdigit()))
            .ok_or_else(|| {
                self.error(
                    name,
                    format!(
                        "{:?} is not hex: expected 0x followed by hex digits",
                        shortened(text)
                    ),
                )
            })
    }

    fn quantity(&self, name: &'static str) -> Result<U256, RpcError> {
        let text = self.text(name)?;
        let digits = self.hex(name, text)?;
        if digits.is_empty() {
            return Err(self.error(
                name,
                "is \"0x\": a quantity needs at least one digit, 0x0 for zero",
            ));
        }
        let significant = digits.trim_start_matches('0');
        if significant.len() > 64 {
            return Err(self.error(name, "does not fit in 256 bits"));
        }
        U256::from_str_radix(
            if significant.is_empty() {
                "0"
            } else {
                significant
            },
            16,
        )
        .map_err(|_| self.error(name, "does not fit in 256 bits"))
    }

    fn u128(&self, name: &'static str) -> Result<u128, RpcError> {
        let value = self.quantity(name)?;
        u128::try_from(value).map_err(|_| {
            self.error(
                name,
                "does not fit in 128 bits, as the packed operation holds it",
            )
        })
    }

    fn address(&self, name: &'static str) -> Result<Address, RpcError> {
        let text = self.text(name)?;
        let digits = self.hex(name, text)?;
        if digits.len() != 40 {
            return Err(self.error(
                name,
                format!(
                    "{:?} is not an address: expected 0x and 40 hex digits",
                    shortened(text)
                ),
            ));
        }
        text.parse()
            .map_err(|_| self.error(name, "is not an address"))
    }

    fn bytes(&self, name: &'static str) -> Result<Bytes, RpcError> {
        let text = self.text(name)?;
        let digits = self.hex(name, text)?;
        if digits.len() % 2 != 0 {
            return Err(self.error(name, "has an odd number of hex digits"));
        }
        if digits.len() / 2 > MAX_FIELD_BYTES {
            return Err(self.error(
                name,
                format!(
                    "is {} bytes long: expected at most {MAX_FIELD_BYTES}",
                    digits.len() / 2
                ),
            ));
        }
        alloy::primitives::hex::decode(digits)
            .map(Bytes::from)
            .map_err(|_| self.error(name, "is not hex"))
    }
}

/// What kind of JSON value `value` is, for messages.
pub(super) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The start of `text`, short enough to repeat in a message.
pub(super) fn shortened(text: &str) -> String {
    match text.char_indices().nth(66) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed() -> Value {
        json!({
            "sender": "0x00000000000000000000000000000000000000aa",
            "nonce": "0x0",
            "callData": "0x",
            "callGasLimit": "0x5208",
            "verificationGasLimit": "0x10000",
            "preVerificationGas": "0xc350",
            "maxFeePerGas": "0x3b9aca00",
            "maxPriorityFeePerGas": "0x1",
            "signature": "0x01",
        })
    }

    #[test]
    fn a_signed_operation_reads_back_as_it_was_written() {
        let op = parse(&signed(), "params[0]", Completeness::Signed).unwrap();
        assert_eq!(op.call_gas_limit, 21_000);
        assert_eq!(to_json(&op), signed());
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases: [(&str, Value, &str); 9] = [
            (
                "nonce",
                json!(5),
                "params[0].nonce: expected a 0x-prefixed hex string, got a number",
            ),
            ("nonce", json!("0x"), "params[0].nonce: is \"0x\""),
            ("nonce", json!("12"), "params[0].nonce: \"12\" is not hex"),
            (
                "sender",
                json!("0x1234"),
                "params[0].sender: \"0x1234\" is not an address",
            ),
            (
                "callData",
                json!("0xabc"),
                "params[0].callData: has an odd number of hex digits",
            ),
            (
                "callGasLimit",
                json!(format!("0x1{}", "0".repeat(32))),
                "params[0].callGasLimit: does not fit in 128 bits",
            ),
            ("signature", Value::Null, "params[0].signature: is required"),
            ("eip7702Auth", json!({}), "params[0].eip7702Auth: EIP-7702"),
            (
                "factory",
                json!("0x00000000000000000000000000000000000000bb"),
                "params[0].factoryData: is required with factory",
            ),
        ];
        for (field, value, expected) in cases {
            let mut op = signed();
            op[field] = value;
            let error = parse(&op, "params[0]", Completeness::Signed).unwrap_err();
            assert!(
                error.message.starts_with(expected),
                "{field}: {}",
                error.message
            );
            assert_eq!(error.code, super::super::error::codes::INVALID_PARAMS);
        }
        let mut op = signed();
        op["extra"] = json!("0x");
        let error = parse(&op, "params[0]", Completeness::Signed).unwrap_err();
        assert_eq!(
            error.message,
            "params[0].extra: is not a field of a v0.8 user operation"
        );
        let error = parse(&json!([1]), "params[0]", Completeness::Signed).unwrap_err();
        assert_eq!(
            error.message,
            "params[0]: expected a user operation object, got an array"
        );
    }

    #[test]
    fn a_draft_may_leave_out_its_gas() {
        let mut op = signed();
        for field in [
            "callGasLimit",
            "verificationGasLimit",
            "preVerificationGas",
            "maxFeePerGas",
            "maxPriorityFeePerGas",
        ] {
            op.as_object_mut().unwrap().remove(field);
        }
        let draft = parse(&op, "params[0]", Completeness::Draft).unwrap();
        assert_eq!(draft.call_gas_limit, 0);
        assert!(parse(&op, "params[0]", Completeness::Signed).is_err());
    }
}
