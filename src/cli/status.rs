//! `latchkey status`: the daemon, its chain, the relay and its relayers, and the intents by
//! status, from the admin service.

use serde::Serialize;

use super::{ClientArgs, enum_name, rpc_error, table, wei_with_eth};
use crate::api::proto::{self, TransactionIntentStatus};

/// Prints the daemon's status.
pub async fn run(args: ClientArgs) -> anyhow::Result<i32> {
    let mut client = args.connect_admin().await?;
    let status = client
        .get_status(proto::GetStatusRequest {})
        .await
        .map_err(rpc_error)?
        .into_inner();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&StatusJson::from(&status))?
        );
    } else {
        print!("{}", render_status(&status));
    }
    Ok(0)
}

/// The status as `--json` prints it.
#[derive(Debug, Serialize)]
pub struct StatusJson {
    /// latchkey's version.
    pub version: String,
    /// When the daemon started, RFC 3339.
    pub started_at: Option<String>,
    /// Seconds since.
    pub uptime_seconds: u64,
    /// The configured chain.
    pub chain_id: u64,
    /// The chain's head; absent when it did not answer.
    pub chain: Option<proto::ChainHead>,
    /// Why `chain` is absent.
    pub chain_error: Option<String>,
    /// The relay.
    pub relay: RelayJson,
    /// Each relayer.
    pub relayers: Vec<proto::RelayerStatus>,
    /// Intents QUEUED.
    pub queue_depth: u64,
    /// Intents in each status, by status name.
    pub intents: std::collections::BTreeMap<String, u64>,
}

/// The relay's standing.
#[derive(Debug, Serialize)]
pub struct RelayJson {
    /// Whether an operator paused it.
    pub paused: bool,
    /// Why.
    pub pause_reason: Option<String>,
    /// Since when, RFC 3339.
    pub paused_at: Option<String>,
    /// The block its last pass worked against.
    pub last_pass_block: Option<u64>,
    /// When, RFC 3339.
    pub last_pass_at: Option<String>,
}

impl From<&proto::RelayState> for RelayJson {
    fn from(relay: &proto::RelayState) -> Self {
        Self {
            paused: relay.paused,
            pause_reason: non_empty(&relay.pause_reason),
            paused_at: relay.paused_at.as_ref().map(rfc3339),
            last_pass_block: relay.last_pass_at.as_ref().map(|_| relay.last_pass_block),
            last_pass_at: relay.last_pass_at.as_ref().map(rfc3339),
        }
    }
}

impl From<&proto::DaemonStatus> for StatusJson {
    fn from(status: &proto::DaemonStatus) -> Self {
        Self {
            version: status.version.clone(),
            started_at: status.started_at.as_ref().map(rfc3339),
            uptime_seconds: status.uptime_seconds,
            chain_id: status.chain_id,
            chain: status.chain,
            chain_error: non_empty(&status.chain_error),
            relay: status
                .relay
                .as_ref()
                .map(RelayJson::from)
                .unwrap_or_else(|| RelayJson::from(&proto::RelayState::default())),
            relayers: status.relayers.clone(),
            queue_depth: status.queue_depth,
            intents: status
                .intents
                .iter()
                .map(|count| {
                    (
                        enum_name::<TransactionIntentStatus>(count.status),
                        count.count,
                    )
                })
                .collect(),
        }
    }
}

/// The status for a person: a few lines about the daemon, then tables.
pub fn render_status(status: &proto::DaemonStatus) -> String {
    let json = StatusJson::from(status);
    let mut out = format!(
        "latchkey {}, up {}{}\n",
        json.version,
        duration(json.uptime_seconds),
        json.started_at
            .as_deref()
            .map(|at| format!(" (since {at})"))
            .unwrap_or_default()
    );
    match (&json.chain, &json.chain_error) {
        (Some(chain), _) => {
            let lag = match chain.relay_lag_blocks {
                Some(0) => "the relay is at the head".to_owned(),
                Some(blocks) => format!("the relay is {blocks} blocks behind"),
                None => "the relay has not passed yet".to_owned(),
            };
            out.push_str(&format!(
                "chain     {} at block {} ({:.0} s old); {lag}\n",
                json.chain_id, chain.block, chain.block_age_seconds
            ));
        }
        (None, error) => out.push_str(&format!(
            "chain     {} UNREACHABLE: {}\n",
            json.chain_id,
            error.as_deref().unwrap_or("no answer")
        )),
    }
    let relay = &json.relay;
    if relay.paused {
        out.push_str(&format!(
            "relay     PAUSED since {}: {}\n",
            relay.paused_at.as_deref().unwrap_or("?"),
            relay.pause_reason.as_deref().unwrap_or("")
        ));
    } else {
        out.push_str("relay     running\n");
    }
    out.push_str(&format!(
        "queue     {} operation{} waiting for a bundle\n\n",
        json.queue_depth,
        if json.queue_depth == 1 { "" } else { "s" }
    ));
    out.push_str(&render_relayers(&json.relayers));
    out.push('\n');
    let rows: Vec<Vec<String>> = json
        .intents
        .iter()
        .map(|(status, count)| vec![status.clone(), count.to_string()])
        .collect();
    out.push_str(&table(&["INTENTS", "COUNT"], &rows));
    out
}

/// The relayers as a table.
pub fn render_relayers(relayers: &[proto::RelayerStatus]) -> String {
    let rows: Vec<Vec<String>> = relayers
        .iter()
        .map(|relayer| {
            vec![
                relayer.address.clone(),
                if relayer.balance_wei.is_empty() {
                    "?".to_owned()
                } else {
                    wei_with_eth(&relayer.balance_wei)
                },
                relayer
                    .nonce
                    .map_or_else(|| "?".to_owned(), |nonce| nonce.to_string()),
                relayer.in_flight_bundles.to_string(),
                relayer.in_flight_operations.to_string(),
            ]
        })
        .collect();
    table(
        &[
            "RELAYER",
            "BALANCE",
            "NONCE",
            "BUNDLES IN FLIGHT",
            "OPS IN FLIGHT",
        ],
        &rows,
    )
}

/// A proto timestamp as RFC 3339 UTC, to the second.
pub fn rfc3339(timestamp: &prost_types::Timestamp) -> String {
    let seconds = u64::try_from(timestamp.seconds).unwrap_or(0);
    humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds),
    )
    .to_string()
}

/// Seconds in their two largest units: `3days 4h`, `2h 5m`, `42s`.
pub fn duration(seconds: u64) -> String {
    humantime::format_duration(std::time::Duration::from_secs(seconds))
        .to_string()
        .split(' ')
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_in_their_two_largest_units() {
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(59), "59s");
        assert_eq!(duration(61), "1m 1s");
        assert_eq!(duration(3_600 * 2 + 300), "2h 5m");
        assert_eq!(duration(86_400 * 3 + 3_600 * 4 + 59), "3days 4h");
    }

    #[test]
    fn a_status_renders_its_chain_relay_relayers_and_counts() {
        let status = proto::DaemonStatus {
            version: "0.1.0".to_owned(),
            started_at: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 0,
            }),
            uptime_seconds: 125,
            chain_id: 31_337,
            chain: Some(proto::ChainHead {
                block: 120,
                block_time: None,
                block_age_seconds: 1.2,
                relay_lag_blocks: Some(2),
            }),
            chain_error: String::new(),
            relay: Some(proto::RelayState {
                paused: true,
                pause_reason: "topping up relayers".to_owned(),
                paused_at: Some(prost_types::Timestamp {
                    seconds: 1_700_000_100,
                    nanos: 0,
                }),
                last_pass_block: 118,
                last_pass_at: None,
            }),
            relayers: vec![proto::RelayerStatus {
                address: "0x00000000000000000000000000000000000000aa".to_owned(),
                balance_wei: "1500000000000000000".to_owned(),
                nonce: Some(7),
                in_flight_bundles: 1,
                in_flight_operations: 12,
            }],
            queue_depth: 3,
            intents: vec![proto::IntentStatusCount {
                status: TransactionIntentStatus::Queued as i32,
                count: 3,
            }],
        };
        let text = render_status(&status);
        for expected in [
            "latchkey 0.1.0, up 2m 5s (since 2023-11-14T22:13:20Z)",
            "31337 at block 120 (1 s old); the relay is 2 blocks behind",
            "PAUSED since 2023-11-14T22:15:00Z: topping up relayers",
            "3 operations waiting",
            "1500000000000000000 wei (1.5 ETH)",
            "queued",
        ] {
            assert!(text.contains(expected), "{expected:?} in\n{text}");
        }
        let json = serde_json::to_value(StatusJson::from(&status)).unwrap();
        assert_eq!(json["intents"]["queued"], 3);
        assert_eq!(json["relayers"][0]["nonce"], 7);
        assert_eq!(json["relay"]["last_pass_block"], serde_json::Value::Null);
    }
}
