//! Configuration: defaults, then a TOML file, then `LATCHKEY_*` environment variables, then
//! command-line flags. [`ConfigArgs`] declares the last two layers, each flag reading its
//! variable when absent; [`Config::load`] lays them over the file; [`Config::validate`]
//! checks every field once and parses what the daemon runs on (keys, the TLS identity, the
//! sponsor's signer) into [`Settings`]. A bad value stops the daemon at start with a message
//! naming the field instead of failing later.

use std::{fmt, net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

use alloy::{
    primitives::Address,
    signers::local::{MnemonicBuilder, PrivateKeySigner, coins_bip39::English},
};
use serde::Deserialize;

use crate::{
    app::Sponsor,
    chain::{contracts::ENTRY_POINT_V08, deploy},
    keys::MasterKey,
    relay::RelayConfig,
};

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this configuration.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, which names the field.
        message: String,
    },
    /// A value is invalid.
    #[error("config field `{field}`: {reason}")]
    Invalid {
        /// The field, as written in the TOML file.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// The daemon's configuration. Every field has a default except the relayer key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the gRPC API listens on.
    pub listen: SocketAddr,
    /// Directory of the embedded sled store. Created if missing.
    pub data_dir: PathBuf,
    /// Address to serve Prometheus metrics on (`GET /metrics`); off when absent.
    pub metrics_listen: Option<SocketAddr>,
    /// The chain.
    pub chain: ChainConfig,
    /// The relayer.
    pub relayer: RelayerConfig,
    /// Transaction intents.
    pub intents: IntentConfig,
    /// Gas sponsorship through a SponsorPaymaster.
    pub sponsor: SponsorConfig,
    /// The operator's admin service.
    pub admin: AdminConfig,
    /// The master key that seals held session keys in the store.
    pub keys: KeysConfig,
    /// Limits on what the gRPC services accept, and each API key's request rate.
    pub api: ApiConfig,
    /// TLS for the gRPC API and the admin service; plaintext when absent.
    pub tls: TlsConfig,
    /// The bundler JSON-RPC (ERC-7769) and the paymaster service (ERC-7677).
    pub jsonrpc: JsonRpcConfig,
}

/// The bundler JSON-RPC: the ERC-4337 methods SDKs call (ERC-7769), and the paymaster
/// service (ERC-7677), on a listener of their own. Off unless `listen` is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JsonRpcConfig {
    /// Address to serve it on (`POST /`, JSON-RPC 2.0 over HTTP); off when absent.
    pub listen: Option<SocketAddr>,
    /// A tenant whose calls need no API key: every caller without an `authorization`
    /// header acts as this tenant with READ and WRITE. For a local stack only: anyone who
    /// reaches the port can send operations.
    pub open_tenant: Option<String>,
    /// Largest request body, in bytes; a larger one is refused before it is parsed.
    pub max_request_bytes: usize,
    /// Most calls in one batch; a larger batch is refused whole.
    pub max_batch_calls: usize,
    /// Most operations of one sender on their way at once (each under its own nonce key).
    pub max_operations_per_sender: usize,
    /// Whether each operation's validation is traced and held to ERC-7562's rules before it
    /// is accepted (the node must serve `debug_traceCall` with JavaScript tracers, as anvil
    /// and geth do). Off, only the simulation's verdict counts.
    pub trace_validation: bool,
}

impl Default for JsonRpcConfig {
    fn default() -> Self {
        Self {
            listen: None,
            open_tenant: None,
            max_request_bytes: 1024 * 1024,
            max_batch_calls: 100,
            max_operations_per_sender: 8,
            trace_validation: true,
        }
    }
}

/// The certificate and key both gRPC servers (application and admin) present. Give both or
/// neither; without them the servers speak plaintext HTTP/2, fit only behind a proxy that
/// terminates TLS or on a private network.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM file of the server's certificate chain (`LATCHKEY_TLS_CERT_FILE`).
    pub cert_file: Option<PathBuf>,
    /// PEM file of its private key (`LATCHKEY_TLS_KEY_FILE`), readable by latchkey alone.
    pub key_file: Option<PathBuf>,
}

/// The PEM bytes of a configured TLS identity.
pub struct TlsIdentity {
    /// The certificate chain.
    pub cert_pem: Vec<u8>,
    /// The private key.
    pub key_pem: zeroize::Zeroizing<Vec<u8>>,
}

impl TlsConfig {
    /// The certificate and key, read from their files; `None` when TLS is off. Only
    /// [`Config::validate`] reads them, so they are read once.
    fn identity(&self) -> Result<Option<TlsIdentity>, ConfigError> {
        let read = |field: &'static str, path: &std::path::Path| {
            std::fs::read(path).map_err(|error| ConfigError::Invalid {
                field,
                reason: format!("cannot read {}: {error}", path.display()),
            })
        };
        match (&self.cert_file, &self.key_file) {
            (None, None) => Ok(None),
            (Some(cert), Some(key)) => {
                let cert_pem = read("tls.cert_file", cert)?;
                let key_pem = zeroize::Zeroizing::new(read("tls.key_file", key)?);
                if !cert_pem
                    .windows(27)
                    .any(|window| window == b"-----BEGIN CERTIFICATE-----")
                {
                    return Err(ConfigError::Invalid {
                        field: "tls.cert_file",
                        reason: format!("{} holds no PEM certificate", cert.display()),
                    });
                }
                if !key_pem.windows(11).any(|window| window == b"PRIVATE KEY") {
                    return Err(ConfigError::Invalid {
                        field: "tls.key_file",
                        reason: format!("{} holds no PEM private key", key.display()),
                    });
                }
                Ok(Some(TlsIdentity { cert_pem, key_pem }))
            }
            (Some(_), None) => Err(ConfigError::Invalid {
                field: "tls.key_file",
                reason: "required with tls.cert_file".to_owned(),
            }),
            (None, Some(_)) => Err(ConfigError::Invalid {
                field: "tls.cert_file",
                reason: "required with tls.key_file".to_owned(),
            }),
        }
    }
}

/// Limits on what the gRPC services (application and admin) accept, so that no client can
/// make the daemon buffer or hold more than it should.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Largest request message, in bytes; a larger one is refused before it is decoded.
    pub max_request_bytes: usize,
    /// Most `WatchTransactionIntent` streams open at once on the application API, over
    /// every tenant; one more is refused with RESOURCE_EXHAUSTED.
    pub max_watch_streams: usize,
    /// Most of those one tenant may hold, so one tenant cannot take them all.
    pub max_watch_streams_per_tenant: usize,
    /// Most watch streams open at once on the admin service, a pool of its own.
    pub max_admin_watch_streams: usize,
    /// Requests per second one API key (or the admin token) may make, sustained; more get
    /// RESOURCE_EXHAUSTED.
    pub rate_limit_per_second: u32,
    /// Requests one key may make at once after a quiet spell.
    pub rate_limit_burst: u32,
    /// Failed authentications per second one peer address may make, sustained; past it,
    /// its calls are refused with RESOURCE_EXHAUSTED before their credential is looked at.
    pub auth_failures_per_second: u32,
    /// Failed authentications one peer address may make at once.
    pub auth_failure_burst: u32,
    /// How far from the server's clock a client's stamp may be made, either way, in
    /// seconds; each stamp's nonce is remembered that long, so it is good once.
    pub stamp_window_secs: u64,
    /// The web origins (`https://game.example`) whose pages may call the application API
    /// from a browser, over gRPC-web: the CORS allowlist. Empty lets no page of another
    /// origin in.
    pub cors_allowed_origins: Vec<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            max_request_bytes: 1024 * 1024,
            max_watch_streams: 1024,
            max_watch_streams_per_tenant: 256,
            max_admin_watch_streams: 64,
            rate_limit_per_second: 100,
            rate_limit_burst: 200,
            auth_failures_per_second: 1,
            auth_failure_burst: 30,
            stamp_window_secs: 300,
            cors_allowed_origins: Vec::new(),
        }
    }
}

/// Where the master key comes from: the key that seals every held session key in the store
/// (XChaCha20-Poly1305). Exactly one of the two is needed to serve. Without it, the store's
/// held keys cannot be opened by anyone, latchkey included.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeysConfig {
    /// The master key as 64 hex digits. Prefer the `LATCHKEY_MASTER_KEY` environment
    /// variable, or a file, to writing it here.
    pub master_key: Option<String>,
    /// A file holding the master key as 64 hex digits (`LATCHKEY_MASTER_KEY_FILE`): a
    /// mounted secret, readable by latchkey alone.
    pub master_key_file: Option<PathBuf>,
}

impl KeysConfig {
    /// The master key, from the text or the file: exactly one of them. Errors name the
    /// field and the file, never the key.
    pub fn master_key(&self) -> Result<MasterKey, ConfigError> {
        let not_a_key = |field: &'static str| {
            invalid(
                field,
                "not a master key: expected 64 hex digits (32 bytes), such as `latchkey keys \
                 generate` prints",
            )
        };
        match (&self.master_key, &self.master_key_file) {
            (Some(text), None) => {
                MasterKey::from_hex(text).map_err(|_| not_a_key("keys.master_key"))
            }
            (None, Some(path)) => {
                let text =
                    zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|error| {
                        ConfigError::Invalid {
                            field: "keys.master_key_file",
                            reason: format!("cannot read {}: {error}", path.display()),
                        }
                    })?);
                MasterKey::from_hex(&text).map_err(|_| not_a_key("keys.master_key_file"))
            }
            (Some(_), Some(_)) => Err(invalid(
                "keys.master_key",
                "set keys.master_key (LATCHKEY_MASTER_KEY) or keys.master_key_file \
                 (LATCHKEY_MASTER_KEY_FILE), not both",
            )),
            (None, None) => Err(invalid(
                "keys.master_key",
                "required: the key that seals held session keys; set LATCHKEY_MASTER_KEY or \
                 LATCHKEY_MASTER_KEY_FILE (generate one with `latchkey keys generate`)",
            )),
        }
    }
}

impl std::fmt::Debug for KeysConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeysConfig")
            .field(
                "master_key",
                &self.master_key.as_ref().map(|_| "<redacted>"),
            )
            .field("master_key_file", &self.master_key_file)
            .finish()
    }
}

/// The admin service: the operator's status, inspection and relay controls, served on its
/// own address and only to callers holding its token. Off unless `token` is set.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Address the admin service listens on; keep it on localhost or a private network.
    pub listen: SocketAddr,
    /// The bearer token every admin call must carry: at least 32 visible ASCII characters.
    /// Prefer the `LATCHKEY_ADMIN_TOKEN` environment variable to writing it in a file.
    pub token: Option<String>,
}

/// Fewest characters an admin token may have: 32 random characters put guessing it out of
/// reach.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 32;

impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminConfig")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50052)),
            token: None,
        }
    }
}

/// Which chain, and where the contracts are.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChainConfig {
    /// JSON-RPC endpoint of the chain.
    pub rpc_url: String,
    /// EntryPoint v0.8.
    pub entry_point: Address,
    /// SessionKeyAccountFactory. Defaults to the deterministic address `latchkey contracts
    /// deploy` and `latchkey dev` give it for `entry_point`.
    pub factory: Option<Address>,
    /// Highest fee cap latchkey puts on an operation, in gwei. It bounds what a session's
    /// gas budget is charged per operation.
    pub max_fee_per_gas_gwei: u64,
    /// Seconds a JSON-RPC request may take before it counts as failed (and is retried).
    pub rpc_timeout_secs: u64,
}

/// The account that sends `handleOps` and pays for gas up front.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelayerConfig {
    /// Its secp256k1 private key, 0x-prefixed hex. Prefer the `LATCHKEY_RELAYER_PRIVATE_KEY`
    /// environment variable to writing it in a file.
    pub private_key: Option<String>,
    /// More relayer keys, 0x-prefixed hex. Each relayer has its own nonces and its own
    /// bundles in flight, so several bundles can land in one block.
    pub private_keys: Vec<String>,
    /// A BIP-39 mnemonic to derive more relayer keys from, at the standard Ethereum path
    /// `m/44'/60'/0'/0/i` for i in `0..mnemonic_accounts`. Prefer the
    /// `LATCHKEY_RELAYER_MNEMONIC` environment variable to writing it in a file.
    pub mnemonic: Option<String>,
    /// How many keys to derive from `mnemonic`.
    pub mnemonic_accounts: u32,
    /// How often the relay looks for work when nothing wakes it, in milliseconds.
    pub poll_interval_ms: u64,
    /// Most `handleOps` transactions the relayer has sent and not yet seen included. While
    /// a bundle waits for its block, new operations gather into the next bundle: 1 packs
    /// the most operations per transaction; more sends sooner at the cost of smaller
    /// bundles. Nodes also cap the pending transactions of one sender.
    pub max_in_flight: usize,
    /// Most gas one bundle's transaction may be given: its simulated gas plus a 10% margin
    /// and room for the largest operation's call gas. A bundle that would need more is
    /// trimmed, and the rest wait for the next one. Nodes pack a block by the gas its
    /// transactions may use, so the default, a quarter of a 30M-gas block, lets four
    /// relayers' bundles share one block.
    pub max_bundle_gas: u64,
    /// Most operations one bundle may carry.
    pub max_ops_per_bundle: usize,
    /// Blocks an operation's inclusion block must reach, counting itself, before the
    /// operation is CONFIRMED (or REVERTED). Until then it is INCLUDED, and a reorg that
    /// removes the block sends it back to be included again. 1 settles at inclusion.
    pub confirmations: u64,
    /// Blocks a bundle may wait unincluded before it is replaced by the same bundle with
    /// higher fees.
    pub bump_after_blocks: u64,
    /// How much a replacement raises both fees, in percent; nodes refuse a replacement
    /// under 10%.
    pub fee_bump_percent: u64,
    /// Seconds a signed operation may wait in the queue (never sent, or sent and lost) before
    /// it is DROPPED with the reason. A bundle already in the mempool is followed to its end
    /// instead: it may still land, so its operations are never declared dropped early.
    pub queue_timeout_secs: u64,
    /// Seconds the relay may spend, after a shutdown is requested, following the bundles
    /// it already sent until they are included; it sends nothing new meanwhile. 0 stops at
    /// once; whatever is still in flight is resumed at the next start either way.
    pub shutdown_grace_secs: u64,
    /// Seconds an operation's window must stay open past the moment it is sent (the later
    /// of the latest block's time and the wall clock) for the relay to send it. One whose
    /// window closes sooner is DROPPED unsent: a `handleOps` that lands after a window
    /// closed reverts, at the relayer's cost. At least the chain's block time, and less
    /// than `intents.window_margin_secs`.
    pub window_margin_secs: u64,
    /// Longest wait between retries while the chain is unreachable, in milliseconds. The
    /// wait doubles from `poll_interval_ms` on every failed pass.
    pub max_backoff_ms: u64,
}

impl std::fmt::Debug for RelayerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayerConfig")
            .field(
                "private_key",
                &self.private_key.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "private_keys",
                &format!("<{} redacted>", self.private_keys.len()),
            )
            .field("mnemonic", &self.mnemonic.as_ref().map(|_| "<redacted>"))
            .field("mnemonic_accounts", &self.mnemonic_accounts)
            .field("poll_interval_ms", &self.poll_interval_ms)
            .field("max_in_flight", &self.max_in_flight)
            .field("max_bundle_gas", &self.max_bundle_gas)
            .field("max_ops_per_bundle", &self.max_ops_per_bundle)
            .field("confirmations", &self.confirmations)
            .field("bump_after_blocks", &self.bump_after_blocks)
            .field("fee_bump_percent", &self.fee_bump_percent)
            .field("queue_timeout_secs", &self.queue_timeout_secs)
            .field("shutdown_grace_secs", &self.shutdown_grace_secs)
            .field("window_margin_secs", &self.window_margin_secs)
            .field("max_backoff_ms", &self.max_backoff_ms)
            .finish()
    }
}

/// Gas sponsorship: the SponsorPaymaster policies sponsor through, and the key that
/// approves operations for it. Without a paymaster, sponsorship is off and an operation
/// that names a policy is refused.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SponsorConfig {
    /// The SponsorPaymaster's address.
    pub paymaster: Option<Address>,
    /// The key whose approvals the paymaster accepts (its `signer`), 0x-prefixed hex.
    /// Required with `paymaster`.
    pub signer_private_key: Option<String>,
    /// Seconds an approval stays good after it is given. It must cover the wait for a
    /// signature and for the relay, or a slow operation is refused on chain (AA32).
    pub approval_validity_secs: u64,
    /// Gas the paymaster's validation may use in each sponsored operation.
    pub verification_gas_limit: u64,
}

impl std::fmt::Debug for SponsorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SponsorConfig")
            .field("paymaster", &self.paymaster)
            .field(
                "signer_private_key",
                &self.signer_private_key.as_ref().map(|_| "<redacted>"),
            )
            .field("approval_validity_secs", &self.approval_validity_secs)
            .field("verification_gas_limit", &self.verification_gas_limit)
            .finish()
    }
}

impl Default for SponsorConfig {
    fn default() -> Self {
        Self {
            paymaster: None,
            signer_private_key: None,
            approval_validity_secs: 3600,
            verification_gas_limit: 60_000,
        }
    }
}

/// How intents are accepted.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IntentConfig {
    /// Seconds an intent or a session registration waits for its signature before it expires.
    pub signature_timeout_secs: u64,
    /// Refuse intents when the session's window closes within this many seconds.
    pub window_margin_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            data_dir: PathBuf::from("latchkey-data"),
            metrics_listen: None,
            chain: ChainConfig::default(),
            relayer: RelayerConfig::default(),
            intents: IntentConfig::default(),
            sponsor: SponsorConfig::default(),
            admin: AdminConfig::default(),
            keys: KeysConfig::default(),
            api: ApiConfig::default(),
            tls: TlsConfig::default(),
            jsonrpc: JsonRpcConfig::default(),
        }
    }
}

impl Default for RelayerConfig {
    fn default() -> Self {
        Self {
            private_key: None,
            private_keys: Vec::new(),
            poll_interval_ms: 250,
            max_in_flight: 1,
            max_bundle_gas: 7_500_000,
            max_ops_per_bundle: 100,
            mnemonic: None,
            mnemonic_accounts: 1,
            confirmations: 1,
            bump_after_blocks: 3,
            fee_bump_percent: 20,
            queue_timeout_secs: 300,
            shutdown_grace_secs: 30,
            window_margin_secs: 5,
            max_backoff_ms: 30_000,
        }
    }
}

impl Default for ChainConfig {
    fn default() -> Self {
        Self {
            rpc_url: "http://127.0.0.1:8545".to_owned(),
            entry_point: ENTRY_POINT_V08,
            factory: None,
            max_fee_per_gas_gwei: 500,
            rpc_timeout_secs: 10,
        }
    }
}

impl Default for IntentConfig {
    fn default() -> Self {
        Self {
            signature_timeout_secs: 600,
            window_margin_secs: 30,
        }
    }
}

/// The layers above the file, as `latchkey serve` and `latchkey config check` take them.
/// Each setting has a flag and an environment variable named after it (`--admin-listen`,
/// `LATCHKEY_ADMIN_LISTEN`); the variable is read when the flag is absent, so a flag beats
/// its variable and both beat the file. Values stay text here and are parsed
/// as they are laid over the file, so a bad one is refused by its field's name, as a bad
/// value in the file is. Keys and tokens belong in the variables: other users of the
/// machine can read command lines in the process list.
#[derive(Clone, Default, clap::Args)]
pub struct ConfigArgs {
    /// TOML configuration file (see deploy/latchkey.example.toml).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Address to serve gRPC on (`listen`).
    #[arg(long, env = "LATCHKEY_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// Address to serve Prometheus metrics on (`metrics_listen`).
    #[arg(long, env = "LATCHKEY_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// Address to serve the admin service on (`admin.listen`).
    #[arg(long, env = "LATCHKEY_ADMIN_LISTEN", value_name = "ADDR")]
    pub admin_listen: Option<String>,
    /// The admin service's bearer token (`admin.token`).
    #[arg(long, env = "LATCHKEY_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// PEM file of the server's certificate chain (`tls.cert_file`).
    #[arg(long, env = "LATCHKEY_TLS_CERT_FILE", value_name = "FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM file of the server's private key (`tls.key_file`).
    #[arg(long, env = "LATCHKEY_TLS_KEY_FILE", value_name = "FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// The master key that seals held session keys, 64 hex digits (`keys.master_key`).
    #[arg(long, env = "LATCHKEY_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,
    /// A file holding the master key (`keys.master_key_file`).
    #[arg(long, env = "LATCHKEY_MASTER_KEY_FILE", value_name = "FILE")]
    pub master_key_file: Option<PathBuf>,
    /// Directory of the sled store (`data_dir`).
    #[arg(long, env = "LATCHKEY_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Chain JSON-RPC endpoint (`chain.rpc_url`).
    #[arg(long, env = "LATCHKEY_RPC_URL", value_name = "URL")]
    pub rpc_url: Option<String>,
    /// EntryPoint v0.8 (`chain.entry_point`).
    #[arg(long, env = "LATCHKEY_ENTRY_POINT", value_name = "ADDRESS")]
    pub entry_point: Option<String>,
    /// SessionKeyAccountFactory (`chain.factory`).
    #[arg(long, env = "LATCHKEY_FACTORY", value_name = "ADDRESS")]
    pub factory: Option<String>,
    /// Relayer keys, 0x-prefixed hex, separated by commas (`relayer.private_key`).
    #[arg(long, env = "LATCHKEY_RELAYER_PRIVATE_KEY", hide_env_values = true)]
    pub relayer_private_key: Option<String>,
    /// A BIP-39 mnemonic to derive relayer keys from (`relayer.mnemonic`).
    #[arg(long, env = "LATCHKEY_RELAYER_MNEMONIC", hide_env_values = true)]
    pub relayer_mnemonic: Option<String>,
    /// The SponsorPaymaster's address (`sponsor.paymaster`).
    #[arg(long, env = "LATCHKEY_PAYMASTER", value_name = "ADDRESS")]
    pub paymaster: Option<String>,
    /// The key whose approvals the paymaster accepts (`sponsor.signer_private_key`).
    #[arg(long, env = "LATCHKEY_SPONSOR_SIGNER_KEY", hide_env_values = true)]
    pub sponsor_signer_key: Option<String>,
}

impl fmt::Debug for ConfigArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = |value: &Option<String>| value.as_ref().map(|_| "<redacted>");
        f.debug_struct("ConfigArgs")
            .field("config", &self.config)
            .field("listen", &self.listen)
            .field("metrics_listen", &self.metrics_listen)
            .field("admin_listen", &self.admin_listen)
            .field("admin_token", &secret(&self.admin_token))
            .field("tls_cert_file", &self.tls_cert_file)
            .field("tls_key_file", &self.tls_key_file)
            .field("master_key", &secret(&self.master_key))
            .field("master_key_file", &self.master_key_file)
            .field("data_dir", &self.data_dir)
            .field("rpc_url", &self.rpc_url)
            .field("entry_point", &self.entry_point)
            .field("factory", &self.factory)
            .field("relayer_private_key", &secret(&self.relayer_private_key))
            .field("relayer_mnemonic", &secret(&self.relayer_mnemonic))
            .field("paymaster", &self.paymaster)
            .field("sponsor_signer_key", &secret(&self.sponsor_signer_key))
            .finish()
    }
}

impl ConfigArgs {
    /// Lays the values given over `config`, parsing each into its field's type.
    fn lay_over(self, config: &mut Config) -> Result<(), ConfigError> {
        if let Some(value) = self.listen {
            config.listen = parse("listen", &value)?;
        }
        if let Some(value) = self.metrics_listen {
            config.metrics_listen = Some(parse("metrics_listen", &value)?);
        }
        if let Some(value) = self.admin_listen {
            config.admin.listen = parse("admin.listen", &value)?;
        }
        if let Some(value) = self.entry_point {
            config.chain.entry_point = parse("chain.entry_point", &value)?;
        }
        if let Some(value) = self.factory {
            config.chain.factory = Some(parse("chain.factory", &value)?);
        }
        if let Some(value) = self.paymaster {
            config.sponsor.paymaster = Some(parse("sponsor.paymaster", &value)?);
        }
        if let Some(value) = self.data_dir {
            config.data_dir = value;
        }
        if let Some(value) = self.rpc_url {
            config.chain.rpc_url = value;
        }
        given(&mut config.admin.token, self.admin_token);
        given(&mut config.tls.cert_file, self.tls_cert_file);
        given(&mut config.tls.key_file, self.tls_key_file);
        given(&mut config.keys.master_key, self.master_key);
        given(&mut config.keys.master_key_file, self.master_key_file);
        given(&mut config.relayer.private_key, self.relayer_private_key);
        given(&mut config.relayer.mnemonic, self.relayer_mnemonic);
        given(
            &mut config.sponsor.signer_private_key,
            self.sponsor_signer_key,
        );
        Ok(())
    }
}

/// Sets `field` to `value` when a layer gave one, and leaves it as the file had it otherwise.
fn given<T>(field: &mut Option<T>, value: Option<T>) {
    if value.is_some() {
        *field = value;
    }
}

/// The configuration as [`Config::validate`] left it: every field checked, and what the
/// daemon runs on parsed (keys, the TLS identity, durations). Only `validate` builds one,
/// so whoever holds `Settings` has nothing left to check or read; `non_exhaustive` keeps the
/// binary and other crates from building one unchecked.
#[non_exhaustive]
pub struct Settings {
    /// Address the gRPC API listens on.
    pub listen: SocketAddr,
    /// Directory of the embedded sled store.
    pub data_dir: PathBuf,
    /// Address to serve Prometheus metrics on; off when absent.
    pub metrics_listen: Option<SocketAddr>,
    /// The chain and where the contracts are.
    pub chain: ChainSettings,
    /// The relayers' signers: the listed keys, then those derived from the mnemonic.
    pub relayers: Vec<PrivateKeySigner>,
    /// How the relay engine bundles, sends and waits.
    pub relay: RelayConfig,
    /// The paymaster and the key that approves for it; `None` when sponsorship is off.
    pub sponsor: Option<Sponsor>,
    /// How intents are accepted.
    pub intents: IntentConfig,
    /// The admin service.
    pub admin: AdminConfig,
    /// The master key that seals held session keys in the store.
    pub master_key: MasterKey,
    /// Limits on what the gRPC services accept.
    pub api: ApiConfig,
    /// The certificate and key both servers present, as read during validation;
    /// plaintext when `None`.
    pub tls: Option<TlsIdentity>,
    /// The bundler JSON-RPC, with its open tenant parsed.
    pub jsonrpc: JsonRpcSettings,
}

/// The bundler JSON-RPC, as the daemon serves it.
#[derive(Debug, Clone)]
pub struct JsonRpcSettings {
    /// Address to serve it on; off when absent.
    pub listen: Option<SocketAddr>,
    /// The tenant callers without an API key act as; `None` requires a key of every call.
    pub open_tenant: Option<crate::ids::TenantId>,
    /// Largest request body, in bytes.
    pub max_request_bytes: usize,
    /// Most calls in one batch.
    pub max_batch_calls: usize,
    /// Most operations of one sender on their way at once.
    pub max_operations_per_sender: usize,
    /// Whether validation is traced and held to ERC-7562's rules.
    pub trace_validation: bool,
}

/// The chain, as the daemon connects to it.
#[derive(Debug, Clone)]
pub struct ChainSettings {
    /// JSON-RPC endpoint of the chain.
    pub rpc_url: url::Url,
    /// How long a JSON-RPC request may take before it counts as failed.
    pub rpc_timeout: Duration,
    /// EntryPoint v0.8.
    pub entry_point: Address,
    /// The factory: configured, or the deterministic address for the EntryPoint.
    pub factory: Address,
    /// Highest fee cap latchkey puts on an operation, in wei.
    pub max_fee_per_gas_wei: u128,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            listen,
            data_dir,
            metrics_listen,
            chain,
            relayers,
            relay,
            sponsor,
            intents,
            admin,
            master_key,
            api,
            tls,
            jsonrpc,
        } = self;
        let relayers: Vec<Address> = relayers.iter().map(PrivateKeySigner::address).collect();
        f.debug_struct("Settings")
            .field("listen", listen)
            .field("data_dir", data_dir)
            .field("metrics_listen", metrics_listen)
            .field("chain", chain)
            .field("relayers", &relayers)
            .field("relay", relay)
            .field("sponsor", sponsor)
            .field("intents", intents)
            .field("admin", admin)
            .field("master_key", master_key)
            .field("api", api)
            .field("tls", &tls.as_ref().map(|_| "<certificate and key>"))
            .field("jsonrpc", jsonrpc)
            .finish()
    }
}

impl Config {
    /// The file, when `args` names one (else the defaults), with the environment and the
    /// flags laid over it. Nothing is validated yet: [`Config::validate`] does that.
    pub fn load(mut args: ConfigArgs) -> Result<Self, ConfigError> {
        let mut config = match args.config.take() {
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                toml::from_str(&text).map_err(|error| ConfigError::Parse {
                    path,
                    message: error.to_string(),
                })?
            }
            None => Config::default(),
        };
        args.lay_over(&mut config)?;
        Ok(config)
    }

    /// Checks every field that can be checked without the network, and parses what the
    /// daemon runs on: the relayers' keys, the master key, the TLS identity (its files are
    /// read here, and nowhere else) and the sponsor's key. The error names the first field
    /// found wrong.
    pub fn validate(self) -> Result<Settings, ConfigError> {
        let rpc_url =
            url::Url::parse(&self.chain.rpc_url).map_err(|error| ConfigError::Invalid {
                field: "chain.rpc_url",
                reason: error.to_string(),
            })?;
        let relayers = self.relayer_signers()?;
        if self.chain.rpc_timeout_secs == 0 {
            return Err(invalid("chain.rpc_timeout_secs", "must be at least 1"));
        }
        if self.chain.max_fee_per_gas_gwei == 0 {
            return Err(invalid("chain.max_fee_per_gas_gwei", "must be at least 1"));
        }
        if self.relayer.max_bundle_gas < 1_000_000 {
            return Err(invalid(
                "relayer.max_bundle_gas",
                "must be at least 1000000",
            ));
        }
        let at_least_one = [
            (
                "relayer.max_ops_per_bundle",
                self.relayer.max_ops_per_bundle as u64,
            ),
            ("relayer.max_in_flight", self.relayer.max_in_flight as u64),
            ("relayer.poll_interval_ms", self.relayer.poll_interval_ms),
            ("relayer.confirmations", self.relayer.confirmations),
            ("relayer.bump_after_blocks", self.relayer.bump_after_blocks),
        ];
        for (field, value) in at_least_one {
            if value == 0 {
                return Err(invalid(field, "must be at least 1"));
            }
        }
        if !(10..=1000).contains(&self.relayer.fee_bump_percent) {
            return Err(invalid(
                "relayer.fee_bump_percent",
                "must be between 10 and 1000; nodes refuse replacements under 10%",
            ));
        }
        if self.relayer.queue_timeout_secs == 0 {
            return Err(invalid("relayer.queue_timeout_secs", "must be at least 1"));
        }
        if self.relayer.shutdown_grace_secs > 3_600 {
            return Err(invalid(
                "relayer.shutdown_grace_secs",
                "must be at most 3600; a shutdown should not wait longer than an hour",
            ));
        }
        if self.relayer.max_backoff_ms < self.relayer.poll_interval_ms {
            return Err(invalid(
                "relayer.max_backoff_ms",
                "must be at least relayer.poll_interval_ms",
            ));
        }
        if self.relayer.window_margin_secs >= self.intents.window_margin_secs {
            return Err(invalid(
                "relayer.window_margin_secs",
                "must be less than intents.window_margin_secs, or intents accepted near the \
                 end of their window could never be sent",
            ));
        }
        if self.relayer.mnemonic.is_some() && self.relayer.mnemonic_accounts == 0 {
            return Err(invalid("relayer.mnemonic_accounts", "must be at least 1"));
        }
        if self.intents.signature_timeout_secs == 0 {
            return Err(invalid(
                "intents.signature_timeout_secs",
                "must be at least 1",
            ));
        }
        let sponsor_signer = self.sponsor_signer()?;
        let waits = self
            .intents
            .signature_timeout_secs
            .saturating_add(self.relayer.queue_timeout_secs);
        if sponsor_signer.is_some() && self.sponsor.approval_validity_secs < waits {
            return Err(ConfigError::Invalid {
                field: "sponsor.approval_validity_secs",
                reason: format!(
                    "must be at least intents.signature_timeout_secs + \
                     relayer.queue_timeout_secs ({waits}), so an approval outlives the waits"
                ),
            });
        }
        if self.sponsor.approval_validity_secs > 366 * 24 * 3600 {
            return Err(invalid(
                "sponsor.approval_validity_secs",
                "must be at most 366 days",
            ));
        }
        if !(4 * 1024..=64 * 1024 * 1024).contains(&self.api.max_request_bytes) {
            return Err(invalid(
                "api.max_request_bytes",
                "must be between 4096 (4 KiB) and 67108864 (64 MiB)",
            ));
        }
        let counts = [
            ("api.max_watch_streams", self.api.max_watch_streams),
            (
                "api.max_watch_streams_per_tenant",
                self.api.max_watch_streams_per_tenant,
            ),
            (
                "api.max_admin_watch_streams",
                self.api.max_admin_watch_streams,
            ),
            (
                "api.rate_limit_per_second",
                self.api.rate_limit_per_second as usize,
            ),
            ("api.rate_limit_burst", self.api.rate_limit_burst as usize),
            (
                "api.auth_failures_per_second",
                self.api.auth_failures_per_second as usize,
            ),
            (
                "api.auth_failure_burst",
                self.api.auth_failure_burst as usize,
            ),
        ];
        for (field, value) in counts {
            if !(1..=1_000_000).contains(&value) {
                return Err(invalid(field, "must be between 1 and 1000000"));
            }
        }
        let jsonrpc = self.jsonrpc_settings()?;
        if !(10..=3600).contains(&self.api.stamp_window_secs) {
            return Err(invalid(
                "api.stamp_window_secs",
                "must be between 10 and 3600",
            ));
        }
        for origin in &self.api.cors_allowed_origins {
            check_origin(origin).map_err(|reason| ConfigError::Invalid {
                field: "api.cors_allowed_origins",
                reason: format!("{origin:?}: {reason}"),
            })?;
        }
        let tls = self.tls.identity()?;
        let master_key = self.keys.master_key()?;
        if let Some(token) = &self.admin.token {
            // Never echo the token: the reason says what is wrong with it, not what it is.
            if token.chars().count() < MIN_ADMIN_TOKEN_CHARS {
                return Err(ConfigError::Invalid {
                    field: "admin.token",
                    reason: format!(
                        "must be at least {MIN_ADMIN_TOKEN_CHARS} characters; generate one \
                         with `openssl rand -hex 32`"
                    ),
                });
            }
            if !token.bytes().all(|byte| byte.is_ascii_graphic()) {
                return Err(invalid(
                    "admin.token",
                    "must be visible ASCII characters only (no spaces), as it travels in a \
                     header",
                ));
            }
            // Port 0 asks for any free port, so only fixed ports can clash.
            let clashes = |other: SocketAddr| other.port() != 0 && other == self.admin.listen;
            if clashes(self.listen) || self.metrics_listen.is_some_and(clashes) {
                return Err(invalid(
                    "admin.listen",
                    "must differ from listen and metrics_listen",
                ));
            }
        }
        if !(10_000..=1_000_000).contains(&self.sponsor.verification_gas_limit) {
            return Err(invalid(
                "sponsor.verification_gas_limit",
                "must be between 10000 and 1000000",
            ));
        }
        let chain = ChainSettings {
            rpc_url,
            rpc_timeout: Duration::from_secs(self.chain.rpc_timeout_secs),
            entry_point: self.chain.entry_point,
            factory: self.factory(),
            max_fee_per_gas_wei: u128::from(self.chain.max_fee_per_gas_gwei) * 1_000_000_000,
        };
        let relayer = &self.relayer;
        let relay = RelayConfig {
            poll_interval: Duration::from_millis(relayer.poll_interval_ms),
            max_backoff: Duration::from_millis(relayer.max_backoff_ms),
            max_in_flight: relayer.max_in_flight,
            max_bundle_gas: u128::from(relayer.max_bundle_gas),
            max_ops_per_bundle: relayer.max_ops_per_bundle,
            confirmations: relayer.confirmations,
            bump_after_blocks: relayer.bump_after_blocks,
            fee_bump_percent: relayer.fee_bump_percent,
            queue_timeout: Duration::from_secs(relayer.queue_timeout_secs),
            shutdown_grace: Duration::from_secs(relayer.shutdown_grace_secs),
            window_margin_secs: relayer.window_margin_secs,
            signature_timeout: Duration::from_secs(self.intents.signature_timeout_secs),
            sponsor_signer: sponsor_signer.as_ref().map(|(_, signer)| signer.clone()),
        };
        let sponsor = sponsor_signer.map(|(paymaster, signer)| Sponsor {
            paymaster,
            signer,
            approval_validity_secs: self.sponsor.approval_validity_secs,
            verification_gas_limit: u128::from(self.sponsor.verification_gas_limit),
        });
        Ok(Settings {
            listen: self.listen,
            data_dir: self.data_dir,
            metrics_listen: self.metrics_listen,
            chain,
            relayers,
            relay,
            sponsor,
            intents: self.intents,
            admin: self.admin,
            master_key,
            api: self.api,
            tls,
            jsonrpc,
        })
    }

    /// The bundler JSON-RPC's settings, each limit checked.
    fn jsonrpc_settings(&self) -> Result<JsonRpcSettings, ConfigError> {
        let jsonrpc = &self.jsonrpc;
        let open_tenant = match &jsonrpc.open_tenant {
            Some(name) => Some(
                crate::ids::TenantId::parse(name)
                    .map_err(|reason| invalid("jsonrpc.open_tenant", &reason))?,
            ),
            None => None,
        };
        if !(1024..=16 * 1024 * 1024).contains(&jsonrpc.max_request_bytes) {
            return Err(invalid(
                "jsonrpc.max_request_bytes",
                "must be from 1024 to 16777216",
            ));
        }
        if !(1..=1000).contains(&jsonrpc.max_batch_calls) {
            return Err(invalid("jsonrpc.max_batch_calls", "must be from 1 to 1000"));
        }
        if !(1..=1024).contains(&jsonrpc.max_operations_per_sender) {
            return Err(invalid(
                "jsonrpc.max_operations_per_sender",
                "must be from 1 to 1024",
            ));
        }
        Ok(JsonRpcSettings {
            listen: jsonrpc.listen,
            open_tenant,
            max_request_bytes: jsonrpc.max_request_bytes,
            max_batch_calls: jsonrpc.max_batch_calls,
            max_operations_per_sender: jsonrpc.max_operations_per_sender,
            trace_validation: jsonrpc.trace_validation,
        })
    }

    /// The paymaster and the key that approves for it, when sponsorship is configured;
    /// an error when only one of the two is set.
    fn sponsor_signer(&self) -> Result<Option<(Address, PrivateKeySigner)>, ConfigError> {
        match (&self.sponsor.paymaster, &self.sponsor.signer_private_key) {
            (None, None) => Ok(None),
            (Some(paymaster), Some(key)) => {
                let signer = PrivateKeySigner::from_str(key.trim()).map_err(|_| {
                    invalid(
                        "sponsor.signer_private_key",
                        "not a 0x-prefixed 32-byte secp256k1 key",
                    )
                })?;
                Ok(Some((*paymaster, signer)))
            }
            (Some(_), None) => Err(invalid(
                "sponsor.signer_private_key",
                "required with sponsor.paymaster; set it in the file or in \
                 LATCHKEY_SPONSOR_SIGNER_KEY",
            )),
            (None, Some(_)) => Err(invalid(
                "sponsor.paymaster",
                "required with sponsor.signer_private_key",
            )),
        }
    }

    /// The relayers' signers: `private_key` (which may list several keys separated by
    /// commas, as LATCHKEY_RELAYER_PRIVATE_KEY can), then `private_keys`, then the keys
    /// derived from `mnemonic`. At least one, and no key twice.
    fn relayer_signers(&self) -> Result<Vec<PrivateKeySigner>, ConfigError> {
        let listed = self
            .relayer
            .private_key
            .iter()
            .flat_map(|keys| keys.split(','))
            .chain(self.relayer.private_keys.iter().map(String::as_str))
            .map(str::trim)
            .filter(|key| !key.is_empty());
        let mut signers: Vec<PrivateKeySigner> = Vec::new();
        for key in listed {
            let signer = PrivateKeySigner::from_str(key).map_err(|_| {
                invalid(
                    "relayer.private_key",
                    "not a 0x-prefixed 32-byte secp256k1 key",
                )
            })?;
            push_new(
                &mut signers,
                signer,
                invalid("relayer.private_keys", "the same key is listed twice"),
            )?;
        }
        if let Some(phrase) = &self.relayer.mnemonic {
            for index in 0..self.relayer.mnemonic_accounts {
                let signer = MnemonicBuilder::<English>::default()
                    .phrase(phrase.trim())
                    .index(index)
                    .and_then(|builder| builder.build())
                    .map_err(|_| {
                        invalid("relayer.mnemonic", "not a valid BIP-39 English mnemonic")
                    })?;
                push_new(
                    &mut signers,
                    signer,
                    invalid(
                        "relayer.mnemonic",
                        "derives a key that is also listed in relayer.private_key(s)",
                    ),
                )?;
            }
        }
        if signers.is_empty() {
            return Err(invalid(
                "relayer.private_key",
                "required; set it in the file or in LATCHKEY_RELAYER_PRIVATE_KEY (or set \
                 relayer.mnemonic)",
            ));
        }
        Ok(signers)
    }

    /// The factory: configured, or the deterministic address for the EntryPoint.
    pub fn factory(&self) -> Address {
        self.chain
            .factory
            .unwrap_or_else(|| deploy::expected_addresses(self.chain.entry_point).factory)
    }
}

/// Adds `signer` unless its key is already there: one key relaying as two relayers would
/// race itself for nonces.
fn push_new(
    signers: &mut Vec<PrivateKeySigner>,
    signer: PrivateKeySigner,
    twice: ConfigError,
) -> Result<(), ConfigError> {
    if signers
        .iter()
        .any(|known| known.address() == signer.address())
    {
        return Err(twice);
    }
    signers.push(signer);
    Ok(())
}

fn invalid(field: &'static str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        field,
        reason: reason.to_owned(),
    }
}

/// Whether `text` is a web origin as a browser sends it: `http` or `https`, a host, an
/// optional port, and nothing else (no path, no trailing `/`).
fn check_origin(text: &str) -> Result<(), &'static str> {
    let url = url::Url::parse(text).map_err(|_| "not a URL such as https://game.example")?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("the scheme must be http or https");
    }
    if url.origin().ascii_serialization() != text {
        return Err(
            "an origin is the scheme, the host and the port alone, as browsers send it \
             (https://game.example, http://localhost:5173: no path, no trailing /, lowercase)",
        );
    }
    Ok(())
}

fn parse<T: FromStr>(field: &'static str, value: &str) -> Result<T, ConfigError> {
    value
        .parse()
        .map_err(|_| invalid(field, &format!("cannot parse {value:?}")))
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    const KEY: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
    const MASTER_KEY: &str = "4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d";

    /// The command line `latchkey serve` parses its configuration from.
    #[derive(Parser)]
    struct Serve {
        #[command(flatten)]
        args: ConfigArgs,
    }

    /// The layers above the file with what every valid configuration needs from them: a
    /// relayer key and the master key, as the environment gives them.
    fn needed() -> ConfigArgs {
        ConfigArgs {
            relayer_private_key: Some(KEY.to_owned()),
            master_key: Some(MASTER_KEY.to_owned()),
            ..ConfigArgs::default()
        }
    }

    /// The defaults and [`needed`]: a configuration that validates.
    fn valid() -> Config {
        Config::load(needed()).unwrap()
    }

    /// `toml` as the configuration file, under `args`.
    fn with_file(toml: &str, args: ConfigArgs) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latchkey.toml");
        std::fs::write(&path, toml).unwrap();
        Config::load(ConfigArgs {
            config: Some(path),
            ..args
        })
    }

    /// Whether `error` is about `field`, named as the file names it.
    fn names(error: &ConfigError, field: &str) -> bool {
        matches!(error, ConfigError::Invalid { field: found, .. } if *found == field)
    }

    #[test]
    fn layers_apply_in_order_file_env_flags() {
        let config = with_file(
            "listen = \"127.0.0.1:6000\"\ndata_dir = \"/from/file\"\n[chain]\nrpc_url = \"http://file:8545\"\n",
            ConfigArgs {
                rpc_url: Some("http://env:8545".to_owned()),
                data_dir: Some("/from/flag".into()),
                ..needed()
            },
        )
        .unwrap();
        assert_eq!(config.listen.port(), 6000, "file over default");
        assert_eq!(config.chain.rpc_url, "http://env:8545", "env over file");
        assert_eq!(
            config.data_dir,
            PathBuf::from("/from/flag"),
            "flag over file"
        );
        assert!(
            !format!("{config:?}").contains(&KEY[2..]),
            "the key never appears in Debug"
        );
        let settings = config.validate().unwrap();
        assert_eq!(settings.chain.rpc_url.as_str(), "http://env:8545/");
        assert!(!format!("{settings:?}").contains(&KEY[2..]));
        assert!(!format!("{settings:?}").contains(MASTER_KEY));
        assert!(!format!("{:?}", needed()).contains(&KEY[2..]));
        assert!(!format!("{:?}", needed()).contains(MASTER_KEY));
    }

    #[test]
    fn flags_lay_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latchkey.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:6000\"\n[chain]\nrpc_url = \"http://file:8545\"\n",
        )
        .unwrap();
        let paymaster = "0x52908400098527886e0f7030069857d2e4169ee7";
        let path = path.display().to_string();
        let flags = [
            ("--config", path.as_str()),
            ("--listen", "127.0.0.1:7000"),
            ("--metrics-listen", "127.0.0.1:7001"),
            ("--admin-listen", "127.0.0.1:7002"),
            ("--admin-token", "0123456789abcdef0123456789abcdef"),
            ("--data-dir", "/from/flag"),
            ("--rpc-url", "http://flag:8545"),
            ("--factory", paymaster),
            ("--relayer-private-key", KEY),
            ("--master-key", MASTER_KEY),
            ("--paymaster", paymaster),
            ("--sponsor-signer-key", KEY),
        ];
        let command_line = std::iter::once("latchkey")
            .chain(flags.iter().flat_map(|(flag, value)| [*flag, *value]));
        let args = Serve::try_parse_from(command_line).unwrap().args;
        let config = Config::load(args).unwrap();
        assert_eq!(config.listen.port(), 7000, "flag over file");
        assert_eq!(config.metrics_listen.map(|addr| addr.port()), Some(7001));
        assert_eq!(config.admin.listen.port(), 7002);
        assert_eq!(config.chain.rpc_url, "http://flag:8545", "flag over file");
        assert_eq!(config.data_dir, PathBuf::from("/from/flag"));
        assert_eq!(config.chain.factory, Some(paymaster.parse().unwrap()));
        let settings = config.validate().unwrap();
        assert_eq!(
            settings.relayers[0].address(),
            PrivateKeySigner::from_str(KEY).unwrap().address()
        );
        assert_eq!(
            settings.master_key.id_hex(),
            MasterKey::from_hex(MASTER_KEY).unwrap().id_hex()
        );
        assert_eq!(
            settings.sponsor.map(|sponsor| sponsor.paymaster),
            Some(paymaster.parse().unwrap())
        );
        assert!(settings.admin.token.is_some());
    }

    #[test]
    fn every_variable_has_its_flag_and_secret_values_stay_out_of_the_help() {
        let command = Serve::command();
        let declared: Vec<(&str, String, bool)> = command
            .get_arguments()
            .filter_map(|arg| {
                let env = arg.get_env()?.to_string_lossy().into_owned();
                Some((arg.get_long()?, env, arg.is_hide_env_values_set()))
            })
            .collect();
        let expected = [
            ("listen", "LATCHKEY_LISTEN", false),
            ("metrics-listen", "LATCHKEY_METRICS_LISTEN", false),
            ("admin-listen", "LATCHKEY_ADMIN_LISTEN", false),
            ("admin-token", "LATCHKEY_ADMIN_TOKEN", true),
            ("tls-cert-file", "LATCHKEY_TLS_CERT_FILE", false),
            ("tls-key-file", "LATCHKEY_TLS_KEY_FILE", false),
            ("master-key", "LATCHKEY_MASTER_KEY", true),
            ("master-key-file", "LATCHKEY_MASTER_KEY_FILE", false),
            ("data-dir", "LATCHKEY_DATA_DIR", false),
            ("rpc-url", "LATCHKEY_RPC_URL", false),
            ("entry-point", "LATCHKEY_ENTRY_POINT", false),
            ("factory", "LATCHKEY_FACTORY", false),
            ("relayer-private-key", "LATCHKEY_RELAYER_PRIVATE_KEY", true),
            ("relayer-mnemonic", "LATCHKEY_RELAYER_MNEMONIC", true),
            ("paymaster", "LATCHKEY_PAYMASTER", false),
            ("sponsor-signer-key", "LATCHKEY_SPONSOR_SIGNER_KEY", true),
        ]
        .map(|(flag, env, secret)| (flag, env.to_owned(), secret));
        assert_eq!(declared, expected);
    }

    #[test]
    fn the_example_file_parses_to_the_defaults_and_names_every_field() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/latchkey.example.toml");
        let config = Config::load(ConfigArgs {
            config: Some(path.clone()),
            ..ConfigArgs::default()
        })
        .unwrap();
        // Debug shows every field (secrets only as set or not), so equal texts are equal
        // configurations.
        assert_eq!(format!("{config:?}"), format!("{:?}", Config::default()));
        let with_keys = Config::load(ConfigArgs {
            config: Some(path.clone()),
            ..needed()
        })
        .unwrap();
        assert!(with_keys.validate().is_ok(), "the example is valid");
        // Commented-out fields are documented too.
        let text = std::fs::read_to_string(&path).unwrap();
        for field in [
            "metrics_listen",
            "factory",
            "private_key",
            "private_keys",
            "mnemonic",
            "paymaster",
            "signer_private_key",
            "token",
            "cert_file",
            "key_file",
            "master_key",
            "master_key_file",
        ] {
            assert!(
                text.contains(&format!("# {field} = ")),
                "{field} is documented"
            );
        }
        // The documented factory is the one latchkey derives.
        assert!(
            text.contains(&config.factory().to_string()),
            "the example names the derived factory"
        );
    }

    #[test]
    fn sponsorship_needs_the_paymaster_and_its_signer_together_and_approvals_that_outlive_the_waits()
     {
        let paymaster = "0x52908400098527886e0f7030069857d2e4169ee7";
        let validate = |paymaster: Option<&str>, signer: Option<&str>| {
            Config::load(ConfigArgs {
                paymaster: paymaster.map(str::to_owned),
                sponsor_signer_key: signer.map(str::to_owned),
                ..needed()
            })
            .and_then(Config::validate)
        };
        let configured = Config::load(ConfigArgs {
            paymaster: Some(paymaster.to_owned()),
            sponsor_signer_key: Some(KEY.to_owned()),
            ..needed()
        })
        .unwrap();
        assert!(
            !format!("{configured:?}").contains(&KEY[2..]),
            "redacted in Debug"
        );
        let off = validate(None, None).unwrap();
        assert!(off.sponsor.is_none());
        let on = validate(Some(paymaster), Some(KEY)).unwrap();
        let sponsor = on.sponsor.as_ref().unwrap();
        assert_eq!(sponsor.paymaster.to_string().to_lowercase(), paymaster);
        assert_eq!(
            sponsor.signer.address(),
            PrivateKeySigner::from_str(KEY).unwrap().address()
        );
        assert!(!format!("{on:?}").contains(&KEY[2..]), "redacted in Debug");
        for (paymaster, signer, field) in [
            (Some(paymaster), None, "sponsor.signer_private_key"),
            (None, Some(KEY), "sponsor.paymaster"),
            (
                Some(paymaster),
                Some("0x1234"),
                "sponsor.signer_private_key",
            ),
        ] {
            let error = validate(paymaster, signer).unwrap_err();
            assert!(names(&error, field), "{error}");
        }
        let mut short = valid();
        short.sponsor.approval_validity_secs = 899;
        assert!(
            short.clone().validate().is_ok(),
            "without sponsorship the validity is not used"
        );
        short.sponsor.paymaster = Some(paymaster.parse().unwrap());
        short.sponsor.signer_private_key = Some(KEY.to_owned());
        let error = short.validate().unwrap_err();
        assert!(
            error.to_string().contains("sponsor.approval_validity_secs")
                && error.to_string().contains("900"),
            "{error}"
        );
    }

    #[test]
    fn api_limits_out_of_range_are_refused_by_name() {
        let validate = |adjust: fn(&mut Config)| {
            let mut config = valid();
            adjust(&mut config);
            config.validate()
        };
        for (adjust, field) in [
            (
                (|c: &mut Config| c.api.max_request_bytes = 100) as fn(&mut Config),
                "api.max_request_bytes",
            ),
            (
                |c: &mut Config| c.api.max_request_bytes = 1 << 30,
                "api.max_request_bytes",
            ),
            (
                |c: &mut Config| c.api.max_watch_streams = 0,
                "api.max_watch_streams",
            ),
            (
                |c: &mut Config| c.api.rate_limit_per_second = 0,
                "api.rate_limit_per_second",
            ),
            (
                |c: &mut Config| c.api.rate_limit_burst = 2_000_000,
                "api.rate_limit_burst",
            ),
        ] {
            let error = validate(adjust).unwrap_err().to_string();
            assert!(error.contains(field), "{error}");
        }
        assert!(validate(|c| c.api.max_watch_streams = 1).is_ok());
    }

    #[test]
    fn cors_origins_and_the_stamp_window_are_checked_by_name() {
        let validate = |adjust: &dyn Fn(&mut Config)| {
            let mut config = valid();
            adjust(&mut config);
            config.validate().map(|_| ())
        };
        for good in [
            "https://game.example",
            "http://localhost:5173",
            "http://127.0.0.1:8080",
        ] {
            assert!(
                validate(&|c| c.api.cors_allowed_origins = vec![good.to_owned()]).is_ok(),
                "{good}"
            );
        }
        for bad in [
            "*",
            "game.example",
            "https://game.example/",
            "https://game.example/play",
            "https://Game.example",
            "ftp://game.example",
            "https://game.example:443",
        ] {
            let error = validate(&|c| c.api.cors_allowed_origins = vec![bad.to_owned()])
                .unwrap_err()
                .to_string();
            assert!(error.contains("api.cors_allowed_origins"), "{bad}: {error}");
        }
        for window in [0, 9, 3601] {
            let error = validate(&|c| c.api.stamp_window_secs = window)
                .unwrap_err()
                .to_string();
            assert!(error.contains("api.stamp_window_secs"), "{error}");
        }
    }

    #[test]
    fn tls_needs_a_readable_pem_certificate_and_key_together() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        let junk = dir.path().join("junk.pem");
        std::fs::write(
            &cert,
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        std::fs::write(
            &key,
            "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        std::fs::write(&junk, "not pem").unwrap();
        let missing = dir.path().join("missing.pem");
        let tls = |cert: Option<&std::path::Path>, key: Option<&std::path::Path>| TlsConfig {
            cert_file: cert.map(std::path::Path::to_owned),
            key_file: key.map(std::path::Path::to_owned),
        };
        assert!(tls(None, None).identity().unwrap().is_none());
        let identity = tls(Some(&cert), Some(&key)).identity().unwrap().unwrap();
        assert!(
            identity
                .cert_pem
                .starts_with(b"-----BEGIN CERTIFICATE-----")
        );
        // Validation reads the files into the settings the daemon serves with.
        let settings = Config {
            tls: tls(Some(&cert), Some(&key)),
            ..valid()
        }
        .validate()
        .unwrap();
        let identity = settings.tls.unwrap();
        assert!(identity.key_pem.starts_with(b"-----BEGIN PRIVATE KEY-----"));
        for (config, field, says) in [
            (tls(Some(&cert), None), "tls.key_file", "required"),
            (tls(None, Some(&key)), "tls.cert_file", "required"),
            (
                tls(Some(&missing), Some(&key)),
                "tls.cert_file",
                "cannot read",
            ),
            (
                tls(Some(&junk), Some(&key)),
                "tls.cert_file",
                "no PEM certificate",
            ),
            (
                tls(Some(&cert), Some(&junk)),
                "tls.key_file",
                "no PEM private key",
            ),
        ] {
            let error = Config {
                tls: config,
                ..valid()
            }
            .validate()
            .expect_err("refused");
            let text = error.to_string();
            assert!(names(&error, field) && text.contains(says), "{text}");
        }
    }

    #[test]
    fn the_admin_token_must_be_long_visible_and_never_shown() {
        let load = |token: &str| {
            Config::load(ConfigArgs {
                admin_token: Some(token.to_owned()),
                ..needed()
            })
            .unwrap()
        };
        let good = "0123456789abcdef0123456789abcdef";
        let config = load(good);
        assert_eq!(config.admin.token.as_deref(), Some(good));
        assert!(!format!("{config:?}").contains(good), "never in Debug");
        let settings = config.validate().unwrap();
        assert_eq!(settings.admin.token.as_deref(), Some(good));
        assert!(!format!("{settings:?}").contains(good), "never in Debug");
        for bad in [
            "short",
            "0123456789abcdef 0123456789abcdef",
            "0123456789abcdef\n0123456789abcdef",
        ] {
            let error = load(bad).validate().unwrap_err().to_string();
            assert!(error.contains("admin.token"), "{error}");
            assert!(!error.contains(bad), "the token is not echoed: {error}");
        }
        let clash = Config::load(ConfigArgs {
            admin_token: Some(good.to_owned()),
            admin_listen: Some("127.0.0.1:50051".to_owned()),
            ..needed()
        })
        .and_then(Config::validate)
        .unwrap_err();
        assert!(clash.to_string().contains("admin.listen"), "{clash}");
        // Without a token the service is off, and any listen address is fine.
        let off = valid().validate().unwrap();
        assert!(off.admin.token.is_none());
    }

    #[test]
    fn a_partial_section_keeps_the_defaults_of_the_fields_it_leaves_out() {
        let config = with_file(
            "[relayer]\npoll_interval_ms = 5\n[intents]\nwindow_margin_secs = 7\n",
            needed(),
        )
        .unwrap();
        let defaults = Config::default();
        assert_eq!(config.relayer.poll_interval_ms, 5);
        assert_eq!(config.relayer.max_in_flight, defaults.relayer.max_in_flight);
        assert_eq!(
            config.relayer.max_bundle_gas,
            defaults.relayer.max_bundle_gas
        );
        assert_eq!(config.intents.window_margin_secs, 7);
        assert_eq!(
            config.intents.signature_timeout_secs,
            defaults.intents.signature_timeout_secs
        );
        assert!(config.validate().is_ok());
    }

    #[test]
    fn several_relayer_keys_come_from_the_list_and_the_environment() {
        const OTHER: &str = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a";
        let validate = |keys: String| {
            Config::load(ConfigArgs {
                relayer_private_key: Some(keys),
                ..needed()
            })
            .and_then(Config::validate)
        };
        let settings = validate(format!("{KEY}, {OTHER}")).unwrap();
        assert_eq!(settings.relayers.len(), 2);
        let twice = validate(format!("{KEY},{KEY}")).unwrap_err();
        assert!(twice.to_string().contains("twice"), "{twice}");
        assert!(
            !format!("{settings:?}").contains(&OTHER[2..]),
            "keys never appear in Debug"
        );
        let mut listed = valid();
        listed.relayer.private_keys = vec![OTHER.to_owned()];
        assert!(
            !format!("{listed:?}").contains(&OTHER[2..]),
            "keys never appear in Debug"
        );
        assert_eq!(listed.validate().unwrap().relayers.len(), 2);
    }

    #[test]
    fn relayers_derive_from_a_mnemonic_at_the_standard_path() {
        // The well-known development mnemonic: its first accounts are public knowledge.
        const MNEMONIC: &str = "test test test test test test test test test test test junk";
        let load = |mnemonic: &str| {
            Config::load(ConfigArgs {
                relayer_mnemonic: Some(mnemonic.to_owned()),
                relayer_private_key: None,
                ..needed()
            })
        };
        let config = load(MNEMONIC).unwrap();
        let signers = config.clone().validate().unwrap().relayers;
        assert_eq!(signers.len(), 1);
        assert_eq!(
            signers[0].address().to_string(),
            "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
        );
        let mut three = config.clone();
        three.relayer.mnemonic_accounts = 3;
        let listed = PrivateKeySigner::random();
        three.relayer.private_key = Some(format!("0x{}", alloy::hex::encode(listed.to_bytes())));
        assert!(
            !format!("{three:?}").contains("junk"),
            "the mnemonic never appears in Debug"
        );
        let signers = three.validate().unwrap().relayers;
        assert_eq!(signers[0].address(), listed.address());
        assert_eq!(signers.len(), 4, "the listed key, then the derived ones");
        assert_eq!(
            signers[2].address().to_string(),
            "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
        );
        let bad = load("not a mnemonic")
            .and_then(Config::validate)
            .unwrap_err();
        assert!(bad.to_string().contains("relayer.mnemonic"), "{bad}");
        // KEY is the mnemonic's second account: one key must not relay as two.
        let mut twice = config;
        twice.relayer.mnemonic_accounts = 2;
        twice.relayer.private_key = Some(KEY.to_owned());
        let error = twice.validate().unwrap_err();
        assert!(error.to_string().contains("also listed"), "{error}");
    }

    #[test]
    fn relay_settings_out_of_range_are_refused_by_name() {
        type Breakage = fn(&mut Config);
        let cases: [(&str, Breakage); 12] = [
            ("relayer.confirmations", |c| c.relayer.confirmations = 0),
            ("relayer.bump_after_blocks", |c| {
                c.relayer.bump_after_blocks = 0
            }),
            ("relayer.fee_bump_percent", |c| {
                c.relayer.fee_bump_percent = 9
            }),
            ("relayer.queue_timeout_secs", |c| {
                c.relayer.queue_timeout_secs = 0
            }),
            ("relayer.max_backoff_ms", |c| c.relayer.max_backoff_ms = 10),
            ("relayer.window_margin_secs", |c| {
                c.relayer.window_margin_secs = c.intents.window_margin_secs
            }),
            ("relayer.mnemonic_accounts", |c| {
                c.relayer.mnemonic = Some("x".into());
                c.relayer.mnemonic_accounts = 0;
            }),
            ("relayer.max_ops_per_bundle", |c| {
                c.relayer.max_ops_per_bundle = 0
            }),
            ("relayer.max_in_flight", |c| c.relayer.max_in_flight = 0),
            ("relayer.poll_interval_ms", |c| {
                c.relayer.poll_interval_ms = 0
            }),
            ("relayer.max_bundle_gas", |c| {
                c.relayer.max_bundle_gas = 999_999
            }),
            ("relayer.shutdown_grace_secs", |c| {
                c.relayer.shutdown_grace_secs = 3_601
            }),
        ];
        assert!(valid().validate().is_ok());
        for (field, break_it) in cases {
            let mut config = valid();
            break_it(&mut config);
            let error = config.validate().unwrap_err();
            assert!(error.to_string().contains(field), "{field}: {error}");
        }
    }

    #[test]
    fn errors_name_the_field() {
        let missing = Config::default().validate().unwrap_err();
        assert!(
            missing.to_string().contains("relayer.private_key"),
            "{missing}"
        );
        let no_master_key = Config::load(ConfigArgs {
            master_key: None,
            ..needed()
        })
        .and_then(Config::validate)
        .unwrap_err();
        assert!(names(&no_master_key, "keys.master_key"), "{no_master_key}");
        let bad_url = Config::load(ConfigArgs {
            rpc_url: Some("not a url".to_owned()),
            ..needed()
        })
        .and_then(Config::validate)
        .unwrap_err();
        assert!(bad_url.to_string().contains("chain.rpc_url"), "{bad_url}");
        // A value the environment or a flag gives is named by its field, as one in the file.
        for (args, field) in [
            (
                ConfigArgs {
                    listen: Some("nowhere".to_owned()),
                    ..needed()
                },
                "listen",
            ),
            (
                ConfigArgs {
                    paymaster: Some("0x1234".to_owned()),
                    ..needed()
                },
                "sponsor.paymaster",
            ),
        ] {
            let error = Config::load(args).unwrap_err();
            assert!(names(&error, field), "{error}");
        }

        let typo = with_file("[chain]\nrpc_uri = \"typo\"\n", needed()).unwrap_err();
        assert!(typo.to_string().contains("rpc_uri"), "{typo}");
    }
}
