//! Operator subcommands that are more than a flag or two: each a client of the daemon.
//!
//! - [`admin`]: how the operator commands reach the admin service.
//! - [`status`]: `latchkey status`: the daemon, the chain, the relay and its queue.
//! - [`session`]: `latchkey session`: list, show and revoke sessions.
//! - [`intent`]: `latchkey intent`: list, show and watch transaction intents.
//! - [`relayer`]: `latchkey relayer`: the relayer accounts, funding them, and pausing the
//!   relay.
//! - [`keys`]: `latchkey keys`: the master key that seals held session keys, and rotating
//!   it.
//! - [`bench`]: the load generator.
//! - [`config_check`]: `latchkey config check`: the configuration, checked offline and
//!   against the chain.
//! - [`contracts`]: `latchkey contracts deploy`: latchkey's contracts on any chain.
//! - [`policy`]: `latchkey policy`: create, list, show and disable sponsorship policies.
//! - [`paymaster`]: `latchkey paymaster`: the paymaster's deposit, and topping it up.
//! - [`api_key`]: `latchkey api-key`: create, list and revoke API keys.
//!
//! This module holds what the clients share: how they reach the daemon, how a gRPC failure
//! reads, and amounts in wei and ETH.

use std::{path::PathBuf, time::Duration};

use anyhow::Context;
use tonic::{
    Status,
    service::interceptor::InterceptedService,
    transport::{Certificate, Channel, ClientTlsConfig},
};

use self::admin::{BearerToken, Token};
use crate::api::code_name;

pub mod admin;
pub mod api_key;
pub mod bench;
pub mod config_check;
pub mod contracts;
pub mod intent;
pub mod keys;
pub mod paymaster;
pub mod policy;
pub mod relayer;
pub mod session;
pub mod status;

/// How a client command reaches the daemon and prints what it gets.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// The daemon's gRPC endpoint.
    #[arg(
        long,
        global = true,
        env = "LATCHKEY_ENDPOINT",
        default_value = "http://127.0.0.1:50051",
        value_name = "URL"
    )]
    pub endpoint: String,
    /// An API key of the tenant to act for (WRITE to change anything). Prefer
    /// LATCHKEY_API_KEY: other users of the machine can read command lines.
    #[arg(
        long,
        global = true,
        env = "LATCHKEY_API_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub api_key: Option<Token>,
    /// PEM file of the CA that signed the daemon's TLS certificate, for an https://
    /// endpoint whose certificate is not publicly trusted.
    #[arg(long, global = true, env = "LATCHKEY_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Print machine-readable JSON instead of a table; gas and wei as decimal strings.
    #[arg(long, global = true)]
    pub json: bool,
}

/// A channel to the application API that sends the API key with every call.
pub type ApiChannel = InterceptedService<Channel, BearerToken>;

impl ClientArgs {
    /// A channel to the daemon, connected now so that a wrong endpoint or a missing key
    /// fails with a message that names it rather than on the first call.
    pub async fn connect(&self) -> anyhow::Result<ApiChannel> {
        let bearer = self
            .api_key
            .as_ref()
            .context("no API key: set LATCHKEY_API_KEY (or pass --api-key)")?
            .bearer()?;
        let channel = connect_endpoint(&self.endpoint, self.ca_cert.as_deref())
            .await
            .with_context(|| {
                format!(
                    "cannot reach the daemon at {} (is it running? set --endpoint or \
                     LATCHKEY_ENDPOINT)",
                    self.endpoint
                )
            })?;
        Ok(InterceptedService::new(channel, bearer))
    }
}

/// A channel to `url`, connected now. An `https://` URL speaks TLS, trusting `ca_cert` when
/// given and the public web roots otherwise.
pub async fn connect_endpoint(
    url: &str,
    ca_cert: Option<&std::path::Path>,
) -> anyhow::Result<Channel> {
    let mut endpoint = Channel::from_shared(url.to_owned())
        .with_context(|| format!("`{url}` is not a URL such as http://127.0.0.1:50051"))?
        .connect_timeout(Duration::from_secs(5));
    if url.starts_with("https://") {
        // alloy's dependencies enable rustls's second crypto backend too: name ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let tls = match ca_cert {
            Some(path) => {
                let pem = std::fs::read(path)
                    .with_context(|| format!("reading the CA certificate {}", path.display()))?;
                ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem))
            }
            None => ClientTlsConfig::new().with_webpki_roots(),
        };
        endpoint = endpoint.tls_config(tls).context("configuring TLS")?;
    }
    Ok(endpoint.connect().await?)
}

/// A gRPC failure as `CODE: message`, the code as the gRPC spec spells it.
pub fn rpc_error(status: Status) -> anyhow::Error {
    anyhow::anyhow!("{}: {}", code_name(status.code()), status.message())
}

/// A command-line value that does not parse: the offending text and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}`: expected {expected}")]
pub struct BadValue {
    /// The text, or the part of it that is wrong.
    pub text: String,
    /// What would have been accepted.
    pub expected: String,
}

impl BadValue {
    pub(crate) fn new(text: &str, expected: impl Into<String>) -> Self {
        Self {
            text: text.to_owned(),
            expected: expected.into(),
        }
    }
}

const WEI_PER_GWEI: u128 = 1_000_000_000;
const WEI_PER_ETHER: u128 = 1_000_000_000_000_000_000;

/// What [`parse_wei`] accepts, for error messages and `--help`.
pub const WEI_SYNTAX: &str = "an amount of wei such as `1000000`, or a decimal with an `ether` or \
                              `gwei` suffix such as `0.5ether` or `20gwei`";

/// An amount of wei: a decimal integer of wei, or a decimal number with an `ether` or `gwei`
/// suffix, converted exactly. A fraction of a wei is refused, never rounded.
pub fn parse_wei(text: &str) -> Result<u128, BadValue> {
    let bad = |expected: &str| BadValue::new(text, expected);
    let (number, unit, decimals) = if let Some(number) = text.strip_suffix("ether") {
        (number, WEI_PER_ETHER, 18)
    } else if let Some(number) = text.strip_suffix("gwei") {
        (number, WEI_PER_GWEI, 9)
    } else {
        (text, 1, 0)
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let is_digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    if !is_digits(whole) || (number.contains('.') && !is_digits(fraction)) {
        return Err(bad(WEI_SYNTAX));
    }
    let fraction = fraction.trim_end_matches('0');
    if fraction.len() > decimals {
        return Err(bad(
            "a whole number of wei: the amount has a fraction of a wei (ether has 18 decimals, \
             gwei 9)",
        ));
    }
    let too_large = || bad("an amount that fits in 128 bits of wei");
    let whole: u128 = whole.parse().map_err(|_| too_large())?;
    let fraction_wei = if fraction.is_empty() {
        0
    } else {
        let scale = 10u128.pow(u32::try_from(decimals - fraction.len()).unwrap_or(0));
        fraction.parse::<u128>().map_err(|_| too_large())? * scale
    };
    whole
        .checked_mul(unit)
        .and_then(|wei| wei.checked_add(fraction_wei))
        .ok_or_else(too_large)
}

/// Wei in ETH with at most 6 decimals, truncated, trailing zeros dropped: `1.5`, `0.000021`.
/// An amount too small to show is `<0.000001`.
pub fn format_eth(wei: u128) -> String {
    const MICRO_ETHER: u128 = WEI_PER_ETHER / 1_000_000;
    let whole = wei / WEI_PER_ETHER;
    let micros = (wei % WEI_PER_ETHER) / MICRO_ETHER;
    if wei > 0 && whole == 0 && micros == 0 {
        return "<0.000001".to_owned();
    }
    let fraction = format!("{micros:06}");
    let fraction = fraction.trim_end_matches('0');
    if fraction.is_empty() {
        whole.to_string()
    } else {
        format!("{whole}.{fraction}")
    }
}

/// A decimal wei string from the daemon, with its value in ETH: `1500000000000000000 wei (1.5
/// ETH)`. Text that is not a wei amount is shown as it is.
pub fn wei_with_eth(wei: &str) -> String {
    match wei.parse::<u128>() {
        Ok(value) => format!("{wei} wei ({} ETH)", format_eth(value)),
        Err(_) => format!("{wei} wei"),
    }
}

/// Rows as left-aligned columns two spaces apart, the header first.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|cell| cell.chars().count()).collect();
    for row in rows {
        for (column, cell) in row.iter().enumerate() {
            if let Some(width) = widths.get_mut(column) {
                *width = (*width).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut line = String::new();
        for (column, cell) in cells.iter().enumerate() {
            if column + 1 == cells.len() {
                line.push_str(cell);
            } else {
                let width = widths.get(column).copied().unwrap_or(0);
                line.push_str(&format!("{cell:<width$}  "));
            }
        }
        line.truncate(line.trim_end().len());
        line.push('\n');
        line
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn interrupted() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wei_amounts_parse_exactly() {
        for (text, wei) in [
            ("0", 0),
            ("1", 1),
            ("1000000", 1_000_000),
            ("1ether", WEI_PER_ETHER),
            ("0.5ether", WEI_PER_ETHER / 2),
            ("10ether", 10 * WEI_PER_ETHER),
            ("1.000000000000000001ether", WEI_PER_ETHER + 1),
            ("0.000000000000000001ether", 1),
            ("2.50ether", 5 * WEI_PER_ETHER / 2),
            ("20gwei", 20 * WEI_PER_GWEI),
            ("1.5gwei", 1_500_000_000),
            ("0.000000001gwei", 1),
            ("1.0", 1),
        ] {
            assert_eq!(parse_wei(text), Ok(wei), "{text}");
        }
    }

    #[test]
    fn bad_wei_amounts_say_what_is_expected() {
        for text in [
            "",
            "ether",
            "-1",
            "1e18",
            "0x10",
            ".5ether",
            "5.ether",
            "1.5",
            "1 ether",
            "1eth",
            "1.2.3ether",
            "١ether",
        ] {
            let error = parse_wei(text).expect_err(text);
            assert_eq!(error.text, text);
        }
        let fraction = parse_wei("0.0000000000000000001ether").expect_err("fraction of a wei");
        assert!(fraction.expected.contains("fraction of a wei"));
        assert!(parse_wei("0.5gwei0").is_err());
        assert!(parse_wei("1.0000000001gwei").is_err());
        let huge = parse_wei("1000000000000000000000ether").expect_err("overflow");
        assert!(huge.expected.contains("128 bits"));
        assert!(parse_wei(&u128::MAX.to_string()).is_ok());
        assert!(parse_wei("340282366920938463463374607431768211456").is_err());
    }

    #[test]
    fn eth_shows_at_most_six_decimals() {
        assert_eq!(format_eth(0), "0");
        assert_eq!(format_eth(WEI_PER_ETHER), "1");
        assert_eq!(format_eth(10 * WEI_PER_ETHER), "10");
        assert_eq!(format_eth(WEI_PER_ETHER / 2 * 3), "1.5");
        assert_eq!(format_eth(21_000 * WEI_PER_GWEI), "0.000021");
        assert_eq!(format_eth(WEI_PER_ETHER + 999_999_999_999), "1");
        assert_eq!(format_eth(1_234_567_890_000_000_000), "1.234567");
        assert_eq!(format_eth(1), "<0.000001");
        assert_eq!(
            wei_with_eth("1500000000000000000"),
            "1500000000000000000 wei (1.5 ETH)"
        );
        assert_eq!(wei_with_eth("x"), "x wei");
    }

    #[test]
    fn tables_align_columns() {
        let rows = vec![
            vec!["a".to_owned(), "long cell".to_owned(), "1".to_owned()],
            vec!["bbb".to_owned(), "c".to_owned(), String::new()],
        ];
        assert_eq!(
            table(&["X", "Y", "Z"], &rows),
            "X    Y          Z\na    long cell  1\nbbb  c\n"
        );
    }

    #[test]
    fn status_codes_read_as_the_grpc_spec_spells_them() {
        let error = rpc_error(Status::not_found("policy pol_1 does not exist"));
        assert_eq!(error.to_string(), "NOT_FOUND: policy pol_1 does not exist");
        assert_eq!(
            code_name(tonic::Code::FailedPrecondition),
            "FAILED_PRECONDITION"
        );
    }
}
