//! The admin service: the operator's status, inspection, relay controls and API keys, for
//! ADMIN keys and the admin token. It shares its session and intent handlers with the
//! application services, so both read and validate alike; it sees every tenant.

use tonic::{Request, Response, Status};

use super::{
    convert,
    edge::admitted,
    proto::{self, admin_service_server::AdminService},
    services::{get_intent, get_session, list_intents, list_sessions, revoke_session},
    watch::{IntentStream, Watches, watch_intent},
};
use crate::app::App;

/// Serves `AdminService`.
#[derive(Clone)]
pub struct Admin {
    app: App,
    watches: Watches,
}

impl Admin {
    /// The service over `app`, with its watch streams' slots and shutdown.
    pub fn new(app: App, watches: Watches) -> Self {
        Self { app, watches }
    }
}

#[tonic::async_trait]
impl AdminService for Admin {
    async fn create_api_key(
        &self,
        request: Request<proto::CreateApiKeyRequest>,
    ) -> Result<Response<proto::CreateApiKeyResponse>, Status> {
        let (_, request) = admitted(request)?;
        let tenant = convert::tenant("tenant", &request.tenant)?;
        let scopes = convert::api_key_scopes("scopes", &request.scopes)?;
        let client_access = convert::client_access("client_access", request.client_access)?;
        let issued = self
            .app
            .create_api_key(tenant, scopes, client_access, request.display_name)
            .await?;
        Ok(Response::new(proto::CreateApiKeyResponse {
            api_key: Some(convert::api_key_message(&issued.key)),
            secret: issued.token.as_str().to_owned(),
        }))
    }

    async fn list_api_keys(
        &self,
        request: Request<proto::ListApiKeysRequest>,
    ) -> Result<Response<proto::ListApiKeysResponse>, Status> {
        let (_, request) = admitted(request)?;
        let tenant = match request.tenant.as_str() {
            "" => None,
            text => Some(convert::tenant("tenant", text)?),
        };
        let keys = self.app.api_keys(tenant.as_ref()).await?;
        Ok(Response::new(proto::ListApiKeysResponse {
            api_keys: keys.iter().map(convert::api_key_message).collect(),
        }))
    }

    async fn revoke_api_key(
        &self,
        request: Request<proto::RevokeApiKeyRequest>,
    ) -> Result<Response<proto::ApiKey>, Status> {
        let (_, request) = admitted(request)?;
        let id = convert::api_key_name("name", &request.name)?;
        let key = self.app.revoke_api_key(&id).await?;
        Ok(Response::new(convert::api_key_message(&key)))
    }

    async fn get_status(
        &self,
        request: Request<proto::GetStatusRequest>,
    ) -> Result<Response<proto::DaemonStatus>, Status> {
        admitted(request)?;
        let view = self.app.status().await?;
        Ok(Response::new(convert::status_message(&view)))
    }

    async fn get_session(
        &self,
        request: Request<proto::GetSessionRequest>,
    ) -> Result<Response<proto::Session>, Status> {
        let (view, request) = admitted(request)?;
        get_session(&self.app, &view, request)
            .await
            .map(Response::new)
    }

    async fn list_sessions(
        &self,
        request: Request<proto::ListSessionsRequest>,
    ) -> Result<Response<proto::ListSessionsResponse>, Status> {
        let (view, request) = admitted(request)?;
        list_sessions(&self.app, &view, request)
            .await
            .map(Response::new)
    }

    async fn revoke_session(
        &self,
        request: Request<proto::RevokeSessionRequest>,
    ) -> Result<Response<proto::Session>, Status> {
        let (view, request) = admitted(request)?;
        revoke_session(&self.app, &view, request)
            .await
            .map(Response::new)
    }

    async fn get_transaction_intent(
        &self,
        request: Request<proto::GetTransactionIntentRequest>,
    ) -> Result<Response<proto::TransactionIntent>, Status> {
        let (view, request) = admitted(request)?;
        get_intent(&self.app, &view, request)
            .await
            .map(Response::new)
    }

    async fn list_transaction_intents(
        &self,
        request: Request<proto::ListTransactionIntentsRequest>,
    ) -> Result<Response<proto::ListTransactionIntentsResponse>, Status> {
        let (view, request) = admitted(request)?;
        list_intents(&self.app, &view, request)
            .await
            .map(Response::new)
    }

    type WatchTransactionIntentStream = IntentStream;

    async fn watch_transaction_intent(
        &self,
        request: Request<proto::WatchTransactionIntentRequest>,
    ) -> Result<Response<Self::WatchTransactionIntentStream>, Status> {
        let (view, request) = admitted(request)?;
        watch_intent(&self.app, &view, &self.watches, request)
            .await
            .map(Response::new)
    }

    async fn pause_relay(
        &self,
        request: Request<proto::PauseRelayRequest>,
    ) -> Result<Response<proto::RelayState>, Status> {
        let (_, request) = admitted(request)?;
        let pause = self.app.pause_relay(request.reason).await?;
        Ok(Response::new(convert::relay_state_message(
            Some(&pause),
            self.app.relay().progress(),
        )))
    }

    async fn resume_relay(
        &self,
        request: Request<proto::ResumeRelayRequest>,
    ) -> Result<Response<proto::RelayState>, Status> {
        admitted(request)?;
        self.app.resume_relay().await?;
        Ok(Response::new(convert::relay_state_message(
            None,
            self.app.relay().progress(),
        )))
    }
}
