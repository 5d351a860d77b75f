//! Sponsorship policies and the paymaster, as operators see and steer them.

use alloy::primitives::Address;
use tracing::info;

use super::{App, AppError};
use crate::{
    auth::{TenantId, Visibility},
    chain::client::PaymasterFunds,
    clock::now_ms,
    policy::{Policy, PolicyId, PolicyUsage, Rule, SponsorStrategy, WindowKey},
    store::{Page, PageRequest, retry_lost_races},
};

/// What a client asks for when it creates a policy.
#[derive(Debug, Clone)]
pub struct NewPolicy {
    /// The tenant the policy belongs to: the caller's.
    pub tenant: TenantId,
    /// A name for people.
    pub name: String,
    /// The chain; `None` for the daemon's.
    pub chain_id: Option<u64>,
    /// Who pays.
    pub strategy: SponsorStrategy,
    /// The rules.
    pub rules: Vec<Rule>,
}

/// A policy with what its operations have used.
#[derive(Debug, Clone)]
pub struct PolicyView {
    /// The policy.
    pub policy: Policy,
    /// All-time usage.
    pub usage: PolicyUsage,
    /// The current interval of each limit over time, in rule order.
    pub windows: Vec<WindowView>,
}

/// The current interval of one limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowView {
    /// Which rule and interval.
    pub key: WindowKey,
    /// When it started, unix ms.
    pub start_ms: u64,
    /// When it ends, unix ms.
    pub end_ms: u64,
    /// What it has used.
    pub usage: PolicyUsage,
}

/// The paymaster and its funds.
#[derive(Debug, Clone)]
pub struct PaymasterView {
    /// The SponsorPaymaster.
    pub address: Address,
    /// Its EntryPoint.
    pub entry_point: Address,
    /// The chain.
    pub chain_id: u64,
    /// The key latchkey approves with.
    pub signer: Address,
    /// What it holds at the EntryPoint.
    pub funds: PaymasterFunds,
}

impl App {
    /// Creates an enabled policy. Its shape is checked first; nothing is written unless it
    /// passes.
    pub async fn create_policy(&self, request: NewPolicy) -> Result<PolicyView, AppError> {
        let chain_id = self.chain().chain_id();
        if request.chain_id.is_some_and(|asked| asked != chain_id) {
            // A policy for another chain could never sponsor anything this daemon relays.
            return Err(AppError::invalid(
                "chain_id",
                format!("this daemon serves chain {chain_id}; give that or 0"),
            ));
        }
        let now_ms = now_ms();
        let mut policy = Policy {
            tenant: request.tenant,
            id: PolicyId::generate(),
            name: request.name,
            chain_id,
            strategy: request.strategy,
            enabled: true,
            rules: request.rules,
            revision: 0,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
        };
        policy
            .validate()
            .map_err(|error| AppError::invalid(error.field, error.reason))?;
        self.store().create_policy(&mut policy).await?;
        self.store().flush().await?;
        info!(target: "policy", policy = %policy.id, name = %policy.name, rules = policy.rules.len(), "created");
        self.policy(&policy.id, &Visibility::All).await
    }

    /// A policy `visibility` covers, with its usage; any other is not found.
    pub async fn policy(
        &self,
        id: &PolicyId,
        visibility: &Visibility,
    ) -> Result<PolicyView, AppError> {
        let policy = super::visible(
            self.store().policy(id).await?,
            visibility,
            "name",
            id.resource_name(),
        )?;
        self.policy_view(policy).await
    }

    /// The policies `visibility` covers, newest first.
    pub async fn list_policies(
        &self,
        visibility: &Visibility,
        page: &PageRequest,
    ) -> Result<Page<PolicyView>, AppError> {
        let policies = self
            .store()
            .list_policies(visibility.tenant(), page)
            .await?;
        let mut items = Vec::with_capacity(policies.items.len());
        for policy in policies.items {
            items.push(self.policy_view(policy).await?);
        }
        Ok(Page {
            items,
            next_token: policies.next_token,
        })
    }

    /// Disables a policy: every operation created after this returns is refused. Disabling
    /// a disabled policy changes nothing.
    pub async fn disable_policy(
        &self,
        id: &PolicyId,
        visibility: &Visibility,
    ) -> Result<PolicyView, AppError> {
        retry_lost_races(|| async move {
            let mut policy = super::visible(
                self.store().policy(id).await?,
                visibility,
                "name",
                id.resource_name(),
            )?;
            if !policy.enabled {
                return self.policy_view(policy).await;
            }
            policy.enabled = false;
            policy.updated_at_ms = now_ms();
            self.store().save_policy(&mut policy).await?;
            self.store().flush().await?;
            info!(target: "policy", policy = %id, "disabled");
            self.policy_view(policy).await
        })
        .await
    }

    /// The paymaster, its signer and its funds at the EntryPoint.
    pub async fn paymaster(&self) -> Result<PaymasterView, AppError> {
        let sponsor = self.sponsor_config()?;
        let funds = self.chain().paymaster_funds(sponsor.paymaster).await?;
        Ok(PaymasterView {
            address: sponsor.paymaster,
            entry_point: self.chain().deployment().entry_point,
            chain_id: self.chain().chain_id(),
            signer: sponsor.signer.address(),
            funds,
        })
    }

    async fn policy_view(&self, policy: Policy) -> Result<PolicyView, AppError> {
        let now = now_ms();
        let usage = self.store().policy_usage(&policy.id).await?;
        let mut windows = Vec::new();
        for key in policy.windows_at(now) {
            let interval_ms = policy
                .rules
                .get(usize::from(key.rule))
                .and_then(Rule::interval_secs)
                .unwrap_or_default()
                .saturating_mul(1000);
            let start_ms = policy
                .created_at_ms
                .saturating_add(key.index.saturating_mul(interval_ms));
            windows.push(WindowView {
                key,
                start_ms,
                end_ms: start_ms.saturating_add(interval_ms),
                usage: self.store().policy_window_usage(&policy.id, key).await?,
            });
        }
        Ok(PolicyView {
            policy,
            usage,
            windows,
        })
    }
}
