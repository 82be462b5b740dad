//! Backups of a cluster to object storage: `Maintenance.Snapshot` streamed from a healthy
//! member into an object store (S3 or S3-compatible, GCS, Azure Blob Storage, or a
//! directory such as a mounted volume), never held whole in memory; checked on the way
//! against the snapshot's own trailer (etcd's format ends with the sha256 of what precedes
//! it), then read back from the store and checked again, so a corrupt upload is caught
//! before it counts. Each backup is an object `snapshot-<UTC time>.db` under the target's
//! prefix, with a record beside it (`.db.json`: revision, size, sha256, where, when, whose).
//!
//! - [`retention`]: which backups a policy (keep N, max age) lets go, and letting them go;
//! - [`schedule`]: the next time of a cron schedule, and backups taken on it;
//! - [`command`]: `oxcd-operator backup` and `verify-backup`.

pub mod command;
pub mod retention;
pub mod schedule;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::members::Access;

/// Bytes of etcd's snapshot trailer: the sha256 of the database before it.
const TRAILER: usize = 32;
/// The part size of multipart uploads (S3's minimum is 5 MiB); at most
/// [`UPLOADS_IN_FLIGHT`] parts are held at once.
const PART_SIZE: usize = 8 << 20;
const UPLOADS_IN_FLIGHT: usize = 2;
/// A bound on the snapshot request of a backup, however large the snapshot.
const SNAPSHOT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3600);
/// Prefix and suffix of backup object names.
const NAME_PREFIX: &str = "snapshot-";
const NAME_SUFFIX: &str = ".db";
const RECORD_SUFFIX: &str = ".json";

/// Where backups go: an object store and the prefix inside it.
#[derive(Clone)]
pub struct Target {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    url: String,
}

/// What is known of one backup, kept beside it as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// The object's name under the target's prefix.
    pub name: String,
    /// The object's URL.
    pub location: String,
    /// The cluster's revision when the snapshot began.
    pub revision: i64,
    pub size: u64,
    /// Of the whole object, hex.
    pub sha256: String,
    pub taken_at: DateTime<Utc>,
    /// Hex, as etcdctl prints them.
    pub cluster_id: String,
    pub member_id: String,
    /// The member the snapshot came from.
    pub endpoint: String,
}

impl Target {
    /// The target at `url` (`s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix`
    /// or `file:///dir`), configured by `options` (object_store's keys, such as `aws_endpoint`,
    /// `aws_region`, `aws_virtual_hosted_style_request`, `aws_allow_http`) and by the
    /// `AWS_*`, `GOOGLE_*` and `AZURE_*` variables of the environment (credentials).
    pub fn open(url: &str, options: &[(String, String)]) -> Result<Target> {
        install_crypto_provider();
        let parsed = url::Url::parse(url)
            .map_err(|e| Error::Invalid(format!("backup location {url:?}: {e}")))?;
        if parsed.scheme() == "file" {
            std::fs::create_dir_all(parsed.path())
                .map_err(|e| Error::Other(format!("{}: {e}", parsed.path())))?;
        }
        let from_env = std::env::vars().filter(|(k, _)| {
            ["AWS_", "GOOGLE_", "AZURE_"]
                .iter()
                .any(|p| k.starts_with(p))
        });
        let options = from_env.chain(options.iter().cloned());
        let (store, prefix) = object_store::parse_url_opts(&parsed, options)
            .map_err(|e| Error::Invalid(format!("backup location {url:?}: {e}")))?;
        Ok(Target {
            store: Arc::from(store),
            prefix,
            url: url.trim_end_matches('/').to_string(),
        })
    }

    fn path(&self, name: &str) -> Path {
        self.prefix.clone().join(name)
    }

    fn location(&self, name: &str) -> String {
        format!("{}/{name}", self.url)
    }

    /// Every backup under the prefix with its record, oldest first; objects without a record
    /// (an upload that did not finish) are left out.
    pub async fn list(&self) -> Result<Vec<Record>> {
        let mut names = Vec::new();
        let mut listing = self.store.list(Some(&self.prefix));
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(store_error)?;
            if let Some(name) = meta.location.filename()
                && name.starts_with(NAME_PREFIX)
                && name.ends_with(NAME_SUFFIX)
            {
                names.push(name.to_string());
            }
        }
        let mut records = Vec::new();
        for name in names {
            if let Ok(record) = self.record(&name).await {
                records.push(record);
            }
        }
        records.sort_by_key(|r| r.taken_at);
        Ok(records)
    }

    /// The record of backup `name`.
    pub async fn record(&self, name: &str) -> Result<Record> {
        let path = self.path(&format!("{name}{RECORD_SUFFIX}"));
        let bytes = self
            .store
            .get(&path)
            .await
            .map_err(store_error)?
            .bytes()
            .await
            .map_err(store_error)?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Other(format!("{path}: {e}")))
    }

    /// Deletes backup `name` and its record.
    pub async fn delete(&self, name: &str) -> Result<()> {
        for path in [
            self.path(&format!("{name}{RECORD_SUFFIX}")),
            self.path(name),
        ] {
            match self.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(store_error(e)),
            }
        }
        Ok(())
    }

    /// Streams object `name` through `sink`, checking its trailer on the way; `Err` unless
    /// it holds exactly `size` bytes with the hex sha256 `sha256`.
    async fn read_checked(
        &self,
        name: &str,
        (size, sha256): (u64, &str),
        mut sink: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        let mut stream = self
            .store
            .get(&self.path(name))
            .await
            .map_err(store_error)?
            .into_stream();
        let mut check = Check::default();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(store_error)?;
            check.feed(&chunk);
            sink(&chunk)?;
        }
        let (read, read_sha256) = check.finish()?;
        if (read, read_sha256.as_str()) != (size, sha256) {
            return Err(Error::Other(format!(
                "backup {} is corrupt: {read} bytes with sha256 {read_sha256}, expected {size} bytes with sha256 {sha256}",
                self.location(name)
            )));
        }
        Ok(())
    }

    /// Reads backup `name` back and checks it against its record and its own trailer.
    pub async fn verify(&self, name: &str) -> Result<Record> {
        let record = self.record(name).await?;
        self.read_checked(name, (record.size, &record.sha256), |_| Ok(()))
            .await?;
        Ok(record)
    }

    /// The name of backup `name`, or of the newest backup for `latest`.
    pub async fn resolve(&self, name: &str) -> Result<String> {
        if name != "latest" {
            return Ok(name.to_string());
        }
        let newest = self.list().await?.pop();
        newest
            .map(|r| r.name)
            .ok_or_else(|| Error::Other(format!("no backup under {}", self.url)))
    }

    /// Downloads backup `name` (or `latest`) into the file `out`, streamed, checked against
    /// its record and its own trailer before it is renamed into place and synced: the file a
    /// restore (`oxcd snapshot restore`) starts from.
    pub async fn fetch(&self, name: &str, out: &std::path::Path) -> Result<Record> {
        use std::io::Write;
        let name = self.resolve(name).await?;
        let record = self.record(&name).await?;
        let io = |e: std::io::Error| Error::Other(format!("{}: {e}", out.display()));
        let partial = out.with_extension("partial");
        let mut file = std::fs::File::create(&partial).map_err(io)?;
        let fetched = self
            .read_checked(&name, (record.size, &record.sha256), |chunk| {
                file.write_all(chunk).map_err(io)
            })
            .await;
        if let Err(e) = fetched {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
        file.sync_all().map_err(io)?;
        std::fs::rename(&partial, out).map_err(io)?;
        Ok(record)
    }

    /// Takes a backup from the first healthy member among `endpoints`: streams its snapshot
    /// into the store, reads the object back, and only then writes its record.
    pub async fn take(&self, access: &Access, endpoints: &[String]) -> Result<Record> {
        let (endpoint, mut client, status) = healthy_member(access, endpoints).await?;
        let header = status
            .header()
            .ok_or_else(|| Error::Other("Status answered without a header".into()))?;
        let taken_at = Utc::now();
        let name = format!(
            "{NAME_PREFIX}{}{NAME_SUFFIX}",
            taken_at.format("%Y%m%dT%H%M%S%.3fZ")
        );
        let path = self.path(&name);
        let upload = self.store.put_multipart(&path).await.map_err(store_error)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut check = Check::default();
        let streamed = async {
            let mut snapshot = client.snapshot().await?;
            while let Some(message) = snapshot.message().await? {
                writer
                    .wait_for_capacity(UPLOADS_IN_FLIGHT)
                    .await
                    .map_err(store_error)?;
                check.feed(message.blob());
                writer.write(message.blob());
            }
            Ok::<_, Error>(())
        }
        .await;
        let checked = streamed.and_then(|()| check.finish());
        let (size, sha256) = match checked {
            Ok(done) => done,
            Err(e) => {
                let _ = writer.abort().await;
                return Err(e);
            }
        };
        writer.finish().await.map_err(store_error)?;
        let record = Record {
            location: self.location(&name),
            name: name.clone(),
            revision: header.revision(),
            size,
            sha256,
            taken_at,
            cluster_id: format!("{:x}", header.cluster_id()),
            member_id: format!("{:x}", header.member_id()),
            endpoint,
        };
        // What the store holds must be what was sent before the backup counts.
        let stored = self
            .read_checked(&name, (record.size, &record.sha256), |_| Ok(()))
            .await;
        if let Err(e) = stored {
            let _ = self.store.delete(&path).await;
            return Err(e);
        }
        let json = serde_json::to_vec_pretty(&record).map_err(|e| Error::Other(e.to_string()))?;
        self.store
            .put(
                &self.path(&format!("{name}{RECORD_SUFFIX}")),
                PutPayload::from(json),
            )
            .await
            .map_err(store_error)?;
        Ok(record)
    }
}

/// The sha256 of a whole snapshot as it streams by, and etcd's own check: its last 32 bytes
/// are the sha256 of everything before them.
#[derive(Default)]
struct Check {
    whole: Sha256,
    body: Sha256,
    /// The last bytes seen, up to the trailer's length: not yet known to be body.
    tail: Vec<u8>,
    size: u64,
}

impl Check {
    fn feed(&mut self, bytes: &[u8]) {
        self.whole.update(bytes);
        self.size += bytes.len() as u64;
        self.tail.extend_from_slice(bytes);
        if self.tail.len() > TRAILER {
            let body = self.tail.len() - TRAILER;
            self.body.update(&self.tail[..body]);
            self.tail.drain(..body);
        }
    }

    /// The size and the hex sha256 of everything fed, if the trailer holds.
    fn finish(self) -> Result<(u64, String)> {
        if self.tail.len() < TRAILER || self.body.finalize().as_slice() != self.tail.as_slice() {
            return Err(Error::Other(format!(
                "the snapshot's sha256 trailer does not match its {} bytes",
                self.size
            )));
        }
        Ok((self.size, hex(&self.whole.finalize())))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn store_error(e: object_store::Error) -> Error {
    Error::Other(format!("object store: {e}"))
}

/// reqwest's TLS (rustls without a bundled provider) uses the process's default provider:
/// ring, as for the members (ring's provider is deprecated for its lack of post-quantum key
/// exchange; aws-lc-rs would need a C toolchain and cmake).
#[allow(deprecated)]
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The first of `endpoints` whose member answers Status with a leader and no alarm: its
/// endpoint, a client to it alone and its status.
async fn healthy_member(
    access: &Access,
    endpoints: &[String],
) -> Result<(String, etcd_client::Client, etcd_client::StatusResponse)> {
    let mut why = Vec::new();
    for endpoint in endpoints {
        // No bound on a request: the snapshot streams for as long as it takes.
        let connected = access
            .connect(std::slice::from_ref(endpoint), SNAPSHOT_TIMEOUT)
            .await;
        let mut client = match connected {
            Ok(c) => c,
            Err(e) => {
                why.push(format!("{endpoint}: {e}"));
                continue;
            }
        };
        match client.status().await {
            // An alarm does not stop a backup: a cluster out of space is one to back up.
            Ok(status) if status.leader() != 0 => {
                return Ok((endpoint.clone(), client, status));
            }
            Ok(status) => why.push(format!(
                "{endpoint}: leader {:x}, errors {:?}",
                status.leader(),
                status.errors()
            )),
            Err(e) => why.push(format!("{endpoint}: {e}")),
        }
    }
    Err(Error::Unreachable(format!(
        "no healthy member to back up from ({})",
        why.join("; ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot_of(body: &[u8]) -> Vec<u8> {
        let mut bytes = body.to_vec();
        bytes.extend_from_slice(&Sha256::digest(body));
        bytes
    }

    #[test]
    fn the_trailer_check_holds_for_any_chunking_and_catches_a_flipped_byte() {
        let snapshot = snapshot_of(&(0..100_000u32).map(|i| i as u8).collect::<Vec<_>>());
        for chunk in [1, 7, 31, 32, 33, 4096, snapshot.len()] {
            let mut check = Check::default();
            snapshot.chunks(chunk).for_each(|c| check.feed(c));
            let (size, sha) = check.finish().unwrap();
            assert_eq!(size, snapshot.len() as u64);
            assert_eq!(sha, hex(&Sha256::digest(&snapshot)));
        }
        let mut corrupt = snapshot.clone();
        corrupt[500] ^= 1;
        let mut check = Check::default();
        check.feed(&corrupt);
        assert!(check.finish().is_err());
        let mut short = Check::default();
        short.feed(&snapshot[..20]);
        assert!(short.finish().is_err());
    }
}
