//! The orchestrator: queues tasks, runs them against restic, and records
//! each as an operation.
//!
//! Unlike Backrest (one task at a time across the whole server), operations
//! on different repositories run in parallel, up to a global cap; one
//! repository still runs one task at a time. Config changes re-plan the
//! recurring schedule but never drop work a user asked for. A task waiting
//! in the queue can be cancelled, and whoever waits for it (the Backup RPC)
//! is told at once.

pub mod context;
pub mod queue;
pub mod recovery;
pub mod schedule;
pub mod task;
pub mod tasks;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, oneshot};
use tokio_util::sync::CancellationToken;

use crate::config::ConfigStore;
use crate::connect::ShutdownSignal;
use crate::hooks::engine::Halt;
use crate::logstore::LogStore;
use crate::oplog::{OpLog, Query};
use crate::pb::v1::{self, OperationStatus, hook};
use crate::restic::Restic;
use crate::sync_ext::LockExt;
use context::{TASK_LOG_TTL, TaskContext, TaskLog};
use queue::{Entry, Queue};
pub use task::{Outcome, Task, TaskError, TaskKind, priority};

#[derive(Clone)]
pub struct Orchestrator(Arc<Inner>);

struct Inner {
    config: Arc<ConfigStore>,
    oplog: OpLog,
    logs: LogStore,
    restic: Result<Arc<Restic>, String>,
    max_parallel: usize,
    sched: Mutex<Sched>,
    wake: Notify,
    /// Cancelled on server shutdown: running tasks stop, the loop exits.
    stopping: CancellationToken,
    /// Counts running tasks so shutdown can wait for them.
    idle: Notify,
    /// Per repo: when the snapshot index was last brought up to date, if
    /// nothing that changes snapshots has run on the repo since.
    index_fresh: Mutex<HashMap<String, std::time::Instant>>,
}

/// How long a snapshot index is trusted without asking restic again. Other
/// machines may write to a shared repository; this bounds how stale
/// ListSnapshots can be for their snapshots.
pub const INDEX_TRUST: Duration = Duration::from_secs(600);

#[derive(Default)]
struct Sched {
    queue: Queue,
    busy_repos: HashSet<String>,
    running: HashMap<i64, RunningTask>,
    running_count: usize,
    generation: u64,
}

/// Where a queued task stands in its hook-requested retries.
#[derive(Clone, Copy)]
struct RetryState {
    /// Runs so far that ended in a retry (0 = first run).
    attempt: u32,
    /// Config generation when the task was queued: retries stop once the
    /// config changed (Backrest's rule).
    created_generation: u64,
}

/// How a run ended: follow-ups to queue, the outcome for waiters, and when
/// to run again if a hook asked for a retry (with the attempt number).
struct TaskEnd {
    followups: Vec<(Task, u32)>,
    outcome: Outcome,
    retry_at: Option<(DateTime<Utc>, u32)>,
}

impl TaskEnd {
    fn done(outcome: Outcome) -> TaskEnd {
        TaskEnd {
            followups: vec![],
            outcome,
            retry_at: None,
        }
    }
}

struct RunningTask {
    cancel: CancellationToken,
    by_user: Arc<AtomicBool>,
}

impl Orchestrator {
    pub fn new(
        config: Arc<ConfigStore>,
        oplog: OpLog,
        logs: LogStore,
        restic: Result<Arc<Restic>, String>,
        max_parallel: usize,
    ) -> Orchestrator {
        Orchestrator(Arc::new(Inner {
            config,
            oplog,
            logs,
            restic,
            max_parallel: max_parallel.max(1),
            sched: Mutex::new(Sched::default()),
            wake: Notify::new(),
            stopping: CancellationToken::new(),
            idle: Notify::new(),
            index_fresh: Mutex::new(HashMap::new()),
        }))
    }

    pub fn oplog(&self) -> &OpLog {
        &self.0.oplog
    }

    pub fn logs(&self) -> &LogStore {
        &self.0.logs
    }

    pub fn config(&self) -> Arc<v1::Config> {
        self.0.config.get()
    }

    /// The restic binary, or why there is none.
    pub fn restic(&self) -> Result<Arc<Restic>, String> {
        self.0.restic.clone()
    }

    /// Starts the worker loop and the config watcher, after scheduling the
    /// current config's recurring tasks.
    pub async fn start(&self, shutdown: ShutdownSignal) {
        self.apply_config(self.config()).await;
        let me = self.clone();
        tokio::spawn(async move { me.run_loop().await });
        let me = self.clone();
        let mut changes = self.0.config.subscribe();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = me.0.stopping.cancelled() => break,
                    changed = changes.changed() => {
                        if changed.is_err() { break }
                        let cfg = changes.borrow_and_update().clone();
                        me.apply_config(cfg).await;
                    }
                }
            }
        });
        let me = self.clone();
        tokio::spawn(async move {
            shutdown.wait().await;
            me.0.stopping.cancel();
        });
    }

    /// After a crash: `restic unlock` (stale locks only) on repos that had a
    /// task running, in the background, before their next task.
    pub fn unlock_after_crash(&self, repo_ids: HashSet<String>) {
        if repo_ids.is_empty() {
            return;
        }
        // The repos count as busy until their unlock is done, so their next
        // task can't start while it runs.
        self.0
            .sched
            .locked()
            .busy_repos
            .extend(repo_ids.iter().cloned());
        let me = self.clone();
        tokio::spawn(async move {
            let restic = me.restic();
            let cfg = me.config();
            for id in repo_ids {
                if let (Ok(restic), Some(repo)) = (&restic, cfg.repos.iter().find(|r| r.id == id))
                    && let Ok(client) = crate::restic::RepoClient::new(restic.clone(), repo.clone())
                {
                    match client
                        .unlock(
                            &CancellationToken::new(),
                            &mut crate::restic::repo::discard(),
                        )
                        .await
                    {
                        Ok(()) => tracing::info!(
                            "ran `restic unlock` on repo {id} after an unclean stop (stale locks only)"
                        ),
                        Err(e) => {
                            tracing::warn!("could not unlock repo {id} after an unclean stop: {e}")
                        }
                    }
                }
                me.0.sched.locked().busy_repos.remove(&id);
                me.0.wake.notify_one();
            }
        });
    }

    /// Stops running tasks (restic gets SIGINT and removes its lock) and
    /// waits up to `grace` for them to record their outcome.
    pub async fn shutdown(&self, grace: Duration) {
        self.0.stopping.cancel();
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let notified = self.0.idle.notified();
            if self.0.sched.locked().running_count == 0 {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                tracing::warn!(
                    "tasks still running at shutdown; they will be marked as interrupted at the next start"
                );
                return;
            }
        }
    }

    /// Re-plans the recurring schedule for `cfg`: drops queued recurring
    /// tasks (and their PENDING operations) and schedules the new set. One-off
    /// tasks stay queued.
    pub async fn apply_config(&self, cfg: Arc<v1::Config>) {
        self.auto_initialize(&cfg);
        let (dropped, generation) = {
            let mut s = self.0.sched.locked();
            s.generation += 1;
            (s.queue.remove_scheduled(), s.generation)
        };
        let ids: Vec<i64> = dropped.iter().filter_map(|e| e.op_id).collect();
        if !ids.is_empty()
            && let Err(e) = self.0.oplog.delete(&ids).await
        {
            tracing::warn!("removing re-planned pending operations: {e}");
        }
        let mut recurring = vec![(
            Task {
                kind: TaskKind::CollectGarbage,
                repo_id: None,
                scheduled: true,
                flow_id: 0,
            },
            priority::DEFAULT,
        )];
        let initialized = |repo_id: &str| {
            cfg.repos
                .iter()
                .any(|r| r.id == repo_id && !r.guid.is_empty())
        };
        for plan in cfg.plans.iter().filter(|p| initialized(&p.repo)) {
            recurring.push((
                Task {
                    kind: TaskKind::Backup {
                        plan_id: plan.id.clone(),
                        dry_run: false,
                    },
                    repo_id: Some(plan.repo.clone()),
                    scheduled: true,
                    flow_id: 0,
                },
                priority::DEFAULT,
            ));
        }
        for repo in cfg
            .repos
            .iter()
            .filter(|r| r.origin_instance_id.is_empty() && !r.guid.is_empty())
        {
            for (kind, prio) in [
                (TaskKind::Prune, priority::PRUNE),
                (TaskKind::Check, priority::CHECK),
                (TaskKind::RepoForget, priority::FORGET),
            ] {
                recurring.push((
                    Task {
                        kind,
                        repo_id: Some(repo.id.clone()),
                        scheduled: true,
                        flow_id: 0,
                    },
                    prio,
                ));
            }
        }
        for (task, prio) in recurring {
            if let Err(e) = self
                .schedule_next(task.clone(), prio, generation, &cfg, false)
                .await
            {
                tracing::warn!("cannot schedule {}: {e}", task.name());
            }
        }
        self.0.wake.notify_one();
    }

    /// Repos with `autoInitialize` and no guid yet: initialize them with
    /// restic (or adopt the repository already there) and record the guid.
    /// Runs in the background; the config write re-plans once it is done.
    /// Unlike Backrest, a failure doesn't stop the server: it is logged and
    /// retried at the next config change or start.
    fn auto_initialize(&self, cfg: &v1::Config) {
        let pending: Vec<v1::Repo> = cfg
            .repos
            .iter()
            .filter(|r| r.auto_initialize && r.guid.is_empty())
            .cloned()
            .collect();
        if pending.is_empty() {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            let Ok(restic) = me.restic() else {
                tracing::error!("cannot auto-initialize repos: restic is not available");
                return;
            };
            let mut guids = Vec::new();
            for repo in pending {
                let Ok(client) = crate::restic::RepoClient::new(restic.clone(), repo.clone())
                else {
                    continue;
                };
                let cancel = CancellationToken::new();
                let mut sink = crate::restic::repo::discard();
                let init = async {
                    match client.cat_config(&cancel, &mut sink).await {
                        Ok(c) => Ok(c),
                        Err(e) if e.kind == crate::restic::ErrorKind::RepoNotFound => {
                            client.init(&cancel, &mut sink).await
                        }
                        Err(e) => Err(e),
                    }
                };
                match tokio::time::timeout(Duration::from_secs(60), init).await {
                    Ok(Ok(c)) if c.id.len() >= 64 => {
                        tracing::info!("auto-initialized repo {}", repo.id);
                        guids.push((repo.id.clone(), c.id[..64].to_string()));
                    }
                    Ok(Ok(c)) => tracing::error!(
                        "auto-initialize repo {}: unexpected repository id {:?}",
                        repo.id,
                        c.id
                    ),
                    Ok(Err(e)) => tracing::error!("auto-initialize repo {}: {e}", repo.id),
                    Err(_) => {
                        cancel.cancel();
                        tracing::error!(
                            "auto-initialize repo {}: restic did not finish within 60s",
                            repo.id
                        );
                    }
                }
            }
            if guids.is_empty() {
                return;
            }
            let result =
                me.0.config
                    .transform(move |mut cfg| {
                        for (id, guid) in &guids {
                            if let Some(r) = cfg
                                .repos
                                .iter_mut()
                                .find(|r| &r.id == id && r.guid.is_empty())
                            {
                                r.guid = guid.clone();
                                r.auto_initialize = false;
                            }
                        }
                        cfg.modno += 1;
                        Ok(Some(cfg))
                    })
                    .await;
            if let Err(e) = result {
                tracing::error!("saving auto-initialized repos: {e}");
            }
        });
    }

    /// Computes a recurring task's next run and queues it.
    async fn schedule_next(
        &self,
        task: Task,
        prio: u32,
        generation: u64,
        cfg: &v1::Config,
        after_run: bool,
    ) -> Result<(), TaskError> {
        let now = Utc::now();
        let Some(run_at) = tasks::next_run(self, &task, cfg, now, after_run).await? else {
            return Ok(());
        };
        self.enqueue(task, prio, run_at, generation, vec![], cfg)
            .await
            .map(|_| ())
    }

    /// Queues a one-off task to run now. Returns its operation id (0 when
    /// the task has no operation).
    pub async fn schedule_now(&self, task: Task, prio: u32) -> Result<i64, TaskError> {
        let cfg = self.config();
        self.enqueue(task, prio, Utc::now(), 0, vec![], &cfg).await
    }

    /// Queues a one-off task to run now and returns a receiver for its outcome.
    pub async fn schedule_and_wait(
        &self,
        task: Task,
        prio: u32,
    ) -> Result<(i64, oneshot::Receiver<Outcome>), TaskError> {
        let (tx, rx) = oneshot::channel();
        let cfg = self.config();
        let id = self
            .enqueue(task, prio, Utc::now(), 0, vec![tx], &cfg)
            .await?;
        Ok((id, rx))
    }

    async fn enqueue(
        &self,
        task: Task,
        prio: u32,
        run_at: DateTime<Utc>,
        generation: u64,
        waiters: Vec<oneshot::Sender<Outcome>>,
        cfg: &v1::Config,
    ) -> Result<i64, TaskError> {
        if self.0.stopping.is_cancelled() {
            return Err(TaskError("the server is shutting down".into()));
        }
        let mut op_id = None;
        if let Some(op) = tasks::prototype(&task, cfg, run_at)? {
            let added = self.0.oplog.add(vec![op]).await?;
            op_id = added.first().map(|o| o.id);
        }
        let mut s = self.0.sched.locked();
        let created_generation = s.generation;
        s.queue.push(Entry {
            seq: 0,
            run_at,
            priority: prio,
            task,
            op_id,
            generation,
            waiters,
            attempt: 0,
            created_generation,
        });
        drop(s);
        self.0.wake.notify_one();
        Ok(op_id.unwrap_or(0))
    }

    /// Runs a task right away, outside the queue (RunCommand): it records an
    /// operation and can be cancelled like any other, but doesn't wait for
    /// the repo's queue. Returns the operation id and the outcome.
    pub async fn run_now(&self, task: Task) -> Result<(i64, Outcome), TaskError> {
        let cfg = self.config();
        let op = tasks::prototype(&task, &cfg, Utc::now())?;
        let op_id = match op {
            Some(op) => self.0.oplog.add(vec![op]).await?.first().map(|o| o.id),
            None => None,
        };
        let cancel = self.0.stopping.child_token();
        let by_user = Arc::new(AtomicBool::new(false));
        if let Some(id) = op_id {
            self.0.sched.locked().running.insert(
                id,
                RunningTask {
                    cancel: cancel.clone(),
                    by_user: by_user.clone(),
                },
            );
        }
        // Take the repo's turn: a command started while a prune or forget
        // holds restic's exclusive lock would fail (restic 0.14 can't wait
        // for locks). It still jumps the queue: it runs as soon as the
        // current task of the repo ends.
        let repo = task.repo_id.clone();
        let mut acquired = false;
        if let Some(r) = &repo {
            loop {
                let idle = self.0.idle.notified();
                tokio::pin!(idle);
                idle.as_mut().enable();
                {
                    let mut s = self.0.sched.locked();
                    if !s.busy_repos.contains(r) {
                        s.busy_repos.insert(r.clone());
                        acquired = true;
                        break;
                    }
                }
                let stop = tokio::select! {
                    _ = idle => false,
                    _ = cancel.cancelled() => true,
                };
                if stop {
                    break;
                }
            }
        }
        let outcome = if !acquired && repo.is_some() {
            self.settle_unstarted(op_id, by_user.load(Ordering::SeqCst))
                .await
        } else {
            let no_retry = RetryState {
                attempt: 0,
                created_generation: u64::MAX,
            };
            self.run_task(&task, op_id, cancel, &by_user, no_retry)
                .await
                .outcome
        };
        {
            let mut s = self.0.sched.locked();
            if let Some(id) = op_id {
                s.running.remove(&id);
            }
            if let (true, Some(r)) = (acquired, &repo) {
                s.busy_repos.remove(r);
            }
        }
        self.0.idle.notify_waiters();
        self.0.wake.notify_one();
        Ok((op_id.unwrap_or(0), outcome))
    }

    /// Records the end of a run_now task cancelled while it waited for its repo.
    async fn settle_unstarted(&self, op_id: Option<i64>, by_user: bool) -> Outcome {
        let msg = if by_user {
            "cancelled by user request before it started"
        } else {
            "the server is shutting down; the operation did not start"
        };
        if let Some(id) = op_id
            && let Ok(Some(mut op)) = self.0.oplog.get(id).await
        {
            op.status = if by_user {
                OperationStatus::StatusUserCancelled
            } else {
                OperationStatus::StatusError
            } as i32;
            op.unix_time_end_ms = Utc::now().timestamp_millis();
            op.display_message = msg.into();
            let _ = self.0.oplog.update(vec![op]).await;
        }
        Outcome::Cancelled(msg.into())
    }

    /// Cancels a queued or running operation. A queued one is marked
    /// USER_CANCELLED at once (its waiters hear so); a running one is
    /// stopped and records USER_CANCELLED when it ends. Unknown ids are a no-op.
    pub async fn cancel(&self, op_id: i64) -> Result<(), TaskError> {
        let (queued, running) = {
            let mut s = self.0.sched.locked();
            let queued = s.queue.remove_op(op_id);
            let running = s
                .running
                .get(&op_id)
                .map(|r| (r.cancel.clone(), r.by_user.clone()));
            (queued, running)
        };
        if let Some(entry) = queued {
            if let Some(mut op) = self.0.oplog.get(op_id).await? {
                op.status = OperationStatus::StatusUserCancelled as i32;
                op.unix_time_end_ms = Utc::now().timestamp_millis();
                op.display_message = "cancelled by user request before it started".into();
                self.0.oplog.update(vec![op]).await?;
            }
            for w in entry.waiters {
                let _ = w.send(Outcome::Cancelled(
                    "the operation was cancelled before it started".into(),
                ));
            }
            if entry.task.scheduled {
                let generation = self.0.sched.locked().generation;
                if entry.generation == generation {
                    let cfg = self.config();
                    self.schedule_next(entry.task, entry.priority, generation, &cfg, true)
                        .await?;
                }
            }
            return Ok(());
        }
        if let Some((cancel, by_user)) = running {
            by_user.store(true, Ordering::SeqCst);
            cancel.cancel();
        }
        Ok(())
    }

    async fn run_loop(self) {
        loop {
            if self.0.stopping.is_cancelled() {
                // Shutting down: queued work won't run in this process. Its
                // waiters hear so now (the Backup RPC answers instead of
                // hanging); its PENDING operations are settled at the next start.
                let drained = self.0.sched.locked().queue.remove_where(|_| true);
                for entry in drained {
                    for w in entry.waiters {
                        let _ = w.send(Outcome::Cancelled(
                            "the server is shutting down; the operation did not start".into(),
                        ));
                    }
                }
                break;
            }
            let now = Utc::now();
            let mut started = Vec::new();
            let next_due = {
                let mut s = self.0.sched.locked();
                while s.running_count < self.0.max_parallel {
                    let busy = s.busy_repos.clone();
                    let Some(entry) = s.queue.pop_ready(now, &busy) else {
                        break;
                    };
                    if let Some(r) = &entry.task.repo_id {
                        s.busy_repos.insert(r.clone());
                    }
                    s.running_count += 1;
                    let cancel = self.0.stopping.child_token();
                    let by_user = Arc::new(AtomicBool::new(false));
                    if let Some(id) = entry.op_id {
                        s.running.insert(
                            id,
                            RunningTask {
                                cancel: cancel.clone(),
                                by_user: by_user.clone(),
                            },
                        );
                    }
                    started.push((entry, cancel, by_user));
                }
                s.queue.next_due_after(now)
            };
            for (entry, cancel, by_user) in started {
                let me = self.clone();
                tokio::spawn(async move { me.run_entry(entry, cancel, by_user).await });
            }
            // Wake for new work, a finished task, the next due time, or at
            // least every minute (clock changes).
            let sleep_for = next_due
                .map(|t| (t - Utc::now()).to_std().unwrap_or(Duration::ZERO))
                .unwrap_or(Duration::from_secs(60))
                .min(Duration::from_secs(60));
            tokio::select! {
                _ = self.0.wake.notified() => {}
                _ = tokio::time::sleep(sleep_for) => {}
                _ = self.0.stopping.cancelled() => {}
            }
        }
    }

    async fn run_entry(&self, entry: Entry, cancel: CancellationToken, by_user: Arc<AtomicBool>) {
        let Entry {
            task,
            op_id,
            waiters,
            generation,
            priority: prio,
            attempt,
            created_generation,
            ..
        } = entry;
        let retry = RetryState {
            attempt,
            created_generation,
        };
        let TaskEnd {
            followups,
            outcome,
            retry_at,
        } = self.run_task(&task, op_id, cancel, &by_user, retry).await;
        {
            let mut s = self.0.sched.locked();
            if let Some(r) = &task.repo_id {
                s.busy_repos.remove(r);
            }
            if let Some(id) = op_id {
                s.running.remove(&id);
            }
            s.running_count -= 1;
            if let Some((run_at, attempt)) = retry_at {
                // Same operation, same waiters: they hear the final outcome.
                s.queue.push(Entry {
                    seq: 0,
                    run_at,
                    priority: prio,
                    task: task.clone(),
                    op_id,
                    generation,
                    waiters,
                    attempt,
                    created_generation,
                });
                drop(s);
                self.0.idle.notify_waiters();
                self.0.wake.notify_one();
                return;
            }
        }
        self.0.idle.notify_waiters();
        if !self.0.stopping.is_cancelled() {
            let cfg = self.config();
            for (t, p) in followups {
                if let Err(e) = self
                    .enqueue(t.clone(), p, Utc::now(), 0, vec![], &cfg)
                    .await
                {
                    tracing::warn!("cannot queue {}: {e}", t.name());
                }
            }
            let current = self.0.sched.locked().generation;
            if task.scheduled
                && generation == current
                && let Err(e) = self
                    .schedule_next(task.clone(), prio, generation, &cfg, true)
                    .await
            {
                tracing::warn!("cannot schedule the next {}: {e}", task.name());
            }
        }
        for w in waiters {
            let _ = w.send(outcome.clone());
        }
        self.0.wake.notify_one();
    }

    /// Runs one task and records its operation's lifecycle: INPROGRESS with
    /// a live log, then SUCCESS / WARNING / ERROR / USER_CANCELLED.
    async fn run_task(
        &self,
        task: &Task,
        op_id: Option<i64>,
        cancel: CancellationToken,
        by_user: &AtomicBool,
        retry: RetryState,
    ) -> TaskEnd {
        let config = self.config();
        let mut op = match op_id {
            Some(id) => match self.0.oplog.get(id).await {
                Ok(Some(op)) => Some(op),
                Ok(None) => {
                    return TaskEnd::done(Outcome::Cancelled(format!(
                        "operation {id} was deleted before it ran"
                    )));
                }
                Err(e) => return TaskEnd::done(Outcome::Failed(format!("operation log: {e}"))),
            },
            None => None,
        };
        let mut log = TaskLog::default();
        if let Some(o) = op.as_mut() {
            let log_id = format!("t-{}", uuid::Uuid::new_v4().simple());
            match self.0.logs.create(&log_id, o.id, Some(TASK_LOG_TTL)).await {
                Ok(w) => {
                    log = TaskLog::new(w);
                    o.logref = log_id;
                }
                Err(e) => tracing::warn!("cannot create a task log: {e}"),
            }
            o.unix_time_start_ms = Utc::now().timestamp_millis();
            o.status = OperationStatus::StatusInprogress as i32;
            match self.0.oplog.update(vec![o.clone()]).await {
                Ok(mut v) => op = v.pop(),
                Err(e) => return TaskEnd::done(Outcome::Failed(format!("operation log: {e}"))),
            }
        }
        log.line(&format!("starting {}", task.name()));
        let changes_snapshots = matches!(
            task.kind,
            TaskKind::Backup { dry_run: false, .. }
                | TaskKind::Forget { .. }
                | TaskKind::RepoForget
                | TaskKind::ForgetSnapshot { .. }
                | TaskKind::Prune
                | TaskKind::RunCommand { .. }
        );
        let index_was_current = task
            .repo_id
            .as_deref()
            .is_some_and(|r| self.index_is_current(r));
        if let (true, Some(r)) = (changes_snapshots, &task.repo_id) {
            self.mark_index(r, false);
        }
        let mut ctx = TaskContext {
            orch: self.clone(),
            task: task.clone(),
            op,
            cancel: cancel.clone(),
            log: log.clone(),
            config,
            followups: vec![],
            index_was_current,
            halt: None,
            error_hooks_done: false,
        };
        if retry.attempt > 0 {
            self.forget_previous_hook_runs(&ctx).await;
            if let Some(o) = ctx.op.as_mut() {
                o.display_message = format!("running after {} retries", retry.attempt);
            }
        }
        let result = tasks::run(&mut ctx).await;
        if let (TaskKind::IndexSnapshots, Some(r), Ok(())) = (&task.kind, &task.repo_id, &result) {
            self.mark_index(r, true);
        }
        // Every failure fires ANY_ERROR (and the kind's own error event),
        // unless the task already ran its error hooks or was stopped.
        if let Err(e) = &result
            && !ctx.error_hooks_done
        {
            let mut events = vec![hook::Condition::AnyError];
            events.extend(crate::hooks::engine::error_condition(&task.kind));
            let extra = crate::hooks::engine::Extra::error(&e.0);
            tasks::error_hooks(&mut ctx, &events, extra, e.clone()).await;
        }
        // A hook asked for a retry: back to PENDING, run again later (only
        // while the config is the one the task was queued under).
        if let (Err(e), Some(Halt::Retry(policy))) = (&result, ctx.halt) {
            let same_config = self.0.sched.locked().generation == retry.created_generation;
            if same_config && !cancel.is_cancelled() {
                let attempt = retry.attempt + 1;
                let delay = policy.delay(attempt);
                let run_at = Utc::now()
                    + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::hours(1));
                log.line(&format!(
                    "{e}\nretrying in {} (attempt {attempt})",
                    crate::hooks::engine::go_duration(delay)
                ));
                if let Some(mut o) = ctx.op.take() {
                    o.status = OperationStatus::StatusPending as i32;
                    o.unix_time_start_ms = run_at.timestamp_millis();
                    o.unix_time_end_ms = 0;
                    o.display_message = format!(
                        "waiting for retry, current backoff delay: {}",
                        crate::hooks::engine::go_duration(delay)
                    );
                    if let Err(e) = self.0.oplog.update(vec![o]).await {
                        tracing::error!("cannot record the retry of {}: {e}", task.name());
                    }
                }
                log.close().await;
                return TaskEnd {
                    followups: vec![],
                    outcome: Outcome::Failed(e.0.clone()),
                    retry_at: Some((run_at, attempt)),
                };
            }
        }
        let user_cancelled = by_user.load(Ordering::SeqCst);
        let interrupted = cancel.is_cancelled() && !user_cancelled;
        let hook_cancelled = ctx.halt == Some(Halt::Cancel);
        let outcome = match &result {
            Ok(()) => match ctx.op.as_ref().map(|o| o.status) {
                Some(s) if s == OperationStatus::StatusWarning as i32 => {
                    Outcome::Warning(ctx.op.as_ref().unwrap().display_message.clone())
                }
                _ => Outcome::Success,
            },
            Err(e) if user_cancelled => {
                Outcome::Cancelled(format!("{e}\n\nnote: task was cancelled by user request"))
            }
            Err(e) if interrupted => Outcome::Failed(format!(
                "{e}\n\nnote: task was interrupted by server shutdown"
            )),
            Err(e) if hook_cancelled => Outcome::Cancelled(e.to_string()),
            Err(e) => Outcome::Failed(e.to_string()),
        };
        match &outcome {
            Outcome::Success | Outcome::Warning(_) => log.line("finished"),
            Outcome::Failed(m) | Outcome::Cancelled(m) => log.line(&format!("failed: {m}")),
        }
        if let Some(mut o) = ctx.op.take() {
            o.unix_time_end_ms = Utc::now().timestamp_millis();
            match &outcome {
                Outcome::Success => {
                    if o.status == OperationStatus::StatusInprogress as i32 {
                        o.status = OperationStatus::StatusSuccess as i32;
                    }
                }
                Outcome::Warning(_) => {}
                Outcome::Failed(m) => {
                    o.status = OperationStatus::StatusError as i32;
                    o.display_message = join_message(m, &o.display_message);
                }
                Outcome::Cancelled(m) => {
                    o.status = OperationStatus::StatusUserCancelled as i32;
                    o.display_message = join_message(m, &o.display_message);
                }
            }
            if let Err(e) = self.0.oplog.update(vec![o]).await {
                tracing::error!("cannot record the end of {}: {e}", task.name());
            }
        }
        log.close().await;
        let followups = if outcome.is_ok() {
            std::mem::take(&mut ctx.followups)
        } else {
            vec![]
        };
        TaskEnd {
            followups,
            outcome,
            retry_at: None,
        }
    }

    /// Before a retry: the previous attempt's hook operations go (Backrest
    /// shows only the last attempt's).
    async fn forget_previous_hook_runs(&self, ctx: &TaskContext) {
        let Some(op) = ctx.op.as_ref() else { return };
        let q = Query::all().flow_id(op.flow_id);
        let Ok(ops) = self.0.oplog.query(&q).await else {
            return;
        };
        let ids: Vec<i64> = ops
            .iter()
            .filter(|o| {
                matches!(&o.op, Some(v1::operation::Op::OperationRunHook(h)) if h.parent_op == op.id)
            })
            .map(|o| o.id)
            .collect();
        if !ids.is_empty() {
            if let Err(e) = self.0.oplog.delete(&ids).await {
                tracing::warn!("cannot remove the hook runs of the previous attempt: {e}");
            } else if let Err(e) = self.0.logs.delete_by_owners(&ids).await {
                tracing::warn!("cannot remove the hook logs of the previous attempt: {e}");
            }
        }
    }

    /// Operations of this repo and plan, newest start first (for schedules).
    pub async fn recent_ops(
        &self,
        guid: &str,
        plan_id: &str,
        instance: &str,
        n: i64,
    ) -> Result<Vec<v1::Operation>, TaskError> {
        let q = Query::all()
            .repo_guid(guid)
            .plan_id(plan_id)
            .instance_id(instance)
            .last_n(n);
        let mut ops = self.0.oplog.query(&q).await?;
        ops.sort_by_key(|o| std::cmp::Reverse((o.unix_time_start_ms, o.id)));
        Ok(ops)
    }

    /// Whether the snapshot index of `repo_id` can answer ListSnapshots
    /// without asking restic.
    pub fn index_is_current(&self, repo_id: &str) -> bool {
        self.0
            .index_fresh
            .locked()
            .get(repo_id)
            .is_some_and(|t| t.elapsed() < INDEX_TRUST)
    }

    fn mark_index(&self, repo_id: &str, fresh: bool) {
        let mut m = self.0.index_fresh.locked();
        if fresh {
            m.insert(repo_id.to_string(), std::time::Instant::now());
        } else {
            m.remove(repo_id);
        }
    }

    /// Queued tasks (for tests and diagnostics): (name, op id, run at).
    pub fn queued(&self) -> Vec<(String, Option<i64>, DateTime<Utc>)> {
        self.0
            .sched
            .locked()
            .queue
            .iter()
            .map(|e| (e.task.name(), e.op_id, e.run_at))
            .collect()
    }
}

fn join_message(err: &str, previous: &str) -> String {
    if previous.is_empty() {
        err.to_string()
    } else {
        format!("{err}\n\n{previous}")
    }
}
