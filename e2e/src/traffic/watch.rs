//! A watcher: one client's watch of a key range, recorded response by response, resumed
//! from where it left off whenever its stream breaks, until told to catch up and stop.
//!
//! Like the API server's watch caches, a watcher also ends its stream by itself every few
//! seconds and watches again: from where it left off, or (after a list) from the list's
//! revision, which compaction may have passed by then: the server then cancels the watch
//! with the compact revision and the watcher lists again.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, WatchOptions, WatchResponse};
use oxcd_testkit::connect;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;

use crate::history::{
    ClientId, Event, EventKind, Outcome, RangeRequest, Recorder, Request, ResponseBody, StreamId,
    WatchRequest, WatchResponseKind,
};
use crate::traffic::client::{RecordingClient, key_value};

/// How often a watcher asks for a progress notification.
const PROGRESS_REQUEST_INTERVAL: Duration = Duration::from_millis(700);

/// How long, in milliseconds, a stream lives before the watcher watches again.
const STREAM_LIFETIME_MS: std::ops::Range<u64> = 2000..6000;

/// Where a watcher's first stream starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartFrom {
    /// After the revision the member is at (start revision 0).
    Now,
    Revision(i64),
    /// As Kubernetes' reflector: list the range (recorded), then watch from the list's
    /// revision on; and list again when the watch's revision was compacted.
    List,
}

/// What a watcher watches.
#[derive(Clone, Debug)]
pub struct WatchSpec {
    pub key: String,
    pub prefix: bool,
    pub prev_kv: bool,
    pub progress_notify: bool,
    pub start: StartFrom,
}

/// A running watcher. Send a revision on `catch_up` and it stops once its streams have
/// delivered (or vouched for) everything up to it.
pub struct Watcher {
    pub id: ClientId,
    pub catch_up: watch::Sender<Option<i64>>,
    pub task: tokio::task::JoinHandle<()>,
}

/// Starts a watcher.
pub fn start(
    id: ClientId,
    endpoints: Vec<String>,
    recorder: Arc<Recorder>,
    spec: WatchSpec,
    request_timeout: Duration,
) -> Watcher {
    let (catch_up, target) = watch::channel(None);
    let state = WatcherState {
        lister: RecordingClient::new(id, endpoints.clone(), recorder.clone(), request_timeout),
        id,
        endpoints,
        current: id as usize,
        recorder,
        spec,
        next_start: 0,
        reached: 0,
        listed_at: None,
        rng: StdRng::seed_from_u64(u64::from(id)),
        request_timeout,
    };
    let task = tokio::spawn(state.run(target));
    Watcher { id, catch_up, task }
}

struct WatcherState {
    id: ClientId,
    endpoints: Vec<String>,
    current: usize,
    recorder: Arc<Recorder>,
    spec: WatchSpec,
    /// Records the lists of a `StartFrom::List` watcher.
    lister: RecordingClient,
    /// The start revision of the next stream; 0 before the first.
    next_start: i64,
    /// The highest revision delivered or vouched for by a progress notification.
    reached: i64,
    /// The revision after the last list, for `StartFrom::List` watchers.
    listed_at: Option<i64>,
    rng: StdRng,
    request_timeout: Duration,
}

/// Why a stream ended.
enum StreamEnd {
    /// It broke or went quiet: resume where it left off.
    Broken,
    /// The server canceled it; `compact_revision` is non-zero when its start was compacted.
    Canceled { compact_revision: i64 },
    /// Lived its time: watch again.
    Expired,
    /// Caught up with the target: stop.
    Done,
}

impl WatcherState {
    async fn run(mut self, mut target: watch::Receiver<Option<i64>>) {
        self.next_start = match self.spec.start {
            StartFrom::Now => 0,
            StartFrom::Revision(revision) => revision,
            StartFrom::List => self.list().await,
        };
        loop {
            if self.caught_up(&target) {
                return;
            }
            match self.stream(&mut target).await {
                StreamEnd::Done => return,
                StreamEnd::Canceled { compact_revision } if compact_revision > 0 => {
                    self.next_start = match self.spec.start {
                        StartFrom::List => self.list().await,
                        _ => compact_revision,
                    };
                }
                StreamEnd::Expired => {
                    // Half the time from the last list's revision, the rest from where
                    // the stream left off.
                    if let Some(listed_at) = self.listed_at.filter(|_| self.rng.random_bool(0.5)) {
                        self.next_start = listed_at;
                    }
                }
                StreamEnd::Canceled { .. } | StreamEnd::Broken => {
                    self.current += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn caught_up(&self, target: &watch::Receiver<Option<i64>>) -> bool {
        target
            .borrow()
            .is_some_and(|revision| self.reached >= revision)
    }

    /// Lists the range (recorded) until a list succeeds; returns the revision to watch from.
    async fn list(&mut self) -> i64 {
        let range = RangeRequest {
            prefix: self.spec.prefix,
            ..RangeRequest::get(self.spec.key.clone())
        };
        loop {
            if let Outcome::Response(response) =
                self.lister.execute(Request::Range(range.clone())).await
                && matches!(response.body, ResponseBody::Range(_))
            {
                self.listed_at = Some(response.revision + 1);
                return response.revision + 1;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// One stream, from `next_start`, until it ends.
    async fn stream(&mut self, target: &mut watch::Receiver<Option<i64>>) -> StreamEnd {
        let endpoint = self.endpoints[self.current % self.endpoints.len()].clone();
        let request = WatchRequest {
            key: self.spec.key.clone(),
            prefix: self.spec.prefix,
            start_revision: self.next_start,
            prev_kv: self.spec.prev_kv,
            progress_notify: self.spec.progress_notify,
        };
        let opened = async {
            let mut client: Client = connect(&[endpoint]).await.ok()?;
            client
                .watch(request.key.as_str(), Some(watch_options(&request)))
                .await
                .ok()
        };
        let Ok(Some(stream)) = tokio::time::timeout(self.request_timeout, opened).await else {
            return StreamEnd::Broken;
        };
        let stream_id = self.recorder.open_watch(self.id, request);
        let (mut sender, mut responses) = stream.split();
        let mut ask_progress = tokio::time::interval(PROGRESS_REQUEST_INTERVAL);
        let lifetime = Duration::from_millis(self.rng.random_range(STREAM_LIFETIME_MS));
        let expiry = tokio::time::sleep(lifetime);
        tokio::pin!(expiry);
        // Answers (events or progress) since the last progress request: a stream that
        // answers nothing for a while is stuck on a frozen or cut-off member.
        let mut quiet_requests = 0;
        loop {
            tokio::select! {
                message = responses.message() => {
                    let Ok(Some(response)) = message else {
                        return StreamEnd::Broken;
                    };
                    quiet_requests = 0;
                    if let Some(end) = self.record(stream_id, &response) {
                        return end;
                    }
                    if self.caught_up(target) {
                        return StreamEnd::Done;
                    }
                }
                _ = ask_progress.tick() => {
                    quiet_requests += 1;
                    if quiet_requests > 6 || sender.request_progress().await.is_err() {
                        return StreamEnd::Broken;
                    }
                }
                () = &mut expiry => return StreamEnd::Expired,
                changed = target.changed() => {
                    if changed.is_err() || self.caught_up(target) {
                        return StreamEnd::Done;
                    }
                }
            }
        }
    }

    /// Records one response and advances the resume point; returns how the stream ends
    /// if it does.
    fn record(&mut self, stream: StreamId, response: &WatchResponse) -> Option<StreamEnd> {
        let revision = response.header().map_or(0, |h| h.revision());
        let kind = if response.created() {
            if self.next_start == 0 {
                self.next_start = revision + 1;
                self.reached = self.reached.max(revision);
            }
            WatchResponseKind::Created
        } else if response.canceled() {
            WatchResponseKind::Canceled {
                compact_revision: response.compact_revision(),
                reason: response.cancel_reason().to_owned(),
            }
        } else if response.events().is_empty() {
            self.advance(revision);
            WatchResponseKind::Progress
        } else {
            let events: Vec<Event> = response.events().iter().map(event).collect();
            if let Some(last) = events.iter().map(|e| e.kv.mod_revision).max() {
                self.advance(last);
            }
            WatchResponseKind::Events {
                events,
                fragment: false,
            }
        };
        let canceled = match &kind {
            WatchResponseKind::Canceled {
                compact_revision, ..
            } => Some(StreamEnd::Canceled {
                compact_revision: *compact_revision,
            }),
            _ => None,
        };
        self.recorder.watch_response(stream, revision, kind);
        canceled
    }

    fn advance(&mut self, revision: i64) {
        self.reached = self.reached.max(revision);
        self.next_start = self.next_start.max(revision + 1);
    }
}

fn watch_options(request: &WatchRequest) -> WatchOptions {
    let mut options = WatchOptions::new();
    if request.prefix {
        options = options.with_prefix();
    }
    if request.start_revision > 0 {
        options = options.with_start_revision(request.start_revision);
    }
    if request.prev_kv {
        options = options.with_prev_key();
    }
    if request.progress_notify {
        options = options.with_progress_notify();
    }
    options
}

fn event(event: &etcd_client::Event) -> Event {
    let kind = match event.event_type() {
        etcd_client::EventType::Put => EventKind::Put,
        etcd_client::EventType::Delete => EventKind::Delete,
    };
    Event {
        kind,
        kv: event.kv().map(key_value).unwrap_or_default(),
        prev_kv: event.prev_kv().map(key_value),
    }
}
