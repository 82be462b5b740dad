//! Running out of disk, handled before it happens where it can be, and by stopping where it
//! cannot.
//!
//! A loop watches the free space of the filesystems holding the data dir and the WAL. Below
//! [`DISK_RESERVE_BYTES`], the member refuses what would grow its database, with etcd's
//! NOSPACE error, as when its quota is exceeded: reads, deletes and compaction go on, and
//! `/health`, `/readyz` and the metrics say why. Once [`DISK_RESUME_BYTES`] are free again,
//! writes resume on their own (no alarm to disarm: nothing replicated was raised).
//!
//! The reserve is what the member may still need for what it has already accepted: the WAL's
//! next segment (prepared ahead), the state's commits, entries other members replicate to
//! it. Should a write or an fsync fail anyway (the disk filled by something else, or a
//! failing disk), the layer that cannot carry on safely stops the member: see
//! [`EtcdServer::storage_failure`].

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::EtcdServer;

/// Free bytes below which writes that grow the database are refused.
pub const DISK_RESERVE_BYTES: u64 = 64 * 1024 * 1024;
/// Free bytes from which they are taken again.
pub const DISK_RESUME_BYTES: u64 = 96 * 1024 * 1024;
const CHECK_EVERY: Duration = Duration::from_millis(100);

/// The free bytes of the filesystem holding `path`, for an unprivileged process.
fn free_bytes(path: &std::path::Path) -> std::io::Result<u64> {
    let st = rustix::fs::statvfs(path)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

impl EtcdServer {
    /// Whether free disk space is below the reserve (writes that grow the database are
    /// refused).
    pub fn disk_low(&self) -> bool {
        self.disk_low.load(Ordering::Relaxed)
    }

    /// The free bytes of the fullest filesystem the member writes to, as last measured.
    pub fn disk_free(&self) -> u64 {
        self.disk_free.load(Ordering::Relaxed)
    }

    /// Whether a write that grows the database is refused for want of disk space. When free
    /// space was last seen within twice the reserve, it is measured again first (a `statvfs`
    /// per directory, microseconds), so that a burst of writes between two checks of the
    /// loop cannot run past the reserve.
    pub(crate) fn disk_refuses_growth(&self) -> bool {
        if self.disk_free() < 2 * DISK_RESERVE_BYTES {
            self.check_disk();
        }
        self.disk_low()
    }

    /// Measures the free space of the watched directories and updates
    /// [`EtcdServer::disk_low`].
    fn check_disk(&self) {
        let mut free = u64::MAX;
        for dir in self.disk_dirs.get().into_iter().flatten() {
            match free_bytes(dir) {
                Ok(bytes) => free = free.min(bytes),
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot measure free disk space")
                }
            }
        }
        if free == u64::MAX {
            return;
        }
        self.disk_free.store(free, Ordering::Relaxed);
        let was_low = self.disk_low();
        let low = if was_low {
            free < DISK_RESUME_BYTES
        } else {
            free < DISK_RESERVE_BYTES
        };
        if low != was_low {
            self.disk_low.store(low, Ordering::Relaxed);
            match low {
                true => tracing::error!(
                    free,
                    reserve = DISK_RESERVE_BYTES,
                    "disk space low: refusing writes that grow the database until {DISK_RESUME_BYTES} bytes are free"
                ),
                false => tracing::warn!(free, "disk space available again: taking writes"),
            }
        }
    }
}

/// Watches the free space of the filesystems holding `dirs` until the server stops.
pub async fn watch_disk(server: Arc<EtcdServer>, dirs: Vec<PathBuf>) {
    let _ = server.disk_dirs.set(dirs);
    let weak = Arc::downgrade(&server);
    drop(server);
    loop {
        let Some(server) = weak.upgrade() else { return };
        let _ = tokio::task::spawn_blocking(move || server.check_disk()).await;
        tokio::time::sleep(CHECK_EVERY).await;
    }
}
