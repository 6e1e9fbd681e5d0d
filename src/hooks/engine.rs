//! The hook engine: which hooks a task event fires, running them one after
//! another inside the task, recording each as an `OperationRunHook`
//! operation in the task's flow, and turning a failure into the parent
//! task's fate according to the hook's `onError` policy.
//!
//! Semantics follow Backrest (reference §10.1–§10.4): for an ordered list of
//! events, every hook of the repo (config order) and then of the plan fires
//! at most once, for the first event of the list it subscribes to; hooks run
//! inline and sequentially; a failing hook with a halting policy (cancel,
//! fatal, retry) skips the remaining hooks and is returned to the task.

use std::time::Duration;

use chrono::Utc;

use super::actions::{self, ActionEnv};
pub use super::vars::SnapshotStats;
use super::vars::{self, HookVars};
use crate::orchestrator::context::{TASK_LOG_TTL, TaskContext, TaskLog};
use crate::pb::v1::{self, OperationStatus, hook, operation::Op};

/// What a failed hook asks of its parent task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Halt {
    /// ON_ERROR_CANCEL: the parent ends as USER_CANCELLED.
    Cancel,
    /// ON_ERROR_FATAL: the parent fails.
    Fatal,
    /// ON_ERROR_RETRY_*: the parent goes back to PENDING and runs again later.
    Retry(RetryPolicy),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryPolicy {
    OneMinute,
    TenMinutes,
    /// 10 s × 2^(attempt−1), at most one hour.
    ExponentialBackoff,
}

impl RetryPolicy {
    /// The wait before retry number `attempt` (1 = the first retry).
    pub fn delay(self, attempt: u32) -> Duration {
        match self {
            RetryPolicy::OneMinute => Duration::from_secs(60),
            RetryPolicy::TenMinutes => Duration::from_secs(600),
            RetryPolicy::ExponentialBackoff => {
                let hour = Duration::from_secs(3600);
                if attempt == 0 || attempt > 32 {
                    return hour;
                }
                Duration::from_secs(10 * (1u64 << (attempt - 1))).min(hour)
            }
        }
    }
}

/// A duration as Go prints it (`1m0s`, `10s`, `1h0m0s`, `1.5s`), for
/// messages Backrest users know.
pub fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let secs = match rest % 1000 {
        0 => format!("{}s", rest / 1000),
        frac => format!(
            "{}.{}s",
            rest / 1000,
            format!("{frac:03}").trim_end_matches('0')
        ),
    };
    match (h, m) {
        (0, 0) => secs,
        (0, m) => format!("{m}m{secs}"),
        (h, m) => format!("{h}h{m}m{secs}"),
    }
}

/// A hook failure that stops the parent task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookError {
    /// `run hook <title>: <policy>: <what failed>`, for the parent's message.
    pub message: String,
    pub halt: Halt,
}

/// The event-specific variables a task passes to its hooks; the engine adds
/// the task, repo, plan, time and duration.
#[derive(Clone, Debug, Default)]
pub struct Extra {
    pub snapshot_id: String,
    pub snapshot_stats: Option<SnapshotStats>,
    pub error: String,
}

impl Extra {
    pub fn error(text: impl Into<String>) -> Extra {
        Extra {
            error: text.into(),
            ..Default::default()
        }
    }
}

/// The hooks that `events` fire for a task of `repo_id`/`plan_id`: (title
/// suffix, hook, matched event), repo hooks first.
pub fn triggered<'a>(
    cfg: &'a v1::Config,
    repo_id: &str,
    plan_id: &str,
    events: &[hook::Condition],
) -> Vec<(String, &'a v1::Hook, hook::Condition)> {
    let first_match = |h: &v1::Hook| {
        events
            .iter()
            .copied()
            .find(|e| h.conditions.contains(&(*e as i32)))
    };
    let mut out = Vec::new();
    if let Some(repo) = cfg.repos.iter().find(|r| r.id == repo_id) {
        for (i, h) in repo.hooks.iter().enumerate() {
            if let Some(e) = first_match(h) {
                out.push((format!("repo/{}/hook/{i}", repo.id), h, e));
            }
        }
    }
    if let Some(plan) = cfg.plans.iter().find(|p| p.id == plan_id) {
        for (i, h) in plan.hooks.iter().enumerate() {
            if let Some(e) = first_match(h) {
                out.push((format!("plan/{}/hook/{i}", plan.id), h, e));
            }
        }
    }
    out
}

/// Runs the hooks `events` fire for the task of `ctx`. `Err` only for a
/// halting failure; other failures are recorded on the hook's operation.
pub async fn execute(
    ctx: &TaskContext,
    events: &[hook::Condition],
    extra: Extra,
) -> Result<(), HookError> {
    let plan_id = ctx.task.kind.plan_id().to_string();
    let hooks = triggered(&ctx.config, ctx.repo_id(), &plan_id, events);
    if hooks.is_empty() {
        return Ok(());
    }
    let repo = ctx
        .config
        .repos
        .iter()
        .find(|r| r.id == ctx.repo_id())
        .cloned();
    let plan = ctx
        .config
        .plans
        .iter()
        .find(|p| p.id == plan_id)
        .cloned()
        // System tasks and unknown plans get a plan that carries only its id.
        .unwrap_or_else(|| v1::Plan {
            id: plan_id.clone(),
            ..Default::default()
        });
    let started_ms = ctx.op.as_ref().map(|o| o.unix_time_start_ms).unwrap_or(0);
    for (name, h, event) in hooks {
        let Some(action) = h.action.as_ref() else {
            ctx.log
                .line(&format!("hook {name} has no action configured: skipped"));
            continue;
        };
        let now = chrono::Local::now();
        let vars = HookVars {
            task: ctx.task.name(),
            event,
            repo: repo.clone(),
            plan: Some(plan.clone()),
            snapshot_id: extra.snapshot_id.clone(),
            snapshot_stats: extra.snapshot_stats.clone(),
            cur_time: now.fixed_offset(),
            duration: match started_ms {
                0 => Duration::ZERO,
                ms => Duration::from_millis((now.timestamp_millis() - ms).max(0) as u64),
            },
            error: extra.error.clone(),
        };
        let title = format!("{} hook {name}", actions::handler_name(action));
        if let Err(e) = run_one(ctx, &title, event, action, &vars).await {
            let halt = match hook::OnError::try_from(h.on_error).unwrap_or_default() {
                hook::OnError::Ignore => None,
                hook::OnError::Cancel => Some((Halt::Cancel, "cancel")),
                hook::OnError::Fatal => Some((Halt::Fatal, "fatal")),
                hook::OnError::Retry1minute => Some((Halt::Retry(RetryPolicy::OneMinute), "retry")),
                hook::OnError::Retry10minutes => {
                    Some((Halt::Retry(RetryPolicy::TenMinutes), "retry"))
                }
                hook::OnError::RetryExponentialBackoff => {
                    Some((Halt::Retry(RetryPolicy::ExponentialBackoff), "retry"))
                }
            };
            if let Some((halt, word)) = halt {
                return Err(HookError {
                    message: format!("run hook {title}: {word}: {e}"),
                    halt,
                });
            }
        }
    }
    Ok(())
}

/// Runs one hook as its own operation; `Err` is the action's failure text.
async fn run_one(
    ctx: &TaskContext,
    title: &str,
    event: hook::Condition,
    action: &hook::Action,
    vars: &HookVars,
) -> Result<(), String> {
    let oplog = ctx.orch.oplog();
    let parent = ctx.op.as_ref();
    let repo = ctx.repo().ok();
    let proto = v1::Operation {
        instance_id: ctx.config.instance.clone(),
        repo_id: ctx.repo_id().to_string(),
        repo_guid: repo.map(|r| r.guid).unwrap_or_default(),
        plan_id: ctx.task.kind.plan_id().to_string(),
        flow_id: parent.map(|p| p.flow_id).unwrap_or(0),
        unix_time_start_ms: Utc::now().timestamp_millis(),
        status: OperationStatus::StatusInprogress as i32,
        display_message: format!("running {title} triggered by {}", event.as_str_name()),
        op: Some(Op::OperationRunHook(v1::OperationRunHook {
            parent_op: parent.map(|p| p.id).unwrap_or(0),
            name: title.to_string(),
            condition: event as i32,
            ..Default::default()
        })),
        ..Default::default()
    };
    // Without an operation there is nowhere to show the result: still run
    // the hook (a notification matters more than its record).
    let mut op = match oplog.add(vec![proto]).await {
        Ok(mut v) => v.pop(),
        Err(e) => {
            tracing::warn!("cannot record hook {title}: {e}");
            None
        }
    };
    let mut log = TaskLog::default();
    if let Some(o) = op.as_mut() {
        let log_id = format!("t-{}", uuid::Uuid::new_v4().simple());
        match ctx
            .orch
            .logs()
            .create(&log_id, o.id, Some(TASK_LOG_TTL))
            .await
        {
            Ok(w) => {
                log = TaskLog::new(w);
                if let Some(Op::OperationRunHook(h)) = o.op.as_mut() {
                    h.output_logref = log_id.clone();
                }
                o.logref = log_id;
                match oplog.update(vec![o.clone()]).await {
                    Ok(mut v) => op = v.pop(),
                    Err(e) => tracing::warn!("cannot record hook {title}: {e}"),
                }
            }
            Err(e) => tracing::warn!("cannot create the log of hook {title}: {e}"),
        }
    }

    // The actions prefix "template rendering: " themselves, as Backrest does.
    let render = |text: &str| vars::render(text, vars).map_err(|e| e.to_string());
    let log_line = |line: &str| log.raw(line);
    let env = ActionEnv {
        condition: event,
        render: &render,
        log: &log_line,
        cancel: ctx.cancel.clone(),
    };
    let result = actions::run(action, &env).await.map_err(|e| e.to_string());
    if let Err(e) = &result {
        log.raw(&format!("hook failed: {e}"));
        ctx.log.line(&format!("{title} failed: {e}"));
    }
    log.close().await;

    if let Some(mut o) = op {
        o.unix_time_end_ms = Utc::now().timestamp_millis();
        match &result {
            Ok(()) => o.status = OperationStatus::StatusSuccess as i32,
            Err(e) => {
                o.status = OperationStatus::StatusError as i32;
                o.display_message = format!("{e}\n\n{}", o.display_message);
            }
        }
        if let Err(e) = oplog.update(vec![o]).await {
            tracing::warn!("cannot record the end of hook {title}: {e}");
        }
    }
    result
}

/// The operation-specific error condition of a task kind, fired together
/// with `CONDITION_ANY_ERROR` when the task fails.
pub fn error_condition(kind: &crate::orchestrator::TaskKind) -> Option<hook::Condition> {
    use crate::orchestrator::TaskKind as K;
    match kind {
        K::Backup { .. } => Some(hook::Condition::SnapshotError),
        K::Prune => Some(hook::Condition::PruneError),
        K::Check => Some(hook::Condition::CheckError),
        K::Forget { .. } | K::RepoForget => Some(hook::Condition::ForgetError),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook_on(conds: &[hook::Condition]) -> v1::Hook {
        v1::Hook {
            conditions: conds.iter().map(|c| *c as i32).collect(),
            on_error: 0,
            action: Some(hook::Action::ActionCommand(hook::Command {
                command: "true".into(),
            })),
        }
    }

    #[test]
    fn first_matching_event_per_hook_repo_hooks_first() {
        use hook::Condition as C;
        let cfg = v1::Config {
            repos: vec![v1::Repo {
                id: "r".into(),
                hooks: vec![
                    hook_on(&[C::SnapshotEnd, C::AnyError]),
                    hook_on(&[C::SnapshotStart]),
                ],
                ..Default::default()
            }],
            plans: vec![v1::Plan {
                id: "p".into(),
                repo: "r".into(),
                hooks: vec![hook_on(&[C::SnapshotError])],
                ..Default::default()
            }],
            ..Default::default()
        };
        let events = [C::SnapshotError, C::AnyError, C::SnapshotEnd];
        let fired: Vec<(String, hook::Condition)> = triggered(&cfg, "r", "p", &events)
            .into_iter()
            .map(|(n, _, e)| (n, e))
            .collect();
        assert_eq!(
            fired,
            vec![
                ("repo/r/hook/0".to_string(), C::AnyError),
                ("plan/p/hook/0".to_string(), C::SnapshotError),
            ]
        );
        // A plan of another repo's task contributes nothing; unknown plan ids too.
        assert_eq!(triggered(&cfg, "r", "_system_", &events).len(), 1);
        assert!(triggered(&cfg, "other", "x", &events).is_empty());
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(Duration::from_secs(60)), "1m0s");
        assert_eq!(go_duration(Duration::from_secs(600)), "10m0s");
        assert_eq!(go_duration(Duration::from_secs(10)), "10s");
        assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn retry_delays() {
        use RetryPolicy::*;
        assert_eq!(OneMinute.delay(5), Duration::from_secs(60));
        assert_eq!(TenMinutes.delay(1), Duration::from_secs(600));
        assert_eq!(ExponentialBackoff.delay(1), Duration::from_secs(10));
        assert_eq!(ExponentialBackoff.delay(2), Duration::from_secs(20));
        assert_eq!(ExponentialBackoff.delay(9), Duration::from_secs(2560));
        assert_eq!(ExponentialBackoff.delay(10), Duration::from_secs(3600));
        assert_eq!(ExponentialBackoff.delay(33), Duration::from_secs(3600));
    }
}
