//! The admin service: the operator's status, inspection and relay controls, behind a bearer
//! token of its own. It shares its session and intent handlers with the application
//! services, so both read and validate alike.

use alloy::primitives::{Address, B256, keccak256};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, service::Interceptor};

use super::{
    convert,
    proto::{self, admin_service_server::AdminService},
    services::{
        IntentStream, get_intent, get_session, list_intents, list_sessions, observed,
        revoke_session, watch_intent,
    },
};
use crate::app::App;

/// Serves `AdminService` for the daemon's `relayers`.
#[derive(Clone)]
pub struct Admin {
    app: App,
    relayers: Vec<Address>,
    shutdown: CancellationToken,
}

impl Admin {
    /// The service over `app`, whose relay sends from `relayers`. Watch streams end when
    /// `shutdown` is cancelled.
    pub fn new(app: App, relayers: Vec<Address>, shutdown: CancellationToken) -> Self {
        Self {
            app,
            relayers,
            shutdown,
        }
    }
}

/// Lets a call through only when it carries `authorization: Bearer <token>` with the
/// configured token.
#[derive(Clone)]
pub struct AdminAuth {
    /// The token's hash: presented tokens are hashed and the hashes compared, so the time a
    /// comparison takes says nothing about the token.
    token_hash: B256,
}

impl AdminAuth {
    /// Checks calls against `token`.
    pub fn new(token: &str) -> Self {
        Self {
            token_hash: keccak256(token.as_bytes()),
        }
    }
}

impl Interceptor for AdminAuth {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .ok_or_else(|| {
                Status::unauthenticated(
                    "authorization: missing; the admin service needs `authorization: Bearer \
                     <admin token>`",
                )
            })?
            .to_str()
            .map_err(|_| Status::unauthenticated("authorization: not ASCII text"))?;
        let token = header
            .strip_prefix("Bearer ")
            .ok_or_else(|| Status::unauthenticated("authorization: expected `Bearer <token>`"))?;
        if keccak256(token.trim().as_bytes()) != self.token_hash {
            return Err(Status::unauthenticated(
                "authorization: not the admin token",
            ));
        }
        Ok(request)
    }
}

#[tonic::async_trait]
impl AdminService for Admin {
    async fn get_status(
        &self,
        _request: Request<proto::GetStatusRequest>,
    ) -> Result<Response<proto::DaemonStatus>, Status> {
        observed(&self.app, "AdminService/GetStatus", async {
            let view = self.app.status(&self.relayers).await?;
            Ok(Response::new(convert::status_message(&view)))
        })
        .await
    }

    async fn get_session(
        &self,
        request: Request<proto::GetSessionRequest>,
    ) -> Result<Response<proto::Session>, Status> {
        observed(&self.app, "AdminService/GetSession", async {
            get_session(&self.app, request.into_inner()).map(Response::new)
        })
        .await
    }

    async fn list_sessions(
        &self,
        request: Request<proto::ListSessionsRequest>,
    ) -> Result<Response<proto::ListSessionsResponse>, Status> {
        observed(&self.app, "AdminService/ListSessions", async {
            list_sessions(&self.app, request.into_inner()).map(Response::new)
        })
        .await
    }

    async fn revoke_session(
        &self,
        request: Request<proto::RevokeSessionRequest>,
    ) -> Result<Response<proto::Session>, Status> {
        observed(&self.app, "AdminService/RevokeSession", async {
            revoke_session(&self.app, request.into_inner())
                .await
                .map(Response::new)
        })
        .await
    }

    async fn get_transaction_intent(
        &self,
        request: Request<proto::GetTransactionIntentRequest>,
    ) -> Result<Response<proto::TransactionIntent>, Status> {
        observed(&self.app, "AdminService/GetTransactionIntent", async {
            get_intent(&self.app, request.into_inner()).map(Response::new)
        })
        .await
    }

    async fn list_transaction_intents(
        &self,
        request: Request<proto::ListTransactionIntentsRequest>,
    ) -> Result<Response<proto::ListTransactionIntentsResponse>, Status> {
        observed(&self.app, "AdminService/ListTransactionIntents", async {
            list_intents(&self.app, request.into_inner()).map(Response::new)
        })
        .await
    }

    type WatchTransactionIntentStream = IntentStream;

    async fn watch_transaction_intent(
        &self,
        request: Request<proto::WatchTransactionIntentRequest>,
    ) -> Result<Response<Self::WatchTransactionIntentStream>, Status> {
        observed(&self.app, "AdminService/WatchTransactionIntent", async {
            watch_intent(&self.app, &self.shutdown, request.into_inner()).map(Response::new)
        })
        .await
    }

    async fn pause_relay(
        &self,
        request: Request<proto::PauseRelayRequest>,
    ) -> Result<Response<proto::RelayState>, Status> {
        observed(&self.app, "AdminService/PauseRelay", async {
            let pause = self.app.pause_relay(request.into_inner().reason).await?;
            Ok(Response::new(convert::relay_state_message(
                Some(&pause),
                self.app.relay_progress(),
            )))
        })
        .await
    }

    async fn resume_relay(
        &self,
        _request: Request<proto::ResumeRelayRequest>,
    ) -> Result<Response<proto::RelayState>, Status> {
        observed(&self.app, "AdminService/ResumeRelay", async {
            self.app.resume_relay().await?;
            Ok(Response::new(convert::relay_state_message(
                None,
                self.app.relay_progress(),
            )))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(auth: &mut AdminAuth, header: Option<&str>) -> Result<(), Status> {
        let mut request = Request::new(());
        if let Some(header) = header {
            request
                .metadata_mut()
                .insert("authorization", header.parse().unwrap());
        }
        auth.call(request).map(|_| ())
    }

    #[test]
    fn only_the_admin_token_gets_through() {
        let token = "0123456789abcdef0123456789abcdef";
        let mut auth = AdminAuth::new(token);
        assert!(call(&mut auth, Some(&format!("Bearer {token}"))).is_ok());
        for (header, says) in [
            (None, "missing"),
            (Some(token), "expected `Bearer <token>`"),
            (
                Some("Bearer 0123456789abcdef0123456789abcdeX"),
                "not the admin token",
            ),
            (Some("Bearer "), "not the admin token"),
            (Some("Basic dXNlcjpwYXNz"), "expected `Bearer <token>`"),
        ] {
            let status = call(&mut auth, header).unwrap_err();
            assert_eq!(status.code(), tonic::Code::Unauthenticated, "{header:?}");
            assert!(status.message().contains(says), "{header:?}: {status:?}");
            assert!(!status.message().contains(token), "never echoes the token");
        }
    }
}
