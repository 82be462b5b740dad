//! The `watch` workload: many watchers on one key, writers putting that key, and the delay
//! from each put's acknowledgement to each watcher's receipt of its event.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{KvClient, WatchRequestSender, WatchResponseStream};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::cli::{Common, WatchArgs};
use crate::driver::{self, Budget, Measurement, Worker};
use crate::error::Error;
use crate::keys::value;
use crate::pool::Pool;
use crate::report::{Percentiles, Summary};

/// When each acknowledged put was sent and acknowledged, by the revision it created.
type PutTimes = Arc<Mutex<HashMap<i64, (Instant, Instant)>>>;

/// Puts the watched key and notes when.
struct Writer {
    kv: KvClient,
    key: Vec<u8>,
    value: Vec<u8>,
    puts: PutTimes,
}

impl Worker for Writer {
    async fn request(&mut self, _seq: u64) -> Result<(), etcd_client::Error> {
        let sent = Instant::now();
        let response = self
            .kv
            .put(self.key.clone(), self.value.clone(), None)
            .await?;
        let acked = Instant::now();
        if let Some(header) = response.header() {
            self.puts
                .lock()
                .expect("not poisoned")
                .insert(header.revision(), (sent, acked));
        }
        Ok(())
    }
}

/// What one stream's reader saw: (revision, receipt time) per event, and the error that
/// ended the stream early, if one did.
struct Receipts {
    events: Vec<(i64, Instant)>,
    error: Option<String>,
}

pub async fn watch(common: &Common, args: &WatchArgs) -> Result<Summary, Error> {
    let pool = Pool::connect(common).await?;
    let setup = Instant::now();
    let received = Arc::new(AtomicU64::new(0));
    let (stop, stopped) = watch::channel(false);
    let mut readers = Vec::new();
    for stream in 0..args.streams.min(args.watchers) {
        let watchers =
            args.watchers / args.streams + usize::from(stream < args.watchers % args.streams);
        let (sender, responses) = open_stream(&pool, stream, &args.key, watchers).await?;
        readers.push(pool.loop_of(stream).spawn(read_events(
            sender,
            responses,
            received.clone(),
            stopped.clone(),
        )));
    }
    let setup_s = setup.elapsed().as_secs_f64();

    // The writers get a connection of their own, so that their acks do not queue behind
    // the events the watch streams deliver.
    let writer_pool = Pool::connect(&Common {
        conns: 1,
        ..common.clone()
    })
    .await?;
    let puts: PutTimes = Arc::default();
    let value = value(args.val_size);
    let writers = (0..common.clients.max(1))
        .map(|_| Writer {
            kv: writer_pool.client(0).kv_client(),
            key: args.key.clone().into_bytes(),
            value: value.clone(),
            puts: puts.clone(),
        })
        .collect();
    let written = driver::run(
        writers,
        Budget::from_common(common),
        "watch",
        writer_pool.loops(),
    )
    .await;

    let expected = written.ok * args.watchers as u64;
    let drain_deadline = Instant::now() + args.drain_timeout;
    while received.load(Ordering::Relaxed) < expected && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = stop.send(true);
    let mut receipts = Vec::new();
    for reader in readers {
        receipts.push(
            reader
                .await
                .map_err(|e| Error::Cluster(format!("watch reader: {e}")))?,
        );
    }
    let puts = std::mem::take(&mut *puts.lock().expect("not poisoned"));
    Ok(summarize(
        common, args, &pool, &written, &puts, &receipts, expected, setup_s,
    ))
}

/// Opens one watch stream on connection `stream` with `watchers` watchers of `key`, and
/// waits until the server has created them all.
async fn open_stream(
    pool: &Pool,
    stream: usize,
    key: &str,
    watchers: usize,
) -> Result<(WatchRequestSender, WatchResponseStream), Error> {
    let mut watch = pool.client(stream).watch_client().watch(key, None).await?;
    for _ in 1..watchers {
        watch.watch(key, None).await?;
    }
    let mut created = 0;
    while created < watchers {
        match watch.message().await? {
            Some(response) if response.created() => created += 1,
            Some(response) if response.canceled() => {
                return Err(Error::Cluster(format!(
                    "watch refused: {}",
                    response.cancel_reason()
                )));
            }
            Some(_) => {}
            None => {
                return Err(Error::Cluster(
                    "watch stream closed while creating watchers".into(),
                ));
            }
        }
    }
    Ok(watch.split())
}

/// Notes every event's receipt until told to stop. Holds `_sender` because closing the
/// request side would end the stream.
async fn read_events(
    _sender: WatchRequestSender,
    mut responses: WatchResponseStream,
    received: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
) -> Receipts {
    let mut receipts = Receipts {
        events: Vec::new(),
        error: None,
    };
    loop {
        tokio::select! {
            _ = stop.changed() => return receipts,
            message = responses.message() => match message {
                Ok(Some(response)) => {
                    let now = Instant::now();
                    for event in response.events() {
                        if let Some(kv) = event.kv() {
                            receipts.events.push((kv.mod_revision(), now));
                        }
                    }
                    received.fetch_add(response.events().len() as u64, Ordering::Relaxed);
                }
                Ok(None) => {
                    receipts.error = Some("watch stream ended".into());
                    return receipts;
                }
                Err(e) => {
                    receipts.error = Some(e.to_string());
                    return receipts;
                }
            }
        }
    }
}

/// Delivery latency from ack (the summary's percentiles) and from send (an extra), events
/// missed as errors, events per second as throughput.
#[allow(clippy::too_many_arguments)]
fn summarize(
    common: &Common,
    args: &WatchArgs,
    pool: &Pool,
    written: &Measurement,
    puts: &HashMap<i64, (Instant, Instant)>,
    receipts: &[Receipts],
    expected: u64,
    setup_s: f64,
) -> Summary {
    let mut from_ack = Measurement::new();
    let mut from_send = Measurement::new();
    let mut before_ack = 0u64;
    for (revision, at) in receipts.iter().flat_map(|r| r.events.iter()) {
        if let Some((sent, acked)) = puts.get(revision) {
            from_ack.record(at.saturating_duration_since(*acked));
            from_send.record(at.saturating_duration_since(*sent));
            before_ack += u64::from(at < acked);
        }
    }
    from_ack.elapsed = written.elapsed;
    for error in receipts.iter().filter_map(|r| r.error.clone()) {
        from_ack.record_error(error);
    }
    from_ack.errors += written.errors;
    for (message, count) in &written.error_kinds {
        from_ack
            .error_kinds
            .insert(format!("put: {message}"), *count);
    }
    let missed = expected.saturating_sub(from_ack.ok);
    if missed > 0 {
        from_ack.errors += missed;
        from_ack
            .error_kinds
            .insert("events not delivered".into(), missed);
    }
    let put = Percentiles::of(written);
    let send = Percentiles::of(&from_send);
    Summary::new(
        "watch",
        &pool.endpoints,
        pool.conns(),
        common.clients.max(1),
        &from_ack,
    )
    .with_extra("watchers", args.watchers as f64)
    .with_extra("streams", args.streams.min(args.watchers) as f64)
    .with_extra("setup_s", setup_s)
    .with_extra("puts", written.ok as f64)
    .with_extra("put_p99_ms", put.p99)
    .with_extra("events_missed", missed as f64)
    .with_extra(
        "before_ack_fraction",
        before_ack as f64 / from_ack.ok.max(1) as f64,
    )
    .with_extra("from_send_p50_ms", send.p50)
    .with_extra("from_send_p99_ms", send.p99)
}
