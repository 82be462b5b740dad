//! oxcdctl: a command-line client for oxcd and etcd clusters with etcdctl v3's verbs, flags,
//! `ETCDCTL_*` variables, output formats (`simple`, `json`, `table`, `fields`), error lines
//! and exit codes, so that scripts written for etcdctl run unchanged. It talks to the cluster
//! through its public gRPC API only (the etcd-client crate).
//!
//! # Layout
//! - [`cli`]: the command line: global flags, verbs and their flags;
//! - [`client`]: connecting with the dial and command timeouts, and etcdctl's errors and exit
//!   codes; [`tls`]: TLS to https endpoints (`--cacert`, `--cert`, `--key`);
//! - [`output`]: the four output formats of every response; [`json`]: etcd's JSON form of
//!   the responses (Go's `encoding/json` of the protobuf messages);
//! - [`commands`]: one module per group of verbs.

pub mod cli;
pub mod client;
pub mod commands;
pub mod json;
pub mod output;
pub mod tls;

use clap::Parser;

/// Runs oxcdctl with `args` (the program name first); returns the exit code.
pub fn run(args: impl IntoIterator<Item = std::ffi::OsString>) -> i32 {
    let cli = match cli::Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ => client::EXIT_BAD_ARGS,
            };
            let _ = e.print();
            return code;
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("Error: {}", e.message);
            e.code
        }
    }
}
