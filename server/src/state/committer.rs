//! The committer thread: commits the write buffer to sled when it is due, and runs the jobs
//! that must not race with a commit (snapshots, flushes asked for by requests).

use std::sync::{Arc, RwLock};

use crate::error::{Error, Result};
use crate::metrics::{self, METRICS};
use crate::storage::{BufferedBackend, COMMIT_INTERVAL};

use super::{AppliedState, StateStore};

/// The thread that commits the write buffer to sled when it is due: woken by apply when the
/// buffer is big, and every [`COMMIT_INTERVAL`] to commit what has waited that long. It also
/// runs the jobs given to it (snapshots, see [`StateStore::current_snapshot_async`]). The
/// buffer is set aside under the state lock (between applied groups) and written out without
/// it, so applies go on meanwhile. Dropping it stops and joins the thread, so the database
/// is closed once the state store is gone.
pub(super) struct Committer {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    jobs: std::sync::mpsc::Sender<Job>,
}

/// Work run on the committer's thread between commits.
type Job = Box<dyn FnOnce() + Send>;

impl Committer {
    pub(super) fn spawn(
        backend: Arc<BufferedBackend>,
        inner: Arc<RwLock<AppliedState>>,
        failed: tokio::sync::watch::Sender<Option<String>>,
    ) -> Result<Committer> {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let (jobs, queued) = std::sync::mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("state-commit".into())
            .spawn(move || {
                while !stopped.load(std::sync::atomic::Ordering::Acquire) {
                    std::thread::park_timeout(COMMIT_INTERVAL);
                    for job in queued.try_iter() {
                        job();
                    }
                    if !backend.commit_due() {
                        continue;
                    }
                    let commit = {
                        let _between_groups = inner.read().expect("state lock poisoned");
                        backend.begin_commit()
                    };
                    let Some(commit) = commit else { continue };
                    // sled fails every later write once one has failed (out of space, an I/O
                    // error), so the state can no longer be made durable: the member stops,
                    // and restarts from the raft log, which holds everything acknowledged.
                    if let Err(e) = metrics::timed(&METRICS.backend_commit, || commit.finish()) {
                        failed.send_replace(Some(format!(
                            "committing the state's write buffer to sled: {e}"
                        )));
                        return;
                    }
                }
            })?;
        Ok(Committer {
            stop,
            thread: Some(thread),
            jobs,
        })
    }

    /// Runs `job` on the committer's thread, after the commit in progress if any.
    pub(super) fn run(&self, job: Job) -> Result<()> {
        self.jobs.send(job).map_err(|_| Error::Stopped)?;
        self.wake();
        Ok(())
    }

    pub(super) fn wake(&self) {
        if let Some(thread) = &self.thread {
            thread.thread().unpark();
        }
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            // A job may hold the last handle on the store: then the thread is ending itself.
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

impl StateStore {
    /// Runs `job` on the committer thread and waits for its result.
    pub(super) async fn on_committer<T: Send + 'static>(
        self: &Arc<Self>,
        job: impl FnOnce(&StateStore) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let store = self.clone();
        self.committer.run(Box::new(move || {
            let _ = tx.send(job(&store));
        }))?;
        rx.await.map_err(|_| Error::Stopped)?
    }
}
