//! The application API's services: each handler converts the request, calls the use case
//! and converts the answer. The edge ([`super::edge`]) has admitted the caller before the
//! handler runs; every error becomes a status through the one mapping in `api::error`.

use tonic::{Request, Response, Status};

use super::{
    convert,
    edge::{admitted, admitted_caller, own_tenant},
    proto::{
        self, account_service_server::AccountService, policy_service_server::PolicyService,
        session_service_server::SessionService,
        transaction_intent_service_server::TransactionIntentService,
    },
    watch::{IntentStream, Watches, watch_intent},
};
use crate::{
    app::{App, AppError, NewSession},
    auth::Visibility,
    session::KeyCustody,
    signer::PublicKey,
    store::{IntentFilter, PageRequest, SessionFilter},
};

/// Serves `AccountService`.
#[derive(Clone)]
pub struct Accounts(pub App);

/// Serves `SessionService`.
#[derive(Clone)]
pub struct Sessions(pub App);

/// Serves `PolicyService`.
#[derive(Clone)]
pub struct Policies(pub App);

/// Serves `TransactionIntentService`.
#[derive(Clone)]
pub struct Intents {
    /// The application.
    pub app: App,
    /// The watch streams' slots and shutdown.
    pub watches: Watches,
}

#[tonic::async_trait]
impl AccountService for Accounts {
    async fn compute_account_address(
        &self,
        request: Request<proto::ComputeAccountAddressRequest>,
    ) -> Result<Response<proto::ComputeAccountAddressResponse>, Status> {
        let (_, request) = admitted(request)?;
        let owner = convert::owner_of(&request.owner, request.owner_signer.as_ref())?;
        let salt = convert::uint256("salt", &request.salt)?;
        let address = self.0.account_address(&owner, salt).await?;
        Ok(Response::new(proto::ComputeAccountAddressResponse {
            address: address.to_string(),
            account: format!("accounts/{address}"),
        }))
    }

    async fn get_account(
        &self,
        request: Request<proto::GetAccountRequest>,
    ) -> Result<Response<proto::Account>, Status> {
        let (view, request) = admitted(request)?;
        let address = convert::account_name("name", &request.name)?;
        let account = self.0.account(address, &view).await?;
        Ok(Response::new(convert::account_message(
            &account,
            self.0.chain().chain_id(),
        )))
    }
}

#[tonic::async_trait]
impl SessionService for Sessions {
    async fn create_session(
        &self,
        request: Request<proto::CreateSessionRequest>,
    ) -> Result<Response<proto::Session>, Status> {
        let (caller, view, request) = admitted_caller(request)?;
        let custody = convert::custody("custody", request.custody)?;
        let external_key = match (
            custody,
            request.key_address.as_str(),
            request.key_signer.as_ref(),
        ) {
            (KeyCustody::Held, "", None) => None,
            (KeyCustody::Held, _, Some(_)) => {
                return Err(AppError::invalid(
                    "key_signer",
                    "must be empty for KEY_CUSTODY_HELD; latchkey generates the key",
                )
                .into());
            }
            (KeyCustody::Held, _, None) => {
                return Err(AppError::invalid(
                    "key_address",
                    "must be empty for KEY_CUSTODY_HELD; latchkey generates the key",
                )
                .into());
            }
            (KeyCustody::External, "", Some(signer)) => {
                Some(convert::signer("key_signer", signer)?)
            }
            (KeyCustody::External, _, Some(_)) => {
                return Err(AppError::invalid(
                    "key_signer",
                    "give either key_address or key_signer, not both",
                )
                .into());
            }
            (KeyCustody::External, text, None) => {
                Some(PublicKey::Secp256k1(convert::address("key_address", text)?))
            }
        };
        let new_session = NewSession {
            tenant: own_tenant(&view)?,
            owner: convert::owner_of(&request.owner, request.owner_signer.as_ref())?,
            salt: convert::uint256("salt", &request.salt)?,
            custody,
            external_key,
            valid_after: convert::unix_seconds("valid_after", request.valid_after)?,
            valid_until: convert::unix_seconds("valid_until", request.valid_until)?,
            permissions: convert::permissions(request.permissions)?,
            policy: convert::optional_policy_name("policy", &request.policy)?,
            client_access: convert::client_access("client_access", request.client_access)?,
            may_grant: caller.client_access,
        };
        let session = self.0.create_session(new_session).await?;
        Ok(Response::new(convert::session_message(&session)))
    }

    async fn submit_session_signature(
        &self,
        request: Request<proto::SubmitSessionSignatureRequest>,
    ) -> Result<Response<proto::Session>, Status> {
        let (view, request) = admitted(request)?;
        let id = convert::session_name("name", &request.name)?;
        let signature = convert::submitted_signature(&request.signature, request.webauthn)?;
        let session = self
            .0
            .submit_session_signature(&id, &view, signature)
            .await?;
        Ok(Response::new(convert::session_message(&session)))
    }

    async fn get_session(
        &self,
        request: Request<proto::GetSessionRequest>,
    ) -> Result<Response<proto::Session>, Status> {
        let (view, request) = admitted(request)?;
        get_session(&self.0, &view, request)
            .await
            .map(Response::new)
    }

    async fn list_sessions(
        &self,
        request: Request<proto::ListSessionsRequest>,
    ) -> Result<Response<proto::ListSessionsResponse>, Status> {
        let (view, request) = admitted(request)?;
        list_sessions(&self.0, &view, request)
            .await
            .map(Response::new)
    }

    async fn revoke_session(
        &self,
        request: Request<proto::RevokeSessionRequest>,
    ) -> Result<Response<proto::Session>, Status> {
        let (view, request) = admitted(request)?;
        revoke_session(&self.0, &view, request)
            .await
            .map(Response::new)
    }
}

#[tonic::async_trait]
impl TransactionIntentService for Intents {
    async fn create_transaction_intent(
        &self,
        request: Request<proto::CreateTransactionIntentRequest>,
    ) -> Result<Response<proto::TransactionIntent>, Status> {
        let (view, request) = admitted(request)?;
        let session = convert::session_name("session", &request.session)?;
        let interactions = convert::interactions(&request.interactions)?;
        let idempotency_key = convert::idempotency_key(&request.idempotency_key)?;
        let policy = convert::optional_policy_name("policy", &request.policy)?;
        let intent = self
            .app
            .create_intent(&session, &view, interactions, idempotency_key, policy)
            .await?;
        Ok(Response::new(convert::intent_message(&intent)))
    }

    async fn submit_intent_signature(
        &self,
        request: Request<proto::SubmitIntentSignatureRequest>,
    ) -> Result<Response<proto::TransactionIntent>, Status> {
        let (view, request) = admitted(request)?;
        let id = convert::intent_name("name", &request.name)?;
        let signature = convert::submitted_signature(&request.signature, request.webauthn)?;
        let intent = self
            .app
            .submit_intent_signature(&id, &view, signature)
            .await?;
        Ok(Response::new(convert::intent_message(&intent)))
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
}

#[tonic::async_trait]
impl PolicyService for Policies {
    async fn create_policy(
        &self,
        request: Request<proto::CreatePolicyRequest>,
    ) -> Result<Response<proto::Policy>, Status> {
        let (view, request) = admitted(request)?;
        let new_policy = convert::new_policy(request, own_tenant(&view)?)?;
        let policy = self.0.create_policy(new_policy).await?;
        Ok(Response::new(convert::policy_message(&policy)))
    }

    async fn get_policy(
        &self,
        request: Request<proto::GetPolicyRequest>,
    ) -> Result<Response<proto::Policy>, Status> {
        let (view, request) = admitted(request)?;
        let id = convert::policy_name("name", &request.name)?;
        Ok(Response::new(convert::policy_message(
            &self.0.policy(&id, &view).await?,
        )))
    }

    async fn list_policies(
        &self,
        request: Request<proto::ListPoliciesRequest>,
    ) -> Result<Response<proto::ListPoliciesResponse>, Status> {
        let (view, request) = admitted(request)?;
        let page = PageRequest {
            size: convert::page_size("page_size", request.page_size)?,
            token: convert::page_token(&request.page_token),
        };
        let policies = self.0.list_policies(&view, &page).await?;
        Ok(Response::new(proto::ListPoliciesResponse {
            policies: policies.items.iter().map(convert::policy_message).collect(),
            next_page_token: policies.next_token.unwrap_or_default(),
        }))
    }

    async fn disable_policy(
        &self,
        request: Request<proto::DisablePolicyRequest>,
    ) -> Result<Response<proto::Policy>, Status> {
        let (view, request) = admitted(request)?;
        let id = convert::policy_name("name", &request.name)?;
        Ok(Response::new(convert::policy_message(
            &self.0.disable_policy(&id, &view).await?,
        )))
    }

    async fn get_paymaster(
        &self,
        request: Request<proto::GetPaymasterRequest>,
    ) -> Result<Response<proto::Paymaster>, Status> {
        admitted(request)?;
        Ok(Response::new(convert::paymaster_message(
            &self.0.paymaster().await?,
        )))
    }
}

// ---------------------------------------------------------------------------------------
// Handlers the application services share with the admin service
// ---------------------------------------------------------------------------------------

pub(super) async fn get_session(
    app: &App,
    view: &Visibility,
    request: proto::GetSessionRequest,
) -> Result<proto::Session, Status> {
    let id = convert::session_name("name", &request.name)?;
    Ok(convert::session_message(&app.session(&id, view).await?))
}

pub(super) async fn list_sessions(
    app: &App,
    view: &Visibility,
    request: proto::ListSessionsRequest,
) -> Result<proto::ListSessionsResponse, Status> {
    let filter = SessionFilter {
        tenant: view.tenant().cloned(),
        account: match request.account.as_str() {
            "" => None,
            name => Some(convert::account_name("account", name)?),
        },
        status: convert::session_status_filter("status", request.status)?,
    };
    let page = PageRequest {
        size: convert::page_size("page_size", request.page_size)?,
        token: convert::page_token(&request.page_token),
    };
    if let Some(client) = view.client() {
        // A client's list holds its own session, when the filter admits it.
        let own = app.session(&client.session, view).await?;
        let admitted = filter
            .account
            .is_none_or(|account| account == own.session.account)
            && filter
                .status
                .is_none_or(|status| status == own.session.status);
        return Ok(proto::ListSessionsResponse {
            sessions: admitted
                .then(|| convert::session_message(&own))
                .into_iter()
                .collect(),
            next_page_token: String::new(),
        });
    }
    let sessions = app.list_sessions(&filter, &page).await?;
    Ok(proto::ListSessionsResponse {
        sessions: sessions
            .items
            .iter()
            .map(convert::session_message)
            .collect(),
        next_page_token: sessions.next_token.unwrap_or_default(),
    })
}

pub(super) async fn revoke_session(
    app: &App,
    view: &Visibility,
    request: proto::RevokeSessionRequest,
) -> Result<proto::Session, Status> {
    let id = convert::session_name("name", &request.name)?;
    Ok(convert::session_message(
        &app.revoke_session(&id, view).await?,
    ))
}

pub(super) async fn get_intent(
    app: &App,
    view: &Visibility,
    request: proto::GetTransactionIntentRequest,
) -> Result<proto::TransactionIntent, Status> {
    let id = convert::intent_name("name", &request.name)?;
    Ok(convert::intent_message(&app.intent(&id, view).await?))
}

pub(super) async fn list_intents(
    app: &App,
    view: &Visibility,
    request: proto::ListTransactionIntentsRequest,
) -> Result<proto::ListTransactionIntentsResponse, Status> {
    let mut filter = IntentFilter {
        tenant: view.tenant().cloned(),
        session: match request.session.as_str() {
            "" => None,
            name => Some(convert::session_name("session", name)?),
        },
        account: match request.account.as_str() {
            "" => None,
            name => Some(convert::account_name("account", name)?),
        },
        status: convert::intent_status_filter("status", request.status)?,
        kind: convert::intent_kind_filter("kind", request.kind)?,
    };
    let page = PageRequest {
        size: convert::page_size("page_size", request.page_size)?,
        token: convert::page_token(&request.page_token),
    };
    if let Some(client) = view.client() {
        // A client lists its own session's intents; asking for another's finds none.
        if filter
            .session
            .as_ref()
            .is_some_and(|session| session != &client.session)
        {
            return Ok(proto::ListTransactionIntentsResponse::default());
        }
        filter.session = Some(client.session.clone());
    }
    let intents = app.list_intents(&filter, &page).await?;
    Ok(proto::ListTransactionIntentsResponse {
        transaction_intents: intents.items.iter().map(convert::intent_message).collect(),
        next_page_token: intents.next_token.unwrap_or_default(),
    })
}
