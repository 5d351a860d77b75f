//! ERC-4337 user operations: the unpacked form latchkey builds, the packed form the
//! EntryPoint takes, and the v0.8 userOpHash (what owners sign, and what a session key's
//! signature binds; see [`super::signature`]).

use alloy::{
    primitives::{Address, B256, Bytes, U256, address, aliases::U192},
    sol_types::{SolStruct, eip712_domain},
};

use super::{ChainError, contracts::PackedUserOperation};

/// A factory address equal to this marker means "EIP-7702 delegated sender"; the
/// EntryPoint then hashes the sender's delegate into the userOpHash, which cannot be known
/// offline. latchkey's accounts are deployed by a factory, so such ops are refused.
const EIP7702_INIT_CODE_MARKER: Address = address!("7702000000000000000000000000000000000000");

/// A user operation in its unpacked form (the one ERC-4337 RPCs use), which keeps every gas
/// field separate so that estimation and fee bumps can change one at a time.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UserOperation {
    /// The smart account that executes the operation.
    pub sender: Address,
    /// EntryPoint nonce: a 192-bit key in the high bits, a sequence in the low 64.
    pub nonce: U256,
    /// Factory that deploys `sender` in this operation, when it has no code yet.
    pub factory: Option<Address>,
    /// Calldata for `factory`; ignored without a factory.
    pub factory_data: Bytes,
    /// What the EntryPoint calls on the account after validation.
    pub call_data: Bytes,
    /// Gas for the execution phase.
    pub call_gas_limit: u128,
    /// Gas for account deployment and `validateUserOp`.
    pub verification_gas_limit: u128,
    /// Gas paid to the bundler for the calldata and the per-op overhead.
    pub pre_verification_gas: U256,
    /// EIP-1559 fee cap.
    pub max_fee_per_gas: u128,
    /// EIP-1559 priority fee.
    pub max_priority_fee_per_gas: u128,
    /// Paymaster that sponsors the operation, if any.
    pub paymaster: Option<Address>,
    /// Gas for the paymaster's validation.
    pub paymaster_verification_gas_limit: u128,
    /// Gas for the paymaster's postOp.
    pub paymaster_post_op_gas_limit: u128,
    /// Paymaster-specific data (for example a sponsor signature).
    pub paymaster_data: Bytes,
    /// Signature checked by the account's `validateUserOp`.
    pub signature: Bytes,
}

impl UserOperation {
    /// `initCode` as the EntryPoint sees it: factory address followed by its calldata.
    pub fn init_code(&self) -> Bytes {
        match self.factory {
            Some(factory) => [factory.as_slice(), &self.factory_data].concat().into(),
            None => Bytes::new(),
        }
    }

    /// `paymasterAndData`: paymaster, its two 16-byte gas limits, then its data.
    pub fn paymaster_and_data(&self) -> Bytes {
        match self.paymaster {
            Some(paymaster) => [
                paymaster.as_slice(),
                &self.paymaster_verification_gas_limit.to_be_bytes(),
                &self.paymaster_post_op_gas_limit.to_be_bytes(),
                &self.paymaster_data,
            ]
            .concat()
            .into(),
            None => Bytes::new(),
        }
    }

    /// The packed form that `handleOps` and `getUserOpHash` take.
    pub fn pack(&self) -> PackedUserOperation {
        PackedUserOperation {
            sender: self.sender,
            nonce: self.nonce,
            initCode: self.init_code(),
            callData: self.call_data.clone(),
            accountGasLimits: pack_u128_pair(self.verification_gas_limit, self.call_gas_limit),
            preVerificationGas: self.pre_verification_gas,
            gasFees: pack_u128_pair(self.max_priority_fee_per_gas, self.max_fee_per_gas),
            paymasterAndData: self.paymaster_and_data(),
            signature: self.signature.clone(),
        }
    }

    /// The EntryPoint v0.8 userOpHash of this operation (see [`user_op_hash_v08`]).
    pub fn hash_v08(&self, entry_point: Address, chain_id: u64) -> Result<B256, ChainError> {
        user_op_hash_v08(&self.pack(), entry_point, chain_id)
    }
}

/// The EntryPoint nonce key of lane `sub_lane` of the session key whose id is `key` (its
/// address, for a secp256k1 key). SessionKeyAccount accepts a session key's operation only
/// under a nonce key whose top 160 bits are the key's id, which gives each key 2^32
/// independent lanes and keeps it out of the owner's.
pub fn session_nonce_key(key: Address, sub_lane: u32) -> U192 {
    (U192::from_be_slice(key.as_slice()) << 32) | U192::from(sub_lane)
}

/// Two 128-bit values in one word, high then low: the layout of `accountGasLimits`
/// (verification, call) and `gasFees` (priority fee, max fee).
pub fn pack_u128_pair(high: u128, low: u128) -> B256 {
    let mut word = [0u8; 32];
    word[..16].copy_from_slice(&high.to_be_bytes());
    word[16..].copy_from_slice(&low.to_be_bytes());
    B256::from(word)
}

mod typed {
    use alloy::sol;

    sol! {
        /// The EIP-712 type EntryPoint v0.8 hashes; the signature is not part of it.
        struct PackedUserOperation {
            address sender;
            uint256 nonce;
            bytes initCode;
            bytes callData;
            bytes32 accountGasLimits;
            uint256 preVerificationGas;
            bytes32 gasFees;
            bytes paymasterAndData;
        }
    }
}

/// The userOpHash EntryPoint v0.8 computes in `getUserOpHash`: the EIP-712 digest of the
/// operation under the domain `{name: "ERC4337", version: "1", chainId, verifyingContract:
/// entryPoint}`. Owners and session keys sign this hash.
pub fn user_op_hash_v08(
    op: &PackedUserOperation,
    entry_point: Address,
    chain_id: u64,
) -> Result<B256, ChainError> {
    if is_eip7702_init_code(&op.initCode) {
        return Err(ChainError::Eip7702InitCode);
    }
    let typed = typed::PackedUserOperation {
        sender: op.sender,
        nonce: op.nonce,
        initCode: op.initCode.clone(),
        callData: op.callData.clone(),
        accountGasLimits: op.accountGasLimits,
        preVerificationGas: op.preVerificationGas,
        gasFees: op.gasFees,
        paymasterAndData: op.paymasterAndData.clone(),
    };
    let domain = eip712_domain! {
        name: "ERC4337",
        version: "1",
        chain_id: chain_id,
        verifying_contract: entry_point,
    };
    Ok(typed.eip712_signing_hash(&domain))
}

/// The EIP-712 typed data of `op` under EntryPoint v0.8, as `eth_signTypedData_v4` takes it
/// (`types`, `primaryType`, `domain`, `message`): what a wallet shows its user, and whose
/// signature is a raw signature of the userOpHash. Bytes are 0x-hex, integers decimal text.
pub fn typed_data_v08(
    op: &UserOperation,
    entry_point: Address,
    chain_id: u64,
) -> serde_json::Value {
    let packed = op.pack();
    let field = |name: &str, kind: &str| serde_json::json!({"name": name, "type": kind});
    serde_json::json!({
        "types": {
            "EIP712Domain": [
                field("name", "string"),
                field("version", "string"),
                field("chainId", "uint256"),
                field("verifyingContract", "address"),
            ],
            "PackedUserOperation": [
                field("sender", "address"),
                field("nonce", "uint256"),
                field("initCode", "bytes"),
                field("callData", "bytes"),
                field("accountGasLimits", "bytes32"),
                field("preVerificationGas", "uint256"),
                field("gasFees", "bytes32"),
                field("paymasterAndData", "bytes"),
            ],
        },
        "primaryType": "PackedUserOperation",
        "domain": {
            "name": "ERC4337",
            "version": "1",
            "chainId": chain_id,
            "verifyingContract": entry_point.to_checksum(None),
        },
        "message": {
            "sender": packed.sender.to_checksum(None),
            "nonce": packed.nonce.to_string(),
            "initCode": packed.initCode.to_string(),
            "callData": packed.callData.to_string(),
            "accountGasLimits": packed.accountGasLimits.to_string(),
            "preVerificationGas": packed.preVerificationGas.to_string(),
            "gasFees": packed.gasFees.to_string(),
            "paymasterAndData": packed.paymasterAndData.to_string(),
        },
    })
}

/// Mirrors the EntryPoint's test: at least two bytes, and the first 20 (zero-padded) equal
/// to the marker. So `0x7702` alone counts, as does any initCode naming the marker factory.
fn is_eip7702_init_code(init_code: &[u8]) -> bool {
    if init_code.len() < 2 {
        return false;
    }
    let mut head = [0u8; 20];
    let len = init_code.len().min(20);
    head[..len].copy_from_slice(&init_code[..len]);
    head == EIP7702_INIT_CODE_MARKER.0.0
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{Address, U256, bytes};

    use super::*;

    #[test]
    fn session_nonce_keys_carry_the_key_above_the_sub_lane() {
        let key = Address::repeat_byte(0xab);
        let nonce_key = session_nonce_key(key, 7);
        let expected = (U256::from_be_slice(key.as_slice()) << 32) | U256::from(7);
        assert_eq!(U256::from(nonce_key), expected);
        assert_ne!(session_nonce_key(key, 0), session_nonce_key(key, 1));
    }

    #[test]
    fn gas_pairs_pack_high_then_low() {
        let word = pack_u128_pair(1, 2);
        assert_eq!(
            U256::from_be_bytes(word.0),
            (U256::from(1) << 128) | U256::from(2)
        );
    }

    #[test]
    fn init_code_and_paymaster_data_are_concatenated_in_entry_point_order() {
        let factory = Address::repeat_byte(0xfa);
        let paymaster = Address::repeat_byte(0xbb);
        let op = UserOperation {
            factory: Some(factory),
            factory_data: bytes!("c0ffee"),
            paymaster: Some(paymaster),
            paymaster_verification_gas_limit: 7,
            paymaster_post_op_gas_limit: 9,
            paymaster_data: bytes!("aa"),
            ..Default::default()
        };
        let init_code = op.init_code();
        assert_eq!(&init_code[..20], factory.as_slice());
        assert_eq!(&init_code[20..], &[0xc0, 0xff, 0xee]);

        let pm = op.paymaster_and_data();
        assert_eq!(pm.len(), 20 + 16 + 16 + 1);
        assert_eq!(&pm[..20], paymaster.as_slice());
        assert_eq!(u128::from_be_bytes(pm[20..36].try_into().unwrap()), 7);
        assert_eq!(u128::from_be_bytes(pm[36..52].try_into().unwrap()), 9);
        assert_eq!(pm[52], 0xaa);

        let empty = UserOperation::default();
        assert!(empty.init_code().is_empty());
        assert!(empty.paymaster_and_data().is_empty());
    }

    #[test]
    fn hash_depends_on_chain_and_entry_point_but_not_signature() {
        let op = UserOperation {
            nonce: U256::from(3),
            ..Default::default()
        };
        let ep = Address::repeat_byte(1);
        let base = op.hash_v08(ep, 1).unwrap();
        assert_ne!(base, op.hash_v08(ep, 2).unwrap());
        assert_ne!(base, op.hash_v08(Address::repeat_byte(2), 1).unwrap());
        let signed = UserOperation {
            signature: bytes!("01020304"),
            ..op
        };
        assert_eq!(base, signed.hash_v08(ep, 1).unwrap());
    }

    #[test]
    fn the_typed_data_hashes_to_the_user_op_hash() {
        let op = UserOperation {
            sender: Address::repeat_byte(0x11),
            nonce: U256::from(7) << 64,
            factory: Some(Address::repeat_byte(0x22)),
            factory_data: bytes!("c0ffee"),
            call_data: bytes!("b61d27f6"),
            call_gas_limit: 100_000,
            verification_gas_limit: 200_000,
            pre_verification_gas: U256::from(50_000),
            max_fee_per_gas: 3_000_000_000,
            max_priority_fee_per_gas: 1_000_000_000,
            ..Default::default()
        };
        let entry_point = Address::repeat_byte(0x43);
        let typed: alloy::dyn_abi::TypedData =
            serde_json::from_value(typed_data_v08(&op, entry_point, 31_337)).unwrap();
        assert_eq!(
            typed.eip712_signing_hash().unwrap(),
            op.hash_v08(entry_point, 31_337).unwrap()
        );
    }

    #[test]
    fn eip7702_init_code_is_refused() {
        let op = UserOperation {
            factory: Some(EIP7702_INIT_CODE_MARKER),
            ..Default::default()
        };
        assert!(matches!(
            op.hash_v08(Address::ZERO, 1),
            Err(ChainError::Eip7702InitCode)
        ));
        assert!(is_eip7702_init_code(&[0x77, 0x02]));
        assert!(!is_eip7702_init_code(&[0x77]));
        assert!(!is_eip7702_init_code(&[0x77, 0x02, 0x01]));
        assert!(!is_eip7702_init_code(&[]));
    }
}
