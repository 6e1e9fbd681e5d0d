//! The operation log: every task the server runs is one `v1.Operation`,
//! stored in `<data>/oplog.sqlite` in Backrest's own schema (version 6, see
//! `migrations/0001_oplog_schema_v6.sql`), so a Backrest data directory opens
//! unchanged and Backrest can open ours.
//!
//! * Ids are sequential (the counter starts at the highest id ever used).
//! * `modno` is one store-wide counter; every add, update and transform gives
//!   the written operation the next value.
//! * Every write is one SQLite transaction (WAL, `synchronous=NORMAL`), all or
//!   nothing, and writes are serialised, so events go out in commit order.
//! * A write, once started, runs to the end even if the caller is dropped, so
//!   a committed change is never missing its event.
//! * Subscribers ([`OpLog::subscribe`]) see one [`OpEvent`] per add, update
//!   or delete call; transforms emit nothing.

mod query;
mod validate;

#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use prost::Message;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{SqliteConnection, SqlitePool};
use tokio::sync::{Mutex, broadcast};

use crate::pb::v1::{Operation, OperationStatus};

pub use query::{IDS_AND_QUERY, Query};
pub use validate::validate;

/// The schema (`PRAGMA user_version`) this code reads and writes.
pub const SCHEMA_VERSION: i64 = 6;
/// Backrest's oplog data-migration version (`oplog_metadata` key `version`)
/// this code expects: the data needs no further migration.
pub const DATA_VERSION: i64 = 6;
/// How many events a subscriber may fall behind before its stream must end
/// (see [`OpLog::subscribe`]).
pub const EVENT_BUFFER: usize = 100;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum OpLogError {
    /// The request or the operation breaks a rule (e.g. `plan_id is required`).
    #[error("{0}")]
    Invalid(String),
    /// An operation the request names does not exist.
    #[error("{0}")]
    NotFound(String),
    #[error("operation log database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("operation {id} is stored in a form that can't be decoded: {source}")]
    Corrupt {
        id: i64,
        #[source]
        source: prost::DecodeError,
    },
    /// A write task failed unexpectedly (panicked).
    #[error("operation log write failed: {0}")]
    Internal(String),
}

/// A committed change, as sent to subscribers. Operations are full copies.
#[derive(Clone, Debug, PartialEq)]
pub enum OpEvent {
    Created(Vec<Operation>),
    Updated(Vec<Operation>),
    Deleted(Vec<i64>),
}

/// The operation log. Cheap to clone; clones share one database pool.
#[derive(Clone)]
pub struct OpLog {
    inner: Arc<Inner>,
}

struct Inner {
    pool: SqlitePool,
    /// Held for the whole of every write; guards the counters.
    writer: Mutex<Counters>,
    events: broadcast::Sender<OpEvent>,
}

#[derive(Clone, Copy, Debug)]
struct Counters {
    last_id: i64,
    last_modno: i64,
}

impl OpLog {
    /// Opens (creating if needed) the log at `path`, normally
    /// `<data>/oplog.sqlite`. A file written by Backrest with schema 6 is
    /// used as is; other schema or data versions are refused with an
    /// explanation rather than rewritten.
    pub async fn open(path: &Path) -> anyhow::Result<OpLog> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30))
            // Backrest runs without foreign key enforcement; do the same so
            // that a file it wrote behaves identically here.
            .foreign_keys(false);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .with_context(|| format!("cannot open {}", path.display()))?;

        // An existing log (ours or Backrest's) must be at schema and data
        // version 6 already; a new one gets the schema from the migration.
        if check_schema_version(&pool, path).await? {
            check_data_version(&pool, path).await?;
        }
        MIGRATOR
            .run(&pool)
            .await
            .with_context(|| format!("cannot apply the oplog schema to {}", path.display()))?;

        // The highest id ever assigned: sqlite_sequence remembers ids of
        // deleted rows too, so ids are never reused. (Queries on SQLite's
        // internal tables are runtime-checked: the sqlx 0.9.0 macros crash
        // describing them.)
        let max_id = sqlx::query_scalar!(r#"SELECT MAX(id) AS "max_id: i64" FROM operations"#)
            .fetch_one(&pool)
            .await?
            .unwrap_or(0);
        let seq = sqlx::query_scalar::<_, Option<i64>>(
            "SELECT seq FROM sqlite_sequence WHERE name = 'operations'",
        )
        .fetch_optional(&pool)
        .await?
        .flatten()
        .unwrap_or(0);
        // Like Backrest: the modno counter continues from local operations.
        let last_modno = sqlx::query_scalar!(
            r#"SELECT MAX(operations.modno) AS "max_modno: i64" FROM operations
               JOIN operation_groups ON operations.ogid = operation_groups.ogid
               WHERE operation_groups.original_instance_keyid = ''"#
        )
        .fetch_one(&pool)
        .await?
        .unwrap_or(0);

        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let counters = Counters {
            last_id: max_id.max(seq),
            last_modno,
        };
        tracing::debug!(path = %path.display(), ?counters, "opened the operation log");
        Ok(OpLog {
            inner: Arc::new(Inner {
                pool,
                writer: Mutex::new(counters),
                events,
            }),
        })
    }

    /// Closes the database connections (waits for running queries).
    pub async fn close(&self) {
        self.inner.pool.close().await;
    }

    /// A receiver of every later change. The channel holds at least
    /// [`EVENT_BUFFER`] events per receiver (tokio rounds up to a power of
    /// two); a receiver further behind gets `RecvError::Lagged` and must treat
    /// its view as stale (re-query).
    pub fn subscribe(&self) -> broadcast::Receiver<OpEvent> {
        self.inner.events.subscribe()
    }

    /// How many receivers from [`OpLog::subscribe`] are alive.
    pub fn subscriber_count(&self) -> usize {
        self.inner.events.receiver_count()
    }

    /// Stores new operations, in one transaction, and returns them with
    /// `id`, `modno` and (when it was 0) `flow_id = id` assigned. The
    /// operations must not carry an id or modno, and must satisfy
    /// [`validate`]. Emits one [`OpEvent::Created`].
    pub async fn add(&self, ops: Vec<Operation>) -> Result<Vec<Operation>, OpLogError> {
        let inner = self.inner.clone();
        detach(async move { inner.add(ops).await }).await
    }

    /// Replaces existing operations (matched by id), in one transaction, and
    /// returns them with fresh modnos. Fails, changing nothing, if any id does
    /// not exist (`couldn't update <id>: operation does not exist`). Emits one
    /// [`OpEvent::Updated`].
    pub async fn update(&self, ops: Vec<Operation>) -> Result<Vec<Operation>, OpLogError> {
        let inner = self.inner.clone();
        detach(async move { inner.update(ops).await }).await
    }

    /// Deletes operations by id, in one transaction, and returns what was
    /// deleted (ordered by id; duplicates in `ids` count once). Fails,
    /// deleting nothing, if any id does not exist. Emits one
    /// [`OpEvent::Deleted`] (none for an empty `ids`). Deleting the logs the
    /// operations own is the caller's job (see `LogStore::delete_by_owners`).
    pub async fn delete(&self, ids: &[i64]) -> Result<Vec<Operation>, OpLogError> {
        let inner = self.inner.clone();
        let ids = ids.to_vec();
        detach(async move { inner.delete(ids).await }).await
    }

    /// Rewrites the operations `q` selects, in one transaction, without
    /// events (Backrest's `Transform`: startup scrub, data fix-ups). `f` gets
    /// each operation and returns its new version (same id), or `None` to
    /// leave it alone. Every rewritten operation gets a fresh modno. Returns
    /// how many were rewritten; on any error nothing changes.
    pub async fn transform<F>(&self, q: &Query, f: F) -> Result<usize, OpLogError>
    where
        F: FnMut(Operation) -> Option<Operation> + Send + 'static,
    {
        let inner = self.inner.clone();
        let q = q.clone();
        detach(async move { inner.transform(q, f).await }).await
    }

    /// One operation by id.
    pub async fn get(&self, id: i64) -> Result<Option<Operation>, OpLogError> {
        let blob = sqlx::query_scalar!("SELECT operation FROM operations WHERE id = ?", id)
            .fetch_optional(&self.inner.pool)
            .await?;
        blob.map(|b| decode(id, &b)).transpose()
    }

    /// The operations `q` selects, in `q`'s order (start time then id,
    /// ascending unless `q.reversed`).
    pub async fn query(&self, q: &Query) -> Result<Vec<Operation>, OpLogError> {
        let rows: Vec<(i64, Vec<u8>)> = q
            .to_sql("operations.id, operations.operation")
            .build_query_as()
            .fetch_all(&self.inner.pool)
            .await?;
        rows.into_iter()
            .map(|(id, blob)| decode(id, &blob))
            .collect()
    }

    /// Visits the operations `q` selects, in `q`'s order, as their stored
    /// protobuf bytes (with their ids), one row at a time instead of
    /// collecting them: for readers of a few fields of many operations (the
    /// dashboard decodes a slim view and skips the rest). `f` returns
    /// `Break` to stop early.
    pub async fn scan_raw<F>(&self, q: &Query, mut f: F) -> Result<(), OpLogError>
    where
        F: FnMut(i64, &[u8]) -> std::ops::ControlFlow<()>,
    {
        use futures::TryStreamExt;
        use sqlx::Row;
        let mut qb = q.to_sql("operations.id, operations.operation");
        let mut rows = qb.build().fetch(&self.inner.pool);
        while let Some(row) = rows.try_next().await? {
            let id: i64 = row.try_get(0)?;
            let blob: &[u8] = row.try_get(1)?;
            if f(id, blob).is_break() {
                break;
            }
        }
        Ok(())
    }

    /// Every operation whose status is one of `statuses` (e.g. the startup
    /// scrub: PENDING/INPROGRESS/cancelled/UNKNOWN ops), oldest first.
    pub async fn query_by_status(
        &self,
        statuses: &[OperationStatus],
    ) -> Result<Vec<Operation>, OpLogError> {
        self.query(&Query::all().statuses(statuses)).await
    }

    /// How many operations `q` selects (ignores its limit and offset).
    pub async fn count(&self, q: &Query) -> Result<i64, OpLogError> {
        let q = Query {
            limit: None,
            offset: None,
            ..q.clone()
        };
        let n: i64 = q
            .to_sql("COUNT(*)")
            .build_query_scalar()
            .fetch_one(&self.inner.pool)
            .await?;
        Ok(n)
    }

    /// The last assigned operation id and modno.
    pub async fn last_id_and_modno(&self) -> (i64, i64) {
        let c = *self.inner.writer.lock().await;
        (c.last_id, c.last_modno)
    }
}

/// Runs a write on its own task so that it completes (commit and event) even
/// when the caller stops waiting.
async fn detach<T: Send + 'static>(
    fut: impl Future<Output = Result<T, OpLogError>> + Send + 'static,
) -> Result<T, OpLogError> {
    tokio::spawn(fut)
        .await
        .map_err(|e| OpLogError::Internal(e.to_string()))?
}

impl Inner {
    async fn add(&self, mut ops: Vec<Operation>) -> Result<Vec<Operation>, OpLogError> {
        if let Some(op) = ops.iter().find(|op| op.id != 0 || op.modno != 0) {
            return Err(OpLogError::Invalid(format!(
                "cannot add an operation that already has an id or modno (id {}, modno {}): the operation log assigns them",
                op.id, op.modno
            )));
        }
        if ops.is_empty() {
            return Ok(ops);
        }
        let mut counters = self.writer.lock().await;
        let mut next = *counters;
        for op in &mut ops {
            next.last_id += 1;
            next.last_modno += 1;
            op.id = next.last_id;
            op.modno = next.last_modno;
            if op.flow_id == 0 {
                op.flow_id = op.id;
            }
            validate(op).map_err(OpLogError::Invalid)?;
        }
        // From here on the numbers count as used, even if the write fails.
        *counters = next;

        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        for op in &ops {
            let ogid = group_id(&mut tx, op).await?;
            let blob = op.encode_to_vec();
            let status = op.status as i64;
            sqlx::query!(
                "INSERT INTO operations
                   (id, ogid, original_id, original_flow_id, modno, flow_id, start_time_ms, status, snapshot_id, operation)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                op.id,
                ogid,
                op.original_id,
                op.original_flow_id,
                op.modno,
                op.flow_id,
                op.unix_time_start_ms,
                status,
                op.snapshot_id,
                blob,
            )
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        let _ = self.events.send(OpEvent::Created(ops.clone()));
        Ok(ops)
    }

    async fn update(&self, mut ops: Vec<Operation>) -> Result<Vec<Operation>, OpLogError> {
        if ops.iter().any(|op| op.id == 0) {
            return Err(OpLogError::Invalid(
                "cannot update an operation without an id".to_string(),
            ));
        }
        if ops.is_empty() {
            return Ok(ops);
        }
        let mut counters = self.writer.lock().await;
        let mut next = *counters;
        for op in &mut ops {
            next.last_modno += 1;
            op.modno = next.last_modno;
            validate(op).map_err(OpLogError::Invalid)?;
        }
        *counters = next;

        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        for op in &ops {
            if !write_existing(&mut tx, op).await? {
                return Err(OpLogError::NotFound(format!(
                    "couldn't update {}: operation does not exist",
                    op.id
                )));
            }
        }
        tx.commit().await?;
        let _ = self.events.send(OpEvent::Updated(ops.clone()));
        Ok(ops)
    }

    async fn delete(&self, mut ids: Vec<i64>) -> Result<Vec<Operation>, OpLogError> {
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let json = query::json_array(ids.iter().copied());
        let _writer = self.writer.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let rows = sqlx::query!(
            "SELECT id, operation FROM operations WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id",
            json
        )
        .fetch_all(&mut *tx)
        .await?;
        if rows.len() != ids.len() {
            let missing: Vec<String> = ids
                .iter()
                .filter(|id| !rows.iter().any(|r| r.id == **id))
                .map(|id| id.to_string())
                .collect();
            return Err(OpLogError::NotFound(format!(
                "couldn't find all operations to delete: operation does not exist (missing ids: {})",
                missing.join(", ")
            )));
        }
        let mut deleted = Vec::with_capacity(rows.len());
        for row in rows {
            // An undecodable operation is still deleted; it just can't be
            // returned.
            match decode(row.id, &row.operation) {
                Ok(op) => deleted.push(op),
                Err(e) => tracing::warn!("deleting operation {}: {e}", row.id),
            }
        }
        sqlx::query!(
            "DELETE FROM operations WHERE id IN (SELECT value FROM json_each(?))",
            json
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let _ = self.events.send(OpEvent::Deleted(ids));
        Ok(deleted)
    }

    async fn transform<F>(&self, q: Query, mut f: F) -> Result<usize, OpLogError>
    where
        F: FnMut(Operation) -> Option<Operation>,
    {
        let mut counters = self.writer.lock().await;
        let mut next = *counters;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let rows: Vec<(i64, Vec<u8>)> = q
            .to_sql("operations.id, operations.operation")
            .build_query_as()
            .fetch_all(&mut *tx)
            .await?;
        let mut changed = 0;
        for (id, blob) in rows {
            let Some(mut op) = f(decode(id, &blob)?) else {
                continue;
            };
            if op.id != id {
                return Err(OpLogError::Invalid(format!(
                    "transform must not change an operation's id ({id} became {})",
                    op.id
                )));
            }
            next.last_modno += 1;
            op.modno = next.last_modno;
            validate(&op).map_err(OpLogError::Invalid)?;
            write_existing(&mut tx, &op).await?;
            changed += 1;
        }
        *counters = next;
        tx.commit().await?;
        Ok(changed)
    }
}

/// Rewrites the row of an existing operation; false if there is none.
async fn write_existing(conn: &mut SqliteConnection, op: &Operation) -> Result<bool, sqlx::Error> {
    let ogid = group_id(conn, op).await?;
    let blob = op.encode_to_vec();
    let status = op.status as i64;
    let result = sqlx::query!(
        "UPDATE operations SET operation = ?, ogid = ?, start_time_ms = ?, flow_id = ?, snapshot_id = ?,
           modno = ?, original_id = ?, original_flow_id = ?, status = ?
         WHERE id = ?",
        blob,
        ogid,
        op.unix_time_start_ms,
        op.flow_id,
        op.snapshot_id,
        op.modno,
        op.original_id,
        op.original_flow_id,
        status,
        op.id,
    )
    .execute(conn)
    .await?;
    Ok(result.rows_affected() > 0)
}

/// The `operation_groups` row for the op's (instance, original instance,
/// repo guid, repo id, plan) tuple, created if missing.
async fn group_id(conn: &mut SqliteConnection, op: &Operation) -> Result<i64, sqlx::Error> {
    let found = sqlx::query_scalar!(
        "SELECT ogid FROM operation_groups
         WHERE instance_id = ? AND original_instance_keyid = ? AND repo_id = ? AND plan_id = ? AND repo_guid = ?
         LIMIT 1",
        op.instance_id,
        op.original_instance_keyid,
        op.repo_id,
        op.plan_id,
        op.repo_guid,
    )
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(ogid) = found {
        return Ok(ogid);
    }
    let result = sqlx::query!(
        "INSERT INTO operation_groups (instance_id, original_instance_keyid, repo_id, plan_id, repo_guid)
         VALUES (?, ?, ?, ?, ?)",
        op.instance_id,
        op.original_instance_keyid,
        op.repo_id,
        op.plan_id,
        op.repo_guid,
    )
    .execute(&mut *conn)
    .await?;
    Ok(result.last_insert_rowid())
}

fn decode(id: i64, blob: &[u8]) -> Result<Operation, OpLogError> {
    Operation::decode(blob).map_err(|source| OpLogError::Corrupt { id, source })
}

/// Refuses files with another schema: Backrest rebuilds older layouts itself,
/// and a newer one is unknown here. Returns whether the log already exists.
async fn check_schema_version(pool: &SqlitePool, path: &Path) -> anyhow::Result<bool> {
    // Runtime-checked: pragmas and SQLite's own tables can't be described by
    // the sqlx 0.9.0 macros.
    let version: i64 = sqlx::query_scalar("PRAGMA user_version")
        .fetch_one(pool)
        .await?;
    let has_operations = sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'operations'",
    )
    .fetch_one(pool)
    .await?
        > 0;
    if version == SCHEMA_VERSION || (version == 0 && !has_operations) {
        return Ok(has_operations);
    }
    if version > SCHEMA_VERSION {
        bail!(
            "{} has operation log schema version {version}, newer than the version {SCHEMA_VERSION} \
             this server understands (it was written by a newer Backrest)",
            path.display()
        );
    }
    bail!(
        "{} has operation log schema version {version}; this server reads only version {SCHEMA_VERSION}. \
         Start a current Backrest once on this data directory to upgrade it, or move the file away \
         to start with an empty history",
        path.display()
    )
}

/// Backrest's data migrations are not repeated here: the data must already
/// be at the current version.
async fn check_data_version(pool: &SqlitePool, path: &Path) -> anyhow::Result<()> {
    let value = sqlx::query_scalar!("SELECT value FROM oplog_metadata WHERE key = 'version'")
        .fetch_optional(pool)
        .await
        .with_context(|| {
            format!(
                "cannot read the operation log data version of {}",
                path.display()
            )
        })?
        .flatten();
    let version = match value.as_deref().map(<[u8; 8]>::try_from) {
        Some(Ok(bytes)) => i64::from_le_bytes(bytes),
        Some(Err(_)) => bail!(
            "{}: oplog_metadata 'version' is not an 8-byte integer",
            path.display()
        ),
        None => bail!("{}: oplog_metadata has no 'version'", path.display()),
    };
    if version > DATA_VERSION {
        bail!(
            "{} has operation log data version {version}, newer than the version {DATA_VERSION} \
             this server understands (it was written by a newer Backrest)",
            path.display()
        );
    }
    if version < DATA_VERSION {
        bail!(
            "{} has operation log data version {version} and needs Backrest's data migrations \
             (to version {DATA_VERSION}); start a current Backrest once on this data directory",
            path.display()
        );
    }
    Ok(())
}
