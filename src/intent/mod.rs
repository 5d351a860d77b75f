//! Transaction intents: what a backend asks latchkey to do on a player's account, as a list
//! of interactions (a contract, a function signature with arguments or raw calldata, and a
//! value). Intents arrive as text over the API, so this module is where that text becomes
//! exact, validated bytes before anything is signed or spends gas.

pub mod calldata;

mod model;
#[cfg(test)]
mod properties;

pub use self::model::*;
