//! The HTTP side: `POST /` takes one JSON-RPC request (or a batch) of at most the
//! configured size, authenticates it once by its `authorization: Bearer <API key>` header
//! (or lets it in as the open tenant), charges each call to the key's rate, and answers
//! every call in order.

use std::{net::SocketAddr, sync::Arc, time::Instant};

use axum::{
    Router,
    body::Body,
    extract::{ConnectInfo, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use futures::StreamExt;
use serde_json::{Value, json};

use super::{
    envelope::{self, Call, Incoming},
    error::{RpcError, codes},
    methods,
};
use crate::{
    api::gate::{AuthError, Gate, Surface},
    app::App,
    auth::{Caller, ClientAccess, Scope},
    config::JsonRpcSettings,
};

/// How many calls of one batch run at once.
const BATCH_CONCURRENCY: usize = 16;

/// What the JSON-RPC handler holds.
#[derive(Clone)]
pub struct JsonRpc {
    app: App,
    gate: Arc<Gate>,
    settings: Arc<JsonRpcSettings>,
}

impl JsonRpc {
    /// The JSON-RPC over `app`, authenticated by `gate`.
    pub fn new(app: App, gate: Arc<Gate>, settings: JsonRpcSettings) -> Self {
        Self {
            app,
            gate,
            settings: Arc::new(settings),
        }
    }

    /// The routes: `POST /`.
    pub fn router(self) -> Router {
        Router::new().route("/", post(handle)).with_state(self)
    }
}

/// The key name the open tenant's callers go by; no API key id has a space.
const OPEN_CALLER: &str = "open tenant";

fn is_open(caller: &Caller) -> bool {
    caller.key == OPEN_CALLER
}

/// The caller a request without credentials is, when an open tenant is configured. Open
/// callers are not rate-limited: they are for a local stack.
fn open_caller(settings: &JsonRpcSettings) -> Option<Caller> {
    let tenant = settings.open_tenant.clone()?;
    Some(Caller {
        key: OPEN_CALLER.to_owned(),
        tenant: Some(tenant),
        scopes: [Scope::Read, Scope::Write].into_iter().collect(),
        client_access: ClientAccess::None,
        client: None,
    })
}

async fn handle(
    State(rpc): State<JsonRpc>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let now = Instant::now();
    let authorization = headers
        .get(header::AUTHORIZATION)
        .map(|value| {
            value
                .to_str()
                .map_err(|_| AuthError::Malformed("not ASCII"))
        })
        .transpose();
    let caller = match (&authorization, open_caller(&rpc.settings)) {
        (Ok(None), Some(open)) => open,
        _ => match rpc
            .gate
            .authenticate(
                rpc.app.store().as_ref(),
                authorization,
                Surface::Api,
                Some(peer.ip()),
                now,
            )
            .await
        {
            Ok(caller) => caller,
            Err(error) => return refused(&error),
        },
    };
    let body = match axum::body::to_bytes(body, rpc.settings.max_request_bytes).await {
        Ok(body) => body,
        Err(_) => {
            let error = RpcError::new(
                codes::INVALID_REQUEST,
                format!(
                    "the request body is larger than {} bytes, the most this bundler reads",
                    rpc.settings.max_request_bytes
                ),
            )
            .with_data(json!({ "maxRequestBytes": rpc.settings.max_request_bytes }));
            return reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                envelope::failure(Value::Null, &error),
            );
        }
    };
    match envelope::read(&body, rpc.settings.max_batch_calls) {
        Err(error) => reply(StatusCode::OK, envelope::failure(Value::Null, &error)),
        Ok(Incoming::Single(call)) => match answer(&rpc, &caller, call, true, now).await {
            Some(response) => reply(StatusCode::OK, response),
            None => StatusCode::NO_CONTENT.into_response(),
        },
        Ok(Incoming::Batch(calls)) => {
            let responses: Vec<Value> = futures::stream::iter(calls.into_iter().enumerate())
                .map(|(index, call)| answer(&rpc, &caller, call, index == 0, now))
                .buffered(BATCH_CONCURRENCY)
                .filter_map(|response| async move { response })
                .collect()
                .await;
            if responses.is_empty() {
                StatusCode::NO_CONTENT.into_response()
            } else {
                reply(StatusCode::OK, Value::Array(responses))
            }
        }
    }
}

/// The response to one call, `None` for a notification. Every call but the first of a
/// request is charged to the caller's rate (authenticating charged the first).
async fn answer(
    rpc: &JsonRpc,
    caller: &Caller,
    call: Result<Call, (Value, RpcError)>,
    first: bool,
    now: Instant,
) -> Option<Value> {
    let call = match call {
        Ok(call) => call,
        Err((id, error)) => return Some(envelope::failure(id, &error)),
    };
    let charged = if first || rpc.settings.open_tenant.is_some() && is_open(caller) {
        Ok(())
    } else {
        rpc.gate
            .charge(caller, now)
            .map_err(|error| auth_error(&error).1)
    };
    let result = match charged {
        Ok(()) => methods::call(&rpc.app, caller, &call.method, &call.params).await,
        Err(error) => Err(error),
    };
    let id = call.id?;
    Some(match result {
        Ok(value) => envelope::success(id, value),
        Err(error) => envelope::failure(id, &error),
    })
}

/// The HTTP status and the JSON-RPC error an authentication failure gets.
fn auth_error(error: &AuthError) -> (StatusCode, RpcError) {
    match error {
        AuthError::RateLimited { retry_after, .. }
        | AuthError::TooManyFailures { retry_after, .. } => (
            StatusCode::TOO_MANY_REQUESTS,
            RpcError::new(codes::LIMIT_EXCEEDED, error.to_string())
                .with_data(json!({ "retryAfterMs": retry_after.as_millis() as u64 })),
        ),
        AuthError::Store(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            RpcError::new(codes::INTERNAL_ERROR, error.to_string()),
        ),
        _ => (
            StatusCode::UNAUTHORIZED,
            RpcError::new(codes::UNAUTHORIZED, error.to_string())
                .with_data(json!({ "reason": "UNAUTHENTICATED" })),
        ),
    }
}

fn refused(error: &AuthError) -> Response {
    let (status, error) = auth_error(error);
    reply(status, envelope::failure(Value::Null, &error))
}

fn reply(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}
