//! What sponsored operations count against their policy: per interval of each limit, and in
//! all.

use serde::{Deserialize, Serialize};

use super::PolicyId;

/// Operations, gas and wei: one quantity of sponsorship.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Amount {
    /// Operations.
    pub operations: u64,
    /// Gas.
    pub gas: u128,
    /// Wei.
    pub wei: u128,
}

impl Amount {
    /// `self + other`, saturating: a counter that cannot grow further stays at its maximum,
    /// which refuses every further operation rather than wrapping to zero.
    pub fn saturating_add(self, other: Amount) -> Amount {
        Amount {
            operations: self.operations.saturating_add(other.operations),
            gas: self.gas.saturating_add(other.gas),
            wei: self.wei.saturating_add(other.wei),
        }
    }

    /// `self - other`, never below zero.
    pub fn saturating_sub(self, other: Amount) -> Amount {
        Amount {
            operations: self.operations.saturating_sub(other.operations),
            gas: self.gas.saturating_sub(other.gas),
            wei: self.wei.saturating_sub(other.wei),
        }
    }
}

/// Usage split by how sure it is: operations still on their way count their worst case
/// (`pending`); executed ones count what their receipts say (`settled`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyUsage {
    /// Reserved by operations not yet executed.
    pub pending: Amount,
    /// Spent by executed operations, from their `UserOperationEvent`s.
    pub settled: Amount,
}

impl PolicyUsage {
    /// Everything a limit counts.
    pub fn total(&self) -> Amount {
        self.pending.saturating_add(self.settled)
    }

    /// `self + other`, saturating.
    pub fn saturating_add(self, other: PolicyUsage) -> PolicyUsage {
        PolicyUsage {
            pending: self.pending.saturating_add(other.pending),
            settled: self.settled.saturating_add(other.settled),
        }
    }

    /// `self - other`, never below zero.
    pub fn saturating_sub(self, other: PolicyUsage) -> PolicyUsage {
        PolicyUsage {
            pending: self.pending.saturating_sub(other.pending),
            settled: self.settled.saturating_sub(other.settled),
        }
    }
}

/// One interval of one limit: rule `rule` of the policy, the `index`-th interval since the
/// policy was created.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WindowKey {
    /// Index of the rule in the policy.
    pub rule: u16,
    /// Which interval.
    pub index: u64,
}

/// What one operation is charged to its policy: recorded on its intent when the policy
/// admits it, and moved by the store with every later write of the intent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Charge {
    /// The policy that sponsors the operation.
    pub policy: PolicyId,
    /// The interval of each limit it was admitted in.
    pub windows: Vec<WindowKey>,
    /// Its worst case: one operation, all its gas limits, and those times its fee cap.
    pub reserved: Amount,
    /// Whether it revokes a session key. A key must stay revocable, so a revocation is
    /// admitted even by a disabled policy or past a limit; it is still recorded.
    #[serde(default)]
    pub revocation: bool,
}
