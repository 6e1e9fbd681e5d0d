//! The log store: large task outputs (`Operation.logref`, command output),
//! kept in `<data>/tasklogs/` in Backrest's layout.
//!
//! * `logs.sqlite` has one row per log (`logs` table, see
//!   `migrations/logstore/`): its id, expiry, owning operation, and either
//!   `data_fname` (still being written) or `data_gz` (finished, gzipped).
//! * While a [`LogWriter`] is open its bytes go to
//!   `.inprogress/<32 hex>.log`; readers follow that file live until the
//!   writer closes. Closing gzips the file into `data_gz` and removes it.
//! * At open, in-progress files left by a crash are finalised the same way
//!   (or removed when no row names them), and expired logs are deleted;
//!   expired logs are also deleted whenever a log is created.

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use sqlx::SqlitePool;
use sqlx::sqlite::{
    SqliteAutoVacuum, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use tokio::sync::watch;

use crate::sync_ext::LockExt;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/logstore");

const INPROGRESS_DIR: &str = ".inprogress";

#[derive(Debug, thiserror::Error)]
pub enum LogStoreError {
    #[error("log {0} not found")]
    NotFound(String),
    #[error("log {0} already exists")]
    AlreadyExists(String),
    #[error("log store i/o error: {0}")]
    Io(#[from] io::Error),
    #[error("log store database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("log {0} has no data")]
    NoData(String),
}

/// The log store. Cheap to clone; clones share one database pool.
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Inner>,
}

struct Inner {
    inprogress: PathBuf,
    pool: SqlitePool,
    /// Logs being written by this process, for live readers: a flag that
    /// turns true when the writer closes, and whose every update (one per
    /// write) wakes the readers.
    live: Mutex<HashMap<String, watch::Receiver<bool>>>,
}

impl LogStore {
    /// Opens (creating if needed) the store in `dir`, normally
    /// `<data>/tasklogs`.
    pub async fn open(dir: &Path) -> anyhow::Result<LogStore> {
        let inprogress = dir.join(INPROGRESS_DIR);
        std::fs::create_dir_all(&inprogress)
            .with_context(|| format!("cannot create {}", inprogress.display()))?;
        let db = dir.join("logs.sqlite");
        let options = SqliteConnectOptions::new()
            .filename(&db)
            .create_if_missing(true)
            .auto_vacuum(SqliteAutoVacuum::Full)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .with_context(|| format!("cannot open {}", db.display()))?;
        MIGRATOR
            .run(&pool)
            .await
            .with_context(|| format!("cannot apply the log store schema to {}", db.display()))?;

        let store = LogStore {
            inner: Arc::new(Inner {
                inprogress,
                pool,
                live: Mutex::new(HashMap::new()),
            }),
        };
        store.recover().await?;
        store.delete_expired().await?;
        Ok(store)
    }

    /// Finalises in-progress files a previous process left behind.
    async fn recover(&self) -> anyhow::Result<()> {
        for entry in std::fs::read_dir(&self.inner.inprogress)? {
            let entry = entry?;
            if !entry.file_type()?.is_file() {
                continue;
            }
            let fname = entry.file_name().to_string_lossy().into_owned();
            let id = sqlx::query_scalar!("SELECT id FROM logs WHERE data_fname = ?", fname)
                .fetch_optional(&self.inner.pool)
                .await?
                .flatten();
            match id {
                Some(id) => {
                    if let Err(e) = self.inner.finalize(&id, &fname).await {
                        tracing::warn!(
                            "cannot finalise the leftover log file {fname} of log {id}: {e}"
                        );
                        continue;
                    }
                }
                None => {
                    if let Err(e) = std::fs::remove_file(entry.path()) {
                        tracing::warn!("cannot remove the leftover log file {fname}: {e}");
                    }
                }
            }
        }
        Ok(())
    }

    /// Starts a new log owned by operation `owner_op_id` (0 = none), expiring
    /// after `ttl` (`None` = never). Deletes expired logs first. Readers can
    /// follow the log while it is written.
    pub async fn create(
        &self,
        id: &str,
        owner_op_id: i64,
        ttl: Option<Duration>,
    ) -> Result<LogWriter, LogStoreError> {
        self.delete_expired().await?;
        // Registered before the row exists, so a reader that finds the row
        // always knows the log is live.
        let (progress, rx) = watch::channel(false);
        {
            let mut live = self.inner.live.locked();
            if live.contains_key(id) {
                return Err(LogStoreError::AlreadyExists(id.to_string()));
            }
            live.insert(id.to_string(), rx);
        }
        let fname = format!("{}.log", uuid::Uuid::new_v4().simple());
        let path = self.inner.inprogress.join(&fname);
        let file = match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(file) => file,
            Err(e) => {
                self.inner.forget_live(id);
                return Err(e.into());
            }
        };
        let expires = match ttl {
            Some(ttl) => unix_now().saturating_add(ttl.as_secs().try_into().unwrap_or(i64::MAX)),
            None => 0,
        };
        let inserted = sqlx::query!(
            "INSERT INTO logs (id, expiration_ts_unix, owner_opid, data_fname) VALUES (?, ?, ?, ?)",
            id,
            expires,
            owner_op_id,
            fname,
        )
        .execute(&self.inner.pool)
        .await;
        if let Err(e) = inserted {
            let _ = std::fs::remove_file(&path);
            self.inner.forget_live(id);
            return Err(match e {
                sqlx::Error::Database(db) if db.is_unique_violation() => {
                    LogStoreError::AlreadyExists(id.to_string())
                }
                e => e.into(),
            });
        }
        Ok(LogWriter {
            inner: self.inner.clone(),
            id: id.to_string(),
            fname,
            file: Some(file),
            progress,
        })
    }

    /// Opens a log for reading: a finished one from its stored data, one
    /// still being written live (the reader waits for more until the writer
    /// closes). Expired logs count as missing.
    pub async fn reader(&self, id: &str) -> Result<LogReader, LogStoreError> {
        // The writer may finalise between the lookup and opening the file;
        // then the row says so on the next look.
        for _ in 0..3 {
            let row = sqlx::query!(
                r#"SELECT data_fname, data_gz, expiration_ts_unix AS "expires: i64" FROM logs WHERE id = ?"#,
                id
            )
            .fetch_optional(&self.inner.pool)
            .await?;
            let Some(row) = row else {
                return Err(LogStoreError::NotFound(id.to_string()));
            };
            let live = self.inner.live.locked().get(id).cloned();
            if live.is_none() && is_expired(row.expires.unwrap_or(0)) {
                return Err(LogStoreError::NotFound(id.to_string()));
            }
            if let Some(fname) = row.data_fname {
                match File::open(self.inner.inprogress.join(&fname)) {
                    Ok(file) => {
                        return Ok(LogReader {
                            source: Source::File { file, live },
                        });
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            return match row.data_gz {
                Some(gz) => Ok(LogReader {
                    source: Source::Gzip(Box::new(GzDecoder::new(io::Cursor::new(gz)))),
                }),
                None => Err(LogStoreError::NoData(id.to_string())),
            };
        }
        Err(LogStoreError::NoData(id.to_string()))
    }

    /// The whole log; for a live one, waits until its writer closes.
    pub async fn read_all(&self, id: &str) -> Result<Vec<u8>, LogStoreError> {
        let mut reader = self.reader(id).await?;
        let mut out = Vec::new();
        while let Some(chunk) = reader.read_chunk(256 * 1024).await? {
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// Deletes one log; false if there was none.
    pub async fn delete(&self, id: &str) -> Result<bool, LogStoreError> {
        let result = sqlx::query!("DELETE FROM logs WHERE id = ?", id)
            .execute(&self.inner.pool)
            .await?;
        Ok(result.rows_affected() > 0)
    }

    /// Deletes every log owned by operation `op_id`; returns how many.
    pub async fn delete_by_owner(&self, op_id: i64) -> Result<u64, LogStoreError> {
        let result = sqlx::query!("DELETE FROM logs WHERE owner_opid = ?", op_id)
            .execute(&self.inner.pool)
            .await?;
        Ok(result.rows_affected())
    }

    /// Deletes every log owned by any of `op_ids`; returns how many.
    pub async fn delete_by_owners(&self, op_ids: &[i64]) -> Result<u64, LogStoreError> {
        if op_ids.is_empty() {
            return Ok(0);
        }
        let json = serde_json::to_string(op_ids).expect("json of integers");
        let result = sqlx::query!(
            "DELETE FROM logs WHERE owner_opid IN (SELECT value FROM json_each(?))",
            json
        )
        .execute(&self.inner.pool)
        .await?;
        Ok(result.rows_affected())
    }

    /// Deletes every log whose expiry has passed; returns how many.
    pub async fn delete_expired(&self) -> Result<u64, LogStoreError> {
        let now = unix_now();
        let result = sqlx::query!(
            "DELETE FROM logs WHERE expiration_ts_unix != 0 AND expiration_ts_unix < ?",
            now
        )
        .execute(&self.inner.pool)
        .await?;
        Ok(result.rows_affected())
    }

    /// Every log as `(id, owner operation id)`, ordered by owner (for garbage
    /// collection of logs whose operation is gone).
    pub async fn list(&self) -> Result<Vec<(String, i64)>, LogStoreError> {
        let rows =
            sqlx::query!(r#"SELECT id AS "id!", owner_opid FROM logs ORDER BY owner_opid, id"#)
                .fetch_all(&self.inner.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.id, r.owner_opid.unwrap_or(0)))
            .collect())
    }

    /// The ids of the logs owned by operation `op_id`.
    pub async fn find_by_owner(&self, op_id: i64) -> Result<Vec<String>, LogStoreError> {
        let ids = sqlx::query_scalar!(
            r#"SELECT id AS "id!" FROM logs WHERE owner_opid = ? ORDER BY id"#,
            op_id
        )
        .fetch_all(&self.inner.pool)
        .await?;
        Ok(ids)
    }

    /// Closes the database connections.
    pub async fn close(&self) {
        self.inner.pool.close().await;
    }
}

impl Inner {
    /// Gzips an in-progress file into its row and removes the file. A row
    /// deleted meanwhile (log deleted or expired) is not an error.
    async fn finalize(&self, id: &str, fname: &str) -> Result<(), LogStoreError> {
        let path = self.inprogress.join(fname);
        let gz = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || gzip_file(&path))
                .await
                .map_err(|e| io::Error::other(e.to_string()))??
        };
        let result = sqlx::query!(
            "UPDATE logs SET data_fname = NULL, data_gz = ? WHERE id = ? AND data_fname = ?",
            gz,
            id,
            fname,
        )
        .execute(&self.pool)
        .await?;
        if result.rows_affected() == 0 {
            tracing::debug!("log {id} was deleted before it was finished");
        }
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    fn forget_live(&self, id: &str) {
        self.live.locked().remove(id);
    }
}

fn gzip_file(path: &Path) -> io::Result<Vec<u8>> {
    let mut file = File::open(path)?;
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    io::copy(&mut file, &mut encoder)?;
    encoder.finish()
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn is_expired(expires: i64) -> bool {
    expires != 0 && expires < unix_now()
}

/// Writes one log. Bytes are visible to readers as soon as a write returns.
/// Call [`LogWriter::close`] when done; a writer dropped without closing is
/// finalised in the background (or at the next start if there is no runtime).
pub struct LogWriter {
    inner: Arc<Inner>,
    id: String,
    fname: String,
    file: Option<File>,
    progress: watch::Sender<bool>,
}

impl LogWriter {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Appends `data`.
    pub async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.write_sync(data)
    }

    /// Appends `data` without awaiting (for sync callbacks such as process output).
    pub fn write_sync(&mut self, data: &[u8]) -> io::Result<()> {
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("log writer is closed"))?;
        // Local files: small writes to the page cache, fine on an async
        // thread. Unbuffered, so readers see every byte once this returns.
        file.write_all(data)?;
        if !data.is_empty() {
            // Wakes live readers.
            self.progress.send_modify(|_| {});
        }
        Ok(())
    }

    /// Finishes the log: stores it compressed and ends live readers.
    pub async fn close(mut self) -> Result<(), LogStoreError> {
        self.finish().await
    }

    async fn finish(&mut self) -> Result<(), LogStoreError> {
        let Some(file) = self.file.take() else {
            return Ok(());
        };
        drop(file);
        // Readers holding the file read it to its end, then stop.
        self.progress.send_replace(true);
        let result = self.inner.finalize(&self.id, &self.fname).await;
        self.inner.forget_live(&self.id);
        result
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        let Some(file) = self.file.take() else { return };
        drop(file);
        self.progress.send_replace(true);
        let (inner, id, fname) = (self.inner.clone(), self.id.clone(), self.fname.clone());
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    if let Err(e) = inner.finalize(&id, &fname).await {
                        tracing::warn!("cannot finish log {id}: {e}");
                    }
                    inner.forget_live(&id);
                });
            }
            // Finalised by the next LogStore::open.
            Err(_) => inner.forget_live(&id),
        }
    }
}

impl tokio::io::AsyncWrite for LogWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(self.get_mut().write_sync(buf).map(|()| buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Reads one log from the start. See [`LogReader::read_chunk`].
pub struct LogReader {
    source: Source,
}

enum Source {
    Gzip(Box<GzDecoder<io::Cursor<Vec<u8>>>>),
    /// An in-progress file; `live` is set while its writer is open.
    File {
        file: File,
        live: Option<watch::Receiver<bool>>,
    },
}

impl LogReader {
    /// The next bytes (at most `max`), waiting for the writer when a live log
    /// has no more yet. `None` at the end: EOF of a finished log, or EOF after
    /// the writer closed. Cancel-safe: no bytes are lost if the future is
    /// dropped.
    pub async fn read_chunk(&mut self, max: usize) -> io::Result<Option<Vec<u8>>> {
        let mut buf = vec![0u8; max.max(1)];
        match &mut self.source {
            Source::Gzip(decoder) => {
                let n = read_some(decoder.as_mut(), &mut buf)?;
                Ok((n > 0).then(|| {
                    buf.truncate(n);
                    buf
                }))
            }
            Source::File { file, live } => loop {
                // Note the writer's state *before* reading: if it was closed
                // then, whatever the read finds is the whole rest.
                let closed = match live {
                    Some(rx) => *rx.borrow_and_update(),
                    None => true,
                };
                let n = read_some(file, &mut buf)?;
                if n > 0 {
                    buf.truncate(n);
                    return Ok(Some(buf));
                }
                if closed {
                    return Ok(None);
                }
                if let Some(rx) = live
                    && rx.changed().await.is_err()
                {
                    // The writer went away without closing: read what is left.
                    *live = None;
                }
            },
        }
    }

    /// Whether this reader follows a log that is still being written.
    pub fn is_live(&self) -> bool {
        matches!(&self.source, Source::File { live: Some(rx), .. } if !*rx.borrow())
    }
}

/// Reads until `buf` is full or EOF.
fn read_some(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
