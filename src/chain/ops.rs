//! Building the user operations latchkey relays: the owner's registration and revocation of a
//! session key, and a session key's contract calls. Pure: the caller supplies nonce, fees and
//! any estimate; signing happens elsewhere.
//!
//! Every operation gets a nonce key of its own at sequence 0. An owner operation's key is
//! derived from its intent id (192 pseudo-random bits, so it meets no other operation's key);
//! a session key's intents use the key's own lanes (see [`session_nonce_key`]). An operation
//! that never executes then blocks nothing behind it, and one that executes can never
//! execute again.

use alloy::{
    primitives::{Address, B256, Bytes, U256, aliases::U192, keccak256},
    sol_types::{SolCall, SolValue},
};

use super::{
    contracts::{BaseAccount, SessionKeyAccount, SessionKeyAccountFactory},
    signature::FRAMED_ECDSA_LEN,
    user_operation::{UserOperation, session_nonce_key},
};
use crate::call::Interaction;

/// Gas for `validateUserOp` of an owner operation (two ecrecovers at worst).
pub const OWNER_VERIFICATION_GAS: u128 = 120_000;
/// How the account implementation verifies P-256 signatures (a passkey owner's, a P-256 or
/// WebAuthn session key's): it decided once, at deployment (`usesP256Precompile()`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum P256Path {
    /// The precompile at 0x100 (6,900 gas a verification under EIP-7951).
    Precompile,
    /// OpenZeppelin's Solidity verifier, about 300,000 gas with a WebAuthn assertion.
    Solidity,
}

impl P256Path {
    /// Verification gas an operation gets beyond a secp256k1 one's when a P-256 signature is
    /// checked: the verification, SHA-256, and for WebAuthn the challenge's base64url and the
    /// assertion's checks. Verification gas left unused is not charged.
    pub fn verification_gas(self) -> u128 {
        match self {
            Self::Precompile => 60_000,
            Self::Solidity => 400_000,
        }
    }
}
/// Extra verification gas when the operation deploys the account (clone + initialize).
pub const DEPLOYMENT_GAS: u128 = 180_000;
/// Verification gas of a session-key operation, before its per-call share.
pub const SESSION_VERIFICATION_GAS: u128 = 140_000;
/// Verification gas per call a session-key operation checks.
pub const SESSION_VERIFICATION_GAS_PER_CALL: u128 = 15_000;
/// Execution gas of `registerSessionKey`, before its per-permission share.
pub const REGISTRATION_CALL_GAS: u128 = 130_000;
/// Execution gas per allowlist entry written.
pub const REGISTRATION_CALL_GAS_PER_PERMISSION: u128 = 30_000;
/// Verification gas per argument rule a session-key operation checks: a few storage reads.
pub const ARGUMENT_RULE_VERIFICATION_GAS: u128 = 10_000;
/// Verification gas per spend-limit charge: the limit's three slots read, two of them written
/// from zero on a first spend (2 x 22,100), and its event.
pub const SPEND_CHARGE_VERIFICATION_GAS: u128 = 60_000;
/// Execution gas per argument rule written at registration, before its values: its two slots
/// and, for an entry's first rule, the entry's array slots.
pub const REGISTRATION_CALL_GAS_PER_RULE: u128 = 90_000;
/// Execution gas per value of an argument rule written at registration.
pub const REGISTRATION_CALL_GAS_PER_RULE_VALUE: u128 = 25_000;
/// Execution gas per spend limit written at registration: four slots from zero.
pub const REGISTRATION_CALL_GAS_PER_LIMIT: u128 = 120_000;
/// Execution gas of `revokeSessionKey`.
pub const REVOCATION_CALL_GAS: u128 = 60_000;
/// Verification gas of an owner operation, without deployment; `p256` is the path a
/// passkey owner's signature takes, `None` for an Ethereum owner.
pub fn owner_verification_gas(p256: Option<P256Path>) -> u128 {
    OWNER_VERIFICATION_GAS + p256.map_or(0, P256Path::verification_gas)
}

/// Verification gas of a session key's operation making `calls` calls; `p256` is the path a
/// P-256 key's signature takes, `None` for a secp256k1 key.
pub fn session_verification_gas(calls: u128, p256: Option<P256Path>) -> u128 {
    SESSION_VERIFICATION_GAS
        + SESSION_VERIFICATION_GAS_PER_CALL * calls
        + p256.map_or(0, P256Path::verification_gas)
}

/// Verification gas a session-key operation needs beyond [`session_verification_gas`] for
/// its permissions: `rules` argument rules checked and `charges` spend-limit charges.
pub fn permission_verification_gas(rules: usize, charges: usize) -> u128 {
    ARGUMENT_RULE_VERIFICATION_GAS * rules as u128 + SPEND_CHARGE_VERIFICATION_GAS * charges as u128
}

/// Call gas given beyond an estimate's fifth more: room for the state an operation lands
/// on to cost a little more than the state it was estimated on.
const CALL_GAS_MARGIN: u128 = 10_000;

/// The length of the stand-in signature used to size an operation before it is signed: a
/// session key's framed ECDSA signature, the longest secp256k1 one.
const DUMMY_SIGNATURE_LEN: usize = FRAMED_ECDSA_LEN;

/// `SignerKind.Secp256k1` in the contracts' ABI.
pub const SECP256K1_KIND: u8 = 0;

/// The nonce of an owner operation: a key derived from `seed` (the intent id), sequence 0.
pub fn owner_nonce(seed: &[u8]) -> U256 {
    let key = U192::from_be_slice(&keccak256(seed)[..24]);
    U256::from(key) << 64
}

/// The first nonce lane of a session's intents, derived from its id. The second half of the
/// lane space is left above it, 2^31 intents at least; a key registered again gets a new
/// session id and so lanes its earlier operations never used.
pub fn first_intent_lane(seed: &[u8]) -> u32 {
    let hash = keccak256(seed);
    u32::from_be_bytes([hash[0], hash[1], hash[2], hash[3]]) >> 1
}

/// The nonce of a session's `lane`-th intent.
pub fn session_nonce(key: Address, lane: u32) -> U256 {
    U256::from(session_nonce_key(key, lane)) << 64
}

/// The nonce key of `nonce` (its top 192 bits).
pub fn nonce_key(nonce: U256) -> U192 {
    U192::from(nonce >> 64)
}

/// The call gas limit of an operation whose `execute` was estimated at `estimated` gas.
pub fn call_gas_limit(estimated: u128) -> u128 {
    estimated.saturating_mul(6) / 5 + CALL_GAS_MARGIN
}

/// A signer as the contracts take it (their `Signer` struct): its kind's number and its
/// public key, 20 address bytes for secp256k1 or 64 bytes `x ‖ y` for the P-256 kinds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContractSigner {
    /// `SignerKind` in the contracts' numbering.
    pub kind: u8,
    /// The public key's bytes.
    pub key: Bytes,
}

impl ContractSigner {
    /// An Ethereum key, by its address.
    pub fn ethereum(address: Address) -> Self {
        Self {
            kind: SECP256K1_KIND,
            key: Bytes::copy_from_slice(address.as_slice()),
        }
    }
}

/// The factory's form of `owner`.
pub fn factory_owner(owner: &ContractSigner) -> SessionKeyAccountFactory::Signer {
    SessionKeyAccountFactory::Signer {
        kind: owner.kind,
        key: owner.key.clone(),
    }
}

/// `factoryData` that deploys the account of (owner, salt).
pub fn factory_data(owner: &ContractSigner, salt: U256) -> Bytes {
    SessionKeyAccountFactory::createAccountCall {
        owner: factory_owner(owner),
        salt,
    }
    .abi_encode()
    .into()
}

/// `execute(account, 0, registerSessionKey(...))`: an owner operation in which the account
/// calls itself, the only route to its admin functions besides the owner's own transaction.
pub fn registration_call_data(
    account: Address,
    registration: B256,
    key: &ContractSigner,
    valid_after: u64,
    valid_until: u64,
    permissions: SessionKeyAccount::SessionPermissions,
) -> Bytes {
    let register = SessionKeyAccount::registerSessionKeyCall {
        registration,
        key: SessionKeyAccount::Signer {
            kind: key.kind,
            key: key.key.clone(),
        },
        validAfter: alloy::primitives::aliases::U48::saturating_from(valid_after),
        validUntil: alloy::primitives::aliases::U48::saturating_from(valid_until),
        permissions,
    };
    self_call(account, register.abi_encode())
}

/// `execute(account, 0, revokeSessionKey(registration))`.
pub fn revocation_call_data(account: Address, registration: B256) -> Bytes {
    self_call(
        account,
        SessionKeyAccount::revokeSessionKeyCall { registration }.abi_encode(),
    )
}

fn self_call(account: Address, data: Vec<u8>) -> Bytes {
    SessionKeyAccount::executeCall {
        target: account,
        value: U256::ZERO,
        data: data.into(),
    }
    .abi_encode()
    .into()
}

/// `execute` for one interaction, `executeBatch` for several.
pub fn intent_call_data(interactions: &[Interaction]) -> Bytes {
    match interactions {
        [single] => SessionKeyAccount::executeCall {
            target: single.to,
            value: single.value,
            data: single.data.clone(),
        }
        .abi_encode()
        .into(),
        many => SessionKeyAccount::executeBatchCall {
            calls: many
                .iter()
                .map(|interaction| BaseAccount::Call {
                    target: interaction.to,
                    value: interaction.value,
                    data: interaction.data.clone(),
                })
                .collect(),
        }
        .abi_encode()
        .into(),
    }
}

/// What the bundler pays for carrying `op` in a one-operation `handleOps` transaction: the
/// intrinsic 21,000, the calldata (16 gas a non-zero byte, 4 a zero byte, with the signature
/// sized for a real one), and a margin for the EntryPoint's per-bundle work.
pub fn pre_verification_gas(op: &UserOperation) -> U256 {
    const BUNDLE_OVERHEAD: u64 = 21_000 + 15_000;
    let mut sized = op.clone();
    if sized.signature.len() < DUMMY_SIGNATURE_LEN {
        sized.signature = Bytes::from(vec![0xff; DUMMY_SIGNATURE_LEN]);
    }
    let encoded = (vec![sized.pack()], Address::ZERO).abi_encode_params();
    let calldata: u64 = encoded
        .iter()
        .map(|byte| if *byte == 0 { 4 } else { 16 })
        .sum();
    U256::from(BUNDLE_OVERHEAD + calldata + 4 * 16)
}

/// Every gas limit `op` carries, the paymaster's included: what the EntryPoint's prefund
/// is reckoned on, and what a sponsoring policy reserves. Saturates on absurd inputs.
pub fn total_gas(op: &UserOperation) -> u128 {
    let pre_verification = u128::try_from(op.pre_verification_gas).unwrap_or(u128::MAX);
    op.verification_gas_limit
        .saturating_add(op.call_gas_limit)
        .saturating_add(pre_verification)
        .saturating_add(op.paymaster_verification_gas_limit)
        .saturating_add(op.paymaster_post_op_gas_limit)
}

/// The most `op` can cost its account in fees: what SessionKeyAccount charges a session
/// key's gas budget. Saturates rather than overflowing on absurd inputs.
pub fn worst_case_cost(op: &UserOperation) -> u128 {
    if op.paymaster.is_some() {
        return 0;
    }
    let pre_verification = u128::try_from(op.pre_verification_gas).unwrap_or(u128::MAX);
    op.verification_gas_limit
        .saturating_add(op.call_gas_limit)
        .saturating_add(pre_verification)
        .saturating_mul(op.max_fee_per_gas)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_gets_its_own_nonce_key_at_sequence_zero() {
        let key = Address::repeat_byte(0x01);
        let first = owner_nonce(b"int_first");
        assert_ne!(nonce_key(first), nonce_key(owner_nonce(b"int_second")));
        assert_eq!(
            first,
            owner_nonce(b"int_first"),
            "derived, so a retry reuses it"
        );
        assert_ne!(
            nonce_key(session_nonce(key, 0)),
            nonce_key(session_nonce(key, 1))
        );
        for nonce in [first, session_nonce(key, 3)] {
            assert_eq!(nonce & U256::from(u64::MAX), U256::ZERO, "sequence 0");
        }
    }

    #[test]
    fn one_interaction_uses_execute_and_several_use_execute_batch() {
        let interaction = Interaction {
            to: Address::repeat_byte(2),
            value: U256::from(5),
            data: Bytes::from(vec![1, 2, 3, 4]),
            function: None,
        };
        let single = intent_call_data(std::slice::from_ref(&interaction));
        assert_eq!(&single[..4], SessionKeyAccount::executeCall::SELECTOR);
        let batch = intent_call_data(&[interaction.clone(), interaction]);
        assert_eq!(&batch[..4], SessionKeyAccount::executeBatchCall::SELECTOR);
        let decoded = SessionKeyAccount::executeBatchCall::abi_decode(&batch).unwrap();
        assert_eq!(decoded.calls.len(), 2);
        assert_eq!(decoded.calls[1].value, U256::from(5));
    }

    #[test]
    fn pre_verification_gas_grows_with_calldata() {
        let small = UserOperation::default();
        let large = UserOperation {
            call_data: Bytes::from(vec![0xab; 1_000]),
            ..Default::default()
        };
        assert!(pre_verification_gas(&small) > U256::from(36_000));
        assert!(pre_verification_gas(&large) >= pre_verification_gas(&small) + U256::from(16_000));
    }

    #[test]
    fn worst_case_cost_is_all_gas_at_the_fee_cap_unless_sponsored() {
        let op = UserOperation {
            verification_gas_limit: 100,
            call_gas_limit: 50,
            pre_verification_gas: U256::from(10),
            max_fee_per_gas: 3,
            ..Default::default()
        };
        assert_eq!(worst_case_cost(&op), 480);
        let sponsored = UserOperation {
            paymaster: Some(Address::repeat_byte(7)),
            ..op
        };
        assert_eq!(worst_case_cost(&sponsored), 0);
    }
}
