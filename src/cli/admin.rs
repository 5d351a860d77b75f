//! How the operator commands (`status`, `session`, `intent`, `relayer`, `api-key`) reach the
//! daemon's admin service: its own endpoint ([`ClientArgs::connect_admin`]), and a
//! credential (the admin token or an ADMIN key) on every call.
//!
//! [`ClientArgs::connect_admin`]: super::ClientArgs::connect_admin

use tonic::{
    Request, Status,
    metadata::MetadataValue,
    service::{Interceptor, interceptor::InterceptedService},
    transport::Channel,
};

use super::Secret;
use crate::api::proto::admin_service_client::AdminServiceClient;

/// A client of the admin service that sends the token with every call.
pub type AdminClient = AdminServiceClient<InterceptedService<Channel, BearerToken>>;

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct BearerToken(MetadataValue<tonic::metadata::Ascii>);

impl BearerToken {
    /// The header that carries `credential`.
    pub fn new(credential: &Secret) -> anyhow::Result<Self> {
        MetadataValue::try_from(format!("Bearer {}", credential.expose()))
            .map(Self)
            .map_err(|_| anyhow::anyhow!("the credential has characters a header cannot carry"))
    }
}

impl Interceptor for BearerToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}
