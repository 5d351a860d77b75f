//! A contract call, and which calls a rule covers: what intents carry, sessions allow,
//! policies sponsor and the chain encodes, so it sits below all of them.

use alloy::primitives::{Address, Bytes, FixedBytes, U256};
use serde::{Deserialize, Serialize};

/// One contract call, with its calldata already encoded and validated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interaction {
    /// The contract called.
    pub to: Address,
    /// Native value sent, wei.
    pub value: U256,
    /// The calldata.
    pub data: Bytes,
    /// The function signature and arguments it came from, kept to echo back to clients.
    pub function: Option<(String, Vec<String>)>,
}

impl Interaction {
    /// The selector it calls: `0x00000000` for a plain value transfer (no calldata), and
    /// `None` for calldata too short to hold one.
    pub fn selector(&self) -> Option<FixedBytes<4>> {
        match self.data.len() {
            0 => Some(FixedBytes::ZERO),
            1..=3 => None,
            _ => Some(FixedBytes::from_slice(&self.data[..4])),
        }
    }
}

/// Which functions of a target an allowlist entry covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SelectorRule {
    /// One function, by selector; `0x00000000` is a plain value transfer.
    Exact(FixedBytes<4>),
    /// Every function of the target.
    Any,
}

impl SelectorRule {
    /// Whether the rule covers a call of `selector`.
    pub fn covers(self, selector: FixedBytes<4>) -> bool {
        match self {
            Self::Any => true,
            Self::Exact(allowed) => allowed == selector,
        }
    }
}
