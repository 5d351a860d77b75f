//! `latchkey paymaster`: the paymaster a running daemon sponsors through: its deposit at the
//! EntryPoint, which pays for every sponsored operation, and topping that deposit up.

use alloy::{
    primitives::{Address, U256},
    providers::{DynProvider, Provider, ProviderBuilder},
};
use anyhow::{Context, bail};
use serde::Serialize;

use super::{
    ClientArgs, Secret, WEI_SYNTAX, format_eth, parse_wei, print_output, rpc_error, wei_with_eth,
};
use crate::{
    api::proto::{self, policy_service_client::PolicyServiceClient},
    chain::contracts::{EntryPoint, SponsorPaymaster},
};

/// What `latchkey paymaster` does.
#[derive(Debug, clap::Subcommand)]
pub enum PaymasterCommand {
    /// Show the paymaster: its address, EntryPoint, signer, deposit and stake.
    Balance,
    /// Top up the paymaster's deposit at the EntryPoint: send `depositTo(paymaster)` with
    /// the amount, from a funder key, and print the transaction and the new deposit.
    ///
    /// The paymaster and the EntryPoint come from the daemon. Give the funder key in
    /// LATCHKEY_FUNDER_PRIVATE_KEY rather than --private-key, which other users of the
    /// machine can read in the process list.
    Deposit {
        /// The amount: wei, or a decimal with an `ether` or `gwei` suffix (`0.5ether`).
        #[arg(long, value_name = "WEI|Nether", value_parser = parse_amount)]
        amount: u128,
        /// Who pays, on which chain.
        #[command(flatten)]
        funder: FunderArgs,
    },
}

/// The account that pays for a top-up, and the chain it pays on.
#[derive(Debug, Clone, clap::Args)]
pub struct FunderArgs {
    /// The chain's JSON-RPC endpoint.
    #[arg(
        long,
        env = "LATCHKEY_RPC_URL",
        default_value = "http://127.0.0.1:8545",
        value_name = "URL"
    )]
    pub rpc_url: url::Url,
    /// The funder's private key, 0x-prefixed hex; it pays the amounts and the gas.
    #[arg(
        long,
        env = "LATCHKEY_FUNDER_PRIVATE_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub private_key: Option<Secret>,
}

impl FunderArgs {
    /// The funder's address and a provider that signs with its key, once the RPC has shown
    /// it is `chain_id`, the daemon's chain: nothing is ever sent to another chain.
    pub async fn connect(&self, chain_id: u64) -> anyhow::Result<(Address, DynProvider)> {
        let signer = self
            .private_key
            .as_ref()
            .context(
                "no funder key: set LATCHKEY_FUNDER_PRIVATE_KEY (or pass --private-key) to the \
                 key of an account holding the amount and gas",
            )?
            .signer("the funder private key")?;
        let funder = signer.address();
        let rpc_url = &self.rpc_url;
        let provider = ProviderBuilder::new()
            .wallet(signer)
            .connect_http(rpc_url.clone())
            .erased();
        let answered = provider
            .get_chain_id()
            .await
            .with_context(|| format!("asking {rpc_url} for its chain id"))?;
        if answered != chain_id {
            bail!(
                "{rpc_url} is chain {answered}, but the daemon is on chain {chain_id}; pass \
                 the RPC URL of chain {chain_id} with --rpc-url or LATCHKEY_RPC_URL. Nothing \
                 was sent."
            );
        }
        Ok((funder, provider))
    }
}

/// A deposit amount: at least 1 wei.
pub fn parse_amount(text: &str) -> Result<u128, super::BadValue> {
    match parse_wei(text)? {
        0 => Err(super::BadValue::new(
            text,
            format!("an amount above zero: {WEI_SYNTAX}"),
        )),
        wei => Ok(wei),
    }
}

/// What a deposit did, as JSON.
#[derive(Debug, Serialize)]
pub struct DepositJson {
    /// The `depositTo` transaction.
    pub transaction_hash: String,
    /// The block it was mined in.
    pub block_number: Option<u64>,
    /// What it deposited, wei.
    pub amount_wei: String,
    /// The paymaster after it.
    pub paymaster: proto::Paymaster,
}

/// Runs a `latchkey paymaster` command and prints its result.
pub async fn run(client: ClientArgs, command: PaymasterCommand) -> anyhow::Result<()> {
    let mut service = PolicyServiceClient::new(client.connect().await?);
    match command {
        PaymasterCommand::Balance => {
            let paymaster = get_paymaster(&mut service).await?;
            print_output(client.json, &paymaster, || render_paymaster(&paymaster))?;
        }
        PaymasterCommand::Deposit { amount, funder } => {
            let rpc_url = funder.rpc_url.clone();
            let before = get_paymaster(&mut service).await?;
            let paymaster = address("paymaster address", &before.address)?;
            let entry_point = address("EntryPoint address", &before.entry_point)?;
            let (funder, provider) = funder.connect(before.chain_id).await?;
            // The daemon's answer is not trusted with the funder's ETH: the chain itself
            // must show a SponsorPaymaster at that address serving that EntryPoint.
            let serves = SponsorPaymaster::new(paymaster, &provider)
                .entryPoint()
                .call()
                .await
                .with_context(|| {
                    format!("{paymaster} on {rpc_url} does not answer as a SponsorPaymaster")
                })?;
            if serves != entry_point {
                bail!(
                    "the paymaster {paymaster} serves the EntryPoint {serves} on {rpc_url}, not \
                     {entry_point} as the daemon says; nothing was sent"
                );
            }
            eprintln!(
                "depositing {amount} wei ({} ETH) from {funder} to paymaster {paymaster} at \
                 EntryPoint {entry_point}...",
                format_eth(amount)
            );
            let receipt = EntryPoint::new(entry_point, &provider)
                .depositTo(paymaster)
                .value(U256::from(amount))
                .send()
                .await
                .context("sending depositTo")?
                .get_receipt()
                .await
                .context("waiting for the depositTo receipt")?;
            let hash = receipt.transaction_hash;
            if !receipt.status() {
                bail!("the depositTo transaction {hash} reverted; the deposit is unchanged");
            }
            let after = get_paymaster(&mut service).await?;
            if client.json {
                let json = DepositJson {
                    transaction_hash: hash.to_string(),
                    block_number: receipt.block_number,
                    amount_wei: amount.to_string(),
                    paymaster: after,
                };
                println!("{}", serde_json::to_string_pretty(&json)?);
            } else {
                println!("transaction  {hash}");
                println!("deposited    {amount} wei ({} ETH)", format_eth(amount));
                println!("deposit      {}", wei_with_eth(&after.deposit_wei));
            }
        }
    }
    Ok(())
}

async fn get_paymaster(
    service: &mut PolicyServiceClient<super::ApiChannel>,
) -> anyhow::Result<proto::Paymaster> {
    Ok(service
        .get_paymaster(proto::GetPaymasterRequest {})
        .await
        .map_err(rpc_error)?
        .into_inner())
}

fn address(what: &str, text: &str) -> anyhow::Result<Address> {
    text.parse()
        .with_context(|| format!("the daemon sent `{text}` as the {what}"))
}

/// The paymaster for people.
pub fn render_paymaster(paymaster: &proto::Paymaster) -> String {
    let mut out = String::new();
    for (name, value) in [
        ("paymaster", paymaster.address.clone()),
        ("entry point", paymaster.entry_point.clone()),
        ("chain id", paymaster.chain_id.to_string()),
        ("signer", paymaster.signer.clone()),
        ("deposit", wei_with_eth(&paymaster.deposit_wei)),
        ("stake", wei_with_eth(&paymaster.stake_wei)),
        (
            "staked",
            if paymaster.staked { "yes" } else { "no" }.to_owned(),
        ),
    ] {
        out.push_str(&format!("{name:<13}{value}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deposits_refuse_zero_and_fractions_of_a_wei() {
        assert_eq!(parse_amount("1ether"), Ok(1_000_000_000_000_000_000));
        assert_eq!(parse_amount("0.5ether"), Ok(500_000_000_000_000_000));
        assert_eq!(parse_amount("1"), Ok(1));
        for text in ["0", "0ether", "0.0gwei", "0.1", "1e18", ""] {
            assert!(parse_amount(text).is_err(), "{text}");
        }
        assert!(
            parse_amount("0ether")
                .expect_err("zero")
                .expected
                .contains("above zero")
        );
    }

    #[test]
    fn private_keys_never_show() {
        let key = format!("0x{}", "17".repeat(32));
        let secret: Secret = key.parse().expect("infallible");
        assert!(!format!("{secret:?}").contains("1717"));
        assert!(secret.signer("the key").is_ok());
        let bad: Secret = "0x171717".parse().expect("infallible");
        let error = bad.signer("the key").expect_err("short key").to_string();
        assert!(!error.contains("1717"), "{error}");
    }

    #[test]
    fn the_paymaster_reads_in_wei_and_eth() {
        let text = render_paymaster(&proto::Paymaster {
            address: "0xA".to_owned(),
            entry_point: "0xB".to_owned(),
            chain_id: 31_337,
            signer: "0xC".to_owned(),
            deposit_wei: "1000000000000000000".to_owned(),
            stake_wei: "0".to_owned(),
            staked: false,
        });
        assert_eq!(
            text,
            "paymaster    0xA\nentry point  0xB\nchain id     31337\nsigner       0xC\n\
             deposit      1000000000000000000 wei (1 ETH)\nstake        0 wei (0 ETH)\n\
             staked       no\n"
        );
    }
}
