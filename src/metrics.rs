//! Prometheus metrics. Events are counted where they happen (gRPC calls, bundles, fee bumps,
//! reorgs); levels (intents by status, the chain head, relayer balances, the paymaster's
//! deposit) are read from the store and the chain when Prometheus scrapes, so they are
//! never stale and cost nothing between scrapes.

use std::{sync::atomic::AtomicU64, time::Duration};

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::{Metric, Registry},
};
use tonic::Code;

/// The labels of a gRPC call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// The method, as `Service/Method`.
    pub method: String,
    /// The gRPC status code, as its name (`OK`, `INVALID_ARGUMENT`, …).
    pub code: String,
}

/// The label of a gRPC method.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    /// The method, as `Service/Method`.
    pub method: String,
}

/// The label of an intent status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    /// The status, lower case (`queued`, `confirmed`, …).
    pub status: String,
}

/// The label of a relayer.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RelayerLabels {
    /// The relayer's address.
    pub relayer: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;
type HistogramMaker = fn() -> Histogram;

/// Every metric the daemon exports, registered once.
pub struct Metrics {
    registry: Registry,
    grpc_requests: Family<CallLabels, Counter>,
    grpc_seconds: Family<MethodLabels, Histogram, HistogramMaker>,
    bundle_operations: Histogram,
    bundle_gas: Histogram,
    fee_bumps: Counter,
    reorgs: Counter,
    intents: Family<StatusLabels, Gauge>,
    chain_head: Gauge,
    chain_head_age_seconds: FloatGauge,
    chain_up: Gauge,
    relayer_balance_eth: Family<RelayerLabels, FloatGauge>,
    paymaster_deposit_eth: FloatGauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn latency_histogram() -> Histogram {
    // 1 ms to about 16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("latchkey");
        Self {
            grpc_requests: registered(
                &mut registry,
                "grpc_requests",
                "gRPC calls answered, by method and status code",
                Family::<CallLabels, Counter>::default(),
            ),
            grpc_seconds: registered(
                &mut registry,
                "grpc_request_duration_seconds",
                "Time to answer a gRPC call (to its first message, for a stream), by method",
                Family::<MethodLabels, Histogram, HistogramMaker>::new_with_constructor(
                    latency_histogram as HistogramMaker,
                ),
            ),
            // 1 to 512 operations.
            bundle_operations: registered(
                &mut registry,
                "bundle_operations",
                "User operations in each handleOps bundle sent",
                Histogram::new(exponential_buckets(1.0, 2.0, 10)),
            ),
            // 100k to about 26M gas.
            bundle_gas: registered(
                &mut registry,
                "bundle_gas",
                "Gas limit of each handleOps transaction sent",
                Histogram::new(exponential_buckets(100_000.0, 2.0, 9)),
            ),
            fee_bumps: registered(
                &mut registry,
                "fee_bumps",
                "Bundles replaced at the same nonce with higher fees",
                Counter::default(),
            ),
            reorgs: registered(
                &mut registry,
                "reorgs",
                "Included operations whose block left the canonical chain",
                Counter::default(),
            ),
            intents: registered(
                &mut registry,
                "intents",
                "Intents (calls, registrations and revocations) in the store, by status",
                Family::<StatusLabels, Gauge>::default(),
            ),
            chain_head: registered(
                &mut registry,
                "chain_head_block",
                "The chain's latest block number",
                Gauge::default(),
            ),
            chain_head_age_seconds: registered(
                &mut registry,
                "chain_head_age_seconds",
                "Seconds since the latest block's timestamp: how far the chain lags the clock",
                FloatGauge::default(),
            ),
            chain_up: registered(
                &mut registry,
                "chain_up",
                "1 when the chain's RPC endpoint answered the last scrape, else 0",
                Gauge::default(),
            ),
            relayer_balance_eth: registered(
                &mut registry,
                "relayer_balance_eth",
                "Each relayer's balance, ETH",
                Family::<RelayerLabels, FloatGauge>::default(),
            ),
            paymaster_deposit_eth: registered(
                &mut registry,
                "paymaster_deposit_eth",
                "The sponsoring paymaster's deposit at the EntryPoint, ETH",
                FloatGauge::default(),
            ),
            registry,
        }
    }
}

/// Registers `metric` as `name` and hands it back: the registry keeps a clone, which shares
/// the metric's value, to encode at each scrape.
fn registered<M: Metric + Clone>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M {
    registry.register(name, help, metric.clone());
    metric
}

impl Metrics {
    /// Counts one answered gRPC call of `method` that took `elapsed`.
    pub fn grpc_call(&self, method: &str, code: Code, elapsed: Duration) {
        self.grpc_requests
            .get_or_create(&CallLabels {
                method: method.to_owned(),
                code: code_name(code).to_owned(),
            })
            .inc();
        self.grpc_seconds
            .get_or_create(&MethodLabels {
                method: method.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Counts one bundle sent with `operations` operations and a gas limit of `gas`.
    pub fn bundle_sent(&self, operations: usize, gas: u64) {
        self.bundle_operations.observe(operations as f64);
        self.bundle_gas.observe(gas as f64);
    }

    /// Counts a bundle replaced with higher fees.
    pub fn fee_bumped(&self) {
        self.fee_bumps.inc();
    }

    /// Counts `operations` whose inclusion a reorg undid.
    pub fn reorged(&self, operations: usize) {
        self.reorgs.inc_by(operations as u64);
    }

    /// Sets how many intents are in `status`.
    pub fn set_intents(&self, status: &str, count: usize) {
        self.intents
            .get_or_create(&StatusLabels {
                status: status.to_owned(),
            })
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// Sets what the chain looked like at the scrape, or marks it unreachable.
    pub fn set_chain(&self, head: Option<(u64, f64)>) {
        match head {
            Some((block, age_seconds)) => {
                self.chain_up.set(1);
                self.chain_head
                    .set(i64::try_from(block).unwrap_or(i64::MAX));
                self.chain_head_age_seconds.set(age_seconds);
            }
            None => {
                self.chain_up.set(0);
            }
        }
    }

    /// Sets a relayer's balance.
    pub fn set_relayer_balance(&self, relayer: &str, eth: f64) {
        self.relayer_balance_eth
            .get_or_create(&RelayerLabels {
                relayer: relayer.to_owned(),
            })
            .set(eth);
    }

    /// Sets the paymaster's deposit.
    pub fn set_paymaster_deposit(&self, eth: f64) {
        self.paymaster_deposit_eth.set(eth);
    }

    /// Every metric in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

/// Wei as ETH, for gauges: exact enough for a dashboard, never for accounting.
pub fn wei_to_eth(wei: alloy::primitives::U256) -> f64 {
    f64::from(wei) / 1e18
}

/// The canonical name of a gRPC status code, such as `NOT_FOUND`: the label calls are
/// counted under, and how the API and the CLI name a code. It sits here, below the API,
/// so that counting needs nothing of the edge.
pub fn code_name(code: tonic::Code) -> &'static str {
    match code {
        tonic::Code::Ok => "OK",
        tonic::Code::Cancelled => "CANCELLED",
        tonic::Code::Unknown => "UNKNOWN",
        tonic::Code::InvalidArgument => "INVALID_ARGUMENT",
        tonic::Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        tonic::Code::NotFound => "NOT_FOUND",
        tonic::Code::AlreadyExists => "ALREADY_EXISTS",
        tonic::Code::PermissionDenied => "PERMISSION_DENIED",
        tonic::Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        tonic::Code::FailedPrecondition => "FAILED_PRECONDITION",
        tonic::Code::Aborted => "ABORTED",
        tonic::Code::OutOfRange => "OUT_OF_RANGE",
        tonic::Code::Unimplemented => "UNIMPLEMENTED",
        tonic::Code::Internal => "INTERNAL",
        tonic::Code::Unavailable => "UNAVAILABLE",
        tonic::Code::DataLoss => "DATA_LOSS",
        tonic::Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_and_levels_appear_in_the_text_format() {
        let metrics = Metrics::default();
        metrics.grpc_call(
            "SessionService/CreateSession",
            Code::InvalidArgument,
            Duration::from_millis(3),
        );
        metrics.bundle_sent(40, 3_000_000);
        metrics.fee_bumped();
        metrics.reorged(2);
        metrics.set_intents("confirmed", 7);
        metrics.set_chain(Some((12, 1.5)));
        metrics.set_relayer_balance("0xabc", 2.5);
        let text = metrics.encode();
        for line in [
            "latchkey_grpc_requests_total{method=\"SessionService/CreateSession\",code=\"INVALID_ARGUMENT\"} 1",
            "latchkey_grpc_request_duration_seconds_count{method=\"SessionService/CreateSession\"} 1",
            "latchkey_bundle_operations_count 1",
            "latchkey_bundle_operations_sum 40.0",
            "latchkey_fee_bumps_total 1",
            "latchkey_reorgs_total 2",
            "latchkey_intents{status=\"confirmed\"} 7",
            "latchkey_chain_head_block 12",
            "latchkey_chain_up 1",
            "latchkey_relayer_balance_eth{relayer=\"0xabc\"} 2.5",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        metrics.set_chain(None);
        assert!(metrics.encode().contains("latchkey_chain_up 0"));
    }

    #[test]
    fn wei_become_eth() {
        assert_eq!(
            wei_to_eth(alloy::primitives::U256::from(1_500_000_000_000_000_000u128)),
            1.5
        );
    }
}
