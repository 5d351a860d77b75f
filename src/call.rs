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
    /// What it calls; `None` for calldata too short to hold a selector.
    pub fn callee(&self) -> Option<Callee> {
        match self.data.len() {
            0 => Some(Callee::Transfer),
            1..=3 => None,
            _ => Some(Callee::Function(FixedBytes::from_slice(&self.data[..4]))),
        }
    }

    /// The selector it calls: `0x00000000` for a plain value transfer (no calldata), and
    /// `None` for calldata too short to hold one.
    pub fn selector(&self) -> Option<FixedBytes<4>> {
        self.callee().map(Callee::selector)
    }
}

/// What a call invokes, as the account's allowlist tells them apart: a plain value transfer
/// (empty calldata), or a function by its selector. A function whose selector happens to
/// be `0x00000000` is not a transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Callee {
    /// Empty calldata: a plain value transfer.
    Transfer,
    /// Calldata that starts with this selector.
    Function(FixedBytes<4>),
}

impl Callee {
    /// The selector an allowlist names it by: `0x00000000` for a transfer.
    pub fn selector(self) -> FixedBytes<4> {
        match self {
            Self::Transfer => FixedBytes::ZERO,
            Self::Function(selector) => selector,
        }
    }
}

/// Which functions of a target an allowlist entry covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SelectorRule {
    /// One function, by selector; `0x00000000` stands for a plain value transfer (empty
    /// calldata) and nothing else, as in the account.
    Exact(FixedBytes<4>),
    /// Every function of the target.
    Any,
}

impl SelectorRule {
    /// Whether the rule covers a call of `callee`.
    pub fn covers(self, callee: Callee) -> bool {
        match (self, callee) {
            (Self::Any, _) => true,
            (Self::Exact(allowed), Callee::Transfer) => allowed == FixedBytes::ZERO,
            (Self::Exact(allowed), Callee::Function(selector)) => {
                allowed != FixedBytes::ZERO && allowed == selector
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::fixed_bytes;

    use super::*;

    fn call(data: &[u8]) -> Interaction {
        Interaction {
            to: Address::repeat_byte(1),
            value: U256::ZERO,
            data: Bytes::copy_from_slice(data),
            function: None,
        }
    }

    #[test]
    fn the_zero_selector_covers_an_empty_call_only() {
        let transfer = SelectorRule::Exact(FixedBytes::ZERO);
        assert!(transfer.covers(call(&[]).callee().unwrap()));
        let zero_prefixed = call(&[0, 0, 0, 0, 0xaa]).callee().unwrap();
        assert_eq!(zero_prefixed, Callee::Function(FixedBytes::ZERO));
        assert!(
            !transfer.covers(zero_prefixed),
            "four zero bytes are not a transfer"
        );
        assert!(SelectorRule::Any.covers(zero_prefixed));
        let mint = SelectorRule::Exact(fixed_bytes!("40c10f19"));
        assert!(mint.covers(call(&[0x40, 0xc1, 0x0f, 0x19]).callee().unwrap()));
        assert!(!mint.covers(Callee::Transfer));
        assert_eq!(call(&[1, 2]).callee(), None);
    }
}
