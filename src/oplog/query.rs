//! Which operations to read: [`Query`], its mapping from the wire's
//! `OpSelector`, and its SQL.

use sqlx::{QueryBuilder, Sqlite};

use super::OpLogError;
use crate::pb::v1::{OpSelector, OperationStatus};

/// A filter over the operation log plus ordering and paging.
///
/// Every `Some` field must match (an explicitly empty string matches empty
/// values, as on the wire); `None` fields don't filter. The result is ordered
/// by `(unix_time_start_ms, id)`, ascending, or descending when `reversed`;
/// `limit`/`offset` apply after ordering.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query {
    /// Only these ids. `Some(vec![])` matches nothing.
    pub ids: Option<Vec<i64>>,
    pub instance_id: Option<String>,
    /// `""` = operations created here; a peer's key id = synced from it.
    pub original_instance_keyid: Option<String>,
    pub repo_guid: Option<String>,
    /// Not selectable on the wire (Backrest deprecated it), but handy inside
    /// the server, e.g. to find a repo's operations by config id.
    pub repo_id: Option<String>,
    pub plan_id: Option<String>,
    pub snapshot_id: Option<String>,
    pub flow_id: Option<i64>,
    pub original_id: Option<i64>,
    pub original_flow_id: Option<i64>,
    /// `modno >= value`.
    pub modno_gte: Option<i64>,
    /// Only operations with one of these statuses. Empty = any status.
    pub statuses: Vec<OperationStatus>,
    /// Newest first: `unix_time_start_ms DESC, id DESC`.
    pub reversed: bool,
    /// At most this many rows. `None` (or a negative value) = no limit.
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

/// The error message for a selector that mixes `ids` with other fields.
pub const IDS_AND_QUERY: &str =
    "cannot specify both query and ids: an OpSelector with ids must not set any other field";

impl Query {
    /// Every operation.
    pub fn all() -> Query {
        Query::default()
    }

    /// Maps the wire's `OpSelector` (whose fields are all optional). `ids`
    /// can't be combined with any other field; an empty `ids` list doesn't
    /// filter.
    pub fn from_selector(sel: &OpSelector) -> Result<Query, OpLogError> {
        let q = Query {
            instance_id: sel.instance_id.clone(),
            original_instance_keyid: sel.original_instance_keyid.clone(),
            repo_guid: sel.repo_guid.clone(),
            plan_id: sel.plan_id.clone(),
            snapshot_id: sel.snapshot_id.clone(),
            flow_id: sel.flow_id,
            modno_gte: sel.modno_gte,
            ..Query::default()
        };
        if sel.ids.is_empty() {
            return Ok(q);
        }
        if q != Query::default() {
            return Err(OpLogError::Invalid(IDS_AND_QUERY.to_string()));
        }
        Ok(Query {
            ids: Some(sel.ids.clone()),
            ..q
        })
    }

    /// GetOperations' `last_n`: when non-zero, newest first (by start time,
    /// then id) and at most `n` (negative = no limit). Zero changes nothing.
    pub fn last_n(mut self, n: i64) -> Query {
        if n != 0 {
            self.reversed = true;
            self.limit = (n > 0).then_some(n);
        }
        self
    }

    pub fn ids(mut self, ids: impl Into<Vec<i64>>) -> Query {
        self.ids = Some(ids.into());
        self
    }
    pub fn instance_id(mut self, v: impl Into<String>) -> Query {
        self.instance_id = Some(v.into());
        self
    }
    pub fn original_instance_keyid(mut self, v: impl Into<String>) -> Query {
        self.original_instance_keyid = Some(v.into());
        self
    }
    pub fn repo_guid(mut self, v: impl Into<String>) -> Query {
        self.repo_guid = Some(v.into());
        self
    }
    pub fn repo_id(mut self, v: impl Into<String>) -> Query {
        self.repo_id = Some(v.into());
        self
    }
    pub fn plan_id(mut self, v: impl Into<String>) -> Query {
        self.plan_id = Some(v.into());
        self
    }
    pub fn snapshot_id(mut self, v: impl Into<String>) -> Query {
        self.snapshot_id = Some(v.into());
        self
    }
    pub fn flow_id(mut self, v: i64) -> Query {
        self.flow_id = Some(v);
        self
    }
    pub fn modno_gte(mut self, v: i64) -> Query {
        self.modno_gte = Some(v);
        self
    }
    pub fn statuses(mut self, v: impl Into<Vec<OperationStatus>>) -> Query {
        self.statuses = v.into();
        self
    }
    pub fn reversed(mut self) -> Query {
        self.reversed = true;
        self
    }
    pub fn limit(mut self, n: i64) -> Query {
        self.limit = Some(n);
        self
    }

    /// Whether the query filters on a column of `operation_groups` (instance,
    /// original instance, repo guid, repo id, plan).
    pub(super) fn filters_groups(&self) -> bool {
        self.group_fields().iter().any(|(_, v)| v.is_some())
    }

    fn group_fields(&self) -> [(&'static str, &Option<String>); 5] {
        [
            ("instance_id", &self.instance_id),
            ("original_instance_keyid", &self.original_instance_keyid),
            ("repo_guid", &self.repo_guid),
            ("repo_id", &self.repo_id),
            ("plan_id", &self.plan_id),
        ]
    }

    /// `SELECT ogid FROM operation_groups WHERE ...`: the groups the query's
    /// group fields select.
    pub(super) fn groups_sql(&self) -> QueryBuilder<Sqlite> {
        let mut qb = QueryBuilder::new("SELECT ogid FROM operation_groups WHERE 1=1");
        for (column, value) in self.group_fields() {
            if let Some(v) = value {
                qb.push(format!(" AND {column} = ")).push_bind(v.clone());
            }
        }
        qb
    }

    /// `SELECT <columns> FROM operations WHERE ... ORDER BY ... LIMIT ...
    /// OFFSET ...` as one self-contained statement (the group fields become
    /// a subquery on `operation_groups`). Lists (ids, statuses) are bound as
    /// one JSON array each, so any length works.
    pub(super) fn to_sql(&self, columns: &str) -> QueryBuilder<Sqlite> {
        let mut qb = QueryBuilder::new(format!("SELECT {columns} FROM operations WHERE 1=1"));
        self.push_conditions(&mut qb, Groups::Subquery);
        self.push_order_and_limit(&mut qb, Groups::Subquery);
        qb
    }

    /// `SELECT COUNT(*) ...` of the operations in `groups` that match the
    /// other fields, ignoring limit and offset.
    pub(super) fn count_sql(&self, groups: Groups<'_>) -> QueryBuilder<Sqlite> {
        let mut qb = QueryBuilder::new("SELECT COUNT(*) FROM operations WHERE 1=1");
        self.push_conditions(&mut qb, groups);
        qb
    }

    /// The selected operations, in groups `groups`, as ONE row of two
    /// columns, because moving rows from SQLite to async code costs more per
    /// row (a few µs through sqlx's worker thread) than SQLite spends
    /// finding and reading one (see BENCHMARKS.md):
    ///
    /// 0. text, `"id start_time_ms length id start_time_ms length ..."`;
    /// 1. blob, the `operation` blobs of the same rows, concatenated in the
    ///    same order (`length` bytes each). `group_concat` passes blob bytes
    ///    through unchanged in a UTF-8 database (checked on open).
    ///
    /// Both are NULL when nothing matches. The row order is unspecified: the
    /// caller sorts. With a limit or offset, the ids are picked first by a
    /// subquery on indexes alone (ordered, limited), which SQLite runs as a
    /// co-routine feeding the join, so only the picked rows are read (an
    /// `id IN (...)` list would be built into a temporary b-tree first).
    pub(super) fn packed_sql(&self, groups: Groups<'_>) -> QueryBuilder<Sqlite> {
        let mut qb = QueryBuilder::new(
            "SELECT group_concat(operations.id || ' ' || operations.start_time_ms || ' ' \
             || octet_length(operations.operation), ' '), \
             CAST(group_concat(operations.operation, '') AS BLOB) FROM ",
        );
        if self.is_limited() {
            qb.push("(SELECT operations.id AS picked_id FROM operations WHERE 1=1");
            self.push_conditions(&mut qb, groups);
            self.push_order_and_limit(&mut qb, groups);
            qb.push(") AS picked JOIN operations ON operations.id = picked.picked_id");
        } else {
            qb.push("operations WHERE 1=1");
            self.push_conditions(&mut qb, groups);
        }
        qb
    }

    /// Whether limit or offset cut the selection (so its order matters in
    /// SQL, not just in the result).
    pub(super) fn is_limited(&self) -> bool {
        self.limit.is_some_and(|n| n >= 0) || self.offset.is_some_and(|n| n > 0)
    }

    fn push_conditions(&self, qb: &mut QueryBuilder<Sqlite>, groups: Groups<'_>) {
        match groups {
            Groups::Subquery if self.filters_groups() => {
                qb.push(" AND operations.ogid IN (SELECT ogid FROM operation_groups WHERE 1=1");
                for (column, value) in self.group_fields() {
                    if let Some(v) = value {
                        qb.push(format!(" AND operation_groups.{column} = "))
                            .push_bind(v.clone());
                    }
                }
                qb.push(")");
            }
            Groups::Subquery | Groups::Any => {}
            Groups::Only([ogid]) => {
                qb.push(" AND operations.ogid = ").push_bind(*ogid);
            }
            Groups::Only(ogids) => {
                qb.push(" AND operations.ogid IN (SELECT value FROM json_each(")
                    .push_bind(json_array(ogids.iter().copied()))
                    .push("))");
            }
        }
        if let Some(v) = &self.snapshot_id {
            qb.push(" AND operations.snapshot_id = ")
                .push_bind(v.clone());
        }
        let int_fields = [
            ("operations.flow_id = ", self.flow_id),
            ("operations.original_id = ", self.original_id),
            ("operations.original_flow_id = ", self.original_flow_id),
            ("operations.modno >= ", self.modno_gte),
        ];
        for (condition, value) in int_fields {
            if let Some(v) = value {
                qb.push(format!(" AND {condition}")).push_bind(v);
            }
        }
        if let Some(ids) = &self.ids {
            qb.push(" AND operations.id IN (SELECT value FROM json_each(")
                .push_bind(json_array(ids.iter().copied()))
                .push("))");
        }
        if !self.statuses.is_empty() {
            qb.push(" AND operations.status IN (SELECT value FROM json_each(")
                .push_bind(json_array(self.statuses.iter().map(|s| *s as i64)))
                .push("))");
        }
    }

    /// `ORDER BY start_time_ms, id` (descending when reversed), then limit
    /// and offset.
    ///
    /// Without statistics SQLite tends to satisfy ORDER BY ... LIMIT by
    /// walking an index that has the order (operation_start_time_ms, or
    /// the (ogid, start_time_ms) index for one group), testing every row it
    /// passes. That is right when nothing else narrows the search, but when
    /// an index can find the few matching rows directly (several groups,
    /// flow, snapshot, ids, modno) sorting those is far cheaper. Writing
    /// `+start_time_ms` (an expression, not the bare column) stops SQLite
    /// from using an index for the order, so it picks one for the WHERE
    /// clause and sorts the (few) matches.
    fn push_order_and_limit(&self, qb: &mut QueryBuilder<Sqlite>, groups: Groups<'_>) {
        let narrowed = match groups {
            Groups::Subquery => self.filters_groups(),
            Groups::Any => false,
            Groups::Only(ogids) => ogids.len() > 1,
        } || self.flow_id.is_some()
            || self.snapshot_id.is_some()
            || self.ids.is_some()
            || self.modno_gte.is_some();
        let (plus, dir) = (
            if narrowed { "+" } else { "" },
            if self.reversed { "DESC" } else { "ASC" },
        );
        qb.push(format!(
            " ORDER BY {plus}operations.start_time_ms {dir}, {plus}operations.id {dir}"
        ));
        qb.push(" LIMIT ")
            .push_bind(self.limit.filter(|n| *n >= 0).unwrap_or(-1));
        if let Some(offset) = self.offset.filter(|n| *n > 0) {
            qb.push(" OFFSET ").push_bind(offset);
        }
    }
}

/// Which `operation_groups` rows a statement is limited to.
#[derive(Clone, Copy, Debug)]
pub(super) enum Groups<'a> {
    /// The query's group fields, as a subquery in the same statement.
    Subquery,
    /// No limit on groups (the query has no group fields).
    Any,
    /// These groups, resolved beforehand (non-empty).
    Only(&'a [i64]),
}

/// `[1,2,3]`, for `json_each(?)`.
pub(super) fn json_array(values: impl Iterator<Item = i64>) -> String {
    let items: Vec<String> = values.map(|v| v.to_string()).collect();
    format!("[{}]", items.join(","))
}
