//! One user operation simulated as a bundler must before it accepts or prices it: the
//! EntryPoint package's EntryPointSimulations, run in place of the EntryPoint by a state
//! override (it is never deployed), through `eth_call` to validate and `debug_traceCall`
//! with the call tracer to measure the gas of each phase.
//!
//! Any v0.8 account can be simulated; nothing here knows latchkey's own.

use std::collections::BTreeMap;

use alloy::{
    primitives::{Address, Bytes, U256},
    providers::{DynProvider, Provider},
    rpc::types::{
        TransactionRequest,
        state::{AccountOverride, StateOverride},
    },
    sol_types::SolCall,
};
use serde::Deserialize;

use super::{
    ChainError,
    contracts::{
        EntryPoint,
        simulations::{EntryPointSimulations, packed, runtime_code},
    },
    revert::{AaError, RevertReason, decode_handle_ops_revert},
    user_operation::UserOperation,
    validation_rules::{TracedValidation, tracer},
};

/// What an account's or paymaster's validation returned, unpacked from its 256-bit
/// `validationData`: an aggregator (or the signature-failed marker) and a time window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ValidationData {
    /// The signature check failed (the aggregator field is 1).
    pub signature_failed: bool,
    /// A signature aggregator the operation asks for (any other non-zero value).
    pub aggregator: Option<Address>,
    /// The operation is valid from this time on (unix seconds); 0 for no lower bound.
    pub valid_after: u64,
    /// The operation is valid up to and including this time (unix seconds); `u64::MAX`
    /// for no deadline (a 0 in the data).
    pub valid_until: u64,
}

impl ValidationData {
    /// Unpacks `word`: aggregator in the low 20 bytes, `validUntil` in the next 6, then
    /// `validAfter` in the next 6; a `validUntil` of 0 means no deadline.
    pub fn unpack(word: U256) -> Self {
        let bytes = word.to_be_bytes::<32>();
        let aggregator = Address::from_slice(&bytes[12..]);
        let six = |range: std::ops::Range<usize>| {
            bytes[range]
                .iter()
                .fold(0u64, |value, byte| (value << 8) | u64::from(*byte))
        };
        let valid_until = match six(6..12) {
            0 => u64::MAX,
            until => until,
        };
        let marker = U256::from_be_slice(aggregator.as_slice());
        Self {
            signature_failed: marker == U256::from(1),
            aggregator: (marker > U256::from(1)).then_some(aggregator),
            valid_after: six(0..6),
            valid_until,
        }
    }

    /// Whether the window holds at `time` (unix seconds).
    pub fn holds_at(&self, time: u64) -> bool {
        self.valid_after <= time && time <= self.valid_until
    }
}

/// What `simulateValidation` says of an operation that passed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validation {
    /// The account's validation data.
    pub account: ValidationData,
    /// The paymaster's, when the operation has one (all-open otherwise).
    pub paymaster: ValidationData,
    /// The gas the validation phase used, `preVerificationGas` included.
    pub pre_op_gas: U256,
    /// The prefund the EntryPoint takes from the deposit before execution, wei.
    pub prefund: U256,
    /// Whether the EntryPoint holds a stake, with at least ERC-7562's unstake delay, for
    /// the sender, the factory and the paymaster.
    pub staked: Staked,
}

/// Which entities of an operation are staked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Staked {
    /// The account.
    pub sender: bool,
    /// The factory.
    pub factory: bool,
    /// The paymaster.
    pub paymaster: bool,
}

fn is_staked(info: &crate::chain::contracts::simulations::IStakeManager::StakeInfo) -> bool {
    info.stake > U256::ZERO
        && info.unstakeDelaySec >= U256::from(super::validation_rules::MIN_UNSTAKE_DELAY_SECS)
}

impl Validation {
    /// The window both validations leave: the later start, the earlier end.
    pub fn window(&self) -> (u64, u64) {
        (
            self.account.valid_after.max(self.paymaster.valid_after),
            self.account.valid_until.min(self.paymaster.valid_until),
        )
    }
}

/// Why a simulation refused an operation, or could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimulationError {
    /// The EntryPoint refused it (`FailedOp`, `FailedOpWithRevert`, or an `AAxx` require).
    #[error("{0}")]
    Refused(Box<AaError>),
    /// The simulation reverted with something that is no EntryPoint refusal.
    #[error("the simulation reverted: {0}")]
    Reverted(RevertReason),
    /// The node failed, or answered with something that cannot be read.
    #[error(transparent)]
    Chain(#[from] ChainError),
}

/// The state overrides every simulation runs with: `extra` (a caller's), then the
/// EntryPoint's code replaced by EntryPointSimulations'.
fn overrides(entry_point: Address, extra: &StateOverride) -> StateOverride {
    let mut state = extra.clone();
    state.insert(
        entry_point,
        AccountOverride {
            code: Some(runtime_code()),
            ..AccountOverride::default()
        },
    );
    state
}

/// The simulation's refusal in `data`, the revert data of a simulation call.
fn refusal(data: &[u8]) -> SimulationError {
    match decode_handle_ops_revert(data) {
        Some(refused) => SimulationError::Refused(Box::new(refused)),
        None => SimulationError::Reverted(RevertReason::decode(data)),
    }
}

/// Runs `simulateValidation` for `op` on the latest block, with `extra` state overrides.
pub async fn validate(
    provider: &DynProvider,
    entry_point: Address,
    op: &UserOperation,
    extra: &StateOverride,
) -> Result<Validation, SimulationError> {
    let call = EntryPointSimulations::simulateValidationCall {
        userOp: packed(op.pack()),
    };
    let request = TransactionRequest::default()
        .to(entry_point)
        .input(Bytes::from(call.abi_encode()).into());
    let output = match provider
        .call(request)
        .overrides(overrides(entry_point, extra))
        .latest()
        .await
    {
        Ok(output) => output,
        Err(error) => {
            return Err(
                match error
                    .as_error_resp()
                    .and_then(|payload| payload.as_revert_data())
                {
                    Some(data) => refusal(&data),
                    None => SimulationError::Chain(error.into()),
                },
            );
        }
    };
    decode_validation(&output)
}

/// Runs `simulateValidation` for `op` like [`validate`], under the tracer of
/// [`super::validation_rules`]: the validation, and what each entity did during it.
pub async fn validate_traced(
    provider: &DynProvider,
    entry_point: Address,
    op: &UserOperation,
    extra: &StateOverride,
) -> Result<(Validation, TracedValidation), SimulationError> {
    let call = EntryPointSimulations::simulateValidationCall {
        userOp: packed(op.pack()),
    };
    let request = TransactionRequest::default()
        .to(entry_point)
        .input(Bytes::from(call.abi_encode()).into());
    let options = serde_json::json!({
        "tracer": tracer(op.sender, entry_point),
        "stateOverrides": overrides(entry_point, extra),
    });
    let traced: TracedValidation = provider
        .raw_request("debug_traceCall".into(), (request, "latest", options))
        .await
        .map_err(ChainError::from)?;
    if traced.failed {
        return Err(refusal(&traced.output));
    }
    Ok((decode_validation(&traced.output)?, traced))
}

fn decode_validation(output: &[u8]) -> Result<Validation, SimulationError> {
    let result = EntryPointSimulations::simulateValidationCall::abi_decode_returns(output)
        .map_err(|error| ChainError::Decode(format!("simulateValidation's result: {error}")))?;
    Ok(Validation {
        account: ValidationData::unpack(result.returnInfo.accountValidationData),
        paymaster: ValidationData::unpack(result.returnInfo.paymasterValidationData),
        pre_op_gas: result.returnInfo.preOpGas,
        prefund: result.returnInfo.prefund,
        staked: Staked {
            sender: is_staked(&result.senderInfo),
            factory: is_staked(&result.factoryInfo),
            paymaster: is_staked(&result.paymasterInfo),
        },
    })
}

/// The gas each phase of an operation used in a traced `simulateHandleOp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PhaseGas {
    /// The factory's deployment of the sender (`createSender`), when there is one.
    pub deployment: u64,
    /// The account's `validateUserOp`.
    pub account_validation: u64,
    /// The paymaster's `validatePaymasterUserOp`.
    pub paymaster_validation: u64,
    /// The account's execution of `callData`.
    pub execution: u64,
    /// The paymaster's `postOp`.
    pub post_op: u64,
}

/// A traced `simulateHandleOp`: the gas of each phase, and the execution's failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracedExecution {
    /// The gas of each phase.
    pub gas: PhaseGas,
    /// Why the execution of `callData` failed, when it did (out of gas included).
    pub execution_error: Option<String>,
    /// Whether the execution call was reached at all.
    pub executed: bool,
}

/// One frame of the node's call tracer.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct CallFrame {
    #[serde(default)]
    to: Option<Address>,
    #[serde(default)]
    input: Bytes,
    #[serde(default)]
    output: Option<Bytes>,
    #[serde(default)]
    gas_used: U256,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    revert_reason: Option<String>,
    #[serde(default)]
    calls: Vec<CallFrame>,
}

impl CallFrame {
    fn selector(&self) -> Option<[u8; 4]> {
        self.input.get(..4)?.try_into().ok()
    }

    fn gas(&self) -> u64 {
        u64::try_from(self.gas_used).unwrap_or(u64::MAX)
    }

    /// Why the frame failed: the decoded revert when it carries one, else the tracer's error.
    fn failure(&self) -> Option<String> {
        let error = self.error.as_ref()?;
        let decoded = self
            .output
            .as_ref()
            .filter(|output| !output.is_empty())
            .map(|output| RevertReason::decode(output).to_string());
        Some(
            decoded
                .or_else(|| self.revert_reason.clone())
                .unwrap_or_else(|| error.clone()),
        )
    }
}

/// `validateUserOp(PackedUserOperation,bytes32,uint256)`, which every account implements.
const VALIDATE_USER_OP: [u8; 4] = [0x19, 0x82, 0x2f, 0x7c];
/// `validatePaymasterUserOp(PackedUserOperation,bytes32,uint256)`.
const VALIDATE_PAYMASTER_USER_OP: [u8; 4] = [0x52, 0xb7, 0x51, 0x2c];
/// `postOp(uint8,bytes,uint256,uint256)`.
const POST_OP: [u8; 4] = [0x7c, 0x62, 0x7b, 0x21];
/// `createSender(bytes)` of the EntryPoint's SenderCreator.
const CREATE_SENDER: [u8; 4] = [0x57, 0x0e, 0x1a, 0x36];

/// Runs `simulateHandleOp` for `op` under the call tracer, with `extra` state overrides,
/// and reads each phase's gas off the frames: the EntryPoint's calls to the
/// SenderCreator, the account and the paymaster, and inside its `innerHandleOp`, the
/// execution and `postOp`.
pub async fn trace_execution(
    provider: &DynProvider,
    entry_point: Address,
    op: &UserOperation,
    extra: &StateOverride,
) -> Result<TracedExecution, SimulationError> {
    let call = EntryPointSimulations::simulateHandleOpCall {
        op: packed(op.pack()),
        target: Address::ZERO,
        targetCallData: Bytes::new(),
    };
    let request = TransactionRequest::default()
        .to(entry_point)
        .input(Bytes::from(call.abi_encode()).into());
    let options = serde_json::json!({
        "tracer": "callTracer",
        "stateOverrides": overrides(entry_point, extra),
    });
    let root: CallFrame = provider
        .raw_request("debug_traceCall".into(), (request, "latest", options))
        .await
        .map_err(ChainError::from)?;
    if root.error.is_some() {
        let data = root.output.clone().unwrap_or_default();
        return Err(refusal(&data));
    }
    Ok(phases(&root, op.sender, entry_point))
}

/// Each phase's gas, from the frames of a traced `simulateHandleOp`.
fn phases(root: &CallFrame, sender: Address, entry_point: Address) -> TracedExecution {
    let mut gas = PhaseGas::default();
    let mut execution_error = None;
    let mut executed = false;
    let inner_handle_op = Some(EntryPoint::innerHandleOpCall::SELECTOR);
    for frame in &root.calls {
        match (frame.to, frame.selector()) {
            (_, Some(CREATE_SENDER)) => gas.deployment = gas.deployment.max(frame.gas()),
            (Some(to), Some(VALIDATE_USER_OP)) if to == sender => {
                gas.account_validation = frame.gas();
            }
            (_, Some(VALIDATE_PAYMASTER_USER_OP)) => gas.paymaster_validation = frame.gas(),
            (Some(to), selector) if to == entry_point && selector == inner_handle_op => {
                for inner in &frame.calls {
                    match (inner.to, inner.selector()) {
                        (_, Some(POST_OP)) => gas.post_op = inner.gas(),
                        (Some(to), _) if to == sender => {
                            executed = true;
                            gas.execution = inner.gas();
                            execution_error = inner.failure();
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    TracedExecution {
        gas,
        execution_error,
        executed,
    }
}

/// The state overrides of an `eth_estimateUserOperationGas` request, in the node's own
/// JSON shape (address to balance, nonce, code, state or stateDiff).
pub type StateOverrides = BTreeMap<Address, AccountOverride>;

/// `overrides` as the state override the simulations take.
pub fn state_override(overrides: StateOverrides) -> StateOverride {
    overrides.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_data_unpacks_its_three_fields() {
        let mut word = [0u8; 32];
        word[..6].copy_from_slice(&[0, 0, 0, 0, 0x01, 0x00]); // validAfter 256
        word[6..12].copy_from_slice(&[0, 0, 0, 0, 0x02, 0x00]); // validUntil 512
        word[31] = 1; // signature failed
        let data = ValidationData::unpack(U256::from_be_bytes(word));
        assert_eq!(
            data,
            ValidationData {
                signature_failed: true,
                aggregator: None,
                valid_after: 256,
                valid_until: 512,
            }
        );
        assert!(!data.holds_at(255));
        assert!(data.holds_at(256));
        assert!(data.holds_at(512));
        assert!(!data.holds_at(513));
    }

    #[test]
    fn a_zero_deadline_means_none_and_a_wide_marker_is_an_aggregator() {
        let open = ValidationData::unpack(U256::ZERO);
        assert_eq!(open.valid_until, u64::MAX);
        assert!(!open.signature_failed && open.aggregator.is_none());
        let aggregated = ValidationData::unpack(U256::from(0xabcdu64));
        assert_eq!(
            aggregated.aggregator,
            Some(Address::from_slice(
                &U256::from(0xabcdu64).to_be_bytes::<32>()[12..]
            ))
        );
    }

    #[test]
    fn the_phase_selectors_are_the_interfaces() {
        use alloy::sol_types::SolCall;

        use crate::chain::contracts::{SponsorPaymaster, simple_account::SimpleAccount};
        assert_eq!(
            SimpleAccount::validateUserOpCall::SELECTOR,
            VALIDATE_USER_OP
        );
        assert_eq!(
            SponsorPaymaster::validatePaymasterUserOpCall::SELECTOR,
            VALIDATE_PAYMASTER_USER_OP
        );
        assert_eq!(SponsorPaymaster::postOpCall::SELECTOR, POST_OP);
        assert_eq!(
            alloy::primitives::keccak256("createSender(bytes)")[..4],
            CREATE_SENDER
        );
    }
}
