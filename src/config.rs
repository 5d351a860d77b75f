//! Configuration: defaults, then a TOML file, then `LATCHKEY_*` environment variables, then
//! command-line flags. [`Config::validate`] runs at start, so a bad value stops the daemon
//! with a message naming the field instead of failing later.

use std::{net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

use alloy::{
    primitives::Address,
    signers::local::{MnemonicBuilder, PrivateKeySigner, coins_bip39::English},
};
use serde::Deserialize;

use crate::{
    chain::{contracts::ENTRY_POINT_V08, deploy},
    keys::MasterKey,
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
    /// The certificate and key, read from their files; `None` when TLS is off.
    pub fn identity(&self) -> Result<Option<TlsIdentity>, ConfigError> {
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

/// Values given on the command line; they override everything else.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--rpc-url`.
    pub rpc_url: Option<String>,
}

impl Config {
    /// Loads the layers in order and validates the result. `env` is the process environment
    /// (a parameter so tests need not touch the real one).
    pub fn load(
        file: Option<&std::path::Path>,
        env: impl Fn(&str) -> Option<String>,
        overrides: &Overrides,
    ) -> Result<Self, ConfigError> {
        let mut config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                toml::from_str(&text).map_err(|error| ConfigError::Parse {
                    path: path.to_owned(),
                    message: error.to_string(),
                })?
            }
            None => Config::default(),
        };
        config.apply_env(env)?;
        if let Some(listen) = overrides.listen {
            config.listen = listen;
        }
        if let Some(data_dir) = &overrides.data_dir {
            config.data_dir = data_dir.clone();
        }
        if let Some(rpc_url) = &overrides.rpc_url {
            config.chain.rpc_url = rpc_url.clone();
        }
        config.validate()?;
        Ok(config)
    }

    fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(value) = env("LATCHKEY_LISTEN") {
            self.listen = parse("listen", &value)?;
        }
        if let Some(value) = env("LATCHKEY_METRICS_LISTEN") {
            self.metrics_listen = Some(parse("metrics_listen", &value)?);
        }
        if let Some(value) = env("LATCHKEY_ADMIN_LISTEN") {
            self.admin.listen = parse("admin.listen", &value)?;
        }
        if let Some(value) = env("LATCHKEY_ADMIN_TOKEN") {
            self.admin.token = Some(value);
        }
        if let Some(value) = env("LATCHKEY_TLS_CERT_FILE") {
            self.tls.cert_file = Some(PathBuf::from(value));
        }
        if let Some(value) = env("LATCHKEY_TLS_KEY_FILE") {
            self.tls.key_file = Some(PathBuf::from(value));
        }
        if let Some(value) = env("LATCHKEY_MASTER_KEY") {
            self.keys.master_key = Some(value);
        }
        if let Some(value) = env("LATCHKEY_MASTER_KEY_FILE") {
            self.keys.master_key_file = Some(PathBuf::from(value));
        }
        if let Some(value) = env("LATCHKEY_DATA_DIR") {
            self.data_dir = PathBuf::from(value);
        }
        if let Some(value) = env("LATCHKEY_RPC_URL") {
            self.chain.rpc_url = value;
        }
        if let Some(value) = env("LATCHKEY_ENTRY_POINT") {
            self.chain.entry_point = parse("chain.entry_point", &value)?;
        }
        if let Some(value) = env("LATCHKEY_FACTORY") {
            self.chain.factory = Some(parse("chain.factory", &value)?);
        }
        if let Some(value) = env("LATCHKEY_RELAYER_PRIVATE_KEY") {
            self.relayer.private_key = Some(value);
        }
        if let Some(value) = env("LATCHKEY_RELAYER_MNEMONIC") {
            self.relayer.mnemonic = Some(value);
        }
        if let Some(value) = env("LATCHKEY_PAYMASTER") {
            self.sponsor.paymaster = Some(parse("sponsor.paymaster", &value)?);
        }
        if let Some(value) = env("LATCHKEY_SPONSOR_SIGNER_KEY") {
            self.sponsor.signer_private_key = Some(value);
        }
        Ok(())
    }

    /// Checks every field that can be checked without the network.
    pub fn validate(&self) -> Result<(), ConfigError> {
        url::Url::parse(&self.chain.rpc_url).map_err(|error| ConfigError::Invalid {
            field: "chain.rpc_url",
            reason: error.to_string(),
        })?;
        self.relayer_signers()?;
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
        if self.relayer.max_ops_per_bundle == 0 {
            return Err(invalid("relayer.max_ops_per_bundle", "must be at least 1"));
        }
        if self.relayer.max_in_flight == 0 {
            return Err(invalid("relayer.max_in_flight", "must be at least 1"));
        }
        if self.relayer.poll_interval_ms == 0 {
            return Err(invalid("relayer.poll_interval_ms", "must be at least 1"));
        }
        if self.relayer.confirmations == 0 {
            return Err(invalid("relayer.confirmations", "must be at least 1"));
        }
        if self.relayer.bump_after_blocks == 0 {
            return Err(invalid("relayer.bump_after_blocks", "must be at least 1"));
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
        let sponsoring = self.sponsor_signer()?.is_some();
        let waits = self
            .intents
            .signature_timeout_secs
            .saturating_add(self.relayer.queue_timeout_secs);
        if sponsoring && self.sponsor.approval_validity_secs < waits {
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
        self.tls.identity()?;
        if self.keys.master_key.is_some() || self.keys.master_key_file.is_some() {
            self.master_key()?;
        }
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
        Ok(())
    }

    /// The master key, from `keys.master_key` (`LATCHKEY_MASTER_KEY`) or the file
    /// `keys.master_key_file` (`LATCHKEY_MASTER_KEY_FILE`): exactly one is required to
    /// serve. Errors name the field and the file, never the key.
    pub fn master_key(&self) -> Result<MasterKey, ConfigError> {
        self.keys.master_key()
    }

    /// The paymaster and the key that approves for it, when sponsorship is configured;
    /// an error when only one of the two is set.
    pub fn sponsor_signer(&self) -> Result<Option<(Address, PrivateKeySigner)>, ConfigError> {
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
    pub fn relayer_signers(&self) -> Result<Vec<PrivateKeySigner>, ConfigError> {
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

    /// The fee cap in wei.
    pub fn max_fee_per_gas_wei(&self) -> u128 {
        u128::from(self.chain.max_fee_per_gas_gwei) * 1_000_000_000
    }

    /// The signature timeout.
    pub fn signature_timeout(&self) -> Duration {
        Duration::from_secs(self.intents.signature_timeout_secs)
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

fn parse<T: FromStr>(field: &'static str, value: &str) -> Result<T, ConfigError> {
    value
        .parse()
        .map_err(|_| invalid(field, &format!("cannot parse {value:?}")))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const KEY: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| vars.get(name).cloned()
    }

    #[test]
    fn layers_apply_in_order_file_env_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latchkey.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:6000\"\ndata_dir = \"/from/file\"\n[chain]\nrpc_url = \"http://file:8545\"\n",
        )
        .unwrap();
        let overrides = Overrides {
            data_dir: Some("/from/flag".into()),
            ..Default::default()
        };
        let config = Config::load(
            Some(&path),
            env(&[
                ("LATCHKEY_RPC_URL", "http://env:8545"),
                ("LATCHKEY_RELAYER_PRIVATE_KEY", KEY),
            ]),
            &overrides,
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
    }

    #[test]
    fn the_example_file_parses_to_the_defaults_and_names_every_field() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/latchkey.example.toml");
        let config = Config::load(
            Some(&path),
            env(&[("LATCHKEY_RELAYER_PRIVATE_KEY", KEY)]),
            &Overrides::default(),
        )
        .unwrap();
        let defaults = Config::default();
        assert_eq!(config.listen, defaults.listen);
        assert_eq!(config.data_dir, defaults.data_dir);
        assert_eq!(config.chain.rpc_url, defaults.chain.rpc_url);
        assert_eq!(config.chain.entry_point, defaults.chain.entry_point);
        assert_eq!(
            config.chain.max_fee_per_gas_gwei,
            defaults.chain.max_fee_per_gas_gwei
        );
        assert_eq!(
            config.chain.rpc_timeout_secs,
            defaults.chain.rpc_timeout_secs
        );
        assert_eq!(
            config.relayer.poll_interval_ms,
            defaults.relayer.poll_interval_ms
        );
        assert_eq!(config.relayer.max_in_flight, defaults.relayer.max_in_flight);
        assert_eq!(
            config.relayer.max_bundle_gas,
            defaults.relayer.max_bundle_gas
        );
        assert_eq!(
            config.relayer.max_ops_per_bundle,
            defaults.relayer.max_ops_per_bundle
        );
        assert_eq!(
            config.relayer.mnemonic_accounts,
            defaults.relayer.mnemonic_accounts
        );
        assert_eq!(config.relayer.confirmations, defaults.relayer.confirmations);
        assert_eq!(
            config.relayer.bump_after_blocks,
            defaults.relayer.bump_after_blocks
        );
        assert_eq!(
            config.relayer.fee_bump_percent,
            defaults.relayer.fee_bump_percent
        );
        assert_eq!(
            config.relayer.queue_timeout_secs,
            defaults.relayer.queue_timeout_secs
        );
        assert_eq!(
            config.relayer.shutdown_grace_secs,
            defaults.relayer.shutdown_grace_secs
        );
        assert_eq!(
            config.relayer.max_backoff_ms,
            defaults.relayer.max_backoff_ms
        );
        assert_eq!(
            config.relayer.window_margin_secs,
            defaults.relayer.window_margin_secs
        );
        assert_eq!(
            config.intents.signature_timeout_secs,
            defaults.intents.signature_timeout_secs
        );
        assert_eq!(
            config.intents.window_margin_secs,
            defaults.intents.window_margin_secs
        );
        assert_eq!(
            config.sponsor.approval_validity_secs,
            defaults.sponsor.approval_validity_secs
        );
        assert_eq!(
            config.sponsor.verification_gas_limit,
            defaults.sponsor.verification_gas_limit
        );
        assert_eq!(config.admin.listen, defaults.admin.listen);
        assert_eq!(config.api.max_request_bytes, defaults.api.max_request_bytes);
        assert_eq!(config.api.max_watch_streams, defaults.api.max_watch_streams);
        assert_eq!(
            config.api.rate_limit_per_second,
            defaults.api.rate_limit_per_second
        );
        assert_eq!(config.api.rate_limit_burst, defaults.api.rate_limit_burst);
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
        let load = |vars: &[(&str, &str)]| {
            let mut all = vec![("LATCHKEY_RELAYER_PRIVATE_KEY", KEY)];
            all.extend_from_slice(vars);
            Config::load(None, env(&all), &Overrides::default())
        };
        let off = load(&[]).unwrap();
        assert!(off.sponsor_signer().unwrap().is_none());
        let on = load(&[
            ("LATCHKEY_PAYMASTER", paymaster),
            ("LATCHKEY_SPONSOR_SIGNER_KEY", KEY),
        ])
        .unwrap();
        let (address, signer) = on.sponsor_signer().unwrap().unwrap();
        assert_eq!(address.to_string().to_lowercase(), paymaster);
        assert_eq!(
            signer.address(),
            PrivateKeySigner::from_str(KEY).unwrap().address()
        );
        assert!(!format!("{on:?}").contains(&KEY[2..]), "redacted in Debug");
        for (vars, field) in [
            (
                vec![("LATCHKEY_PAYMASTER", paymaster)],
                "sponsor.signer_private_key",
            ),
            (
                vec![("LATCHKEY_SPONSOR_SIGNER_KEY", KEY)],
                "sponsor.paymaster",
            ),
            (
                vec![
                    ("LATCHKEY_PAYMASTER", paymaster),
                    ("LATCHKEY_SPONSOR_SIGNER_KEY", "0x1234"),
                ],
                "sponsor.signer_private_key",
            ),
        ] {
            let error = load(&vars).unwrap_err();
            assert!(
                matches!(&error, ConfigError::Invalid { field: found, .. } if *found == field),
                "{error}"
            );
        }
        let mut short = Config::default();
        short.relayer.private_key = Some(KEY.to_owned());
        short.sponsor.approval_validity_secs = 899;
        assert!(
            short.validate().is_ok(),
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
        let load = |adjust: fn(&mut Config)| {
            let mut config = Config::load(
                None,
                env(&[("LATCHKEY_RELAYER_PRIVATE_KEY", KEY)]),
                &Overrides::default(),
            )
            .unwrap();
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
            let error = load(adjust).unwrap_err().to_string();
            assert!(error.contains(field), "{error}");
        }
        assert!(load(|c| c.api.max_watch_streams = 1).is_ok());
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
            let error = config.identity().err().expect("refused");
            let text = error.to_string();
            assert!(
                matches!(&error, ConfigError::Invalid { field: found, .. } if *found == field)
                    && text.contains(says),
                "{text}"
            );
        }
    }

    #[test]
    fn the_admin_token_must_be_long_visible_and_never_shown() {
        let load = |token: &str| {
            Config::load(
                None,
                env(&[
                    ("LATCHKEY_RELAYER_PRIVATE_KEY", KEY),
                    ("LATCHKEY_ADMIN_TOKEN", token),
                ]),
                &Overrides::default(),
            )
        };
        let good = "0123456789abcdef0123456789abcdef";
        let config = load(good).unwrap();
        assert_eq!(config.admin.token.as_deref(), Some(good));
        assert!(!format!("{config:?}").contains(good), "never in Debug");
        for bad in [
            "short",
            "0123456789abcdef 0123456789abcdef",
            "0123456789abcdef\n0123456789abcdef",
        ] {
            let error = load(bad).unwrap_err().to_string();
            assert!(error.contains("admin.token"), "{error}");
            assert!(!error.contains(bad), "the token is not echoed: {error}");
        }
        let clash = Config::load(
            None,
            env(&[
                ("LATCHKEY_RELAYER_PRIVATE_KEY", KEY),
                ("LATCHKEY_ADMIN_TOKEN", good),
                ("LATCHKEY_ADMIN_LISTEN", "127.0.0.1:50051"),
            ]),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(clash.to_string().contains("admin.listen"), "{clash}");
        // Without a token the service is off, and any listen address is fine.
        let off = Config::load(
            None,
            env(&[("LATCHKEY_RELAYER_PRIVATE_KEY", KEY)]),
            &Overrides::default(),
        )
        .unwrap();
        assert!(off.admin.token.is_none());
    }

    #[test]
    fn a_partial_section_keeps_the_defaults_of_the_fields_it_leaves_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("partial.toml");
        std::fs::write(
            &path,
            "[relayer]\npoll_interval_ms = 5\n[intents]\nwindow_margin_secs = 7\n",
        )
        .unwrap();
        let config = Config::load(
            Some(&path),
            env(&[("LATCHKEY_RELAYER_PRIVATE_KEY", KEY)]),
            &Overrides::default(),
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
    }

    #[test]
    fn several_relayer_keys_come_from_the_list_and_the_environment() {
        const OTHER: &str = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a";
        let config = Config::load(
            None,
            env(&[("LATCHKEY_RELAYER_PRIVATE_KEY", &format!("{KEY}, {OTHER}"))]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(config.relayer_signers().unwrap().len(), 2);
        let twice = Config::load(
            None,
            env(&[("LATCHKEY_RELAYER_PRIVATE_KEY", &format!("{KEY},{KEY}"))]),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(twice.to_string().contains("twice"), "{twice}");
        assert!(
            !format!("{config:?}").contains(&OTHER[2..]),
            "keys never appear in Debug"
        );
    }

    #[test]
    fn relayers_derive_from_a_mnemonic_at_the_standard_path() {
        // The well-known development mnemonic: its first accounts are public knowledge.
        const MNEMONIC: &str = "test test test test test test test test test test test junk";
        let config = Config::load(
            None,
            env(&[("LATCHKEY_RELAYER_MNEMONIC", MNEMONIC)]),
            &Overrides::default(),
        )
        .unwrap();
        let signers = config.relayer_signers().unwrap();
        assert_eq!(signers.len(), 1);
        assert_eq!(
            signers[0].address().to_string(),
            "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
        );
        let mut three = config.clone();
        three.relayer.mnemonic_accounts = 3;
        let listed = PrivateKeySigner::random();
        three.relayer.private_key = Some(format!("0x{}", alloy::hex::encode(listed.to_bytes())));
        let signers = three.relayer_signers().unwrap();
        assert_eq!(signers[0].address(), listed.address());
        assert_eq!(signers.len(), 4, "the listed key, then the derived ones");
        assert_eq!(
            signers[2].address().to_string(),
            "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
        );
        assert!(
            !format!("{three:?}").contains("junk"),
            "the mnemonic never appears in Debug"
        );
        let bad = Config::load(
            None,
            env(&[("LATCHKEY_RELAYER_MNEMONIC", "not a mnemonic")]),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(bad.to_string().contains("relayer.mnemonic"), "{bad}");
        // KEY is the mnemonic's second account: one key must not relay as two.
        let mut twice = config;
        twice.relayer.mnemonic_accounts = 2;
        twice.relayer.private_key = Some(KEY.to_owned());
        let error = twice.relayer_signers().unwrap_err();
        assert!(error.to_string().contains("also listed"), "{error}");
    }

    #[test]
    fn relay_settings_out_of_range_are_refused_by_name() {
        let base = || {
            let mut config = Config::default();
            config.relayer.private_key = Some(KEY.to_owned());
            config
        };
        type Breakage = fn(&mut Config);
        let cases: [(&str, Breakage); 7] = [
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
        ];
        assert!(base().validate().is_ok());
        for (field, break_it) in cases {
            let mut config = base();
            break_it(&mut config);
            let error = config.validate().unwrap_err();
            assert!(error.to_string().contains(field), "{field}: {error}");
        }
    }

    #[test]
    fn errors_name_the_field() {
        let missing = Config::load(None, env(&[]), &Overrides::default()).unwrap_err();
        assert!(
            missing.to_string().contains("relayer.private_key"),
            "{missing}"
        );
        let bad_url = Config::load(
            None,
            env(&[
                ("LATCHKEY_RELAYER_PRIVATE_KEY", KEY),
                ("LATCHKEY_RPC_URL", "not a url"),
            ]),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(bad_url.to_string().contains("chain.rpc_url"), "{bad_url}");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "[chain]\nrpc_uri = \"typo\"\n").unwrap();
        let typo = Config::load(
            Some(&path),
            env(&[("LATCHKEY_RELAYER_PRIVATE_KEY", KEY)]),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(typo.to_string().contains("rpc_uri"), "{typo}");
    }
}
