//! Garbage collection of old operations (Backrest's limits): operations of
//! a snapshot that still exists are kept; forgotten snapshots' flows go;
//! other kinds keep a bounded, recent history per plan and kind.

use std::collections::{HashMap, HashSet};

use crate::oplog::Query;
use crate::orchestrator::context::TaskContext;
use crate::orchestrator::task::TaskError;
use crate::pb::v1::{self, operation::Op};

struct Limit {
    max_age_days: i64,
    keep_min: usize,
    keep_max: usize,
}

fn limit_for(op: &v1::Operation) -> Limit {
    match op.op {
        Some(Op::OperationStats(_)) => Limit {
            max_age_days: 365,
            keep_min: 1,
            keep_max: 100,
        },
        Some(Op::OperationCheck(_)) | Some(Op::OperationPrune(_)) => Limit {
            max_age_days: 365,
            keep_min: 1,
            keep_max: 12,
        },
        Some(Op::OperationForget(_)) => Limit {
            max_age_days: 30,
            keep_min: 1,
            keep_max: 30,
        },
        _ => Limit {
            max_age_days: 30,
            keep_min: 1,
            keep_max: 100,
        },
    }
}

fn kind_key(op: &v1::Operation) -> u8 {
    match op.op {
        Some(Op::OperationBackup(_)) => 1,
        Some(Op::OperationIndexSnapshot(_)) => 2,
        Some(Op::OperationForget(_)) => 3,
        Some(Op::OperationPrune(_)) => 4,
        Some(Op::OperationRestore(_)) => 5,
        Some(Op::OperationStats(_)) => 6,
        Some(Op::OperationRunHook(_)) => 7,
        Some(Op::OperationCheck(_)) => 8,
        Some(Op::OperationRunCommand(_)) => 9,
        None => 0,
    }
}

/// Which operations to delete, given all of them, the known peers and `now`.
pub fn select(mut ops: Vec<v1::Operation>, known_peers: &HashSet<String>, now_ms: i64) -> Vec<i64> {
    let mut flow_forgot: HashMap<i64, bool> = HashMap::new();
    for op in &ops {
        if let Some(Op::OperationIndexSnapshot(i)) = &op.op {
            let e = flow_forgot.entry(op.flow_id).or_insert(false);
            *e = *e || i.forgot;
        }
    }
    ops.sort_by_key(|o| std::cmp::Reverse((o.unix_time_start_ms, o.id)));
    let mut counts: HashMap<(String, String, String, String, u8), usize> = HashMap::new();
    let mut delete = Vec::new();
    for op in &ops {
        if op.status == v1::OperationStatus::StatusPending as i32
            || op.status == v1::OperationStatus::StatusInprogress as i32
        {
            continue;
        }
        if !op.original_instance_keyid.is_empty()
            && !known_peers.contains(&op.original_instance_keyid)
        {
            delete.push(op.id);
            continue;
        }
        if let Some(forgot) = flow_forgot.get(&op.flow_id) {
            if *forgot {
                delete.push(op.id);
            }
            continue;
        }
        let key = (
            op.repo_guid.clone(),
            op.repo_id.clone(),
            op.plan_id.clone(),
            op.instance_id.clone(),
            kind_key(op),
        );
        let n = counts.entry(key).or_insert(0);
        *n += 1;
        let limit = limit_for(op);
        if *n <= limit.keep_min {
            continue;
        }
        let too_old = now_ms - op.unix_time_start_ms > limit.max_age_days * 24 * 3600 * 1000;
        if *n > limit.keep_max || too_old {
            delete.push(op.id);
        }
    }
    delete
}

pub async fn run(ctx: &mut TaskContext) -> Result<(), TaskError> {
    let oplog = ctx.orch.oplog().clone();
    let all = oplog.query(&Query::all()).await?;
    let peers: HashSet<String> = ctx
        .config
        .multihost
        .as_ref()
        .map(|m| {
            m.authorized_clients
                .iter()
                .map(|p| p.keyid.clone())
                .collect()
        })
        .unwrap_or_default();
    let doomed = select(all, &peers, chrono::Utc::now().timestamp_millis());
    if !doomed.is_empty() {
        tracing::info!(
            "garbage collection: deleting {} old operations",
            doomed.len()
        );
        for chunk in doomed.chunks(500) {
            oplog.delete(chunk).await?;
            ctx.orch
                .logs()
                .delete_by_owners(chunk)
                .await
                .map_err(|e| TaskError(format!("deleting logs: {e}")))?;
        }
    }
    // Logs whose operation is gone.
    let logs = ctx
        .orch
        .logs()
        .list()
        .await
        .map_err(|e| TaskError(format!("listing logs: {e}")))?;
    let owners: Vec<i64> = logs
        .iter()
        .map(|(_, o)| *o)
        .filter(|o| *o != 0)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let mut orphans = Vec::new();
    for owner in owners {
        if oplog.get(owner).await?.is_none() {
            orphans.push(owner);
        }
    }
    if !orphans.is_empty() {
        ctx.orch
            .logs()
            .delete_by_owners(&orphans)
            .await
            .map_err(|e| TaskError(format!("deleting logs: {e}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(id: i64, plan: &str, age_days: i64, kind: Op, flow: i64) -> v1::Operation {
        v1::Operation {
            id,
            flow_id: flow,
            plan_id: plan.into(),
            repo_guid: "g".into(),
            repo_id: "r".into(),
            instance_id: "i".into(),
            status: v1::OperationStatus::StatusSuccess as i32,
            unix_time_start_ms: 1_000_000_000_000 - age_days * 24 * 3600 * 1000,
            op: Some(kind),
            ..Default::default()
        }
    }

    #[test]
    fn keeps_snapshot_flows_and_bounds_the_rest() {
        let now = 1_000_000_000_000;
        let backup = || Op::OperationBackup(Default::default());
        let index = |forgot| {
            Op::OperationIndexSnapshot(v1::OperationIndexSnapshot {
                snapshot: None,
                forgot,
            })
        };
        let mut ops = vec![
            op(1, "p", 400, backup(), 1),
            op(2, "p", 400, index(false), 1), // flow 1 has a live snapshot: kept forever
            op(3, "p", 40, backup(), 3),
            op(4, "p", 40, index(true), 3), // forgotten: flow 3 goes
            op(5, "p", 40, backup(), 5),    // old, no snapshot: over 30 days
            op(6, "p", 1, backup(), 6),     // recent
        ];
        for i in 0..150 {
            ops.push(op(
                100 + i,
                "q",
                0,
                Op::OperationStats(Default::default()),
                100 + i,
            ));
        }
        let mut doomed = select(ops, &HashSet::new(), now);
        doomed.sort();
        let mut expected = vec![3, 4, 5];
        // 150 stats ops: the newest 100 stay (all start at the same time: lowest ids go).
        expected.extend(100..150);
        assert_eq!(doomed, expected);
    }

    #[test]
    fn drops_unknown_peers_and_keeps_the_newest() {
        let mut p = op(1, "p", 0, Op::OperationBackup(Default::default()), 1);
        p.original_instance_keyid = "ed25519.gone".into();
        let solo = op(2, "p", 500, Op::OperationPrune(Default::default()), 2);
        let doomed = select(vec![p, solo], &HashSet::new(), 1_000_000_000_000);
        assert_eq!(doomed, vec![1]);
    }
}
