//! The gRPC services: thin handlers that convert the request, call the application, and
//! convert the answer.

use std::{future::Future, pin::Pin, time::Instant};

use futures::Stream;
use tokio::sync::{broadcast::error::RecvError, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Code, Request, Response, Status};
use tracing::{info, warn};

use super::{
    code_name, convert,
    proto::{
        self, account_service_server::AccountService, policy_service_server::PolicyService,
        session_service_server::SessionService,
        transaction_intent_service_server::TransactionIntentService,
    },
};
use crate::{
    app::{App, AppError, NewSession},
    auth::{AuthError, Caller, Scope, Surface, TenantId, Visibility},
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

/// Serves `TransactionIntentService`. Watch streams end when `shutdown` is cancelled, so
/// they never hold the server's graceful shutdown open.
#[derive(Clone)]
pub struct Intents(pub App, pub CancellationToken);

#[tonic::async_trait]
impl AccountService for Accounts {
    async fn compute_account_address(
        &self,
        request: Request<proto::ComputeAccountAddressRequest>,
    ) -> Result<Response<proto::ComputeAccountAddressResponse>, Status> {
        let method = "AccountService/ComputeAccountAddress";
        observed(
            &self.0,
            API,
            method,
            Scope::Read,
            request,
            |_, request| async move {
                let owner = convert::owner("owner", &request.owner)?;
                let salt = convert::uint256("salt", &request.salt)?;
                let address = self.0.account_address(owner, salt).await?;
                Ok(Response::new(proto::ComputeAccountAddressResponse {
                    address: address.to_string(),
                    account: format!("accounts/{address}"),
                }))
            },
        )
        .await
    }

    async fn get_account(
        &self,
        request: Request<proto::GetAccountRequest>,
    ) -> Result<Response<proto::Account>, Status> {
        let method = "AccountService/GetAccount";
        observed(
            &self.0,
            API,
            method,
            Scope::Read,
            request,
            |view, request| async move {
                let address = convert::account_name("name", &request.name)?;
                let account = self.0.account(address, &view).await?;
                Ok(Response::new(convert::account_message(
                    &account,
                    self.0.chain().chain_id(),
                )))
            },
        )
        .await
    }
}

#[tonic::async_trait]
impl SessionService for Sessions {
    async fn create_session(
        &self,
        request: Request<proto::CreateSessionRequest>,
    ) -> Result<Response<proto::Session>, Status> {
        let method = "SessionService/CreateSession";
        observed(
            &self.0,
            API,
            method,
            Scope::Write,
            request,
            |view, request| async move {
                let custody = convert::custody("custody", request.custody)?;
                let external_key = match (custody, request.key_address.as_str()) {
                    (crate::session::KeyCustody::Held, "") => None,
                    (crate::session::KeyCustody::Held, _) => {
                        return Err(AppError::invalid(
                            "key_address",
                            "must be empty for KEY_CUSTODY_HELD; latchkey generates the key",
                        )
                        .into());
                    }
                    (crate::session::KeyCustody::External, text) => {
                        Some(convert::address("key_address", text)?)
                    }
                };
                let new_session = NewSession {
                    tenant: own_tenant(&view)?,
                    owner: convert::owner("owner", &request.owner)?,
                    salt: convert::uint256("salt", &request.salt)?,
                    custody,
                    external_key,
                    valid_after: convert::unix_seconds("valid_after", request.valid_after)?,
                    valid_until: convert::unix_seconds("valid_until", request.valid_until)?,
                    permissions: convert::permissions(request.permissions)?,
                    policy: convert::optional_policy_name("policy", &request.policy)?,
                };
                let session = self.0.create_session(new_session).await?;
                Ok(Response::new(convert::session_message(&session)))
            },
        )
        .await
    }

    async fn submit_session_signature(
        &self,
        request: Request<proto::SubmitSessionSignatureRequest>,
    ) -> Result<Response<proto::Session>, Status> {
        let method = "SessionService/SubmitSessionSignature";
        observed(
            &self.0,
            API,
            method,
            Scope::Write,
            request,
            |view, request| async move {
                let id = convert::session_name("name", &request.name)?;
                let signature = convert::signature("signature", &request.signature)?;
                let session = self
                    .0
                    .submit_session_signature(&id, &view, signature)
                    .await?;
                Ok(Response::new(convert::session_message(&session)))
            },
        )
        .await
    }

    async fn get_session(
        &self,
        request: Request<proto::GetSessionRequest>,
    ) -> Result<Response<proto::Session>, Status> {
        let method = "SessionService/GetSession";
        observed(
            &self.0,
            API,
            method,
            Scope::Read,
            request,
            |view, request| async move { get_session(&self.0, &view, request).map(Response::new) },
        )
        .await
    }

    async fn list_sessions(
        &self,
        request: Request<proto::ListSessionsRequest>,
    ) -> Result<Response<proto::ListSessionsResponse>, Status> {
        let method = "SessionService/ListSessions";
        observed(&self.0, API, method, Scope::Read, request, |view, request| async move {
            list_sessions(&self.0, &view, request).map(Response::new)
        })
        .await
    }

    async fn revoke_session(
        &self,
        request: Request<proto::RevokeSessionRequest>,
    ) -> Result<Response<proto::Session>, Status> {
        let method = "SessionService/RevokeSession";
        observed(
            &self.0,
            API,
            method,
            Scope::Write,
            request,
            |view, request| async move {
                revoke_session(&self.0, &view, request)
                    .await
                    .map(Response::new)
            },
        )
        .await
    }
}

/// The application API's surface: API keys only, each seeing its own tenant.
const API: Surface = Surface::Api;

/// Runs a handler for a caller the gate lets in with `scope`, counts the call in the
/// metrics by method and status code, and writes every write or admin call (and every
/// refused caller) to the audit log, by key id, never the key. The handler gets what the
/// caller may see: its tenant on the application API, every tenant on the admin service.
pub(super) async fn observed<R, T, F, Fut>(
    app: &App,
    surface: Surface,
    method: &'static str,
    scope: Scope,
    request: Request<R>,
    call: F,
) -> Result<Response<T>, Status>
where
    F: FnOnce(Visibility, R) -> Fut,
    Fut: Future<Output = Result<Response<T>, Status>>,
{
    let started = Instant::now();
    if let Some(counted) = request.extensions().get::<super::counted::Counted>() {
        counted.mark();
    }
    let result = match admit(app, surface, method, scope, &request) {
        Ok((caller, visibility)) => {
            let result = call(visibility, request.into_inner()).await;
            if scope != Scope::Read {
                let code = result.as_ref().err().map_or(Code::Ok, Status::code);
                info!(
                    target: "audit",
                    api_key = %caller.key,
                    tenant = caller.tenant.as_ref().map(tracing::field::display),
                    method,
                    code = code_name(code),
                    "call"
                );
            }
            result
        }
        Err(status) => Err(status),
    };
    let code = match &result {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    };
    app.metrics().grpc_call(method, code, started.elapsed());
    result
}

/// The caller of `request`, when its credential is good, its rate allows another call and
/// its key has `scope`, with what it may see: its tenant on the application API, every
/// tenant on the admin service.
fn admit<R>(
    app: &App,
    surface: Surface,
    method: &'static str,
    scope: Scope,
    request: &Request<R>,
) -> Result<(Caller, Visibility), Status> {
    let authorization = request
        .metadata()
        .get("authorization")
        .map(|value| value.to_str())
        .transpose()
        .map_err(|_| AuthError::Malformed("not ASCII text"));
    let caller = authorization
        .and_then(|authorization| app.authenticate(authorization, surface))
        .map_err(|error| {
            let status = Status::from(error);
            warn!(
                target: "audit",
                method,
                code = code_name(status.code()),
                reason = status.message(),
                "call refused"
            );
            status
        })?;
    if !caller.scopes.contains(scope) {
        let status = super::error::refusal(
            Code::PermissionDenied,
            format!(
                "authorization: {method} needs the {scope} scope; API key {} has {}",
                caller.key, caller.scopes
            ),
            "SCOPE_MISSING",
            [("method", method.to_owned()), ("scope", scope.to_string())],
        );
        warn!(
            target: "audit",
            api_key = %caller.key,
            method,
            code = code_name(status.code()),
            "call refused"
        );
        return Err(status);
    }
    let visibility = match (surface, &caller.tenant) {
        (Surface::Api, Some(tenant)) => Visibility::Tenant(tenant.clone()),
        (Surface::Admin, _) => Visibility::All,
        // The gate lets only API keys, which all have a tenant, into the API.
        (Surface::Api, None) => {
            return Err(AppError::Internal("a caller without a tenant").into());
        }
    };
    Ok((caller, visibility))
}

/// The tenant a new record belongs to: the caller's.
fn own_tenant(view: &Visibility) -> Result<TenantId, Status> {
    view.tenant()
        .cloned()
        .ok_or_else(|| AppError::Internal("a create without a tenant").into())
}

pub(super) type IntentStream =
    Pin<Box<dyn Stream<Item = Result<proto::TransactionIntent, Status>> + Send>>;

#[tonic::async_trait]
impl TransactionIntentService for Intents {
    async fn create_transaction_intent(
        &self,
        request: Request<proto::CreateTransactionIntentRequest>,
    ) -> Result<Response<proto::TransactionIntent>, Status> {
        let method = "TransactionIntentService/CreateTransactionIntent";
        observed(
            &self.0,
            API,
            method,
            Scope::Write,
            request,
            |view, request| async move {
                let session = convert::session_name("session", &request.session)?;
                let interactions = convert::interactions(&request.interactions)?;
                let idempotency_key = convert::idempotency_key(&request.idempotency_key)?;
                let policy = convert::optional_policy_name("policy", &request.policy)?;
                let intent = self
                    .0
                    .create_intent(&session, &view, interactions, idempotency_key, policy)
                    .await?;
                Ok(Response::new(convert::intent_message(&intent)))
            },
        )
        .await
    }

    async fn submit_intent_signature(
        &self,
        request: Request<proto::SubmitIntentSignatureRequest>,
    ) -> Result<Response<proto::TransactionIntent>, Status> {
        let method = "TransactionIntentService/SubmitIntentSignature";
        observed(
            &self.0,
            API,
            method,
            Scope::Write,
            request,
            |view, request| async move {
                let id = convert::intent_name("name", &request.name)?;
                let signature = convert::signature("signature", &request.signature)?;
                let intent = self
                    .0
                    .submit_intent_signature(&id, &view, signature)
                    .await?;
                Ok(Response::new(convert::intent_message(&intent)))
            },
        )
        .await
    }

    async fn get_transaction_intent(
        &self,
        request: Request<proto::GetTransactionIntentRequest>,
    ) -> Result<Response<proto::TransactionIntent>, Status> {
        let method = "TransactionIntentService/GetTransactionIntent";
        observed(
            &self.0,
            API,
            method,
            Scope::Read,
            request,
            |view, request| async move { get_intent(&self.0, &view, request).map(Response::new) },
        )
        .await
    }

    async fn list_transaction_intents(
        &self,
        request: Request<proto::ListTransactionIntentsRequest>,
    ) -> Result<Response<proto::ListTransactionIntentsResponse>, Status> {
        let method = "TransactionIntentService/ListTransactionIntents";
        observed(
            &self.0,
            API,
            method,
            Scope::Read,
            request,
            |view, request| async move { list_intents(&self.0, &view, request).map(Response::new) },
        )
        .await
    }

    type WatchTransactionIntentStream = IntentStream;

    async fn watch_transaction_intent(
        &self,
        request: Request<proto::WatchTransactionIntentRequest>,
    ) -> Result<Response<Self::WatchTransactionIntentStream>, Status> {
        let method = "TransactionIntentService/WatchTransactionIntent";
        observed(
            &self.0,
            API,
            method,
            Scope::Read,
            request,
            |view, request| async move {
                watch_intent(&self.0, &view, &self.1, request).map(Response::new)
            },
        )
        .await
    }
}

#[tonic::async_trait]
impl PolicyService for Policies {
    async fn create_policy(
        &self,
        request: Request<proto::CreatePolicyRequest>,
    ) -> Result<Response<proto::Policy>, Status> {
        let method = "PolicyService/CreatePolicy";
        observed(
            &self.0,
            API,
            method,
            Scope::Write,
            request,
            |view, request| async move {
                let new_policy = convert::new_policy(request, own_tenant(&view)?)?;
                let policy = self.0.create_policy(new_policy).await?;
                Ok(Response::new(convert::policy_message(&policy)))
            },
        )
        .await
    }

    async fn get_policy(
        &self,
        request: Request<proto::GetPolicyRequest>,
    ) -> Result<Response<proto::Policy>, Status> {
        let method = "PolicyService/GetPolicy";
        observed(
            &self.0,
            API,
            method,
            Scope::Read,
            request,
            |view, request| async move {
                let id = convert::policy_name("name", &request.name)?;
                Ok(Response::new(convert::policy_message(
                    &self.0.policy(&id, &view)?,
                )))
            },
        )
        .await
    }

    async fn list_policies(
        &self,
        request: Request<proto::ListPoliciesRequest>,
    ) -> Result<Response<proto::ListPoliciesResponse>, Status> {
        let method = "PolicyService/ListPolicies";
        observed(
            &self.0,
            API,
            method,
            Scope::Read,
            request,
            |view, request| async move {
                let page = PageRequest {
                    size: convert::page_size("page_size", request.page_size)?,
                    token: convert::page_token(&request.page_token),
                };
                let policies = self.0.list_policies(&view, &page)?;
                Ok(Response::new(proto::ListPoliciesResponse {
                    policies: policies.items.iter().map(convert::policy_message).collect(),
                    next_page_token: policies.next_token.unwrap_or_default(),
                }))
            },
        )
        .await
    }

    async fn disable_policy(
        &self,
        request: Request<proto::DisablePolicyRequest>,
    ) -> Result<Response<proto::Policy>, Status> {
        let method = "PolicyService/DisablePolicy";
        observed(
            &self.0,
            API,
            method,
            Scope::Write,
            request,
            |view, request| async move {
                let id = convert::policy_name("name", &request.name)?;
                Ok(Response::new(convert::policy_message(
                    &self.0.disable_policy(&id, &view).await?,
                )))
            },
        )
        .await
    }

    async fn get_paymaster(
        &self,
        request: Request<proto::GetPaymasterRequest>,
    ) -> Result<Response<proto::Paymaster>, Status> {
        let method = "PolicyService/GetPaymaster";
        observed(
            &self.0,
            API,
            method,
            Scope::Read,
            request,
            |_, _| async move {
                Ok(Response::new(convert::paymaster_message(
                    &self.0.paymaster().await?,
                )))
            },
        )
        .await
    }
}

// ---------------------------------------------------------------------------------------
// Handlers the application services share with the admin service
// ---------------------------------------------------------------------------------------

pub(super) fn get_session(
    app: &App,
    view: &Visibility,
    request: proto::GetSessionRequest,
) -> Result<proto::Session, Status> {
    let id = convert::session_name("name", &request.name)?;
    Ok(convert::session_message(&app.session(&id, view)?))
}

pub(super) fn list_sessions(
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
    let sessions = app.list_sessions(&filter, &page)?;
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

pub(super) fn get_intent(
    app: &App,
    view: &Visibility,
    request: proto::GetTransactionIntentRequest,
) -> Result<proto::TransactionIntent, Status> {
    let id = convert::intent_name("name", &request.name)?;
    Ok(convert::intent_message(&app.intent(&id, view)?))
}

pub(super) fn list_intents(
    app: &App,
    view: &Visibility,
    request: proto::ListTransactionIntentsRequest,
) -> Result<proto::ListTransactionIntentsResponse, Status> {
    let filter = IntentFilter {
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
    let intents = app.list_intents(&filter, &page)?;
    Ok(proto::ListTransactionIntentsResponse {
        transaction_intents: intents.items.iter().map(convert::intent_message).collect(),
        next_page_token: intents.next_token.unwrap_or_default(),
    })
}

/// The intent now, then at every change until a final status; the stream ends when
/// `shutdown` is cancelled.
pub(super) fn watch_intent(
    app: &App,
    view: &Visibility,
    shutdown: &CancellationToken,
    request: proto::WatchTransactionIntentRequest,
) -> Result<IntentStream, Status> {
    let id = convert::intent_name("name", &request.name)?;
    let slot = app.open_watch()?;
    // Subscribe before reading, so no change between the read and the stream is lost.
    let mut updates = app.subscribe();
    let current = app.intent(&id, view)?;
    let (sender, receiver) = mpsc::channel(16);
    let app = app.clone();
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        // Counted as open until this task ends, however it ends.
        let _slot = slot;
        let mut sent = current.history.len();
        let mut last_sent_in = current
            .submission
            .as_ref()
            .map(|submission| submission.tx_hash);
        let mut done = current.status.is_final();
        if sender
            .send(Ok(convert::intent_message(&current)))
            .await
            .is_err()
        {
            return;
        }
        while !done {
            let received = tokio::select! {
                // The client went away: stop watching for it.
                () = sender.closed() => return,
                () = shutdown.cancelled() => {
                    let _ = sender
                        .send(Err(super::error::refusal(
                            Code::Unavailable,
                            "latchkey is shutting down; watch again once it is back",
                            "SHUTTING_DOWN",
                            [],
                        )))
                        .await;
                    return;
                }
                received = updates.recv() => received,
            };
            let next = match received {
                Ok(intent) if intent.id == id => intent,
                Ok(_) => continue,
                // Fell behind the broadcast: the store has the latest state.
                // The intent was visible when the stream opened, and its tenant never changes.
                Err(RecvError::Lagged(_)) => match app.intent(&id, &Visibility::All) {
                    Ok(intent) => intent,
                    Err(error) => {
                        let _ = sender.send(Err(error.into())).await;
                        return;
                    }
                },
                Err(RecvError::Closed) => return,
            };
            // A new status, or the same status with a new transaction (a bundle
            // replaced with higher fees): anything else is not news.
            let sent_in = next
                .submission
                .as_ref()
                .map(|submission| submission.tx_hash);
            if next.history.len() <= sent && sent_in == last_sent_in {
                continue;
            }
            sent = next.history.len();
            last_sent_in = sent_in;
            done = next.status.is_final();
            if sender
                .send(Ok(convert::intent_message(&next)))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    Ok(Box::pin(ReceiverStream::new(receiver)))
}
