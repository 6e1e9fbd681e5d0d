//! Reading operations: how a [`Query`] is run and its rows decoded.
//!
//! Two things make reads fast on a large log (see BENCHMARKS.md, "Operation
//! log"):
//!
//! * group fields (plan, repo, instance, ...) are first resolved to the ids
//!   of their `operation_groups` rows, inside one read transaction with the
//!   main statement so both see the same snapshot. With exactly one group
//!   SQLite can walk the (ogid, start_time_ms) index in order and stop after
//!   `limit` entries, instead of collecting and sorting all of the group's;
//! * the selected rows come back packed into a single result row
//!   ([`Query::packed_sql`]): sqlx hands every result row from its worker
//!   thread to the async side one by one, which for ten thousand small rows
//!   costs more than SQLite's own work.

use sqlx::{Connection, Row, SqliteConnection};

use super::query::Groups;
use super::{OpLogError, Query};
use crate::pb::v1::Operation;

/// The operations `q` selects, in its order (start time, then id; descending
/// when reversed). `in_tx`: `conn` is already inside a transaction.
pub(super) async fn fetch(
    conn: &mut SqliteConnection,
    q: &Query,
    in_tx: bool,
) -> Result<Vec<Operation>, OpLogError> {
    select(conn, q, in_tx, |entries, blobs| decode_all(&entries, blobs)).await
}

/// The operations `q` selects as their stored protobuf bytes, sorted by id,
/// without decoding them.
pub(super) async fn fetch_encoded(
    conn: &mut SqliteConnection,
    q: &Query,
) -> Result<EncodedOperations, OpLogError> {
    select(conn, q, false, |mut entries, blobs| {
        entries.sort_unstable_by_key(|e| e.id);
        Ok(EncodedOperations {
            entries,
            blobs: blobs.to_vec(),
        })
    })
    .await
}

/// Runs `q`'s packed statement and hands its rows, in `q`'s order, to
/// `finish` while they still borrow the result.
async fn select<T: Default>(
    conn: &mut SqliteConnection,
    q: &Query,
    in_tx: bool,
    finish: impl FnOnce(Vec<Entry>, &[u8]) -> Result<T, OpLogError>,
) -> Result<T, OpLogError> {
    if !q.filters_groups() {
        return fetch_packed(conn, q, Groups::Any, finish).await;
    }
    if in_tx {
        return fetch_in_groups(conn, q, finish).await;
    }
    let mut tx = conn.begin().await?;
    let selected = fetch_in_groups(&mut tx, q, finish).await?;
    tx.commit().await?;
    Ok(selected)
}

/// How many operations `q` selects, ignoring its limit and offset.
pub(super) async fn count(conn: &mut SqliteConnection, q: &Query) -> Result<i64, OpLogError> {
    if !q.filters_groups() {
        return Ok(q
            .count_sql(Groups::Any)
            .build_query_scalar()
            .fetch_one(conn)
            .await?);
    }
    let mut tx = conn.begin().await?;
    let ogids = group_ids(&mut tx, q).await?;
    let n = if ogids.is_empty() {
        0
    } else {
        q.count_sql(Groups::Only(&ogids))
            .build_query_scalar()
            .fetch_one(&mut *tx)
            .await?
    };
    tx.commit().await?;
    Ok(n)
}

async fn fetch_in_groups<T: Default>(
    conn: &mut SqliteConnection,
    q: &Query,
    finish: impl FnOnce(Vec<Entry>, &[u8]) -> Result<T, OpLogError>,
) -> Result<T, OpLogError> {
    let ogids = group_ids(conn, q).await?;
    if ogids.is_empty() {
        return Ok(T::default());
    }
    fetch_packed(conn, q, Groups::Only(&ogids), finish).await
}

async fn group_ids(conn: &mut SqliteConnection, q: &Query) -> Result<Vec<i64>, OpLogError> {
    Ok(q.groups_sql()
        .build_query_scalar()
        .fetch_all(&mut *conn)
        .await?)
}

async fn fetch_packed<T: Default>(
    conn: &mut SqliteConnection,
    q: &Query,
    groups: Groups<'_>,
    finish: impl FnOnce(Vec<Entry>, &[u8]) -> Result<T, OpLogError>,
) -> Result<T, OpLogError> {
    let row = q.packed_sql(groups).build().fetch_one(&mut *conn).await?;
    let index: Option<&str> = row.try_get(0)?;
    let blobs: Option<&[u8]> = row.try_get(1)?;
    let (Some(index), Some(blobs)) = (index, blobs) else {
        return Ok(T::default());
    };
    let mut entries = unpack_index(index, blobs.len())?;
    if q.reversed {
        entries.sort_unstable_by_key(|e| std::cmp::Reverse((e.start_ms, e.id)));
    } else {
        entries.sort_unstable_by_key(|e| (e.start_ms, e.id));
    }
    finish(entries, blobs)
}

/// Below this many operations per thread, decoding on one thread is faster
/// than starting another (a thread costs tens of µs; an operation ~1 µs).
const DECODE_PER_THREAD_MIN: usize = 2000;

/// Decodes `entries` in order. Large selections (a plan's latest 10,000)
/// are split over up to 4 threads: decoding is a third of such a read.
fn decode_all(entries: &[Entry], blobs: &[u8]) -> Result<Vec<Operation>, OpLogError> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4)
        .min(entries.len() / DECODE_PER_THREAD_MIN)
        .max(1);
    let decode = |part: &[Entry]| -> Result<Vec<Operation>, OpLogError> {
        part.iter()
            .map(|e| super::decode(e.id, &blobs[e.offset..e.offset + e.len]))
            .collect()
    };
    if threads == 1 {
        return decode(entries);
    }
    let mut parts = entries.chunks(entries.len().div_ceil(threads));
    let first = parts.next().unwrap_or_default();
    std::thread::scope(|scope| {
        let others: Vec<_> = parts
            .map(|part| scope.spawn(move || decode(part)))
            .collect();
        let mut ops = Vec::with_capacity(entries.len());
        ops.extend(decode(first)?);
        for other in others {
            let part = other
                .join()
                .map_err(|_| OpLogError::Internal("decoding operations panicked".into()))??;
            ops.extend(part);
        }
        Ok(ops)
    })
}

/// Operations as stored (protobuf bytes), sorted by id: what GetOperations
/// sends on without building the messages (see `api::operation_list`).
#[derive(Debug, Default)]
pub struct EncodedOperations {
    entries: Vec<Entry>,
    blobs: Vec<u8>,
}

impl EncodedOperations {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Each operation's id and stored bytes, by id.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (i64, &[u8])> + '_ {
        self.entries
            .iter()
            .map(|e| (e.id, &self.blobs[e.offset..e.offset + e.len]))
    }

    /// The operations, decoded.
    pub fn decode(&self) -> Result<Vec<Operation>, OpLogError> {
        decode_all(&self.entries, &self.blobs)
    }
}

/// One selected row: where its blob lies in the packed column.
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    id: i64,
    start_ms: i64,
    offset: usize,
    len: usize,
}

/// Parses `"id start length id start length ..."`, checking that the
/// lengths add up to the packed blob's size.
fn unpack_index(index: &str, blobs_len: usize) -> Result<Vec<Entry>, OpLogError> {
    let bad = |why: &str| {
        OpLogError::Internal(format!(
            "the operation log returned a malformed result: {why}"
        ))
    };
    let mut numbers = index.split(' ');
    let mut entries = Vec::with_capacity(index.len() / 24 + 1);
    let mut offset = 0usize;
    while let Some(id) = numbers.next() {
        let (Some(start), Some(len)) = (numbers.next(), numbers.next()) else {
            return Err(bad("incomplete index"));
        };
        let parse = |s: &str| {
            s.parse::<i64>()
                .map_err(|_| bad("a number is not an integer"))
        };
        let (id, start_ms, len) = (parse(id)?, parse(start)?, parse(len)?);
        let len = usize::try_from(len).map_err(|_| bad("negative length"))?;
        entries.push(Entry {
            id,
            start_ms,
            offset,
            len,
        });
        offset += len;
    }
    if offset != blobs_len {
        return Err(bad("lengths don't add up to the data"));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpacks_the_index_and_rejects_malformed_ones() {
        let entries = unpack_index("7 100 3 2 -5 0 9 100 2", 5).unwrap();
        assert_eq!(
            entries,
            [
                Entry {
                    id: 7,
                    start_ms: 100,
                    offset: 0,
                    len: 3
                },
                Entry {
                    id: 2,
                    start_ms: -5,
                    offset: 3,
                    len: 0
                },
                Entry {
                    id: 9,
                    start_ms: 100,
                    offset: 3,
                    len: 2
                },
            ]
        );
        for (index, len) in [("7 100 3", 4), ("7 100", 0), ("7 x 3", 3), ("7 1 -3", 0)] {
            assert!(
                matches!(unpack_index(index, len), Err(OpLogError::Internal(_))),
                "{index:?}"
            );
        }
    }
}
