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
//! - [`bench`](mod@bench): the load generator.
//! - [`config_check`]: `latchkey config check`: the configuration, checked offline and
//!   against the chain.
//! - [`contracts`]: `latchkey contracts deploy`: latchkey's contracts on any chain.
//! - [`policy`]: `latchkey policy`: create, list, show and disable sponsorship policies.
//! - [`paymaster`]: `latchkey paymaster`: the paymaster's deposit, and topping it up.
//! - [`api_key`]: `latchkey api-key`: create, list and revoke API keys.
//! - [`dev`]: `latchkey dev`: the local stack.
//! - [`json`]: how the generated API types read in `--json` output.
//!
//! This module holds what the clients share: how they reach the daemon, how a gRPC failure
//! reads, enum values by name, lists page by page, amounts in wei and ETH, tables, spinners
//! and files replaced whole.

use std::{
    fmt,
    path::{Path, PathBuf},
    str::FromStr,
    time::Duration,
};

use alloy::{
    primitives::utils::{ParseUnits, Unit},
    signers::local::PrivateKeySigner,
};
use anyhow::{Context, bail};
use serde::Serialize;
use tonic::{
    Status,
    service::interceptor::InterceptedService,
    transport::{Certificate, Channel, ClientTlsConfig},
};

use self::admin::{AdminClient, BearerToken};
use crate::api::{code_name, proto::admin_service_client::AdminServiceClient};

pub mod admin;
pub mod api_key;
pub mod bench;
pub mod config_check;
pub mod contracts;
pub mod dev;
pub mod intent;
pub mod json;
pub mod keys;
pub mod paymaster;
pub mod policy;
pub mod relayer;
pub mod session;
pub mod status;

/// How a client command reaches the daemon and prints what it gets. The application
/// commands (`policy`, `paymaster`) call the API with an API key; the operator commands
/// (`status`, `session`, `intent`, `relayer`, `api-key`) call the admin service, on its own
/// endpoint, with the admin token or an ADMIN key.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// The daemon's gRPC endpoint, for `policy` and `paymaster`.
    #[arg(
        long,
        global = true,
        env = "LATCHKEY_ENDPOINT",
        default_value = "http://127.0.0.1:50051",
        value_name = "URL"
    )]
    pub endpoint: String,
    /// An API key of the tenant to act for (WRITE to change anything), for `policy` and
    /// `paymaster`. Prefer LATCHKEY_API_KEY: other users of the machine can read command
    /// lines.
    #[arg(
        long,
        global = true,
        env = "LATCHKEY_API_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub api_key: Option<Secret>,
    /// The daemon's admin endpoint (`admin.listen`), for the operator commands.
    #[arg(
        long,
        global = true,
        env = "LATCHKEY_ADMIN_ENDPOINT",
        default_value = "http://127.0.0.1:50052",
        value_name = "URL"
    )]
    pub admin_endpoint: String,
    /// The admin token (`admin.token`) or an API key with the ADMIN scope, for the operator
    /// commands. Prefer LATCHKEY_ADMIN_TOKEN: other users of the machine can read command
    /// lines in the process list.
    #[arg(
        long,
        global = true,
        env = "LATCHKEY_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub admin_token: Option<Secret>,
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
    /// A channel to the application API, connected now so that a wrong endpoint or a
    /// missing key fails with a message that names it rather than on the first call.
    pub async fn connect(&self) -> anyhow::Result<ApiChannel> {
        connect_with(
            &self.endpoint,
            self.ca_cert.as_deref(),
            self.api_key
                .as_ref()
                .context("no API key: set LATCHKEY_API_KEY (or pass --api-key)")?,
            || {
                format!(
                    "cannot reach the daemon at {} (is it running? set --endpoint or \
                     LATCHKEY_ENDPOINT)",
                    self.endpoint
                )
            },
        )
        .await
    }

    /// A client of the admin service, connected now so that a wrong endpoint or a missing
    /// token fails with a message that says which.
    pub async fn connect_admin(&self) -> anyhow::Result<AdminClient> {
        let token = self.admin_token.as_ref().context(
            "no admin token: set LATCHKEY_ADMIN_TOKEN (or pass --admin-token) to the daemon's \
             admin.token or an API key with the ADMIN scope",
        )?;
        let channel = connect_with(&self.admin_endpoint, self.ca_cert.as_deref(), token, || {
            format!(
                "cannot reach the admin service at {} (is the daemon running with admin.token \
                 set? set --admin-endpoint or LATCHKEY_ADMIN_ENDPOINT; an https:// endpoint \
                 needs LATCHKEY_CA_CERT when its certificate is not publicly trusted)",
                self.admin_endpoint
            )
        })
        .await?;
        Ok(AdminServiceClient::new(channel))
    }
}

/// A secret from the command line or the environment: an API key, the admin token, a
/// private key. It never shows: not in `Debug`, and not in an error, since clap echoes a
/// value it cannot parse (this parse cannot fail). White space around it is dropped, as a
/// file or a copy and paste adds it.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// A secret from its text.
    pub fn new(text: &str) -> Self {
        Self(text.trim().to_owned())
    }

    /// The text, for a parser that keeps it secret in turn.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `authorization: Bearer <secret>` for every call, when the secret is a credential.
    pub fn bearer(&self) -> anyhow::Result<BearerToken> {
        BearerToken::new(self)
    }

    /// The signer, when the secret is a private key; else an error that names it by `what`
    /// (`the funder private key`) and does not repeat it.
    pub fn signer(&self, what: &str) -> anyhow::Result<PrivateKeySigner> {
        self.0
            .parse()
            .map_err(|_| anyhow::anyhow!("{what} is not a 32-byte hex key (0x and 64 hex digits)"))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Self::new(text))
    }
}

/// Prints `value` as pretty JSON when `json`, and otherwise the text `human` makes for
/// people (which ends its own lines).
pub fn print_output(
    json: bool,
    value: &impl Serialize,
    human: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        print!("{}", human());
    }
    Ok(())
}

/// A channel to `url` that sends `credential` with every call, connected now; `unreachable`
/// says what to check when it cannot be reached.
pub async fn connect_with(
    url: &str,
    ca_cert: Option<&Path>,
    credential: &Secret,
    unreachable: impl FnOnce() -> String,
) -> anyhow::Result<ApiChannel> {
    let bearer = credential.bearer()?;
    let channel = connect_endpoint(url, ca_cert)
        .await
        .with_context(unreachable)?;
    Ok(InterceptedService::new(channel, bearer))
}

/// A channel to `url`, connected now. An `https://` URL speaks TLS, trusting `ca_cert` when
/// given and the public web roots otherwise.
pub async fn connect_endpoint(url: &str, ca_cert: Option<&Path>) -> anyhow::Result<Channel> {
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

/// A proto enum whose values the CLI names after their protobuf names.
pub trait ProtoName: Sized + TryFrom<i32> + Default {
    /// What every value's protobuf name starts with: `SESSION_STATUS_`.
    const PREFIX: &'static str;
    /// The value's protobuf name: `SESSION_STATUS_PENDING_SIGNATURE`.
    fn proto_name(&self) -> &'static str;
    /// The value of a protobuf name.
    fn from_proto_name(name: &str) -> Option<Self>;
}

/// The CLI's name of an enum value, in JSON and tables: its protobuf name less the enum's
/// prefix, in lowercase (`pending_signature`); `unknown` for a value this CLI does not know.
pub fn enum_name<E: ProtoName>(value: i32) -> String {
    E::try_from(value).map_or_else(
        |_| "unknown".to_owned(),
        |value| {
            let name = value.proto_name();
            name.strip_prefix(E::PREFIX)
                .unwrap_or(name)
                .to_ascii_lowercase()
        },
    )
}

/// A value of the proto enum `E` as a command line names it (`--status pending-signature`),
/// with what it means for `--help`. The name is the value's protobuf name less the enum's
/// prefix, in kebab case, and also in the snake_case the JSON output shows, so no list of
/// names is kept by hand; [`Choices`] says which values a command line offers.
#[derive(Clone, Copy, Debug)]
pub struct Choice<E> {
    /// The value.
    pub value: E,
    help: &'static str,
}

impl<E> Choice<E> {
    /// `value`, meaning `help`.
    pub const fn new(value: E, help: &'static str) -> Self {
        Self { value, help }
    }
}

/// A proto enum whose values a command line can name.
pub trait Choices: ProtoName + Copy + Send + Sync + 'static {
    /// The values offered, in the order `--help` lists them (never UNSPECIFIED).
    const CHOICES: &'static [Choice<Self>];
}

impl<E: Choices> clap::ValueEnum for Choice<E> {
    fn value_variants<'a>() -> &'a [Self] {
        E::CHOICES
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        let name = self.value.proto_name();
        let snake = name
            .strip_prefix(E::PREFIX)
            .unwrap_or(name)
            .to_ascii_lowercase();
        let kebab = snake.replace('_', "-");
        let value = clap::builder::PossibleValue::new(kebab.clone()).help(self.help);
        Some(if snake == kebab {
            value
        } else {
            value.alias(snake)
        })
    }
}

/// Implements [`Choices`] for each enum: the values its options offer, with their help.
macro_rules! choices {
    ($($enum:ty { $($value:ident => $help:literal,)* })*) => {$(
        impl Choices for $enum {
            const CHOICES: &'static [Choice<Self>] = &[$(Choice::new(Self::$value, $help)),*];
        }
    )*};
}

choices! {
    crate::api::proto::ApiKeyScope {
        Read => "Gets, lists and watches",
        Write => "Creates, signatures and revocations",
        Admin => "The admin service",
    }
    crate::api::proto::ClientAccess {
        ReadOnly => "The client gets, lists and watches its own session and intents",
        ReadWrite => "It also creates intents on its session and submits their signatures",
    }
    crate::api::proto::TransactionIntentKind {
        Call => "Calls a session key signs",
        Registration => "A session key's registration",
        Revocation => "A session key's revocation",
        External => "Sent through the bundler JSON-RPC, signed by its account's own key",
    }
    crate::api::proto::TransactionIntentStatus {
        PendingSignature => "Waiting for the session key holder's signature",
        Queued => "Signed, waiting for a bundle",
        Submitted => "Sent, waiting for a block",
        Included => "In a block, waiting for confirmations",
        Confirmed => "Executed successfully (final)",
        Reverted => "Executed and reverted (final)",
        Dropped => "Refused or never included (final)",
        Expired => "Never signed in time (final)",
    }
    crate::api::proto::SessionStatus {
        PendingSignature => "Waiting for the owner's signature of the registration",
        Registering => "The registration is being relayed",
        Active => "Registered and inside its window",
        Expired => "Past its window",
        Revoking => "Revocation requested",
        Revoked => "Revoked on chain",
        Failed => "The registration failed",
    }
}

/// The first `limit` items of a list, asking `fetch` for page after page (with a page size
/// and the previous page's token) until the limit or the last page.
pub async fn collect_pages<T, Fetch, Page>(limit: u32, mut fetch: Fetch) -> anyhow::Result<Vec<T>>
where
    Fetch: FnMut(i32, String) -> Page,
    Page: std::future::Future<Output = anyhow::Result<(Vec<T>, String)>>,
{
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut all = Vec::new();
    let mut page_token = String::new();
    while all.len() < limit {
        let (items, next_page_token) =
            fetch(page_size(limit - all.len()), page_token.clone()).await?;
        all.extend(items);
        if next_page_token.is_empty() {
            break;
        }
        if next_page_token == page_token {
            bail!("the daemon returned the same page token twice: {page_token}");
        }
        page_token = next_page_token;
    }
    all.truncate(limit);
    Ok(all)
}

/// The page size to ask for when `wanted` more items are wanted: at most the API's 100.
pub fn page_size(wanted: usize) -> i32 {
    i32::try_from(wanted.clamp(1, 100)).unwrap_or(100)
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

const WEI_PER_ETHER: u128 = 1_000_000_000_000_000_000;
#[cfg(test)]
const WEI_PER_GWEI: u128 = 1_000_000_000;

/// What [`parse_wei`] accepts, for error messages and `--help`.
pub const WEI_SYNTAX: &str = "an amount of wei such as `1000000`, or a decimal with an `ether` or \
                              `gwei` suffix such as `0.5ether` or `20gwei`";

/// An amount of wei: a decimal integer of wei, or a decimal number with an `ether` or `gwei`
/// suffix, converted exactly. A fraction of a wei is refused, never rounded.
pub fn parse_wei(text: &str) -> Result<u128, BadValue> {
    let bad = |expected: &str| BadValue::new(text, expected);
    let (number, unit) = if let Some(number) = text.strip_suffix("ether") {
        (number, Unit::ETHER)
    } else if let Some(number) = text.strip_suffix("gwei") {
        (number, Unit::GWEI)
    } else {
        (text, Unit::WEI)
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let is_digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    if !is_digits(whole) || (number.contains('.') && !is_digits(fraction)) {
        return Err(bad(WEI_SYNTAX));
    }
    // parse_units drops the digits past the unit's decimals; they are a fraction of a wei.
    if fraction.trim_end_matches('0').len() > usize::from(unit.get()) {
        return Err(bad(
            "a whole number of wei: the amount has a fraction of a wei (ether has 18 decimals, \
             gwei 9)",
        ));
    }
    let too_large = || bad("an amount that fits in 128 bits of wei");
    let wei = ParseUnits::parse_units(number, unit).map_err(|_| too_large())?;
    u128::try_from(wei.get_absolute()).map_err(|_| too_large())
}

/// `wei` in `unit`, exact, with trailing zeros dropped: `1.5`, `20`.
pub fn in_unit(wei: u128, unit: Unit) -> String {
    let text = ParseUnits::from(wei).format_units(unit);
    match text.split_once('.') {
        Some((whole, fraction)) => match fraction.trim_end_matches('0') {
            "" => whole.to_owned(),
            fraction => format!("{whole}.{fraction}"),
        },
        None => text,
    }
}

/// Wei in ETH with at most 6 decimals, truncated, trailing zeros dropped: `1.5`, `0.000021`.
/// An amount too small to show is `<0.000001`.
pub fn format_eth(wei: u128) -> String {
    const MICRO_ETHER: u128 = WEI_PER_ETHER / 1_000_000;
    if wei > 0 && wei < MICRO_ETHER {
        return "<0.000001".to_owned();
    }
    in_unit(wei - wei % MICRO_ETHER, Unit::ETHER)
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
    let mut table = comfy_table::Table::new();
    table
        .load_style(comfy_table::presets::NOTHING)
        .set_content_arrangement(comfy_table::ContentArrangement::Disabled)
        .set_header(header.iter().copied())
        .add_rows(rows.iter().map(|row| row.iter().map(String::as_str)));
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    let mut out = String::new();
    for line in table.lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A spinner on stderr with `prefix` and the time elapsed, drawn while a person is looking
/// (`live`) and hidden otherwise; it draws itself until finished.
pub fn spinner(live: bool, prefix: String) -> indicatif::ProgressBar {
    if !live {
        return indicatif::ProgressBar::hidden();
    }
    let spinner = indicatif::ProgressBar::new_spinner().with_prefix(prefix);
    if let Ok(style) = indicatif::ProgressStyle::with_template("{prefix}{spinner} {msg} {elapsed}")
    {
        spinner.set_style(style);
    }
    spinner.enable_steady_tick(Duration::from_millis(100));
    spinner
}

/// Replaces `path` with `text`, with permissions `mode`, so that a reader sees the old file
/// or the new one, never a part: a temporary file beside it, synced and persisted over it.
pub fn replace_file(path: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    use std::{io::Write, os::unix::fs::PermissionsExt};
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut file = tempfile::Builder::new()
        .prefix(".latchkey")
        .permissions(std::fs::Permissions::from_mode(mode))
        .tempfile_in(dir)?;
    file.write_all(text.as_bytes())?;
    file.as_file().sync_all()?;
    file.persist(path)?;
    Ok(())
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
