//! Decoding why an operation failed. A game backend cannot act on a hex blob: it needs the
//! EntryPoint's `AAxx` code with its cause and a remedy, and the revert underneath it (a
//! reason string, a panic, or a custom error of latchkey's contracts, down through the call
//! of a batch that failed).
//!
//! Custom errors are named from the contracts' ABIs (the artifacts the crate embeds), and
//! their arguments shown by their declared names.
//!
//! Everything here is pure and total: any byte string decodes to something, and nothing
//! panics, because revert data comes from the chain and from whatever contract a session key
//! was allowed to call.

use std::{fmt, sync::LazyLock};

use alloy::{
    dyn_abi::{DynSolValue, JsonAbiExt},
    json_abi::JsonAbi,
    primitives::{Bytes, U256, hex},
    sol_types::{Panic, Revert, SolError},
};

use super::contracts::{EntryPoint, SessionKeyAccount};

/// How many wrapped reverts are unwrapped: a batch call's `ExecuteError` can wrap another
/// account's `ExecuteError`, and so on; past this depth the rest is left undecoded, so hostile
/// revert data cannot make decoding recurse without bound.
pub const MAX_REVERT_NESTING: usize = 4;

/// How many characters of a revert message or of decoded arguments a one-line description
/// repeats; revert data is chosen by contracts, and a log line must stay a line.
const DISPLAY_CHARS: usize = 256;

/// Why a call reverted, as far as the revert data tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevertReason {
    /// `Error(string)`: a `require` or `revert` with a message.
    Message(String),
    /// `Panic(uint256)`: a failed Solidity runtime check such as an overflow.
    Panic {
        /// The panic code.
        code: U256,
        /// What the code means.
        meaning: &'static str,
    },
    /// A custom error declared by one of latchkey's contracts.
    Custom {
        /// The contract that declares it, e.g. `SessionKeyAccount`.
        contract: &'static str,
        /// The error's name, e.g. `SessionKeyCallNotAllowed`.
        name: String,
        /// Its arguments, human-readable: `target: 0x…, selector: 0x…`.
        args: String,
    },
    /// One call of an `executeBatch` failed: the account's `ExecuteError(index, error)`, with
    /// the failed call's own revert decoded.
    BatchCall {
        /// The failed call's position in the batch, 0-based.
        index: U256,
        /// Why that call reverted.
        reason: Box<RevertReason>,
    },
    /// Revert data that none of the above decodes: an error of a contract latchkey has no
    /// bindings for, or malformed data.
    Unknown {
        /// The first four bytes, when there are that many.
        selector: Option<[u8; 4]>,
        /// The whole revert data.
        data: Bytes,
    },
    /// No revert data: a bare `revert()`, running out of gas, or a failed low-level check.
    Empty,
}

impl RevertReason {
    /// Decodes revert data. Total: unrecognised or malformed data becomes
    /// [`RevertReason::Unknown`], empty data [`RevertReason::Empty`].
    pub fn decode(data: &[u8]) -> Self {
        Self::decode_nested(data, 0)
    }

    fn decode_nested(data: &[u8], depth: usize) -> Self {
        let Some(selector) = selector_of(data) else {
            return if data.is_empty() {
                Self::Empty
            } else {
                Self::Unknown {
                    selector: None,
                    data: Bytes::copy_from_slice(data),
                }
            };
        };
        if selector == Revert::SELECTOR {
            if let Ok(revert) = Revert::abi_decode(data) {
                return Self::Message(revert.reason);
            }
        } else if selector == Panic::SELECTOR {
            if let Ok(panic) = Panic::abi_decode(data) {
                return Self::Panic {
                    code: panic.code,
                    meaning: panic_meaning(panic.code),
                };
            }
        } else if selector == SessionKeyAccount::ExecuteError::SELECTOR
            && let Ok(failed) = SessionKeyAccount::ExecuteError::abi_decode(data)
        {
            let reason = if depth < MAX_REVERT_NESTING {
                Self::decode_nested(&failed.error, depth + 1)
            } else {
                Self::Unknown {
                    selector: selector_of(&failed.error),
                    data: failed.error,
                }
            };
            return Self::BatchCall {
                index: failed.index,
                reason: Box::new(reason),
            };
        }
        custom(selector, data).unwrap_or_else(|| Self::Unknown {
            selector: Some(selector),
            data: Bytes::copy_from_slice(data),
        })
    }

    /// The innermost reason: through every failed batch call down to the revert that started
    /// it. What a remedy depends on.
    pub fn root(&self) -> &Self {
        match self {
            Self::BatchCall { reason, .. } => reason.root(),
            other => other,
        }
    }
}

impl fmt::Display for RevertReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Message(message) => write!(f, "{:?}", shorten(message)),
            Self::Panic { code, meaning } => write!(f, "Panic({code:#x}: {meaning})"),
            Self::Custom { name, args, .. } => write!(f, "{name}({})", shorten(args)),
            Self::BatchCall { index, reason } => {
                write!(f, "call {index} of the batch failed: {reason}")
            }
            Self::Unknown {
                selector: Some(selector),
                data,
            } => write!(
                f,
                "unknown error 0x{} ({} bytes of revert data)",
                hex::encode(selector),
                data.len()
            ),
            Self::Unknown {
                selector: None,
                data,
            } => {
                write!(f, "malformed revert data 0x{}", hex::encode(data))
            }
            Self::Empty => f.write_str("no revert data"),
        }
    }
}

/// An operation the EntryPoint refused, explained: its `AAxx` code, what causes it, what to
/// do about it, and the account's or paymaster's own revert when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AaError {
    /// The code, `AA10` to `AA99`; the first digit names the culprit: 1 the factory, 2 the
    /// account, 3 the paymaster, 4 and 5 gas and postOp (older EntryPoints), 9 the bundle.
    pub code: &'static str,
    /// Which operation of the bundle failed, when the EntryPoint said so: a relayer drops
    /// that one and resubmits the rest.
    pub op_index: Option<U256>,
    /// The EntryPoint's reason string, e.g. `AA25 invalid account nonce`.
    pub message: String,
    /// What makes the EntryPoint fail this way.
    pub cause: &'static str,
    /// What latchkey's user can do about it.
    pub remedy: &'static str,
    /// The account's or paymaster's revert (from `FailedOpWithRevert`).
    pub inner: Option<RevertReason>,
}

impl AaError {
    /// Explains an EntryPoint reason string, such as `AA25 invalid account nonce` from a
    /// `FailedOp`, or a bundler's error message that quotes one (`... reason: AA23 reverted`).
    /// `None` when the string carries no `AAxx` code.
    pub fn from_reason(
        reason: &str,
        op_index: Option<U256>,
        inner: Option<RevertReason>,
    ) -> Option<Self> {
        let (_, number) = find_aa_code(reason)?;
        let info = describe(number);
        let remedy = inner.as_ref().and_then(inner_remedy).unwrap_or(info.remedy);
        Some(Self {
            code: code_str(number),
            op_index,
            message: reason.to_owned(),
            cause: info.cause,
            remedy,
            inner,
        })
    }
}

impl fmt::Display for AaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let message = shorten(&self.message);
        write!(f, "{}: {}", message.escape_debug(), self.cause)?;
        if let Some(inner) = &self.inner {
            write!(f, " ({inner})")?;
        }
        write!(f, " — remedy: {}", self.remedy)
    }
}

impl std::error::Error for AaError {}

/// Explains the revert data of `handleOps` (or of its simulation): the EntryPoint's
/// `FailedOp` and `FailedOpWithRevert`, and the `AA9x` checks it makes with a plain
/// `require`. `None` when the data is no AA failure; [`RevertReason::decode`] then says what
/// it is.
pub fn decode_handle_ops_revert(data: &[u8]) -> Option<AaError> {
    let selector = selector_of(data)?;
    if selector == EntryPoint::FailedOp::SELECTOR {
        let failed = EntryPoint::FailedOp::abi_decode(data).ok()?;
        AaError::from_reason(&failed.reason, Some(failed.opIndex), None)
    } else if selector == EntryPoint::FailedOpWithRevert::SELECTOR {
        let failed = EntryPoint::FailedOpWithRevert::abi_decode(data).ok()?;
        let inner = RevertReason::decode(&failed.inner);
        AaError::from_reason(&failed.reason, Some(failed.opIndex), Some(inner))
    } else if selector == Revert::SELECTOR {
        // A plain message is an AA failure only when it starts with the code: any contract can
        // revert with a string that merely mentions one.
        let revert = Revert::abi_decode(data).ok()?;
        match find_aa_code(&revert.reason) {
            Some((0, _)) => AaError::from_reason(&revert.reason, None, None),
            _ => None,
        }
    } else {
        None
    }
}

fn selector_of(data: &[u8]) -> Option<[u8; 4]> {
    data.get(..4)?.try_into().ok()
}

/// Decodes `data` as a custom error of the contract whose error enum is `E`. The arguments
/// come from the generated `Debug`, `Variant(Variant { field: value, .. })`.
/// The ABIs of latchkey's contracts, in the order their custom errors are looked up (an
/// error two contracts share is named after the first), from the artifacts the crate embeds.
static CONTRACT_ABIS: LazyLock<Vec<(&'static str, JsonAbi)>> = LazyLock::new(|| {
    #[derive(serde::Deserialize)]
    struct Artifact {
        abi: JsonAbi,
    }
    [
        (
            "SessionKeyAccount",
            include_str!("../../contracts/artifacts/SessionKeyAccount.json"),
        ),
        (
            "GameItems",
            include_str!("../../contracts/artifacts/GameItems.json"),
        ),
        (
            "SessionKeyAccountFactory",
            include_str!("../../contracts/artifacts/SessionKeyAccountFactory.json"),
        ),
        (
            "EntryPoint",
            include_str!("../../contracts/artifacts/EntryPoint.json"),
        ),
    ]
    .into_iter()
    // The artifacts are the crate's own, checked by tests; one that did not parse would
    // only leave its errors undecoded.
    .filter_map(|(contract, artifact)| {
        serde_json::from_str::<Artifact>(artifact)
            .ok()
            .map(|artifact| (contract, artifact.abi))
    })
    .collect()
});

/// A custom error of one of latchkey's contracts, found by its selector in their ABIs and
/// decoded by its declared parameters, each shown by its name.
fn custom(selector: [u8; 4], data: &[u8]) -> Option<RevertReason> {
    CONTRACT_ABIS.iter().find_map(|(contract, abi)| {
        let error = abi
            .errors()
            .find(|error| error.selector().as_slice() == selector)?;
        let values = error.abi_decode_input(&data[4..]).ok()?;
        let args = error
            .inputs
            .iter()
            .zip(&values)
            .map(|(param, value)| format!("{}: {}", param.name, show(value)))
            .collect::<Vec<_>>()
            .join(", ");
        Some(RevertReason::Custom {
            contract,
            name: error.name.clone(),
            args,
        })
    })
}

/// A decoded argument as a person reads it: numbers in decimal, addresses and bytes in
/// `0x` hex, strings quoted.
fn show(value: &DynSolValue) -> String {
    let list = |values: &[DynSolValue]| values.iter().map(show).collect::<Vec<_>>().join(", ");
    match value {
        DynSolValue::Bool(flag) => flag.to_string(),
        DynSolValue::Int(number, _) => number.to_string(),
        DynSolValue::Uint(number, _) => number.to_string(),
        DynSolValue::FixedBytes(word, size) => hex::encode_prefixed(&word[..*size]),
        DynSolValue::Address(address) => hex::encode_prefixed(address),
        DynSolValue::Function(function) => hex::encode_prefixed(function),
        DynSolValue::Bytes(bytes) => hex::encode_prefixed(bytes),
        DynSolValue::String(text) => format!("{text:?}"),
        DynSolValue::Array(values) | DynSolValue::FixedArray(values) => {
            format!("[{}]", list(values))
        }
        DynSolValue::Tuple(values) => format!("({})", list(values)),
        DynSolValue::CustomStruct { tuple, .. } => format!("({})", list(tuple)),
    }
}

/// What a Solidity panic code means.
fn panic_meaning(code: U256) -> &'static str {
    match u64::try_from(code) {
        Ok(0x00) => "generic compiler panic",
        Ok(0x01) => "assertion failed",
        Ok(0x11) => "arithmetic overflow or underflow",
        Ok(0x12) => "division or modulo by zero",
        Ok(0x21) => "conversion to an invalid enum value",
        Ok(0x22) => "incorrectly encoded storage byte array",
        Ok(0x31) => "pop() on an empty array",
        Ok(0x32) => "array index out of bounds",
        Ok(0x41) => "out of memory: too large an allocation",
        Ok(0x51) => "call to an uninitialised internal function",
        _ => "unknown panic code",
    }
}

/// The first `AAnn` code in `reason` that stands as a word of its own: its byte offset and
/// its number.
fn find_aa_code(reason: &str) -> Option<(usize, usize)> {
    let bytes = reason.as_bytes();
    (0..bytes.len()).find_map(|at| {
        let code = bytes.get(at..at + 4)?;
        let word_start = at == 0 || !bytes[at - 1].is_ascii_alphanumeric();
        let word_end = bytes.get(at + 4).is_none_or(|b| !b.is_ascii_alphanumeric());
        match code {
            [b'A', b'A', tens @ b'0'..=b'9', ones @ b'0'..=b'9'] if word_start && word_end => {
                Some((at, usize::from(tens - b'0') * 10 + usize::from(ones - b'0')))
            }
            _ => None,
        }
    })
}

/// `AA00` to `AA99`, so that [`AaError::code`] is static even for codes not in the table.
static ALL_CODES: [[u8; 4]; 100] = {
    let mut codes = [*b"AA00"; 100];
    let mut n = 0;
    while n < 100 {
        codes[n][2] = b'0' + (n / 10) as u8;
        codes[n][3] = b'0' + (n % 10) as u8;
        n += 1;
    }
    codes
};

fn code_str(number: usize) -> &'static str {
    ALL_CODES
        .get(number)
        .and_then(|code| std::str::from_utf8(code).ok())
        .unwrap_or("AA??")
}

/// One EntryPoint failure code, explained for latchkey's user.
struct AaCode {
    number: usize,
    cause: &'static str,
    remedy: &'static str,
}

const fn aa(number: usize, cause: &'static str, remedy: &'static str) -> AaCode {
    AaCode {
        number,
        cause,
        remedy,
    }
}

/// Every `AAxx` code in EntryPoint v0.8's source (`grep '"AA' core/*.sol` in
/// `@account-abstraction/contracts@0.8.0`), plus AA40, AA41, AA50, AA51 and AA96, which older
/// EntryPoints (v0.6, v0.7) and bundlers built on them still report. Sorted by number.
const AA_CODES: &[AaCode] = &[
    aa(
        10,
        "the operation carries initCode but the account is already deployed",
        "drop initCode: it belongs only in the account's first operation; refresh the account's \
         deployment state from the chain",
    ),
    aa(
        13,
        "the factory call in initCode reverted or ran out of gas while deploying the account",
        "check the factory address and its createAccount arguments (owner, salt), and raise \
         verificationGasLimit",
    ),
    aa(
        14,
        "the factory deployed an account at a different address than the operation's sender",
        "recompute the counterfactual address from the same owner and salt that initCode uses",
    ),
    aa(
        15,
        "initCode ran but left no code at the sender address",
        "check that initCode calls the SessionKeyAccountFactory deployed on this chain",
    ),
    aa(
        20,
        "the sender has no code and the operation has no initCode to deploy it",
        "include initCode (factory, owner, salt) in the account's first operation, or check the \
         account address and the chain",
    ),
    aa(
        21,
        "the account could not pay the operation's prefund: its EntryPoint deposit and balance \
         are below the maximum gas cost",
        "fund the account or its EntryPoint deposit, lower the gas limits or fees, or sponsor \
         the operation with a paymaster",
    ),
    aa(
        22,
        "the session key's window is closed or not yet open (validUntil passed, or validAfter \
         not reached)",
        "register a new session, or wait until after validAfter",
    ),
    aa(
        23,
        "the account refused the operation during validation",
        "read the inner error: it names the rule the operation broke; register a session whose \
         permissions allow the call",
    ),
    aa(
        24,
        "the signature is not from the account's owner or from a session key registered on it",
        "sign the userOpHash with the session key or the owner (EIP-191 personal sign); check \
         that the session is registered, not revoked, and on this account",
    ),
    aa(
        25,
        "the nonce was already used or skips ahead in its nonce key's sequence",
        "read the current nonce with EntryPoint.getNonce(sender, key) and rebuild the \
         operation; operations on one nonce key must land in order",
    ),
    aa(
        26,
        "validation used more gas than verificationGasLimit",
        "re-estimate gas and raise verificationGasLimit",
    ),
    aa(
        30,
        "paymasterAndData names an address with no code",
        "check the sponsorship policy's paymaster address for this chain",
    ),
    aa(
        31,
        "the paymaster's EntryPoint deposit cannot cover the operation's maximum cost",
        "top up the paymaster's deposit (EntryPoint.depositTo), or let the account pay",
    ),
    aa(
        32,
        "the paymaster's sponsorship window is closed or not yet open",
        "request fresh paymaster data and resubmit",
    ),
    aa(
        33,
        "the paymaster refused the operation during validation",
        "read the inner error: the sponsorship policy may not cover this operation",
    ),
    aa(
        34,
        "the paymaster's signature does not match the operation",
        "request fresh paymasterAndData for this exact operation: any change to the operation \
         voids it",
    ),
    aa(
        36,
        "the paymaster's validation used more gas than paymasterVerificationGasLimit",
        "re-estimate gas and raise paymasterVerificationGasLimit",
    ),
    aa(
        40,
        "validation used more gas than verificationGasLimit (older EntryPoint)",
        "re-estimate gas and raise verificationGasLimit",
    ),
    aa(
        41,
        "verificationGasLimit leaves too little gas for the paymaster (older EntryPoint)",
        "re-estimate gas and raise verificationGasLimit",
    ),
    aa(
        50,
        "the paymaster's postOp reverted (older EntryPoint)",
        "check the paymaster's postOp conditions, such as a token allowance, or let the \
         account pay",
    ),
    aa(
        51,
        "the operation cost more than its prefund (older EntryPoint)",
        "raise the gas limits so that the prefund covers the actual cost",
    ),
    aa(
        90,
        "handleOps was called with the zero address as beneficiary",
        "configure the relayer's beneficiary address; latchkey should never send this",
    ),
    aa(
        91,
        "the EntryPoint could not pay the collected fees to the beneficiary",
        "use a beneficiary that accepts ETH: an EOA, or a contract with a receive function",
    ),
    aa(
        92,
        "innerHandleOp was called from outside the EntryPoint",
        "submit operations through handleOps only",
    ),
    aa(
        93,
        "paymasterAndData is shorter than its 52-byte header",
        "build paymasterAndData as paymaster (20 bytes), paymasterVerificationGasLimit (16), \
         paymasterPostOpGasLimit (16), then the paymaster's data; or leave it empty",
    ),
    aa(
        94,
        "a gas limit or fee exceeds 120 bits",
        "use realistic gas limits and fees",
    ),
    aa(
        95,
        "the bundle transaction ran out of gas: its gas limit is too low for the operations' \
         limits",
        "raise the handleOps transaction's gas limit; latchkey's relayer computes it from the \
         operations' limits, so this is a relayer bug",
    ),
    aa(
        96,
        "handleAggregatedOps was given an invalid aggregator (older EntryPoint)",
        "submit operations without an aggregator through handleOps",
    ),
    aa(
        97,
        "the EntryPoint's SenderCreator was called by someone other than the EntryPoint",
        "deploy accounts only through an operation's initCode",
    ),
    aa(
        98,
        "paymasterAndData names the zero address as paymaster",
        "set a paymaster address, or leave paymasterAndData empty",
    ),
    aa(
        99,
        "initCode is shorter than the 20-byte factory address it must start with",
        "make initCode the factory address followed by its calldata, or leave it empty",
    ),
];

/// The table entry for `number`, or a generic one for its family.
fn describe(number: usize) -> &'static AaCode {
    const FACTORY: AaCode = aa(
        0,
        "the factory in initCode failed to deploy the account",
        "check initCode's factory address and arguments",
    );
    const ACCOUNT: AaCode = aa(
        0,
        "the account failed validation",
        "check the account, its deposit, its nonce and the signature",
    );
    const PAYMASTER: AaCode = aa(
        0,
        "the paymaster failed validation",
        "check the sponsorship policy and the paymaster's deposit, or let the account pay",
    );
    const GAS: AaCode = aa(
        0,
        "the operation's gas limits do not cover its execution",
        "re-estimate gas and raise the operation's limits",
    );
    const OTHER: AaCode = aa(
        0,
        "the EntryPoint refused the operation for a reason latchkey does not know",
        "read the message; the ERC-4337 EntryPoint error codes explain it",
    );
    match AA_CODES.binary_search_by_key(&number, |code| code.number) {
        Ok(found) => &AA_CODES[found],
        Err(_) => match number / 10 {
            1 => &FACTORY,
            2 => &ACCOUNT,
            3 => &PAYMASTER,
            4 | 5 => &GAS,
            _ => &OTHER,
        },
    }
}

/// A remedy more precise than the AA code's, when the account's own error says which session
/// rule the operation broke.
fn inner_remedy(inner: &RevertReason) -> Option<&'static str> {
    let RevertReason::Custom {
        contract: "SessionKeyAccount",
        name,
        ..
    } = inner.root()
    else {
        return None;
    };
    Some(match name.as_str() {
        "SessionKeyCallNotAllowed" => {
            "the session does not allow this (target, selector); register a session whose \
             permissions include it"
        }
        "SessionKeyForbiddenTarget" => {
            "a session key may never call the account itself, the EntryPoint or the zero \
             address; send such calls as owner-signed operations"
        }
        "SessionKeyValuePerCallExceeded" => {
            "lower the call's value, or register a session with a higher per-call value limit"
        }
        "SessionKeyValueBudgetExceeded" => {
            "the session's value budget is spent; register a new session with a fresh budget"
        }
        "SessionKeyCallLimitReached" => {
            "the session's call limit is used up; register a new session"
        }
        "SessionKeyGasBudgetExceeded" => {
            "lower the gas limits or maxFeePerGas, sponsor the operation with a paymaster, or \
             register a session with a larger gas budget"
        }
        "SessionKeyNonceKeyMismatch" => {
            "use a nonce key whose top 160 bits are the session key's address"
        }
        "SessionKeyCallDataUnsupported" => {
            "a session key may only call execute or executeBatch on the account"
        }
        "SessionKeyEmptyBatch" => "send at least one call in the batch",
        "MalformedCallData" => "give each call empty calldata or at least a 4-byte selector",
        _ => return None,
    })
}

/// At most [`DISPLAY_CHARS`] characters of `text`.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(DISPLAY_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{Address, FixedBytes, address, fixed_bytes};
    use proptest::prelude::*;

    use super::*;
    use crate::chain::contracts::{GameItems, SessionKeyAccountFactory};

    const GAME: Address = address!("5FbDB2315678afecb367f032d93F642f64180aa3");
    const MINT: FixedBytes<4> = fixed_bytes!("156e29f6");

    fn failed_op(index: u64, reason: &str) -> Vec<u8> {
        EntryPoint::FailedOp {
            opIndex: U256::from(index),
            reason: reason.into(),
        }
        .abi_encode()
    }

    fn failed_op_with_revert(reason: &str, inner: Vec<u8>) -> Vec<u8> {
        EntryPoint::FailedOpWithRevert {
            opIndex: U256::ZERO,
            reason: reason.into(),
            inner: inner.into(),
        }
        .abi_encode()
    }

    fn call_not_allowed() -> Vec<u8> {
        SessionKeyAccount::SessionKeyCallNotAllowed {
            target: GAME,
            selector: MINT,
        }
        .abi_encode()
    }

    fn batch_failure(index: u64, error: Vec<u8>) -> Vec<u8> {
        SessionKeyAccount::ExecuteError {
            index: U256::from(index),
            error: error.into(),
        }
        .abi_encode()
    }

    #[test]
    fn aa23_with_a_session_key_error_explains_the_rule() {
        let data = failed_op_with_revert("AA23 reverted", call_not_allowed());
        let err = decode_handle_ops_revert(&data).unwrap();
        assert_eq!(err.code, "AA23");
        assert_eq!(err.op_index, Some(U256::ZERO));
        assert_eq!(err.message, "AA23 reverted");
        assert_eq!(
            err.cause,
            "the account refused the operation during validation"
        );
        assert_eq!(
            err.inner,
            Some(RevertReason::Custom {
                contract: "SessionKeyAccount",
                name: "SessionKeyCallNotAllowed".into(),
                args: "target: 0x5fbdb2315678afecb367f032d93f642f64180aa3, selector: 0x156e29f6"
                    .into(),
            })
        );
        assert!(
            err.remedy
                .starts_with("the session does not allow this (target, selector)")
        );
        assert_eq!(
            err.to_string(),
            "AA23 reverted: the account refused the operation during validation \
             (SessionKeyCallNotAllowed(target: 0x5fbdb2315678afecb367f032d93f642f64180aa3, \
             selector: 0x156e29f6)) — remedy: the session does not allow this (target, \
             selector); register a session whose permissions include it"
        );
    }

    #[test]
    fn aa23_with_any_other_inner_error_keeps_the_generic_remedy() {
        let inner = Revert::from("custom validation").abi_encode();
        let err = decode_handle_ops_revert(&failed_op_with_revert("AA23 reverted", inner)).unwrap();
        assert_eq!(
            err.inner,
            Some(RevertReason::Message("custom validation".into()))
        );
        assert_eq!(err.remedy, describe(23).remedy);
        let err =
            decode_handle_ops_revert(&failed_op_with_revert("AA23 reverted", vec![])).unwrap();
        assert_eq!(err.inner, Some(RevertReason::Empty));
        assert!(err.to_string().contains("(no revert data)"));
    }

    #[test]
    fn failed_op_codes_get_cause_and_remedy() {
        let err = decode_handle_ops_revert(&failed_op(3, "AA25 invalid account nonce")).unwrap();
        assert_eq!(err.code, "AA25");
        assert_eq!(err.op_index, Some(U256::from(3)));
        assert_eq!(err.inner, None);
        assert!(err.remedy.contains("EntryPoint.getNonce"));
        assert!(
            err.to_string().starts_with(
                "AA25 invalid account nonce: the nonce was already used or skips ahead"
            )
        );

        let err = decode_handle_ops_revert(&failed_op(0, "AA22 expired or not due")).unwrap();
        assert_eq!(err.code, "AA22");
        assert_eq!(
            err.remedy,
            "register a new session, or wait until after validAfter"
        );
    }

    #[test]
    fn require_messages_with_a_code_are_aa_errors() {
        let data = Revert::from("AA90 invalid beneficiary").abi_encode();
        let err = decode_handle_ops_revert(&data).unwrap();
        assert_eq!((err.code, err.op_index), ("AA90", None));
        // A message that merely mentions a code somewhere is not the EntryPoint's.
        let data = Revert::from("sold out: see AA90").abi_encode();
        assert_eq!(decode_handle_ops_revert(&data), None);
        assert_eq!(
            RevertReason::decode(&data),
            RevertReason::Message("sold out: see AA90".into())
        );
    }

    #[test]
    fn unknown_codes_keep_the_message() {
        let err = decode_handle_ops_revert(&failed_op(1, "AA38 something new")).unwrap();
        assert_eq!(err.code, "AA38");
        assert_eq!(err.message, "AA38 something new");
        assert_eq!(err.cause, "the paymaster failed validation");
        let err = decode_handle_ops_revert(&failed_op(1, "AA77 who knows")).unwrap();
        assert_eq!(err.code, "AA77");
        assert!(err.cause.contains("latchkey does not know"));
    }

    #[test]
    fn failed_op_without_a_code_is_left_to_revert_reason() {
        let data = failed_op(2, "custom entry point says no");
        assert_eq!(decode_handle_ops_revert(&data), None);
        match RevertReason::decode(&data) {
            RevertReason::Custom {
                contract: "EntryPoint",
                name,
                args,
            } => {
                assert_eq!(name, "FailedOp");
                assert!(args.contains("custom entry point says no"), "{args}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bundler_messages_quoting_a_code_are_explained() {
        let err = AaError::from_reason(
            "UserOperation reverted during simulation with reason: AA24 signature error",
            None,
            None,
        )
        .unwrap();
        assert_eq!(err.code, "AA24");
        assert_eq!(AaError::from_reason("BAAA24 no", None, None), None);
        assert_eq!(AaError::from_reason("AA245", None, None), None);
        assert_eq!(AaError::from_reason("", None, None), None);
    }

    #[test]
    fn error_strings_and_panics() {
        let data = Revert::from("not enough gold").abi_encode();
        assert_eq!(
            RevertReason::decode(&data),
            RevertReason::Message("not enough gold".into())
        );
        assert_eq!(
            RevertReason::decode(&data).to_string(),
            "\"not enough gold\""
        );

        let data = Panic::from(0x11u64).abi_encode();
        let reason = RevertReason::decode(&data);
        assert_eq!(
            reason,
            RevertReason::Panic {
                code: U256::from(0x11),
                meaning: "arithmetic overflow or underflow"
            }
        );
        assert_eq!(
            reason.to_string(),
            "Panic(0x11: arithmetic overflow or underflow)"
        );
        for (code, meaning) in [
            (0x01, "assertion failed"),
            (0x12, "division or modulo by zero"),
            (0x21, "conversion to an invalid enum value"),
            (0x22, "incorrectly encoded storage byte array"),
            (0x31, "pop() on an empty array"),
            (0x32, "array index out of bounds"),
            (0x41, "out of memory: too large an allocation"),
            (0x51, "call to an uninitialised internal function"),
            (0x99, "unknown panic code"),
        ] {
            let reason = RevertReason::decode(&Panic::from(code as u64).abi_encode());
            assert_eq!(
                reason,
                RevertReason::Panic {
                    code: U256::from(code),
                    meaning
                }
            );
        }
        let huge = Panic::from(U256::MAX).abi_encode();
        assert!(matches!(
            RevertReason::decode(&huge),
            RevertReason::Panic {
                meaning: "unknown panic code",
                ..
            }
        ));
    }

    #[test]
    fn custom_errors_of_each_contract() {
        let data = GameItems::WrongPayment {
            expected: U256::from(100),
            paid: U256::from(1),
        }
        .abi_encode();
        assert_eq!(
            RevertReason::decode(&data),
            RevertReason::Custom {
                contract: "GameItems",
                name: "WrongPayment".into(),
                args: "expected: 100, paid: 1".into(),
            }
        );
        let data = SessionKeyAccount::SessionKeyEmptyBatch {}.abi_encode();
        let reason = RevertReason::decode(&data);
        assert_eq!(
            reason,
            RevertReason::Custom {
                contract: "SessionKeyAccount",
                name: "SessionKeyEmptyBatch".into(),
                args: String::new(),
            }
        );
        assert_eq!(reason.to_string(), "SessionKeyEmptyBatch()");
        let data = SessionKeyAccountFactory::FailedDeployment {}.abi_encode();
        assert!(matches!(
            RevertReason::decode(&data),
            RevertReason::Custom {
                contract: "SessionKeyAccountFactory",
                ..
            }
        ));
    }

    #[test]
    fn batch_failures_name_the_call() {
        let wrong_payment = GameItems::WrongPayment {
            expected: U256::from(5),
            paid: U256::ZERO,
        };
        let data = batch_failure(2, wrong_payment.abi_encode());
        let reason = RevertReason::decode(&data);
        assert_eq!(
            reason.to_string(),
            "call 2 of the batch failed: WrongPayment(expected: 5, paid: 0)"
        );
        assert!(matches!(
            reason.root(),
            RevertReason::Custom {
                contract: "GameItems",
                ..
            }
        ));

        // A batch failure inside validation-time data, as AA23 would carry it.
        let data = failed_op_with_revert("AA23 reverted", batch_failure(1, call_not_allowed()));
        let err = decode_handle_ops_revert(&data).unwrap();
        assert!(err.remedy.starts_with("the session does not allow this"));
        assert!(
            err.to_string()
                .contains("(call 1 of the batch failed: SessionKeyCallNotAllowed(")
        );
    }

    #[test]
    fn nesting_is_bounded() {
        let mut data = Revert::from("bottom").abi_encode();
        for i in 0..MAX_REVERT_NESTING {
            data = batch_failure(i as u64, data);
        }
        // Exactly MAX_REVERT_NESTING wrappers decode all the way down.
        assert_eq!(
            RevertReason::decode(&data).root(),
            &RevertReason::Message("bottom".into())
        );
        // One more leaves the bottom undecoded.
        let data = batch_failure(9, data);
        let reason = RevertReason::decode(&data);
        let mut depth = 0;
        let mut current = &reason;
        while let RevertReason::BatchCall { reason, .. } = current {
            depth += 1;
            current = reason;
        }
        assert_eq!(depth, MAX_REVERT_NESTING + 1);
        assert!(
            matches!(current, RevertReason::Unknown { selector: Some(s), .. } if *s == Revert::SELECTOR)
        );
    }

    #[test]
    fn unknown_empty_and_truncated_data() {
        assert_eq!(RevertReason::decode(&[]), RevertReason::Empty);
        assert_eq!(RevertReason::decode(&[]).to_string(), "no revert data");
        assert_eq!(decode_handle_ops_revert(&[]), None);

        let short = RevertReason::decode(&[0x08, 0xc3]);
        assert_eq!(
            short,
            RevertReason::Unknown {
                selector: None,
                data: Bytes::from(vec![0x08, 0xc3])
            }
        );
        assert_eq!(short.to_string(), "malformed revert data 0x08c3");

        let data = [0xde, 0xad, 0xbe, 0xef, 1, 2, 3];
        let reason = RevertReason::decode(&data);
        assert_eq!(
            reason,
            RevertReason::Unknown {
                selector: Some([0xde, 0xad, 0xbe, 0xef]),
                data: Bytes::copy_from_slice(&data)
            }
        );
        assert_eq!(
            reason.to_string(),
            "unknown error 0xdeadbeef (7 bytes of revert data)"
        );

        // Known selectors with their data cut short decode to Unknown, never to garbage. (A
        // cut into the zero padding alone still decodes: the value is all there.)
        for full in [
            Revert::from("x".repeat(40)).abi_encode(),
            Panic::from(0x11u64).abi_encode(),
            call_not_allowed(),
            batch_failure(0, call_not_allowed()),
            failed_op_with_revert("AA23 reverted", call_not_allowed()),
        ] {
            let cut = &full[..full.len() - 32];
            assert!(
                matches!(
                    RevertReason::decode(cut),
                    RevertReason::Unknown {
                        selector: Some(_),
                        ..
                    }
                ),
                "{:?}",
                RevertReason::decode(cut)
            );
            assert_eq!(decode_handle_ops_revert(cut), None);
        }
    }

    #[test]
    fn long_messages_are_shortened_for_display() {
        let data = Revert::from("z".repeat(10_000)).abi_encode();
        let line = RevertReason::decode(&data).to_string();
        assert!(line.len() < DISPLAY_CHARS + 10, "{}", line.len());
        let err =
            AaError::from_reason(&format!("AA25 {}\n", "y".repeat(10_000)), None, None).unwrap();
        let line = err.to_string();
        assert!(!line.contains('\n'));
        assert!(line.len() < 2 * DISPLAY_CHARS + 200);
    }

    #[test]
    fn the_table_covers_every_code_entry_point_v08_raises() {
        // `grep -o '"AA[0-9][0-9]' core/*.sol` in @account-abstraction/contracts@0.8.0.
        let v08 = [
            10, 13, 14, 15, 20, 21, 22, 23, 24, 25, 26, 30, 31, 32, 33, 34, 36, 90, 91, 92, 93, 94,
            95, 97, 98, 99,
        ];
        for number in v08 {
            assert!(
                AA_CODES.iter().any(|code| code.number == number),
                "AA{number} is missing from the table"
            );
        }
        assert!(
            AA_CODES
                .windows(2)
                .all(|pair| pair[0].number < pair[1].number),
            "sorted, unique"
        );
        for code in AA_CODES {
            assert!(!code.cause.is_empty() && !code.remedy.is_empty());
            let err = AaError::from_reason(&format!("AA{} x", code.number), None, None).unwrap();
            assert_eq!(err.code, format!("AA{}", code.number));
            assert_eq!(err.cause, code.cause);
        }
        assert_eq!(code_str(0), "AA00");
        assert_eq!(code_str(7), "AA07");
        assert_eq!(code_str(99), "AA99");
        assert_eq!(code_str(100), "AA??");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = RevertReason::decode(&data).to_string();
            let _ = decode_handle_ops_revert(&data).map(|err| err.to_string());
        }

        #[test]
        fn known_selectors_with_arbitrary_bodies_never_panic(
            selector in prop_oneof![
                Just(Revert::SELECTOR),
                Just(Panic::SELECTOR),
                Just(SessionKeyAccount::ExecuteError::SELECTOR),
                Just(EntryPoint::FailedOp::SELECTOR),
                Just(EntryPoint::FailedOpWithRevert::SELECTOR),
                Just(SessionKeyAccount::SessionKeyCallNotAllowed::SELECTOR),
            ],
            body in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let data = [selector.as_slice(), &body].concat();
            let _ = RevertReason::decode(&data).to_string();
            let _ = decode_handle_ops_revert(&data).map(|err| err.to_string());
        }

        #[test]
        fn arbitrary_reasons_never_panic(reason in any::<String>()) {
            let _ = AaError::from_reason(&reason, None, None).map(|err| err.to_string());
            let data = failed_op(0, &reason);
            let _ = decode_handle_ops_revert(&data).map(|err| err.to_string());
        }
    }
}
