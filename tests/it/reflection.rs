//! gRPC reflection lists exactly what each port serves, through v1 and through the v1alpha
//! that grpcurl and older tools ask for: the application services on the application port,
//! the admin service on the admin port, and never one where it would answer UNIMPLEMENTED.

use std::collections::BTreeSet;

use tonic::transport::Channel;
use tonic_reflection::pb::{v1, v1alpha};

use crate::{daemon::TestDaemon, harness::TestChain};

/// The services reflection lists at a channel, through the generated client of one
/// version (`v1` or `v1alpha`): the two differ only in their types.
macro_rules! listed {
    ($version:ident, $channel:expr) => {{
        use $version::{
            ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
            server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        };
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut answers = ServerReflectionClient::new($channel)
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .expect(concat!("reflection ", stringify!($version)))
            .into_inner();
        let answer = answers.message().await.expect("an answer").expect("one");
        match answer.message_response {
            Some(MessageResponse::ListServicesResponse(list)) => list
                .service
                .into_iter()
                .map(|service| service.name)
                .collect::<BTreeSet<String>>(),
            other => panic!("not a list: {other:?}"),
        }
    }};
}

fn names(services: &[&str]) -> BTreeSet<String> {
    services.iter().map(|name| (*name).to_owned()).collect()
}

#[tokio::test]
async fn each_port_lists_exactly_what_it_serves_in_both_reflection_versions() {
    let chain = TestChain::start().await;
    let daemon = TestDaemon::start(&chain).await;
    let reflection = [
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ];
    let application = names(
        &[
            "latchkey.v1.AccountService",
            "latchkey.v1.SessionService",
            "latchkey.v1.TransactionIntentService",
            "latchkey.v1.PolicyService",
            "grpc.health.v1.Health",
        ]
        .into_iter()
        .chain(reflection)
        .collect::<Vec<_>>(),
    );
    let admin = names(
        &["latchkey.v1.AdminService"]
            .into_iter()
            .chain(reflection)
            .collect::<Vec<_>>(),
    );
    let admin_channel = Channel::from_shared(format!(
        "http://{}",
        daemon.admin_addr.expect("admin served")
    ))
    .expect("uri")
    .connect()
    .await
    .expect("connect to the admin port");

    assert_eq!(listed!(v1, daemon.channel.clone()), application);
    assert_eq!(listed!(v1alpha, daemon.channel.clone()), application);
    assert_eq!(listed!(v1, admin_channel.clone()), admin);
    assert_eq!(listed!(v1alpha, admin_channel), admin);
}
