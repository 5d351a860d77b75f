//! Intent changes, told to whoever follows them: watch streams, the relay (woken when an
//! operation is queued) and the log, where each change is one record inside the intent's
//! span. Nobody publishes by hand: the store writes every change into its outbox in the
//! change's own transaction, and hands the outbox here once the write is durable (see
//! [`crate::store::Store::flush`]), so a writer cannot forget to tell, and nobody hears of
//! a change a crash could still undo.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
};

use tokio::sync::{Notify, broadcast};
use tracing::info;

use crate::intent::{Intent, IntentId, IntentStatus};

/// How many changes a watcher may fall behind before it misses some (it then reads the
/// store instead).
const BACKLOG: usize = 1024;

/// The bus intent changes go out on. Cheap to clone; every clone is the same bus.
#[derive(Clone, Debug)]
pub struct Events {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    updates: broadcast::Sender<Intent>,
    queued: Notify,
    /// The span of each intent that has not reached a final status.
    spans: Mutex<HashMap<IntentId, tracing::Span>>,
}

impl Default for Events {
    fn default() -> Self {
        Self {
            inner: Arc::new(Inner {
                updates: broadcast::channel(BACKLOG).0,
                queued: Notify::new(),
                spans: Mutex::default(),
            }),
        }
    }
}

impl Events {
    /// Every intent change from now on. Watchers subscribe before reading the current state,
    /// so they miss nothing in between.
    pub fn subscribe(&self) -> broadcast::Receiver<Intent> {
        self.inner.updates.subscribe()
    }

    /// Resolves when an operation was queued since the last time it resolved: the relay
    /// waits on it between passes.
    pub async fn queued(&self) {
        self.inner.queued.notified().await;
    }

    /// Wakes whoever waits in [`Events::queued`], as if an operation had been queued.
    pub fn wake_relay(&self) {
        self.inner.queued.notify_one();
    }

    /// Tells everyone of `intent`, as durably written: one log record inside its span, the
    /// watchers, and the relay when it is queued.
    pub(crate) fn publish(&self, intent: &Intent) {
        let span = self.span(intent);
        info!(
            target: "intent",
            parent: &span,
            status = ?intent.status,
            transaction = intent
                .submission
                .as_ref()
                .map(|submission| submission.tx_hash.to_string()),
            block = intent.result.as_ref().map(|result| result.block_number),
            reason = intent.failure_reason.as_deref(),
            "intent changed"
        );
        if intent.status.is_final() {
            // The last handle goes with `span` below: the span closes, and its close record
            // tells how long the intent took from its request to its end.
            self.lock_spans().remove(&intent.id);
        }
        // No receiver is fine: nobody watches.
        let _ = self.inner.updates.send(intent.clone());
        if intent.status == IntentStatus::Queued {
            self.wake_relay();
        }
    }

    /// The span of `intent`, carrying its id, userOpHash and kind: opened at its first
    /// change (under the request that made it, when that request's task publishes it) and
    /// kept until its last, so every record of its life is inside one span. A restart opens
    /// a new one at the next change.
    fn span(&self, intent: &Intent) -> tracing::Span {
        self.lock_spans()
            .entry(intent.id.clone())
            .or_insert_with(|| {
                tracing::info_span!(
                    target: "intent",
                    "intent",
                    intent = %intent.id,
                    user_op_hash = %intent.user_op_hash,
                    kind = ?intent.kind,
                )
            })
            .clone()
    }

    fn lock_spans(&self) -> MutexGuard<'_, HashMap<IntentId, tracing::Span>> {
        // A panic while holding the lock leaves the map whole: take it back.
        self.inner
            .spans
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
