//! The store on a real sled database in a temporary directory.

use std::{collections::HashSet, sync::Barrier};

use alloy::primitives::{Address, B256, U256};
use tempfile::TempDir;

use super::*;
use crate::{
    chain::user_operation::UserOperation,
    intent::{IntentEvent, IntentKind, IntentResult},
    policy::{Amount, Charge, ContractFunction, Refusal, Rule, SponsorStrategy},
    session::{KeyCustody, Permissions, SelectorRule, SessionEvent, Usage},
    store::CreateIntent,
};

const ALICE: Address = Address::repeat_byte(0xa1);
const BOB: Address = Address::repeat_byte(0xb0);

fn open() -> (TempDir, SledStore) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = SledStore::open(dir.path()).expect("open a fresh store");
    (dir, store)
}

/// A session waiting for its owner's signature, not yet stored.
fn session_on(account: Address) -> Session {
    Session {
        tenant: Default::default(),
        id: SessionId::generate(),
        account,
        owner: Address::repeat_byte(0x0e),
        owner_p256: None,
        salt: U256::ZERO,
        chain_id: 31_337,
        key: Address::repeat_byte(0x5e),
        key_p256: None,
        custody: KeyCustody::External,
        valid_after: 0,
        valid_until: 2_000_000_000,
        permissions: Permissions {
            call_limit: 100,
            value_per_call_limit: 0,
            value_budget: 0,
            gas_budget: 1_000_000,
            calls: Vec::new(),
            limits: Vec::new(),
        },
        policy: None,
        client_access: Default::default(),
        status: SessionStatus::PendingSignature,
        registration_intent: IntentId::generate(),
        revocation_intent: None,
        failure_reason: None,
        usage: Usage::default(),
        next_intent_lane: 0,
        revision: 0,
        created_at_ms: 1,
        updated_at_ms: 1,
    }
}

/// A new intent of `session`, not yet stored.
fn intent_of(session: &Session, kind: IntentKind) -> Intent {
    Intent::new(
        IntentId::generate(),
        kind,
        session,
        (UserOperation::default(), B256::ZERO),
        Address::ZERO,
        IntentStatus::PendingSignature,
        1,
    )
}

/// A session and its registration intent, as stored.
async fn stored_session(store: &dyn Store, account: Address) -> (Session, Intent) {
    let mut session = session_on(account);
    let mut registration = Intent {
        id: session.registration_intent.clone(),
        ..intent_of(&session, IntentKind::Registration)
    };
    store
        .create_session(&mut session, &mut registration, None)
        .await
        .expect("create the session");
    (session, registration)
}

/// A call intent of `session`, as stored; the session's copy follows.
async fn stored_call(
    store: &dyn Store,
    session: &mut Session,
    idempotency_key: Option<&str>,
) -> Intent {
    let mut intent = intent_of(session, IntentKind::Call);
    intent.idempotency_key = idempotency_key.map(str::to_owned);
    session.next_intent_lane += 1;
    let outcome = store
        .create_intent(session, &mut intent)
        .await
        .expect("create the intent");
    assert_eq!(outcome, CreateIntent::Created);
    intent
}

fn ids(intents: &[Intent]) -> Vec<IntentId> {
    intents.iter().map(|intent| intent.id.clone()).collect()
}

fn page(size: usize, token: Option<String>) -> PageRequest {
    PageRequest { size, token }
}

#[tokio::test]
async fn sessions_and_intents_read_back_as_written_at_revision_one() {
    let (_dir, store) = open();
    let (mut session, registration) = stored_session(&store, ALICE).await;
    assert_eq!(session.revision, 1);
    assert_eq!(registration.revision, 1);
    assert_eq!(
        store.session(&session.id).await.unwrap(),
        Some(session.clone())
    );
    assert_eq!(
        store.intent(&registration.id).await.unwrap(),
        Some(registration.clone())
    );

    let call = stored_call(&store, &mut session, None).await;
    assert_eq!(call.revision, 1);
    assert_eq!(session.revision, 2);
    assert_eq!(store.intent(&call.id).await.unwrap(), Some(call));
    assert_eq!(store.session(&session.id).await.unwrap(), Some(session));

    assert_eq!(store.session(&SessionId::generate()).await.unwrap(), None);
    assert_eq!(store.intent(&IntentId::generate()).await.unwrap(), None);
}

#[tokio::test]
async fn creating_a_record_twice_is_refused_and_writes_nothing() {
    let (_dir, store) = open();
    let (session, registration) = stored_session(&store, ALICE).await;

    // The same session again, with a fresh registration: the session id is taken.
    let mut again = session.clone();
    let mut fresh = Intent {
        id: IntentId::generate(),
        ..registration.clone()
    };
    again.registration_intent = fresh.id.clone();
    let error = store
        .create_session(&mut again, &mut fresh, None)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, StoreError::AlreadyExists { record: RecordId::Session(id) } if *id == session.id),
        "{error:?}"
    );
    assert_eq!(
        store.intent(&fresh.id).await.unwrap(),
        None,
        "the aborted write left its intent"
    );

    // An intent id that is taken.
    let mut session = store.session(&session.id).await.unwrap().unwrap();
    let mut duplicate = registration.clone();
    let error = store
        .create_intent(&mut session, &mut duplicate)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::AlreadyExists {
                record: RecordId::Intent(_)
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        store.session(&session.id).await.unwrap().unwrap().revision,
        1
    );
}

#[tokio::test]
async fn a_write_from_a_stale_revision_is_refused_and_writes_nothing_of_itself() {
    let (_dir, store) = open();
    let (mut session, _) = stored_session(&store, ALICE).await;
    let mut first = stored_call(&store, &mut session, None).await;
    let mut second = stored_call(&store, &mut session, None).await;

    // Two writers read the same revisions.
    let mut stale_session = session.clone();
    let mut stale_first = first.clone();

    session.usage.calls = 1;
    first.apply(&IntentEvent::Signed, 2).unwrap();
    store
        .save(&mut [&mut session], &mut [&mut first])
        .await
        .unwrap();
    assert_eq!((session.revision, first.revision), (4, 2));

    // The second writer changes `second` (current) and `first` (stale) together.
    let second_before = second.clone();
    second.apply(&IntentEvent::Signed, 3).unwrap();
    stale_first.apply(&IntentEvent::Dropped, 3).unwrap();
    let error = store
        .save(&mut [], &mut [&mut second, &mut stale_first])
        .await
        .unwrap_err();
    assert!(
        matches!(&error, StoreError::Conflict { record: RecordId::Intent(id), stored: 2, given: 1 } if *id == first.id),
        "{error:?}"
    );
    assert_eq!(
        store.intent(&second.id).await.unwrap(),
        Some(second_before),
        "half a write was kept"
    );
    assert_eq!(
        second.revision, 1,
        "a refused write bumped the caller's copy"
    );
    assert_eq!(store.intent(&first.id).await.unwrap(), Some(first.clone()));
    assert_eq!(
        store
            .intents_in_status(IntentStatus::Dropped)
            .await
            .unwrap(),
        Vec::new()
    );

    // A stale session refuses the whole write, too.
    stale_session.usage.calls = 7;
    let error = store
        .save(&mut [&mut stale_session], &mut [&mut second])
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::Conflict {
                record: RecordId::Session(_),
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(store.session(&session.id).await.unwrap(), Some(session));
    assert_eq!(
        store.intent(&second.id).await.unwrap().unwrap().status,
        IntentStatus::PendingSignature
    );

    // Re-read, re-apply, and the write goes through.
    let mut second = store.intent(&second.id).await.unwrap().unwrap();
    second.apply(&IntentEvent::Signed, 4).unwrap();
    store.save(&mut [], &mut [&mut second]).await.unwrap();
    assert_eq!(store.intent(&second.id).await.unwrap(), Some(second));
}

#[tokio::test]
async fn of_many_writers_racing_from_one_revision_exactly_one_wins() {
    let (_dir, store) = open();
    let (session, _) = stored_session(&store, ALICE).await;
    let writers = 8;
    let barrier = Barrier::new(writers);
    let outcomes: Vec<Result<(), StoreError>> = std::thread::scope(|scope| {
        let mut handles: Vec<_> = Vec::new();
        for writer in 0..writers {
            let (store, barrier, mut session) = (&store, &barrier, session.clone());
            handles.push(scope.spawn(move || {
                session.next_intent_lane = writer as u32;
                barrier.wait();
                // sled's writes do not wait on anything: each thread runs its own to the
                // end, so the threads race in the store itself.
                futures::executor::block_on(store.save(&mut [&mut session], &mut []))
            }));
        }
        handles
            .into_iter()
            .map(|handle| handle.join().expect("writer thread"))
            .collect()
    });
    let wins = outcomes.iter().filter(|outcome| outcome.is_ok()).count();
    assert_eq!(wins, 1, "{outcomes:?}");
    assert!(
        outcomes
            .iter()
            .filter_map(|outcome| outcome.as_ref().err())
            .all(|error| matches!(error, StoreError::Conflict { .. }))
    );
    assert_eq!(
        store.session(&session.id).await.unwrap().unwrap().revision,
        2
    );
}

#[tokio::test]
async fn saving_a_record_that_was_never_created_is_not_found() {
    let (_dir, store) = open();
    let mut session = session_on(ALICE);
    let error = store.save(&mut [&mut session], &mut []).await.unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::NotFound {
                record: RecordId::Session(_)
            }
        ),
        "{error:?}"
    );
    let mut intent = intent_of(&session, IntentKind::Call);
    let error = store.save(&mut [], &mut [&mut intent]).await.unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::NotFound {
                record: RecordId::Intent(_)
            }
        ),
        "{error:?}"
    );
    store
        .save(&mut [], &mut [])
        .await
        .expect("an empty save is a no-op");
}

#[tokio::test]
async fn writes_that_would_break_the_indexes_are_refused() {
    let (_dir, store) = open();
    let (mut session, _) = stored_session(&store, ALICE).await;
    let (other, _) = stored_session(&store, BOB).await;

    let mut stray = intent_of(&other, IntentKind::Call);
    let error = store
        .create_intent(&mut session, &mut stray)
        .await
        .unwrap_err();
    assert!(
        matches!(error, StoreError::InvalidWrite { .. }),
        "{error:?}"
    );

    let mut call = stored_call(&store, &mut session, Some("k")).await;
    call.account = BOB;
    let error = store.save(&mut [], &mut [&mut call]).await.unwrap_err();
    assert!(
        matches!(error, StoreError::InvalidWrite { .. }),
        "{error:?}"
    );
    call.account = ALICE;
    call.idempotency_key = None;
    let error = store.save(&mut [], &mut [&mut call]).await.unwrap_err();
    assert!(
        matches!(error, StoreError::InvalidWrite { .. }),
        "{error:?}"
    );

    session.account = BOB;
    let error = store.save(&mut [&mut session], &mut []).await.unwrap_err();
    assert!(
        matches!(error, StoreError::InvalidWrite { .. }),
        "{error:?}"
    );

    let mut unlinked = session_on(ALICE);
    let mut registration = intent_of(&unlinked, IntentKind::Registration);
    let error = store
        .create_session(&mut unlinked, &mut registration, None)
        .await
        .unwrap_err();
    assert!(
        matches!(error, StoreError::InvalidWrite { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn status_indexes_follow_status_changes_and_recovery_reads_oldest_first() {
    let (_dir, store) = open();
    let (mut session, mut registration) = stored_session(&store, ALICE).await;
    let mut calls: Vec<Intent> = Vec::new();
    for _ in 0..4 {
        calls.push(stored_call(&store, &mut session, None).await);
    }

    // Sign them newest first: recovery order is creation order, not signing order.
    for call in calls.iter_mut().rev() {
        call.apply(&IntentEvent::Signed, 5).unwrap();
        store.save(&mut [], &mut [call]).await.unwrap();
    }
    assert_eq!(
        ids(&store.intents_in_status(IntentStatus::Queued).await.unwrap()),
        ids(&calls)
    );
    assert_eq!(
        ids(&store
            .intents_in_status(IntentStatus::PendingSignature)
            .await
            .unwrap()),
        vec![registration.id.clone()]
    );

    // One is submitted: it leaves the Queued index and enters the Submitted one.
    calls[1].apply(&IntentEvent::Submitted, 6).unwrap();
    store.save(&mut [], &mut [&mut calls[1]]).await.unwrap();
    let queued = store.intents_in_status(IntentStatus::Queued).await.unwrap();
    assert_eq!(
        ids(&queued),
        vec![
            calls[0].id.clone(),
            calls[2].id.clone(),
            calls[3].id.clone()
        ]
    );
    assert_eq!(
        store
            .intents_in_status(IntentStatus::Submitted)
            .await
            .unwrap(),
        vec![calls[1].clone()]
    );
    let listed = store
        .list_intents(
            &IntentFilter {
                status: Some(IntentStatus::Submitted),
                ..Default::default()
            },
            &page(10, None),
        )
        .await
        .unwrap();
    assert_eq!(listed.items, vec![calls[1].clone()]);

    // Sessions: the registration is signed, together with the session, in one write.
    session.apply(&SessionEvent::RegistrationSigned, 7).unwrap();
    registration.apply(&IntentEvent::Signed, 7).unwrap();
    store
        .save(&mut [&mut session], &mut [&mut registration])
        .await
        .unwrap();
    assert_eq!(
        store
            .sessions_in_status(SessionStatus::PendingSignature)
            .await
            .unwrap(),
        Vec::new()
    );
    assert_eq!(
        store
            .sessions_in_status(SessionStatus::Registering)
            .await
            .unwrap(),
        vec![session.clone()]
    );
    assert_eq!(
        store.intents_in_status(IntentStatus::Queued).await.unwrap()[0],
        registration
    );
}

#[tokio::test]
async fn a_repeated_idempotency_key_returns_the_first_intent_and_writes_nothing() {
    let (_dir, store) = open();
    let (mut session, _) = stored_session(&store, ALICE).await;
    let first = stored_call(&store, &mut session, Some("order-42")).await;
    let revision = session.revision;

    let mut retry = intent_of(&session, IntentKind::Call);
    retry.idempotency_key = Some("order-42".into());
    let mut stale_session = session.clone();
    stale_session.revision = 1; // an idempotent retry succeeds even from an old read
    let outcome = store
        .create_intent(&mut stale_session, &mut retry)
        .await
        .unwrap();
    assert_eq!(outcome, CreateIntent::Existing(Box::new(first.clone())));
    assert_eq!(
        (stale_session.revision, retry.revision),
        (1, 0),
        "copies changed"
    );
    assert_eq!(
        store.session(&session.id).await.unwrap().unwrap().revision,
        revision
    );
    assert_eq!(store.intent(&retry.id).await.unwrap(), None);
    let listed = store
        .list_intents(
            &IntentFilter {
                session: Some(session.id.clone()),
                kind: Some(IntentKind::Call),
                ..Default::default()
            },
            &page(10, None),
        )
        .await
        .unwrap();
    assert_eq!(ids(&listed.items), vec![first.id.clone()]);
    assert_eq!(
        store
            .intent_by_idempotency_key(&session.id, "order-42")
            .await
            .unwrap(),
        Some(first)
    );
    assert_eq!(
        store
            .intent_by_idempotency_key(&session.id, "order-43")
            .await
            .unwrap(),
        None
    );

    // Keys are scoped to their session.
    let (mut other, _) = stored_session(&store, ALICE).await;
    let elsewhere = stored_call(&store, &mut other, Some("order-42")).await;
    assert_eq!(
        store
            .intent_by_idempotency_key(&other.id, "order-42")
            .await
            .unwrap(),
        Some(elsewhere)
    );
}

#[tokio::test]
async fn pages_walk_newest_first_without_duplicates_or_gaps_while_intents_are_created() {
    let (_dir, store) = open();
    let (mut session, _) = stored_session(&store, ALICE).await;
    let mut calls: Vec<Intent> = Vec::new();
    for _ in 0..25 {
        calls.push(stored_call(&store, &mut session, None).await);
    }
    let mut expected = ids(&calls);
    expected.reverse();
    let filter = IntentFilter {
        kind: Some(IntentKind::Call),
        ..Default::default()
    };

    let mut seen = Vec::new();
    let mut token = None;
    let mut sizes = Vec::new();
    loop {
        let page = store.list_intents(&filter, &page(10, token)).await.unwrap();
        sizes.push(page.items.len());
        seen.extend(ids(&page.items));
        // Traffic between requests: newer than anything handed out, so never in this walk.
        stored_call(&store, &mut session, None).await;
        match page.next_token {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    assert_eq!(sizes, vec![10, 10, 5]);
    assert_eq!(seen, expected);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 25);

    // A fresh walk sees the newcomers first.
    let first = store.list_intents(&filter, &page(10, None)).await.unwrap();
    assert!(first.items[0].id > calls[24].id);
}

#[tokio::test]
async fn lists_filter_by_session_account_status_and_kind() {
    let (_dir, store) = open();
    let (mut alice, alice_registration) = stored_session(&store, ALICE).await;
    let (mut bob, bob_registration) = stored_session(&store, BOB).await;
    let mut alice_calls: Vec<Intent> = Vec::new();
    for _ in 0..3 {
        alice_calls.push(stored_call(&store, &mut alice, None).await);
    }
    let mut bob_calls: Vec<Intent> = Vec::new();
    for _ in 0..2 {
        bob_calls.push(stored_call(&store, &mut bob, None).await);
    }
    bob_calls[0].apply(&IntentEvent::Signed, 9).unwrap();
    store.save(&mut [], &mut [&mut bob_calls[0]]).await.unwrap();

    let list = async |filter: IntentFilter| {
        let page = store.list_intents(&filter, &page(100, None)).await.unwrap();
        assert_eq!(page.next_token, None);
        ids(&page.items)
    };
    let newest_first = |intents: &[&Intent]| {
        intents
            .iter()
            .rev()
            .map(|i| i.id.clone())
            .collect::<Vec<_>>()
    };

    assert_eq!(
        list(IntentFilter {
            session: Some(alice.id.clone()),
            ..Default::default()
        })
        .await,
        newest_first(&[
            &alice_registration,
            &alice_calls[0],
            &alice_calls[1],
            &alice_calls[2]
        ])
    );
    assert_eq!(
        list(IntentFilter {
            account: Some(BOB),
            ..Default::default()
        })
        .await,
        newest_first(&[&bob_registration, &bob_calls[0], &bob_calls[1]])
    );
    assert_eq!(
        list(IntentFilter {
            status: Some(IntentStatus::Queued),
            ..Default::default()
        })
        .await,
        vec![bob_calls[0].id.clone()]
    );
    assert_eq!(
        list(IntentFilter {
            kind: Some(IntentKind::Registration),
            ..Default::default()
        })
        .await,
        newest_first(&[&alice_registration, &bob_registration])
    );
    assert_eq!(
        list(IntentFilter {
            account: Some(BOB),
            status: Some(IntentStatus::PendingSignature),
            kind: Some(IntentKind::Call),
            ..Default::default()
        })
        .await,
        vec![bob_calls[1].id.clone()]
    );
    // A session on another account than the one asked for: nothing matches both.
    assert_eq!(
        list(IntentFilter {
            session: Some(alice.id.clone()),
            account: Some(BOB),
            ..Default::default()
        })
        .await,
        Vec::<IntentId>::new()
    );
    assert_eq!(list(IntentFilter::default()).await.len(), 7);

    // Sessions.
    alice.apply(&SessionEvent::RegistrationSigned, 10).unwrap();
    store.save(&mut [&mut alice], &mut []).await.unwrap();
    let sessions = async |filter: SessionFilter, size: usize| {
        store
            .list_sessions(&filter, &page(size, None))
            .await
            .unwrap()
    };
    assert_eq!(
        sessions(SessionFilter::default(), 10).await.items,
        vec![bob.clone(), alice.clone()]
    );
    assert_eq!(
        sessions(
            SessionFilter {
                account: Some(ALICE),
                ..Default::default()
            },
            10
        )
        .await
        .items,
        vec![alice.clone()]
    );
    assert_eq!(
        sessions(
            SessionFilter {
                status: Some(SessionStatus::PendingSignature),
                ..Default::default()
            },
            10
        )
        .await
        .items,
        vec![bob.clone()]
    );
    assert_eq!(
        sessions(
            SessionFilter {
                tenant: None,
                account: Some(ALICE),
                status: Some(SessionStatus::PendingSignature)
            },
            10
        )
        .await
        .items,
        Vec::new()
    );
    let first = sessions(SessionFilter::default(), 1).await;
    assert_eq!(first.items, vec![bob]);
    let second = store
        .list_sessions(&SessionFilter::default(), &page(1, first.next_token))
        .await
        .unwrap();
    assert_eq!(
        second,
        Page {
            items: vec![alice],
            next_token: None
        }
    );
}

#[tokio::test]
async fn a_malformed_page_token_is_refused() {
    let (_dir, store) = open();
    let (session, _) = stored_session(&store, ALICE).await;
    for token in ["", "garbage", "int_", session.id.as_str()] {
        let error = store
            .list_intents(&IntentFilter::default(), &page(10, Some(token.into())))
            .await
            .unwrap_err();
        assert!(
            matches!(error, StoreError::InvalidPageToken),
            "{token:?}: {error:?}"
        );
    }
    let intent_token = Some(IntentId::generate().to_string());
    let error = store
        .list_sessions(&SessionFilter::default(), &page(10, intent_token))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::InvalidPageToken), "{error:?}");
}

#[tokio::test]
async fn a_page_size_of_zero_still_makes_progress() {
    let (_dir, store) = open();
    let (mut session, _) = stored_session(&store, ALICE).await;
    let call = stored_call(&store, &mut session, None).await;
    let first = store
        .list_intents(&IntentFilter::default(), &page(0, None))
        .await
        .unwrap();
    assert_eq!(ids(&first.items), vec![call.id]);
    assert!(first.next_token.is_some());
}

#[tokio::test]
async fn held_keys_are_stored_with_their_session_or_not_at_all() {
    let (_dir, store) = open();
    let mut session = session_on(ALICE);
    session.custody = KeyCustody::Held;
    let mut registration = Intent {
        id: session.registration_intent.clone(),
        ..intent_of(&session, IntentKind::Registration)
    };
    let secret = [7_u8; 48];

    // Custody and key must agree.
    let error = store
        .create_session(&mut session.clone(), &mut registration.clone(), None)
        .await
        .unwrap_err();
    assert!(
        matches!(error, StoreError::InvalidWrite { .. }),
        "{error:?}"
    );
    let wrong_address = Some((BOB, &secret[..]));
    let error = store
        .create_session(
            &mut session.clone(),
            &mut registration.clone(),
            wrong_address,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, StoreError::InvalidWrite { .. }),
        "{error:?}"
    );

    let key = session.key;
    store
        .create_session(&mut session, &mut registration, Some((key, &secret)))
        .await
        .unwrap();
    assert_eq!(
        store.held_key(session.key).await.unwrap(),
        Some(secret.to_vec())
    );
    assert_eq!(store.held_key(BOB).await.unwrap(), None);

    // A second session under the same key address never replaces the key, and is not kept.
    let mut twin = Session {
        id: SessionId::generate(),
        registration_intent: IntentId::generate(),
        ..session.clone()
    };
    let mut twin_registration = Intent {
        id: twin.registration_intent.clone(),
        session: Some(twin.id.clone()),
        ..registration.clone()
    };
    let error = store
        .create_session(
            &mut twin,
            &mut twin_registration,
            Some((session.key, &[9_u8; 48])),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::AlreadyExists {
                record: RecordId::HeldKey(_)
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        store.held_key(session.key).await.unwrap(),
        Some(secret.to_vec())
    );
    assert_eq!(store.session(&twin.id).await.unwrap(), None);
    assert_eq!(store.intent(&twin_registration.id).await.unwrap(), None);
}

#[tokio::test]
async fn everything_is_still_there_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let (session, registration, call) = {
        let store = SledStore::open(dir.path()).unwrap();
        let mut session = session_on(ALICE);
        session.custody = KeyCustody::Held;
        let mut registration = Intent {
            id: session.registration_intent.clone(),
            ..intent_of(&session, IntentKind::Registration)
        };
        let key = session.key;
        store
            .create_session(&mut session, &mut registration, Some((key, b"sealed")))
            .await
            .unwrap();
        let mut call = stored_call(&store, &mut session, Some("once")).await;
        call.apply(&IntentEvent::Signed, 3).unwrap();
        store.save(&mut [], &mut [&mut call]).await.unwrap();
        store.flush().await.unwrap();
        (session, registration, call)
    };
    let store = when_unlocked(|| SledStore::open(dir.path())).expect("reopen");
    assert_eq!(
        store.session(&session.id).await.unwrap(),
        Some(session.clone())
    );
    assert_eq!(
        store.intent(&registration.id).await.unwrap(),
        Some(registration)
    );
    assert_eq!(
        store.intents_in_status(IntentStatus::Queued).await.unwrap(),
        vec![call.clone()]
    );
    assert_eq!(
        store
            .intent_by_idempotency_key(&session.id, "once")
            .await
            .unwrap(),
        Some(call)
    );
    assert_eq!(
        store.held_key(session.key).await.unwrap(),
        Some(b"sealed".to_vec())
    );
}

#[tokio::test]
async fn writes_survive_dropping_the_store_without_an_explicit_flush() {
    let dir = tempfile::tempdir().unwrap();
    let session = {
        let store = SledStore::open(dir.path()).unwrap();
        stored_session(&store, ALICE).await.0
    };
    let store = when_unlocked(|| SledStore::open(dir.path())).unwrap();
    assert_eq!(store.session(&session.id).await.unwrap(), Some(session));
}

#[tokio::test]
async fn a_relay_pause_is_stored_until_lifted_and_outlasts_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let pause = RelayPause {
        reason: "topping up".to_owned(),
        since_ms: 1_700_000_000_000,
    };
    {
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(
            store.relay_pause().await.unwrap(),
            None,
            "a new store relays"
        );
        store.set_relay_pause(Some(&pause)).await.unwrap();
        assert_eq!(store.relay_pause().await.unwrap(), Some(pause.clone()));
    }
    let store = when_unlocked(|| SledStore::open(dir.path())).unwrap();
    assert_eq!(store.relay_pause().await.unwrap(), Some(pause));
    store.set_relay_pause(None).await.unwrap();
    assert_eq!(store.relay_pause().await.unwrap(), None);
    store.set_relay_pause(None).await.unwrap();
    assert_eq!(
        store.relay_pause().await.unwrap(),
        None,
        "lifting twice is a no-op"
    );
}

#[tokio::test]
async fn bare_keys_of_an_older_store_are_sealed_at_start_and_rotate_all_or_nothing() {
    use crate::{
        keys::{self, MasterKey, SEALED_LEN},
        store::{SealingError, rotate_master_key, seal_legacy_keys},
    };

    let (_dir, store) = open();
    // A held session as a version 2 store kept it: the bare secret under its address.
    let key = keys::generate();
    let mut session = session_on(ALICE);
    session.custody = KeyCustody::Held;
    session.key = key.address;
    let mut registration = Intent {
        id: session.registration_intent.clone(),
        ..intent_of(&session, IntentKind::Registration)
    };
    store
        .create_session(
            &mut session,
            &mut registration,
            Some((key.address, key.secret.as_slice())),
        )
        .await
        .unwrap();

    let master = MasterKey::generate();
    assert_eq!(seal_legacy_keys(&store, &master).await.unwrap(), 1);
    let sealed = store.held_key(key.address).await.unwrap().unwrap();
    assert_eq!(sealed.len(), SEALED_LEN);
    assert_eq!(
        keys::signer(&master, key.address, &sealed)
            .unwrap()
            .address(),
        key.address
    );
    assert_eq!(
        seal_legacy_keys(&store, &master).await.unwrap(),
        0,
        "once only"
    );

    // Another master key is named, and the key stays as it was.
    let other = MasterKey::generate();
    let error = seal_legacy_keys(&store, &other).await.unwrap_err();
    assert!(matches!(
        error,
        SealingError::Key(keys::KeyError::WrongMasterKey { .. })
    ));
    let error = rotate_master_key(&store, &other, &MasterKey::generate())
        .await
        .unwrap_err();
    assert!(error.to_string().contains(&master.id_hex()), "{error}");
    assert_eq!(store.held_key(key.address).await.unwrap().unwrap(), sealed);

    // A rotation moves it, and a second one has nothing left to do.
    let report = rotate_master_key(&store, &master, &other).await.unwrap();
    assert_eq!((report.resealed, report.already), (1, 0));
    let resealed = store.held_key(key.address).await.unwrap().unwrap();
    assert_eq!(
        keys::unseal(&other, key.address, &resealed)
            .unwrap()
            .as_slice(),
        key.secret.as_slice()
    );
    let report = rotate_master_key(&store, &master, &other).await.unwrap();
    assert_eq!((report.resealed, report.already), (0, 1));

    // A replacement based on stale bytes writes nothing.
    let error = store
        .replace_held_keys(&[(key.address, sealed.clone(), sealed)])
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::HeldKeyChanged(_)), "{error:?}");
    assert_eq!(
        store.held_key(key.address).await.unwrap().unwrap(),
        resealed
    );
}

/// Opens the database in `dir` again once the previous handle has let go of it: sled
/// releases the directory's lock from a background thread shortly after the last handle is
/// dropped, not at once, so an immediate reopen in the same process can find it still held.
fn when_unlocked<T, E: std::fmt::Debug>(open: impl Fn() -> Result<T, E>) -> Result<T, E> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match open() {
            Err(error)
                if format!("{error:?}").contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            result => return result,
        }
    }
}

/// Stamps the closed database in `dir` with `version`.
fn stamp(dir: &std::path::Path, version: u32) {
    let db = when_unlocked(|| sled::open(dir)).expect("open");
    let meta = db.open_tree(layout::META).expect("meta");
    meta.insert(layout::SCHEMA_VERSION_KEY, &version.to_be_bytes())
        .expect("stamp");
    db.flush().expect("flush");
}

#[tokio::test]
async fn a_database_of_another_schema_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(SledStore::open(dir.path()).unwrap());
    stamp(dir.path(), SCHEMA_VERSION + 1);
    let error = when_unlocked(|| SledStore::open(dir.path())).unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::SchemaMismatch { found, expected }
                if found == SCHEMA_VERSION + 1 && expected == SCHEMA_VERSION
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_version_one_database_is_upgraded_in_place_and_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let (session, registration) = {
        let store = SledStore::open(dir.path()).unwrap();
        stored_session(&store, ALICE).await
    };
    stamp(dir.path(), 1);
    let store = when_unlocked(|| SledStore::open(dir.path())).unwrap();
    assert_eq!(store.session(&session.id).await.unwrap(), Some(session));
    let read = store.intent(&registration.id).await.unwrap().expect("kept");
    assert_eq!(read.charge, None);
    drop(store);
    let db = when_unlocked(|| sled::open(dir.path())).unwrap();
    let version = db
        .open_tree(layout::META)
        .unwrap()
        .get(layout::SCHEMA_VERSION_KEY)
        .unwrap()
        .expect("stamped");
    assert_eq!(version.as_ref(), SCHEMA_VERSION.to_be_bytes());
}

#[tokio::test]
async fn data_without_a_schema_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = when_unlocked(|| sled::open(dir.path())).unwrap();
        db.open_tree(layout::Table::Sessions.name())
            .unwrap()
            .insert(b"ses_x", b"{}")
            .unwrap();
        db.flush().unwrap();
    }
    let error = when_unlocked(|| SledStore::open(dir.path())).unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::SchemaMismatch { found: 0, expected }
                if expected == SCHEMA_VERSION
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn corrupt_bytes_on_disk_are_reported_not_panicked_on() {
    let (_dir, store) = open();
    let (mut session, _) = stored_session(&store, ALICE).await;
    let call = stored_call(&store, &mut session, None).await;
    let trees = &store.trees;
    trees
        .tree(layout::Table::Intents)
        .insert(call.id.as_str(), b"{\"id\":".as_slice())
        .unwrap();
    trees
        .tree(layout::Table::Sessions)
        .insert(session.id.as_str(), b"[]".as_slice())
        .unwrap();

    let error = store.intent(&call.id).await.unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::Corrupt {
                tree: "intents",
                ..
            }
        ),
        "{error:?}"
    );
    let error = store.session(&session.id).await.unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::Corrupt {
                tree: "sessions",
                ..
            }
        ),
        "{error:?}"
    );
    let error = store
        .list_intents(&IntentFilter::default(), &page(10, None))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Corrupt { .. }), "{error:?}");
    let error = store.save(&mut [&mut session], &mut []).await.unwrap_err();
    assert!(matches!(error, StoreError::Corrupt { .. }), "{error:?}");

    // An index entry that points nowhere.
    let orphan = IntentId::generate();
    trees
        .tree(layout::Table::IntentByStatus)
        .insert(
            layout::index_key(
                layout::status_prefix(IntentStatus::Queued.code()),
                orphan.as_str(),
            ),
            layout::EMPTY,
        )
        .unwrap();
    let error = store
        .intents_in_status(IntentStatus::Queued)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::Corrupt {
                tree: "intent_by_status",
                ..
            }
        ),
        "{error:?}"
    );
}

/// Many tasks writing and flushing at once all finish. (sled 0.34's `flush_async` can leave
/// concurrent callers waiting forever; before the store stopped using it, this test hung in
/// about one run of two.) The work runs on a thread of its own, so that a hang fails the
/// test instead of freezing it.
#[test]
fn concurrent_flushes_all_complete() {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let count = runtime.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let store = std::sync::Arc::new(SledStore::open(dir.path()).unwrap());
            let mut writers: Vec<_> = Vec::new();
            for index in 0..200u8 {
                let store = store.clone();
                writers.push(tokio::spawn(async move {
                    let mut session = session_on(ALICE);
                    session.key = Address::with_last_byte(index);
                    let mut registration = Intent {
                        id: session.registration_intent.clone(),
                        ..intent_of(&session, IntentKind::Registration)
                    };
                    store
                        .create_session(&mut session, &mut registration, None)
                        .await
                        .unwrap();
                    store.flush().await.unwrap();
                }));
            }
            for writer in writers {
                writer.await.unwrap();
            }
            store
                .sessions_in_status(SessionStatus::PendingSignature)
                .await
                .unwrap()
                .len()
        });
        let _ = done.send(count);
    });
    let count = finished
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("every flush completes within a minute");
    assert_eq!(count, 200);
}

// --- Sponsorship policies -----------------------------------------------------------------

/// When the test policies were created, unix ms: their intervals count from here.
const POLICY_CREATED: u64 = 1_700_000_000_000;
const HOUR_MS: u64 = 3_600_000;

/// An enabled policy on the test sessions' chain that sponsors any call, with `limits` after
/// that rule (so the first limit is rule 1), not yet stored.
fn sponsoring(limits: Vec<Rule>) -> Policy {
    let mut rules = vec![Rule::ContractFunctions(vec![ContractFunction {
        contract: None,
        selector: SelectorRule::Any,
        function: "*".into(),
    }])];
    rules.extend(limits);
    Policy {
        tenant: Default::default(),
        id: PolicyId::generate(),
        name: "Starter quests".into(),
        chain_id: 31_337,
        strategy: SponsorStrategy::PayForUser,
        enabled: true,
        rules,
        revision: 0,
        created_at_ms: POLICY_CREATED,
        updated_at_ms: POLICY_CREATED,
    }
}

/// [`sponsoring`] `limits`, as stored.
async fn stored_policy(store: &dyn Store, limits: Vec<Rule>) -> Policy {
    let mut policy = sponsoring(limits);
    store
        .create_policy(&mut policy)
        .await
        .expect("create the policy");
    policy
}

/// What one operation reserves in the tests: its gas limits, and those at 2 gwei.
const RESERVED: Amount = Amount {
    operations: 1,
    gas: 300_000,
    wei: 300_000 * 2_000_000_000,
};

/// A call intent of `session` that `policy` sponsors, charged at `now_ms`; not yet stored.
fn charged_call(session: &Session, policy: &Policy, now_ms: u64) -> Intent {
    let mut intent = intent_of(session, IntentKind::Call);
    intent.charge = Some(Charge {
        policy: policy.id.clone(),
        windows: policy.windows_at(now_ms),
        reserved: RESERVED,
        revocation: false,
    });
    intent
}

fn pending(amount: Amount) -> PolicyUsage {
    PolicyUsage {
        pending: amount,
        settled: Amount::default(),
    }
}

fn times(amount: Amount, count: u64) -> Amount {
    (0..count).fold(Amount::default(), |sum, _| sum.saturating_add(amount))
}

/// The usage of every window `intent` is charged to.
async fn window_usages(store: &dyn Store, intent: &Intent) -> Vec<PolicyUsage> {
    let charge = intent.charge.as_ref().expect("a charged intent");
    let mut usages = Vec::new();
    for window in &charge.windows {
        usages.push(
            store
                .policy_window_usage(&charge.policy, *window)
                .await
                .expect("read a window's usage"),
        );
    }
    usages
}

#[tokio::test]
async fn policies_read_back_as_written_and_list_newest_first_in_pages() {
    let (_dir, store) = open();
    let mut policies: Vec<Policy> = Vec::new();
    for _ in 0..5 {
        policies.push(
            stored_policy(
                &store,
                vec![Rule::OperationsPerInterval {
                    max_operations: 10,
                    interval_secs: 3600,
                }],
            )
            .await,
        );
    }
    for policy in &policies {
        assert_eq!(policy.revision, 1);
        assert_eq!(
            store.policy(&policy.id).await.unwrap(),
            Some(policy.clone())
        );
    }
    assert_eq!(store.policy(&PolicyId::generate()).await.unwrap(), None);

    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut token = None;
    loop {
        let page = store.list_policies(None, &page(2, token)).await.unwrap();
        sizes.push(page.items.len());
        seen.extend(page.items);
        match page.next_token {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    assert_eq!(sizes, vec![2, 2, 1]);
    let mut newest_first = policies.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first);

    // Creating one again is refused, and a token of another list is not a policy token.
    let mut again = policies[2].clone();
    let error = store.create_policy(&mut again).await.unwrap_err();
    assert!(
        matches!(&error, StoreError::AlreadyExists { record: RecordId::Policy(id) } if *id == again.id),
        "{error:?}"
    );
    let error = store
        .list_policies(None, &page(2, Some(SessionId::generate().to_string())))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::InvalidPageToken), "{error:?}");
}

#[tokio::test]
async fn saving_a_policy_checks_its_revision_and_never_changes_its_rules() {
    let (_dir, store) = open();
    let mut policy = stored_policy(
        &store,
        vec![Rule::OperationsPerInterval {
            max_operations: 10,
            interval_secs: 3600,
        }],
    )
    .await;
    let mut stale = policy.clone();

    policy.enabled = false;
    policy.name = "Paused quests".into();
    policy.updated_at_ms = POLICY_CREATED + 1;
    store.save_policy(&mut policy).await.unwrap();
    assert_eq!(policy.revision, 2);
    assert_eq!(
        store.policy(&policy.id).await.unwrap(),
        Some(policy.clone())
    );

    stale.name = "Renamed from an old read".into();
    let error = store.save_policy(&mut stale).await.unwrap_err();
    assert!(
        matches!(&error, StoreError::Conflict { record: RecordId::Policy(id), stored: 2, given: 1 } if *id == policy.id),
        "{error:?}"
    );
    assert_eq!(
        stale.revision, 1,
        "a refused write bumped the caller's copy"
    );
    assert_eq!(
        store.policy(&policy.id).await.unwrap(),
        Some(policy.clone())
    );

    let mut looser = policy.clone();
    looser.rules[1] = Rule::OperationsPerInterval {
        max_operations: 1_000,
        interval_secs: 3600,
    };
    let mut longer = policy.clone();
    longer.rules.push(Rule::GasPerOperation { max_gas: 1 });
    let mut moved = policy.clone();
    moved.created_at_ms += HOUR_MS;
    for changed in [&mut looser, &mut longer, &mut moved] {
        let error = store.save_policy(changed).await.unwrap_err();
        assert!(
            matches!(error, StoreError::InvalidWrite { .. }),
            "{error:?}"
        );
        assert_eq!(changed.revision, 2);
    }
    assert_eq!(store.policy(&policy.id).await.unwrap(), Some(policy));

    let error = store
        .save_policy(&mut sponsoring(Vec::new()))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::NotFound {
                record: RecordId::Policy(_)
            }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_sponsored_intent_adds_its_reservation_to_the_policy_total_and_its_windows() {
    let (_dir, store) = open();
    let policy = stored_policy(
        &store,
        vec![
            Rule::OperationsPerInterval {
                max_operations: 5,
                interval_secs: 3600,
            },
            Rule::GasPerInterval {
                max_gas: 10_000_000,
                interval_secs: 3600,
            },
            Rule::GasPerOperation { max_gas: 1_000_000 },
            Rule::SpendPerInterval {
                max_wei: 10_u128.pow(18),
                interval_secs: 24 * 3600,
            },
        ],
    )
    .await;
    let (mut session, _) = stored_session(&store, ALICE).await;
    let now = POLICY_CREATED + 2 * HOUR_MS + HOUR_MS / 2;
    let windows = policy.windows_at(now);
    assert_eq!(
        windows,
        vec![
            WindowKey { rule: 1, index: 2 },
            WindowKey { rule: 2, index: 2 },
            WindowKey { rule: 4, index: 0 },
        ]
    );
    assert_eq!(
        store.policy_usage(&policy.id).await.unwrap(),
        PolicyUsage::default()
    );

    let mut first = charged_call(&session, &policy, now);
    assert_eq!(
        store.create_intent(&mut session, &mut first).await.unwrap(),
        CreateIntent::Created
    );
    assert_eq!(store.intent(&first.id).await.unwrap(), Some(first.clone()));
    assert_eq!(
        store.policy_usage(&policy.id).await.unwrap(),
        pending(RESERVED)
    );
    assert_eq!(
        window_usages(&store, &first).await,
        vec![pending(RESERVED); 3]
    );

    let mut second = charged_call(&session, &policy, now);
    store
        .create_intent(&mut session, &mut second)
        .await
        .unwrap();
    let twice = pending(times(RESERVED, 2));
    assert_eq!(store.policy_usage(&policy.id).await.unwrap(), twice);
    assert_eq!(window_usages(&store, &second).await, vec![twice; 3]);

    // Other intervals, and other policies, are untouched.
    assert_eq!(
        store
            .policy_window_usage(&policy.id, WindowKey { rule: 1, index: 1 })
            .await
            .unwrap(),
        PolicyUsage::default()
    );
    assert_eq!(
        store.policy_usage(&PolicyId::generate()).await.unwrap(),
        PolicyUsage::default()
    );
}

#[tokio::test]
async fn a_disabled_policy_refuses_a_new_intent_and_nothing_is_written() {
    let (_dir, store) = open();
    let mut policy = stored_policy(
        &store,
        vec![Rule::OperationsPerInterval {
            max_operations: 5,
            interval_secs: 3600,
        }],
    )
    .await;
    let (mut session, _) = stored_session(&store, ALICE).await;
    let now = POLICY_CREATED + 1;
    // An intent charged while the policy was enabled, written after it was disabled.
    let mut intent = charged_call(&session, &policy, now);
    policy.enabled = false;
    store.save_policy(&mut policy).await.unwrap();

    let before = store.content_digest().await.unwrap();
    let session_before = session.clone();
    let error = store
        .create_intent(&mut session, &mut intent)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, StoreError::Refused(Refusal::Disabled { policy: id }) if *id == policy.id),
        "{error:?}"
    );
    assert_eq!(
        store.content_digest().await.unwrap(),
        before,
        "a refused write wrote"
    );
    assert_eq!(
        session, session_before,
        "a refused write changed the session copy"
    );
    assert_eq!(intent.revision, 0);
    assert_eq!(store.intent(&intent.id).await.unwrap(), None);
    assert_eq!(
        store.policy_usage(&policy.id).await.unwrap(),
        PolicyUsage::default()
    );
}

#[tokio::test]
async fn an_intent_over_a_limit_per_interval_is_refused_until_the_next_interval() {
    let (_dir, store) = open();
    let policy = stored_policy(
        &store,
        vec![Rule::OperationsPerInterval {
            max_operations: 2,
            interval_secs: 3600,
        }],
    )
    .await;
    let (mut session, _) = stored_session(&store, ALICE).await;
    let now = POLICY_CREATED + 3 * HOUR_MS + 10;
    for _ in 0..2 {
        let mut intent = charged_call(&session, &policy, now);
        store
            .create_intent(&mut session, &mut intent)
            .await
            .unwrap();
    }

    let before = store.content_digest().await.unwrap();
    let mut third = charged_call(&session, &policy, now);
    let error = store
        .create_intent(&mut session, &mut third)
        .await
        .unwrap_err();
    match &error {
        StoreError::Refused(refusal) => assert_eq!(
            *refusal,
            Refusal::LimitReached {
                rule: 1,
                kind: "operations_per_interval",
                used: 2,
                requested: 1,
                limit: 2,
                window_end_ms: POLICY_CREATED + 4 * HOUR_MS,
            }
        ),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(
        store.content_digest().await.unwrap(),
        before,
        "a refused write wrote"
    );
    assert_eq!(store.intent(&third.id).await.unwrap(), None);

    // The next interval has room again; the policy's total keeps counting.
    let mut later = charged_call(&session, &policy, now + HOUR_MS);
    assert_eq!(
        store.create_intent(&mut session, &mut later).await.unwrap(),
        CreateIntent::Created
    );
    assert_eq!(window_usages(&store, &later).await, vec![pending(RESERVED)]);
    assert_eq!(
        store.policy_usage(&policy.id).await.unwrap(),
        pending(times(RESERVED, 3))
    );
}

#[tokio::test]
async fn an_intent_over_the_gas_per_interval_is_refused() {
    let (_dir, store) = open();
    let policy = stored_policy(
        &store,
        vec![Rule::GasPerInterval {
            max_gas: 500_000,
            interval_secs: 60,
        }],
    )
    .await;
    let (mut session, _) = stored_session(&store, ALICE).await;
    let now = POLICY_CREATED + 30_000;
    let mut first = charged_call(&session, &policy, now);
    store.create_intent(&mut session, &mut first).await.unwrap();
    let mut second = charged_call(&session, &policy, now);
    let error = store
        .create_intent(&mut session, &mut second)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::Refused(Refusal::LimitReached {
                rule: 1,
                kind: "gas_per_interval",
                used: 300_000,
                requested: 300_000,
                limit: 500_000,
                window_end_ms,
            }) if window_end_ms == POLICY_CREATED + 60_000
        ),
        "{error:?}"
    );
}

/// `intent` signed, sent and included, saved at each step.
async fn include(store: &dyn Store, intent: &mut Intent) {
    for event in [
        IntentEvent::Signed,
        IntentEvent::Submitted,
        IntentEvent::Included,
    ] {
        intent.apply(&event, 2).expect("a valid transition");
        store
            .save(&mut [], &mut [&mut *intent])
            .await
            .expect("save the intent");
    }
}

#[tokio::test]
async fn an_executed_intent_moves_its_charge_from_pending_to_its_actual_cost() {
    let (_dir, store) = open();
    let policy = stored_policy(
        &store,
        vec![
            Rule::OperationsPerInterval {
                max_operations: 10,
                interval_secs: 3600,
            },
            Rule::SpendPerInterval {
                max_wei: 10_u128.pow(18),
                interval_secs: 3600,
            },
        ],
    )
    .await;
    let (mut session, _) = stored_session(&store, ALICE).await;
    let now = POLICY_CREATED + 5;
    let mut confirmed = charged_call(&session, &policy, now);
    store
        .create_intent(&mut session, &mut confirmed)
        .await
        .unwrap();
    let mut reverted = charged_call(&session, &policy, now);
    store
        .create_intent(&mut session, &mut reverted)
        .await
        .unwrap();

    include(&store, &mut confirmed).await;
    include(&store, &mut reverted).await;
    let both_pending = pending(times(RESERVED, 2));
    assert_eq!(store.policy_usage(&policy.id).await.unwrap(), both_pending);

    let receipt = |gas: u64, success| IntentResult {
        tx_hash: B256::repeat_byte(0x7a),
        block_number: 9,
        block_hash: B256::repeat_byte(0x9b),
        gas_used: U256::from(gas),
        actual_cost: U256::from(gas) * U256::from(1_000_000_000_u64),
        success,
        revert: None,
    };
    confirmed.result = Some(receipt(120_000, true));
    confirmed
        .apply(&IntentEvent::Finalized { success: true }, 3)
        .unwrap();
    store.save(&mut [], &mut [&mut confirmed]).await.unwrap();
    let one_settled = PolicyUsage {
        pending: RESERVED,
        settled: Amount {
            operations: 1,
            gas: 120_000,
            wei: 120_000 * 1_000_000_000,
        },
    };
    assert_eq!(store.policy_usage(&policy.id).await.unwrap(), one_settled);
    assert_eq!(
        window_usages(&store, &confirmed).await,
        vec![one_settled; 2]
    );

    // A reverted operation was paid for all the same.
    reverted.result = Some(receipt(80_000, false));
    reverted
        .apply(&IntentEvent::Finalized { success: false }, 3)
        .unwrap();
    store.save(&mut [], &mut [&mut reverted]).await.unwrap();
    let both_settled = PolicyUsage {
        pending: Amount::default(),
        settled: Amount {
            operations: 2,
            gas: 200_000,
            wei: 200_000 * 1_000_000_000,
        },
    };
    assert_eq!(store.policy_usage(&policy.id).await.unwrap(), both_settled);
    assert_eq!(
        window_usages(&store, &reverted).await,
        vec![both_settled; 2]
    );

    // A charge never changes once written.
    let mut recharged = store.intent(&confirmed.id).await.unwrap().unwrap();
    if let Some(charge) = recharged.charge.as_mut() {
        charge.reserved = Amount::default();
    }
    let error = store
        .save(&mut [], &mut [&mut recharged])
        .await
        .unwrap_err();
    assert!(
        matches!(error, StoreError::InvalidWrite { .. }),
        "{error:?}"
    );
    assert_eq!(store.policy_usage(&policy.id).await.unwrap(), both_settled);
}

#[tokio::test]
async fn an_intent_that_never_executes_releases_its_charge() {
    let (_dir, store) = open();
    let policy = stored_policy(
        &store,
        vec![Rule::OperationsPerInterval {
            max_operations: 2,
            interval_secs: 3600,
        }],
    )
    .await;
    let (mut session, _) = stored_session(&store, ALICE).await;
    let now = POLICY_CREATED + 5;
    let mut dropped = charged_call(&session, &policy, now);
    store
        .create_intent(&mut session, &mut dropped)
        .await
        .unwrap();
    let mut expired = charged_call(&session, &policy, now);
    store
        .create_intent(&mut session, &mut expired)
        .await
        .unwrap();
    assert_eq!(
        store.policy_usage(&policy.id).await.unwrap(),
        pending(times(RESERVED, 2))
    );

    dropped.apply(&IntentEvent::Signed, 2).unwrap();
    store.save(&mut [], &mut [&mut dropped]).await.unwrap();
    dropped.apply(&IntentEvent::Dropped, 3).unwrap();
    store.save(&mut [], &mut [&mut dropped]).await.unwrap();
    assert_eq!(
        store.policy_usage(&policy.id).await.unwrap(),
        pending(RESERVED)
    );
    assert_eq!(
        window_usages(&store, &dropped).await,
        vec![pending(RESERVED)]
    );

    expired.apply(&IntentEvent::SignatureTimedOut, 4).unwrap();
    store.save(&mut [], &mut [&mut expired]).await.unwrap();
    assert_eq!(
        store.policy_usage(&policy.id).await.unwrap(),
        PolicyUsage::default()
    );
    assert_eq!(
        window_usages(&store, &expired).await,
        vec![PolicyUsage::default()]
    );

    // The released room is there for new operations.
    for _ in 0..2 {
        let mut intent = charged_call(&session, &policy, now);
        store
            .create_intent(&mut session, &mut intent)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn concurrent_intents_never_overrun_a_limit_per_interval() {
    const THREADS: usize = 16;
    const ATTEMPTS: usize = 40;
    let (_dir, store) = open();
    let policy = stored_policy(
        &store,
        vec![Rule::OperationsPerInterval {
            max_operations: 10,
            interval_secs: 3600,
        }],
    )
    .await;
    let now = POLICY_CREATED + 42;
    // One session per thread, so that no write conflicts on a session revision: only the
    // policy's limit stands between the threads.
    let mut sessions: Vec<Session> = Vec::new();
    for thread in 0..THREADS {
        sessions.push(
            stored_session(&store, Address::with_last_byte(thread as u8))
                .await
                .0,
        );
    }
    let barrier = Barrier::new(THREADS);
    let outcomes: Vec<Result<CreateIntent, StoreError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = sessions
            .into_iter()
            .enumerate()
            .map(|(thread, mut session)| {
                let (store, barrier, policy) = (&store, &barrier, &policy);
                scope.spawn(move || {
                    // Attempts are dealt round-robin: 40 over 16 threads.
                    let attempts = (thread..ATTEMPTS).step_by(THREADS).count();
                    barrier.wait();
                    (0..attempts)
                        .map(|_| {
                            let mut intent = charged_call(&session, policy, now);
                            futures::executor::block_on(
                                store.create_intent(&mut session, &mut intent),
                            )
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| handle.join().expect("writer thread"))
            .collect()
    });
    assert_eq!(outcomes.len(), ATTEMPTS);
    let created = outcomes
        .iter()
        .filter(|outcome| matches!(outcome, Ok(CreateIntent::Created)))
        .count();
    let refused = outcomes
        .iter()
        .filter(|outcome| {
            matches!(
                outcome,
                Err(StoreError::Refused(Refusal::LimitReached {
                    rule: 1,
                    limit: 10,
                    ..
                }))
            )
        })
        .count();
    assert_eq!((created, refused), (10, 30), "{outcomes:?}");
    let usage = store.policy_usage(&policy.id).await.unwrap();
    assert_eq!(usage, pending(times(RESERVED, 10)));
    assert_eq!(usage.pending.operations, 10);
    assert_eq!(
        store
            .policy_window_usage(&policy.id, policy.windows_at(now)[0])
            .await
            .unwrap(),
        usage
    );
    let charged = store
        .list_intents(
            &IntentFilter {
                kind: Some(IntentKind::Call),
                ..Default::default()
            },
            &page(100, None),
        )
        .await
        .unwrap();
    assert_eq!(charged.items.len(), 10);
}

#[tokio::test]
async fn a_sponsored_registration_is_admitted_with_its_session_or_refused_with_it() {
    let (_dir, store) = open();
    let mut policy = stored_policy(
        &store,
        vec![Rule::OperationsPerInterval {
            max_operations: 5,
            interval_secs: 3600,
        }],
    )
    .await;
    let now = POLICY_CREATED + 1;
    let registering = |policy: &Policy| {
        let mut session = session_on(ALICE);
        session.policy = Some(policy.id.clone());
        let registration = Intent {
            id: session.registration_intent.clone(),
            kind: IntentKind::Registration,
            ..charged_call(&session, policy, now)
        };
        (session, registration)
    };

    let (mut session, mut registration) = registering(&policy);
    store
        .create_session(&mut session, &mut registration, None)
        .await
        .unwrap();
    assert_eq!(
        store.policy_usage(&policy.id).await.unwrap(),
        pending(RESERVED)
    );

    policy.enabled = false;
    store.save_policy(&mut policy).await.unwrap();
    let before = store.content_digest().await.unwrap();
    let (mut session, mut registration) = registering(&policy);
    let error = store
        .create_session(&mut session, &mut registration, None)
        .await
        .unwrap_err();
    assert!(
        matches!(error, StoreError::Refused(Refusal::Disabled { .. })),
        "{error:?}"
    );
    assert_eq!(
        store.content_digest().await.unwrap(),
        before,
        "a refused write wrote"
    );
    assert_eq!(store.session(&session.id).await.unwrap(), None);
}

#[tokio::test]
async fn every_intent_write_is_told_once_in_order_after_it_is_durable_and_a_refused_one_never() {
    let (_dir, store) = open();
    let mut told = store.events().subscribe();
    let (mut session, registration) = stored_session(&store, ALICE).await;
    let call = stored_call(&store, &mut session, None).await;
    let mut signed = call.clone();
    signed.apply(&IntentEvent::Signed, 2).expect("signed");
    store.save(&mut [], &mut [&mut signed]).await.expect("save");
    // A write that loses its race is refused whole, and tells nothing.
    let mut stale = call.clone();
    stale.apply(&IntentEvent::Signed, 3).expect("signed");
    assert!(matches!(
        store.save(&mut [], &mut [&mut stale]).await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(
        told.try_recv().is_err(),
        "nothing is told before the writes are durable"
    );
    let digest = store.content_digest().await.expect("digest");

    store.flush().await.expect("flush");
    let mut heard = Vec::new();
    while let Ok(intent) = told.try_recv() {
        heard.push((intent.id, intent.revision, intent.status));
    }
    assert_eq!(
        heard,
        vec![
            (registration.id, 1, IntentStatus::PendingSignature),
            (call.id.clone(), 1, IntentStatus::PendingSignature),
            (call.id, 2, IntentStatus::Queued),
        ]
    );
    // Told once: the outbox is empty, and emptying it changed none of the data.
    store.flush().await.expect("flush");
    assert!(told.try_recv().is_err());
    assert_eq!(store.content_digest().await.expect("digest"), digest);
    assert_eq!(
        store
            .trees
            .tree(layout::Table::Outbox)
            .scan_prefix(layout::OUTBOX_CHANGE_PREFIX)
            .count(),
        0
    );
}

#[tokio::test]
async fn changes_written_before_a_crash_are_told_after_the_restart() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let registration = {
        let store = SledStore::open(dir.path()).expect("open");
        let (_, registration) = stored_session(&store, ALICE).await;
        // Durable in sled's log, but the process ends before anyone flushed through the
        // store, so nobody was told.
        store.db.flush().expect("sled flush");
        registration
    };
    let store = SledStore::open(dir.path()).expect("reopen");
    let mut told = store.events().subscribe();
    store.flush().await.expect("flush");
    let intent = told.try_recv().expect("told after the restart");
    assert_eq!(intent.id, registration.id);
}
