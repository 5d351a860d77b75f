//! Sponsorship approvals for `SponsorPaymaster`: the hash its signer approves for one
//! operation, and the `paymasterAndData` that carries the approval.
//!
//! The paymaster signs first: the account's own signature is over the userOpHash, which in
//! EntryPoint v0.8 covers the whole `paymasterAndData`, approval included. So an operation
//! gets its final nonce and gas fields, then its approval, then the account's signature.

use alloy::{
    primitives::{Address, B256, Bytes, U256, keccak256},
    signers::{SignerSync, local::PrivateKeySigner},
    sol_types::SolValue,
};

use super::{ChainError, user_operation::UserOperation};

/// The tag that opens every approval hash, as the contract's `SPONSOR_DOMAIN` is built.
pub const SPONSOR_DOMAIN_TAG: &str = "latchkey.SponsorPaymaster.v1";

/// The one `paymasterAndData` length the paymaster accepts: paymaster (20), its two gas
/// limits (16 + 16), validUntil (6), validAfter (6) and the signature (65).
pub const PAYMASTER_AND_DATA_LENGTH: usize = 129;

/// What an approval is for, beyond the operation itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sponsorship {
    /// The SponsorPaymaster that pays.
    pub paymaster: Address,
    /// Gas for the paymaster's validation.
    pub verification_gas_limit: u128,
    /// Gas for its postOp (it runs none; 0 is enough).
    pub post_op_gas_limit: u128,
    /// Last second the approval is good for (the EntryPoint's validUntil, inclusive); 0 for
    /// no expiry. At most 2^48 - 1.
    pub valid_until: u64,
    /// The approval is good only after this second (exclusive). At most 2^48 - 1.
    pub valid_after: u64,
}

/// The largest value a uint48 window bound holds.
const MAX_UINT48: u64 = (1 << 48) - 1;

/// The hash the paymaster's signer approves for `op` under `sponsorship` on `chain_id`,
/// before the EIP-191 prefix: what `SponsorPaymaster.getHash` returns. The operation's own
/// paymaster fields are ignored; the sponsorship's are hashed in their place.
pub fn sponsor_hash(
    op: &UserOperation,
    sponsorship: &Sponsorship,
    chain_id: u64,
) -> Result<B256, ChainError> {
    check_window(sponsorship)?;
    let packed = op.pack();
    let mut gas_limits = [0u8; 32];
    gas_limits[..16].copy_from_slice(&sponsorship.verification_gas_limit.to_be_bytes());
    gas_limits[16..].copy_from_slice(&sponsorship.post_op_gas_limit.to_be_bytes());
    let words = (
        keccak256(SPONSOR_DOMAIN_TAG),
        packed.sender,
        packed.nonce,
        keccak256(&packed.initCode),
        keccak256(&packed.callData),
        packed.accountGasLimits,
        B256::from(gas_limits),
        packed.preVerificationGas,
        packed.gasFees,
        U256::from(sponsorship.valid_until),
        U256::from(sponsorship.valid_after),
        U256::from(chain_id),
        sponsorship.paymaster,
    );
    Ok(keccak256(words.abi_encode_params()))
}

/// Has `signer` approve `op` under `sponsorship` and writes the approval into the
/// operation's paymaster fields. Sign the operation itself afterwards: its userOpHash covers
/// the approval.
pub fn approve(
    op: &mut UserOperation,
    sponsorship: &Sponsorship,
    chain_id: u64,
    signer: &PrivateKeySigner,
) -> Result<(), ChainError> {
    let hash = sponsor_hash(op, sponsorship, chain_id)?;
    let signature = signer.sign_message_sync(hash.as_slice())?;
    op.paymaster = Some(sponsorship.paymaster);
    op.paymaster_verification_gas_limit = sponsorship.verification_gas_limit;
    op.paymaster_post_op_gas_limit = sponsorship.post_op_gas_limit;
    op.paymaster_data = [
        &sponsorship.valid_until.to_be_bytes()[2..],
        &sponsorship.valid_after.to_be_bytes()[2..],
        signature.as_bytes().as_slice(),
    ]
    .concat()
    .into();
    Ok(())
}

/// Writes `sponsorship`'s paymaster fields into `op` with a placeholder of the approval's
/// exact length, so the operation's size, and from it its preVerificationGas, can be
/// settled before the approval (which covers preVerificationGas) is signed.
pub fn reserve(op: &mut UserOperation, sponsorship: &Sponsorship) {
    op.paymaster = Some(sponsorship.paymaster);
    op.paymaster_verification_gas_limit = sponsorship.verification_gas_limit;
    op.paymaster_post_op_gas_limit = sponsorship.post_op_gas_limit;
    // Non-zero bytes: calldata gas is reckoned at its most.
    op.paymaster_data = vec![0xff; PAYMASTER_AND_DATA_LENGTH - 52].into();
}

/// The sponsorship and signature carried by a `paymasterAndData`, or `None` when it is not
/// shaped like an approval.
pub fn parse_approval(paymaster_and_data: &Bytes) -> Option<(Sponsorship, Bytes)> {
    let data = paymaster_and_data.as_ref();
    if data.len() != PAYMASTER_AND_DATA_LENGTH {
        return None;
    }
    let uint48 = |bytes: &[u8]| {
        let mut word = [0u8; 8];
        word[2..].copy_from_slice(bytes);
        u64::from_be_bytes(word)
    };
    let uint128 = |bytes: &[u8]| u128::from_be_bytes(bytes.try_into().unwrap_or([0; 16]));
    let sponsorship = Sponsorship {
        paymaster: Address::from_slice(&data[..20]),
        verification_gas_limit: uint128(&data[20..36]),
        post_op_gas_limit: uint128(&data[36..52]),
        valid_until: uint48(&data[52..58]),
        valid_after: uint48(&data[58..64]),
    };
    Some((sponsorship, Bytes::copy_from_slice(&data[64..])))
}

fn check_window(sponsorship: &Sponsorship) -> Result<(), ChainError> {
    if sponsorship.valid_until > MAX_UINT48 || sponsorship.valid_after > MAX_UINT48 {
        return Err(ChainError::InvalidSponsorship(
            "validUntil and validAfter must fit in 48 bits",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{Signature, address};

    use super::*;

    fn op() -> UserOperation {
        UserOperation {
            sender: address!("1111111111111111111111111111111111111111"),
            nonce: U256::from(7),
            call_data: Bytes::from_static(b"\x12\x34"),
            call_gas_limit: 90_000,
            verification_gas_limit: 150_000,
            pre_verification_gas: U256::from(50_000),
            max_fee_per_gas: 2_000_000_000,
            max_priority_fee_per_gas: 1_000_000_000,
            ..Default::default()
        }
    }

    fn sponsorship() -> Sponsorship {
        Sponsorship {
            paymaster: address!("2222222222222222222222222222222222222222"),
            verification_gas_limit: 100_000,
            post_op_gas_limit: 0,
            valid_until: 1_900_000_000,
            valid_after: 1_700_000_000,
        }
    }

    #[test]
    fn an_approval_round_trips_and_recovers_the_signer() {
        let signer = PrivateKeySigner::random();
        let mut op = op();
        approve(&mut op, &sponsorship(), 31_337, &signer).unwrap();
        let paymaster_and_data = op.paymaster_and_data();
        assert_eq!(paymaster_and_data.len(), PAYMASTER_AND_DATA_LENGTH);
        let (parsed, signature) = parse_approval(&paymaster_and_data).unwrap();
        assert_eq!(parsed, sponsorship());
        let hash = sponsor_hash(&op, &parsed, 31_337).unwrap();
        let signature = Signature::try_from(signature.as_ref()).unwrap();
        assert_eq!(
            signature.recover_address_from_msg(hash).unwrap(),
            signer.address()
        );
    }

    #[test]
    fn every_bound_field_changes_the_hash() {
        let base = sponsor_hash(&op(), &sponsorship(), 31_337).unwrap();
        let mut changed = Vec::new();
        let mut with_op = |change: fn(&mut UserOperation)| {
            let mut op = op();
            change(&mut op);
            changed.push(sponsor_hash(&op, &sponsorship(), 31_337).unwrap());
        };
        with_op(|op| op.sender = Address::repeat_byte(9));
        with_op(|op| op.nonce += U256::from(1));
        with_op(|op| op.factory = Some(Address::repeat_byte(3)));
        with_op(|op| op.call_data = Bytes::from_static(b"\x12\x35"));
        with_op(|op| op.call_gas_limit += 1);
        with_op(|op| op.pre_verification_gas += U256::from(1));
        with_op(|op| op.max_fee_per_gas += 1);
        let with_sponsorship = |change: fn(&mut Sponsorship)| {
            let mut sponsorship = sponsorship();
            change(&mut sponsorship);
            sponsor_hash(&op(), &sponsorship, 31_337).unwrap()
        };
        changed.push(with_sponsorship(|s| s.paymaster = Address::repeat_byte(4)));
        changed.push(with_sponsorship(|s| s.verification_gas_limit += 1));
        changed.push(with_sponsorship(|s| s.post_op_gas_limit += 1));
        changed.push(with_sponsorship(|s| s.valid_until += 1));
        changed.push(with_sponsorship(|s| s.valid_after += 1));
        changed.push(sponsor_hash(&op(), &sponsorship(), 1).unwrap());
        for (index, hash) in changed.iter().enumerate() {
            assert_ne!(*hash, base, "change {index} left the hash as it was");
        }
        // The account's signature and the operation's own paymaster fields are not bound.
        let mut signed = op();
        signed.signature = Bytes::from_static(b"anything");
        signed.paymaster = Some(Address::repeat_byte(5));
        assert_eq!(sponsor_hash(&signed, &sponsorship(), 31_337).unwrap(), base);
    }

    #[test]
    fn windows_beyond_48_bits_are_refused() {
        let mut wide = sponsorship();
        wide.valid_until = 1 << 48;
        assert!(sponsor_hash(&op(), &wide, 31_337).is_err());
        assert!(parse_approval(&Bytes::from_static(b"short")).is_none());
    }
}
