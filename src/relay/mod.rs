//! The relay engine: the one task that owns the relayer key and its nonces, and the only part
//! of latchkey that sends transactions. It sends each queued operation in its own `handleOps`
//! transaction, follows it to a receipt, and carries the outcome back to the intent and its
//! session.
//!
//! Crash safety comes from the order of writes. The signed transaction's hash is stored with
//! the intent (SUBMITTED) before the transaction is broadcast; after a crash the hash says
//! where to look. A transaction that is nowhere to be found is sent again only once the
//! EntryPoint's nonce shows the operation never executed, and every operation has a nonce of
//! its own at sequence 0, so the EntryPoint itself refuses a second execution.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use alloy::{
    eips::Encodable2718,
    network::{EthereumWallet, NetworkTransactionBuilder, TransactionBuilder},
    primitives::{Address, B256, Bytes, TxHash},
    providers::{DynProvider, Provider},
    rpc::types::{Filter, Log, TransactionReceipt, TransactionRequest},
    signers::local::PrivateKeySigner,
    sol_types::SolEvent,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::{
    app::{App, now_ms},
    chain::{
        ChainError,
        contracts::EntryPoint,
        ops::nonce_key,
        revert::{RevertReason, decode_handle_ops_revert},
    },
    intent::{Intent, IntentEvent, IntentResult, IntentStatus, RevertDetails, Submission},
    session::{SessionEvent, SessionStatus},
    store::StoreError,
};

/// Why a relay step failed; the engine logs it and tries again on its next pass.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The chain could not be reached or refused a request.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A transaction could not be signed.
    #[error("signing the handleOps transaction failed: {0}")]
    Signing(String),
    /// A record changed under the engine; it will look again.
    #[error("a record changed concurrently")]
    Conflict,
}

impl From<alloy::transports::TransportError> for RelayError {
    fn from(error: alloy::transports::TransportError) -> Self {
        Self::Chain(error.into())
    }
}

/// Settings of the relay engine.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// How often the engine looks for work when nothing wakes it.
    pub poll_interval: Duration,
    /// Most transactions sent and not yet included; past it, operations wait QUEUED and
    /// join the next bundle.
    pub max_in_flight: usize,
    /// Most gas (the sum of the operations' limits) one bundle may carry.
    pub max_bundle_gas: u128,
    /// Most operations one bundle may carry.
    pub max_ops_per_bundle: usize,
}

/// The relay engine. Build it, then [`Relay::run`] it on a task.
pub struct Relay {
    app: App,
    relayers: Vec<Relayer>,
    provider: DynProvider,
    config: RelayConfig,
    wakeup: Arc<Notify>,
}

/// One relayer account: its key signs the `handleOps` transactions it sends, and it is the
/// beneficiary of their fees. Each has its own nonces and its own bundles in flight.
struct Relayer {
    address: Address,
    wallet: EthereumWallet,
}

impl Relay {
    /// An engine relaying `app`'s intents with `signers` (at least one), woken by `wakeup`.
    pub fn new(
        app: App,
        signers: Vec<PrivateKeySigner>,
        config: RelayConfig,
        wakeup: Arc<Notify>,
    ) -> Self {
        let provider = app.chain().provider().clone();
        let relayers = signers
            .into_iter()
            .map(|signer| Relayer {
                address: signer.address(),
                wallet: EthereumWallet::from(signer),
            })
            .collect();
        Self {
            app,
            relayers,
            provider,
            config,
            wakeup,
        }
    }

    /// The relayers' addresses.
    pub fn addresses(&self) -> Vec<Address> {
        self.relayers
            .iter()
            .map(|relayer| relayer.address)
            .collect()
    }

    /// Runs until `shutdown` is cancelled. A pass that fails is logged and retried.
    pub async fn run(self, shutdown: CancellationToken) {
        info!(target: "relay", relayers = ?self.addresses(), "started");
        loop {
            if let Err(error) = self.pass().await {
                warn!(target: "relay", %error, "relay pass failed; retrying");
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.wakeup.notified() => {}
                () = tokio::time::sleep(self.config.poll_interval) => {}
            }
        }
        info!(target: "relay", "stopped");
    }

    /// One pass over everything that may need the engine: expired signatures and sessions,
    /// submitted operations to follow, queued ones to send (oldest first). A failure with
    /// one intent is logged and the pass goes on, so no single intent can hold up the rest.
    pub async fn pass(&self) -> Result<(), RelayError> {
        self.expire_unsigned().await?;
        self.expire_sessions().await?;
        for intent in self
            .app
            .store()
            .intents_in_status(IntentStatus::Submitted)?
        {
            let id = intent.id.clone();
            if let Err(error) = self.track(intent).await {
                warn!(target: "relay", intent = %id, %error, "tracking failed; retrying next pass");
            }
        }
        let submitted = self
            .app
            .store()
            .intents_in_status(IntentStatus::Submitted)?;
        // Transactions in flight per relayer: a bundle's intents share one.
        let mut in_flight: HashMap<Address, HashSet<TxHash>> = HashMap::new();
        for submission in submitted
            .iter()
            .filter_map(|intent| intent.submission.as_ref())
        {
            in_flight
                .entry(submission.relayer)
                .or_default()
                .insert(submission.tx_hash);
        }
        let mut queued = self
            .app
            .store()
            .intents_in_status(IntentStatus::Queued)?
            .into_iter();
        // Bundles go to the relayers in turn, each up to its own in-flight limit.
        'relayers: for relayer in &self.relayers {
            let mut sending = in_flight.get(&relayer.address).map_or(0, HashSet::len);
            while sending < self.config.max_in_flight {
                let bundle = self.next_bundle(&mut queued);
                if bundle.is_empty() {
                    break 'relayers;
                }
                let ids: Vec<_> = bundle.iter().map(|intent| intent.id.clone()).collect();
                match self.submit_bundle(relayer, bundle).await {
                    Ok(true) => sending += 1,
                    Ok(false) => {}
                    Err(error) => {
                        warn!(target: "relay", relayer = %relayer.address, intents = ?ids, %error, "bundle failed; retrying next pass");
                    }
                }
            }
        }
        Ok(())
    }

    /// The next bundle: queued operations, oldest first, while the bundle's gas limits stay
    /// within the cap and its size within the operation limit.
    fn next_bundle(&self, queued: &mut impl Iterator<Item = Intent>) -> Vec<Intent> {
        let mut bundle = Vec::new();
        let mut gas: u128 = 0;
        for intent in queued.by_ref() {
            let op = &intent.user_op;
            let op_gas = op
                .verification_gas_limit
                .saturating_add(op.call_gas_limit)
                .saturating_add(u128::try_from(op.pre_verification_gas).unwrap_or(u128::MAX));
            if !bundle.is_empty() && gas.saturating_add(op_gas) > self.config.max_bundle_gas {
                // Not lost: it is still QUEUED and leads the next pass's first bundle.
                break;
            }
            gas = gas.saturating_add(op_gas);
            bundle.push(intent);
            if bundle.len() >= self.config.max_ops_per_bundle {
                break;
            }
        }
        bundle
    }

    async fn expire_unsigned(&self) -> Result<(), RelayError> {
        let now = now_ms();
        for mut intent in self
            .app
            .store()
            .intents_in_status(IntentStatus::PendingSignature)?
        {
            if intent
                .signature_deadline_ms
                .is_some_and(|deadline| deadline <= now)
            {
                intent.failure_reason =
                    Some("no signature was submitted before the deadline".into());
                self.settle(intent, IntentEvent::SignatureTimedOut).await?;
            }
        }
        Ok(())
    }

    async fn expire_sessions(&self) -> Result<(), RelayError> {
        let now = self.app.chain().chain_time().await?;
        for mut session in self.app.store().sessions_in_status(SessionStatus::Active)? {
            if session.valid_until < now {
                session
                    .apply(&SessionEvent::WindowClosed, now_ms())
                    .map_err(|_| RelayError::Conflict)?;
                match self.app.store().save(Some(&mut session), &mut []) {
                    Ok(()) | Err(StoreError::Conflict { .. }) => {}
                    Err(error) => return Err(error.into()),
                }
                info!(target: "relay", session = %session.id, "session expired");
            }
        }
        Ok(())
    }

    /// Sends `bundle` (oldest first) in one `handleOps` transaction. The estimate is the
    /// simulation: an operation the EntryPoint refuses is taken out with its decoded reason
    /// and the rest are simulated again, so one bad operation never sinks the others.
    /// Returns whether a transaction is now in flight.
    async fn submit_bundle(
        &self,
        relayer: &Relayer,
        mut bundle: Vec<Intent>,
    ) -> Result<bool, RelayError> {
        let entry_point =
            EntryPoint::new(self.app.chain().deployment().entry_point, &self.provider);
        let (call, gas) = loop {
            if bundle.is_empty() {
                return Ok(false);
            }
            let ops = bundle.iter().map(|intent| intent.user_op.pack()).collect();
            let call = entry_point.handleOps(ops, relayer.address);
            let error = match call.clone().from(relayer.address).estimate_gas().await {
                Ok(gas) => break (call, gas),
                Err(error) => error,
            };
            let Some(data) = error.as_revert_data() else {
                return Err(ChainError::Contract(error).into());
            };
            let refusal = decode_handle_ops_revert(&data);
            let index = refusal
                .as_ref()
                .and_then(|refusal| refusal.op_index)
                .and_then(|index| usize::try_from(index).ok())
                .filter(|index| *index < bundle.len());
            let culprit = match index {
                Some(index) => bundle.remove(index),
                // Not attributable to one operation: the oldest one alone answers for it
                // only if it is alone; otherwise each is simulated on its own next pass.
                None if bundle.len() == 1 => bundle.remove(0),
                None => {
                    for intent in bundle {
                        Box::pin(self.submit_bundle(relayer, vec![intent])).await?;
                    }
                    return Ok(true);
                }
            };
            self.refuse(culprit, &data).await?;
        };

        let nonce = self
            .provider
            .get_transaction_count(relayer.address)
            .pending()
            .await?;
        let block = self.provider.get_block_number().await?;
        let fees = self.app.chain().fees().await?;
        let request = TransactionRequest::default()
            .with_from(relayer.address)
            .with_to(entry_point.address().to_owned())
            .with_input(call.calldata().clone())
            .with_nonce(nonce)
            .with_chain_id(self.app.chain().chain_id())
            .with_gas_limit(gas.saturating_mul(6) / 5)
            .with_max_fee_per_gas(fees.max_fee_per_gas)
            .with_max_priority_fee_per_gas(fees.max_priority_fee_per_gas);
        let envelope = request
            .build(&relayer.wallet)
            .await
            .map_err(|error| RelayError::Signing(error.to_string()))?;
        let tx_hash = *envelope.tx_hash();
        let raw = Bytes::from(envelope.encoded_2718());

        // Write-ahead: the hash is durable, for every operation of the bundle in one write,
        // before the transaction exists anywhere else.
        let now = now_ms();
        for intent in &mut bundle {
            intent.submission = Some(Submission {
                tx_hash,
                relayer: relayer.address,
                relayer_nonce: nonce,
                block,
            });
            intent
                .apply(&IntentEvent::Submitted, now)
                .map_err(|_| RelayError::Conflict)?;
        }
        let mut refs: Vec<&mut Intent> = bundle.iter_mut().collect();
        match self.app.store().save(None, &mut refs) {
            Ok(()) => {}
            Err(StoreError::Conflict { .. }) => return Err(RelayError::Conflict),
            Err(error) => return Err(error.into()),
        }
        self.app.store().flush().await?;
        self.app.publish(&bundle.iter().collect::<Vec<_>>());

        let ops = bundle.len();
        if let Err(error) = self.provider.send_raw_transaction(&raw).await {
            // Left SUBMITTED: tracking finds the transaction, or finds it lost and requeues.
            warn!(target: "relay", tx = %tx_hash, ops, %error, "broadcast failed");
            return Ok(true);
        }
        info!(target: "relay", tx = %tx_hash, ops, nonce, gas, "bundle submitted");
        Ok(true)
    }

    /// Takes an operation the EntryPoint refused out of the queue: settled from the chain if
    /// its nonce turns out to be used, DROPPED with the decoded reason otherwise.
    async fn refuse(&self, mut intent: Intent, data: &[u8]) -> Result<(), RelayError> {
        if self.executed(&intent).await? {
            return self.settle_from_chain(intent).await;
        }
        let details = refusal_details(data);
        warn!(target: "relay", intent = %intent.id, op = %intent.user_op_hash, reason = %details.cause, "operation refused by the EntryPoint");
        intent.failure_reason = Some(format!("{}: {}", details.cause, details.reason));
        intent.refusal = Some(details);
        self.settle(intent, IntentEvent::Dropped).await
    }

    /// Follows a submitted operation: its receipt, or why there is none.
    async fn track(&self, intent: Intent) -> Result<(), RelayError> {
        let Some(submission) = intent.submission.clone() else {
            return self.requeue(intent).await;
        };
        if let Some(receipt) = self
            .provider
            .get_transaction_receipt(submission.tx_hash)
            .await?
        {
            return match find_operation(receipt.inner.logs(), intent.user_op_hash) {
                Some(_) => self.settle_included(intent, &receipt).await,
                // The bundle reverted or skipped the operation: it did not execute.
                None if !self.executed(&intent).await? => self.requeue(intent).await,
                None => self.settle_from_chain(intent).await,
            };
        }
        if self
            .provider
            .get_transaction_by_hash(submission.tx_hash)
            .await?
            .is_some()
        {
            debug!(target: "relay", intent = %intent.id, tx = %submission.tx_hash, "pending");
            return Ok(());
        }
        if self.executed(&intent).await? {
            return self.settle_from_chain(intent).await;
        }
        self.requeue(intent).await
    }

    /// Whether the EntryPoint has consumed `intent`'s nonce, i.e. its operation executed.
    async fn executed(&self, intent: &Intent) -> Result<bool, RelayError> {
        let entry_point =
            EntryPoint::new(self.app.chain().deployment().entry_point, &self.provider);
        let key = nonce_key(intent.user_op.nonce);
        let next = entry_point
            .getNonce(intent.account, key)
            .call()
            .await
            .map_err(ChainError::from)?;
        Ok(next > intent.user_op.nonce)
    }

    /// Sends a lost transaction's operation again. Its nonce is still unused (the caller
    /// checked), so whichever send lands, the operation runs once.
    async fn requeue(&self, mut intent: Intent) -> Result<(), RelayError> {
        warn!(target: "relay", intent = %intent.id, "transaction lost before inclusion; sending again");
        intent
            .apply(&IntentEvent::Requeued, now_ms())
            .map_err(|_| RelayError::Conflict)?;
        match self.app.store().save(None, &mut [&mut intent]) {
            Ok(()) => {}
            Err(StoreError::Conflict { .. }) => return Err(RelayError::Conflict),
            Err(error) => return Err(error.into()),
        }
        self.app.store().flush().await?;
        self.app.publish(&[&intent]);
        Ok(())
    }

    /// Settles an operation whose nonce is used, through its `UserOperationEvent` log. The
    /// search starts at the block where it was first sent; an operation never sent whose
    /// nonce is used lost it to another operation, and can never run.
    async fn settle_from_chain(&self, mut intent: Intent) -> Result<(), RelayError> {
        let Some(from_block) = intent
            .submission
            .as_ref()
            .map(|submission| submission.block)
        else {
            intent.failure_reason = Some(
                "its EntryPoint nonce was used by another operation; create the intent again"
                    .to_owned(),
            );
            return self.settle(intent, IntentEvent::Dropped).await;
        };
        let filter = Filter::new()
            .address(self.app.chain().deployment().entry_point)
            .event_signature(EntryPoint::UserOperationEvent::SIGNATURE_HASH)
            .topic1(intent.user_op_hash)
            .from_block(from_block);
        let logs = self.provider.get_logs(&filter).await?;
        let Some(tx_hash) = logs.first().and_then(|log| log.transaction_hash) else {
            intent.failure_reason = Some(
                "its EntryPoint nonce was used by another operation; create the intent again"
                    .to_owned(),
            );
            return self.settle(intent, IntentEvent::Dropped).await;
        };
        let Some(receipt) = self.provider.get_transaction_receipt(tx_hash).await? else {
            return Ok(());
        };
        self.settle_included(intent, &receipt).await
    }

    async fn settle_included(
        &self,
        mut intent: Intent,
        receipt: &TransactionReceipt,
    ) -> Result<(), RelayError> {
        let logs = receipt.inner.logs();
        let Some(event) = find_operation(logs, intent.user_op_hash) else {
            return Ok(());
        };
        let revert = (!event.success).then(|| execution_revert(logs, intent.user_op_hash));
        intent.result = Some(IntentResult {
            tx_hash: receipt.transaction_hash,
            block_number: receipt.block_number.unwrap_or_default(),
            block_hash: receipt.block_hash.unwrap_or_default(),
            gas_used: event.actualGasUsed,
            actual_cost: event.actualGasCost,
            success: event.success,
            revert,
        });
        info!(target: "relay", intent = %intent.id, op = %intent.user_op_hash, tx = %receipt.transaction_hash, success = event.success, "included");
        self.settle(
            intent,
            IntentEvent::Included {
                success: event.success,
            },
        )
        .await
    }

    /// Applies a final `event` to `intent` and carries it to the session, in one write that
    /// is durable before anyone hears of it.
    async fn settle(&self, mut intent: Intent, event: IntentEvent) -> Result<(), RelayError> {
        let now = now_ms();
        intent
            .apply(&event, now)
            .map_err(|_| RelayError::Conflict)?;
        let Some(mut session) = self.app.store().session(&intent.session)? else {
            return Err(RelayError::Conflict);
        };
        let changed = session
            .settle(&intent, now)
            .map_err(|_| RelayError::Conflict)?;
        let result = if changed {
            self.app
                .store()
                .save(Some(&mut session), &mut [&mut intent])
        } else {
            self.app.store().save(None, &mut [&mut intent])
        };
        match result {
            Ok(()) => {}
            Err(StoreError::Conflict { .. }) => return Err(RelayError::Conflict),
            Err(error) => return Err(error.into()),
        }
        self.app.store().flush().await?;
        self.app.publish(&[&intent]);
        Ok(())
    }
}

/// The `UserOperationEvent` of `user_op_hash` among `logs`.
fn find_operation(logs: &[Log], user_op_hash: B256) -> Option<EntryPoint::UserOperationEvent> {
    logs.iter()
        .filter(|log| log.topic0() == Some(&EntryPoint::UserOperationEvent::SIGNATURE_HASH))
        .filter(|log| log.topics().get(1) == Some(&user_op_hash))
        .find_map(|log| log.log_decode::<EntryPoint::UserOperationEvent>().ok())
        .map(|log| log.inner.data)
}

/// Why an included operation's execution reverted, from its `UserOperationRevertReason` log.
fn execution_revert(logs: &[Log], user_op_hash: B256) -> RevertDetails {
    let reason = logs
        .iter()
        .filter(|log| log.topic0() == Some(&EntryPoint::UserOperationRevertReason::SIGNATURE_HASH))
        .filter(|log| log.topics().get(1) == Some(&user_op_hash))
        .find_map(|log| {
            log.log_decode::<EntryPoint::UserOperationRevertReason>()
                .ok()
        })
        .map(|log| RevertReason::decode(&log.inner.data.revertReason).to_string())
        .unwrap_or_else(|| "no revert data".to_owned());
    RevertDetails {
        aa_code: None,
        cause: "the operation's execution reverted; the account's checks had passed".to_owned(),
        remedy: "check the call's arguments and the target contract's state".to_owned(),
        reason,
    }
}

/// Why the EntryPoint refused an operation, from `handleOps` revert data.
fn refusal_details(data: &[u8]) -> RevertDetails {
    match decode_handle_ops_revert(data) {
        Some(error) => RevertDetails {
            aa_code: Some(error.code.to_owned()),
            cause: error.cause.to_owned(),
            remedy: error.remedy.to_owned(),
            reason: error
                .inner
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or(error.message),
        },
        None => RevertDetails {
            aa_code: None,
            cause: "handleOps reverted".to_owned(),
            remedy: "inspect the operation; the revert was not an EntryPoint error".to_owned(),
            reason: RevertReason::decode(data).to_string(),
        },
    }
}
