//! `oxcd-operator backup`, `verify-backup` and `fetch-backup`: the backup logic as commands,
//! for a Kubernetes CronJob, a restore's init step, or by hand. `backup` prints each backup's record as one line of
//! JSON; with `--schedule` it goes on taking them.

use std::time::Duration;

use clap::Args;

use super::Target;
use super::retention::Retention;
use super::schedule::{self, Schedule};
use crate::error::Result;

/// Where backups are kept.
#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    /// An S3-compatible server's URL (MinIO, Ceph, a local S3), instead of AWS.
    #[arg(long)]
    s3_endpoint: Option<String>,
    /// The bucket's region.
    #[arg(long)]
    s3_region: Option<String>,
    /// Address buckets as `bucket.host` rather than `host/bucket` (path style, the default).
    #[arg(long)]
    s3_virtual_hosted_style: bool,
    /// Any of object_store's settings, as KEY=VALUE (repeatable). Credentials come from the
    /// environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, GOOGLE_SERVICE_ACCOUNT, AZURE_*.
    #[arg(long = "store-option", value_parser = key_value)]
    options: Vec<(String, String)>,
}

impl StoreArgs {
    fn open(&self, url: &str) -> Result<Target> {
        let mut options = Vec::new();
        if let Some(endpoint) = &self.s3_endpoint {
            options.push(("aws_endpoint".to_string(), endpoint.clone()));
            if endpoint.starts_with("http://") {
                options.push(("aws_allow_http".to_string(), "true".to_string()));
            }
        }
        if let Some(region) = &self.s3_region {
            options.push(("aws_region".to_string(), region.clone()));
        }
        options.push((
            "aws_virtual_hosted_style_request".to_string(),
            self.s3_virtual_hosted_style.to_string(),
        ));
        options.extend(self.options.iter().cloned());
        Target::open(url, &options)
    }
}

/// etcdctl's TLS flags: how to reach members that serve TLS and check client certificates.
#[derive(Args, Debug, Clone, Default)]
pub struct ClientTlsArgs {
    /// The CA bundle that signs the members' certificates.
    #[arg(long)]
    cacert: Option<std::path::PathBuf>,
    /// This client's certificate.
    #[arg(long, requires = "key")]
    cert: Option<std::path::PathBuf>,
    /// This client's key.
    #[arg(long, requires = "cert")]
    key: Option<std::path::PathBuf>,
    /// A user, where the cluster has auth enabled.
    #[arg(long, env = "ETCDCTL_USER", requires = "password")]
    user: Option<String>,
    /// The user's password (best from the environment).
    #[arg(long, env = "ETCDCTL_PASSWORD", hide_env_values = true)]
    password: Option<String>,
}

impl ClientTlsArgs {
    /// Plain without `--cacert`; TLS with it; authenticated with `--user`.
    pub fn access(&self) -> Result<crate::members::Access> {
        let access = self.transport()?;
        Ok(match (&self.user, &self.password) {
            (Some(user), Some(password)) => access.with_credentials(user, password),
            _ => access,
        })
    }

    fn transport(&self) -> Result<crate::members::Access> {
        let Some(ca) = &self.cacert else {
            return Ok(crate::members::Access::plain());
        };
        let read = |path: &std::path::Path| {
            std::fs::read_to_string(path)
                .map_err(|e| crate::Error::Other(format!("{}: {e}", path.display())))
        };
        let (cert_pem, key_pem) = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => (read(cert)?, read(key)?),
            _ => (String::new(), String::new()),
        };
        Ok(crate::members::Access::tls(crate::members::ClientTls {
            ca_pem: read(ca)?,
            cert_pem,
            key_pem,
        }))
    }
}

/// `oxcd-operator backup`.
#[derive(Args, Debug, Clone)]
pub struct BackupArgs {
    /// The members' client URLs, comma-separated; the first healthy one is backed up.
    #[arg(long, value_delimiter = ',', required = true)]
    endpoints: Vec<String>,
    #[command(flatten)]
    tls: ClientTlsArgs,
    /// Where backups go: s3://bucket/prefix, gs://bucket/prefix, az://container/prefix or
    /// file:///dir.
    #[arg(long)]
    to: String,
    #[command(flatten)]
    store: StoreArgs,
    /// Keep the newest N backups under the prefix, deleting older ones after each backup.
    #[arg(long)]
    keep: Option<usize>,
    /// Delete backups older than this (e.g. 30s, 90m, 12h, 7d) after each backup; the newest
    /// always stays.
    #[arg(long, value_parser = crate::crd::parse_duration)]
    max_age: Option<Duration>,
    /// Take a backup at every time of this cron schedule (five fields, or six with seconds
    /// first) instead of once.
    #[arg(long)]
    schedule: Option<String>,
}

/// `oxcd-operator verify-backup`.
#[derive(Args, Debug, Clone)]
pub struct VerifyArgs {
    /// Where the backup is: the `--to` it was taken with.
    #[arg(long)]
    from: String,
    /// The backup's name (`snapshot-....db`).
    #[arg(long)]
    name: String,
    #[command(flatten)]
    store: StoreArgs,
}

/// `oxcd-operator fetch-backup`.
#[derive(Args, Debug, Clone)]
pub struct FetchArgs {
    /// Where the backup is: the `--to` it was taken with.
    #[arg(long)]
    from: String,
    /// The backup's name, or `latest`.
    #[arg(long, default_value = "latest")]
    name: String,
    /// The file to write (then restore with `oxcd snapshot restore`).
    #[arg(long)]
    out: std::path::PathBuf,
    #[command(flatten)]
    store: StoreArgs,
}

/// Runs `oxcd-operator fetch-backup`.
pub async fn fetch(args: FetchArgs) -> Result<()> {
    let record = args
        .store
        .open(&args.from)?
        .fetch(&args.name, &args.out)
        .await?;
    println!("{}", serde_json::to_string(&record).unwrap_or_default());
    Ok(())
}

/// Runs `oxcd-operator backup`.
pub async fn backup(args: BackupArgs) -> Result<()> {
    let target = args.store.open(&args.to)?;
    let access = args.tls.access()?;
    let retention = Retention {
        keep: args.keep,
        max_age: args.max_age,
    };
    let Some(expr) = &args.schedule else {
        let record = target.take(&access, &args.endpoints).await?;
        println!("{}", serde_json::to_string(&record).unwrap_or_default());
        for name in retention.apply(&target, chrono::Utc::now()).await? {
            tracing::info!(name, "retention: deleted");
        }
        return Ok(());
    };
    let schedule = Schedule::parse(expr)?;
    schedule::run(
        &schedule,
        &access,
        &args.endpoints,
        &target,
        retention,
        |taken| match taken {
            Ok(record) => println!("{}", serde_json::to_string(&record).unwrap_or_default()),
            Err(e) => tracing::error!("backup failed: {e}"),
        },
    )
    .await
}

/// Runs `oxcd-operator verify-backup`.
pub async fn verify(args: VerifyArgs) -> Result<()> {
    let record = args.store.open(&args.from)?.verify(&args.name).await?;
    println!("{}", serde_json::to_string(&record).unwrap_or_default());
    Ok(())
}

fn key_value(s: &str) -> std::result::Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))
}

/// `oxcd-operator restore-member`.
#[derive(Args, Debug, Clone)]
pub struct RestoreMemberArgs {
    /// Where the backup is: the `--to` it was taken with.
    #[arg(long)]
    from: String,
    /// The backup's name, or `latest`.
    #[arg(long, default_value = "latest")]
    name: String,
    #[command(flatten)]
    store: StoreArgs,
    /// The member's data dir: restored into when it does not exist, left alone when it does.
    #[arg(long)]
    data_dir: std::path::PathBuf,
    /// `oxcd snapshot restore`'s member flags.
    #[arg(long)]
    member_name: String,
    #[arg(long)]
    initial_cluster: String,
    #[arg(long)]
    initial_advertise_peer_urls: String,
    #[arg(long)]
    initial_cluster_token: String,
    /// The oxcd binary that restores.
    #[arg(long, default_value = "/usr/local/bin/oxcd")]
    oxcd: std::path::PathBuf,
}

/// Runs `oxcd-operator restore-member`: the init step of a cluster's first member when the
/// cluster starts from a backup. The backup is fetched (checked against its record and
/// trailer) next to the data dir, restored by `oxcd snapshot restore` with the new cluster's
/// identity, and removed. A data dir that exists is a restore already done (or a member's
/// own data): it is never overwritten.
pub async fn restore_member(args: RestoreMemberArgs) -> Result<()> {
    if args.data_dir.exists() {
        tracing::info!(data_dir = %args.data_dir.display(), "data dir present: nothing to restore");
        return Ok(());
    }
    let parent = args.data_dir.parent().unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| crate::Error::Other(e.to_string()))?;
    let file = parent.join("restore.db");
    let record = args
        .store
        .open(&args.from)?
        .fetch(&args.name, &file)
        .await?;
    let out = std::process::Command::new(&args.oxcd)
        .args(["snapshot", "restore"])
        .arg(&file)
        .arg("--data-dir")
        .arg(&args.data_dir)
        .args(["--name", &args.member_name])
        .args(["--initial-cluster", &args.initial_cluster])
        .args([
            "--initial-advertise-peer-urls",
            &args.initial_advertise_peer_urls,
        ])
        .args(["--initial-cluster-token", &args.initial_cluster_token])
        .output()
        .map_err(|e| crate::Error::Other(format!("running {}: {e}", args.oxcd.display())))?;
    let _ = std::fs::remove_file(&file);
    if !out.status.success() {
        return Err(crate::Error::Other(format!(
            "oxcd snapshot restore failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    tracing::info!(
        backup = %record.name,
        revision = record.revision,
        data_dir = %args.data_dir.display(),
        "restored"
    );
    println!("{}", serde_json::to_string(&record).unwrap_or_default());
    Ok(())
}
