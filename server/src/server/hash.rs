//! Hashes of the applied state as etcd computes them (CRC-32C), for Maintenance.Hash and
//! HashKV and for the leader's corruption check.

use crate::checksum::crc32c;
use crate::error::{Error, Result};
use crate::mvcc::KeyRange;
use crate::proto::etcdserverpb::{HashKvResponse, HashResponse};

use super::EtcdServer;

impl EtcdServer {
    /// etcd's Hash: every replicated pair of the state, at one applied position.
    pub async fn hash(&self) -> Result<HashResponse> {
        let state = self.state.clone();
        let (hash, revision) = tokio::task::spawn_blocking(move || -> Result<(u32, i64)> {
            let mut crc = 0;
            let revision = state.visit_replicated_pairs(|k, v| crc = crc32c(crc32c(crc, k), v))?;
            Ok((crc, revision))
        })
        .await
        .map_err(Error::internal)??;
        Ok(HashResponse {
            header: Some(self.header(revision)),
            hash,
        })
    }

    /// etcd's HashKV: the keys and values of every revision from the compaction up to
    /// `revision` (0: the current one).
    pub async fn hash_kv(&self, revision: i64) -> Result<HashKvResponse> {
        let state = self.state.clone();
        let (hash, compact_revision, current, hash_revision) =
            tokio::task::spawn_blocking(move || -> Result<_> {
                let guard = state.read();
                let mvcc = &guard.kv.mvcc;
                let at = mvcc.check_read_rev(revision)?;
                let all = KeyRange::from_request(b"\0", b"\0");
                let mut crc = 0;
                for ev in mvcc.events(state.backend(), &all, mvcc.compact_rev().max(1), at)? {
                    if let Some(kv) = ev.kv {
                        crc = crc32c(crc32c(crc, &kv.key), &kv.value);
                    }
                }
                Ok((crc, mvcc.compact_rev(), mvcc.current_rev(), at))
            })
            .await
            .map_err(Error::internal)??;
        Ok(HashKvResponse {
            header: Some(self.header(current)),
            hash,
            compact_revision,
            hash_revision,
        })
    }
}
