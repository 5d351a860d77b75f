//! The bundler: user operations signed by any v0.8 account's own key, as the bundler
//! JSON-RPC takes them. Each is checked, simulated, and queued durably as an external
//! intent, which the relay then bundles, replaces, follows and settles like latchkey's own.
//! Gas estimates come from traced simulations of the same operation.
//!
//! What is refused is told as a [`BundlerRefusal`], whose variants follow the error codes of
//! ERC-7769; the JSON-RPC layer turns each into its code.

use alloy::{
    primitives::{Address, B256, U256},
    providers::Provider,
    rpc::types::state::{AccountOverride, StateOverride},
};
use tracing::info;

use super::App;
use crate::{
    auth::TenantId,
    chain::{
        ChainError, ops,
        revert::AaError,
        simulation::{self, SimulationError, TracedExecution, Validation},
        user_operation::UserOperation,
        validation_rules::{self, Entities, Violation},
    },
    clock::now_ms,
    intent::{Intent, IntentEvent, IntentId, IntentKind, IntentStatus},
    store::StoreError,
};

/// Settings of the bundler.
#[derive(Debug, Clone, Copy)]
pub struct BundlerConfig {
    /// Most operations of one sender on their way at once (one per nonce key).
    pub max_operations_per_sender: usize,
    /// Most gas one operation may ask for, every limit counted: what one bundle can hold.
    pub max_operation_gas: u128,
    /// Whether validation is traced and held to ERC-7562's rules (see
    /// [`crate::chain::validation_rules`]); without it, only the simulation's verdict counts.
    pub trace_validation: bool,
}

/// Why the bundler refused an operation or a request about one. Each variant is one of
/// ERC-7769's error codes (given in its doc), or a standard JSON-RPC one.
#[derive(Debug, thiserror::Error)]
pub enum BundlerRefusal {
    /// A field is wrong as given (-32602). `field` is the operation's field, as ERC-7769
    /// names it, or `entryPoint`.
    #[error("{field}: {message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong, and what is expected.
        message: String,
    },
    /// The EntryPoint's simulation refused it, for the account or the factory (-32500).
    #[error("{0}")]
    EntryPoint(Box<AaError>),
    /// The sponsoring policy refuses the operation (-32602, with the policy's reason).
    #[error("{0}")]
    PolicyRefused(String),
    /// The validation breaks an ERC-7562 rule (-32502).
    #[error("{0}")]
    RuleViolation(Violation),
    /// The simulation reverted with no `AAxx` refusal (-32500).
    #[error("the validation simulation reverted: {0}")]
    SimulationReverted(String),
    /// The paymaster's validation refused it (-32501).
    #[error("paymaster {paymaster}: {refusal}")]
    Paymaster {
        /// The paymaster.
        paymaster: Address,
        /// The EntryPoint's refusal.
        refusal: Box<AaError>,
    },
    /// The window the account's and paymaster's validation returned does not hold when it
    /// could be included (-32503).
    #[error(
        "valid from {valid_after} to {valid_until} (unix seconds), which does not hold at {at}, \
         the earliest time it could be included"
    )]
    OutOfTimeRange {
        /// The window's start.
        valid_after: u64,
        /// The window's end (`u64::MAX` for none).
        valid_until: u64,
        /// When it would be judged.
        at: u64,
        /// The paymaster, when its window is the one that fails.
        paymaster: Option<Address>,
    },
    /// Its sender already has as many operations on their way as it may (-32504).
    #[error(
        "sender {sender} already has {limit} operations on their way, the most one sender may: \
         wait for one to be included"
    )]
    SenderThrottled {
        /// The sender.
        sender: Address,
        /// The limit.
        limit: usize,
    },
    /// The account asks for a signature aggregator, which latchkey does not support
    /// (-32506).
    #[error("the account asks for signature aggregator {0}, which this bundler does not support")]
    UnsupportedAggregator(Address),
    /// The account's (or the paymaster's) signature check failed (-32507).
    #[error("{}", match paymaster {
        Some(paymaster) => format!("the signature check of paymaster {paymaster} failed"),
        None => "the account's signature check failed".to_owned(),
    })]
    SignatureFailed {
        /// The paymaster, when its check is the one that failed.
        paymaster: Option<Address>,
    },
    /// The paymaster's deposit cannot pay for the operation (-32508).
    #[error("paymaster {paymaster}: {refusal}")]
    PaymasterDepositTooLow {
        /// The paymaster.
        paymaster: Address,
        /// The EntryPoint's refusal (AA31).
        refusal: Box<AaError>,
    },
    /// Its execution reverts, so no gas estimate would make it succeed (-32521).
    #[error("execution reverted: {0}")]
    ExecutionReverted(String),
    /// The chain or the store failed: the request may be retried (-32603).
    #[error("{0}")]
    Unavailable(String),
}

impl From<ChainError> for BundlerRefusal {
    fn from(error: ChainError) -> Self {
        Self::Unavailable(format!("the chain failed: {error}"))
    }
}

impl From<StoreError> for BundlerRefusal {
    fn from(error: StoreError) -> Self {
        Self::Unavailable(format!("the store failed: {error}"))
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> BundlerRefusal {
    BundlerRefusal::Invalid {
        field,
        message: message.into(),
    }
}

/// The gas limits an estimate gives an operation, each as ERC-7769 names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GasEstimate {
    /// `preVerificationGas`.
    pub pre_verification_gas: U256,
    /// `verificationGasLimit`.
    pub verification_gas_limit: u128,
    /// `callGasLimit`.
    pub call_gas_limit: u128,
    /// `paymasterVerificationGasLimit` (0 without a paymaster).
    pub paymaster_verification_gas_limit: u128,
    /// `paymasterPostOpGasLimit` (0 without a paymaster).
    pub paymaster_post_op_gas_limit: u128,
}

/// The fees an operation must offer to be accepted now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GasPrice {
    /// The least `maxFeePerGas` accepted now: the latest block's base fee, doubled for the
    /// blocks it may wait, plus the priority fee.
    pub max_fee_per_gas: u128,
    /// The least `maxPriorityFeePerGas` accepted: what the relayers pay the block's
    /// producer.
    pub max_priority_fee_per_gas: u128,
}

/// Gas the simulations give each phase while measuring it: far more than any operation
/// needs, and together well inside a 30M block.
const MEASURING_VERIFICATION_GAS: u128 = 5_000_000;
const MEASURING_CALL_GAS: u128 = 10_000_000;
const MEASURING_PAYMASTER_GAS: u128 = 2_000_000;

/// The balance a sender is given while its operation is estimated: a million ether.
const ESTIMATING_BALANCE: U256 = U256::from_limbs([0x1bce_cced_a100_0000, 0xd3c2, 0, 0]);

/// What the EntryPoint spends inside the verification limit besides the account's
/// `validateUserOp` and the deployment: the nonce, the hash, the deposit's bookkeeping.
const VERIFICATION_OVERHEAD: u128 = 25_000;

/// How many times an estimate whose limits fail their own check is raised and tried again.
const ESTIMATE_ATTEMPTS: usize = 3;

impl App {
    /// The EntryPoint the bundler serves; any other is refused.
    pub fn entry_point(&self) -> Address {
        self.chain().deployment().entry_point
    }

    /// The fees an operation must offer to be accepted now (see [`GasPrice`]).
    pub async fn user_operation_gas_price(&self) -> Result<GasPrice, BundlerRefusal> {
        let fees = self.chain().fees().await?;
        Ok(GasPrice {
            max_fee_per_gas: fees.max_fee_per_gas,
            max_priority_fee_per_gas: fees.max_priority_fee_per_gas,
        })
    }

    /// Accepts `op`, sent to `entry_point` by `tenant`: checked, simulated and stored
    /// QUEUED for the relay in one write. Returns its userOpHash.
    pub async fn send_user_operation(
        &self,
        tenant: &TenantId,
        op: UserOperation,
        entry_point: Address,
    ) -> Result<B256, BundlerRefusal> {
        self.check_entry_point(entry_point)?;
        self.check_gas(&op)?;
        self.check_fees(&op).await?;
        let hash = op
            .hash_v08(entry_point, self.chain().chain_id())
            .map_err(|error| invalid("factory", error.to_string()))?;
        let open = self
            .store()
            .intents_by_user_op_hash(hash)
            .await?
            .into_iter()
            .find(|intent| !intent.status.is_final());
        // The paymaster service's approval of this very operation waits for it: the
        // signature completes that intent, which already holds the nonce key and the
        // policy's charge.
        let approved = match open {
            Some(intent)
                if intent.status == IntentStatus::PendingSignature
                    && intent.kind == IntentKind::External
                    && &intent.tenant == tenant =>
            {
                Some(intent)
            }
            Some(existing) => {
                return Err(invalid(
                    "userOperation",
                    format!(
                        "this operation ({hash}) was already accepted and is {}",
                        existing.status.api_name()
                    ),
                ));
            }
            None => None,
        };
        let limit = self.bundler_config().max_operations_per_sender;
        if approved.is_none() && self.store().open_external_operations(op.sender).await? >= limit {
            return Err(BundlerRefusal::SenderThrottled {
                sender: op.sender,
                limit,
            });
        }
        let validation = self.validated(&op, &StateOverride::default()).await?;
        let at = self.chain().inclusion_time().await?;
        self.check_window(&op, &validation, at)?;
        let (_, valid_until) = validation.window();
        let valid_until = (valid_until != u64::MAX).then_some(valid_until);
        if let Some(mut intent) = approved {
            intent.user_op.signature = op.signature;
            intent.valid_until = valid_until;
            intent.signature_deadline_ms = None;
            intent
                .apply(&IntentEvent::Signed, now_ms())
                .map_err(|error| BundlerRefusal::Unavailable(error.to_string()))?;
            match self.store().save(&mut [], &mut [&mut intent]).await {
                Ok(()) => {}
                Err(StoreError::Conflict { .. }) => {
                    return Err(invalid(
                        "userOperation",
                        "its approval changed while it was being signed (it expired or was                          replaced): ask the paymaster service again",
                    ));
                }
                Err(error) => return Err(error.into()),
            }
            self.store().flush().await?;
            info!(target: "bundler", intent = %intent.id, user_op_hash = %hash, sender = %intent.account, "sponsored user operation accepted");
            return Ok(hash);
        }
        let mut intent = Intent::external(
            IntentId::generate(),
            tenant.clone(),
            self.chain().chain_id(),
            (op, hash),
            entry_point,
            valid_until,
            now_ms(),
        );
        match self.store().create_external(&mut intent).await {
            Ok(()) => {}
            Err(StoreError::NonceKeyInUse {
                nonce_key,
                existing,
                ..
            }) => {
                return Err(invalid(
                    "nonce",
                    format!(
                        "operation {existing} of this sender is already on its way under nonce \
                         key {nonce_key:#x}; wait for it, or use another nonce key"
                    ),
                ));
            }
            Err(error) => return Err(error.into()),
        }
        self.store().flush().await?;
        info!(target: "bundler", intent = %intent.id, user_op_hash = %hash, sender = %intent.account, "user operation accepted");
        Ok(hash)
    }

    /// Gas limits for `op` (whose own limits and fees are ignored), sent to `entry_point`,
    /// with `overrides` applied to the state it is simulated on: each phase measured in a
    /// traced simulation, given a margin, and checked by simulating again with the limits
    /// found.
    pub async fn estimate_user_operation_gas(
        &self,
        mut op: UserOperation,
        entry_point: Address,
        overrides: &StateOverride,
    ) -> Result<GasEstimate, BundlerRefusal> {
        self.check_entry_point(entry_point)?;
        // Validation pays the prefund out of the account (unless a paymaster pays), which
        // costs gas of its own, so the operation is measured with real fees: its own, or
        // those accepted now. The sender is given a balance to pay with, unless the caller
        // overrode its state, so that an account can be estimated before it is funded.
        if op.max_fee_per_gas == 0 {
            let price = self.user_operation_gas_price().await?;
            op.max_fee_per_gas = price.max_fee_per_gas;
            op.max_priority_fee_per_gas = price.max_priority_fee_per_gas;
        }
        let mut overrides = overrides.clone();
        overrides
            .entry(op.sender)
            .or_insert_with(|| AccountOverride {
                balance: Some(ESTIMATING_BALANCE),
                ..AccountOverride::default()
            });
        let overrides = &overrides;
        op.pre_verification_gas = pre_verification_gas_for_any_limits(&op);
        let mut measuring = op.clone();
        measuring.verification_gas_limit = MEASURING_VERIFICATION_GAS;
        measuring.call_gas_limit = MEASURING_CALL_GAS;
        if op.paymaster.is_some() {
            measuring.paymaster_verification_gas_limit = MEASURING_PAYMASTER_GAS;
            measuring.paymaster_post_op_gas_limit = MEASURING_PAYMASTER_GAS;
        }
        let measured = self.traced(&measuring, overrides).await?;
        let gas = measured.gas;
        let with_margin = |used: u64, extra: u128| {
            let used = u128::from(used);
            used.saturating_add(used / 5).saturating_add(extra)
        };
        let mut estimate = GasEstimate {
            pre_verification_gas: op.pre_verification_gas,
            verification_gas_limit: with_margin(
                gas.deployment.saturating_add(gas.account_validation),
                VERIFICATION_OVERHEAD,
            ),
            call_gas_limit: with_margin(gas.execution, 10_000),
            paymaster_verification_gas_limit: if op.paymaster.is_some() {
                with_margin(gas.paymaster_validation, 10_000)
            } else {
                0
            },
            paymaster_post_op_gas_limit: match (op.paymaster, gas.post_op) {
                (None, _) => 0,
                (Some(_), 0) => 0,
                (Some(_), used) => with_margin(used, 5_000),
            },
        };
        for attempt in 1..=ESTIMATE_ATTEMPTS {
            let mut checked = op.clone();
            apply(&mut checked, &estimate);
            match self.traced(&checked, overrides).await {
                Ok(trace) if trace.executed && trace.execution_error.is_none() => {
                    return Ok(estimate);
                }
                Ok(_) if attempt < ESTIMATE_ATTEMPTS => {
                    estimate.call_gas_limit = estimate.call_gas_limit.saturating_mul(3) / 2;
                }
                Err(
                    BundlerRefusal::EntryPoint(refusal) | BundlerRefusal::Paymaster { refusal, .. },
                ) if attempt < ESTIMATE_ATTEMPTS && is_out_of_gas(&refusal) => {
                    estimate.verification_gas_limit =
                        estimate.verification_gas_limit.saturating_mul(3) / 2;
                    estimate.paymaster_verification_gas_limit =
                        estimate.paymaster_verification_gas_limit.saturating_mul(3) / 2;
                }
                Ok(trace) => {
                    return Err(BundlerRefusal::ExecutionReverted(
                        trace
                            .execution_error
                            .unwrap_or_else(|| "the execution was never reached".to_owned()),
                    ));
                }
                Err(error) => return Err(error),
            }
        }
        Err(BundlerRefusal::Unavailable(
            "no gas limits found that pass their own simulation".to_owned(),
        ))
    }

    /// The intent whose operation has userOpHash `hash`, if `tenant` (every tenant's for
    /// `None`) has one: the newest.
    pub async fn user_operation(
        &self,
        tenant: Option<&TenantId>,
        hash: B256,
    ) -> Result<Option<Intent>, BundlerRefusal> {
        Ok(self
            .store()
            .intents_by_user_op_hash(hash)
            .await?
            .into_iter()
            .find(|intent| tenant.is_none_or(|tenant| &intent.tenant == tenant)))
    }

    fn bundler_config(&self) -> BundlerConfig {
        self.config().bundler
    }

    fn check_entry_point(&self, entry_point: Address) -> Result<(), BundlerRefusal> {
        if entry_point != self.entry_point() {
            return Err(invalid(
                "entryPoint",
                format!(
                    "{entry_point} is not served here: the supported EntryPoint is {} (v0.8)",
                    self.entry_point()
                ),
            ));
        }
        Ok(())
    }

    fn check_gas(&self, op: &UserOperation) -> Result<(), BundlerRefusal> {
        let required = ops::pre_verification_gas(op);
        if op.pre_verification_gas < required {
            return Err(invalid(
                "preVerificationGas",
                format!(
                    "{} is below the {required} this operation's calldata and overhead cost; \
                     eth_estimateUserOperationGas gives it",
                    op.pre_verification_gas
                ),
            ));
        }
        let max = self.bundler_config().max_operation_gas;
        let total = ops::total_gas(op);
        if total > max {
            return Err(invalid(
                "callGasLimit",
                format!(
                    "the operation's gas limits add up to {total}, above the {max} one bundle \
                     may hold"
                ),
            ));
        }
        if op.signature.is_empty() {
            return Err(invalid(
                "signature",
                "is empty: the operation must be signed",
            ));
        }
        Ok(())
    }

    async fn check_fees(&self, op: &UserOperation) -> Result<(), BundlerRefusal> {
        if op.max_priority_fee_per_gas > op.max_fee_per_gas {
            return Err(invalid(
                "maxPriorityFeePerGas",
                format!(
                    "{} is above maxFeePerGas, {}",
                    op.max_priority_fee_per_gas, op.max_fee_per_gas
                ),
            ));
        }
        let latest = self
            .chain()
            .provider()
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await
            .map_err(ChainError::from)?
            .ok_or(ChainError::NoLatestBlock)?;
        let base_fee = u128::from(latest.header.base_fee_per_gas.unwrap_or_default());
        let price = self.user_operation_gas_price().await?;
        if op.max_priority_fee_per_gas < price.max_priority_fee_per_gas {
            return Err(invalid(
                "maxPriorityFeePerGas",
                format!(
                    "{} is below the {} the relayers pay; pimlico_getUserOperationGasPrice \
                     gives the fees accepted now",
                    op.max_priority_fee_per_gas, price.max_priority_fee_per_gas
                ),
            ));
        }
        let floor = base_fee.saturating_add(price.max_priority_fee_per_gas);
        if op.max_fee_per_gas < floor {
            return Err(invalid(
                "maxFeePerGas",
                format!(
                    "{} is below the {floor} of the latest block's base fee and the priority fee; \
                     pimlico_getUserOperationGasPrice gives the fees accepted now",
                    op.max_fee_per_gas
                ),
            ));
        }
        Ok(())
    }

    /// `op` through `simulateValidation`, its signature and aggregator checked.
    async fn validated(
        &self,
        op: &UserOperation,
        overrides: &StateOverride,
    ) -> Result<Validation, BundlerRefusal> {
        let provider = self.chain().provider();
        let validation = if self.bundler_config().trace_validation {
            let (validation, traced) =
                simulation::validate_traced(provider, self.entry_point(), op, overrides)
                    .await
                    .map_err(|error| simulation_refusal(error, op.paymaster))?;
            let entities = Entities {
                sender: op.sender,
                factory: op.factory,
                paymaster: op.paymaster,
                entry_point: self.entry_point(),
                sender_staked: validation.staked.sender,
                factory_staked: validation.staked.factory,
                paymaster_staked: validation.staked.paymaster,
            };
            validation_rules::check(&traced, &entities).map_err(BundlerRefusal::RuleViolation)?;
            validation
        } else {
            simulation::validate(provider, self.entry_point(), op, overrides)
                .await
                .map_err(|error| simulation_refusal(error, op.paymaster))?
        };
        if let Some(aggregator) = validation.account.aggregator {
            return Err(BundlerRefusal::UnsupportedAggregator(aggregator));
        }
        if validation.account.signature_failed {
            return Err(BundlerRefusal::SignatureFailed { paymaster: None });
        }
        if validation.paymaster.signature_failed || validation.paymaster.aggregator.is_some() {
            return Err(BundlerRefusal::SignatureFailed {
                paymaster: op.paymaster,
            });
        }
        Ok(validation)
    }

    /// Refuses an operation whose window does not hold at `at`, or closes before the relay
    /// could still send it.
    fn check_window(
        &self,
        op: &UserOperation,
        validation: &Validation,
        at: u64,
    ) -> Result<(), BundlerRefusal> {
        let margin = self.config().window_margin_secs;
        let (valid_after, valid_until) = validation.window();
        let open = valid_after <= at && at.saturating_add(margin) <= valid_until;
        if open {
            return Ok(());
        }
        let account_holds = validation.account.valid_after <= at
            && at.saturating_add(margin) <= validation.account.valid_until;
        Err(BundlerRefusal::OutOfTimeRange {
            valid_after,
            valid_until,
            at,
            paymaster: if account_holds { op.paymaster } else { None },
        })
    }

    async fn traced(
        &self,
        op: &UserOperation,
        overrides: &StateOverride,
    ) -> Result<TracedExecution, BundlerRefusal> {
        simulation::trace_execution(self.chain().provider(), self.entry_point(), op, overrides)
            .await
            .map_err(|error| simulation_refusal(error, op.paymaster))
    }
}

/// The `preVerificationGas` `op` needs whatever gas limits and fees it is then given: its
/// calldata costs 16 gas a non-zero byte, so the estimate is reckoned with each limit four
/// bytes long and each fee six (up to 281 Twei), more than any real operation carries.
fn pre_verification_gas_for_any_limits(op: &UserOperation) -> U256 {
    let mut sized = op.clone();
    sized.call_gas_limit = u128::from(u32::MAX);
    sized.verification_gas_limit = u128::from(u32::MAX);
    sized.pre_verification_gas = U256::from(u32::MAX);
    sized.max_fee_per_gas = (1 << 48) - 1;
    sized.max_priority_fee_per_gas = (1 << 48) - 1;
    if sized.paymaster.is_some() {
        sized.paymaster_verification_gas_limit = u128::from(u32::MAX);
        sized.paymaster_post_op_gas_limit = u128::from(u32::MAX);
    }
    ops::pre_verification_gas(&sized)
}

/// `op`'s gas limits set to `estimate`'s.
fn apply(op: &mut UserOperation, estimate: &GasEstimate) {
    op.pre_verification_gas = estimate.pre_verification_gas;
    op.verification_gas_limit = estimate.verification_gas_limit;
    op.call_gas_limit = estimate.call_gas_limit;
    op.paymaster_verification_gas_limit = estimate.paymaster_verification_gas_limit;
    op.paymaster_post_op_gas_limit = estimate.paymaster_post_op_gas_limit;
}

/// Whether the EntryPoint refused an operation for running out of a verification limit.
fn is_out_of_gas(refusal: &AaError) -> bool {
    matches!(refusal.code, "AA13" | "AA26" | "AA36" | "AA40" | "AA41")
        || refusal.message.contains("out of gas")
}

/// The refusal a failed simulation of an operation with `paymaster` stands for: the
/// paymaster's codes (AA3x) are its own, AA31 its deposit.
fn simulation_refusal(error: SimulationError, paymaster: Option<Address>) -> BundlerRefusal {
    match error {
        SimulationError::Refused(refusal) => match (paymaster, refusal.code) {
            (Some(paymaster), "AA31") => {
                BundlerRefusal::PaymasterDepositTooLow { paymaster, refusal }
            }
            (Some(paymaster), code) if code.starts_with("AA3") => {
                BundlerRefusal::Paymaster { paymaster, refusal }
            }
            _ => BundlerRefusal::EntryPoint(refusal),
        },
        SimulationError::Reverted(reason) => BundlerRefusal::SimulationReverted(reason.to_string()),
        SimulationError::Chain(error) => error.into(),
    }
}

/// The status an intent's operation is in, as the bundler JSON-RPC reports it: whether it
/// has a receipt yet.
pub fn has_receipt(intent: &Intent) -> bool {
    matches!(
        intent.status,
        IntentStatus::Included | IntentStatus::Confirmed | IntentStatus::Reverted
    ) && intent.result.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimating_balance_is_a_million_ether() {
        assert_eq!(ESTIMATING_BALANCE, U256::from(10u128.pow(24)));
    }

    #[test]
    fn the_preverification_gas_of_an_estimate_covers_real_limits_and_fees() {
        let op = UserOperation {
            call_data: vec![0xab; 100].into(),
            signature: vec![0xcd; 65].into(),
            ..UserOperation::default()
        };
        let estimated = pre_verification_gas_for_any_limits(&op);
        let mut real = op.clone();
        real.call_gas_limit = 1_234_567;
        real.verification_gas_limit = 9_876_543;
        real.pre_verification_gas = estimated;
        real.max_fee_per_gas = 150_000_000_000;
        real.max_priority_fee_per_gas = 2_000_000_000;
        assert!(ops::pre_verification_gas(&real) <= estimated);
    }
}
