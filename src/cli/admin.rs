//! How the operator commands (`status`, `session`, `intent`, `relayer`, `api-key`) reach the
//! daemon's admin service: its own endpoint, and a credential (the admin token or an ADMIN
//! key) on every call.

use std::{fmt, str::FromStr};

use anyhow::Context;
use tonic::{
    Request, Status,
    metadata::MetadataValue,
    service::{Interceptor, interceptor::InterceptedService},
    transport::Channel,
};

use crate::api::proto::admin_service_client::AdminServiceClient;

/// A client of the admin service that sends the token with every call.
pub type AdminClient = AdminServiceClient<InterceptedService<Channel, BearerToken>>;

/// How an operator command reaches the admin service and prints what it gets.
#[derive(Debug, Clone, clap::Args)]
pub struct AdminArgs {
    /// The daemon's admin endpoint (`admin.listen`).
    #[arg(
        long,
        global = true,
        env = "LATCHKEY_ADMIN_ENDPOINT",
        default_value = "http://127.0.0.1:50052",
        value_name = "URL"
    )]
    pub admin_endpoint: String,
    /// The admin token (`admin.token`) or an API key with the ADMIN scope. Prefer
    /// LATCHKEY_ADMIN_TOKEN: other users of the machine can read command lines in the
    /// process list.
    #[arg(
        long,
        global = true,
        env = "LATCHKEY_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub admin_token: Option<Token>,
    /// PEM file of the CA that signed the daemon's TLS certificate, for an https://
    /// endpoint whose certificate is not publicly trusted.
    #[arg(long, global = true, env = "LATCHKEY_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<std::path::PathBuf>,
    /// Print machine-readable JSON instead of a table; gas and wei as decimal strings.
    #[arg(long, global = true)]
    pub json: bool,
}

/// A credential (the admin token or an API key). It never shows: not in `Debug`, and not
/// in an error (this parse cannot fail, so clap never echoes it).
#[derive(Clone)]
pub struct Token(String);

impl Token {
    /// A token from its text.
    pub fn new(text: &str) -> Self {
        Self(text.trim().to_owned())
    }

    /// `authorization: Bearer <token>` for every call.
    pub fn bearer(&self) -> anyhow::Result<BearerToken> {
        MetadataValue::try_from(format!("Bearer {}", self.0))
            .map(BearerToken)
            .map_err(|_| anyhow::anyhow!("the credential has characters a header cannot carry"))
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl FromStr for Token {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Self(text.trim().to_owned()))
    }
}

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct BearerToken(MetadataValue<tonic::metadata::Ascii>);

impl Interceptor for BearerToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

impl AdminArgs {
    /// A client of the admin service, connected now so that a wrong endpoint or a missing
    /// token fails with a message that says which.
    pub async fn connect(&self) -> anyhow::Result<AdminClient> {
        let token = self.admin_token.as_ref().context(
            "no admin token: set LATCHKEY_ADMIN_TOKEN (or pass --admin-token) to the daemon's \
             admin.token or an API key with the ADMIN scope",
        )?;
        let channel =
            super::connect_with(&self.admin_endpoint, self.ca_cert.as_deref(), token, || {
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
