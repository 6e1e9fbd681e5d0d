//! The operation log: every task the server runs is one `v1.Operation`,
//! stored in `<data>/oplog.sqlite` in Backrest's own schema (version 6, see
//! `migrations/0001_oplog_schema_v6.sql`) plus one index of ours
//! (`migrations/0002_…`, harmless to Backrest), so a Backrest data directory
//! opens unchanged and Backrest can open ours.
//!
//! * Ids are sequential (the counter starts at the highest id ever used).
//! * `modno` is one store-wide counter; every add, update and transform gives
//!   the written operation the next value.
//! * Every write is one SQLite transaction (WAL, `synchronous=NORMAL`), all or
//!   nothing, committed before the call returns, and writes are serialised
//!   (one writer connection), so events go out in commit order.
//! * Reads go through a pool of connections (`read.rs`); WAL checkpoints run
//!   in the background (`checkpoint.rs`).
//! * A write, once started, runs to the end even if the caller is dropped, so
//!   a committed change is never missing its event.
//! * Subscribers ([`OpLog::subscribe`]) see one [`OpEvent`] per add, update
//!   or delete call; transforms emit nothing.

mod checkpoint;
mod query;
mod read;
mod validate;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use prost::Message;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, SqliteConnection, SqlitePool};
use tokio::sync::{Mutex, broadcast};

use crate::pb::v1::{Operation, OperationStatus};

pub use query::{IDS_AND_QUERY, Query};
pub use read::EncodedOperations;
pub use validate::validate;

/// The schema (`PRAGMA user_version`) this code reads and writes.
pub const SCHEMA_VERSION: i64 = 6;
/// Backrest's oplog data-migration version (`oplog_metadata` key `version`)
/// this code expects: the data needs no further migration.
pub const DATA_VERSION: i64 = 6;
/// How many events a subscriber may fall behind before its stream must end
/// (see [`OpLog::subscribe`]).
pub const EVENT_BUFFER: usize = 100;
/// How much of the database file each connection maps into memory
/// (`PRAGMA mmap_size`): room for a log of roughly 300,000 operations; a
/// bigger file is read normally past that point.
const MMAP_BYTES: u64 = 256 * 1024 * 1024;

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
    /// Connections for reads.
    pool: SqlitePool,
    /// Held for the whole of every write.
    writer: Mutex<Writer>,
    events: broadcast::Sender<OpEvent>,
    checkpoints: checkpoint::Checkpoints,
}

/// What writes need, all behind the one writer lock.
struct Writer {
    /// The connection every write uses; `None` once the log is closed. A
    /// connection of its own (not one from the readers' pool) means a write
    /// never waits for a pooled connection or pays the pool's checkout, and
    /// its prepared statements stay cached.
    conn: Option<SqliteConnection>,
    counters: Counters,
    /// `operation_groups` rows known to exist, so that most writes need no
    /// lookup. Only committed rows go in. Nothing here deletes groups (and
    /// Backrest, which tidies unused ones, can't run on the same data
    /// directory at the same time: the lock file), so entries never go stale.
    groups: HashMap<GroupKey, i64>,
}

impl Writer {
    /// The connection with the counters and group cache beside it (borrowed
    /// together, for one write); an error once the log is closed.
    fn parts(
        &mut self,
    ) -> Result<
        (
            &mut SqliteConnection,
            &mut Counters,
            &mut HashMap<GroupKey, i64>,
        ),
        OpLogError,
    > {
        let conn = self
            .conn
            .as_mut()
            .ok_or(OpLogError::Db(sqlx::Error::PoolClosed))?;
        Ok((conn, &mut self.counters, &mut self.groups))
    }
}

/// The tuple an `operation_groups` row stands for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct GroupKey {
    instance_id: String,
    original_instance_keyid: String,
    repo_guid: String,
    repo_id: String,
    plan_id: String,
}

impl GroupKey {
    fn of(op: &Operation) -> GroupKey {
        GroupKey {
            instance_id: op.instance_id.clone(),
            original_instance_keyid: op.original_instance_keyid.clone(),
            repo_guid: op.repo_guid.clone(),
            repo_id: op.repo_id.clone(),
            plan_id: op.plan_id.clone(),
        }
    }
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
            .foreign_keys(false)
            // Reads then copy nothing through SQLite's page cache: a
            // plan's history is ~3x faster to read. The mapping is address
            // space, not memory: pages are only resident once read, and
            // the kernel can drop them (clean, file-backed) at any time.
            .pragma("mmap_size", MMAP_BYTES.to_string());
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            // A local file doesn't go away like a network peer: skip the
            // round trip to the connection's thread that testing costs.
            .test_before_acquire(false)
            // Each connection maps the file on its own, and a full scan
            // (start-up recovery, garbage collection) makes the whole file
            // resident in that mapping: close connections a minute after
            // their last use rather than after sqlx's default ten, so the
            // process's RSS falls back soon after such a burst.
            .idle_timeout(Duration::from_secs(60))
            .connect_with(options.clone())
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
        check_text_encoding(&pool, path).await?;

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

        let writer_conn = options
            .clone()
            // Checkpoints mostly run in the background (see
            // checkpoint.rs), not inside the writes that fill the WAL.
            .pragma(
                "wal_autocheckpoint",
                checkpoint::WAL_PAGES_LIMIT.to_string(),
            )
            .connect()
            .await
            .with_context(|| format!("cannot open {}", path.display()))?;
        let checkpoints = checkpoint::Checkpoints::start(pool.clone());

        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let counters = Counters {
            last_id: max_id.max(seq),
            last_modno,
        };
        tracing::debug!(path = %path.display(), ?counters, "opened the operation log");
        Ok(OpLog {
            inner: Arc::new(Inner {
                pool,
                writer: Mutex::new(Writer {
                    conn: Some(writer_conn),
                    counters,
                    groups: HashMap::new(),
                }),
                events,
                checkpoints,
            }),
        })
    }

    /// Closes the database connections (waits for running queries and the
    /// running write). Later calls fail.
    pub async fn close(&self) {
        self.inner.checkpoints.stop();
        self.inner.pool.close().await;
        let conn = self.inner.writer.lock().await.conn.take();
        if let Some(conn) = conn
            && let Err(e) = conn.close().await
        {
            tracing::warn!("closing the operation log: {e}");
        }
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
        let mut conn = self.inner.pool.acquire().await?;
        read::fetch(&mut conn, q, false).await
    }

    /// The operations `q` selects as they are stored (protobuf bytes), sorted
    /// by id: for GetOperations, which sends them on without decoding.
    pub async fn query_encoded(&self, q: &Query) -> Result<EncodedOperations, OpLogError> {
        let mut conn = self.inner.pool.acquire().await?;
        read::fetch_encoded(&mut conn, q).await
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
        let mut conn = self.inner.pool.acquire().await?;
        read::count(&mut conn, q).await
    }

    /// The last assigned operation id and modno.
    pub async fn last_id_and_modno(&self) -> (i64, i64) {
        let c = self.inner.writer.lock().await.counters;
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
        let mut writer = self.writer.lock().await;
        let (conn, counters, groups) = writer.parts()?;
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

        let known_group = match ops.as_slice() {
            [op] => groups.get(&GroupKey::of(op)).copied(),
            _ => None,
        };
        if let (Some(ogid), [op]) = (known_group, ops.as_slice()) {
            // The common case (a task starting): one statement, which
            // SQLite runs and commits as a transaction of its own.
            insert(conn, op, ogid).await?;
        } else {
            let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
            let mut found = HashMap::new();
            for op in &ops {
                let ogid = group_id(&mut tx, groups, &mut found, op).await?;
                insert(&mut tx, op, ogid).await?;
            }
            tx.commit().await?;
            groups.extend(found);
        }
        self.checkpoints.wrote(ops.len());
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
        let mut writer = self.writer.lock().await;
        let (conn, counters, groups) = writer.parts()?;
        let mut next = *counters;
        for op in &mut ops {
            next.last_modno += 1;
            op.modno = next.last_modno;
            validate(op).map_err(OpLogError::Invalid)?;
        }
        *counters = next;

        let missing = |op: &Operation| {
            OpLogError::NotFound(format!(
                "couldn't update {}: operation does not exist",
                op.id
            ))
        };
        let known_group = match ops.as_slice() {
            [op] => groups.get(&GroupKey::of(op)).copied(),
            _ => None,
        };
        if let (Some(ogid), [op]) = (known_group, ops.as_slice()) {
            // One statement (progress updates of a running task): it
            // changes the one row or, if there is none, nothing.
            if !write_existing(conn, op, ogid).await? {
                return Err(missing(op));
            }
        } else {
            let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
            let mut found = HashMap::new();
            for op in &ops {
                let ogid = group_id(&mut tx, groups, &mut found, op).await?;
                if !write_existing(&mut tx, op, ogid).await? {
                    return Err(missing(op));
                }
            }
            tx.commit().await?;
            groups.extend(found);
        }
        self.checkpoints.wrote(ops.len());
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
        let mut writer = self.writer.lock().await;
        let (conn, _, _) = writer.parts()?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
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
        self.checkpoints.wrote(ids.len());
        let _ = self.events.send(OpEvent::Deleted(ids));
        Ok(deleted)
    }

    async fn transform<F>(&self, q: Query, mut f: F) -> Result<usize, OpLogError>
    where
        F: FnMut(Operation) -> Option<Operation>,
    {
        let mut writer = self.writer.lock().await;
        let (conn, counters, groups) = writer.parts()?;
        let mut next = *counters;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let selected = read::fetch(&mut tx, &q, true).await?;
        let mut found = HashMap::new();
        let mut changed = 0;
        for op in selected {
            let id = op.id;
            let Some(mut op) = f(op) else {
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
            let ogid = group_id(&mut tx, groups, &mut found, &op).await?;
            write_existing(&mut tx, &op, ogid).await?;
            changed += 1;
        }
        *counters = next;
        tx.commit().await?;
        groups.extend(found);
        self.checkpoints.wrote(changed);
        Ok(changed)
    }
}

/// Inserts a new operation's row.
async fn insert(conn: &mut SqliteConnection, op: &Operation, ogid: i64) -> Result<(), sqlx::Error> {
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
    .execute(conn)
    .await?;
    Ok(())
}

/// Rewrites the row of an existing operation; false if there is none.
async fn write_existing(
    conn: &mut SqliteConnection,
    op: &Operation,
    ogid: i64,
) -> Result<bool, sqlx::Error> {
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
/// repo guid, repo id, plan) tuple, created if missing, inside the caller's
/// transaction. Rows looked up or created here go into `found`, for the
/// caller to add to the known ones (`known`) once the transaction commits.
async fn group_id(
    conn: &mut SqliteConnection,
    known: &HashMap<GroupKey, i64>,
    found: &mut HashMap<GroupKey, i64>,
    op: &Operation,
) -> Result<i64, sqlx::Error> {
    let key = GroupKey::of(op);
    if let Some(&ogid) = known.get(&key).or_else(|| found.get(&key)) {
        return Ok(ogid);
    }
    let existing = sqlx::query_scalar!(
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
    let ogid = match existing {
        Some(ogid) => ogid,
        None => sqlx::query!(
            "INSERT INTO operation_groups (instance_id, original_instance_keyid, repo_id, plan_id, repo_guid)
             VALUES (?, ?, ?, ?, ?)",
            op.instance_id,
            op.original_instance_keyid,
            op.repo_id,
            op.plan_id,
            op.repo_guid,
        )
        .execute(&mut *conn)
        .await?
        .last_insert_rowid(),
    };
    found.insert(key, ogid);
    Ok(ogid)
}

fn decode(id: i64, blob: &[u8]) -> Result<Operation, OpLogError> {
    Operation::decode(blob).map_err(|source| OpLogError::Corrupt { id, source })
}

/// The packed reads (see `read.rs`) pass operation blobs through SQLite's
/// text functions, which keep bytes as they are only in a UTF-8 database.
/// Backrest's logs and ours are UTF-8 (SQLite's default); refuse anything
/// else rather than return damaged operations.
async fn check_text_encoding(pool: &SqlitePool, path: &Path) -> anyhow::Result<()> {
    // Runtime-checked: a pragma.
    let encoding: String = sqlx::query_scalar("PRAGMA encoding")
        .fetch_one(pool)
        .await?;
    if encoding != "UTF-8" {
        bail!(
            "{} uses the text encoding {encoding}; the operation log must be UTF-8",
            path.display()
        );
    }
    Ok(())
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
