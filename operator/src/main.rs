//! `oxcd-operator`: parses flags, then runs the controller while this process holds the
//! leader-election Lease, with `/metrics`, `/healthz` and `/readyz` served throughout.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use clap::Parser;
use kube_lease_manager::LeaseManagerBuilder;
use oxcd_operator::controller::{self, Context};
use oxcd_operator::metrics::Metrics;

/// Runs oxcd clusters on Kubernetes from EtcdCluster resources.
#[derive(Parser, Debug)]
#[command(name = "oxcd-operator", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: Args,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Streams a snapshot of a cluster into object storage and checks it there (once, or on
    /// a schedule), then applies the retention policy.
    Backup(oxcd_operator::backup::command::BackupArgs),
    /// Reads a backup back and checks it against its record and its own sha256 trailer.
    VerifyBackup(oxcd_operator::backup::command::VerifyArgs),
    /// Downloads a backup (or the latest) into a file, checked, for `oxcd snapshot restore`.
    FetchBackup(oxcd_operator::backup::command::FetchArgs),
    /// Restores a member's data dir from a backup unless it exists: the init step of the
    /// first member of a cluster started from a backup.
    RestoreMember(oxcd_operator::backup::command::RestoreMemberArgs),
    /// Defragments every member, followers first and the leader last, unless a member is
    /// down; then disarms NOSPACE if every member is back under --quota-backend-bytes.
    Defrag(DefragArgs),
}

#[derive(clap::Args, Debug)]
struct DefragArgs {
    /// Every member's client URL, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    endpoints: Vec<String>,
    /// The members' --quota-backend-bytes: with it, a NOSPACE alarm is disarmed once every
    /// member's database is smaller.
    #[arg(long)]
    quota_backend_bytes: Option<i64>,
    /// Defragment every member in the member list that `--endpoints` gives (etcdctl's
    /// `--cluster`), rather than the endpoints themselves.
    #[arg(long)]
    cluster: bool,
    #[command(flatten)]
    tls: oxcd_operator::backup::command::ClientTlsArgs,
}

/// The controller's flags.
#[derive(clap::Args, Debug)]
struct Args {
    /// Watch EtcdClusters in this namespace only (default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE")]
    namespace: Option<String>,
    /// Where /metrics, /healthz and /readyz are served.
    #[arg(long, default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// The leader-election Lease.
    #[arg(long, default_value = "oxcd-operator")]
    lease_name: String,
    /// The Lease's namespace (default: this pod's, from POD_NAMESPACE).
    #[arg(long, env = "POD_NAMESPACE")]
    lease_namespace: Option<String>,
    /// json or text.
    #[arg(long, default_value = "json", value_parser = ["json", "text"])]
    log_format: String,
    /// The image repository members run: `<repository>:<spec.version>`.
    #[arg(long, default_value = "ghcr.io/oxcd/oxcd")]
    image_repository: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let args = cli.run;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if args.log_format == "json" {
        logs.json().init();
    } else {
        logs.init();
    }
    match cli.command {
        Some(Command::Backup(backup)) => {
            return Ok(oxcd_operator::backup::command::backup(backup).await?);
        }
        Some(Command::VerifyBackup(verify)) => {
            return Ok(oxcd_operator::backup::command::verify(verify).await?);
        }
        Some(Command::FetchBackup(fetch)) => {
            return Ok(oxcd_operator::backup::command::fetch(fetch).await?);
        }
        Some(Command::RestoreMember(restore)) => {
            return Ok(oxcd_operator::backup::command::restore_member(restore).await?);
        }
        Some(Command::Defrag(defrag)) => {
            let access = defrag.tls.access()?;
            let endpoints = if defrag.cluster {
                oxcd_operator::members::client_urls(&access, &defrag.endpoints).await?
            } else {
                defrag.endpoints
            };
            let report = oxcd_operator::maintenance::defragment_all(
                &access,
                &endpoints,
                defrag.quota_backend_bytes,
            )
            .await?;
            println!("{}", serde_json::to_string(&report)?);
            return Ok(());
        }
        None => {}
    }
    let client = kube::Client::try_default()
        .await
        .context("connecting to the Kubernetes API")?;
    let metrics = Metrics::default();
    let leading = Arc::new(AtomicBool::new(false));
    let listener = tokio::net::TcpListener::bind(args.metrics_addr).await?;
    tokio::spawn(serve_metrics(listener, metrics.clone(), leading.clone()));

    let identity = std::env::var("POD_NAME")
        .unwrap_or_else(|_| format!("oxcd-operator-{}", std::process::id()));
    let mut lease =
        LeaseManagerBuilder::new(client.clone(), &args.lease_name).with_identity(&identity);
    if let Some(ns) = &args.lease_namespace {
        lease = lease.with_namespace(ns);
    }
    let (mut is_leader, lease_task) = lease.build().await?.watch().await;
    tracing::info!(identity, "waiting for the leader-election lease");
    while !*is_leader.borrow_and_update() {
        tokio::select! {
            changed = is_leader.changed() => changed.context("the lease manager stopped")?,
            _ = shutdown_signal() => return Ok(()),
        }
    }
    leading.store(true, Ordering::Relaxed);
    tracing::info!(identity, "leading; reconciling");
    let ctx = Arc::new(Context::new(
        client,
        metrics,
        args.image_repository,
        Some(identity),
    ));
    // Leadership lost ends the process: a restarted operator waits for the lease again, so
    // two never act on one cluster at once.
    let lost = async move {
        while is_leader.changed().await.is_ok() {
            if !*is_leader.borrow() {
                break;
            }
        }
    };
    let stop = async move {
        tokio::select! {
            _ = lost => tracing::warn!("leader-election lease lost"),
            _ = shutdown_signal() => tracing::info!("shutting down"),
        }
    };
    controller::run(ctx, args.namespace, stop).await;
    lease_task.abort();
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

async fn serve_metrics(
    listener: tokio::net::TcpListener,
    metrics: Metrics,
    leading: Arc<AtomicBool>,
) {
    let app = Router::new()
        .route("/metrics", get(move || async move { metrics.render() }))
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || async move {
                // Ready once leading: a standby replica is alive but not serving.
                if leading.load(Ordering::Relaxed) {
                    (StatusCode::OK, "ok")
                } else {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "waiting for the leader-election lease",
                    )
                }
            }),
        );
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "the metrics server stopped");
    }
}
