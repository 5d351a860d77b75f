//! Every call is counted in `latchkey_grpc_requests_total`, including those refused before
//! any handler runs: a message that does not decode (INVALID_ARGUMENT) or is over
//! `api.max_request_bytes` (OUT_OF_RANGE) is answered by tonic itself. A handler counts its
//! own call through the gate and marks the request; this layer, around every service,
//! counts the calls nobody marked, from the status tonic answered them with.

use std::{
    collections::BTreeSet,
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::Instant,
};

use prost::Message;
use tonic::Code;

use super::FILE_DESCRIPTOR_SET;
use crate::app::App;

/// The label of calls to a method latchkey does not serve, so a caller cannot grow the
/// metric's label set by inventing paths.
const UNKNOWN_METHOD: &str = "unknown";

/// Put on every request by the layer; the gate sets it once it has counted the call.
#[derive(Debug, Clone, Default)]
pub struct Counted(Arc<AtomicBool>);

impl Counted {
    /// Records that the call's outcome was counted.
    pub fn mark(&self) {
        self.0.store(true, Ordering::Release);
    }

    fn is_marked(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Counts the calls no handler counted.
#[derive(Clone)]
pub struct CountedLayer {
    app: App,
    methods: Arc<BTreeSet<String>>,
}

impl CountedLayer {
    /// A layer counting into `app`'s metrics.
    pub fn new(app: App) -> Self {
        Self {
            app,
            methods: Arc::new(served_methods()),
        }
    }
}

impl<S> tower::Layer<S> for CountedLayer {
    type Service = CountedService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CountedService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`CountedLayer`] wraps around each server.
#[derive(Clone)]
pub struct CountedService<S> {
    inner: S,
    layer: CountedLayer,
}

impl<S, B, R> tower::Service<http::Request<B>> for CountedService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let counted = Counted::default();
        request.extensions_mut().insert(counted.clone());
        let method = method_label(request.uri().path(), &self.layer.methods);
        let app = self.layer.app.clone();
        let started = Instant::now();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?;
            // An answer without a status in its headers is a call a handler took, whose
            // status comes in the trailers: the handler counted it.
            let code = response
                .headers()
                .get("grpc-status")
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.parse::<i32>().ok())
                .map(Code::from_i32);
            if let (Some(method), Some(code), false) = (method, code, counted.is_marked()) {
                app.metrics().grpc_call(&method, code, started.elapsed());
            }
            Ok(response)
        })
    }
}

/// The method label of a call to `path` (`/latchkey.v1.Service/Method`), as the gate names
/// it; `None` for other services (health, reflection), which are not counted.
fn method_label(path: &str, methods: &BTreeSet<String>) -> Option<String> {
    let method = path.strip_prefix("/latchkey.v1.")?;
    Some(if methods.contains(method) {
        method.to_owned()
    } else {
        UNKNOWN_METHOD.to_owned()
    })
}

/// Every `Service/Method` latchkey's protos define.
fn served_methods() -> BTreeSet<String> {
    let set = prost_types::FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).unwrap_or_default();
    set.file
        .iter()
        .flat_map(|file| &file.service)
        .flat_map(|service| {
            service
                .method
                .iter()
                .map(move |method| format!("{}/{}", service.name(), method.name()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_labelled_as_the_gate_labels_them_and_strangers_as_unknown() {
        let methods = served_methods();
        assert!(
            methods.contains("SessionService/CreateSession"),
            "{methods:?}"
        );
        assert!(methods.contains("AdminService/PauseRelay"), "{methods:?}");
        assert_eq!(
            method_label("/latchkey.v1.SessionService/CreateSession", &methods).as_deref(),
            Some("SessionService/CreateSession")
        );
        assert_eq!(
            method_label("/latchkey.v1.Made/Up", &methods).as_deref(),
            Some(UNKNOWN_METHOD)
        );
        assert_eq!(method_label("/grpc.health.v1.Health/Check", &methods), None);
    }
}
