//! Index snapshots: reconcile the repo's snapshots into
//! OperationIndexSnapshot operations. Idempotent: a snapshot already indexed
//! is left alone; one restic no longer lists is marked forgotten.

use std::collections::{HashMap, HashSet};

use super::convert;
use crate::oplog::Query;
use crate::orchestrator::context::TaskContext;
use crate::orchestrator::task::{TaskError, UNASSOCIATED};
use crate::pb::v1::{self, OperationStatus, operation::Op};

pub async fn run(ctx: &mut TaskContext) -> Result<(), TaskError> {
    let client = ctx.client()?;
    let repo = ctx.repo()?;
    let mut sink = ctx.sink();
    let snapshots = client.snapshots(None, &ctx.cancel, &mut sink).await?;
    let oplog = ctx.orch.oplog().clone();

    let known = oplog.query(&Query::all().repo_guid(&repo.guid)).await?;
    let mut indexed: HashMap<String, v1::Operation> = HashMap::new();
    // Backup operations by snapshot id: their flow and their summary.
    let mut backups: HashMap<String, v1::Operation> = HashMap::new();
    for op in known {
        match &op.op {
            Some(Op::OperationIndexSnapshot(_)) if !op.snapshot_id.is_empty() => {
                indexed.insert(op.snapshot_id.clone(), op);
            }
            Some(Op::OperationBackup(_)) if !op.snapshot_id.is_empty() => {
                backups.insert(op.snapshot_id.clone(), op);
            }
            _ => {}
        }
    }

    let listed: HashSet<&str> = snapshots.iter().map(|s| s.id.as_str()).collect();
    let mut new_ops = Vec::new();
    for snap in &snapshots {
        if snap.id.len() != 64 {
            return Err(TaskError(format!(
                "invalid snapshot from restic: id {:?} is not 64 characters",
                snap.id
            )));
        }
        if let Some(existing) = indexed.get(&snap.id)
            && !matches!(&existing.op, Some(Op::OperationIndexSnapshot(i)) if i.forgot)
        {
            continue;
        }
        let backup = backups.get(&snap.id);
        let summary = backup.and_then(|b| match &b.op {
            Some(Op::OperationBackup(ob)) => {
                match ob.last_status.as_ref().and_then(|s| s.entry.as_ref()) {
                    Some(v1::backup_progress_entry::Entry::Summary(sum)) => Some(sum.clone()),
                    _ => None,
                }
            }
            _ => None,
        });
        let proto = convert::snapshot(snap, summary.as_ref());
        let start = proto.unix_time_ms;
        let duration_ms = proto
            .summary
            .as_ref()
            .map(|s| (s.total_duration * 1000.0) as i64)
            .unwrap_or(0);
        new_ops.push(v1::Operation {
            repo_id: repo.id.clone(),
            repo_guid: repo.guid.clone(),
            plan_id: snap.tag_value("plan:").unwrap_or(UNASSOCIATED).to_string(),
            instance_id: snap
                .tag_value("created-by:")
                .unwrap_or(UNASSOCIATED)
                .to_string(),
            flow_id: backup.map(|b| b.flow_id).unwrap_or(0),
            unix_time_start_ms: if start == 0 {
                chrono::Utc::now().timestamp_millis()
            } else {
                start
            },
            unix_time_end_ms: start + duration_ms,
            status: OperationStatus::StatusSuccess as i32,
            snapshot_id: snap.id.clone(),
            op: Some(Op::OperationIndexSnapshot(v1::OperationIndexSnapshot {
                snapshot: Some(proto),
                forgot: false,
            })),
            ..Default::default()
        });
    }
    if !new_ops.is_empty() {
        ctx.log
            .line(&format!("indexing {} new snapshots", new_ops.len()));
        oplog.add(new_ops).await?;
    }

    let mut gone = Vec::new();
    for (id, mut op) in indexed {
        if listed.contains(id.as_str()) {
            continue;
        }
        if let Some(Op::OperationIndexSnapshot(i)) = op.op.as_mut()
            && !i.forgot
        {
            i.forgot = true;
            gone.push(op);
        }
    }
    if !gone.is_empty() {
        ctx.log
            .line(&format!("marking {} snapshots as forgotten", gone.len()));
        oplog.update(gone).await?;
    }
    Ok(())
}
