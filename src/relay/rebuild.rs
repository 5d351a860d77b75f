//! Operations that the chain made invalid as signed, but not as meant: the first operation
//! of an account that someone else deployed meanwhile. Anyone may call the factory's
//! `createAccount` for any owner, and an operation whose initCode meets an account that
//! already exists fails with `AA10 sender already constructed`. The account is the one the
//! owner asked for, so the operation is rebuilt without its initCode and goes back to the
//! owner for a new signature, instead of being lost.

use alloy::primitives::Bytes;
use tracing::{info, warn};

use super::{Relay, RelayError};
use crate::{
    chain::{ChainError, ops, sponsor, user_operation::UserOperation},
    clock::now_ms,
    intent::{Intent, IntentEvent, IntentKind},
    store::StoreError,
};

/// The EntryPoint's code for an operation whose initCode meets a deployed account.
pub(super) const SENDER_ALREADY_CONSTRUCTED: &str = "AA10";

/// Why a refused operation could not be rebuilt.
#[derive(Debug, thiserror::Error)]
pub(super) enum RebuildError {
    /// The operation is sponsored, and no approving key is configured to approve it again.
    #[error("it is sponsored, and this daemon has no sponsor signer to approve it again")]
    NoSponsorSigner,
    /// The deployed account has another owner than the session's.
    #[error("the account deployed meanwhile is owned by {0}, not by the session's owner")]
    OtherOwner(alloy::primitives::Address),
    /// The chain failed: the operation stays QUEUED and is looked at again next pass.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The store failed, likewise.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `op` without its initCode: the same calls, nonce, fees and paymaster approval window,
/// with the verification gas the deployment needed given back, unsigned. A sponsored
/// operation is approved again, since its approval covers the initCode.
pub(super) fn without_init_code(
    op: &UserOperation,
    chain_id: u64,
    sponsor_signer: Option<&alloy::signers::local::PrivateKeySigner>,
) -> Result<UserOperation, RebuildError> {
    let mut rebuilt = op.clone();
    rebuilt.factory = None;
    rebuilt.factory_data = Bytes::new();
    rebuilt.signature = Bytes::new();
    rebuilt.verification_gas_limit = op
        .verification_gas_limit
        .saturating_sub(ops::DEPLOYMENT_GAS);
    match sponsor::parse_approval(&op.paymaster_and_data()) {
        Some((approval, _)) => {
            let signer = sponsor_signer.ok_or(RebuildError::NoSponsorSigner)?;
            sponsor::reserve(&mut rebuilt, &approval);
            rebuilt.pre_verification_gas = ops::pre_verification_gas(&rebuilt);
            sponsor::approve(&mut rebuilt, &approval, chain_id, signer)?;
        }
        None => rebuilt.pre_verification_gas = ops::pre_verification_gas(&rebuilt),
    }
    Ok(rebuilt)
}

impl Relay {
    /// Whether `intent`, refused with `aa_code`, is a first operation whose account someone
    /// else deployed: then it can be rebuilt rather than dropped.
    pub(super) fn is_front_run(intent: &Intent, aa_code: Option<&str>) -> bool {
        aa_code == Some(SENDER_ALREADY_CONSTRUCTED)
            && intent.user_op.factory.is_some()
            && intent.kind == IntentKind::Registration
    }

    /// Rebuilds a front-run registration without its initCode and hands it back to the
    /// owner: the intent waits for the signature of its new userOpHash (its session too),
    /// until a new signature deadline. DROPPED, with the reason, when it cannot be rebuilt.
    pub(super) async fn rebuild_front_run(&self, mut intent: Intent) -> Result<(), RelayError> {
        match self.rebuilt(&intent).await {
            Ok(op) => {
                let now_ms = now_ms();
                let timeout =
                    u64::try_from(self.config.signature_timeout.as_millis()).unwrap_or(u64::MAX);
                intent.user_op_hash =
                    op.hash_v08(self.chain.deployment().entry_point, self.chain.chain_id())?;
                intent.user_op = op;
                intent.signature_deadline_ms = Some(now_ms.saturating_add(timeout));
                intent.failure_reason = Some(
                    "someone else deployed the account (createAccount) before this operation \
                     landed, so its initCode would fail (AA10); it was rebuilt without the \
                     initCode: the owner signs the new signable_hash"
                        .to_owned(),
                );
                info!(target: "relay", intent = %intent.id, user_op_hash = %intent.user_op_hash, "account deployed by someone else: operation rebuilt without initCode");
                self.commit(vec![(intent, IntentEvent::Rebuilt)]).await
            }
            // Not the operation's fault: nothing is written, and the next pass simulates it
            // again and comes back here.
            Err(RebuildError::Chain(error)) => Err(error.into()),
            Err(RebuildError::Store(error)) => Err(error.into()),
            Err(error) => {
                warn!(target: "relay", intent = %intent.id, %error, "front-run operation cannot be rebuilt");
                intent.failure_reason = Some(format!(
                    "someone else deployed the account before this operation landed (AA10), \
                     and it could not be rebuilt: {error}"
                ));
                self.commit(vec![(intent, IntentEvent::Dropped)]).await
            }
        }
    }

    async fn rebuilt(&self, intent: &Intent) -> Result<UserOperation, RebuildError> {
        let session = match &intent.session {
            Some(id) => self.store.session(id).await?,
            None => None,
        };
        let owner = self.chain.owner_of(intent.account).await?;
        if let Some(session) = session
            && session.owner != owner
        {
            return Err(RebuildError::OtherOwner(owner));
        }
        without_init_code(
            &intent.user_op,
            self.chain.chain_id(),
            self.config.sponsor_signer.as_ref(),
        )
    }
}

#[cfg(test)]
mod tests {
    use alloy::{
        primitives::{Address, U256},
        signers::local::PrivateKeySigner,
    };

    use super::*;
    use crate::chain::sponsor::Sponsorship;

    fn first_op() -> UserOperation {
        UserOperation {
            sender: Address::repeat_byte(1),
            nonce: U256::from(7) << 64,
            factory: Some(Address::repeat_byte(2)),
            factory_data: Bytes::from(vec![0xaa; 100]),
            call_data: Bytes::from(vec![0xbb; 40]),
            verification_gas_limit: ops::OWNER_VERIFICATION_GAS + ops::DEPLOYMENT_GAS,
            call_gas_limit: 50_000,
            max_fee_per_gas: 10,
            max_priority_fee_per_gas: 1,
            signature: Bytes::from(vec![1; 66]),
            ..Default::default()
        }
    }

    #[test]
    fn a_rebuilt_operation_keeps_its_calls_and_nonce_and_drops_the_init_code() {
        let op = first_op();
        let rebuilt = without_init_code(&op, 1, None).unwrap();
        assert_eq!(rebuilt.factory, None);
        assert!(rebuilt.init_code().is_empty());
        assert!(rebuilt.signature.is_empty(), "it needs a new signature");
        assert_eq!(
            (rebuilt.nonce, &rebuilt.call_data),
            (op.nonce, &op.call_data)
        );
        assert_eq!(rebuilt.verification_gas_limit, ops::OWNER_VERIFICATION_GAS);
        assert!(rebuilt.pre_verification_gas < ops::pre_verification_gas(&op));
        assert_ne!(
            rebuilt.hash_v08(Address::ZERO, 1).unwrap(),
            op.hash_v08(Address::ZERO, 1).unwrap()
        );
    }

    #[test]
    fn a_sponsored_one_is_approved_again_under_the_same_window() {
        let signer = PrivateKeySigner::random();
        let approval = Sponsorship {
            paymaster: Address::repeat_byte(9),
            verification_gas_limit: 60_000,
            post_op_gas_limit: 0,
            valid_until: 1_000,
            valid_after: 0,
        };
        let mut op = first_op();
        sponsor::approve(&mut op, &approval, 1, &signer).unwrap();
        assert!(matches!(
            without_init_code(&op, 1, None),
            Err(RebuildError::NoSponsorSigner)
        ));
        let rebuilt = without_init_code(&op, 1, Some(&signer)).unwrap();
        let (again, signature) = sponsor::parse_approval(&rebuilt.paymaster_and_data()).unwrap();
        assert_eq!(again, approval);
        let (_, old_signature) = sponsor::parse_approval(&op.paymaster_and_data()).unwrap();
        assert_ne!(signature, old_signature, "the approval covers the initCode");
    }
}
