//! What the orchestrator runs: a task kind, the repo (and plan) it belongs
//! to, and how its result is reported.

use std::fmt;

/// Priorities: higher runs first among tasks that are due (Backrest's values).
pub mod priority {
    pub const STATS: u32 = 0;
    pub const DEFAULT: u32 = 2;
    pub const FORGET: u32 = 4;
    pub const INDEX_SNAPSHOTS: u32 = 8;
    pub const CHECK: u32 = 16;
    pub const PRUNE: u32 = 32;
    pub const INTERACTIVE: u32 = 64;
}

/// Plan id used for work that belongs to a repo, not a plan.
pub const SYSTEM_PLAN: &str = "_system_";
/// Plan/instance id for snapshots without a `plan:`/`created-by:` tag.
pub const UNASSOCIATED: &str = "_unassociated_";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskKind {
    /// A backup of a plan.
    Backup {
        plan_id: String,
        dry_run: bool,
    },
    /// Reconcile the repo's snapshots into index operations (no op of its own).
    IndexSnapshots,
    /// Apply a plan's retention policy.
    Forget {
        plan_id: String,
    },
    /// Apply the repo's own forget policy.
    RepoForget,
    /// Forget one snapshot.
    ForgetSnapshot {
        plan_id: String,
        snapshot_id: String,
    },
    Prune,
    Check,
    Stats,
    Restore {
        plan_id: String,
        snapshot_id: String,
        path: String,
        target: String,
    },
    /// A user's restic command (RunCommand); runs outside the queue.
    RunCommand {
        command: String,
    },
    /// Delete old operations (no repo, no op).
    CollectGarbage,
}

impl TaskKind {
    /// The metrics/log label (Backrest's task type names).
    pub fn label(&self) -> &'static str {
        match self {
            TaskKind::Backup { .. } => "backup",
            TaskKind::IndexSnapshots => "index_snapshots",
            TaskKind::Forget { .. } => "forget",
            TaskKind::RepoForget => "scheduled_forget",
            TaskKind::ForgetSnapshot { .. } => "forget_snapshot",
            TaskKind::Prune => "prune",
            TaskKind::Check => "check",
            TaskKind::Stats => "stats",
            TaskKind::Restore { .. } => "restore",
            TaskKind::RunCommand { .. } => "run_command",
            TaskKind::CollectGarbage => "collect_garbage",
        }
    }

    /// The plan id recorded on this task's operations.
    pub fn plan_id(&self) -> &str {
        match self {
            TaskKind::Backup { plan_id, .. }
            | TaskKind::Forget { plan_id }
            | TaskKind::ForgetSnapshot { plan_id, .. }
            | TaskKind::Restore { plan_id, .. } => plan_id,
            _ => SYSTEM_PLAN,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Task {
    pub kind: TaskKind,
    /// None only for garbage collection.
    pub repo_id: Option<String>,
    /// Recurring tasks from the config's schedules (re-planned on config
    /// changes); one-off tasks are what users and follow-ups asked for.
    pub scheduled: bool,
    /// Flow to join (0 = the operation starts its own flow).
    pub flow_id: i64,
}

impl Task {
    pub fn oneoff(kind: TaskKind, repo_id: &str) -> Task {
        Task {
            kind,
            repo_id: Some(repo_id.to_string()),
            scheduled: false,
            flow_id: 0,
        }
    }

    pub fn in_flow(mut self, flow_id: i64) -> Task {
        self.flow_id = flow_id;
        self
    }

    pub fn name(&self) -> String {
        let repo = self.repo_id.as_deref().unwrap_or("");
        match &self.kind {
            TaskKind::Backup { plan_id, .. } => format!("backup for plan \"{plan_id}\""),
            TaskKind::IndexSnapshots => format!("index snapshots for repo \"{repo}\""),
            TaskKind::Forget { plan_id } => {
                format!("forget for plan \"{plan_id}\" in repo \"{repo}\"")
            }
            TaskKind::RepoForget => format!("scheduled forget for repo \"{repo}\""),
            TaskKind::ForgetSnapshot {
                plan_id,
                snapshot_id,
            } => {
                format!(
                    "forget snapshot \"{snapshot_id}\" for plan \"{plan_id}\" in repo \"{repo}\""
                )
            }
            TaskKind::Prune => format!("prune repo \"{repo}\""),
            TaskKind::Check => format!("check for repo \"{repo}\""),
            TaskKind::Stats => format!("stats for repo \"{repo}\""),
            TaskKind::Restore { snapshot_id, .. } => {
                format!("restore snapshot \"{snapshot_id}\" in repo \"{repo}\"")
            }
            TaskKind::RunCommand { .. } => format!("run command in repo \"{repo}\""),
            TaskKind::CollectGarbage => "collect garbage".into(),
        }
    }
}

/// How a task ended, as reported to whoever waits for it (the Backup RPC).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// Finished with a warning (partial backup): still a success for callers.
    Warning(String),
    Failed(String),
    Cancelled(String),
}

impl Outcome {
    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Success | Outcome::Warning(_))
    }
}

/// A task's error: what went wrong, in words for the operation's display message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskError(pub String);

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TaskError {}

impl From<String> for TaskError {
    fn from(s: String) -> Self {
        TaskError(s)
    }
}

impl From<&str> for TaskError {
    fn from(s: &str) -> Self {
        TaskError(s.to_string())
    }
}

impl From<crate::restic::ResticError> for TaskError {
    fn from(e: crate::restic::ResticError) -> Self {
        TaskError(e.to_string())
    }
}

impl From<crate::oplog::OpLogError> for TaskError {
    fn from(e: crate::oplog::OpLogError) -> Self {
        TaskError(format!("operation log: {e}"))
    }
}
