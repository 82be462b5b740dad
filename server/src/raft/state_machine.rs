//! openraft's view of the state store: apply committed entries, build and install snapshots.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use openraft::alias::SnapshotOf;
use openraft::storage::{ApplyResponder, EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{OptionalSend, Snapshot};

use crate::state::{SnapshotWritten, StateStore};
use crate::typ::{Entry, LogId, SnapshotMeta, StoredMembership, TypeConfig};

/// A snapshot on disk: the file holds the whole state store, written by
/// [`StateStore::current_snapshot_async`] or received from the leader.
#[derive(Debug, Clone)]
pub struct SnapshotFile {
    pub path: PathBuf,
    /// For a file still being written: when it is complete.
    written: Option<SnapshotWritten>,
}

impl SnapshotFile {
    /// A file that is complete.
    pub fn complete(path: PathBuf) -> SnapshotFile {
        SnapshotFile {
            path,
            written: None,
        }
    }

    /// Waits until the file is complete.
    pub async fn written(&self) -> io::Result<()> {
        let Some(written) = &self.written else {
            return Ok(());
        };
        let mut written = written.clone();
        match written.wait_for(Option::is_some).await {
            Ok(result) => result.clone().unwrap_or(Ok(())).map_err(io::Error::other),
            Err(_) => Err(io::Error::other("the snapshot's writer stopped")),
        }
    }
}

fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// The raft state machine: a handle on the shared state store.
#[derive(Clone)]
pub struct StateMachine {
    pub store: Arc<StateStore>,
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotFile;

    /// Raft keeps only the metadata of a snapshot it took; the file it would hold is written
    /// when a member needs it (see [`StateStore::build_snapshot_async`]), so the one returned
    /// here names where it would go.
    async fn build_snapshot(&mut self) -> io::Result<SnapshotOf<TypeConfig, SnapshotFile>> {
        let meta = self.store.build_snapshot_async().await.map_err(io_err)?;
        let path = self.store.snapshot_path(&meta);
        Ok(Snapshot {
            meta,
            snapshot: SnapshotFile::complete(path),
        })
    }
}

/// Most entries applied as one backend write.
const MAX_APPLY_GROUP: usize = 1024;

impl StateMachine {
    fn apply_group(
        &self,
        group: &mut Vec<Entry>,
        responders: &mut Vec<Option<ApplyResponder<TypeConfig>>>,
    ) -> io::Result<()> {
        if group.is_empty() {
            return Ok(());
        }
        let results = self
            .store
            .apply_entries(std::mem::take(group))
            .map_err(io_err)?;
        for (result, responder) in results.into_iter().zip(responders.drain(..)) {
            if let Some(responder) = responder {
                responder.send(result);
            }
        }
        Ok(())
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotFile;
    type SnapshotBuilder = StateMachine;

    async fn applied_state(&mut self) -> io::Result<(Option<LogId>, StoredMembership)> {
        Ok(self.store.applied_state())
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> io::Result<()>
    where
        Strm: Stream<Item = io::Result<EntryResponder<TypeConfig>>> + Unpin + OptionalSend,
    {
        // Entries already committed arrive together; apply those at hand as one batch
        // (bounded, so a long replay does not build one huge write).
        let mut group = Vec::new();
        let mut responders = Vec::new();
        loop {
            let next = if group.is_empty() {
                entries.next().await
            } else {
                match futures::FutureExt::now_or_never(entries.next()) {
                    Some(next) => next,
                    None => {
                        self.apply_group(&mut group, &mut responders)?;
                        continue;
                    }
                }
            };
            let Some(item) = next else { break };
            let (entry, responder) = item?;
            group.push(entry);
            responders.push(responder);
            if group.len() >= MAX_APPLY_GROUP {
                self.apply_group(&mut group, &mut responders)?;
            }
        }
        self.apply_group(&mut group, &mut responders)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotFile,
    ) -> io::Result<()> {
        snapshot.written().await?;
        let store = self.store.clone();
        let meta = meta.clone();
        tokio::task::spawn_blocking(move || store.install_snapshot(&meta, &snapshot.path))
            .await
            .map_err(io_err)?
            .map_err(io_err)
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> io::Result<Option<SnapshotOf<TypeConfig, SnapshotFile>>> {
        let current = self.store.current_snapshot_async().await.map_err(io_err)?;
        Ok(current.map(|(meta, path, written)| Snapshot {
            meta,
            snapshot: SnapshotFile {
                path,
                written: Some(written),
            },
        }))
    }
}
