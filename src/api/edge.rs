//! The edge: one tower layer around each gRPC server that every call passes before its
//! message is read. By the method table ([`super::methods`]) it authenticates the caller from
//! the headers, charges its rate, checks its key's scope and puts who it is in the request's
//! extensions for the handler; after the call it counts it in the metrics by method and
//! status code and writes write and admin calls to the audit log, by key id, never the key.
//!
//! Refused calls never reach the handler, so their bodies are never read nor decoded. The
//! gate's refusals are written to the audit log at most once per peer address every
//! [`crate::auth::FAILURE_LOG_INTERVAL`], with the count of those left out, so a flood of bad keys costs a
//! hash and a map lookup each and floods no log; the metrics still count every one.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use tonic::{
    Code, Request, Status,
    transport::server::{TcpConnectInfo, TlsConnectInfo},
};
use tracing::{info, warn};

use super::{
    code_name,
    methods::{self, MethodRule, Route},
};
use crate::{
    api::gate::{AuthError, Gate, Surface},
    app::{App, AppError},
    auth::{Caller, Peer, Refused, Scope, TenantId, Visibility},
};

/// The metrics label of calls to a path under latchkey's package that names no method.
const UNKNOWN_METHOD: &str = "unknown";

/// Who a call is from, once the edge has let it in: in the request's extensions.
#[derive(Clone, Debug)]
pub struct Admitted {
    /// The caller.
    pub caller: Caller,
    /// What it may see: its tenant on the application API, every tenant on the admin
    /// service.
    pub visibility: Visibility,
}

/// What the caller of `request` may see, and the message: for handlers, behind the edge.
pub(super) fn admitted<T>(request: Request<T>) -> Result<(Visibility, T), Status> {
    let visibility = request
        .extensions()
        .get::<Admitted>()
        .map(|admitted| admitted.visibility.clone())
        .ok_or(AppError::Internal(
            "a call reached its handler without the edge",
        ))?;
    Ok((visibility, request.into_inner()))
}

/// The tenant a new record belongs to: the caller's.
pub(super) fn own_tenant(view: &Visibility) -> Result<TenantId, Status> {
    view.tenant()
        .cloned()
        .ok_or_else(|| AppError::Internal("a create without a tenant").into())
}

/// The layer of one server (`surface`).
#[derive(Clone)]
pub struct EdgeLayer {
    app: App,
    gate: Arc<Gate>,
    surface: Surface,
}

impl EdgeLayer {
    /// The edge of the server of `surface`, admitting by `gate` and counting into `app`'s
    /// metrics.
    pub fn new(app: App, gate: Arc<Gate>, surface: Surface) -> Self {
        Self { app, gate, surface }
    }

    /// Lets the call to `method` from `peer` in, or says why not, by the `authorization`
    /// header it carries.
    async fn admit(
        &self,
        method: &'static MethodRule,
        authorization: Result<Option<&str>, AuthError>,
        peer: Peer,
    ) -> Result<Admitted, AuthError> {
        let caller = self
            .gate
            .authenticate(
                self.app.store().as_ref(),
                authorization,
                self.surface,
                peer,
                Instant::now(),
            )
            .await?;
        if !caller.scopes.contains(method.scope) {
            return Err(AuthError::ScopeMissing {
                method: method.name,
                scope: method.scope,
                key: caller.key,
                has: caller.scopes,
            });
        }
        let visibility = match (self.surface, &caller.tenant) {
            (Surface::Api, Some(tenant)) => Visibility::Tenant(tenant.clone()),
            (Surface::Admin, _) => Visibility::All,
            // The gate lets only API keys, which all have a tenant, into the API.
            (Surface::Api, None) => {
                return Err(AuthError::Malformed("a credential without a tenant"));
            }
        };
        Ok(Admitted { caller, visibility })
    }

    /// Writes a refusal at the gate to the audit log, unless the refused key's (or, without
    /// one, the peer's) refusals were written less than
    /// [`crate::auth::FAILURE_LOG_INTERVAL`] ago.
    fn log_refusal(&self, method: &'static str, error: AuthError, peer: Peer) -> Status {
        let key = error.known_caller().map(str::to_owned);
        let status = Status::from(error);
        let subject = key.clone().map_or(Refused::Peer(peer), Refused::Key);
        let Some(untold) = self.gate.refusals().to_log(subject, Instant::now()) else {
            return status;
        };
        warn!(
            target: "audit",
            api_key = key,
            method,
            peer = peer.map(tracing::field::display),
            code = code_name(status.code()),
            reason = status.message(),
            refused_since_last_record = untold,
            "call refused"
        );
        status
    }
}

/// The address a request came from, over plaintext or TLS.
fn peer<B>(request: &http::Request<B>) -> Peer {
    let extensions = request.extensions();
    extensions
        .get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
        .or_else(|| {
            extensions
                .get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(|info| info.get_ref().remote_addr())
        })
        .map(|addr| addr.ip())
}

impl<S> tower::Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Edge {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`EdgeLayer`] wraps around a server.
#[derive(Clone)]
pub struct Edge<S> {
    inner: S,
    layer: EdgeLayer,
}

impl<S, B, R> tower::Service<http::Request<B>> for Edge<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    S::Error: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let started = Instant::now();
        let layer = self.layer.clone();
        // `poll_ready` readied this service; the clone stands in for the next call.
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        Box::pin(async move {
            let (label, audited) = match methods::route(request.uri().path()) {
                Route::Other => (None, None),
                Route::Unknown => (Some(UNKNOWN_METHOD), None),
                // Served on the other port: tonic answers UNIMPLEMENTED.
                Route::Method(method) if method.surface != layer.surface => {
                    (Some(method.name), None)
                }
                Route::Method(method) => {
                    let peer = peer(&request);
                    // Owned, so the future does not borrow the request across the lookup.
                    let header = request
                        .headers()
                        .get("authorization")
                        .map(|value| value.to_str().map(str::to_owned));
                    let authorization = match &header {
                        None => Ok(None),
                        Some(Ok(value)) => Ok(Some(value.as_str())),
                        Some(Err(_)) => Err(AuthError::Malformed("not ASCII text")),
                    };
                    match layer.admit(method, authorization, peer).await {
                        Ok(admitted) => {
                            let audited =
                                (method.scope != Scope::Read).then(|| admitted.caller.clone());
                            request.extensions_mut().insert(admitted);
                            (Some(method.name), audited)
                        }
                        Err(error) => {
                            let status = layer.log_refusal(method.name, error, peer);
                            layer.app.metrics().grpc_call(
                                method.name,
                                status.code(),
                                started.elapsed(),
                            );
                            return Ok(status.into_http());
                        }
                    }
                }
            };
            let response = inner.call(request).await?;
            // A status in the headers is a call that ended at once (a refusal, a message that
            // did not decode); without one, the call is under way and ends well or in its
            // stream's trailers, which are the stream's to report.
            let code = response
                .headers()
                .get("grpc-status")
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.parse::<i32>().ok())
                .map_or(Code::Ok, Code::from_i32);
            if let Some(method) = label {
                layer
                    .app
                    .metrics()
                    .grpc_call(method, code, started.elapsed());
            }
            if let (Some(method), Some(caller)) = (label, audited) {
                info!(
                    target: "audit",
                    api_key = %caller.key,
                    tenant = caller.tenant.as_ref().map(tracing::field::display),
                    method,
                    code = code_name(code),
                    "call"
                );
            }
            Ok(response)
        })
    }
}
