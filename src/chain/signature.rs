//! The signatures SessionKeyAccount accepts on a user operation, and what each signer signs.
//!
//! A user operation's signature starts with one byte that says who signs:
//! - `0x00 ‖ signature`: the owner signs the userOpHash, raw (a wallet signing the v0.8 typed
//!   data) or EIP-191 personal-sign;
//! - `0x01 ‖ registration ‖ validUntil ‖ signature`: a session key signs the
//!   [`session_operation_hash`], which binds the userOpHash to one registration of the key and
//!   to the operation's own deadline.
//!
//! The checks here mirror the contract's, so a signature latchkey accepts never fails in the
//! EntryPoint and one it refuses is refused before any gas is spent.

use alloy::{
    primitives::{Address, B256, Bytes, Signature, aliases::U48, keccak256},
    signers::{SignerSync, local::PrivateKeySigner},
    sol,
    sol_types::SolStruct,
};

use super::ChainError;

/// The signer byte of an owner's signature.
pub const OWNER_SIGNATURE: u8 = 0x00;
/// The signer byte of a session key's signature.
pub const SESSION_SIGNATURE: u8 = 0x01;
/// A session key's frame before its signature: signer byte, registration, validUntil.
pub const SESSION_FRAME_LEN: usize = 1 + 32 + 6;
/// The length of a framed secp256k1 signature, either signer's at most.
pub const FRAMED_ECDSA_LEN: usize = SESSION_FRAME_LEN + 65;

sol! {
    /// What a session key signs for one operation (its EIP-712 struct hash).
    struct SessionOperation {
        bytes32 userOpHash;
        bytes32 registration;
        uint48 validUntil;
    }
}

/// What a session key signs for the operation `user_op_hash`, under `registration`, valid
/// until `valid_until` (unix seconds): SessionKeyAccount's `sessionOperationHash`.
pub fn session_operation_hash(user_op_hash: B256, registration: B256, valid_until: u64) -> B256 {
    SessionOperation {
        userOpHash: user_op_hash,
        registration,
        validUntil: U48::saturating_from(valid_until),
    }
    .eip712_hash_struct()
}

/// An owner's signature framed for the account.
pub fn owner_signature(signature: &[u8]) -> Bytes {
    [&[OWNER_SIGNATURE], signature].concat().into()
}

/// A session key's signature framed for the account: it names the registration and the
/// deadline the key signed.
pub fn session_signature(registration: B256, valid_until: u64, signature: &[u8]) -> Bytes {
    let deadline = U48::saturating_from(valid_until).to_be_bytes::<6>();
    [
        &[SESSION_SIGNATURE][..],
        registration.as_slice(),
        &deadline,
        signature,
    ]
    .concat()
    .into()
}

/// The form of a 65-byte ECDSA signature that the account accepts: low `s` and `v` of 27 or
/// 28. Wallets and signing services also produce `v` of 0 or 1, or EIP-155 values, and a high
/// `s` is valid math but refused on chain; all of these are rewritten here. `None` if the
/// bytes are not a signature at all.
pub fn canonical_ecdsa(signature: &[u8]) -> Option<Bytes> {
    let parsed = Signature::from_raw(signature).ok()?.normalized_s();
    Some(Bytes::from(parsed.as_bytes().to_vec()))
}

/// Whether `signature` over `user_op_hash` is the owner's, in either form the account
/// accepts from an Ethereum owner: raw, or EIP-191 personal-sign. Pass it through
/// [`canonical_ecdsa`] first: this check is lenient on `v` and `s`.
pub fn is_owner_ecdsa(user_op_hash: B256, signature: &[u8], owner: Address) -> bool {
    let Ok(parsed) = Signature::from_raw(signature) else {
        return false;
    };
    let personal = parsed
        .recover_address_from_msg(user_op_hash.as_slice())
        .ok();
    personal == Some(owner) || is_key_ecdsa(user_op_hash, signature, owner)
}

/// Whether `signature` is `key`'s raw signature of `hash`: how a secp256k1 session key signs
/// its session operation hash (no EIP-191 prefix).
pub fn is_key_ecdsa(hash: B256, signature: &[u8], key: Address) -> bool {
    Signature::from_raw(signature)
        .ok()
        .and_then(|parsed| parsed.recover_address_from_prehash(&hash).ok())
        == Some(key)
}

/// `signer`'s raw signature of `hash`, as 65 bytes `r ‖ s ‖ v`.
pub fn sign_hash(signer: &PrivateKeySigner, hash: B256) -> Result<Bytes, ChainError> {
    Ok(Bytes::from(
        signer.sign_hash_sync(&hash)?.as_bytes().to_vec(),
    ))
}

/// `signer`'s EIP-191 personal-sign signature of the 32 bytes of `hash`, as a wallet's
/// `signMessage({raw: hash})` makes it.
pub fn sign_personal(signer: &PrivateKeySigner, hash: B256) -> Result<Bytes, ChainError> {
    Ok(Bytes::from(
        signer
            .sign_message_sync(hash.as_slice())?
            .as_bytes()
            .to_vec(),
    ))
}

/// The id a session's registration has on chain: derived from the session id, so the account
/// refuses a second registration of the same session and a new session never reuses an id.
pub fn registration_id(session_id: &str) -> B256 {
    keccak256([b"latchkey/registration/".as_slice(), session_id.as_bytes()].concat())
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{U256, b256, uint};

    use super::*;

    #[test]
    fn the_session_operation_hash_is_the_contracts_struct_hash() {
        let typehash = keccak256(
            "SessionOperation(bytes32 userOpHash,bytes32 registration,uint48 validUntil)",
        );
        let user_op_hash = B256::repeat_byte(1);
        let registration = B256::repeat_byte(2);
        let mut encoded = typehash.to_vec();
        encoded.extend_from_slice(user_op_hash.as_slice());
        encoded.extend_from_slice(registration.as_slice());
        encoded.extend_from_slice(&U256::from(1_234u64).to_be_bytes::<32>());
        assert_eq!(
            session_operation_hash(user_op_hash, registration, 1_234),
            keccak256(encoded)
        );
        assert_ne!(
            session_operation_hash(user_op_hash, registration, 1_234),
            session_operation_hash(user_op_hash, registration, 1_235)
        );
    }

    #[test]
    fn frames_start_with_the_signer_byte() {
        let owner = owner_signature(&[7; 65]);
        assert_eq!(owner.len(), 66);
        assert_eq!(owner[0], OWNER_SIGNATURE);
        let key = session_signature(B256::repeat_byte(9), 0x0102_0304_0506, &[7; 65]);
        assert_eq!(key.len(), FRAMED_ECDSA_LEN);
        assert_eq!(key[0], SESSION_SIGNATURE);
        assert_eq!(&key[1..33], B256::repeat_byte(9).as_slice());
        assert_eq!(&key[33..39], &[1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn owners_sign_either_form_and_keys_only_the_raw_hash() {
        let signer = PrivateKeySigner::random();
        let hash = b256!("2222222222222222222222222222222222222222222222222222222222222222");
        let personal = sign_personal(&signer, hash).unwrap();
        let raw = sign_hash(&signer, hash).unwrap();
        assert!(is_owner_ecdsa(hash, &personal, signer.address()));
        assert!(is_owner_ecdsa(hash, &raw, signer.address()));
        assert!(is_key_ecdsa(hash, &raw, signer.address()));
        assert!(!is_key_ecdsa(hash, &personal, signer.address()));
        assert!(!is_owner_ecdsa(hash, &personal, Address::repeat_byte(1)));
        assert!(!is_owner_ecdsa(hash, &[0u8; 64], signer.address()));
        assert!(!is_key_ecdsa(hash, &[], signer.address()));
    }

    #[test]
    fn signatures_are_made_canonical_for_the_chain() {
        let signer = PrivateKeySigner::random();
        let hash = b256!("3333333333333333333333333333333333333333333333333333333333333333");
        let canonical = sign_personal(&signer, hash).unwrap();
        assert_eq!(canonical_ecdsa(&canonical).unwrap(), canonical);

        // v as 0/1, as some wallets and KMS signers produce it.
        let mut zero_one = canonical.to_vec();
        zero_one[64] -= 27;
        assert_eq!(canonical_ecdsa(&zero_one).unwrap(), canonical);

        // The same signature with a high s (n - s, parity flipped) is valid math but refused
        // by OpenZeppelin's ECDSA; it comes back as the low-s form.
        let parsed = Signature::from_raw(&canonical).unwrap();
        const N: U256 =
            uint!(0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141_U256);
        let high = Signature::new(parsed.r(), N - parsed.s(), !parsed.v());
        assert_eq!(canonical_ecdsa(&high.as_bytes()).unwrap(), canonical);
        assert!(canonical_ecdsa(&[1u8; 64]).is_none());
    }

    #[test]
    fn registration_ids_differ_per_session() {
        assert_ne!(registration_id("ses_a"), registration_id("ses_b"));
        assert_eq!(registration_id("ses_a"), registration_id("ses_a"));
    }
}
