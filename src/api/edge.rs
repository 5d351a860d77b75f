//! The edge: one tower layer around each gRPC server that every call passes before its
//! message is decoded. By the method table ([`super::methods`]) it authenticates the caller,
//! charges its rate, checks its key's scope (or its client session's access) and puts who it
//! is in the request's extensions for the handler; after the call it counts it in the
//! metrics by method and status code and writes write and admin calls to the audit log, by
//! key id (or session id), never the key.
//!
//! An API key is checked from the headers alone. A client's stamp signs the request's exact
//! bytes, so for a stamped call the edge reads the body first (at most
//! `api.max_request_bytes`), checks the stamp against the message in it, and hands the
//! same bytes on.
//!
//! Refused calls never reach the handler, so their messages are never decoded. The
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

use http_body_util::BodyExt;
use tonic::{
    Code, Request, Status,
    body::Body,
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
    auth::{Caller, Peer, Refused, Scope, TenantId, Visibility, stamp::STAMP_HEADER},
};

/// The size of gRPC's header before each message: a compression flag and a 4-byte length.
const FRAME_HEADER_BYTES: usize = 5;

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

/// Who is calling, what it may see, and the message: for the handlers that need the caller
/// itself, such as what its key may grant.
pub(super) fn admitted_caller<T>(request: Request<T>) -> Result<(Caller, Visibility, T), Status> {
    let admitted = request
        .extensions()
        .get::<Admitted>()
        .cloned()
        .ok_or(AppError::Internal(
            "a call reached its handler without the edge",
        ))?;
    Ok((admitted.caller, admitted.visibility, request.into_inner()))
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
    max_request_bytes: usize,
}

/// The credential a call presents.
enum Credential {
    /// `authorization`: an API key or the admin token (the header's text, if any).
    Bearer(Result<Option<String>, AuthError>),
    /// `latchkey-stamp`: a client session's stamp.
    Stamp(Result<String, AuthError>),
}

impl Credential {
    fn of(headers: &http::HeaderMap) -> Self {
        let text = |name: &str| {
            headers.get(name).map(|value| {
                value
                    .to_str()
                    .map(str::to_owned)
                    .map_err(|_| AuthError::Malformed("not ASCII text"))
            })
        };
        match (text("authorization"), text(STAMP_HEADER)) {
            (Some(_), Some(_)) => Self::Bearer(Err(AuthError::TwoCredentials)),
            (None, Some(stamp)) => Self::Stamp(stamp),
            (bearer, None) => Self::Bearer(bearer.transpose()),
        }
    }
}

impl EdgeLayer {
    /// The edge of the server of `surface`, admitting by `gate`, reading a stamped call's
    /// body up to `max_request_bytes`, and counting into `app`'s metrics.
    pub fn new(app: App, gate: Arc<Gate>, surface: Surface, max_request_bytes: usize) -> Self {
        Self {
            app,
            gate,
            surface,
            max_request_bytes,
        }
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

    /// Lets a client's call to `method` in by its stamp (`header`) over `message`, or says
    /// why not.
    async fn admit_client(
        &self,
        method: &'static MethodRule,
        header: &str,
        message: &[u8],
        peer: Peer,
    ) -> Result<Admitted, AuthError> {
        let caller = self
            .gate
            .authenticate_client(
                self.app.store().as_ref(),
                header,
                &format!("{}{}", methods::PATH_PREFIX, method.name),
                message,
                peer,
                Instant::now(),
            )
            .await?;
        let Some(client) = caller.client.clone() else {
            return Err(AuthError::Malformed("a stamp without its session"));
        };
        if self.surface != Surface::Api
            || method
                .client
                .is_none_or(|needs| caller.client_access < needs)
        {
            return Err(AuthError::ClientAccessMissing {
                method: method.name,
                needs: method.client,
                session: client.session,
                has: caller.client_access,
            });
        }
        Ok(Admitted {
            caller,
            visibility: Visibility::Client(client),
        })
    }

    /// The message of a stamped call, read whole: its body must be one uncompressed gRPC
    /// message of at most `max_request_bytes`. Returns the body's bytes, to be handed on.
    async fn read_message(&self, body: Body) -> Result<prost::bytes::Bytes, Status> {
        let limit = self.max_request_bytes.saturating_add(FRAME_HEADER_BYTES);
        let bytes = http_body_util::Limited::new(body, limit)
            .collect()
            .await
            .map_err(|error| {
                if error.is::<http_body_util::LengthLimitError>() {
                    Status::out_of_range(format!(
                        "the request is larger than api.max_request_bytes ({} bytes)",
                        self.max_request_bytes
                    ))
                } else {
                    Status::cancelled(format!("the request's body could not be read: {error}"))
                }
            })?
            .to_bytes();
        if framed_message(&bytes).is_none() {
            return Err(super::error::refusal(
                Code::InvalidArgument,
                "a stamped request's body must be one uncompressed gRPC message".to_owned(),
                super::codec::MALFORMED_MESSAGE,
                [],
            ));
        }
        Ok(bytes)
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

/// The message in `body` when it is exactly one uncompressed gRPC message.
fn framed_message(body: &[u8]) -> Option<&[u8]> {
    let (header, message) = body.split_at_checked(FRAME_HEADER_BYTES)?;
    let length = u32::from_be_bytes(header[1..].try_into().ok()?);
    (header[0] == 0 && usize::try_from(length).ok()? == message.len()).then_some(message)
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

impl<S, R> tower::Service<http::Request<Body>> for Edge<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
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
                    let admitted = match Credential::of(request.headers()) {
                        Credential::Bearer(header) => match header {
                            Ok(header) => layer.admit(method, Ok(header.as_deref()), peer).await,
                            Err(error) => layer.admit(method, Err(error), peer).await,
                        },
                        Credential::Stamp(Err(error)) => Err(error),
                        Credential::Stamp(Ok(header)) => {
                            let (parts, body) = request.into_parts();
                            let bytes = match layer.read_message(body).await {
                                Ok(bytes) => bytes,
                                Err(status) => {
                                    layer.app.metrics().grpc_call(
                                        method.name,
                                        status.code(),
                                        started.elapsed(),
                                    );
                                    return Ok(status.into_http());
                                }
                            };
                            let message = framed_message(&bytes).unwrap_or_default();
                            let admitted = layer.admit_client(method, &header, message, peer).await;
                            request = http::Request::from_parts(
                                parts,
                                Body::new(http_body_util::Full::new(bytes)),
                            );
                            admitted
                        }
                    };
                    match admitted {
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
