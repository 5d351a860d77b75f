//! The `latchkey` binary.

use clap::Parser;

/// latchkey: a self-hosted session-key relayer for ERC-4337 smart accounts.
#[derive(Debug, Parser)]
#[command(name = "latchkey", version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
}
