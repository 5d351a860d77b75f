//! Following what was sent: bundles into blocks (or back to the queue when lost), inclusions
//! to the configured depth (or back to SUBMITTED when a reorg removes their block).

use std::collections::BTreeMap;

use alloy::{
    eips::BlockNumberOrTag,
    primitives::{Address, B256, TxHash},
    providers::Provider,
    rpc::types::{Filter, TransactionReceipt},
    sol_types::SolEvent,
};
use tracing::{debug, info, warn};

use super::{
    Relay, RelayError,
    decode::{execution_revert, find_operation},
};
use crate::{
    chain::{ChainError, contracts::EntryPoint, ops::nonce_key},
    intent::{Intent, IntentEvent, IntentResult, IntentStatus},
};

/// An intent and what just happened to it, ready for [`Relay::commit`].
type Change = (Intent, IntentEvent);

impl Relay {
    /// Follows every bundle in flight: SUBMITTED intents grouped by the relayer nonce their
    /// transactions share.
    pub(super) async fn follow_submitted(&self, head: u64) -> Result<(), RelayError> {
        let mut bundles: BTreeMap<(Address, u64), Vec<Intent>> = BTreeMap::new();
        for intent in self
            .store
            .intents_in_status(IntentStatus::Submitted)
            .await?
        {
            match &intent.submission {
                Some(submission) => bundles
                    .entry((submission.relayer, submission.relayer_nonce))
                    .or_default()
                    .push(intent),
                // Unreachable through the state machine; queued again to be safe.
                None => self.commit(vec![(intent, IntentEvent::Requeued)]).await?,
            }
        }
        for ((relayer, nonce), intents) in bundles {
            match self.follow_bundle(head, relayer, nonce, intents).await {
                Ok(()) => {}
                Err(error @ RelayError::Chain(ChainError::Rpc(_))) => return Err(error),
                Err(error) => {
                    warn!(target: "relay", %relayer, nonce, %error, "following the bundle failed; retrying next pass");
                }
            }
        }
        Ok(())
    }

    /// One bundle in flight: included (its operations' events recorded), still pending
    /// (replaced when stuck), or lost (its operations queued again).
    async fn follow_bundle(
        &self,
        head: u64,
        relayer: Address,
        nonce: u64,
        intents: Vec<Intent>,
    ) -> Result<(), RelayError> {
        let mut hashes: Vec<TxHash> = Vec::new();
        for submission in intents
            .iter()
            .filter_map(|intent| intent.submission.as_ref())
        {
            for hash in submission.hashes() {
                if !hashes.contains(&hash) {
                    hashes.push(hash);
                }
            }
        }
        for hash in &hashes {
            if let Some(receipt) = self.provider.get_transaction_receipt(*hash).await? {
                return self.record_receipt(intents, &receipt).await;
            }
        }
        let mined = self
            .provider
            .get_transaction_count(relayer)
            .latest()
            .await?;
        if mined > nonce {
            // The nonce is used, yet no receipt of ours: either a receipt raced the check, or
            // a transaction the store never heard of took the nonce. The EntryPoint's
            // nonces tell each operation's fate.
            return self.settle_by_entry_point(intents).await;
        }
        let mut pending = false;
        for hash in &hashes {
            if self
                .provider
                .get_transaction_by_hash(*hash)
                .await?
                .is_some()
            {
                pending = true;
                break;
            }
        }
        if !pending {
            // Never broadcast (a crash between the write and the send) or dropped by the
            // node, and the nonce is unused: nothing can land in its place but a new bundle.
            warn!(target: "relay", %relayer, nonce, ops = intents.len(), "bundle lost before inclusion; its operations are queued again");
            let changes = intents
                .into_iter()
                .map(|intent| (intent, IntentEvent::Requeued))
                .collect();
            return self.commit(changes).await;
        }
        let waited_since = intents
            .iter()
            .filter_map(|intent| intent.submission.as_ref())
            .map(|submission| submission.attempt_block)
            .max()
            .unwrap_or(head);
        if head >= waited_since.saturating_add(self.config.bump_after_blocks) {
            return self.replace(intents, head).await;
        }
        debug!(target: "relay", %relayer, nonce, "bundle pending");
        Ok(())
    }

    /// Records what a mined bundle did to each of its operations: included with its
    /// `UserOperationEvent`, or queued again when the bundle reverted or skipped it and its
    /// nonce is unused.
    async fn record_receipt(
        &self,
        intents: Vec<Intent>,
        receipt: &TransactionReceipt,
    ) -> Result<(), RelayError> {
        let logs = receipt.inner.logs();
        let mut changes = Vec::with_capacity(intents.len());
        for mut intent in intents {
            if let Some(event) = find_operation(logs, intent.user_op_hash) {
                intent.result = Some(result_of(&intent, receipt, &event));
                changes.push((intent, IntentEvent::Included));
            } else if self.executed(&intent).await? {
                changes.extend(self.inclusion_from_chain(intent).await?);
            } else {
                warn!(target: "relay", intent = %intent.id, tx = %receipt.transaction_hash, "bundle mined without the operation; queued again");
                changes.push((intent, IntentEvent::Requeued));
            }
        }
        let included = changes
            .iter()
            .filter(|(_, event)| *event == IntentEvent::Included)
            .count();
        info!(target: "relay", tx = %receipt.transaction_hash, block = receipt.block_number, included, "bundle included");
        self.commit(changes).await
    }

    /// Settles operations whose bundle's nonce was used without a receipt of ours.
    async fn settle_by_entry_point(&self, intents: Vec<Intent>) -> Result<(), RelayError> {
        let mut changes = Vec::with_capacity(intents.len());
        for intent in intents {
            if self.executed(&intent).await? {
                changes.extend(self.inclusion_from_chain(intent).await?);
            } else {
                changes.push((intent, IntentEvent::Requeued));
            }
        }
        self.commit(changes).await
    }

    /// Inclusions that may be final: at the configured depth they settle (CONFIRMED or
    /// REVERTED); if their block is no longer the chain's block at that height, a reorg
    /// removed it and they go back to SUBMITTED, to be found again in whatever block holds
    /// their transaction now, or sent again.
    pub(super) async fn confirm_included(&self, head: u64) -> Result<(), RelayError> {
        let included = self.store.intents_in_status(IntentStatus::Included).await?;
        if included.is_empty() {
            return Ok(());
        }
        let mut canonical: BTreeMap<u64, Option<B256>> = BTreeMap::new();
        let mut changes = Vec::new();
        for mut intent in included {
            let Some(result) = intent.result.clone() else {
                changes.push((intent, IntentEvent::Reorged));
                continue;
            };
            let block_hash = match canonical.get(&result.block_number) {
                Some(hash) => *hash,
                None => {
                    let hash = self
                        .provider
                        .get_block_by_number(BlockNumberOrTag::Number(result.block_number))
                        .await?
                        .map(|block| block.header.hash);
                    canonical.insert(result.block_number, hash);
                    hash
                }
            };
            if block_hash != Some(result.block_hash) {
                warn!(target: "relay", intent = %intent.id, block = result.block_number, lost = %result.block_hash, "inclusion block reorged out; following the operation again");
                intent.result = None;
                if let Some(submission) = intent.submission.as_mut() {
                    // The wait before a fee bump starts over from here.
                    submission.attempt_block = head;
                }
                changes.push((intent, IntentEvent::Reorged));
            } else if head.saturating_add(1).saturating_sub(result.block_number)
                >= self.config.confirmations
            {
                changes.push((
                    intent,
                    IntentEvent::Finalized {
                        success: result.success,
                    },
                ));
            }
        }
        let reorged = changes
            .iter()
            .filter(|(_, event)| *event == IntentEvent::Reorged)
            .count();
        self.commit(changes).await?;
        // Counted once written: a write that lost a race is decided again next pass.
        if reorged > 0 {
            self.metrics.reorged(reorged);
        }
        Ok(())
    }

    /// Whether the EntryPoint has consumed `intent`'s nonce, i.e. its operation executed.
    pub(super) async fn executed(&self, intent: &Intent) -> Result<bool, RelayError> {
        let entry_point = EntryPoint::new(self.chain.deployment().entry_point, &self.provider);
        let key = nonce_key(intent.user_op.nonce);
        let next = entry_point
            .getNonce(intent.account, key)
            .call()
            .await
            .map_err(ChainError::from)?;
        Ok(next > intent.user_op.nonce)
    }

    /// The inclusion of an operation whose nonce is used, found through its
    /// `UserOperationEvent` log from the block where it was first sent. An operation never
    /// sent whose nonce is used lost it to another operation, and can never run: DROPPED.
    /// `None` when the log or its receipt is not yet served: the next pass looks again.
    pub(super) async fn inclusion_from_chain(
        &self,
        mut intent: Intent,
    ) -> Result<Option<Change>, RelayError> {
        let lost_nonce = |mut intent: Intent| {
            intent.failure_reason = Some(
                "its EntryPoint nonce was used by another operation; create the intent again"
                    .to_owned(),
            );
            Some((intent, IntentEvent::Dropped))
        };
        let Some(from_block) = intent
            .submission
            .as_ref()
            .map(|submission| submission.block)
        else {
            return Ok(lost_nonce(intent));
        };
        let filter = Filter::new()
            .address(self.chain.deployment().entry_point)
            .event_signature(EntryPoint::UserOperationEvent::SIGNATURE_HASH)
            .topic1(intent.user_op_hash)
            .from_block(from_block);
        let logs = self.provider.get_logs(&filter).await?;
        let Some(tx_hash) = logs.first().and_then(|log| log.transaction_hash) else {
            // It was sent and its nonce is used, so its event is most likely there but not
            // yet served (a node behind the one that answered for the nonce): look again
            // next pass rather than declare an operation that may have run DROPPED.
            warn!(target: "relay", intent = %intent.id, from_block, "nonce used but no UserOperationEvent found yet; looking again next pass");
            return Ok(None);
        };
        let Some(receipt) = self.provider.get_transaction_receipt(tx_hash).await? else {
            return Ok(None);
        };
        let Some(event) = find_operation(receipt.inner.logs(), intent.user_op_hash) else {
            return Ok(None);
        };
        intent.result = Some(result_of(&intent, &receipt, &event));
        Ok(Some((intent, IntentEvent::Included)))
    }
}

/// How an operation ended in `receipt`, from its `UserOperationEvent`.
fn result_of(
    intent: &Intent,
    receipt: &TransactionReceipt,
    event: &EntryPoint::UserOperationEvent,
) -> IntentResult {
    let revert =
        (!event.success).then(|| execution_revert(receipt.inner.logs(), intent.user_op_hash));
    IntentResult {
        tx_hash: receipt.transaction_hash,
        block_number: receipt.block_number.unwrap_or_default(),
        block_hash: receipt.block_hash.unwrap_or_default(),
        gas_used: event.actualGasUsed,
        actual_cost: event.actualGasCost,
        success: event.success,
        revert,
    }
}
