//! Backup of a plan: `restic backup --json`, progress saved at most once a
//! second, per-file errors, partial backups as warnings, and follow-ups
//! (retention forget, snapshot indexing) in the same flow.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::convert;
use crate::hooks::engine::Extra;
use crate::hooks::engine::SnapshotStats;
use crate::orchestrator::context::TaskContext;
use crate::orchestrator::task::{Task, TaskError, TaskKind, priority};
use crate::pb::v1::{self, OperationStatus, hook::Condition, operation::Op};
use crate::restic::output::BackupEvent;
use crate::restic::repo::BackupArgs;
use crate::restic::{Feature, env};
use crate::sync_ext::LockExt;

/// Errors kept per backup operation (Backrest keeps about 20).
const MAX_RECORDED_ERRORS: usize = 20;

pub const PARTIAL_MESSAGE: &str = "Partial backup, some files may not have been read completely.";
pub const SKIPPED_MESSAGE: &str =
    "No snapshot added, possibly due to no changes in the source data.";
pub const DRY_RUN_MESSAGE: &str = "Dry run backup, not saved in repo";

#[derive(Default)]
struct Progress {
    backup: v1::OperationBackup,
    dirty: bool,
}

pub async fn run(ctx: &mut TaskContext, plan_id: &str, dry_run: bool) -> Result<(), TaskError> {
    let plan = ctx.plan(plan_id)?;
    let client = ctx.client()?;
    let instance = ctx.config.instance.clone();
    ctx.op_mut().op = Some(Op::OperationBackup(v1::OperationBackup {
        dry_run,
        ..Default::default()
    }));
    super::start_hooks(ctx, Condition::SnapshotStart, "snapshot").await?;
    super::auto_unlock(ctx, &client).await?;

    // Every path must exist: restic 0.14 silently skips missing ones.
    let mut paths = Vec::new();
    for p in &plan.paths {
        let abs = std::path::Path::new(p);
        if !abs.is_absolute() {
            return Err(TaskError(format!(
                "path {p:?} is not absolute: plans must use absolute paths"
            )));
        }
        if let Err(e) = tokio::fs::symlink_metadata(abs).await {
            return Err(TaskError(format!("path {p} does not exist: {e}")));
        }
        paths.push(p.clone());
    }
    let mut extra_flags = Vec::new();
    for f in &plan.backup_flags {
        extra_flags
            .extend(env::shell_split(f).map_err(|e| TaskError(format!("backup_flags: {e}")))?);
    }

    // The newest snapshot of this plan (made by this instance) is the parent.
    // When the index is current it knows that snapshot already, which saves
    // a restic process and its repository open (key derivation) per backup.
    let mut sink = ctx.sink();
    let tag_filter = format!("plan:{},created-by:{}", plan.id, instance);
    let mut parent = match ctx.index_was_current {
        true => indexed_parent(ctx, &plan.id, &instance).await,
        false => None,
    };
    let parent_from_index = parent.is_some();
    if parent.is_none() {
        // Part of the backup proper (Backrest looks it up inside its backup
        // call): a failure here is a failed backup, with its error hooks.
        match newest_parent(&client, &tag_filter, ctx, &mut sink).await {
            Ok(p) => parent = p,
            Err(e) => return Err(backup_failed(ctx, e.to_string()).await),
        }
    }

    let native_skip = plan.skip_if_unchanged && client.restic.supports(Feature::SkipIfUnchanged);
    if native_skip && !dry_run {
        extra_flags.push("--skip-if-unchanged".into());
    }
    let mut args = BackupArgs {
        paths,
        excludes: plan.excludes.clone(),
        iexcludes: plan.iexcludes.clone(),
        tags: vec![
            format!("plan:{}", plan.id),
            format!("created-by:{instance}"),
        ],
        parent: parent.as_ref().map(|s| s.id.clone()),
        extra_flags,
        dry_run,
    };

    // Progress goes into a shared record that a saver persists at most once a second.
    let progress = Arc::new(Mutex::new(Progress {
        backup: v1::OperationBackup {
            dry_run,
            ..Default::default()
        },
        dirty: false,
    }));
    let saver = spawn_saver(ctx, progress.clone());
    let mut result = run_restic_backup(&client, &args, ctx, &mut sink, &progress).await;
    if parent_from_index && let (Err(e), Some(p)) = (&result, &args.parent) {
        // Someone else removed the indexed parent (another client's
        // forget): restic refuses an unknown --parent before reading any
        // file, so ask restic for the real parent and run again.
        if e.to_string().contains(&format!("invalid id \"{p}\"")) {
            ctx.log.line(&format!(
                    "parent snapshot {p} from the index no longer exists; looking it up in the repository"
                ));
            parent = newest_parent(&client, &tag_filter, ctx, &mut sink).await?;
            args.parent = parent.as_ref().map(|s| s.id.clone());
            result = run_restic_backup(&client, &args, ctx, &mut sink, &progress).await;
        }
    }
    saver.abort();
    let backup = std::mem::take(&mut progress.locked().backup);
    ctx.op_mut().op = Some(Op::OperationBackup(backup));

    let result = match result {
        Ok(r) => r,
        Err(e) => return Err(backup_failed(ctx, e.to_string()).await),
    };

    let summary = result.summary;
    let mut snapshot_id = String::new();
    if let Some(short) = summary.snapshot_id.as_deref().filter(|s| !s.is_empty())
        && !dry_run
    {
        // restic < 0.15 prints an 8-character id; the API carries full ids.
        snapshot_id = client.resolve_snapshot_id(short, &ctx.cancel).await?;
    }

    // --skip-if-unchanged where restic can't: compare the new tree with the parent's.
    let mut skipped = false;
    if plan.skip_if_unchanged
        && !native_skip
        && !dry_run
        && !snapshot_id.is_empty()
        && let Some(parent) = &parent
    {
        let unchanged =
            summary.files_new + summary.files_changed + summary.dirs_new + summary.dirs_changed
                == 0;
        if unchanged {
            let snaps = client
                .snapshots(Some(&tag_filter), &ctx.cancel, &mut sink)
                .await?;
            let new_tree = snaps
                .iter()
                .find(|s| s.id == snapshot_id)
                .map(|s| s.tree.clone());
            if new_tree.as_deref() == Some(parent.tree.as_str()) {
                ctx.log.line(&format!(
                        "snapshot {snapshot_id} has the same tree as {}: forgetting it (skip_if_unchanged; restic {} has no --skip-if-unchanged)",
                        parent.id, client.restic.version
                    ));
                client
                    .forget_snapshots(std::slice::from_ref(&snapshot_id), &ctx.cancel, &mut sink)
                    .await?;
                snapshot_id.clear();
                skipped = true;
            }
        }
    }
    if native_skip && !dry_run && snapshot_id.is_empty() {
        skipped = true;
    }

    let pb_summary = convert::summary_entry(&summary, &snapshot_id);
    // The end hooks see the summary, and the partial-backup text as `.Error`.
    let mut extra = Extra {
        snapshot_id: snapshot_id.clone(),
        snapshot_stats: Some(SnapshotStats::from_summary(&pb_summary)),
        error: String::new(),
    };
    let op = ctx.op_mut();
    if let Some(Op::OperationBackup(b)) = op.op.as_mut() {
        if result.partial {
            extra.error = format!(
                "partial backup, {} files may not have been read completely.",
                b.errors.len()
            );
        }
        b.last_status = Some(v1::BackupProgressEntry {
            entry: Some(v1::backup_progress_entry::Entry::Summary(pb_summary)),
        });
    }
    op.snapshot_id = snapshot_id.clone();
    let mut events = Vec::new();
    if dry_run {
        op.display_message = DRY_RUN_MESSAGE.into();
        op.snapshot_id.clear();
    } else {
        if result.partial {
            op.status = OperationStatus::StatusWarning as i32;
            op.display_message = PARTIAL_MESSAGE.into();
        }
        if skipped {
            op.display_message = SKIPPED_MESSAGE.into();
            events.push(Condition::SnapshotSkipped);
        }
    }
    events.push(match result.partial && !dry_run {
        true => Condition::SnapshotWarning,
        false => Condition::SnapshotSuccess,
    });
    events.push(Condition::SnapshotEnd);
    if !dry_run && !skipped && !snapshot_id.is_empty() {
        let flow = op.flow_id;
        let repo_id = ctx.repo_id().to_string();
        let repo = ctx.repo()?;
        let repo_forget_scheduled = crate::config::validate::schedule_enabled(
            repo.forget_policy
                .as_ref()
                .and_then(|f| f.schedule.as_ref()),
        );
        let keep_all = matches!(
            plan.retention.as_ref().and_then(|r| r.policy.as_ref()),
            Some(v1::retention_policy::Policy::PolicyKeepAll(_))
        );
        if plan.retention.as_ref().is_some_and(|r| r.policy.is_some())
            && !keep_all
            && !repo_forget_scheduled
        {
            ctx.followup(
                Task::oneoff(
                    TaskKind::Forget {
                        plan_id: plan.id.clone(),
                    },
                    &repo_id,
                )
                .in_flow(flow),
                priority::FORGET,
            );
        }
        ctx.followup(
            Task::oneoff(TaskKind::IndexSnapshots, &repo_id),
            priority::INDEX_SNAPSHOTS,
        );
    }
    super::end_hooks(ctx, &events, extra, "snapshot").await
}

/// A failure of restic during the backup: SNAPSHOT_ERROR, ANY_ERROR and
/// SNAPSHOT_END hooks, in Backrest's order, then the task's error.
async fn backup_failed(ctx: &mut TaskContext, restic_error: String) -> TaskError {
    let err = TaskError(format!("failed to backup: {restic_error}"));
    let events = [
        Condition::SnapshotError,
        Condition::AnyError,
        Condition::SnapshotEnd,
    ];
    super::error_hooks(ctx, &events, Extra::error(&err.0), err).await
}

/// The parent snapshot of a backup: what `--parent` and the emulated
/// skip-if-unchanged need.
struct Parent {
    id: String,
    tree: String,
}

/// The plan's newest snapshot made by this instance, asked of restic.
async fn newest_parent(
    client: &crate::restic::repo::RepoClient,
    tag_filter: &str,
    ctx: &TaskContext,
    sink: &mut (dyn FnMut(&str) + Send),
) -> Result<Option<Parent>, crate::restic::ResticError> {
    let list = client
        .snapshots(Some(tag_filter), &ctx.cancel, sink)
        .await?;
    Ok(list.last().map(|s| Parent {
        id: s.id.clone(),
        tree: s.tree.clone(),
    }))
}

/// The plan's newest snapshot made by this instance, from the snapshot index
/// (callers use it only when the index was current). `None` when the index
/// holds none, and the caller asks restic.
async fn indexed_parent(ctx: &TaskContext, plan_id: &str, instance: &str) -> Option<Parent> {
    let guid = ctx.repo().ok()?.guid;
    if guid.is_empty() {
        return None;
    }
    // Each backup adds a handful of operations (backup, index, forget,
    // hooks); the newest 200 always contain the newest indexed snapshot
    // unless the plan has hundreds of operations without a snapshot, where
    // the restic lookup is the right answer anyway.
    let q = crate::oplog::Query::all()
        .repo_guid(guid)
        .plan_id(plan_id)
        .instance_id(instance)
        .last_n(200);
    let ops = ctx.orch.oplog().query(&q).await.ok()?;
    ops.into_iter()
        .filter_map(|op| match op.op {
            Some(Op::OperationIndexSnapshot(i)) if !i.forgot => i.snapshot,
            _ => None,
        })
        .filter(|s| s.id.len() == 64 && !s.tree.is_empty())
        .max_by_key(|s| s.unix_time_ms)
        .map(|s| Parent {
            id: s.id,
            tree: s.tree,
        })
}

/// One `restic backup`, feeding progress and per-file errors into `progress`.
async fn run_restic_backup(
    client: &crate::restic::repo::RepoClient,
    args: &BackupArgs,
    ctx: &TaskContext,
    sink: &mut (dyn FnMut(&str) + Send),
    progress: &Arc<Mutex<Progress>>,
) -> Result<crate::restic::repo::BackupResult, crate::restic::ResticError> {
    let p2 = progress.clone();
    client
        .backup(args, &ctx.cancel, sink, move |ev| {
            let mut p = p2.locked();
            match ev {
                BackupEvent::Status(s) if s.action.is_none() => {
                    let previous =
                        match p.backup.last_status.as_ref().and_then(|e| e.entry.as_ref()) {
                            Some(v1::backup_progress_entry::Entry::Status(st)) => {
                                st.current_file.clone()
                            }
                            _ => vec![],
                        };
                    p.backup.last_status = Some(v1::BackupProgressEntry {
                        entry: Some(v1::backup_progress_entry::Entry::Status(
                            convert::status_entry(s, &previous),
                        )),
                    });
                    p.dirty = true;
                }
                BackupEvent::Error(e)
                    if p.backup.errors.len() <= MAX_RECORDED_ERRORS
                        && !p.backup.errors.iter().any(|x| x.item == e.item) =>
                {
                    p.backup.errors.push(v1::BackupProgressError {
                        item: e.item.clone(),
                        during: e.during.clone(),
                        message: e.message(),
                    });
                    p.dirty = true;
                }
                _ => {}
            }
        })
        .await
}

/// Persists the operation with the latest progress at most once a second.
fn spawn_saver(ctx: &TaskContext, progress: Arc<Mutex<Progress>>) -> tokio::task::JoinHandle<()> {
    let oplog = ctx.orch.oplog().clone();
    let base = ctx.op.clone();
    tokio::spawn(async move {
        let Some(mut op) = base else { return };
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        loop {
            tick.tick().await;
            let snapshot = {
                let mut p = progress.locked();
                if !p.dirty {
                    continue;
                }
                p.dirty = false;
                p.backup.clone()
            };
            op.op = Some(Op::OperationBackup(snapshot));
            if let Ok(mut v) = oplog.update(vec![op.clone()]).await
                && let Some(saved) = v.pop()
            {
                op = saved;
            }
        }
    })
}
