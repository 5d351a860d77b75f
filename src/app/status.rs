//! What the operator sees and steers through the admin service: the daemon's status, read
//! from the store and the chain when asked, and the relay's pause.

use std::{collections::BTreeMap, time::Duration};

use alloy::{
    primitives::{Address, TxHash, U256},
    providers::Provider,
};
use tracing::info;

use super::{App, AppError};
use crate::{
    chain::ChainError, clock::now_ms, intent::IntentStatus, relay::RelayProgress, store::RelayPause,
};

/// How long a status waits for the chain before it reports it unreachable, so a stalled
/// node cannot hold the operator's `latchkey status` forever.
const CHAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest reason a pause may carry: it is shown in one line of the status.
pub const MAX_PAUSE_REASON_CHARS: usize = 200;

/// The daemon's status at one moment.
#[derive(Debug, Clone)]
pub struct StatusView {
    /// The crate's version.
    pub version: &'static str,
    /// When the application started, in Unix milliseconds.
    pub started_at_ms: u64,
    /// The configured chain.
    pub chain_id: u64,
    /// The chain's head, or why it could not be read.
    pub chain: Result<ChainHeadView, String>,
    /// The operator's pause, if relaying is paused.
    pub pause: Option<RelayPause>,
    /// The relay's last successful pass.
    pub progress: RelayProgress,
    /// Each relayer, in the configured order.
    pub relayers: Vec<RelayerView>,
    /// Intents in each status, in [`IntentStatus::ALL`] order.
    pub intents: Vec<(IntentStatus, usize)>,
}

impl StatusView {
    /// Signed operations waiting for a bundle.
    pub fn queue_depth(&self) -> usize {
        self.intents
            .iter()
            .find(|(status, _)| *status == IntentStatus::Queued)
            .map_or(0, |(_, count)| *count)
    }
}

/// The chain's latest block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainHeadView {
    /// Its number.
    pub block: u64,
    /// Its timestamp, Unix seconds.
    pub timestamp: u64,
    /// Milliseconds from its timestamp to when it was read.
    pub age_ms: u64,
}

/// One relayer: what the chain says of it (when it answered) and what it has in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayerView {
    /// Its address.
    pub address: Address,
    /// Its balance, when the chain answered.
    pub balance: Option<U256>,
    /// Its next nonce counting pending transactions, when the chain answered.
    pub nonce: Option<u64>,
    /// Its transactions sent and not yet final.
    pub in_flight_bundles: usize,
    /// The operations they carry.
    pub in_flight_operations: usize,
}

impl App {
    /// The daemon's status: counts from the store, and the chain's head and the balances
    /// and nonces of the relayers when the chain answers within a few seconds.
    pub async fn status(&self) -> Result<StatusView, AppError> {
        let relayers = self.relay().addresses();
        let mut intents = Vec::with_capacity(IntentStatus::ALL.len());
        for status in IntentStatus::ALL {
            intents.push((status, self.store().count_intents_in_status(status).await?));
        }
        // Bundles and operations in flight, by the relayer that sent them.
        let mut in_flight: BTreeMap<Address, (Vec<TxHash>, usize)> = BTreeMap::new();
        for status in [IntentStatus::Submitted, IntentStatus::Included] {
            for intent in self.store().intents_in_status(status).await? {
                if let Some(submission) = intent.submission {
                    let (bundles, operations) = in_flight.entry(submission.relayer).or_default();
                    if !bundles.contains(&submission.tx_hash) {
                        bundles.push(submission.tx_hash);
                    }
                    *operations += 1;
                }
            }
        }
        let chain_reads = tokio::time::timeout(CHAIN_TIMEOUT, self.read_relayers(relayers)).await;
        let (chain, accounts) = match chain_reads {
            Ok(Ok((head, accounts))) => (Ok(head), accounts),
            Ok(Err(error)) => (Err(error.to_string()), Vec::new()),
            Err(_) => (
                Err(format!(
                    "the chain did not answer within {} s",
                    CHAIN_TIMEOUT.as_secs()
                )),
                Vec::new(),
            ),
        };
        let relayers = relayers
            .iter()
            .enumerate()
            .map(|(index, address)| {
                let (bundles, operations) = in_flight.remove(address).unwrap_or_default();
                let read = accounts.get(index).copied();
                RelayerView {
                    address: *address,
                    balance: read.map(|(balance, _)| balance),
                    nonce: read.map(|(_, nonce)| nonce),
                    in_flight_bundles: bundles.len(),
                    in_flight_operations: operations,
                }
            })
            .collect();
        Ok(StatusView {
            version: env!("CARGO_PKG_VERSION"),
            started_at_ms: self.started_at_ms(),
            chain_id: self.chain().chain_id(),
            chain,
            pause: self.store().relay_pause().await?,
            progress: self.relay().progress(),
            relayers,
            intents,
        })
    }

    /// The head, then each relayer's balance and pending nonce.
    async fn read_relayers(
        &self,
        relayers: &[Address],
    ) -> Result<(ChainHeadView, Vec<(U256, u64)>), ChainError> {
        let provider = self.chain().provider();
        let head = provider
            .get_block_by_number(Default::default())
            .await?
            .ok_or(ChainError::NoLatestBlock)?;
        let mut accounts = Vec::with_capacity(relayers.len());
        for relayer in relayers {
            let balance = provider.get_balance(*relayer).await?;
            let nonce = provider.get_transaction_count(*relayer).pending().await?;
            accounts.push((balance, nonce));
        }
        Ok((
            ChainHeadView {
                block: head.header.number,
                timestamp: head.header.timestamp,
                age_ms: now_ms().saturating_sub(head.header.timestamp.saturating_mul(1000)),
            },
            accounts,
        ))
    }

    /// Pauses relaying for `reason` (1 to [`MAX_PAUSE_REASON_CHARS`] characters), durably.
    /// A relay already paused keeps its first pause's time, so the status tells how long
    /// relaying has really been stopped; the reason is replaced.
    pub async fn pause_relay(&self, reason: String) -> Result<RelayPause, AppError> {
        let length = reason.chars().count();
        if reason.trim().is_empty() {
            return Err(AppError::invalid(
                "reason",
                "required: say why relaying is paused",
            ));
        }
        if length > MAX_PAUSE_REASON_CHARS {
            return Err(AppError::invalid(
                "reason",
                format!("{length} characters; at most {MAX_PAUSE_REASON_CHARS}"),
            ));
        }
        if reason.chars().any(char::is_control) {
            return Err(AppError::invalid(
                "reason",
                "contains a control character; give one line of text",
            ));
        }
        let since_ms = match self.store().relay_pause().await? {
            Some(pause) => pause.since_ms,
            None => now_ms(),
        };
        let pause = RelayPause { reason, since_ms };
        self.store().set_relay_pause(Some(&pause)).await?;
        info!(target: "relay", reason = %pause.reason, "relaying paused by the operator");
        Ok(pause)
    }

    /// Resumes relaying, durably, and wakes the relay so queued operations go at once.
    pub async fn resume_relay(&self) -> Result<(), AppError> {
        if self.store().relay_pause().await?.is_some() {
            self.store().set_relay_pause(None).await?;
            info!(target: "relay", "relaying resumed by the operator");
        }
        self.relay().wake();
        Ok(())
    }
}
