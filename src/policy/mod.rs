//! Gas sponsorship policies: which operations the studio's paymaster pays for, within which
//! limits, and what each sponsored operation is charged against them.
//!
//! A policy's rules come in two kinds. Rules about the operation itself (which functions it
//! calls, how much gas it may use) are checked here, in pure code, before anything is
//! signed. Limits over time (operations, gas and spend per interval) depend on every other
//! operation of the policy, so the store checks and charges them inside the one write that
//! creates the operation: concurrent requests are serialized there and can never overrun a
//! limit together.
//!
//! An operation is charged its worst case while it is on its way (its gas limits, and those
//! times its fee cap), the receipt's `actualGasUsed`/`actualGasCost` once it executed, and
//! nothing if it never did. The store moves the charge along with every write of the intent,
//! so a policy's usage is always the sum of its operations' charges.

mod usage;

use alloy::primitives::{Address, FixedBytes};
use serde::{Deserialize, Serialize};

pub use self::usage::{Amount, Charge, PolicyUsage, WindowKey};
use crate::call::{Callee, Interaction, SelectorRule};
pub use crate::ids::PolicyId;

/// Who pays for a sponsored operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SponsorStrategy {
    /// The paymaster pays the gas; the player pays nothing.
    PayForUser,
}

/// A function of the account itself that the owner signs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AccountFunction {
    /// Registering a session key.
    RegisterSession,
    /// Revoking a session key.
    RevokeSession,
    /// Deploying the account (with its first session registration).
    DeployAccount,
}

impl AccountFunction {
    /// The name clients use.
    pub fn name(self) -> &'static str {
        match self {
            Self::RegisterSession => "session registration",
            Self::RevokeSession => "session revocation",
            Self::DeployAccount => "account deployment",
        }
    }
}

/// One entry of a contract-functions rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractFunction {
    /// The contract; `None` for any contract.
    pub contract: Option<Address>,
    /// Which of its functions.
    pub selector: SelectorRule,
    /// The function as the client wrote it (a signature, a selector or `*`), echoed back.
    pub function: String,
}

impl ContractFunction {
    fn covers(&self, target: Address, callee: Callee) -> bool {
        self.contract.is_none_or(|contract| contract == target) && self.selector.covers(callee)
    }
}

/// One rule of a policy. An operation is sponsored only if every rule that applies to it
/// lets it through.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rule {
    /// The contract calls the policy sponsors: every call of an intent must match an entry.
    /// Without such a rule the policy sponsors no contract calls.
    ContractFunctions(Vec<ContractFunction>),
    /// The account's own functions the policy sponsors. Without such a rule it sponsors
    /// none.
    AccountFunctions(Vec<AccountFunction>),
    /// At most this many operations per interval.
    OperationsPerInterval {
        /// The limit.
        max_operations: u64,
        /// The interval, seconds.
        interval_secs: u64,
    },
    /// At most this much gas per interval.
    GasPerInterval {
        /// The limit.
        max_gas: u64,
        /// The interval, seconds.
        interval_secs: u64,
    },
    /// At most this much gas (all of the operation's gas limits) per operation.
    GasPerOperation {
        /// The limit.
        max_gas: u64,
    },
    /// At most this much spent per interval, wei.
    SpendPerInterval {
        /// The limit, wei.
        max_wei: u128,
        /// The interval, seconds.
        interval_secs: u64,
    },
}

impl Rule {
    /// The rule's kind, as clients name it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::ContractFunctions(_) => "contract_functions",
            Self::AccountFunctions(_) => "account_functions",
            Self::OperationsPerInterval { .. } => "operations_per_interval",
            Self::GasPerInterval { .. } => "gas_per_interval",
            Self::GasPerOperation { .. } => "gas_per_operation",
            Self::SpendPerInterval { .. } => "spend_per_interval",
        }
    }

    /// The interval of a limit over time.
    pub fn interval_secs(&self) -> Option<u64> {
        match self {
            Self::OperationsPerInterval { interval_secs, .. }
            | Self::GasPerInterval { interval_secs, .. }
            | Self::SpendPerInterval { interval_secs, .. } => Some(*interval_secs),
            _ => None,
        }
    }
}

/// Most rules one policy may have.
pub const MAX_RULES: usize = 32;
/// Most entries one contract-functions rule may have.
pub const MAX_CONTRACT_FUNCTIONS: usize = 256;
/// Longest interval: a year.
pub const MAX_INTERVAL_SECS: u64 = 366 * 24 * 3600;

/// Why a policy is malformed; the message names the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidPolicy {
    /// The field, as the API names it.
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

/// A sponsorship policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// The id.
    pub id: PolicyId,
    /// The tenant whose keys see it and sponsor with it; `default` for policies made
    /// before tenants.
    #[serde(default)]
    pub tenant: crate::auth::TenantId,
    /// A name for people.
    pub name: String,
    /// The chain it sponsors on.
    pub chain_id: u64,
    /// Who pays.
    pub strategy: SponsorStrategy,
    /// Whether it sponsors anything; a disabled policy refuses every new operation.
    pub enabled: bool,
    /// Its rules.
    pub rules: Vec<Rule>,
    /// Bumped by the store on every write.
    pub revision: u64,
    /// Creation time, unix ms. Every interval of a limit starts at a multiple of its length
    /// after it.
    pub created_at_ms: u64,
    /// Last change, unix ms.
    pub updated_at_ms: u64,
}

/// What a sponsored operation does, as the rules see it.
#[derive(Clone, Copy, Debug)]
pub enum Operation<'a> {
    /// Contract calls through a session key.
    Calls(&'a [Interaction]),
    /// A session registration, deploying the account first when `deploys_account`.
    Registration {
        /// Whether the operation deploys the account.
        deploys_account: bool,
    },
    /// A session revocation.
    Revocation,
    /// An operation of any account, sponsored through the paymaster service: the calls its
    /// `execute` or `executeBatch` makes, deploying the account first when
    /// `deploys_account`.
    External {
        /// The calls.
        calls: &'a [Interaction],
        /// Whether the operation deploys the account.
        deploys_account: bool,
    },
}

/// Why a policy will not sponsor an operation. Each names the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The policy is disabled.
    #[error("policy {policy} is disabled")]
    Disabled {
        /// The policy.
        policy: PolicyId,
    },
    /// The policy is for another chain.
    #[error("policy {policy} sponsors on chain {policy_chain}, not on chain {chain}")]
    WrongChain {
        /// The policy.
        policy: PolicyId,
        /// Its chain.
        policy_chain: u64,
        /// This daemon's chain.
        chain: u64,
    },
    /// No contract-functions entry covers a call.
    #[error(
        "interactions[{index}] calls selector {selector} on {target}, which no contract_functions rule of policy {policy} covers"
    )]
    CallNotCovered {
        /// The policy.
        policy: PolicyId,
        /// Index of the interaction.
        index: usize,
        /// Its target.
        target: Address,
        /// Its selector (0x00000000 for a plain transfer).
        selector: FixedBytes<4>,
    },
    /// No account-functions rule covers an account function.
    #[error("no account_functions rule of policy {policy} covers {}", function.name())]
    AccountFunctionNotCovered {
        /// The policy.
        policy: PolicyId,
        /// The function.
        function: AccountFunction,
    },
    /// The operation may use more gas than one operation may.
    #[error(
        "rules[{rule}] gas_per_operation: the operation's gas limits add up to {gas}, over the limit of {max_gas}"
    )]
    GasPerOperation {
        /// Index of the rule.
        rule: usize,
        /// The operation's gas.
        gas: u128,
        /// The limit.
        max_gas: u64,
    },
    /// An interval's limit is reached.
    #[error(
        "rules[{rule}] {kind}: {used} of {limit} used in the interval ending at {window_end_ms} (unix ms), and this operation needs {requested}"
    )]
    LimitReached {
        /// Index of the rule.
        rule: usize,
        /// The rule's kind.
        kind: &'static str,
        /// What the interval has used (operations, gas or wei), counting operations on
        /// their way.
        used: u128,
        /// What this operation needs.
        requested: u128,
        /// The limit.
        limit: u128,
        /// When the interval ends, unix ms.
        window_end_ms: u64,
    },
}

impl Refusal {
    /// The rule that refused, as a short stable name for clients and metrics.
    pub fn rule(&self) -> &'static str {
        match self {
            Self::Disabled { .. } => "policy_disabled",
            Self::WrongChain { .. } => "policy_chain",
            Self::CallNotCovered { .. } => "contract_functions",
            Self::AccountFunctionNotCovered { .. } => "account_functions",
            Self::GasPerOperation { .. } => "gas_per_operation",
            Self::LimitReached { kind, .. } => kind,
        }
    }

    /// The stable machine-readable reason of the refusal.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Disabled { .. } => "POLICY_DISABLED",
            Self::WrongChain { .. } => "POLICY_WRONG_CHAIN",
            Self::CallNotCovered { .. } | Self::AccountFunctionNotCovered { .. } => {
                "POLICY_CALL_NOT_COVERED"
            }
            Self::GasPerOperation { .. } => "POLICY_GAS_PER_OPERATION_EXCEEDED",
            Self::LimitReached { .. } => "POLICY_LIMIT_REACHED",
        }
    }
}

impl Policy {
    /// Checks the policy's own shape: a name, a chain, rules that can match something and
    /// limits that are positive.
    pub fn validate(&self) -> Result<(), InvalidPolicy> {
        let invalid = |field: String, reason: &str| InvalidPolicy {
            field,
            reason: reason.to_owned(),
        };
        let name = self.name.trim();
        if name.is_empty() || self.name.chars().count() > 128 || name.len() != self.name.len() {
            return Err(invalid(
                "display_name".into(),
                "1 to 128 characters, without leading or trailing spaces",
            ));
        }
        if self.name.chars().any(char::is_control) {
            return Err(invalid(
                "display_name".into(),
                "must not contain control characters",
            ));
        }
        if self.chain_id == 0 {
            return Err(invalid("chain_id".into(), "must be a chain id, not 0"));
        }
        if self.rules.is_empty() || self.rules.len() > MAX_RULES {
            return Err(invalid(
                "rules".into(),
                "1 to 32 rules; a policy without rules would sponsor nothing",
            ));
        }
        for (index, rule) in self.rules.iter().enumerate() {
            let field = |name: &str| format!("rules[{index}].{}.{name}", rule.kind());
            match rule {
                Rule::ContractFunctions(entries)
                    if entries.is_empty() || entries.len() > MAX_CONTRACT_FUNCTIONS =>
                {
                    return Err(invalid(field("functions"), "1 to 256 entries"));
                }
                Rule::AccountFunctions(functions) if functions.is_empty() => {
                    return Err(invalid(
                        format!("rules[{index}].account_functions"),
                        "at least one of register_session, revoke_session, deploy_account",
                    ));
                }
                Rule::OperationsPerInterval { max_operations, .. } if *max_operations == 0 => {
                    return Err(invalid(field("max_operations"), "must be at least 1"));
                }
                Rule::GasPerInterval { max_gas, .. } | Rule::GasPerOperation { max_gas }
                    if *max_gas == 0 =>
                {
                    return Err(invalid(field("max_gas"), "must be at least 1"));
                }
                Rule::SpendPerInterval { max_wei, .. } if *max_wei == 0 => {
                    return Err(invalid(field("max_wei"), "must be at least 1"));
                }
                _ => {}
            }
            if let Some(interval) = rule.interval_secs()
                && !(1..=MAX_INTERVAL_SECS).contains(&interval)
            {
                return Err(invalid(field("interval_seconds"), "1 second to 366 days"));
            }
        }
        Ok(())
    }

    /// Checks everything about `operation` that does not depend on other operations: the
    /// policy is enabled and on `chain_id`, and its function rules cover the operation. A
    /// revocation passes a disabled policy: disabling a policy must never leave its
    /// sessions' keys irrevocable.
    pub fn check(&self, operation: Operation<'_>, chain_id: u64) -> Result<(), Refusal> {
        if !self.enabled && !matches!(operation, Operation::Revocation) {
            return Err(Refusal::Disabled {
                policy: self.id.clone(),
            });
        }
        if self.chain_id != chain_id {
            return Err(Refusal::WrongChain {
                policy: self.id.clone(),
                policy_chain: self.chain_id,
                chain: chain_id,
            });
        }
        match operation {
            Operation::Calls(interactions) => self.check_calls(interactions),
            Operation::External {
                calls,
                deploys_account,
            } => {
                if deploys_account {
                    self.check_account_function(AccountFunction::DeployAccount)?;
                }
                self.check_calls(calls)
            }
            Operation::Registration { deploys_account } => {
                self.check_account_function(AccountFunction::RegisterSession)?;
                if deploys_account {
                    self.check_account_function(AccountFunction::DeployAccount)?;
                }
                Ok(())
            }
            Operation::Revocation => self.check_account_function(AccountFunction::RevokeSession),
        }
    }

    /// Whether every one of `interactions` is covered by a contract-function rule.
    fn check_calls(&self, interactions: &[Interaction]) -> Result<(), Refusal> {
        for (index, interaction) in interactions.iter().enumerate() {
            // Calldata too short for a selector is covered by no entry but `*`.
            let callee = interaction
                .callee()
                .unwrap_or(Callee::Function(FixedBytes::ZERO));
            let selector = callee.selector();
            let covered = self.rules.iter().any(|rule| match rule {
                Rule::ContractFunctions(entries) => entries
                    .iter()
                    .any(|entry| entry.covers(interaction.to, callee)),
                _ => false,
            });
            if !covered {
                return Err(Refusal::CallNotCovered {
                    policy: self.id.clone(),
                    index,
                    target: interaction.to,
                    selector,
                });
            }
        }
        Ok(())
    }

    /// Checks an operation's total gas (every gas limit it carries, the paymaster's
    /// included) against the gas-per-operation rules.
    pub fn check_gas(&self, gas: u128) -> Result<(), Refusal> {
        for (rule, entry) in self.rules.iter().enumerate() {
            if let Rule::GasPerOperation { max_gas } = entry
                && gas > u128::from(*max_gas)
            {
                return Err(Refusal::GasPerOperation {
                    rule,
                    gas,
                    max_gas: *max_gas,
                });
            }
        }
        Ok(())
    }

    /// The interval each limit over time is in at `now_ms`: what a new operation is charged
    /// to.
    pub fn windows_at(&self, now_ms: u64) -> Vec<WindowKey> {
        let elapsed = now_ms.saturating_sub(self.created_at_ms);
        self.rules
            .iter()
            .enumerate()
            .filter_map(|(rule, entry)| {
                let interval_ms = entry.interval_secs()?.saturating_mul(1000).max(1);
                Some(WindowKey {
                    rule: u16::try_from(rule).ok()?,
                    index: elapsed / interval_ms,
                })
            })
            .collect()
    }

    /// Admits an operation that asks for `requested` against the limits, given what each of
    /// its intervals has used so far (`used` answers for each [`WindowKey`] of the
    /// operation's charge). A revocation is always admitted.
    pub fn admit(
        &self,
        charge: &Charge,
        used: impl Fn(WindowKey) -> Amount,
    ) -> Result<(), Refusal> {
        if charge.revocation {
            return Ok(());
        }
        let requested = charge.reserved;
        for window in &charge.windows {
            let rule = usize::from(window.rule);
            let Some(entry) = self.rules.get(rule) else {
                continue;
            };
            let so_far = used(*window);
            let (used_amount, asked, limit) = match entry {
                Rule::OperationsPerInterval { max_operations, .. } => (
                    u128::from(so_far.operations),
                    u128::from(requested.operations),
                    u128::from(*max_operations),
                ),
                Rule::GasPerInterval { max_gas, .. } => {
                    (so_far.gas, requested.gas, u128::from(*max_gas))
                }
                Rule::SpendPerInterval { max_wei, .. } => (so_far.wei, requested.wei, *max_wei),
                _ => continue,
            };
            if used_amount.saturating_add(asked) > limit {
                let interval_ms = entry
                    .interval_secs()
                    .unwrap_or_default()
                    .saturating_mul(1000);
                return Err(Refusal::LimitReached {
                    rule,
                    kind: entry.kind(),
                    used: used_amount,
                    requested: asked,
                    limit,
                    window_end_ms: self
                        .created_at_ms
                        .saturating_add(window.index.saturating_add(1).saturating_mul(interval_ms)),
                });
            }
        }
        Ok(())
    }

    fn check_account_function(&self, function: AccountFunction) -> Result<(), Refusal> {
        let covered = self.rules.iter().any(|rule| match rule {
            Rule::AccountFunctions(functions) => functions.contains(&function),
            _ => false,
        });
        if covered {
            Ok(())
        } else {
            Err(Refusal::AccountFunctionNotCovered {
                policy: self.id.clone(),
                function,
            })
        }
    }
}

#[cfg(test)]
mod tests;
