//! `latchkey relayer`: the accounts that send the bundles and pay their gas up front: their
//! balances, nonces and bundles in flight, topping them up, and pausing relaying.

use alloy::{
    network::TransactionBuilder,
    primitives::{Address, U256},
    providers::Provider,
    rpc::types::TransactionRequest,
};
use anyhow::{Context, bail};
use serde::Serialize;

use super::{
    ClientArgs,
    admin::AdminClient,
    format_eth,
    paymaster::{FunderArgs, parse_amount},
    rpc_error,
    status::{RelayJson, render_relayers},
    table,
};
use crate::api::proto;

/// What `latchkey relayer` does.
#[derive(Debug, clap::Subcommand)]
pub enum RelayerCommand {
    /// Each relayer: balance, next nonce, and the bundles and operations it has in flight.
    List,
    /// Top every relayer up to an amount: each one holding less is sent the difference from
    /// a funder key, one transfer at a time, each waited for.
    ///
    /// The relayers and the chain id come from the daemon, and the RPC must be that chain.
    /// Give the funder key in LATCHKEY_FUNDER_PRIVATE_KEY rather than --private-key, which
    /// other users of the machine can read in the process list.
    Fund {
        /// The balance each relayer should hold: wei, or a decimal with an `ether` or `gwei`
        /// suffix (`2ether`).
        #[arg(long, value_name = "WEI|Nether", value_parser = parse_amount)]
        up_to: u128,
        /// Who pays, on which chain.
        #[command(flatten)]
        funder: FunderArgs,
    },
    /// Pause relaying: no new bundle is sent; bundles already sent are still followed to
    /// their blocks. Intents wait QUEUED (and are DROPPED past relayer.queue_timeout_secs).
    /// The pause outlasts a restart until `latchkey relayer resume`.
    Pause {
        /// Why, shown by `latchkey status` and logged.
        #[arg(long)]
        reason: String,
    },
    /// Resume relaying after a pause; queued operations go at once.
    Resume,
}

/// One relayer's top-up, as `relayer fund --json` prints it.
#[derive(Debug, Serialize)]
pub struct FundedJson {
    /// The relayer.
    pub address: String,
    /// Its balance before, wei.
    pub before_wei: String,
    /// What was sent, wei; 0 when it held enough.
    pub sent_wei: String,
    /// The transfer, when one was sent.
    pub transaction_hash: Option<String>,
    /// Its balance after, wei.
    pub after_wei: String,
}

/// Runs `command` and returns the exit code.
pub async fn run(args: ClientArgs, command: RelayerCommand) -> anyhow::Result<i32> {
    let mut client = args.connect_admin().await?;
    match command {
        RelayerCommand::List => {
            let status = get_status(&mut client).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&status.relayers)?);
            } else {
                print!("{}", render_relayers(&status.relayers));
                if !status.chain_error.is_empty() {
                    println!("(balances and nonces unknown: {})", status.chain_error);
                }
            }
        }
        RelayerCommand::Fund { up_to, funder } => {
            let funded = fund(&mut client, up_to, &funder).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&funded)?);
            } else {
                let rows: Vec<Vec<String>> = funded
                    .iter()
                    .map(|relayer| {
                        vec![
                            relayer.address.clone(),
                            eth(&relayer.before_wei),
                            eth(&relayer.sent_wei),
                            eth(&relayer.after_wei),
                            relayer.transaction_hash.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(
                        &[
                            "RELAYER",
                            "BEFORE (ETH)",
                            "SENT (ETH)",
                            "AFTER (ETH)",
                            "TRANSACTION"
                        ],
                        &rows
                    )
                );
            }
        }
        RelayerCommand::Pause { reason } => {
            let state = client
                .pause_relay(proto::PauseRelayRequest { reason })
                .await
                .map_err(rpc_error)?
                .into_inner();
            print_relay(&state, args.json)?;
        }
        RelayerCommand::Resume => {
            let state = client
                .resume_relay(proto::ResumeRelayRequest {})
                .await
                .map_err(rpc_error)?
                .into_inner();
            print_relay(&state, args.json)?;
        }
    }
    Ok(0)
}

async fn get_status(client: &mut AdminClient) -> anyhow::Result<proto::DaemonStatus> {
    Ok(client
        .get_status(proto::GetStatusRequest {})
        .await
        .map_err(rpc_error)?
        .into_inner())
}

/// Sends each relayer below `up_to` the difference, after checking the RPC is the daemon's
/// chain; reports progress on stderr as it goes.
async fn fund(
    client: &mut AdminClient,
    up_to: u128,
    funder: &FunderArgs,
) -> anyhow::Result<Vec<FundedJson>> {
    let status = get_status(client).await?;
    let (funder, provider) = funder.connect(status.chain_id).await?;
    let target = U256::from(up_to);
    let total = status.relayers.len();
    let mut funded = Vec::with_capacity(total);
    for (index, relayer) in status.relayers.iter().enumerate() {
        let address: Address = relayer
            .address
            .parse()
            .with_context(|| format!("the daemon sent `{}` as a relayer", relayer.address))?;
        let before = provider.get_balance(address).await?;
        let step = format!("[{}/{total}] {address}", index + 1);
        if before >= target {
            eprintln!(
                "{step} holds {} ETH; nothing to send",
                format_eth(before.saturating_to())
            );
            funded.push(FundedJson {
                address: address.to_string(),
                before_wei: before.to_string(),
                sent_wei: "0".to_owned(),
                transaction_hash: None,
                after_wei: before.to_string(),
            });
            continue;
        }
        let amount = target - before;
        eprintln!(
            "{step} holds {} ETH; sending {} ETH from {funder}...",
            format_eth(before.saturating_to()),
            format_eth(amount.saturating_to())
        );
        let receipt = provider
            .send_transaction(
                TransactionRequest::default()
                    .with_to(address)
                    .with_value(amount),
            )
            .await
            .with_context(|| format!("sending {amount} wei to {address}"))?
            .get_receipt()
            .await
            .with_context(|| format!("waiting for the transfer to {address}"))?;
        if !receipt.status() {
            bail!(
                "the transfer {} to {address} failed; the relayers before it were funded",
                receipt.transaction_hash
            );
        }
        let after = provider.get_balance(address).await?;
        eprintln!("{step} funded in {}", receipt.transaction_hash);
        funded.push(FundedJson {
            address: address.to_string(),
            before_wei: before.to_string(),
            sent_wei: amount.to_string(),
            transaction_hash: Some(receipt.transaction_hash.to_string()),
            after_wei: after.to_string(),
        });
    }
    Ok(funded)
}

fn print_relay(state: &proto::RelayState, json: bool) -> anyhow::Result<()> {
    let relay = RelayJson::from(state);
    if json {
        println!("{}", serde_json::to_string_pretty(&relay)?);
    } else if relay.paused {
        println!(
            "relaying PAUSED since {}: {}",
            relay.paused_at.as_deref().unwrap_or("?"),
            relay.pause_reason.as_deref().unwrap_or("")
        );
    } else {
        println!("relaying running");
    }
    Ok(())
}

fn eth(wei: &str) -> String {
    wei.parse::<u128>()
        .map_or_else(|_| wei.to_owned(), format_eth)
}
