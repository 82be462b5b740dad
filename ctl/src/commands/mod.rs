//! The verbs, one module per group: what each sends, and what it prints in each format.

mod auth;
mod check;
mod cluster;
mod concurrency;
mod endpoint;
mod kv;
mod lease;
mod maintenance;
mod txn;
mod watch;

use std::future::Future;

use etcd_client::Client;

use crate::cli::{Cli, Command, Global};
use crate::client::{self, Result};
use crate::output::Printer;

/// What every verb needs: the global flags and the printer.
pub struct Ctx {
    pub global: Global,
    pub printer: Printer,
}

impl Ctx {
    pub async fn client(&self) -> Result<Client> {
        client::connect(&self.global).await
    }

    /// Runs `request` within `--command-timeout`.
    pub async fn timed<T>(
        &self,
        request: impl Future<Output = std::result::Result<T, etcd_client::Error>>,
    ) -> Result<T> {
        client::timed(self.global.command_timeout, request).await
    }
}

/// Runs the verb of `cli`.
pub async fn run(cli: Cli) -> Result<()> {
    let ctx = Ctx {
        printer: Printer {
            format: cli.global.write_out,
            hex: cli.global.hex,
        },
        global: cli.global,
    };
    match cli.command {
        Command::Get(args) => kv::get(&ctx, args).await,
        Command::Put(args) => kv::put(&ctx, args).await,
        Command::Del(args) => kv::del(&ctx, args).await,
        Command::Compaction(args) => kv::compaction(&ctx, args).await,
        Command::Txn(args) => txn::txn(&ctx, args).await,
        Command::Watch(args) => watch::watch(&ctx, args).await,
        Command::Lease(cmd) => lease::run(&ctx, cmd).await,
        Command::Member(cmd) => cluster::run(&ctx, cmd).await,
        Command::Endpoint(args) => endpoint::run(&ctx, args).await,
        Command::Snapshot(cmd) => maintenance::snapshot(&ctx, cmd).await,
        Command::Defrag(args) => maintenance::defrag(&ctx, args).await,
        Command::Alarm(cmd) => maintenance::alarm(&ctx, cmd).await,
        Command::MoveLeader(args) => maintenance::move_leader(&ctx, args).await,
        Command::Elect(args) => concurrency::elect(&ctx, args).await,
        Command::Lock(args) => concurrency::lock(&ctx, args).await,
        Command::Check(cmd) => check::run(&ctx, cmd).await,
        Command::Auth(cmd) => auth::auth(&ctx, cmd).await,
        Command::User(cmd) => auth::user(&ctx, cmd).await,
        Command::Role(cmd) => auth::role(&ctx, cmd).await,
        Command::Version => {
            println!("oxcdctl version: {}", env!("CARGO_PKG_VERSION"));
            println!("API version: 3.5");
            Ok(())
        }
    }
}

/// An id given in hex, as etcdctl takes member ids; the error is Go's strconv error.
pub fn parse_hex_u64(s: &str) -> std::result::Result<u64, String> {
    u64::from_str_radix(s, 16)
        .map_err(|_| format!("strconv.ParseUint: parsing {s:?}: invalid syntax"))
}

/// The cluster's client URLs, from its member list (`--cluster`).
pub async fn cluster_endpoints(ctx: &Ctx) -> Result<Vec<String>> {
    let mut c = ctx.client().await?;
    let members = ctx.timed(c.member_list()).await?;
    Ok(members
        .0
        .members
        .iter()
        .flat_map(|m| m.client_ur_ls.iter().cloned())
        .collect())
}

/// The endpoints a per-endpoint verb visits: the `--endpoints`, or with `--cluster` every
/// member's client URLs.
pub async fn endpoints(ctx: &Ctx, cluster: bool) -> Result<Vec<String>> {
    if cluster {
        cluster_endpoints(ctx).await
    } else {
        Ok(ctx.global.endpoints.clone())
    }
}
