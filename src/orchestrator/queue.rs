//! The task queue: due tasks run highest priority first; a repo runs one task
//! at a time, different repos run in parallel (up to a global cap, enforced
//! by the caller). Pure data structure: time is passed in.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use tokio::sync::oneshot;

use super::task::{Outcome, Task};

pub struct Entry {
    pub seq: u64,
    pub run_at: DateTime<Utc>,
    pub priority: u32,
    pub task: Task,
    /// The PENDING operation created when the task was queued, if it has one.
    pub op_id: Option<i64>,
    /// Config generation of scheduled tasks (re-planning drops older ones).
    pub generation: u64,
    /// Who waits for the result (the Backup RPC).
    pub waiters: Vec<oneshot::Sender<Outcome>>,
    /// Runs of this entry that ended in a hook-requested retry.
    pub attempt: u32,
    /// Config generation when it was first queued (retries need it unchanged).
    pub created_generation: u64,
}

#[derive(Default)]
pub struct Queue {
    entries: Vec<Entry>,
    next_seq: u64,
}

impl Queue {
    pub fn push(&mut self, mut e: Entry) -> u64 {
        self.next_seq += 1;
        e.seq = self.next_seq;
        self.entries.push(e);
        self.next_seq
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The due entry to run next: highest priority, then earliest run time,
    /// then first queued; skipping repos that are busy.
    pub fn pop_ready(&mut self, now: DateTime<Utc>, busy: &HashSet<String>) -> Option<Entry> {
        let idx = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.run_at <= now)
            .filter(|(_, e)| e.task.repo_id.as_ref().is_none_or(|r| !busy.contains(r)))
            .max_by(|(_, a), (_, b)| {
                a.priority
                    .cmp(&b.priority)
                    .then(b.run_at.cmp(&a.run_at))
                    .then(b.seq.cmp(&a.seq))
            })
            .map(|(i, _)| i)?;
        Some(self.entries.swap_remove(idx))
    }

    /// When the earliest not-yet-due entry becomes due.
    pub fn next_due_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.entries
            .iter()
            .map(|e| e.run_at)
            .filter(|t| *t > now)
            .min()
    }

    /// Removes the entry whose pending operation is `op_id`.
    pub fn remove_op(&mut self, op_id: i64) -> Option<Entry> {
        let idx = self.entries.iter().position(|e| e.op_id == Some(op_id))?;
        Some(self.entries.swap_remove(idx))
    }

    /// Removes every scheduled (recurring) entry; one-off entries stay.
    pub fn remove_scheduled(&mut self) -> Vec<Entry> {
        let (gone, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.entries)
            .into_iter()
            .partition(|e| e.task.scheduled);
        self.entries = keep;
        gone
    }

    /// Removes every entry matching `f`.
    pub fn remove_where(&mut self, f: impl Fn(&Entry) -> bool) -> Vec<Entry> {
        let (gone, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.entries)
            .into_iter()
            .partition(|e| f(e));
        self.entries = keep;
        gone
    }

    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orchestrator::task::TaskKind;
    use chrono::TimeZone;

    fn entry(repo: &str, prio: u32, at: i64) -> Entry {
        Entry {
            seq: 0,
            run_at: Utc.timestamp_opt(at, 0).unwrap(),
            priority: prio,
            task: Task::oneoff(TaskKind::Stats, repo),
            op_id: Some(at),
            generation: 0,
            waiters: vec![],
            attempt: 0,
            created_generation: 0,
        }
    }

    #[test]
    fn priority_then_time_and_busy_repos() {
        let mut q = Queue::default();
        q.push(entry("a", 2, 10));
        q.push(entry("a", 64, 20));
        q.push(entry("b", 2, 5));
        q.push(entry("c", 100, 1000));
        let now = Utc.timestamp_opt(30, 0).unwrap();
        let mut busy = HashSet::new();
        // Highest priority due first.
        assert_eq!(q.pop_ready(now, &busy).unwrap().op_id, Some(20));
        // Repo a busy: b's task runs though its priority ties with a's remaining one.
        busy.insert("a".to_string());
        assert_eq!(q.pop_ready(now, &busy).unwrap().op_id, Some(5));
        assert!(q.pop_ready(now, &busy).is_none());
        busy.clear();
        assert_eq!(q.pop_ready(now, &busy).unwrap().op_id, Some(10));
        // Not yet due.
        assert!(q.pop_ready(now, &busy).is_none());
        assert_eq!(
            q.next_due_after(now),
            Some(Utc.timestamp_opt(1000, 0).unwrap())
        );
    }

    #[test]
    fn earliest_first_among_equal_priority_and_removal() {
        let mut q = Queue::default();
        q.push(entry("a", 2, 20));
        q.push(entry("b", 2, 10));
        let mut s = entry("c", 2, 15);
        s.task.scheduled = true;
        q.push(s);
        let now = Utc.timestamp_opt(30, 0).unwrap();
        assert_eq!(q.remove_scheduled().len(), 1);
        assert_eq!(q.remove_op(20).unwrap().op_id, Some(20));
        assert_eq!(q.pop_ready(now, &HashSet::new()).unwrap().op_id, Some(10));
        assert!(q.is_empty());
    }
}
