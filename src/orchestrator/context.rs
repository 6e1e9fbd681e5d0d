//! What a running task sees: its operation, a live log, the config it runs
//! under, cancellation, and a way to queue follow-up work.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Orchestrator;
use super::task::{Task, TaskError};
use crate::logstore::LogWriter;
use crate::pb::v1;
use crate::restic::RepoClient;
use crate::sync_ext::LockExt;

/// Task logs expire after 14 days, as in Backrest.
pub const TASK_LOG_TTL: Duration = Duration::from_secs(14 * 24 * 3600);

/// A task's live log in the log store (`t-<uuid>`), writable from sync
/// callbacks (restic output lines).
#[derive(Clone, Default)]
pub struct TaskLog(Arc<Mutex<Option<LogWriter>>>);

impl TaskLog {
    pub fn new(w: LogWriter) -> TaskLog {
        TaskLog(Arc::new(Mutex::new(Some(w))))
    }

    pub fn line(&self, text: &str) {
        let mut guard = self.0.locked();
        if let Some(w) = guard.as_mut() {
            let stamp = chrono::Utc::now().format("%H:%M:%S%.3fZ");
            let _ = w.write_sync(format!("{stamp} {text}\n").as_bytes());
        }
    }

    /// Appends a line without a timestamp (command output logs).
    pub fn raw(&self, text: &str) {
        let mut guard = self.0.locked();
        if let Some(w) = guard.as_mut() {
            let _ = w.write_sync(format!("{text}\n").as_bytes());
        }
    }

    pub async fn close(&self) {
        let w = self.0.locked().take();
        if let Some(w) = w
            && let Err(e) = w.close().await
        {
            tracing::warn!("closing task log: {e}");
        }
    }
}

pub struct TaskContext {
    pub orch: Orchestrator,
    pub task: Task,
    /// The task's operation (tasks without one: index snapshots, GC).
    pub op: Option<v1::Operation>,
    pub cancel: CancellationToken,
    pub log: TaskLog,
    /// The config this run started with.
    pub config: Arc<v1::Config>,
    /// Work to queue once this task finishes: (task, priority).
    pub followups: Vec<(Task, u32)>,
    /// Whether the repo's snapshot index was current when this task started
    /// (before a task that changes snapshots marks it stale): the backup
    /// then takes its parent snapshot from the index instead of asking restic.
    pub index_was_current: bool,
    /// Set when a hook failed with a halting policy: how the task must end.
    pub halt: Option<crate::hooks::engine::Halt>,
    /// The task already ran its error hooks (otherwise the orchestrator
    /// fires ANY_ERROR and the kind's error condition when it fails).
    pub error_hooks_done: bool,
}

impl TaskContext {
    pub fn repo_id(&self) -> &str {
        self.task.repo_id.as_deref().unwrap_or("")
    }

    pub fn repo(&self) -> Result<v1::Repo, TaskError> {
        let id = self.repo_id();
        self.config
            .repos
            .iter()
            .find(|r| r.id == id)
            .cloned()
            .ok_or_else(|| {
                TaskError(format!(
                    "repo \"{id}\" not found in the config (was it removed?)"
                ))
            })
    }

    pub fn plan(&self, id: &str) -> Result<v1::Plan, TaskError> {
        self.config
            .plans
            .iter()
            .find(|p| p.id == id)
            .cloned()
            .ok_or_else(|| {
                TaskError(format!(
                    "plan \"{id}\" not found in the config (was it removed?)"
                ))
            })
    }

    /// A restic client for this task's repo.
    pub fn client(&self) -> Result<RepoClient, TaskError> {
        let restic = self.orch.restic().map_err(TaskError)?;
        RepoClient::new(restic, self.repo()?).map_err(TaskError)
    }

    /// A log sink for restic output.
    pub fn sink(&self) -> impl FnMut(&str) + Send + 'static {
        let log = self.log.clone();
        move |line: &str| log.line(line)
    }

    pub fn op_mut(&mut self) -> &mut v1::Operation {
        self.op.as_mut().expect("task has an operation")
    }

    /// Persists the operation (an update event for subscribers).
    pub async fn save_op(&mut self) -> Result<(), TaskError> {
        if let Some(op) = self.op.take() {
            let saved = self.orch.oplog().update(vec![op.clone()]).await;
            match saved {
                Ok(mut v) => self.op = v.pop(),
                Err(e) => {
                    self.op = Some(op);
                    return Err(e.into());
                }
            }
        }
        Ok(())
    }

    pub fn followup(&mut self, task: Task, priority: u32) {
        self.followups.push((task, priority));
    }
}
