//! What a session key may do, in the shape SessionKeyAccount enforces, and what it has used.

use alloy::primitives::{Address, FixedBytes};
use serde::{Deserialize, Serialize};

pub use crate::call::SelectorRule;
use crate::{call::Callee, chain::contracts::SessionKeyAccount};

/// One allowlist entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallPermission {
    /// The contract the key may call.
    pub target: Address,
    /// Which of its functions.
    pub selector: SelectorRule,
    /// The function's canonical signature, when the client named it by one, so the session
    /// echoes what was asked and not only its selector. The chain knows only the selector.
    #[serde(default)]
    pub signature: Option<String>,
}

/// A session key's limits, as registered on chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permissions {
    /// Calls over the key's life; every call of a batch counts.
    pub call_limit: u32,
    /// Largest native value one call may carry, wei.
    pub value_per_call_limit: u128,
    /// Total native value all calls may carry, wei.
    pub value_budget: u128,
    /// Total worst-case gas fees the key's operations may cost the account, wei.
    pub gas_budget: u128,
    /// The allowlist.
    pub calls: Vec<CallPermission>,
}

impl Permissions {
    /// Whether the allowlist lets the key call `callee` on `target`.
    pub fn allows(&self, target: Address, callee: Callee) -> bool {
        self.calls
            .iter()
            .any(|permission| permission.target == target && permission.selector.covers(callee))
    }

    /// The struct `registerSessionKey` takes.
    pub fn to_contract(&self) -> SessionKeyAccount::SessionPermissions {
        SessionKeyAccount::SessionPermissions {
            callLimit: self.call_limit,
            valuePerCallLimit: self.value_per_call_limit,
            valueBudget: self.value_budget,
            gasBudget: self.gas_budget,
            calls: self
                .calls
                .iter()
                .map(|permission| match permission.selector {
                    SelectorRule::Exact(selector) => SessionKeyAccount::CallPermission {
                        target: permission.target,
                        selector,
                        anySelector: false,
                    },
                    SelectorRule::Any => SessionKeyAccount::CallPermission {
                        target: permission.target,
                        selector: FixedBytes::ZERO,
                        anySelector: true,
                    },
                })
                .collect(),
        }
    }
}

/// What a session's intents have used of its limits: spent on chain, or reserved by intents
/// on their way there. The account spends limits at validation, so an intent that reverts in
/// execution still counts; one that never validates is released.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Calls.
    pub calls: u32,
    /// Native value, wei.
    pub value: u128,
    /// Worst-case gas fees, wei.
    pub gas: u128,
}

impl Usage {
    /// `self + other`, or `None` if a counter would overflow.
    pub fn checked_add(self, other: Usage) -> Option<Usage> {
        Some(Usage {
            calls: self.calls.checked_add(other.calls)?,
            value: self.value.checked_add(other.value)?,
            gas: self.gas.checked_add(other.gas)?,
        })
    }

    /// `self - other`, never below zero.
    pub fn saturating_sub(self, other: Usage) -> Usage {
        Usage {
            calls: self.calls.saturating_sub(other.calls),
            value: self.value.saturating_sub(other.value),
            gas: self.gas.saturating_sub(other.gas),
        }
    }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::fixed_bytes;

    use super::*;

    fn permissions(calls: Vec<CallPermission>) -> Permissions {
        Permissions {
            call_limit: 3,
            value_per_call_limit: 0,
            value_budget: 0,
            gas_budget: 1,
            calls,
        }
    }

    #[test]
    fn allowlist_matches_exact_selectors_and_wildcards_per_target() {
        let game = Address::repeat_byte(1);
        let shop = Address::repeat_byte(2);
        let mint = fixed_bytes!("40c10f19");
        let burn = fixed_bytes!("42966c68");
        let rules = permissions(vec![
            CallPermission {
                target: game,
                selector: SelectorRule::Exact(mint),
                signature: None,
            },
            CallPermission {
                target: shop,
                selector: SelectorRule::Any,
                signature: None,
            },
        ]);
        assert!(rules.allows(game, Callee::Function(mint)));
        assert!(!rules.allows(game, Callee::Function(burn)));
        assert!(rules.allows(shop, Callee::Function(burn)));
        assert!(!rules.allows(Address::repeat_byte(3), Callee::Function(mint)));
    }

    #[test]
    fn contract_form_marks_wildcards() {
        let target = Address::repeat_byte(9);
        let form = permissions(vec![CallPermission {
            target,
            selector: SelectorRule::Any,
            signature: None,
        }])
        .to_contract();
        assert_eq!(form.calls.len(), 1);
        assert!(form.calls[0].anySelector);
        assert_eq!(form.callLimit, 3);
    }

    #[test]
    fn usage_adds_checked_and_subtracts_saturating() {
        let a = Usage {
            calls: 1,
            value: 2,
            gas: 3,
        };
        assert_eq!(
            a.checked_add(a),
            Some(Usage {
                calls: 2,
                value: 4,
                gas: 6
            })
        );
        assert_eq!(
            a.checked_add(Usage {
                calls: u32::MAX,
                ..a
            }),
            None
        );
        assert_eq!(Usage::default().saturating_sub(a), Usage::default());
    }
}
