//! WAL checkpoints in the background.
//!
//! A write is durable once its transaction is appended to the WAL file
//! (`oplog.sqlite-wal`); a checkpoint later copies the changed pages into the
//! database file and syncs both files. SQLite normally runs that checkpoint
//! inside whichever commit pushes the WAL past 1000 pages, so every ~100th
//! single-operation write would stall for the copy and two fsyncs (on the
//! benchmark machine that halved the insert rate).
//!
//! Here a task runs a PASSIVE checkpoint on a reader connection after every
//! [`OPS_PER_CHECKPOINT`] written operations instead, beside the writes, not
//! inside one. PASSIVE never blocks readers or the writer. Once it has
//! copied everything, the next write starts the WAL file over from its
//! beginning, so with any pause between writes (the normal case) the WAL
//! stays around a thousand pages.
//!
//! Back-to-back writes never leave such a pause: the WAL can only start over
//! when a write begins with every page copied, and the task's copy always
//! trails the newest write. For that case the writer connection keeps
//! SQLite's own checkpoint-on-commit, at [`WAL_PAGES_LIMIT`] pages: by then
//! the task has copied nearly everything, so the write that trips it mostly
//! pays for the fsyncs, and the WAL file is bounded. Closing the last
//! connection checkpoints whatever is left.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use sqlx::SqlitePool;
use tokio::sync::Notify;

/// Roughly SQLite's default threshold of 1000 WAL pages: one operation's
/// write changes about ten pages (its table row and eight index entries).
pub(super) const OPS_PER_CHECKPOINT: usize = 100;

/// The writer connection's `wal_autocheckpoint`: at most ~40 MB of WAL
/// (4 KiB pages) between checkpoints, under back-to-back writes.
pub(super) const WAL_PAGES_LIMIT: u32 = 10_000;

/// The handle the operation log keeps; dropping it ends the task.
pub(super) struct Checkpoints {
    shared: Arc<Shared>,
}

struct Shared {
    /// Operations written since the last checkpoint started.
    written: AtomicUsize,
    wake: Notify,
    stop: AtomicBool,
    /// Checkpoints run so far (for tests).
    #[cfg(test)]
    done: AtomicUsize,
}

impl Checkpoints {
    /// Starts the task (on the current tokio runtime), checkpointing
    /// through `pool`.
    pub(super) fn start(pool: SqlitePool) -> Checkpoints {
        let shared = Arc::new(Shared {
            written: AtomicUsize::new(0),
            wake: Notify::new(),
            stop: AtomicBool::new(false),
            #[cfg(test)]
            done: AtomicUsize::new(0),
        });
        tokio::spawn(run(shared.clone(), pool));
        Checkpoints { shared }
    }

    /// Counts `ops` committed operations; wakes the task when a checkpoint
    /// is due.
    pub(super) fn wrote(&self, ops: usize) {
        let before = self.shared.written.fetch_add(ops, Ordering::Relaxed);
        if before < OPS_PER_CHECKPOINT && before + ops >= OPS_PER_CHECKPOINT {
            self.shared.wake.notify_one();
        }
    }

    /// How many checkpoints the task has run.
    #[cfg(test)]
    pub(super) fn done(&self) -> usize {
        self.shared.done.load(Ordering::Relaxed)
    }

    /// Ends the task (it finishes a running checkpoint first).
    pub(super) fn stop(&self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.wake.notify_one();
    }
}

impl Drop for Checkpoints {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn run(shared: Arc<Shared>, pool: SqlitePool) {
    loop {
        shared.wake.notified().await;
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
        shared.written.store(0, Ordering::Relaxed);
        // Runtime-checked: a pragma. Its row is (busy, WAL pages, pages
        // copied); what it couldn't copy waits for the next round.
        match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(&pool)
            .await
        {
            Ok((_, wal_pages, copied)) => {
                tracing::trace!(wal_pages, copied, "operation log checkpoint")
            }
            Err(sqlx::Error::PoolClosed) => break,
            Err(e) => tracing::warn!("operation log checkpoint failed (will retry): {e}"),
        }
        #[cfg(test)]
        shared.done.fetch_add(1, Ordering::Relaxed);
    }
}
