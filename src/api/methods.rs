//! Every method latchkey serves, once: which server it is on, the scope a key needs to
//! call it, and the client access a session's own client needs (if clients may call it at
//! all). The edge layer admits each call by this table, so a handler never checks who is
//! calling, and a method missing from it (a test compares it with the protos) is a build
//! that does not pass.

use crate::{
    api::gate::Surface,
    auth::{ClientAccess, Scope},
};

/// One method's place and scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MethodRule {
    /// The method as the metrics and the audit log name it: `Service/Method`.
    pub name: &'static str,
    /// The server it is served on.
    pub surface: Surface,
    /// The scope a caller's key needs.
    pub scope: Scope,
    /// The client access a session's client needs to call it with a stamp; `None` when
    /// only API keys may.
    pub client: Option<ClientAccess>,
}

/// The package every latchkey method's path starts with.
pub const PATH_PREFIX: &str = "/latchkey.v1.";

const fn rule(name: &'static str, surface: Surface, scope: Scope) -> MethodRule {
    MethodRule {
        name,
        surface,
        scope,
        client: None,
    }
}

/// A method of the application API that a session's client may call with `access`.
const fn client(name: &'static str, scope: Scope, access: ClientAccess) -> MethodRule {
    MethodRule {
        name,
        surface: Api,
        scope,
        client: Some(access),
    }
}

use ClientAccess::{ReadOnly, ReadWrite};
use Scope::{Admin, Read, Write};
use Surface::{Admin as AdminPort, Api};

/// Every method, by service.
pub const METHODS: &[MethodRule] = &[
    rule("AccountService/ComputeAccountAddress", Api, Read),
    client("AccountService/GetAccount", Read, ReadOnly),
    rule("SessionService/CreateSession", Api, Write),
    client("SessionService/SubmitSessionSignature", Write, ReadWrite),
    client("SessionService/GetSession", Read, ReadOnly),
    client("SessionService/ListSessions", Read, ReadOnly),
    rule("SessionService/RevokeSession", Api, Write),
    client(
        "TransactionIntentService/CreateTransactionIntent",
        Write,
        ReadWrite,
    ),
    client(
        "TransactionIntentService/SubmitIntentSignature",
        Write,
        ReadWrite,
    ),
    client(
        "TransactionIntentService/GetTransactionIntent",
        Read,
        ReadOnly,
    ),
    client(
        "TransactionIntentService/ListTransactionIntents",
        Read,
        ReadOnly,
    ),
    client(
        "TransactionIntentService/WatchTransactionIntent",
        Read,
        ReadOnly,
    ),
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
            // A client reads with READ_ONLY and writes with READ_WRITE.
            if let Some(access) = method.client {
                assert_eq!(access == ReadWrite, method.scope == Write, "{method:?}");
            }
        }
    }

    #[test]
    fn clients_reach_their_own_session_and_intents_but_never_create_revoke_or_policies() {
        let open: BTreeSet<&str> = METHODS
            .iter()
            .filter(|method| method.client.is_some())
            .map(|method| method.name)
            .collect();
        for closed in [
            "SessionService/CreateSession",
            "SessionService/RevokeSession",
            "AccountService/ComputeAccountAddress",
            "PolicyService/GetPolicy",
            "AdminService/GetSession",
        ] {
            assert!(!open.contains(closed), "{closed}");
        }
        assert_eq!(open.len(), 9, "{open:?}");
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
