//! The bundler JSON-RPC: the ERC-4337 methods that account-abstraction SDKs call
//! (ERC-7769, for EntryPoint v0.8), and the gas-price extension they use, on a listener of
//! its own. Operations it accepts are queued in the same store and relayed by the same
//! relay as latchkey's own intents.
//!
//! - `envelope`: JSON-RPC 2.0 framing, single calls and batches;
//! - `user_op`: a user operation as ERC-7769 writes it, read field by field;
//! - `methods`: each method, its scope, parameters and result;
//! - `error`: the codes, ERC-7769's among them, and the refusal of each kind;
//! - `server`: the HTTP route, authentication and limits.

mod envelope;
mod error;
mod methods;
mod server;
mod user_op;

pub use self::{
    error::{RpcError, codes},
    methods::METHODS,
    server::JsonRpc,
};
