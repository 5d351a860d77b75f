//! ERC-7562's validation rules, as far as the node's JavaScript tracer lets them be seen: a
//! tracer of our own records, for each entity's part of `simulateValidation` (the factory's
//! deployment, the account's `validateUserOp`, the paymaster's `validatePaymasterUserOp`),
//! the opcodes it ran, the storage it touched, the keccak preimages it hashed, the calls it
//! made and how its frames ended; [`check`] then holds the record to the rules.
//!
//! Checked: banned opcodes (OP-011), GAS only before a call (OP-012), out of gas (OP-020),
//! CREATE2 only for the sender's own deployment (OP-031), code-less addresses (OP-041),
//! calls into the EntryPoint (OP-052 to OP-054), BALANCE and SELFBALANCE only when staked
//! (OP-080), and the storage rules (STO-010, STO-021, STO-022, STO-031 to STO-033), an
//! entity counting as staked when the EntryPoint holds a stake for it with at least a
//! day's unstake delay. Not checked: the rules that need a mempool of several bundlers
//! (reputation, STO-040 and STO-041, the aggregator rules), and those on transient storage
//! and on EIP-7702 delegations.

use std::collections::BTreeMap;

use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use serde::Deserialize;

/// The least unstake delay for an entity to count as staked (ERC-7562's
/// MIN_UNSTAKE_DELAY).
pub const MIN_UNSTAKE_DELAY_SECS: u64 = 86_400;

/// How many slots past a keccak the rules count as associated with its preimage's address.
const ASSOCIATED_SLOTS: u64 = 128;

/// The tracer, with `__SENDER__`, `__ENTRY_POINT__` to fill in. It runs on every opcode of
/// the simulation, so it does as little as it can: it records only inside an entity's part,
/// and only what a rule reads.
const TRACER: &str = r#"{
  level: 1, entity: null, gasPending: false, report: {},
  sender: "__SENDER__", entryPoint: "__ENTRY_POINT__",
  banned: { GASPRICE: 1, GASLIMIT: 1, DIFFICULTY: 1, PREVRANDAO: 1, TIMESTAMP: 1, BASEFEE: 1,
    BLOCKHASH: 1, NUMBER: 1, ORIGIN: 1, CREATE: 1, COINBASE: 1, SELFDESTRUCT: 1,
    BLOBHASH: 1, BLOBBASEFEE: 1, INVALID: 1, BALANCE: 1, SELFBALANCE: 1 },
  calls: { CALL: 1, CALLCODE: 1, DELEGATECALL: 1, STATICCALL: 1 },
  codeReaders: { EXTCODESIZE: 1, EXTCODEHASH: 1, EXTCODECOPY: 1 },
  record: function(name) {
    var r = this.report[name];
    if (!r) {
      r = { opcodes: {}, storage: {}, preimages: [], entryPointCalls: [], codeless: {},
            create2: 0, outOfGas: false };
      this.report[name] = r;
    }
    return r;
  },
  word: function(value) {
    var hex = value.toString(16);
    while (hex.length < 64) hex = "0" + hex;
    return "0x" + hex;
  },
  address: function(value) {
    var word = this.word(value);
    return "0x" + word.slice(26);
  },
  enter: function(frame) {
    this.level++;
    if (this.level == 2) {
      var to = toHex(frame.getTo()).toLowerCase();
      var selector = toHex(frame.getInput()).slice(0, 10);
      if (selector == "0x570e1a36") this.entity = "factory";
      else if (selector == "0x19822f7c" && to == this.sender) this.entity = "account";
      else if (selector == "0x52b7512c") this.entity = "paymaster";
      else this.entity = null;
    }
  },
  exit: function(result) {
    if (this.entity && this.level >= 2) {
      var error = result.getError();
      if (error && String(error).toLowerCase().indexOf("out of gas") >= 0) {
        this.record(this.entity).outOfGas = true;
      }
    }
    this.level--;
    if (this.level == 1) this.entity = null;
  },
  step: function(log, db) {
    if (!this.entity) return;
    var op = log.op.toString();
    var r = this.record(this.entity);
    if (this.gasPending) {
      this.gasPending = false;
      if (!this.calls[op]) r.opcodes["GAS"] = 1;
    }
    if (op == "GAS") { this.gasPending = true; return; }
    if (this.banned[op]) { r.opcodes[op] = 1; return; }
    if (op == "CREATE2") { r.create2++; return; }
    if (op == "SLOAD" || op == "SSTORE") {
      var key = toHex(log.contract.getAddress()).toLowerCase() + ":" + this.word(log.stack.peek(0));
      if (op == "SSTORE") r.storage[key] = "w";
      else if (!r.storage[key]) r.storage[key] = "r";
      return;
    }
    if (op == "KECCAK256" || op == "SHA3") {
      var length = Number(log.stack.peek(1));
      if (length >= 32 && length <= 128 && r.preimages.length < 256) {
        var offset = Number(log.stack.peek(0));
        r.preimages.push(toHex(log.memory.slice(offset, offset + length)));
      }
      return;
    }
    var target = null;
    if (this.calls[op]) {
      target = this.address(log.stack.peek(1));
      if (target == this.entryPoint) {
        var inputOffset = Number(log.stack.peek(op == "CALL" || op == "CALLCODE" ? 3 : 2));
        var inputLength = Number(log.stack.peek(op == "CALL" || op == "CALLCODE" ? 4 : 3));
        var selector = inputLength >= 4
          ? toHex(log.memory.slice(inputOffset, inputOffset + 4)) : "0x";
        r.entryPointCalls.push(selector);
      }
    } else if (this.codeReaders[op]) {
      target = this.address(log.stack.peek(0));
    }
    if (target && target != this.sender && db.getCode(toAddress(target)).length == 0) {
      r.codeless[target] = 1;
    }
  },
  fault: function(log, db) {},
  result: function(ctx, db) {
    return { output: toHex(ctx.output), failed: !!ctx.error, entities: this.report };
  }
}"#;

/// The tracer for an operation of `sender` sent to `entry_point`.
pub fn tracer(sender: Address, entry_point: Address) -> String {
    TRACER
        .replace("__SENDER__", &format!("{sender:#x}"))
        .replace("__ENTRY_POINT__", &format!("{entry_point:#x}"))
}

/// What the tracer returns.
#[derive(Debug, Clone, Deserialize)]
pub struct TracedValidation {
    /// The simulation's return data (or revert data, when `failed`).
    pub output: Bytes,
    /// Whether the simulation reverted.
    pub failed: bool,
    /// What each entity did.
    #[serde(default)]
    pub entities: BTreeMap<String, EntityRecord>,
}

/// What one entity's part of the validation did.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntityRecord {
    /// The banned opcodes it ran (GAS for a GAS not followed by a call).
    #[serde(default)]
    pub opcodes: BTreeMap<String, u8>,
    /// Each storage slot it touched, as `address:slot`, with `r` or `w`.
    #[serde(default)]
    pub storage: BTreeMap<String, String>,
    /// The keccak preimages of 32 to 128 bytes it hashed.
    #[serde(default)]
    pub preimages: Vec<Bytes>,
    /// The selectors of its calls into the EntryPoint (`0x` for none).
    #[serde(default)]
    pub entry_point_calls: Vec<String>,
    /// The code-less addresses it called or read the code of.
    #[serde(default)]
    pub codeless: BTreeMap<Address, u8>,
    /// How many CREATE2 it ran.
    #[serde(default)]
    pub create2: u32,
    /// Whether one of its frames ran out of gas.
    #[serde(default)]
    pub out_of_gas: bool,
}

/// The entities of one operation, and which are staked.
#[derive(Debug, Clone, Copy)]
pub struct Entities {
    /// The account.
    pub sender: Address,
    /// The factory, when the operation deploys the account.
    pub factory: Option<Address>,
    /// The paymaster, when there is one.
    pub paymaster: Option<Address>,
    /// The EntryPoint.
    pub entry_point: Address,
    /// Whether the account is staked.
    pub sender_staked: bool,
    /// Whether the factory is staked.
    pub factory_staked: bool,
    /// Whether the paymaster is staked.
    pub paymaster_staked: bool,
}

/// A broken rule: which entity, which rule, and what it did.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {entity}'s validation breaks ERC-7562 rule {rule}: {detail}")]
pub struct Violation {
    /// `account`, `factory` or `paymaster`.
    pub entity: String,
    /// The rule's id, such as `OP-011`.
    pub rule: &'static str,
    /// What the entity did.
    pub detail: String,
    /// The opcode, when an opcode rule is broken.
    pub opcode: Option<String>,
}

/// `depositTo(address)`: the one EntryPoint method an entity may call (OP-053), besides
/// sending it value with no data.
const DEPOSIT_TO: &str = "0xb760faf9";

/// The highest precompile address: calls to precompiles have no code to find (OP-041
/// exempts them). RIP-7212's P-256 verifier is at 0x100.
const LAST_PRECOMPILE: u64 = 0x1ff;

/// Holds `traced` to the rules for `entities`; the first broken rule found.
pub fn check(traced: &TracedValidation, entities: &Entities) -> Result<(), Violation> {
    for (name, record) in &traced.entities {
        let (address, staked) = match name.as_str() {
            "account" => (Some(entities.sender), entities.sender_staked),
            "factory" => (entities.factory, entities.factory_staked),
            "paymaster" => (entities.paymaster, entities.paymaster_staked),
            _ => continue,
        };
        let violation = |rule: &'static str, detail: String, opcode: Option<&str>| Violation {
            entity: name.clone(),
            rule,
            detail,
            opcode: opcode.map(str::to_owned),
        };
        for opcode in record.opcodes.keys() {
            match opcode.as_str() {
                "BALANCE" | "SELFBALANCE" if staked => {}
                "BALANCE" | "SELFBALANCE" => {
                    return Err(violation(
                        "OP-080",
                        format!("it runs {opcode}, which only a staked entity may"),
                        Some(opcode),
                    ));
                }
                "GAS" => {
                    return Err(violation(
                        "OP-012",
                        "it runs GAS other than right before a call".to_owned(),
                        Some(opcode),
                    ));
                }
                _ => {
                    return Err(violation(
                        "OP-011",
                        format!("it runs the banned opcode {opcode}"),
                        Some(opcode),
                    ));
                }
            }
        }
        if record.out_of_gas {
            return Err(violation(
                "OP-020",
                "one of its calls ran out of gas".to_owned(),
                None,
            ));
        }
        let create2_allowed = u32::from(name == "factory");
        if record.create2 > create2_allowed {
            return Err(violation(
                "OP-031",
                format!(
                    "it runs CREATE2 {} time(s); only the factory may, once, to deploy the sender",
                    record.create2
                ),
                Some("CREATE2"),
            ));
        }
        if let Some(target) = record
            .codeless
            .keys()
            .find(|target| U256::from_be_slice(target.as_slice()) > U256::from(LAST_PRECOMPILE))
        {
            return Err(violation(
                "OP-041",
                format!("it calls or reads the code of {target}, which has no code"),
                None,
            ));
        }
        if let Some(selector) = record
            .entry_point_calls
            .iter()
            .find(|selector| *selector != DEPOSIT_TO && *selector != "0x")
        {
            return Err(violation(
                "OP-054",
                format!("it calls the EntryPoint's {selector}; only depositTo is allowed"),
                None,
            ));
        }
        check_storage(record, entities, address, staked).map_err(|detail| Violation {
            entity: name.clone(),
            rule: detail.0,
            detail: detail.1,
            opcode: None,
        })?;
    }
    Ok(())
}

/// The storage rules for one entity at `address`.
fn check_storage(
    record: &EntityRecord,
    entities: &Entities,
    address: Option<Address>,
    staked: bool,
) -> Result<(), (&'static str, String)> {
    let bases: Vec<(Address, U256)> = record
        .preimages
        .iter()
        .filter_map(|preimage| {
            let word = preimage.get(..32)?;
            word[..12].iter().all(|byte| *byte == 0).then(|| {
                (
                    Address::from_slice(&word[12..]),
                    U256::from_be_bytes(keccak256(preimage).0),
                )
            })
        })
        .collect();
    let associated_with = |owner: Address, slot: U256| {
        bases.iter().any(|(of, base)| {
            *of == owner && slot >= *base && slot - *base < U256::from(ASSOCIATED_SLOTS)
        })
    };
    let entity_addresses = [Some(entities.sender), entities.factory, entities.paymaster];
    for (key, access) in &record.storage {
        let Some((contract, slot)) = parse_slot(key) else {
            continue;
        };
        // The EntryPoint's own bookkeeping (nonces, deposits) is the EntryPoint's business.
        if contract == entities.entry_point || contract == entities.sender {
            continue;
        }
        if associated_with(entities.sender, slot) {
            if entities.factory.is_none() || entities.factory_staked {
                continue;
            }
            return Err((
                "STO-022",
                format!(
                    "it touches the sender's slot {slot:#x} of {contract} while the sender is \
                     deployed by an unstaked factory"
                ),
            ));
        }
        if staked && let Some(address) = address {
            let non_entity = !entity_addresses.contains(&Some(contract));
            if contract == address
                || (non_entity && associated_with(address, slot))
                || (non_entity && access == "r")
            {
                continue;
            }
        }
        let rule = if Some(contract) == address {
            "STO-031"
        } else {
            "STO-033"
        };
        return Err((
            rule,
            format!(
                "it {} slot {slot:#x} of {contract}, which an {} entity may not",
                if access == "w" { "writes" } else { "reads" },
                if staked { "" } else { "unstaked" }
            ),
        ));
    }
    Ok(())
}

fn parse_slot(key: &str) -> Option<(Address, U256)> {
    let (contract, slot) = key.split_once(':')?;
    Some((contract.parse().ok()?, slot.parse::<B256>().ok()?.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entities() -> Entities {
        Entities {
            sender: Address::repeat_byte(0xaa),
            factory: None,
            paymaster: Some(Address::repeat_byte(0xbb)),
            entry_point: Address::repeat_byte(0xee),
            sender_staked: false,
            factory_staked: false,
            paymaster_staked: false,
        }
    }

    fn traced(entity: &str, record: EntityRecord) -> TracedValidation {
        TracedValidation {
            output: Bytes::new(),
            failed: false,
            entities: [(entity.to_owned(), record)].into_iter().collect(),
        }
    }

    fn slot_key(contract: Address, slot: U256) -> String {
        format!("{contract:#x}:{}", B256::from(slot))
    }

    #[test]
    fn banned_opcodes_are_named_with_their_rule() {
        for (opcode, rule) in [
            ("TIMESTAMP", "OP-011"),
            ("GAS", "OP-012"),
            ("BALANCE", "OP-080"),
        ] {
            let record = EntityRecord {
                opcodes: [(opcode.to_owned(), 1)].into_iter().collect(),
                ..EntityRecord::default()
            };
            let violation = check(&traced("account", record), &entities()).unwrap_err();
            assert_eq!(
                (violation.rule, violation.opcode.as_deref()),
                (rule, Some(opcode))
            );
        }
        let mut staked = entities();
        staked.sender_staked = true;
        let record = EntityRecord {
            opcodes: [("BALANCE".to_owned(), 1)].into_iter().collect(),
            ..EntityRecord::default()
        };
        assert!(check(&traced("account", record), &staked).is_ok());
    }

    #[test]
    fn the_senders_own_and_associated_storage_is_allowed() {
        let e = entities();
        let token = Address::repeat_byte(0x77);
        let mut preimage = [0u8; 64];
        preimage[12..32].copy_from_slice(e.sender.as_slice());
        let base = U256::from_be_bytes(keccak256(preimage).0);
        let record = EntityRecord {
            storage: [
                (slot_key(e.sender, U256::from(3)), "w".to_owned()),
                (slot_key(token, base + U256::from(1)), "r".to_owned()),
                (slot_key(e.entry_point, U256::from(9)), "w".to_owned()),
            ]
            .into_iter()
            .collect(),
            preimages: vec![Bytes::copy_from_slice(&preimage)],
            ..EntityRecord::default()
        };
        assert!(check(&traced("account", record.clone()), &e).is_ok());
        // The same while an unstaked factory deploys the sender: STO-022.
        let mut deploying = e;
        deploying.factory = Some(Address::repeat_byte(0xff));
        let violation = check(&traced("account", record), &deploying).unwrap_err();
        assert_eq!(violation.rule, "STO-022");
    }

    #[test]
    fn an_unstaked_paymaster_may_not_read_its_own_storage_and_a_staked_one_may() {
        let e = entities();
        let record = EntityRecord {
            storage: [(slot_key(e.paymaster.unwrap(), U256::ZERO), "r".to_owned())]
                .into_iter()
                .collect(),
            ..EntityRecord::default()
        };
        let violation = check(&traced("paymaster", record.clone()), &e).unwrap_err();
        assert_eq!(violation.rule, "STO-031");
        let mut staked = e;
        staked.paymaster_staked = true;
        assert!(check(&traced("paymaster", record), &staked).is_ok());
    }

    #[test]
    fn codeless_targets_entry_point_calls_and_extra_create2_are_refused() {
        let e = entities();
        let codeless = EntityRecord {
            codeless: [
                (Address::repeat_byte(0x12), 1),
                (Address::with_last_byte(1), 1),
            ]
            .into_iter()
            .collect(),
            ..EntityRecord::default()
        };
        assert_eq!(
            check(&traced("account", codeless), &e).unwrap_err().rule,
            "OP-041"
        );
        let precompile = EntityRecord {
            codeless: [(Address::with_last_byte(1), 1)].into_iter().collect(),
            ..EntityRecord::default()
        };
        assert!(check(&traced("account", precompile), &e).is_ok());
        let calls = EntityRecord {
            entry_point_calls: vec![
                DEPOSIT_TO.to_owned(),
                "0x".to_owned(),
                "0x12345678".to_owned(),
            ],
            ..EntityRecord::default()
        };
        assert_eq!(
            check(&traced("account", calls), &e).unwrap_err().rule,
            "OP-054"
        );
        let create2 = EntityRecord {
            create2: 1,
            ..EntityRecord::default()
        };
        assert_eq!(
            check(&traced("account", create2.clone()), &e)
                .unwrap_err()
                .rule,
            "OP-031"
        );
        assert!(check(&traced("factory", create2), &e).is_ok());
    }
}
