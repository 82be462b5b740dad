//! `oxcd`: the server. Takes etcd's flags and `ETCD_*` variables.
//!
//! Built with the `failpoints` feature (as the `oxcd-failpoints` binary), it arms the fail
//! points named in the `FAILPOINTS` variable at start, e.g.
//! `FAILPOINTS="raft-before-save=50*off->panic"` crashes on the 51st log append.

use anyhow::Context;
use oxcd::app;
use oxcd::config::Config;
use oxcd::transport::{bind_all, secure};

/// mimalloc instead of glibc malloc: a request allocates and frees many small buffers across
/// threads (gRPC frames, raft entries, MVCC records), where glibc's arenas spent ~15 % of the
/// server's CPU under concurrent puts.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if oxcd::offline::is_offline(&args) {
        std::process::exit(oxcd::offline::run(args));
    }
    #[cfg(feature = "failpoints")]
    let _failpoints = arm_failpoints();
    let mut cfg = Config::load(args).unwrap_or_else(|e| e.exit());
    if let Err(e) = cfg.validate() {
        e.exit();
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            cfg.logging.log_level.as_tracing_directive(),
        ))
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    if let Err(e) = runtime.block_on(run(cfg)) {
        eprintln!("oxcd: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cfg: Config) -> anyhow::Result<()> {
    let addrs = cfg.listen_client_addrs()?;
    let tls = app::tls(&cfg).context("TLS")?;
    let client = secure(
        bind_all(&addrs).await.context("--listen-client-urls")?,
        &cfg.listen_client_url_list()?,
        tls.client.as_ref(),
    );
    let peer = secure(
        bind_all(&cfg.listen_peer_addrs()?)
            .await
            .context("--listen-peer-urls")?,
        &cfg.listen_peer_url_list()?,
        tls.peer.as_ref(),
    );
    // https metrics URLs are served with the client port's certificates, as etcd does.
    let metrics_addrs = cfg.listen_metrics_addrs()?;
    let metrics = match metrics_addrs.is_empty() {
        true => Vec::new(),
        false => secure(
            bind_all(&metrics_addrs)
                .await
                .context("--listen-metrics-urls")?,
            &cfg.listen_metrics_url_list()?,
            tls.client.as_ref(),
        ),
    };
    let cfg = match app::role(&cfg).await? {
        app::Role::Member(cfg) => cfg,
        app::Role::Proxy(proxy) => {
            tracing::info!(?addrs, "v2 proxy serving client requests");
            drop((peer, metrics));
            app::serve_proxy(proxy, client, shutdown_signal()).await?;
            tracing::info!("stopped");
            return Ok(());
        }
    };
    let server = app::start(&cfg).await?;
    tracing::info!(name = %cfg.member.name, member_id = %format!("{:x}", server.member_id), ?addrs, "serving client requests");
    app::serve(&server, client, peer, metrics, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Arms the fail points in `FAILPOINTS`. A fail point's `panic` must end the process like a
/// crash: unwinding would end only the tokio task it fired in, and the member would carry on
/// half-working. So while any fail point is configured, every panic aborts, at once: the
/// default hook's backtrace would take seconds to render while the other threads run on.
#[cfg(feature = "failpoints")]
fn arm_failpoints() -> fail::FailScenario<'static> {
    let scenario = fail::FailScenario::setup();
    if std::env::var_os("FAILPOINTS").is_some() {
        std::panic::set_hook(Box::new(|info| {
            eprintln!("oxcd: {info}; aborting (FAILPOINTS is set)");
            std::process::abort();
        }));
    }
    scenario
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
