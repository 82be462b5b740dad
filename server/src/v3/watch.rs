//! The Watch service: one task per stream multiplexes its watchers over the hub.
//!
//! A watcher is *synced* once it has seen every revision up to the hub's position; new
//! watchers with a past start revision first replay history from the MVCC store. The task
//! handles requests, hub revisions and progress ticks one at a time, so each watcher's
//! events go out in revision order, each revision whole (unless the client asked for
//! fragments), exactly once.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use prost::Message;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use crate::error::{Error, Result};
use crate::mvcc::KeyRange;
use crate::proto::etcdserverpb::{
    WatchCancelRequest, WatchCreateRequest, WatchRequest, WatchResponse, watch_create_request,
    watch_request,
};
use crate::proto::mvccpb::{Event, event::EventType};
use crate::server::EtcdServer;
use crate::watch::{PrevKvInterest, RevisionEvents};

use super::{Core, RequestContext};
use crate::proto::authpb::permission::Type as PermType;

/// An error as a Go gRPC status prints it (`status.Error(...).Error()`), which is how etcd
/// words a watch refused by auth.
fn go_status_text(e: &Error) -> String {
    let code = match e.code() {
        tonic::Code::InvalidArgument => "InvalidArgument",
        tonic::Code::Unauthenticated => "Unauthenticated",
        tonic::Code::FailedPrecondition => "FailedPrecondition",
        _ => "PermissionDenied",
    };
    format!("rpc error: code = {code} desc = {e}")
}

/// Replayed history goes out in responses of at most this many events (whole revisions).
const MAX_EVENTS_PER_RESPONSE: usize = 1000;
/// Responses a stream may have queued for a slow client before the stream task waits.
const STREAM_BUFFER: usize = 128;
impl Core {
    /// Serves one watch stream: the client's create, cancel and progress requests come in on
    /// `input`; responses go out on the stream returned, until the client ends `input`.
    pub fn watch(
        &self,
        ctx: &RequestContext,
        input: impl Stream<Item = Result<WatchRequest>> + Send + Unpin + 'static,
    ) -> ReceiverStream<Result<WatchResponse>> {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let stream = WatchStreamTask {
            requires_leader: ctx.require_leader,
            ctx: ctx.clone(),
            server: self.server.clone(),
            hub: self.server.state.hub.subscribe(),
            out: tx,
            watchers: BTreeMap::new(),
            next_id: 0,
        };
        tokio::spawn(stream.run(input));
        ReceiverStream::new(rx)
    }
}

/// One watcher of a stream.
struct Watcher {
    range: KeyRange,
    /// The first revision this watcher has not been sent yet.
    next_rev: i64,
    /// Set when the watcher asked for `prev_kv`.
    prev_kv: Option<PrevKvInterest>,
    no_put: bool,
    no_delete: bool,
    progress_notify: bool,
    /// Events went out since the last progress tick; like etcd, that tick sends no
    /// notification to this watcher.
    sent_since_tick: bool,
    fragment: bool,
}

impl Watcher {
    /// The events of one revision this watcher wants, shaped as it asked.
    fn select(&self, events: &[Event]) -> Vec<Event> {
        events
            .iter()
            .filter(|e| e.kv.as_ref().is_some_and(|kv| self.range.contains(&kv.key)))
            .filter(|e| {
                if e.r#type == EventType::Put as i32 {
                    !self.no_put
                } else {
                    !self.no_delete
                }
            })
            .map(|e| {
                let mut e = e.clone();
                if self.prev_kv.is_none() {
                    e.prev_kv = None;
                }
                e
            })
            .collect()
    }
}

/// Why the stream ends.
enum Stop {
    ClientGone,
    Failed(Error),
}

impl From<Error> for Stop {
    fn from(e: Error) -> Stop {
        Stop::Failed(e)
    }
}

struct WatchStreamTask {
    /// The client asked (clientv3's `WithRequireLeader`) that the stream end without one.
    requires_leader: bool,
    /// Who opened the stream: each new watcher's range must be readable by them.
    ctx: RequestContext,
    server: Arc<EtcdServer>,
    hub: broadcast::Receiver<Arc<RevisionEvents>>,
    out: mpsc::Sender<Result<WatchResponse>>,
    watchers: BTreeMap<i64, Watcher>,
    next_id: i64,
}

impl WatchStreamTask {
    async fn run(mut self, mut input: impl Stream<Item = Result<WatchRequest>> + Unpin) {
        let mut progress = tokio::time::interval(self.server.progress_notify_interval);
        progress.tick().await;
        let server = self.server.clone();
        let leader_lost = server.leader_lost_for(self.requires_leader);
        tokio::pin!(leader_lost);
        let result = loop {
            let step = tokio::select! {
                req = input.next() => match req {
                    Some(Ok(req)) => self.handle_request(req).await,
                    Some(Err(_)) | None => Err(Stop::ClientGone),
                },
                rev = self.hub.recv() => match rev {
                    Ok(rev) => self.deliver(&rev).await,
                    Err(broadcast::error::RecvError::Lagged(_)) => self.catch_up_all().await,
                    Err(broadcast::error::RecvError::Closed) => Err(Stop::Failed(Error::Stopped)),
                },
                _ = progress.tick() => self.notify_progress().await,
                () = &mut leader_lost => Err(Stop::Failed(Error::NoLeader)),
            };
            if let Err(stop) = step {
                break stop;
            }
        };
        if let Stop::Failed(error) = result {
            let _ = self.out.send(Err(error)).await;
        }
    }

    async fn send(&self, resp: WatchResponse) -> Result<(), Stop> {
        self.out.send(Ok(resp)).await.map_err(|_| Stop::ClientGone)
    }

    fn response(&self, watch_id: i64, revision: i64) -> WatchResponse {
        WatchResponse {
            header: Some(self.server.header(revision)),
            watch_id,
            ..WatchResponse::default()
        }
    }

    async fn handle_request(&mut self, req: WatchRequest) -> Result<(), Stop> {
        match req.request_union {
            Some(watch_request::RequestUnion::CreateRequest(c)) => self.create(c).await,
            Some(watch_request::RequestUnion::CancelRequest(WatchCancelRequest { watch_id })) => {
                if self.watchers.remove(&watch_id).is_some() {
                    let mut resp = self.response(watch_id, self.current_rev());
                    resp.canceled = true;
                    self.send(resp).await?;
                }
                Ok(())
            }
            Some(watch_request::RequestUnion::ProgressRequest(_)) => {
                let rev = self.sync_to_current().await?;
                self.send(self.response(-1, rev)).await
            }
            None => Ok(()),
        }
    }

    fn current_rev(&self) -> i64 {
        self.server.state.read().kv.mvcc.current_rev()
    }

    async fn create(&mut self, c: WatchCreateRequest) -> Result<(), Stop> {
        let range = KeyRange::from_request(&c.key, &c.range_end);
        let current = self.current_rev();
        let refusal = if range.is_empty() {
            Some("mvcc: watcher range is empty".to_string())
        } else if c.watch_id != 0 && self.watchers.contains_key(&c.watch_id) {
            Some("mvcc: duplicate watch ID provided on the WatchStream".to_string())
        } else {
            self.permitted(&c).err().map(|e| go_status_text(&e))
        };
        if let Some(reason) = refusal {
            let mut resp = self.response(-1, current);
            resp.created = true;
            resp.canceled = true;
            resp.cancel_reason = reason;
            return self.send(resp).await;
        }
        let id = if c.watch_id != 0 {
            c.watch_id
        } else {
            while self.watchers.contains_key(&self.next_id) {
                self.next_id += 1;
            }
            // Like etcd, never hand out an automatic id twice on a stream: responses for a
            // canceled watcher may still be in flight under the old id.
            self.next_id += 1;
            self.next_id - 1
        };
        let filters: Vec<_> = c
            .filters
            .iter()
            .filter_map(|f| watch_create_request::FilterType::try_from(*f).ok())
            .collect();
        let watcher = Watcher {
            range,
            next_rev: if c.start_revision > 0 {
                c.start_revision
            } else {
                current + 1
            },
            prev_kv: c.prev_kv.then(|| self.server.state.hub.want_prev_kv()),
            no_put: filters.contains(&watch_create_request::FilterType::Noput),
            no_delete: filters.contains(&watch_create_request::FilterType::Nodelete),
            progress_notify: c.progress_notify,
            sent_since_tick: false,
            fragment: c.fragment,
        };
        self.watchers.insert(id, watcher);
        let mut resp = self.response(id, current);
        resp.created = true;
        self.send(resp).await?;
        self.catch_up(id).await
    }

    /// etcd's `isWatchPermitted`: the caller, as of now, may read the watched range.
    fn permitted(&self, c: &WatchCreateRequest) -> Result<()> {
        let who = self.ctx.resolve(&self.server)?.unwrap_or_default();
        self.server
            .state
            .read()
            .kv
            .auth
            .check(&who, &c.key, &c.range_end, PermType::Read)
    }

    /// The stored events `w` has not been sent, up to the current revision, and that
    /// revision; or, when they are compacted away, the compaction revision.
    fn history_for(&self, w: &Watcher) -> Result<(Vec<Event>, i64, Option<i64>)> {
        let state = self.server.state.read();
        let mvcc = &state.kv.mvcc;
        let current = mvcc.current_rev();
        Ok(if w.next_rev < mvcc.compact_rev() {
            (Vec::new(), current, Some(mvcc.compact_rev()))
        } else if w.next_rev > current {
            (Vec::new(), current, None)
        } else {
            let backend = self.server.state.backend();
            (
                mvcc.events(backend, &w.range, w.next_rev, current)?,
                current,
                None,
            )
        })
    }

    /// Replays stored history to watcher `id` up to the current revision.
    async fn catch_up(&mut self, id: i64) -> Result<(), Stop> {
        let Some(w) = self.watchers.get(&id) else {
            return Ok(());
        };
        let (events, current, compacted) = self.history_for(w)?;
        if let Some(compact_revision) = compacted {
            self.watchers.remove(&id);
            // etcd's compaction notice carries no revision: its header revision is 0.
            let mut resp = self.response(id, 0);
            resp.compact_revision = compact_revision;
            resp.canceled = true;
            return self.send(resp).await;
        }
        let w = self.watchers.get(&id).expect("present above");
        let mut sent = false;
        let mut batch: Vec<Event> = Vec::new();
        let mut batch_rev = 0;
        let mut i = 0;
        while i < events.len() {
            let rev = events[i]
                .kv
                .as_ref()
                .map(|kv| kv.mod_revision)
                .unwrap_or_default();
            let j = i + events[i..]
                .iter()
                .take_while(|e| e.kv.as_ref().map(|kv| kv.mod_revision) == Some(rev))
                .count();
            let selected = w.select(&events[i..j]);
            if !batch.is_empty() && batch.len() + selected.len() > MAX_EVENTS_PER_RESPONSE {
                self.send_events(id, batch_rev, std::mem::take(&mut batch))
                    .await?;
                sent = true;
            }
            if !selected.is_empty() {
                batch.extend(selected);
                batch_rev = rev;
            }
            i = j;
        }
        if !batch.is_empty() {
            // Like etcd's replay, the last response reports the revision replayed up to.
            self.send_events(id, current, batch).await?;
            sent = true;
        }
        if let Some(w) = self.watchers.get_mut(&id) {
            w.next_rev = w.next_rev.max(current + 1);
            w.sent_since_tick |= sent;
        }
        Ok(())
    }

    async fn catch_up_all(&mut self) -> Result<(), Stop> {
        let ids: Vec<i64> = self.watchers.keys().copied().collect();
        for id in ids {
            self.catch_up(id).await?;
        }
        Ok(())
    }

    /// Sends one live revision to every watcher that has not seen it.
    async fn deliver(&mut self, rev: &RevisionEvents) -> Result<(), Stop> {
        let mut sends = Vec::new();
        for (id, w) in self.watchers.iter_mut() {
            if w.next_rev > rev.revision {
                continue;
            }
            if w.next_rev < rev.revision || rev.events.is_empty() {
                // A gap (a revision with no events for anyone, or history not yet replayed)
                // or a jump (a raft snapshot replaced the store): replay handles it below.
                sends.push((*id, None));
                continue;
            }
            w.next_rev = rev.revision + 1;
            let selected = w.select(&rev.events);
            if !selected.is_empty() {
                w.sent_since_tick = true;
                sends.push((*id, Some(selected)));
            }
        }
        for (id, events) in sends {
            match events {
                Some(events) => self.send_events(id, rev.revision, events).await?,
                None => self.catch_up(id).await?,
            }
        }
        Ok(())
    }

    /// Sends events, split into fragments when the watcher allows it and they are too large.
    async fn send_events(&self, id: i64, revision: i64, events: Vec<Event>) -> Result<(), Stop> {
        let fragment = self.watchers.get(&id).is_some_and(|w| w.fragment);
        let mut resp = self.response(id, revision);
        resp.events = events;
        let limit = super::max_message_bytes(&self.server.limits);
        if !fragment || resp.events.len() < 2 || resp.encoded_len() < limit {
            return self.send(resp).await;
        }
        let events = std::mem::take(&mut resp.events);
        let mut part = resp.clone();
        part.fragment = true;
        for ev in events {
            part.events.push(ev);
            if part.events.len() > 1 && part.encoded_len() >= limit {
                let last = part.events.pop().expect("two or more");
                let full = std::mem::replace(&mut part.events, vec![last]);
                let mut out = resp.clone();
                out.fragment = true;
                out.events = full;
                self.send(out).await?;
            }
        }
        part.fragment = false;
        self.send(part).await
    }

    /// Delivers every revision published up to now; returns the revision all watchers have
    /// now seen, which a progress notification may report.
    async fn sync_to_current(&mut self) -> Result<i64, Stop> {
        // Every revision up to `synced` is in the hub already (apply publishes before it
        // releases the state lock); draining may deliver later ones too, and a progress
        // report below an event already sent would tell the client to expect it again.
        let mut synced = self.current_rev();
        loop {
            match self.hub.try_recv() {
                Ok(rev) => {
                    synced = synced.max(rev.revision);
                    self.deliver(&rev).await?;
                }
                Err(broadcast::error::TryRecvError::Lagged(_)) => {
                    synced = synced.max(self.current_rev());
                    self.catch_up_all().await?;
                }
                Err(_) => break,
            }
        }
        // A watcher may still be behind `synced` (its history not yet replayed): replay it
        // now, or the report would precede events below it.
        let behind: Vec<i64> = self
            .watchers
            .iter()
            .filter(|(_, w)| w.next_rev <= synced)
            .map(|(id, _)| *id)
            .collect();
        for id in behind {
            self.catch_up(id).await?;
        }
        Ok(synced)
    }

    async fn notify_progress(&mut self) -> Result<(), Stop> {
        if !self.watchers.values().any(|w| w.progress_notify) {
            return Ok(());
        }
        let rev = self.sync_to_current().await?;
        let ids: Vec<i64> = self
            .watchers
            .iter_mut()
            .filter_map(|(id, w)| {
                let quiet = !std::mem::take(&mut w.sent_since_tick);
                (w.progress_notify && quiet).then_some(*id)
            })
            .collect();
        for id in ids {
            self.send(self.response(id, rev)).await?;
        }
        Ok(())
    }
}
