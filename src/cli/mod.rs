//! Operator subcommands that are more than a flag or two: each a client of the daemon.

pub mod bench;
