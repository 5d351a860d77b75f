//! What the daemon reports about itself at a scrape: the levels behind its metrics, read
//! from the store and the chain at that moment.

use std::time::Duration;

use alloy::{primitives::Address, providers::Provider};

use super::App;
use crate::{chain::ChainError, clock::now_ms, intent::IntentStatus, metrics::wei_to_eth};

/// How long a scrape waits for the chain before it reports it down.
const CHAIN_TIMEOUT: Duration = Duration::from_secs(5);

impl App {
    /// Every metric in the Prometheus text format, with the levels read now: intents by
    /// status from the store and, when the chain answers in time, its head, the balances
    /// of the relayers and the paymaster's deposit.
    pub async fn metrics_text(&self) -> String {
        let relayers = self.relay().addresses();
        let metrics = self.metrics();
        for status in IntentStatus::ALL {
            match self.store().count_intents_in_status(status).await {
                Ok(count) => metrics.set_intents(status_name(status), count),
                Err(error) => {
                    tracing::warn!(target: "metrics", %error, "cannot count intents");
                }
            }
        }
        match tokio::time::timeout(CHAIN_TIMEOUT, self.read_chain_levels(relayers)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::debug!(target: "metrics", %error, "chain unreachable at scrape");
                metrics.set_chain(None);
            }
            Err(_) => metrics.set_chain(None),
        }
        metrics.encode()
    }

    async fn read_chain_levels(&self, relayers: &[Address]) -> Result<(), ChainError> {
        let metrics = self.metrics();
        let provider = self.chain().provider();
        let head = provider
            .get_block_by_number(Default::default())
            .await?
            .ok_or(ChainError::NoLatestBlock)?;
        let age_ms = now_ms().saturating_sub(head.header.timestamp.saturating_mul(1000));
        for relayer in relayers {
            let balance = provider.get_balance(*relayer).await?;
            metrics.set_relayer_balance(&relayer.to_string(), wei_to_eth(balance));
        }
        if let Some(sponsor) = &self.config().sponsor {
            let funds = self.chain().paymaster_funds(sponsor.paymaster).await?;
            metrics.set_paymaster_deposit(wei_to_eth(funds.deposit));
        }
        metrics.set_chain(Some((head.header.number, age_ms as f64 / 1000.0)));
        Ok(())
    }
}

/// A status as the `status` label names it.
fn status_name(status: IntentStatus) -> &'static str {
    match status {
        IntentStatus::PendingSignature => "pending_signature",
        IntentStatus::Queued => "queued",
        IntentStatus::Submitted => "submitted",
        IntentStatus::Included => "included",
        IntentStatus::Confirmed => "confirmed",
        IntentStatus::Reverted => "reverted",
        IntentStatus::Dropped => "dropped",
        IntentStatus::Expired => "expired",
    }
}
