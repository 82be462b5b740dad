//! Watch guarantees, checked on every recorded stream: ordered, unique, atomic and
//! bookmarkable from the stream alone; reliable, resumable and prev_kv against the
//! revision log of a linearization.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use serde::Serialize;

use crate::checker::describe::describe_kv;
use crate::checker::revision_log::RevisionLog;
use crate::history::{ClientId, Event, EventKind, Timestamp, WatchResponseKind, WatchStream};

/// Mismatches reported per stream before the rest are summed up in one line.
const MAX_MISMATCHES: usize = 5;

/// etcd's watch guarantees (see etcd's "API guarantees" documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum WatchGuarantee {
    /// Event revisions never go back.
    Ordered,
    /// No event is delivered twice.
    Unique,
    /// A revision's events arrive in one response, unless it is fragmented.
    Atomic,
    /// Exactly the history's events from the start revision on, without gaps.
    Reliable,
    /// The same as `Reliable`, for a stream that resumed a broken one.
    Resumable,
    /// No event at or below a progress notification's revision follows it.
    Bookmarkable,
    /// `prev_kv`, when asked for, is the key's state before the event.
    PrevKv,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WatchViolation {
    pub guarantee: WatchGuarantee,
    /// Index in `History::watches`.
    pub stream: usize,
    pub client: ClientId,
    /// The revision of the offending event or notification.
    pub revision: i64,
    pub detail: String,
}

impl fmt::Display for WatchViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "watch stream #{} (client {}): {:?} violated at revision {}: {}",
            self.stream, self.client, self.guarantee, self.revision, self.detail
        )
    }
}

/// A compaction a client asked for: when the request was sent, and its revision. Answered
/// or not, it may have taken effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Compaction {
    pub invoked: Timestamp,
    pub revision: i64,
}

/// Checks every stream. Without a log (no linearization was found) only the guarantees
/// a stream shows on its own are checked.
pub fn check_watches(
    streams: &[WatchStream],
    log: Option<&RevisionLog>,
    compactions: &[Compaction],
) -> Vec<WatchViolation> {
    let resumed = resumptions(streams);
    let mut violations = Vec::new();
    for (index, stream) in streams.iter().enumerate() {
        let mut check = StreamCheck {
            index,
            stream,
            compactions,
            violations: &mut violations,
        };
        check.order();
        if let Some(log) = log {
            check.delivery(log, resumed.contains(&index));
        }
    }
    violations
}

/// The streams that resume an earlier one: all but the first opened of each client's
/// streams on one key range.
fn resumptions(streams: &[WatchStream]) -> HashSet<usize> {
    let mut watchers: HashMap<(ClientId, &str, bool), Vec<usize>> = HashMap::new();
    for (index, stream) in streams.iter().enumerate() {
        watchers
            .entry((stream.client, &stream.request.key, stream.request.prefix))
            .or_default()
            .push(index);
    }
    let mut resumed = HashSet::new();
    for mut indices in watchers.into_values() {
        indices.sort_by_key(|&index| (streams[index].opened, index));
        resumed.extend(indices.into_iter().skip(1));
    }
    resumed
}

struct StreamCheck<'a> {
    index: usize,
    stream: &'a WatchStream,
    compactions: &'a [Compaction],
    violations: &'a mut Vec<WatchViolation>,
}

impl StreamCheck<'_> {
    fn report(&mut self, guarantee: WatchGuarantee, revision: i64, detail: String) {
        let (stream, client) = (self.index, self.stream.client);
        self.violations.push(WatchViolation {
            guarantee,
            stream,
            client,
            revision,
            detail,
        });
    }

    /// Ordered, unique, atomic and bookmarkable: what the stream shows on its own.
    fn order(&mut self) {
        let mut delivered: HashSet<(i64, &str)> = HashSet::new();
        let mut last_event: Option<i64> = None;
        let mut last_progress: Option<i64> = None;
        let mut previous_was_fragment = false;
        let stream = self.stream;
        for response in &stream.responses {
            match &response.kind {
                WatchResponseKind::Events { events, fragment } => {
                    for (position, event) in events.iter().enumerate() {
                        let revision = event.kv.mod_revision;
                        if !delivered.insert((revision, &event.kv.key)) {
                            self.report(
                                WatchGuarantee::Unique,
                                revision,
                                format!("{} delivered twice", describe(event)),
                            );
                            continue;
                        }
                        match last_event {
                            Some(last) if revision < last => self.report(
                                WatchGuarantee::Ordered,
                                revision,
                                format!("{} delivered after an event of revision {last}", describe(event)),
                            ),
                            Some(last) if revision == last && position == 0 && !previous_was_fragment => self.report(
                                WatchGuarantee::Atomic,
                                revision,
                                format!("revision {revision} split across responses without a fragment flag"),
                            ),
                            _ => {}
                        }
                        if let Some(progress) =
                            last_progress.filter(|&progress| revision <= progress)
                        {
                            self.report(
                                WatchGuarantee::Bookmarkable,
                                revision,
                                format!(
                                    "{} delivered after a progress notification at {progress}",
                                    describe(event)
                                ),
                            );
                        }
                        last_event = last_event.max(Some(revision));
                    }
                    previous_was_fragment = *fragment;
                }
                WatchResponseKind::Progress => {
                    if let Some(last) = last_event.filter(|&last| last > response.revision) {
                        self.report(
                            WatchGuarantee::Bookmarkable,
                            response.revision,
                            format!(
                                "progress notification at {} after an event of revision {last}",
                                response.revision
                            ),
                        );
                    }
                    last_progress = last_progress.max(Some(response.revision));
                    previous_was_fragment = false;
                }
                WatchResponseKind::Created | WatchResponseKind::Canceled { .. } => {}
            }
        }
    }

    /// Reliable (or resumable) and prev_kv: the stream delivered exactly the log's events
    /// for its key range, from its start revision up to the last revision it vouched for.
    fn delivery(&mut self, log: &RevisionLog, resumed: bool) {
        let guarantee = if resumed {
            WatchGuarantee::Resumable
        } else {
            WatchGuarantee::Reliable
        };
        let Some(start) = self.start_revision() else {
            return;
        };
        // A progress notification may vouch for revisions the history has no operation
        // for: writes without an answer that no one saw. Nothing can be expected of them.
        let through = self.complete_through().min(log.last_revision());
        let stream = self.stream;
        let mut delivered: BTreeMap<(i64, &str), (Timestamp, &Event)> = BTreeMap::new();
        let mut mismatches = Vec::new();
        for (arrived, event) in events_of(stream) {
            let revision = event.kv.mod_revision;
            if revision < start {
                let detail = format!(
                    "{} delivered, but the watch starts at revision {start}",
                    describe(event)
                );
                mismatches.push((guarantee, revision, detail));
            } else if revision > log.last_revision() {
                let detail = format!(
                    "{} delivered, but the history ends at revision {}: no operation explains it",
                    describe(event),
                    log.last_revision()
                );
                mismatches.push((guarantee, revision, detail));
            } else if revision <= through {
                delivered
                    .entry((revision, &event.kv.key))
                    .or_insert((arrived, event));
            }
        }
        let expected: BTreeMap<(i64, &str), &Event> = log
            .events(start, through)
            .into_iter()
            .filter(|event| stream.request.matches(&event.kv.key))
            .map(|event| ((event.kv.mod_revision, event.kv.key.as_str()), event))
            .collect();
        self.compare(guarantee, &expected, &delivered, &mut mismatches);
        self.report_mismatches(guarantee, mismatches);
    }

    /// Adds every difference between the expected and the delivered events.
    fn compare(
        &self,
        guarantee: WatchGuarantee,
        expected: &BTreeMap<(i64, &str), &Event>,
        delivered: &BTreeMap<(i64, &str), (Timestamp, &Event)>,
        mismatches: &mut Vec<(WatchGuarantee, i64, String)>,
    ) {
        for (&(revision, _), &want) in expected {
            match delivered.get(&(revision, want.kv.key.as_str())) {
                None => {
                    mismatches.push((guarantee, revision, format!("missing {}", describe(want))))
                }
                Some(&(_, got)) if !same_change(want, got) => mismatches.push((
                    guarantee,
                    revision,
                    format!("expected {}, got {}", describe(want), describe(got)),
                )),
                Some(&(arrived, got))
                    if self.stream.request.prev_kv
                        && want.prev_kv != got.prev_kv
                        && !(got.prev_kv.is_none() && self.compacted_by(revision, arrived)) =>
                {
                    mismatches.push((
                        WatchGuarantee::PrevKv,
                        revision,
                        format!(
                            "{}: expected prev_kv {}, got {}",
                            describe(got),
                            describe_prev(want),
                            describe_prev(got)
                        ),
                    ))
                }
                Some(_) => {}
            }
        }
        for (key, &(_, got)) in delivered {
            if !expected.contains_key(key) {
                mismatches.push((
                    guarantee,
                    key.0,
                    format!("{} is in no operation of the history", describe(got)),
                ));
            }
        }
    }

    /// Whether the version an event at `revision` replaced may have been compacted away
    /// before the event arrived: a compaction at `revision` or later was asked for by then.
    /// etcd reads a watch event's prev_kv when it sends the event, at the revision before it,
    /// and sends none when that revision is compacted (a watch replaying history from a
    /// compacted-through revision, say).
    fn compacted_by(&self, revision: i64, arrived: Timestamp) -> bool {
        self.compactions
            .iter()
            .any(|c| c.revision >= revision && c.invoked < arrived)
    }

    /// Reports the first mismatches by revision, and how many more there were.
    fn report_mismatches(
        &mut self,
        guarantee: WatchGuarantee,
        mut mismatches: Vec<(WatchGuarantee, i64, String)>,
    ) {
        mismatches.sort_by_key(|(_, revision, _)| *revision);
        let total = mismatches.len();
        for (guarantee, revision, detail) in mismatches.into_iter().take(MAX_MISMATCHES) {
            self.report(guarantee, revision, detail);
        }
        if total > MAX_MISMATCHES {
            self.report(
                guarantee,
                0,
                format!("and {} more mismatches", total - MAX_MISMATCHES),
            );
        }
    }

    /// The first revision the stream must deliver, if known.
    fn start_revision(&self) -> Option<i64> {
        if self.stream.request.start_revision > 0 {
            return Some(self.stream.request.start_revision);
        }
        self.stream
            .responses
            .iter()
            .find_map(|response| match response.kind {
                WatchResponseKind::Created => Some(response.revision + 1),
                _ => None,
            })
    }

    /// The last revision whose events the stream vouched for in full: that of its last
    /// complete batch of events or of its last progress notification.
    fn complete_through(&self) -> i64 {
        let mut through = 0;
        for response in &self.stream.responses {
            match &response.kind {
                WatchResponseKind::Events { events, fragment } => {
                    if let Some(last) = events.iter().map(|event| event.kv.mod_revision).max() {
                        // A batch cut off mid-fragment vouches only for earlier revisions.
                        through = through.max(if *fragment { last - 1 } else { last });
                    }
                }
                WatchResponseKind::Progress => through = through.max(response.revision),
                WatchResponseKind::Created | WatchResponseKind::Canceled { .. } => {}
            }
        }
        through
    }
}

/// The stream's events, each with the time its response arrived.
fn events_of(stream: &WatchStream) -> impl Iterator<Item = (Timestamp, &Event)> {
    stream.responses.iter().flat_map(|response| {
        let events = match &response.kind {
            WatchResponseKind::Events { events, .. } => events.as_slice(),
            _ => &[],
        };
        events.iter().map(move |event| (response.time, event))
    })
}

/// Whether two events record the same change. etcd sets only the key and revision of a
/// delete.
fn same_change(want: &Event, got: &Event) -> bool {
    match want.kind {
        EventKind::Put => got.kind == EventKind::Put && want.kv == got.kv,
        EventKind::Delete => {
            got.kind == EventKind::Delete
                && want.kv.key == got.kv.key
                && want.kv.mod_revision == got.kv.mod_revision
        }
    }
}

fn describe(event: &Event) -> String {
    match event.kind {
        EventKind::Put => format!("put {}", describe_kv(&event.kv)),
        EventKind::Delete => format!(
            "delete {} at revision {}",
            event.kv.key, event.kv.mod_revision
        ),
    }
}

fn describe_prev(event: &Event) -> String {
    event
        .prev_kv
        .as_ref()
        .map_or_else(|| "none".to_owned(), describe_kv)
}
