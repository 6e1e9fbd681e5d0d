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

    /// `SELECT <columns> FROM operations JOIN operation_groups ... WHERE ...
    /// ORDER BY ... LIMIT ... OFFSET ...`. Lists (ids, statuses) are bound as
    /// one JSON array each, so any length works.
    pub(super) fn to_sql(&self, columns: &str) -> QueryBuilder<Sqlite> {
        let mut qb = QueryBuilder::new(format!(
            "SELECT {columns} FROM operations \
             JOIN operation_groups ON operations.ogid = operation_groups.ogid WHERE 1=1"
        ));
        let text_fields = [
            ("operation_groups.instance_id", &self.instance_id),
            (
                "operation_groups.original_instance_keyid",
                &self.original_instance_keyid,
            ),
            ("operation_groups.repo_guid", &self.repo_guid),
            ("operation_groups.repo_id", &self.repo_id),
            ("operation_groups.plan_id", &self.plan_id),
            ("operations.snapshot_id", &self.snapshot_id),
        ];
        for (column, value) in text_fields {
            if let Some(v) = value {
                qb.push(format!(" AND {column} = ")).push_bind(v.clone());
            }
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
        qb.push(if self.reversed {
            " ORDER BY operations.start_time_ms DESC, operations.id DESC"
        } else {
            " ORDER BY operations.start_time_ms ASC, operations.id ASC"
        });
        qb.push(" LIMIT ")
            .push_bind(self.limit.filter(|n| *n >= 0).unwrap_or(-1));
        if let Some(offset) = self.offset.filter(|n| *n > 0) {
            qb.push(" OFFSET ").push_bind(offset);
        }
        qb
    }
}

/// `[1,2,3]`, for `json_each(?)`.
pub(super) fn json_array(values: impl Iterator<Item = i64>) -> String {
    let items: Vec<String> = values.map(|v| v.to_string()).collect();
    format!("[{}]", items.join(","))
}
