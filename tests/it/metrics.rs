//! The Prometheus endpoint of a live daemon, scraped as intents flow: gRPC calls by method
//! and code, intents by status, bundles, the chain head and the balances move as they should.

use alloy::signers::local::PrivateKeySigner;
use latchkey::api::proto;

use crate::{daemon::TestDaemon, harness::TestChain};

const CREATE: &str = "latchkey_grpc_requests_total{method=\"TransactionIntentService/CreateTransactionIntent\",code=\"OK\"}";
const REFUSED: &str = "latchkey_grpc_requests_total{method=\"TransactionIntentService/CreateTransactionIntent\",code=\"INVALID_ARGUMENT\"}";
const CONFIRMED: &str = "latchkey_intents{status=\"confirmed\"}";
const BUNDLES: &str = "latchkey_bundle_operations_count";
const BUNDLED_OPS: &str = "latchkey_bundle_operations_sum";
const HEAD: &str = "latchkey_chain_head_block";

#[tokio::test]
async fn the_metrics_endpoint_moves_as_intents_flow() {
    let chain = TestChain::start().await;
    let mut daemon = TestDaemon::start(&chain).await;
    let session = daemon
        .active_held_session(&chain, &PrivateKeySigner::random(), 20)
        .await;
    let before = daemon.scrape().await;
    let value = |samples: &std::collections::HashMap<String, f64>, name: &str| {
        samples.get(name).copied().unwrap_or(0.0)
    };
    assert_eq!(
        value(&before, CONFIRMED),
        1.0,
        "the registration: {before:?}"
    );
    assert_eq!(value(&before, "latchkey_chain_up"), 1.0);
    let relayer = format!(
        "latchkey_relayer_balance_eth{{relayer=\"{}\"}}",
        chain.chain.relayer.address()
    );
    assert!(value(&before, &relayer) > 0.0, "{before:?}");
    assert!(value(&before, "latchkey_paymaster_deposit_eth") > 0.0);

    let mut names = Vec::new();
    for id in 0..5 {
        names.push(daemon.create_mint(&chain, &session, id).await.name);
    }
    let refused = daemon
        .intents
        .create_transaction_intent(proto::CreateTransactionIntentRequest {
            session: "sessions/nope".into(),
            ..Default::default()
        })
        .await;
    assert!(refused.is_err());
    for name in &names {
        daemon.wait_final(name).await;
    }

    let after = daemon.scrape().await;
    assert_eq!(value(&after, CREATE) - value(&before, CREATE), 5.0);
    assert_eq!(value(&after, REFUSED) - value(&before, REFUSED), 1.0);
    assert_eq!(value(&after, CONFIRMED), 6.0, "{after:?}");
    assert_eq!(
        value(&after, "latchkey_intents{status=\"queued\"}"),
        0.0,
        "nothing left waiting"
    );
    assert!(value(&after, BUNDLES) > value(&before, BUNDLES));
    assert_eq!(
        value(&after, BUNDLED_OPS) - value(&before, BUNDLED_OPS),
        5.0
    );
    assert!(value(&after, HEAD) > value(&before, HEAD));
    assert!(
        value(
            &after,
            "latchkey_grpc_request_duration_seconds_count{method=\"TransactionIntentService/CreateTransactionIntent\"}"
        ) >= 6.0
    );
}
