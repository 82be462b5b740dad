//! Applying committed entries: a group at a time under the state lock, effects and applied
//! position in one write-buffer batch, watchers told after the group.

use openraft::EntryPayload;

use crate::apply;
use crate::error::{Error, Result};
use crate::proto::oxcdpb::InternalResponse;
use crate::storage::{Backend, WriteBatch};
use crate::typ::{CommandResult, Entry, StoredMembership};

use super::{AppliedState, META_APPLIED, META_MEMBERSHIP, StateStore};

impl StateStore {
    /// Applies committed entries, in order; returns each command's response. The state
    /// and the applied position go to the write buffer together, and the buffer is handed
    /// to sled only between groups, so sled always holds "every entry up to `applied`".
    /// Watchers hear of the revisions after the group.
    pub fn apply_entries(&self, entries: Vec<Entry>) -> Result<Vec<CommandResult>> {
        fail::fail_point!("apply-before", |_| Err(Error::internal(
            "failpoint apply-before"
        )));
        let Some(last_log_id) = entries.last().map(|e| e.log_id) else {
            return Ok(Vec::new());
        };
        let _no_snapshot_reads = entries
            .iter()
            .any(removes_revisions)
            .then(|| self.removals.write().expect("removals lock poisoned"));
        let mut inner = self.inner.write().expect("state lock poisoned");
        inner
            .kv
            .mvcc
            .set_event_interest(self.hub.has_streams(), self.hub.prev_kv_wanted());
        let mut results = Vec::with_capacity(entries.len());
        let mut effects = Vec::new();
        for entry in entries {
            results.push(self.apply_one(&mut inner, entry, &mut effects)?);
        }
        let mut applied = WriteBatch::default();
        applied.put(
            META_APPLIED.to_vec(),
            bincode::serialize(&Some(last_log_id)).map_err(Error::internal)?,
        );
        self.backend.write(applied)?;
        if self.backend.commit_due() {
            self.committer.wake();
        }
        inner.applied = Some(last_log_id);
        // Under the state lock still: a stream that reads the current revision after this
        // sees every revision up to it either in the hub or in the store.
        self.publish(effects);
        drop(inner);
        self.applied_tx.send_replace(last_log_id.index);
        fail::fail_point!("apply-after", |_| Err(Error::internal(
            "failpoint apply-after"
        )));
        Ok(results)
    }

    /// Applies one entry to the state behind the lock, its effects to the write buffer; a
    /// command's effects on leases and watchers are kept in `effects` for after the group.
    fn apply_one(
        &self,
        inner: &mut AppliedState,
        entry: Entry,
        effects: &mut Vec<apply::Applied>,
    ) -> Result<CommandResult> {
        let mut batch = WriteBatch::default();
        let mut result = CommandResult(InternalResponse::default());
        match entry.payload {
            EntryPayload::Blank => {}
            EntryPayload::Normal(cmd) => {
                let a = apply::apply(
                    &mut inner.kv,
                    self.backend.as_ref(),
                    &mut batch,
                    cmd.0,
                    self.min_lease_ttl,
                );
                result = CommandResult(a.response.clone());
                effects.push(a);
            }
            EntryPayload::Membership(m) => {
                inner.membership = StoredMembership::new(Some(entry.log_id), m);
                batch.put(
                    META_MEMBERSHIP.to_vec(),
                    bincode::serialize(&inner.membership).map_err(Error::internal)?,
                );
                // One waiter (the removal watch); a permit is kept if it is busy.
                self.membership_applied.notify_one();
            }
        }
        self.backend.write(batch)?;
        Ok(result)
    }

    /// Tells the lease clock of granted and revoked leases, and watchers of new revisions.
    fn publish(&self, effects: Vec<apply::Applied>) {
        for a in effects {
            if let Some((id, ttl)) = a.granted {
                self.lease_clock.renew(id, ttl);
            }
            if let Some(id) = a.revoked {
                self.lease_clock.forget(id);
            }
            if let Some(change) = a.token {
                self.simple_tokens.apply(change);
            }
            self.hub.publish(a.revision, a.events);
        }
    }

    /// Applies one committed entry; returns the command's response.
    pub fn apply_entry(&self, entry: Entry) -> Result<CommandResult> {
        let mut results = self.apply_entries(vec![entry])?;
        Ok(results.remove(0))
    }
}

/// Whether applying `entry` may remove revisions (a compaction).
fn removes_revisions(entry: &Entry) -> bool {
    use crate::proto::oxcdpb::internal_request::Request;
    matches!(
        &entry.payload,
        EntryPayload::Normal(cmd) if matches!(cmd.0.request, Some(Request::Compaction(_)))
    )
}
