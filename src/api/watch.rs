//! `WatchTransactionIntent`: the intent now, then at every change until it is final, and the
//! slots that bound how many such streams are open. The application API's streams share
//! `api.max_watch_streams`, and each tenant may hold at most
//! `api.max_watch_streams_per_tenant` of them, so one tenant cannot take every slot; the
//! admin service has `api.max_admin_watch_streams` slots of its own, so an operator can
//! always watch.

use std::{
    collections::HashMap,
    pin::Pin,
    sync::{Arc, Mutex},
};

use futures::Stream;
use tokio::sync::{broadcast::error::RecvError, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use super::{convert, proto};
use crate::{
    app::{App, AppError, reasons},
    auth::{TenantId, Visibility},
};

/// How many watch streams may be open at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatchLimits {
    /// On the application API, over every tenant.
    pub total: usize,
    /// On the application API, for one tenant.
    pub per_tenant: usize,
    /// On the admin service.
    pub admin: usize,
}

/// The watch streams open now, by who holds them.
#[derive(Debug)]
pub struct WatchSlots {
    limits: WatchLimits,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    api: usize,
    admin: usize,
    by_tenant: HashMap<TenantId, usize>,
}

/// One open stream's slot, given back when it is dropped.
#[derive(Debug)]
pub struct WatchSlot {
    slots: Arc<WatchSlots>,
    holder: Option<TenantId>,
}

impl WatchSlots {
    /// No stream open yet, under `limits`.
    pub fn new(limits: WatchLimits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            open: Mutex::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        // A panic elsewhere while the counts were held leaves them whole: take them back.
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A slot for one more stream of a caller who sees `view`: a tenant's on the
    /// application API, the admin pool for the admin service. Refused with
    /// [`AppError::Exhausted`] when its pool or its tenant's quota is full.
    pub fn open(self: &Arc<Self>, view: &Visibility) -> Result<WatchSlot, AppError> {
        let mut open = self.lock();
        let Some(tenant) = view.tenant() else {
            if open.admin >= self.limits.admin {
                return Err(full(
                    reasons::SERVER_LIMIT_REACHED,
                    "api.max_admin_watch_streams",
                    format!(
                        "{} admin watch streams are open, the most the admin service serves at once",
                        open.admin
                    ),
                ));
            }
            open.admin += 1;
            return Ok(WatchSlot {
                slots: self.clone(),
                holder: None,
            });
        };
        let held = open.by_tenant.get(tenant).copied().unwrap_or(0);
        if held >= self.limits.per_tenant {
            return Err(full(
                reasons::TENANT_QUOTA_REACHED,
                "api.max_watch_streams_per_tenant",
                format!("tenant {tenant} has {held} watch streams open, its whole share"),
            ));
        }
        if open.api >= self.limits.total {
            return Err(full(
                reasons::SERVER_LIMIT_REACHED,
                "api.max_watch_streams",
                format!(
                    "{} watch streams are open, the most this daemon serves at once",
                    open.api
                ),
            ));
        }
        open.api += 1;
        *open.by_tenant.entry(tenant.clone()).or_default() += 1;
        Ok(WatchSlot {
            slots: self.clone(),
            holder: Some(tenant.clone()),
        })
    }
}

fn full(reason: &'static str, limit: &'static str, what: String) -> AppError {
    AppError::Exhausted {
        reason,
        limit,
        message: format!("{what}; close one, or poll GetTransactionIntent"),
    }
}

impl Drop for WatchSlot {
    fn drop(&mut self) {
        let mut open = self.slots.lock();
        match &self.holder {
            None => open.admin = open.admin.saturating_sub(1),
            Some(tenant) => {
                open.api = open.api.saturating_sub(1);
                if let Some(held) = open.by_tenant.get_mut(tenant) {
                    *held = held.saturating_sub(1);
                    if *held == 0 {
                        open.by_tenant.remove(tenant);
                    }
                }
            }
        }
    }
}

/// What a server's watch streams share: the slots, and the token that ends every stream at
/// shutdown, so none holds the server's graceful shutdown open.
#[derive(Clone, Debug)]
pub struct Watches {
    /// The slots, shared by both servers.
    pub slots: Arc<WatchSlots>,
    /// Cancelled when the daemon shuts down.
    pub shutdown: CancellationToken,
}

/// A stream of an intent's states.
pub(super) type IntentStream =
    Pin<Box<dyn Stream<Item = Result<proto::TransactionIntent, Status>> + Send>>;

/// The intent now, then at every change until a final status; the stream ends when the
/// daemon shuts down.
pub(super) async fn watch_intent(
    app: &App,
    view: &Visibility,
    watches: &Watches,
    request: proto::WatchTransactionIntentRequest,
) -> Result<IntentStream, Status> {
    let id = convert::intent_name("name", &request.name)?;
    // Not found before a slot is spent on it.
    app.intent(&id, view).await?;
    let slot = watches.slots.open(view)?;
    // Subscribe before reading, so no change between the read and the stream is lost.
    let mut updates = app.subscribe();
    let current = app.intent(&id, view).await?;
    let (sender, receiver) = mpsc::channel(16);
    let app = app.clone();
    let shutdown = watches.shutdown.clone();
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
                    let _ = sender.send(Err(AppError::ShuttingDown.into())).await;
                    return;
                }
                received = updates.recv() => received,
            };
            let next = match received {
                Ok(intent) if intent.id == id => intent,
                Ok(_) => continue,
                // Fell behind the broadcast: the store has the latest state.
                // The intent was visible when the stream opened, and its tenant never changes.
                Err(RecvError::Lagged(_)) => match app.intent(&id, &Visibility::All).await {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(name: &str) -> Visibility {
        Visibility::Tenant(TenantId::parse(name).unwrap())
    }

    #[test]
    fn a_tenant_at_its_quota_leaves_room_for_others_and_the_admin_pool_is_apart() {
        let slots = WatchSlots::new(WatchLimits {
            total: 3,
            per_tenant: 2,
            admin: 1,
        });
        let a1 = slots.open(&tenant("a")).unwrap();
        let _a2 = slots.open(&tenant("a")).unwrap();
        let refused = slots.open(&tenant("a")).unwrap_err();
        assert_eq!(refused.reason(), reasons::TENANT_QUOTA_REACHED, "{refused}");
        assert!(
            refused
                .to_string()
                .contains("api.max_watch_streams_per_tenant")
        );
        let _b1 = slots.open(&tenant("b")).unwrap();
        let refused = slots.open(&tenant("b")).unwrap_err();
        assert_eq!(refused.reason(), reasons::SERVER_LIMIT_REACHED, "{refused}");
        // The API's streams do not touch the admin pool, nor the reverse.
        let admin = slots.open(&Visibility::All).unwrap();
        assert!(slots.open(&Visibility::All).is_err());
        drop(admin);
        let _admin = slots.open(&Visibility::All).unwrap();
        // A closed stream gives its slot back to its tenant and to the total.
        drop(a1);
        let _b2 = slots.open(&tenant("b")).unwrap();
        assert!(slots.open(&tenant("a")).is_err());
    }
}
