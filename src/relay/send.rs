//! Sending: queued operations packed into bundles, simulated, signed at the relayer's next
//! nonce, written ahead and broadcast; and the replacement of a stuck bundle.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use alloy::{
    eips::Encodable2718,
    network::{NetworkTransactionBuilder, TransactionBuilder},
    primitives::{Address, Bytes, TxHash, U256},
    providers::Provider,
    rpc::types::{BlockOverrides, TransactionRequest},
};
use tracing::{info, warn};

use super::{
    Relay, RelayError,
    decode::{SendRefusal, TxFees, bumped_fees, refusal_details},
    relayer::Relayer,
};
use crate::{
    chain::{ChainError, contracts::EntryPoint, revert::decode_handle_ops_revert},
    intent::{Intent, IntentEvent, IntentStatus, Submission},
};

/// A bundle ready to sign: the `handleOps` calldata and the simulated gas.
struct Simulated {
    bundle: Vec<Intent>,
    calldata: Bytes,
    gas: u64,
}

impl Relay {
    /// Hands queued operations (oldest first) to the relayers in turn as bundles, each
    /// relayer up to its in-flight limit. `now` is the time a bundle sent now is judged at:
    /// operations whose deadline comes before it has passed the margin are held back.
    pub(super) async fn send_queued(&mut self, head: u64, now: u64) -> Result<(), RelayError> {
        let queued = self.store.intents_in_status(IntentStatus::Queued).await?;
        let mut queued: VecDeque<Intent> = self.hold_closing(queued, now).into();
        if queued.is_empty() {
            return Ok(());
        }
        let mut in_flight: BTreeMap<Address, BTreeSet<u64>> = BTreeMap::new();
        for submission in self
            .store
            .intents_in_status(IntentStatus::Submitted)
            .await?
            .iter()
            .filter_map(|intent| intent.submission.as_ref())
        {
            in_flight
                .entry(submission.relayer)
                .or_default()
                .insert(submission.relayer_nonce);
        }
        let count = self.relayers.len();
        let start = self.turn % count;
        self.turn = self.turn.wrapping_add(1);
        for offset in 0..count {
            let index = (start + offset) % count;
            if !self.relayers[index].funded && !self.refunded(index).await? {
                continue;
            }
            let flying = in_flight.entry(self.relayers[index].address).or_default();
            while flying.len() < self.config.max_in_flight
                || self.hole_below_flight(index, flying).await?
            {
                let bundle = self.next_bundle(&mut queued);
                if bundle.is_empty() {
                    return Ok(());
                }
                match self
                    .send_bundle(index, bundle, (head, now), flying, &mut queued)
                    .await
                {
                    Ok(Sent::InFlight(nonce)) => {
                        flying.insert(nonce);
                    }
                    Ok(Sent::Nothing) => {}
                    Ok(Sent::Returned(bundle)) => {
                        // This relayer cannot take it; the next one may.
                        for intent in bundle.into_iter().rev() {
                            queued.push_front(intent);
                        }
                        break;
                    }
                    Err(error @ RelayError::Chain(ChainError::Rpc(_))) => return Err(error),
                    Err(error) => {
                        warn!(target: "relay", relayer = %self.relayers[index].address, %error, "bundle failed; its operations stay queued");
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// The operations of `queued` that may still be sent: those whose deadline (see
    /// [`super::operation_deadline`]) is not within the margin of `now`. The EntryPoint
    /// refuses an operation past its deadline, and the whole `handleOps` with it, so the
    /// relayer would pay for a reverted transaction. The ones held back stay QUEUED until
    /// their deadline is past for good, and are DROPPED then.
    fn hold_closing(&self, queued: Vec<Intent>, now: u64) -> Vec<Intent> {
        let horizon = now.saturating_add(self.config.window_margin_secs);
        let (sendable, held): (Vec<_>, Vec<_>) = queued.into_iter().partition(|intent| {
            super::operation_deadline(intent).is_none_or(|deadline| deadline >= horizon)
        });
        if !held.is_empty() {
            info!(target: "relay", count = held.len(), "holding back operations whose deadline is too near to be met");
        }
        sendable
    }

    /// Whether relayer `index`'s next nonce is below one of its bundles in flight: a lost
    /// transaction left a hole there, and the bundles above it cannot be mined until it is
    /// filled, so the next bundle goes out whatever the in-flight limit says.
    async fn hole_below_flight(
        &self,
        index: usize,
        in_flight: &BTreeSet<u64>,
    ) -> Result<bool, RelayError> {
        let Some(highest) = in_flight.last() else {
            return Ok(false);
        };
        let relayer = &self.relayers[index];
        let mined = self
            .provider
            .get_transaction_count(relayer.address)
            .latest()
            .await?;
        Ok(relayer.next_nonce(mined, in_flight) < *highest)
    }

    /// The next bundle: up to the operation limit of queued operations, oldest first. The
    /// gas cap is applied to the bundle's simulation, not here: the operations' gas limits
    /// overstate what they use (by about three times for a mint), so packing by them would
    /// close bundles far below the cap.
    fn next_bundle(&self, queued: &mut VecDeque<Intent>) -> Vec<Intent> {
        let take = queued.len().min(self.config.max_ops_per_bundle);
        queued.drain(..take).collect()
    }

    /// Whether relayer `index`, out of the rotation, can pay again; it rejoins if so.
    async fn refunded(&mut self, index: usize) -> Result<bool, RelayError> {
        let relayer = &mut self.relayers[index];
        let balance = self.provider.get_balance(relayer.address).await?;
        // Enough for a modest bundle at the fee cap: a relayer that can pay for nothing
        // would only be taken out again.
        let needed = U256::from(1_000_000u64)
            .saturating_mul(U256::from(self.chain.fees().await?.max_fee_per_gas));
        if balance >= needed {
            info!(target: "relay", relayer = %relayer.address, %balance, "relayer funded again; back in rotation");
            relayer.funded = true;
        }
        Ok(relayer.funded)
    }

    fn take_out_of_rotation(&mut self, index: usize, balance: U256, needed: U256) {
        let relayer = &mut self.relayers[index];
        relayer.funded = false;
        warn!(target: "relay", relayer = %relayer.address, %balance, %needed, "relayer cannot pay for a bundle; taken out of rotation until it is funded");
    }

    /// Simulates `bundle` and, when it passes, sends it from relayer `index`. A bundle whose
    /// transaction would need more gas than the cap is trimmed to fit, and the operations
    /// trimmed off go back to the front of `queued`, for the next bundle.
    async fn send_bundle(
        &mut self,
        index: usize,
        bundle: Vec<Intent>,
        (head, now): (u64, u64),
        in_flight: &BTreeSet<u64>,
        queued: &mut VecDeque<Intent>,
    ) -> Result<Sent, RelayError> {
        let address = self.relayers[index].address;
        let started = std::time::Instant::now();
        let Some(mut simulated) = self.simulate(address, bundle, now).await? else {
            return Ok(Sent::Nothing);
        };
        loop {
            let gas_limit = u128::from(gas_limit(simulated.gas, &simulated.bundle));
            let ops = simulated.bundle.len();
            if gas_limit <= self.config.max_bundle_gas || ops == 1 {
                break;
            }
            // Operations of one bundle cost about the same, so the share that fits is the
            // share of the gas that fits.
            let fits = usize::try_from(
                (ops as u128).saturating_mul(self.config.max_bundle_gas) / gas_limit,
            )
            .unwrap_or(1)
            .clamp(1, ops - 1);
            for intent in simulated.bundle.split_off(fits).into_iter().rev() {
                queued.push_front(intent);
            }
            simulated = match self.simulate(address, simulated.bundle, now).await? {
                Some(simulated) => simulated,
                None => return Ok(Sent::Nothing),
            };
        }
        let fees = self.chain.fees().await?;
        let fees = TxFees {
            max_fee_per_gas: fees.max_fee_per_gas,
            max_priority_fee_per_gas: fees.max_priority_fee_per_gas,
        };
        let gas_limit = gas_limit(simulated.gas, &simulated.bundle);
        let needed = U256::from(gas_limit).saturating_mul(U256::from(fees.max_fee_per_gas));
        let balance = self.provider.get_balance(address).await?;
        if balance < needed {
            self.take_out_of_rotation(index, balance, needed);
            return Ok(Sent::Returned(simulated.bundle));
        }
        let mined = self
            .provider
            .get_transaction_count(address)
            .latest()
            .await?;
        if self.relayers[index].nonce_floor > mined {
            // The floor steps over a nonce another transaction held in the pool. If that
            // transaction is gone (the pool's count of this key stops below the floor), the
            // nonce is free again, and leaving it unused would strand every later one.
            let pooled = self
                .provider
                .get_transaction_count(address)
                .pending()
                .await?;
            if pooled < self.relayers[index].nonce_floor {
                self.relayers[index].nonce_floor = 0;
            }
        }
        let nonce = self.relayers[index].next_nonce(mined, in_flight);
        let (tx_hash, raw) = self
            .sign(index, nonce, &simulated.calldata, gas_limit, fees)
            .await?;

        // Write-ahead: the hash is durable, for every operation of the bundle in one write,
        // before the transaction exists anywhere else.
        let submission = Submission {
            tx_hash,
            relayer: address,
            relayer_nonce: nonce,
            block: head,
            attempts: vec![tx_hash],
            attempt_block: head,
            gas_limit,
            max_fee_per_gas: fees.max_fee_per_gas,
            max_priority_fee_per_gas: fees.max_priority_fee_per_gas,
        };
        let changes: Vec<_> = simulated
            .bundle
            .into_iter()
            .map(|mut intent| {
                // A search for the operation's inclusion starts where it was first sent:
                // an earlier transaction carrying it may yet be mined (or re-mined after a
                // reorg) below this one.
                let first_sent = intent
                    .submission
                    .as_ref()
                    .map_or(head, |earlier| earlier.block.min(head));
                intent.submission = Some(Submission {
                    block: first_sent,
                    ..submission.clone()
                });
                (intent, IntentEvent::Submitted)
            })
            .collect();
        let ids: Vec<_> = changes
            .iter()
            .map(|(intent, _)| intent.id.clone())
            .collect();
        let prepared = started.elapsed();
        self.commit(changes).await?;
        let written = started.elapsed();

        let ops = ids.len();
        match self.provider.send_raw_transaction(&raw).await {
            Ok(_) => {
                let sent = started.elapsed();
                self.metrics.bundle_sent(ops, gas_limit);
                info!(
                    target: "relay",
                    relayer = %address, tx = %tx_hash, ops, nonce, gas = simulated.gas,
                    prepare_ms = prepared.as_millis(),
                    write_ms = (written - prepared).as_millis(),
                    send_ms = (sent - written).as_millis(),
                    "bundle submitted"
                );
                Ok(Sent::InFlight(nonce))
            }
            Err(error) => {
                let refusal =
                    SendRefusal::classify(&error.to_string(), error.as_error_resp().is_some());
                warn!(target: "relay", relayer = %address, tx = %tx_hash, ops, nonce, %error, ?refusal, "broadcast refused");
                match refusal {
                    SendRefusal::AlreadyKnown => return Ok(Sent::InFlight(nonce)),
                    // Left SUBMITTED: following the bundle finds it in the pool, or finds
                    // it lost with its nonce unused and sends its operations again.
                    SendRefusal::Unknown => return Err(error.into()),
                    SendRefusal::NonceTooLow | SendRefusal::Refused => {}
                    SendRefusal::ReplacementUnderpriced => {
                        // Another transaction of this key holds the nonce in the pool.
                        self.relayers[index].nonce_floor = nonce + 1;
                    }
                    SendRefusal::InsufficientFunds => {
                        self.take_out_of_rotation(index, balance, needed);
                    }
                }
                // The node refused it for good: it can never be mined, so its operations
                // are queued again at once, for another nonce or another relayer.
                self.requeue_refused(&ids, tx_hash).await?;
                Ok(Sent::Nothing)
            }
        }
    }

    /// Puts the operations of a transaction the node refused back in the queue.
    async fn requeue_refused(
        &self,
        ids: &[crate::intent::IntentId],
        tx_hash: TxHash,
    ) -> Result<(), RelayError> {
        let mut changes = Vec::new();
        for id in ids {
            let Some(intent) = self.store.intent(id).await? else {
                continue;
            };
            let sent_here = intent
                .submission
                .as_ref()
                .is_some_and(|submission| submission.tx_hash == tx_hash);
            if intent.status == IntentStatus::Submitted && sent_here {
                changes.push((intent, IntentEvent::Requeued));
            }
        }
        self.commit(changes).await
    }

    /// Simulates `bundle` from `relayer` with `eth_estimateGas`: the estimate is the
    /// simulation. An operation the EntryPoint refuses is taken out with its decoded reason
    /// and the rest are simulated again, so one bad operation never sinks the others.
    /// `None` when nothing is left to send.
    async fn simulate(
        &self,
        relayer: Address,
        mut bundle: Vec<Intent>,
        now: u64,
    ) -> Result<Option<Simulated>, RelayError> {
        let entry_point = EntryPoint::new(self.chain.deployment().entry_point, &self.provider);
        loop {
            if bundle.is_empty() {
                return Ok(None);
            }
            let ops = bundle.iter().map(|intent| intent.user_op.pack()).collect();
            let call = entry_point.handleOps(ops, relayer).from(relayer);
            // One execution tells the gas a passing bundle uses; eth_estimateGas would run
            // the bundle a dozen times or more in its search. Only a bundle that fails (or a
            // node without eth_createAccessList) pays for the search, which also returns the
            // revert data that names the operation at fault.
            let request = call.clone().into_transaction_request();
            if let Ok(result) = self.provider.create_access_list(&request).await
                && result.error.is_none()
                && let Ok(used) = u64::try_from(result.gas_used)
            {
                return Ok(Some(Simulated {
                    gas: used,
                    bundle,
                    calldata: call.calldata().clone(),
                }));
            }
            // The search runs in a block carrying `now`: on a chain that mines only on
            // demand, the latest block's time can be long past, and an operation whose
            // window opened since would be refused there although it passes at inclusion.
            let at_inclusion = BlockOverrides {
                time: Some(now),
                ..BlockOverrides::default()
            };
            let estimate = self
                .provider
                .estimate_gas(request)
                .latest()
                .with_block_overrides(at_inclusion)
                .await;
            let error = match estimate {
                Ok(gas) => {
                    return Ok(Some(Simulated {
                        bundle,
                        calldata: call.calldata().clone(),
                        gas,
                    }));
                }
                Err(error) => error,
            };
            let Some(data) = error
                .as_error_resp()
                .and_then(|payload| payload.as_revert_data())
            else {
                return Err(error.into());
            };
            let index = decode_handle_ops_revert(&data)
                .and_then(|refusal| refusal.op_index)
                .and_then(|index| usize::try_from(index).ok())
                .filter(|index| *index < bundle.len());
            match index {
                Some(index) => {
                    let culprit = bundle.remove(index);
                    self.refuse(culprit, &data).await?;
                }
                // Not attributable to one operation: alone, it answers for it; in company,
                // each is simulated alone to find which.
                None if bundle.len() == 1 => {
                    let culprit = bundle.remove(0);
                    self.refuse(culprit, &data).await?;
                }
                None => {
                    let before = bundle.len();
                    let mut passing = Vec::new();
                    for intent in bundle {
                        if let Some(alone) =
                            Box::pin(self.simulate(relayer, vec![intent], now)).await?
                        {
                            passing.extend(alone.bundle);
                        }
                    }
                    if passing.len() == before {
                        // Each passes alone, yet together they fail: send the older half
                        // now; the rest stay QUEUED for the next bundle. Halving ends at a
                        // bundle of one, which passes.
                        passing.truncate(before / 2);
                    }
                    bundle = passing;
                }
            }
        }
    }

    /// Takes an operation the EntryPoint refused out of the queue: settled from the chain if
    /// its nonce turns out to be used, rebuilt when someone else deployed its account (see
    /// [`super::rebuild`]), DROPPED with the decoded reason otherwise.
    async fn refuse(&self, mut intent: Intent, data: &[u8]) -> Result<(), RelayError> {
        if self.executed(&intent).await? {
            let change = self.inclusion_from_chain(intent).await?;
            return self.commit(change.into_iter().collect()).await;
        }
        let details = refusal_details(data);
        if Self::is_front_run(&intent, details.aa_code.as_deref()) {
            return self.rebuild_front_run(intent).await;
        }
        warn!(target: "relay", intent = %intent.id, user_op_hash = %intent.user_op_hash, reason = %details.cause, "operation refused by the EntryPoint");
        intent.failure_reason = Some(format!("{}: {}", details.cause, details.reason));
        intent.refusal = Some(details);
        self.commit(vec![(intent, IntentEvent::Dropped)]).await
    }

    /// Signs the `handleOps` transaction carrying `calldata` from relayer `index`.
    async fn sign(
        &self,
        index: usize,
        nonce: u64,
        calldata: &Bytes,
        gas_limit: u64,
        fees: TxFees,
    ) -> Result<(TxHash, Bytes), RelayError> {
        let relayer: &Relayer = &self.relayers[index];
        let request = TransactionRequest::default()
            .with_from(relayer.address)
            .with_to(self.chain.deployment().entry_point)
            .with_input(calldata.clone())
            .with_nonce(nonce)
            .with_chain_id(self.chain.chain_id())
            .with_gas_limit(gas_limit)
            .with_max_fee_per_gas(fees.max_fee_per_gas)
            .with_max_priority_fee_per_gas(fees.max_priority_fee_per_gas);
        let envelope = request
            .build(&relayer.wallet)
            .await
            .map_err(|error| RelayError::Signing(error.to_string()))?;
        Ok((*envelope.tx_hash(), Bytes::from(envelope.encoded_2718())))
    }

    /// Replaces the stuck bundle `intents` (every intent SUBMITTED at one relayer nonce)
    /// with the same operations at the same nonce and higher fees. Whichever of the
    /// transactions lands, the others cannot, so no nonce is skipped and nothing runs twice.
    pub(super) async fn replace(&self, intents: Vec<Intent>, head: u64) -> Result<(), RelayError> {
        let Some(submission) = intents.first().and_then(|intent| intent.submission.clone()) else {
            return Ok(());
        };
        let Some(index) = self
            .relayers
            .iter()
            .position(|relayer| relayer.address == submission.relayer)
        else {
            // Sent by a relayer no longer configured: only the chain can settle it now.
            return Ok(());
        };
        let market = self.chain.fees().await?;
        let old = TxFees {
            max_fee_per_gas: submission.max_fee_per_gas,
            max_priority_fee_per_gas: submission.max_priority_fee_per_gas,
        };
        let Some(fees) = bumped_fees(
            old,
            TxFees {
                max_fee_per_gas: market.max_fee_per_gas,
                max_priority_fee_per_gas: market.max_priority_fee_per_gas,
            },
            self.config.fee_bump_percent,
            self.chain.max_fee_per_gas_cap(),
        ) else {
            warn!(target: "relay", tx = %submission.tx_hash, "bundle stuck at the fee cap; it waits for fees to fall");
            return Ok(());
        };
        let entry_point = EntryPoint::new(self.chain.deployment().entry_point, &self.provider);
        let ops = intents.iter().map(|intent| intent.user_op.pack()).collect();
        let calldata = entry_point
            .handleOps(ops, submission.relayer)
            .calldata()
            .clone();
        let gas_limit = submission.gas_limit.max(21_000);
        let (tx_hash, raw) = self
            .sign(index, submission.relayer_nonce, &calldata, gas_limit, fees)
            .await?;
        let changes: Vec<_> = intents
            .into_iter()
            .map(|mut intent| {
                if let Some(sent) = intent.submission.as_mut() {
                    sent.tx_hash = tx_hash;
                    sent.attempts.push(tx_hash);
                    sent.attempt_block = head;
                    sent.max_fee_per_gas = fees.max_fee_per_gas;
                    sent.max_priority_fee_per_gas = fees.max_priority_fee_per_gas;
                }
                (intent, IntentEvent::Submitted)
            })
            .collect();
        let ops = changes.len();
        self.commit(changes).await?;
        match self.provider.send_raw_transaction(&raw).await {
            Ok(_) => {
                self.metrics.fee_bumped();
                info!(target: "relay", tx = %tx_hash, replaced = %submission.tx_hash, nonce = submission.relayer_nonce, ops, max_fee_per_gas = fees.max_fee_per_gas, "stuck bundle replaced with higher fees");
            }
            // Recorded all the same: the next replacement bumps from these fees, and the
            // earlier transactions are still followed until one of them lands.
            Err(error) => {
                let refusal =
                    SendRefusal::classify(&error.to_string(), error.as_error_resp().is_some());
                warn!(target: "relay", tx = %tx_hash, nonce = submission.relayer_nonce, %error, ?refusal, "replacement refused");
            }
        }
        Ok(())
    }
}

/// The gas a bundle's transaction is given: its simulation's plus a tenth, since the state
/// it lands on may differ a little from the state it was simulated on, plus room for the
/// EntryPoint's own check that enough gas is left to give an operation its whole call gas
/// limit (AA95), which a simulation's gas used does not include.
fn gas_limit(simulated: u64, bundle: &[Intent]) -> u64 {
    /// The EntryPoint's INNER_GAS_OVERHEAD, and then some.
    const INNER_OVERHEAD: u64 = 20_000;
    let largest_call = bundle
        .iter()
        .map(|intent| {
            intent
                .user_op
                .call_gas_limit
                .saturating_add(intent.user_op.paymaster_post_op_gas_limit)
        })
        .max()
        .unwrap_or_default();
    simulated
        .saturating_add(simulated / 10)
        .saturating_add(u64::try_from(largest_call).unwrap_or(u64::MAX))
        .saturating_add(INNER_OVERHEAD)
}

/// What became of a bundle handed to a relayer.
enum Sent {
    /// Sent, at this nonce.
    InFlight(u64),
    /// Nothing is in flight: every operation was refused in simulation, or the node refused
    /// the transaction and its operations are queued again.
    Nothing,
    /// The relayer cannot pay for it; another relayer may take it.
    Returned(Vec<Intent>),
}
