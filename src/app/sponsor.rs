//! Putting an operation under a policy's sponsorship: the policy's rules about the operation
//! are checked, the paymaster's fields are filled in and approved, and the charge the store
//! admits against the policy's limits is worked out.

use alloy::{primitives::Address, signers::local::PrivateKeySigner};

use super::{App, AppError};
use crate::{
    auth::TenantId,
    chain::{
        ops,
        sponsor::{self, Sponsorship},
        user_operation::UserOperation,
    },
    policy::{Amount, Charge, Operation, Policy, PolicyId},
};

/// What the daemon sponsors with: the SponsorPaymaster and the key it accepts approvals
/// from.
// Debug shows the signer as alloy prints it: its address and chain, never its key.
#[derive(Clone, Debug)]
pub struct Sponsor {
    /// The SponsorPaymaster.
    pub paymaster: Address,
    /// Its approving signer.
    pub signer: PrivateKeySigner,
    /// Seconds an approval stays good.
    pub approval_validity_secs: u64,
    /// Gas the paymaster's validation may use per operation.
    pub verification_gas_limit: u128,
}

impl App {
    /// The policy `id` names, or `None` without one; NOT_FOUND when it does not exist.
    pub(super) async fn named_policy(
        &self,
        id: Option<&PolicyId>,
        tenant: &TenantId,
    ) -> Result<Option<Policy>, AppError> {
        let Some(id) = id else {
            return Ok(None);
        };
        // Another tenant's policy is not found: a key never spends another studio's budget,
        // nor learns that it exists.
        self.store()
            .policy(id)
            .await?
            .filter(|policy| &policy.tenant == tenant)
            .map(Some)
            .ok_or_else(|| AppError::not_found("policy", id.resource_name()))
    }

    /// The paymaster sponsored operations go through; FAILED_PRECONDITION when none is
    /// configured, so a request that names a policy is refused rather than left to the
    /// account to pay.
    pub(super) fn sponsor_config(&self) -> Result<&Sponsor, AppError> {
        self.config().sponsor.as_ref().ok_or_else(|| {
            AppError::precondition(
                super::reasons::SPONSORSHIP_OFF,
                "sponsorship",
                "this daemon has no paymaster configured ([sponsor] paymaster and \
                 signer_private_key), so it cannot sponsor; operations that name no policy, on \
                 sessions without one, are paid by their accounts",
            )
        })
    }

    /// Settles `op`'s preVerificationGas and, under `policy`, its sponsorship: the last
    /// step before the operation is hashed and signed. Returns the charge of a sponsored
    /// operation.
    pub(super) fn finish_op(
        &self,
        policy: Option<&Policy>,
        operation: Operation<'_>,
        op: &mut UserOperation,
        inclusion_time: u64,
        now_ms: u64,
    ) -> Result<Option<Charge>, AppError> {
        match policy {
            Some(policy) => self
                .sponsor(policy, operation, op, inclusion_time, now_ms)
                .map(Some),
            None => {
                op.pre_verification_gas = ops::pre_verification_gas(op);
                Ok(None)
            }
        }
    }

    /// Puts `op` under `policy`: the policy must cover `operation` and the operation's
    /// gas, then the paymaster's fields are filled in and approved until `inclusion_time`
    /// (the earliest time a block including it can carry) plus the approval validity. Call
    /// it once the operation's nonce, calldata, gas limits and fees are final, and sign the
    /// operation afterwards: its userOpHash covers the approval. Returns what the operation
    /// is charged; the store admits it against the policy's limits in the write that
    /// creates the operation.
    fn sponsor(
        &self,
        policy: &Policy,
        operation: Operation<'_>,
        op: &mut UserOperation,
        inclusion_time: u64,
        now_ms: u64,
    ) -> Result<Charge, AppError> {
        let sponsor = self.sponsor_config()?;
        let chain_id = self.chain().chain_id();
        policy.check(operation, chain_id)?;
        let approval = Sponsorship {
            paymaster: sponsor.paymaster,
            verification_gas_limit: sponsor.verification_gas_limit,
            post_op_gas_limit: 0,
            valid_until: inclusion_time.saturating_add(sponsor.approval_validity_secs),
            valid_after: 0,
        };
        sponsor::reserve(op, &approval);
        op.pre_verification_gas = ops::pre_verification_gas(op);
        let gas = ops::total_gas(op);
        policy.check_gas(gas)?;
        sponsor::approve(op, &approval, chain_id, &sponsor.signer)?;
        Ok(Charge {
            policy: policy.id.clone(),
            windows: policy.windows_at(now_ms),
            reserved: Amount {
                operations: 1,
                gas,
                wei: gas.saturating_mul(op.max_fee_per_gas),
            },
            revocation: matches!(operation, Operation::Revocation),
        })
    }
}
