//! Config validation, as Backrest does it on load, on every write and inside
//! SetConfig. Validation also normalizes: orphaned remote repos (and the plans
//! using them) are dropped, repos and plans are sorted by id, each repo's env
//! and each plan's paths are sorted.
//!
//! Messages follow Backrest's texts; nested errors are flattened into one
//! list whose entries carry their context (`repo <id>: ...`, `plan <id>: ...`,
//! `multihost: ...`).

use std::collections::HashSet;
use std::fmt;

use chrono::{Datelike, Local};

use super::{cron, identity};
use crate::pb::v1;
use crate::pb::v1::retention_policy::Policy;
use crate::pb::v1::schedule::Schedule as Kind;

/// Maximum length of the instance id and of peer instance ids.
pub const ID_MAX_LEN: usize = 50;

/// Every problem found in a config, in evaluation order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    pub errors: Vec<String>,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.errors.join("; "))
    }
}

impl std::error::Error for ValidationError {}

/// Validates `cfg` and normalizes it in place (see the module docs).
pub fn validate(cfg: &mut v1::Config) -> Result<(), ValidationError> {
    let mut errors = Vec::new();

    match validate_id(&cfg.instance, ID_MAX_LEN) {
        Ok(()) => {}
        Err(IdError::Empty) => tracing::warn!(
            "ACTION REQUIRED: the instance ID is empty; open the web UI settings and set a unique instance ID"
        ),
        Err(e) => errors.push(format!("instance ID {:?} invalid: {e}", cfg.instance)),
    }

    if let Err(e) = validate_auth(cfg.auth.as_ref()) {
        errors.push(format!("auth: {e}"));
    }

    remove_orphaned_remote_repos(cfg);

    let mut repo_ids = HashSet::new();
    for repo in cfg.repos.iter_mut() {
        for e in validate_repo(repo) {
            errors.push(format!("repo {}: {e}", repo.id));
        }
        if !repo_ids.insert(repo.id.clone()) {
            errors.push(format!("repo {}: duplicate id", repo.id));
        }
    }
    cfg.repos.sort_by(|a, b| a.id.cmp(&b.id));

    let mut plan_ids = HashSet::new();
    for plan in cfg.plans.iter_mut() {
        if !plan_ids.insert(plan.id.clone()) {
            errors.push(format!("plan {}: duplicate id", plan.id));
        }
        for e in validate_plan(plan, &repo_ids) {
            errors.push(format!("plan {}: {e}", plan.id));
        }
    }
    cfg.plans.sort_by(|a, b| a.id.cmp(&b.id));

    for e in validate_multihost(cfg) {
        errors.push(format!("multihost: {e}"));
    }

    if errors.is_empty() {
        Ok(())
    } else {
        Err(ValidationError { errors })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdError {
    Reserved,
    Empty,
    TooLong(usize),
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdError::Reserved => {
                f.write_str("IDs starting and ending with '_' are reserved by backrest")
            }
            IdError::Empty => f.write_str("empty"),
            IdError::TooLong(max) => write!(f, "(> {max} chars): too long"),
        }
    }
}

/// Backrest's id rule. Any characters are accepted (Backrest's character
/// check never rejects anything); `max_len` 0 means no length limit.
pub fn validate_id(id: &str, max_len: usize) -> Result<(), IdError> {
    if id.starts_with('_') && id.ends_with('_') {
        return Err(IdError::Reserved);
    }
    if id.is_empty() {
        return Err(IdError::Empty);
    }
    if max_len > 0 && id.len() > max_len {
        return Err(IdError::TooLong(max_len));
    }
    Ok(())
}

/// Whether a schedule is set and can fire (not absent, not `disabled`).
pub fn schedule_enabled(schedule: Option<&v1::Schedule>) -> bool {
    matches!(
        schedule.and_then(|s| s.schedule.as_ref()),
        Some(Kind::Cron(_) | Kind::MaxFrequencyDays(_) | Kind::MaxFrequencyHours(_))
    )
}

pub fn validate_schedule(schedule: &v1::Schedule) -> Result<(), String> {
    match &schedule.schedule {
        None => Ok(()),
        Some(Kind::Disabled(true)) => Ok(()),
        Some(Kind::Disabled(false)) => Err("disabled boolean must be set to true".into()),
        Some(Kind::MaxFrequencyDays(d)) if *d < 1 => Err("invalid max frequency days".into()),
        Some(Kind::MaxFrequencyHours(h)) if *h < 1 => Err("invalid max frequency hours".into()),
        Some(Kind::MaxFrequencyDays(_) | Kind::MaxFrequencyHours(_)) => Ok(()),
        Some(Kind::Cron(expr)) if expr.is_empty() => Err("empty cron expression".into()),
        Some(Kind::Cron(expr)) => {
            let never = || {
                format!(
                    "invalid cron {expr:?}: next scheduled time is invalid (check for DOW=7 usage)"
                )
            };
            let parsed = match cron::parse(expr) {
                Ok(c) => c,
                Err(cron::CronError::NeverFires) => return Err(never()),
                Err(e) => return Err(format!("invalid cron {expr:?}: {e}")),
            };
            // cronexpr looks at most five years ahead and reports "never"
            // beyond that; mirror it so both servers accept the same set.
            let now = Local::now();
            match parsed.find_next_occurrence(&now, false) {
                Ok(next) if next.year() >= 2000 && next.year() <= now.year() + 5 => Ok(()),
                _ => Err(never()),
            }
        }
    }
}

pub fn validate_retention(policy: &v1::RetentionPolicy) -> Result<(), String> {
    match &policy.policy {
        None => Err("retention policy must specify a policy".into()),
        Some(Policy::PolicyTimeBucketed(counts)) if *counts == Default::default() => {
            Err("time bucketed policy must specify a non-empty bucket".into())
        }
        Some(_) => Ok(()),
    }
}

fn validate_auth(auth: Option<&v1::Auth>) -> Result<(), String> {
    let Some(auth) = auth else { return Ok(()) };
    if auth.disabled {
        return Ok(());
    }
    if auth.users.is_empty() {
        return Err("auth enabled but no users".into());
    }
    for user in &auth.users {
        validate_id(&user.name, 0).map_err(|e| format!("user {:?}: {e}", user.name))?;
        let has_hash =
            matches!(&user.password, Some(v1::user::Password::PasswordBcrypt(h)) if !h.is_empty());
        if !has_hash {
            return Err(format!("user {:?}: password is required", user.name));
        }
    }
    Ok(())
}

/// Drops repos shared by a peer that is no longer known (neither an
/// authorized client nor a known host), and the plans that use them.
fn remove_orphaned_remote_repos(cfg: &mut v1::Config) {
    let peers: HashSet<&str> = cfg
        .multihost
        .iter()
        .flat_map(|m| m.authorized_clients.iter().chain(m.known_hosts.iter()))
        .map(|p| p.instance_id.as_str())
        .collect();
    let mut removed = HashSet::new();
    cfg.repos.retain(|r| {
        if r.origin_instance_id.is_empty() || peers.contains(r.origin_instance_id.as_str()) {
            return true;
        }
        tracing::info!(repo = %r.id, origin = %r.origin_instance_id, "removing orphaned remote repo: its origin instance is no longer a peer");
        removed.insert(r.id.clone());
        false
    });
    if removed.is_empty() {
        return;
    }
    cfg.plans.retain(|p| {
        if removed.contains(&p.repo) {
            tracing::info!(plan = %p.id, repo = %p.repo, "removing plan that uses an orphaned remote repo");
            return false;
        }
        true
    });
}

fn validate_repo(repo: &mut v1::Repo) -> Vec<String> {
    let mut errors = Vec::new();
    if let Err(e) = validate_id(&repo.id, 0) {
        errors.push(format!("id {:?} invalid: {e}", repo.id));
    }
    if !repo.guid.is_empty() {
        if repo.auto_initialize {
            errors.push(
                "auto_initialize set with guid but guid implies that repo is already initialized"
                    .into(),
            );
        }
        if repo.guid.len() != 64 {
            errors.push(format!(
                "guid {:?} invalid: must be 64 characters",
                repo.guid
            ));
        }
    } else if !repo.auto_initialize {
        errors.push(
            "guid is required unless using auto_initialize to implicitly initialize repos".into(),
        );
    }
    if repo.uri.is_empty() {
        errors.push("uri is required".into());
    }
    if let Some(s) = repo.prune_policy.as_ref().and_then(|p| p.schedule.as_ref()) {
        push_err(&mut errors, "prune policy schedule", validate_schedule(s));
    }
    if let Some(s) = repo.check_policy.as_ref().and_then(|p| p.schedule.as_ref()) {
        push_err(&mut errors, "check policy schedule", validate_schedule(s));
    }
    if let Some(forget) = &repo.forget_policy {
        if let Some(s) = &forget.schedule {
            push_err(&mut errors, "forget policy schedule", validate_schedule(s));
        }
        // Retention only matters when the schedule can actually fire.
        if schedule_enabled(forget.schedule.as_ref()) {
            match &forget.retention {
                None => errors.push("forget policy must specify a retention policy".into()),
                Some(r) => push_err(&mut errors, "forget policy", validate_retention(r)),
            }
        }
    }
    for env in &repo.env {
        if !env.contains('=') {
            errors.push(format!("invalid env var {env}, must take format KEY=VALUE"));
        }
    }
    repo.env.sort();
    errors
}

fn validate_plan(plan: &mut v1::Plan, repo_ids: &HashSet<String>) -> Vec<String> {
    let mut errors = Vec::new();
    if let Err(e) = validate_id(&plan.id, 0) {
        errors.push(format!("id {:?} invalid: {e}", plan.id));
    }
    if let Some(s) = &plan.schedule {
        push_err(&mut errors, "backup schedule", validate_schedule(s));
    }
    if plan.paths.is_empty() && plan.backup_flags.is_empty() {
        errors.push(
            "at least one path is required (unless backup_flags supplies paths, e.g. --files-from or --stdin-from-command)"
                .into(),
        );
    }
    for (i, p) in plan.paths.iter().enumerate() {
        if p.is_empty() {
            errors.push(format!("path[{i}] cannot be empty"));
        }
    }
    if plan.repo.is_empty() {
        errors.push("repo is required".into());
    }
    if !repo_ids.contains(&plan.repo) {
        errors.push(format!("repo {:?} not found", plan.repo));
    }
    if let Some(r) = &plan.retention {
        push_err(&mut errors, "retention", validate_retention(r));
    }
    plan.paths.sort();
    errors
}

/// Records `result`'s error, if any, as `<context>: <error>`.
fn push_err(errors: &mut Vec<String>, context: &str, result: Result<(), String>) {
    if let Err(e) = result {
        errors.push(format!("{context}: {e}"));
    }
}

fn validate_multihost(cfg: &v1::Config) -> Vec<String> {
    let Some(multihost) = &cfg.multihost else {
        return Vec::new();
    };
    let own = multihost.identity.clone().unwrap_or_default();
    if own.keyid.is_empty() {
        return vec!["identity keyid is required".into()];
    }
    if let Err(e) = identity::verify(&own) {
        return vec![format!("verify private key: {e}")];
    }

    let mut errors = Vec::new();
    let mut instance_ids: HashSet<&str> = HashSet::from([cfg.instance.as_str()]);
    let mut key_ids: HashSet<&str> = HashSet::from([own.keyid.as_str()]);
    let peers = multihost
        .authorized_clients
        .iter()
        .map(|p| ("authorized client", p, false))
        .chain(
            multihost
                .known_hosts
                .iter()
                .map(|p| ("known host", p, true)),
        );
    for (kind, peer, is_known_host) in peers {
        let label = format!("{kind} {:?}", peer.instance_id);
        if let Err(e) = validate_peer(peer, is_known_host) {
            errors.push(format!("{label}: {e}"));
        }
        if !instance_ids.insert(peer.instance_id.as_str()) {
            errors.push(format!(
                "{label}: instance ID {:?} is already used by another peer, an instance ID can only appear once as either a known host OR authorized client of the instance",
                peer.instance_id
            ));
        }
        if !key_ids.insert(peer.keyid.as_str()) {
            errors.push(format!(
                "{label}: key ID {:?} is already used by another peer, a key ID can only appear once across all peers",
                peer.keyid
            ));
        }
    }
    errors
}

fn validate_peer(peer: &v1::multihost::Peer, is_known_host: bool) -> Result<(), String> {
    validate_id(&peer.instance_id, ID_MAX_LEN)
        .map_err(|e| format!("id {:?} invalid: {e}", peer.instance_id))?;
    if peer.keyid.is_empty() {
        return Err("keyid must be specified".into());
    }
    if is_known_host && peer.instance_url.is_empty() {
        return Err("instance URL is required for known hosts".into());
    }
    for perm in &peer.permissions {
        for scope in &perm.scopes {
            if !scope_is_valid(scope) {
                return Err(format!("peer permissions: invalid scope format: {scope}"));
            }
        }
    }
    Ok(())
}

/// Permission scopes: `*`, or `repo:`, `plan:`, `!repo:`, `!plan:` followed
/// by a non-empty id.
pub fn scope_is_valid(scope: &str) -> bool {
    scope == "*"
        || ["repo:", "plan:", "!repo:", "!plan:"]
            .iter()
            .any(|prefix| scope.len() > prefix.len() && scope.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{identity, migrate::legacy_repo_guid};
    use crate::pb::v1::multihost::{Peer, Permission};

    fn repo(id: &str) -> v1::Repo {
        v1::Repo {
            id: id.into(),
            uri: format!("/backups/{id}"),
            guid: legacy_repo_guid(id),
            ..Default::default()
        }
    }

    fn plan(id: &str, repo: &str) -> v1::Plan {
        v1::Plan {
            id: id.into(),
            repo: repo.into(),
            paths: vec!["/data".into()],
            ..Default::default()
        }
    }

    fn cron(expr: &str) -> Option<v1::Schedule> {
        Some(v1::Schedule {
            schedule: Some(Kind::Cron(expr.into())),
            clock: 0,
        })
    }

    fn kind(k: Kind) -> Option<v1::Schedule> {
        Some(v1::Schedule {
            schedule: Some(k),
            clock: 0,
        })
    }

    fn keep_last(n: i32) -> Option<v1::RetentionPolicy> {
        Some(v1::RetentionPolicy {
            policy: Some(Policy::PolicyKeepLastN(n)),
        })
    }

    fn peer(instance: &str) -> Peer {
        Peer {
            instance_id: instance.into(),
            keyid: identity::generate().unwrap().keyid,
            instance_url: format!("http://{instance}:9898"),
            ..Default::default()
        }
    }

    fn user(name: &str, hash: Option<&str>) -> v1::User {
        v1::User {
            name: name.into(),
            password: hash.map(|h| v1::user::Password::PasswordBcrypt(h.into())),
        }
    }

    fn base() -> v1::Config {
        v1::Config {
            version: 6,
            instance: "host".into(),
            auth: Some(v1::Auth {
                disabled: true,
                users: vec![],
            }),
            repos: vec![repo("r1")],
            plans: vec![plan("p1", "r1")],
            multihost: Some(v1::Multihost {
                identity: Some(identity::generate().unwrap()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn multihost(c: &mut v1::Config) -> &mut v1::Multihost {
        c.multihost.as_mut().unwrap()
    }

    type Case = (&'static str, fn(&mut v1::Config), Option<&'static str>);

    /// One entry per rule: how to break a valid config, and the message the
    /// breakage must produce (`None`: the change is valid).
    const CASES: &[Case] = &[
        (
            "empty instance is only a warning",
            |c| c.instance.clear(),
            None,
        ),
        (
            "reserved instance id",
            |c| c.instance = "_x_".into(),
            Some(
                "instance ID \"_x_\" invalid: IDs starting and ending with '_' are reserved by backrest",
            ),
        ),
        (
            "instance id of 50 chars",
            |c| c.instance = "a".repeat(50),
            None,
        ),
        (
            "instance id too long",
            |c| c.instance = "a".repeat(51),
            Some("invalid: (> 50 chars): too long"),
        ),
        (
            "any characters allowed in ids",
            |c| c.instance = "host name/ü".into(),
            None,
        ),
        (
            "auth enabled without users",
            |c| {
                c.auth = Some(v1::Auth {
                    disabled: false,
                    users: vec![],
                })
            },
            Some("auth: auth enabled but no users"),
        ),
        ("auth absent", |c| c.auth = None, None),
        (
            "auth user with empty name",
            |c| {
                c.auth = Some(v1::Auth {
                    disabled: false,
                    users: vec![user("", Some("aGFzaA=="))],
                })
            },
            Some("auth: user \"\": empty"),
        ),
        (
            "auth user without hash",
            |c| {
                c.auth = Some(v1::Auth {
                    disabled: false,
                    users: vec![user("alice", None)],
                })
            },
            Some("auth: user \"alice\": password is required"),
        ),
        (
            "auth user with empty hash",
            |c| {
                c.auth = Some(v1::Auth {
                    disabled: false,
                    users: vec![user("bob", Some(""))],
                })
            },
            Some("auth: user \"bob\": password is required"),
        ),
        (
            "auth disabled ignores users",
            |c| {
                c.auth = Some(v1::Auth {
                    disabled: true,
                    users: vec![user("", None)],
                })
            },
            None,
        ),
        (
            "reserved repo id",
            |c| {
                c.repos[0].id = "_r_".into();
                c.plans[0].repo = "_r_".into();
            },
            Some(
                "repo _r_: id \"_r_\" invalid: IDs starting and ending with '_' are reserved by backrest",
            ),
        ),
        (
            "empty repo id",
            |c| {
                c.repos[0].id.clear();
                c.plans[0].repo.clear();
            },
            Some("repo : id \"\" invalid: empty"),
        ),
        (
            "guid with auto_initialize",
            |c| c.repos[0].auto_initialize = true,
            Some(
                "repo r1: auto_initialize set with guid but guid implies that repo is already initialized",
            ),
        ),
        (
            "guid of wrong length",
            |c| c.repos[0].guid = "abc".into(),
            Some("repo r1: guid \"abc\" invalid: must be 64 characters"),
        ),
        (
            "no guid, no auto_initialize",
            |c| c.repos[0].guid.clear(),
            Some(
                "repo r1: guid is required unless using auto_initialize to implicitly initialize repos",
            ),
        ),
        (
            "no guid with auto_initialize",
            |c| {
                c.repos[0].guid.clear();
                c.repos[0].auto_initialize = true;
            },
            None,
        ),
        (
            "uri missing",
            |c| c.repos[0].uri.clear(),
            Some("repo r1: uri is required"),
        ),
        (
            "prune schedule",
            |c| {
                c.repos[0].prune_policy = Some(v1::PrunePolicy {
                    schedule: kind(Kind::MaxFrequencyDays(0)),
                    ..Default::default()
                })
            },
            Some("repo r1: prune policy schedule: invalid max frequency days"),
        ),
        (
            "check schedule",
            |c| {
                c.repos[0].check_policy = Some(v1::CheckPolicy {
                    schedule: kind(Kind::MaxFrequencyHours(0)),
                    mode: None,
                })
            },
            Some("repo r1: check policy schedule: invalid max frequency hours"),
        ),
        (
            "forget schedule",
            |c| {
                c.repos[0].forget_policy = Some(v1::ForgetPolicy {
                    schedule: cron("61 * * * *"),
                    retention: keep_last(3),
                })
            },
            Some("repo r1: forget policy schedule: invalid cron \"61 * * * *\": "),
        ),
        (
            "enabled forget without retention",
            |c| {
                c.repos[0].forget_policy = Some(v1::ForgetPolicy {
                    schedule: cron("0 3 * * *"),
                    retention: None,
                })
            },
            Some("repo r1: forget policy must specify a retention policy"),
        ),
        (
            "enabled forget with empty retention",
            |c| {
                c.repos[0].forget_policy = Some(v1::ForgetPolicy {
                    schedule: cron("0 3 * * *"),
                    retention: Some(v1::RetentionPolicy { policy: None }),
                })
            },
            Some("repo r1: forget policy: retention policy must specify a policy"),
        ),
        (
            "disabled forget needs no retention",
            |c| {
                c.repos[0].forget_policy = Some(v1::ForgetPolicy {
                    schedule: kind(Kind::Disabled(true)),
                    retention: None,
                })
            },
            None,
        ),
        (
            "forget without schedule needs no retention",
            |c| c.repos[0].forget_policy = Some(v1::ForgetPolicy::default()),
            None,
        ),
        (
            "env without =",
            |c| c.repos[0].env = vec!["A=1".into(), "NOPE".into()],
            Some("repo r1: invalid env var NOPE, must take format KEY=VALUE"),
        ),
        (
            "duplicate repo id",
            |c| c.repos.push(repo("r1")),
            Some("repo r1: duplicate id"),
        ),
        (
            "duplicate plan id",
            |c| c.plans.push(plan("p1", "r1")),
            Some("plan p1: duplicate id"),
        ),
        (
            "reserved plan id",
            |c| c.plans[0].id = "_p_".into(),
            Some("plan _p_: id \"_p_\" invalid: IDs starting"),
        ),
        (
            "unparsable cron",
            |c| c.plans[0].schedule = cron("bad cron"),
            Some("plan p1: backup schedule: invalid cron \"bad cron\": "),
        ),
        (
            "six-field cron",
            |c| c.plans[0].schedule = cron("0 0 0 * * *"),
            Some("plan p1: backup schedule: invalid cron \"0 0 0 * * *\": "),
        ),
        (
            "cron macro",
            |c| c.plans[0].schedule = cron("@daily"),
            Some("plan p1: backup schedule: invalid cron \"@daily\": "),
        ),
        (
            "cron day of week 7",
            |c| c.plans[0].schedule = cron("0 0 * * 7"),
            Some(
                "plan p1: backup schedule: invalid cron \"0 0 * * 7\": next scheduled time is invalid (check for DOW=7 usage)",
            ),
        ),
        (
            "cron that never fires",
            |c| c.plans[0].schedule = cron("0 0 30 2 *"),
            Some("next scheduled time is invalid"),
        ),
        (
            "empty cron",
            |c| c.plans[0].schedule = cron(""),
            Some("plan p1: backup schedule: empty cron expression"),
        ),
        (
            "valid cron",
            |c| c.plans[0].schedule = cron("0 0/4 * * MON-FRI"),
            None,
        ),
        (
            "max frequency hours",
            |c| c.plans[0].schedule = kind(Kind::MaxFrequencyHours(-1)),
            Some("plan p1: backup schedule: invalid max frequency hours"),
        ),
        (
            "max frequency days",
            |c| c.plans[0].schedule = kind(Kind::MaxFrequencyDays(0)),
            Some("plan p1: backup schedule: invalid max frequency days"),
        ),
        (
            "valid max frequency",
            |c| c.plans[0].schedule = kind(Kind::MaxFrequencyDays(1)),
            None,
        ),
        (
            "disabled: false",
            |c| c.plans[0].schedule = kind(Kind::Disabled(false)),
            Some("plan p1: backup schedule: disabled boolean must be set to true"),
        ),
        (
            "schedule without kind",
            |c| c.plans[0].schedule = Some(v1::Schedule::default()),
            None,
        ),
        (
            "no paths",
            |c| c.plans[0].paths.clear(),
            Some(
                "plan p1: at least one path is required (unless backup_flags supplies paths, e.g. --files-from or --stdin-from-command)",
            ),
        ),
        (
            "backup_flags instead of paths",
            |c| {
                c.plans[0].paths.clear();
                c.plans[0].backup_flags = vec!["--files-from=/list".into()];
            },
            None,
        ),
        (
            "empty path",
            |c| c.plans[0].paths = vec!["/b".into(), "".into()],
            Some("plan p1: path[1] cannot be empty"),
        ),
        (
            "plan without repo",
            |c| c.plans[0].repo.clear(),
            Some("plan p1: repo is required"),
        ),
        (
            "plan with unknown repo",
            |c| c.plans[0].repo = "nope".into(),
            Some("plan p1: repo \"nope\" not found"),
        ),
        (
            "plan retention without policy",
            |c| c.plans[0].retention = Some(v1::RetentionPolicy { policy: None }),
            Some("plan p1: retention: retention policy must specify a policy"),
        ),
        (
            "empty time buckets",
            |c| {
                c.plans[0].retention = Some(v1::RetentionPolicy {
                    policy: Some(Policy::PolicyTimeBucketed(Default::default())),
                })
            },
            Some("plan p1: retention: time bucketed policy must specify a non-empty bucket"),
        ),
        (
            "one time bucket",
            |c| {
                c.plans[0].retention = Some(v1::RetentionPolicy {
                    policy: Some(Policy::PolicyTimeBucketed(
                        v1::retention_policy::TimeBucketedCounts {
                            weekly: 2,
                            ..Default::default()
                        },
                    )),
                })
            },
            None,
        ),
        ("no sync section", |c| c.multihost = None, None),
        (
            "identity missing",
            |c| multihost(c).identity = None,
            Some("multihost: identity keyid is required"),
        ),
        (
            "identity without key id",
            |c| multihost(c).identity.as_mut().unwrap().keyid.clear(),
            Some("multihost: identity keyid is required"),
        ),
        (
            "identity with wrong key id",
            |c| multihost(c).identity.as_mut().unwrap().keyid = "ed25519.x".into(),
            Some(
                "multihost: verify private key: public key_id provided does not match the derived key",
            ),
        ),
        (
            "identity with short seed",
            |c| multihost(c).identity.as_mut().unwrap().ed25519priv = "AAAA".into(),
            Some(
                "multihost: verify private key: invalid ed25519 private key seed size: got 3, want 32",
            ),
        ),
        (
            "identity with short public key",
            |c| multihost(c).identity.as_mut().unwrap().ed25519pub = "AAAA".into(),
            Some("multihost: verify private key: invalid ed25519 public key size: got 3, want 32"),
        ),
        (
            "identity seed of another key",
            |c| {
                let other = identity::generate().unwrap();
                multihost(c).identity.as_mut().unwrap().ed25519priv = other.ed25519priv;
            },
            Some("multihost: verify private key: private key does not match public key"),
        ),
        (
            "valid peers",
            |c| {
                let m = multihost(c);
                m.authorized_clients.push(Peer {
                    instance_url: String::new(),
                    ..peer("client")
                });
                m.known_hosts.push(peer("server"));
                m.known_hosts[0].permissions.push(Permission {
                    r#type: 2,
                    scopes: vec!["*".into(), "repo:a".into(), "!plan:b".into()],
                });
            },
            None,
        ),
        (
            "peer with empty instance id",
            |c| multihost(c).authorized_clients.push(peer("")),
            Some("multihost: authorized client \"\": id \"\" invalid: empty"),
        ),
        (
            "peer instance id too long",
            |c| multihost(c).known_hosts.push(peer(&"h".repeat(51))),
            Some("invalid: (> 50 chars): too long"),
        ),
        (
            "peer without key id",
            |c| {
                multihost(c).authorized_clients.push(Peer {
                    keyid: String::new(),
                    ..peer("client")
                })
            },
            Some("multihost: authorized client \"client\": keyid must be specified"),
        ),
        (
            "known host without url",
            |c| {
                multihost(c).known_hosts.push(Peer {
                    instance_url: String::new(),
                    ..peer("server")
                })
            },
            Some("multihost: known host \"server\": instance URL is required for known hosts"),
        ),
        (
            "bad permission scope",
            |c| {
                multihost(c).authorized_clients.push(Peer {
                    permissions: vec![Permission {
                        r#type: 1,
                        scopes: vec!["repo:".into()],
                    }],
                    ..peer("client")
                })
            },
            Some(
                "multihost: authorized client \"client\": peer permissions: invalid scope format: repo:",
            ),
        ),
        (
            "instance id used twice",
            |c| {
                let m = multihost(c);
                m.authorized_clients.push(peer("twin"));
                m.known_hosts.push(peer("twin"));
            },
            Some(
                "multihost: known host \"twin\": instance ID \"twin\" is already used by another peer",
            ),
        ),
        (
            "peer named like this instance",
            |c| multihost(c).authorized_clients.push(peer("host")),
            Some(
                "multihost: authorized client \"host\": instance ID \"host\" is already used by another peer",
            ),
        ),
        (
            "key id used twice",
            |c| {
                let m = multihost(c);
                let a = peer("a");
                let b = Peer {
                    keyid: a.keyid.clone(),
                    ..peer("b")
                };
                m.authorized_clients.push(a);
                m.known_hosts.push(b);
            },
            Some("multihost: known host \"b\": key ID \"ed25519."),
        ),
        (
            "peer with this instance's key id",
            |c| {
                let own = c
                    .multihost
                    .as_ref()
                    .unwrap()
                    .identity
                    .as_ref()
                    .unwrap()
                    .keyid
                    .clone();
                multihost(c).authorized_clients.push(Peer {
                    keyid: own,
                    ..peer("c")
                });
            },
            Some("is already used by another peer, a key ID can only appear once across all peers"),
        ),
    ];

    #[test]
    fn the_base_config_is_valid() {
        validate(&mut base()).unwrap();
    }

    #[test]
    fn each_rule_reports_its_message() {
        for (name, mutate, want) in CASES {
            let mut cfg = base();
            mutate(&mut cfg);
            match (validate(&mut cfg), want) {
                (Ok(()), None) => {}
                (Ok(()), Some(w)) => panic!("{name}: accepted, expected an error containing {w:?}"),
                (Err(e), None) => panic!("{name}: rejected with {e}"),
                (Err(e), Some(w)) => assert!(
                    e.to_string().contains(w),
                    "{name}: {e} does not contain {w:?}"
                ),
            }
        }
    }

    #[test]
    fn errors_accumulate_into_one_readable_list() {
        let mut cfg = base();
        cfg.repos[0].uri.clear();
        cfg.plans[0].repo = "nope".into();
        let e = validate(&mut cfg).unwrap_err();
        assert_eq!(
            e.errors,
            vec![
                "repo r1: uri is required".to_string(),
                "plan p1: repo \"nope\" not found".to_string()
            ]
        );
        assert_eq!(
            e.to_string(),
            "repo r1: uri is required; plan p1: repo \"nope\" not found"
        );
    }

    #[test]
    fn validation_sorts_repos_plans_env_and_paths() {
        let mut cfg = base();
        cfg.repos = vec![repo("zeta"), repo("alpha")];
        cfg.repos[0].env = vec!["B=2".into(), "A=1".into()];
        cfg.plans = vec![plan("p2", "zeta"), plan("p1", "alpha")];
        cfg.plans[0].paths = vec!["/z".into(), "/a".into()];
        validate(&mut cfg).unwrap();
        assert_eq!(
            cfg.repos.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["alpha", "zeta"]
        );
        assert_eq!(cfg.repos[1].env, ["A=1", "B=2"]);
        assert_eq!(
            cfg.plans.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
            ["p1", "p2"]
        );
        assert_eq!(cfg.plans[1].paths, ["/a", "/z"]);
    }

    #[test]
    fn orphaned_remote_repos_and_their_plans_are_removed() {
        let mut cfg = base();
        multihost(&mut cfg).known_hosts.push(peer("server"));
        cfg.repos.push(v1::Repo {
            origin_instance_id: "server".into(),
            ..repo("shared")
        });
        cfg.repos.push(v1::Repo {
            origin_instance_id: "gone".into(),
            ..repo("orphan")
        });
        cfg.plans.push(plan("uses-shared", "shared"));
        cfg.plans.push(plan("uses-orphan", "orphan"));
        validate(&mut cfg).unwrap();
        assert_eq!(
            cfg.repos.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["r1", "shared"]
        );
        assert_eq!(
            cfg.plans.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
            ["p1", "uses-shared"]
        );
    }
}
