//! The paymaster service of ERC-7677: the SponsorPaymaster's approval of an operation of
//! any account, under one of the tenant's policies, for SDKs that ask a paymaster web
//! service for `paymasterData`.
//!
//! - The stub data (`pm_getPaymasterStubData`) has the approval's exact length, and a
//!   signature of the right shape from no approving key, so a gas estimate made with it
//!   runs the paymaster's validation along the same path as the final data does. It writes
//!   nothing.
//! - The final data (`pm_getPaymasterData`) is the approval itself. The operation, still
//!   unsigned by its account, is stored as an external intent waiting for its signature,
//!   with its charge against the policy: the store admits the charge against the policy's
//!   limits in that same write, as it does for an intent. When the account's signature
//!   arrives with `eth_sendUserOperation`, the intent is QUEUED and settles its charge from
//!   its receipt like any other; when it does not arrive before the approval ends, the
//!   intent EXPIRES and gives its reservation back.

use alloy::{
    primitives::{Address, Bytes, U256},
    signers::local::PrivateKeySigner,
    sol_types::SolCall,
};

use super::{App, BundlerRefusal};
use crate::{
    auth::TenantId,
    call::Interaction,
    chain::{
        contracts::simple_account::SimpleAccount,
        ops,
        sponsor::{self, Sponsorship},
        user_operation::UserOperation,
    },
    clock::now_ms,
    intent::{Intent, IntentId},
    policy::{Amount, Charge, Operation, Policy, PolicyId},
    store::StoreError,
};

/// The paymaster fields the service gives an operation, as ERC-7677 names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymasterFields {
    /// `paymaster`.
    pub paymaster: Address,
    /// `paymasterData`.
    pub paymaster_data: Bytes,
    /// `paymasterVerificationGasLimit`.
    pub verification_gas_limit: u128,
    /// `paymasterPostOpGasLimit`.
    pub post_op_gas_limit: u128,
    /// The policy's name, for the `sponsor` field of the stub data.
    pub sponsor_name: String,
}

impl App {
    /// `pm_getPaymasterStubData`: placeholder paymaster fields for `op` under `policy`,
    /// after the policy's rules about the operation are checked. Writes nothing.
    pub async fn paymaster_stub_data(
        &self,
        tenant: &TenantId,
        op: &UserOperation,
        (entry_point, chain_id): (Address, u64),
        policy: &PolicyId,
    ) -> Result<PaymasterFields, BundlerRefusal> {
        let (policy, sponsorship) = self
            .sponsorship_for(tenant, op, (entry_point, chain_id), policy)
            .await?;
        let mut stub = op.clone();
        sponsor::approve(
            &mut stub,
            &sponsorship,
            chain_id,
            &PrivateKeySigner::random(),
        )?;
        Ok(PaymasterFields {
            paymaster: sponsorship.paymaster,
            paymaster_data: stub.paymaster_data,
            verification_gas_limit: sponsorship.verification_gas_limit,
            post_op_gas_limit: sponsorship.post_op_gas_limit,
            sponsor_name: policy.name,
        })
    }

    /// `pm_getPaymasterData`: the SponsorPaymaster's approval of `op` under `policy`. The
    /// operation is stored, waiting for its account's signature, with its charge against
    /// the policy, in one write that the policy's limits are checked in; an approval of
    /// the same sender and nonce still waiting is replaced in that write.
    pub async fn paymaster_data(
        &self,
        tenant: &TenantId,
        op: &UserOperation,
        (entry_point, chain_id): (Address, u64),
        policy: &PolicyId,
    ) -> Result<PaymasterFields, BundlerRefusal> {
        let (policy, sponsorship) = self
            .sponsorship_for(tenant, op, (entry_point, chain_id), policy)
            .await?;
        let sponsor = self
            .sponsor_config()
            .map_err(|error| BundlerRefusal::Unavailable(error.to_string()))?;
        let mut approved = op.clone();
        approved.signature = Bytes::new();
        sponsor::reserve(&mut approved, &sponsorship);
        let gas = ops::total_gas(&approved);
        policy.check_gas(gas).map_err(policy_refusal)?;
        sponsor::approve(&mut approved, &sponsorship, chain_id, &sponsor.signer)?;
        let hash = approved.hash_v08(entry_point, chain_id)?;
        let now = now_ms();
        let mut intent = Intent::external(
            IntentId::generate(),
            tenant.clone(),
            chain_id,
            (approved.clone(), hash),
            entry_point,
            Some(sponsorship.valid_until),
            now,
        );
        intent.status = crate::intent::IntentStatus::PendingSignature;
        intent.history = vec![(intent.status, now)];
        intent.signature_deadline_ms = Some(sponsorship.valid_until.saturating_mul(1000));
        intent.charge = Some(Charge {
            policy: policy.id.clone(),
            windows: policy.windows_at(now),
            reserved: Amount {
                operations: 1,
                gas,
                wei: gas.saturating_mul(approved.max_fee_per_gas),
            },
            revocation: false,
        });
        let mut replaced = self.waiting_approval(tenant, &approved).await?;
        if let Some(old) = replaced.as_mut() {
            old.failure_reason = Some(format!(
                "replaced by a new approval of the same sender and nonce ({hash})"
            ));
            old.apply(&crate::intent::IntentEvent::Dropped, now)
                .map_err(|error| BundlerRefusal::Unavailable(error.to_string()))?;
        }
        match self
            .store()
            .approve_external(&mut intent, replaced.as_mut())
            .await
        {
            Ok(()) => {}
            Err(StoreError::Refused(refusal)) => return Err(policy_refusal(refusal)),
            Err(StoreError::NonceKeyInUse {
                nonce_key,
                existing,
                ..
            }) => {
                return Err(BundlerRefusal::Invalid {
                    field: "nonce",
                    message: format!(
                        "operation {existing} of this sender is already on its way under nonce \
                         key {nonce_key:#x}; wait for it, or use another nonce key"
                    ),
                });
            }
            Err(error) => return Err(error.into()),
        }
        self.store().flush().await?;
        Ok(PaymasterFields {
            paymaster: sponsorship.paymaster,
            paymaster_data: approved.paymaster_data,
            verification_gas_limit: sponsorship.verification_gas_limit,
            post_op_gas_limit: sponsorship.post_op_gas_limit,
            sponsor_name: policy.name,
        })
    }

    /// An approval of `tenant` for the same sender and nonce still waiting for its
    /// signature: a new approval replaces it.
    async fn waiting_approval(
        &self,
        tenant: &TenantId,
        op: &UserOperation,
    ) -> Result<Option<Intent>, BundlerRefusal> {
        let filter = crate::store::IntentFilter {
            tenant: Some(tenant.clone()),
            account: Some(op.sender),
            status: Some(crate::intent::IntentStatus::PendingSignature),
            kind: Some(crate::intent::IntentKind::External),
            ..crate::store::IntentFilter::default()
        };
        let page = self
            .store()
            .list_intents(
                &filter,
                &crate::store::PageRequest {
                    size: 64,
                    token: None,
                },
            )
            .await?;
        Ok(page
            .items
            .into_iter()
            .find(|intent| intent.user_op.nonce == op.nonce))
    }

    /// The policy `id` of `tenant` and the sponsorship it would give `op`, once the
    /// request's EntryPoint and chain are checked and the policy covers the operation.
    async fn sponsorship_for(
        &self,
        tenant: &TenantId,
        op: &UserOperation,
        (entry_point, chain_id): (Address, u64),
        id: &PolicyId,
    ) -> Result<(Policy, Sponsorship), BundlerRefusal> {
        if entry_point != self.entry_point() {
            return Err(BundlerRefusal::Invalid {
                field: "entryPoint",
                message: format!(
                    "{entry_point} is not served here: the supported EntryPoint is {} (v0.8)",
                    self.entry_point()
                ),
            });
        }
        if chain_id != self.chain().chain_id() {
            return Err(BundlerRefusal::Invalid {
                field: "chainId",
                message: format!(
                    "{chain_id} is not this paymaster's chain, {}",
                    self.chain().chain_id()
                ),
            });
        }
        let sponsor = self
            .sponsor_config()
            .map_err(|error| BundlerRefusal::Unavailable(error.to_string()))?;
        let policy = self
            .named_policy(Some(id), tenant)
            .await
            .map_err(|_| BundlerRefusal::Invalid {
                field: "context.policyId",
                message: format!("no policy {} of this tenant", id.resource_name()),
            })?
            .ok_or(BundlerRefusal::Unavailable(
                "the policy vanished".to_owned(),
            ))?;
        let calls = calls_of(&op.call_data).ok_or_else(|| BundlerRefusal::Invalid {
            field: "callData",
            message: "is not a call of execute(address,uint256,bytes) or \
                      executeBatch((address,uint256,bytes)[]), so no policy rule can be \
                      checked against its calls"
                .to_owned(),
        })?;
        policy
            .check(
                Operation::External {
                    calls: &calls,
                    deploys_account: op.factory.is_some(),
                },
                chain_id,
            )
            .map_err(policy_refusal)?;
        let inclusion_time = self.chain().inclusion_time().await?;
        let given = |limit: u128, default: u128| if limit == 0 { default } else { limit };
        Ok((
            policy,
            Sponsorship {
                paymaster: sponsor.paymaster,
                verification_gas_limit: given(
                    op.paymaster_verification_gas_limit,
                    sponsor.verification_gas_limit,
                ),
                post_op_gas_limit: op.paymaster_post_op_gas_limit,
                valid_until: inclusion_time.saturating_add(sponsor.approval_validity_secs),
                valid_after: 0,
            },
        ))
    }
}

/// The calls `call_data` makes through the `execute` or `executeBatch` of BaseAccount,
/// which SimpleAccount and latchkey's account share; `None` for any other calldata.
pub fn calls_of(call_data: &[u8]) -> Option<Vec<Interaction>> {
    let interaction = |to: Address, value: U256, data: Bytes| Interaction {
        to,
        value,
        data,
        function: None,
    };
    if let Ok(call) = SimpleAccount::executeCall::abi_decode(call_data) {
        return Some(vec![interaction(call.target, call.value, call.data)]);
    }
    SimpleAccount::executeBatchCall::abi_decode(call_data)
        .ok()
        .map(|batch| {
            batch
                .calls
                .into_iter()
                .map(|call| interaction(call.target, call.value, call.data))
                .collect()
        })
}

fn policy_refusal(refusal: crate::policy::Refusal) -> BundlerRefusal {
    BundlerRefusal::PolicyRefused(refusal.to_string())
}
