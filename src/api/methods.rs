//! Every method latchkey serves, once: which server it is on and the scope a key needs to
//! call it. The edge layer admits each call by this table, so a handler never checks who is
//! calling, and a method missing from it (a test compares it with the protos) is a build
//! that does not pass.

use crate::{api::gate::Surface, auth::Scope};

/// One method's place and scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MethodRule {
    /// The method as the metrics and the audit log name it: `Service/Method`.
    pub name: &'static str,
    /// The server it is served on.
    pub surface: Surface,
    /// The scope a caller's key needs.
    pub scope: Scope,
}

/// The package every latchkey method's path starts with.
pub const PATH_PREFIX: &str = "/latchkey.v1.";

const fn rule(name: &'static str, surface: Surface, scope: Scope) -> MethodRule {
    MethodRule {
        name,
        surface,
        scope,
    }
}

use Scope::{Admin, Read, Write};
use Surface::{Admin as AdminPort, Api};

/// Every method, by service.
pub const METHODS: &[MethodRule] = &[
    rule("AccountService/ComputeAccountAddress", Api, Read),
    rule("AccountService/GetAccount", Api, Read),
    rule("SessionService/CreateSession", Api, Write),
    rule("SessionService/SubmitSessionSignature", Api, Write),
    rule("SessionService/GetSession", Api, Read),
    rule("SessionService/ListSessions", Api, Read),
    rule("SessionService/RevokeSession", Api, Write),
    rule(
        "TransactionIntentService/CreateTransactionIntent",
        Api,
        Write,
    ),
    rule("TransactionIntentService/SubmitIntentSignature", Api, Write),
    rule("TransactionIntentService/GetTransactionIntent", Api, Read),
    rule("TransactionIntentService/ListTransactionIntents", Api, Read),
    rule("TransactionIntentService/WatchTransactionIntent", Api, Read),
    rule("PolicyService/CreatePolicy", Api, Write),
    rule("PolicyService/GetPolicy", Api, Read),
    rule("PolicyService/ListPolicies", Api, Read),
    rule("PolicyService/DisablePolicy", Api, Write),
    rule("PolicyService/GetPaymaster", Api, Read),
    rule("AdminService/CreateApiKey", AdminPort, Admin),
    rule("AdminService/ListApiKeys", AdminPort, Admin),
    rule("AdminService/RevokeApiKey", AdminPort, Admin),
    rule("AdminService/GetStatus", AdminPort, Admin),
    rule("AdminService/GetSession", AdminPort, Admin),
    rule("AdminService/ListSessions", AdminPort, Admin),
    rule("AdminService/RevokeSession", AdminPort, Admin),
    rule("AdminService/GetTransactionIntent", AdminPort, Admin),
    rule("AdminService/ListTransactionIntents", AdminPort, Admin),
    rule("AdminService/WatchTransactionIntent", AdminPort, Admin),
    rule("AdminService/PauseRelay", AdminPort, Admin),
    rule("AdminService/ResumeRelay", AdminPort, Admin),
];

/// What a request path is to the edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// A latchkey method.
    Method(&'static MethodRule),
    /// A path under latchkey's package that names no method: counted under one label, so a
    /// caller cannot grow the metrics by inventing paths.
    Unknown,
    /// Another package's service (health, reflection): open to all, not counted.
    Other,
}

/// The route of a request to `path` (`/latchkey.v1.Service/Method`).
pub fn route(path: &str) -> Route {
    let Some(name) = path.strip_prefix(PATH_PREFIX) else {
        return Route::Other;
    };
    METHODS
        .iter()
        .find(|method| method.name == name)
        .map_or(Route::Unknown, Route::Method)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use prost::Message;

    use super::*;

    #[test]
    fn the_table_names_exactly_the_methods_the_protos_define() {
        let set = prost_types::FileDescriptorSet::decode(super::super::FILE_DESCRIPTOR_SET)
            .expect("descriptor set");
        let defined: BTreeSet<String> = set
            .file
            .iter()
            .flat_map(|file| &file.service)
            .flat_map(|service| {
                service
                    .method
                    .iter()
                    .map(move |method| format!("{}/{}", service.name(), method.name()))
            })
            .collect();
        let listed: BTreeSet<String> = METHODS
            .iter()
            .map(|method| method.name.to_owned())
            .collect();
        assert_eq!(listed.len(), METHODS.len(), "a method is listed twice");
        assert_eq!(listed, defined);
        for method in METHODS {
            let admin = method.name.starts_with("AdminService/");
            assert_eq!(method.surface == AdminPort, admin, "{method:?}");
            assert_eq!(method.scope == Admin, admin, "{method:?}");
        }
    }

    #[test]
    fn paths_route_to_their_method_and_strangers_to_unknown_or_other() {
        assert!(matches!(
            route("/latchkey.v1.SessionService/CreateSession"),
            Route::Method(MethodRule {
                scope: Write,
                surface: Api,
                ..
            })
        ));
        assert_eq!(route("/latchkey.v1.Made/Up"), Route::Unknown);
        assert_eq!(route("/grpc.health.v1.Health/Check"), Route::Other);
    }
}
