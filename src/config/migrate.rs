//! Config format versions and the migrations between them.
//!
//! The version is the number of migrations a config has been through. The
//! first two (to versions 1 and 2) are retired: a version-1 config must be
//! upgraded by Backrest 1.4.0 first. From version 2 on, the remaining steps
//! (to 3, 4, 5 and 6) are applied in order.

use anyhow::bail;

use crate::pb::v1;
use crate::pb::v1::schedule::Clock;

/// The config format this server reads and writes.
pub const CURRENT_VERSION: i32 = 6;

/// The environment variables that, before Backrest's fix for its issue 1139,
/// silently overrode the repo passwords set in the UI.
pub const CONFLICTING_PASSWORD_VARS: [&str; 3] = [
    "RESTIC_PASSWORD",
    "RESTIC_PASSWORD_FILE",
    "RESTIC_PASSWORD_COMMAND",
];

/// Acknowledges the issue-1139 conflict and lets migration 005 rewrite the
/// affected repos.
pub const FIX_PASSWORDS_VAR: &str = "ISSUE_1139_FIX_PASSWORDS";

/// Brings `cfg` (whose `version` is non-zero) to [`CURRENT_VERSION`].
/// `env` looks up an environment variable; an empty value counts as unset.
pub fn apply(cfg: &mut v1::Config, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<()> {
    if cfg.version > CURRENT_VERSION {
        bail!(
            "config version {} is greater than the latest known config format {CURRENT_VERSION}; \
             was this config written by a newer release?",
            cfg.version
        );
    }
    if cfg.version < 2 {
        bail!(
            "config version {} is too old to migrate: upgrade it with Backrest 1.4.0 first \
             (the last release that can read it), then start this server again",
            cfg.version
        );
    }
    tracing::info!(
        "migrating config from version {} to {CURRENT_VERSION}",
        cfg.version
    );
    if cfg.version < 3 {
        relative_scheduling(cfg);
    }
    if cfg.version < 4 {
        repo_guids(cfg);
    }
    if cfg.version < 5 {
        check_repo_passwords(cfg, env)?;
    }
    if cfg.version < 6 {
        drop_legacy_identity(cfg);
    }
    cfg.version = CURRENT_VERSION;
    Ok(())
}

/// 2 → 3: repos with a prune policy compute prune and check schedules from
/// the last run.
fn relative_scheduling(cfg: &mut v1::Config) {
    for repo in &mut cfg.repos {
        let Some(prune) = repo.prune_policy.as_mut() else {
            continue;
        };
        if let Some(s) = prune.schedule.as_mut() {
            s.clock = Clock::LastRunTime as i32;
        }
        if let Some(s) = repo.check_policy.as_mut().and_then(|c| c.schedule.as_mut()) {
            s.clock = Clock::LastRunTime as i32;
        }
    }
}

/// 3 → 4: repos without a GUID get the legacy one, hex(sha256(id)).
fn repo_guids(cfg: &mut v1::Config) {
    for repo in &mut cfg.repos {
        if repo.guid.is_empty() {
            repo.guid = legacy_repo_guid(&repo.id);
        }
    }
}

/// The GUID used for repos that predate GUIDs: hex(sha256(repo id)).
pub fn legacy_repo_guid(repo_id: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(repo_id.as_bytes()))
}

/// 4 → 5: Backrest issue 1139. If repos have a password and one of the
/// restic password variables is set in this process's environment, the repos
/// may really be encrypted with the variable's password. Refuse to start
/// unless the user acknowledges with ISSUE_1139_FIX_PASSWORDS, in which case
/// the variable becomes the repo's explicit password source.
fn check_repo_passwords(
    cfg: &mut v1::Config,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<()> {
    let set_vars: Vec<(&str, String)> = CONFLICTING_PASSWORD_VARS
        .iter()
        .filter_map(|name| env(name).filter(|v| !v.is_empty()).map(|v| (*name, v)))
        .collect();
    let affected: Vec<usize> = (0..cfg.repos.len())
        .filter(|&i| !cfg.repos[i].password.is_empty())
        .collect();
    if affected.is_empty() || set_vars.is_empty() {
        return Ok(());
    }

    if env(FIX_PASSWORDS_VAR).is_some_and(|v| !v.is_empty()) {
        for &i in &affected {
            let repo = &mut cfg.repos[i];
            for (name, value) in &set_vars {
                if *name == "RESTIC_PASSWORD" {
                    tracing::warn!(repo = %repo.id, "issue 1139 fix: replacing the repo password with the value of RESTIC_PASSWORD");
                    repo.password = value.clone();
                } else {
                    tracing::warn!(repo = %repo.id, "issue 1139 fix: clearing the repo password and adding {name} to the repo env");
                    repo.password.clear();
                    repo.env.push(format!("{name}={value}"));
                }
            }
        }
        return Ok(());
    }

    let vars: Vec<&str> = set_vars.iter().map(|(n, _)| *n).collect();
    let repos: Vec<&str> = affected.iter().map(|&i| cfg.repos[i].id.as_str()).collect();
    bail!(
        "refusing to start: possible restic password conflict (Backrest issue 1139, \
         https://github.com/garethgeorge/backrest/issues/1139).\n\
         \n\
         Older Backrest releases let these environment variables of the server process take \
         precedence over the password configured for a repo, so the repos below may be encrypted \
         with the variable's password rather than the configured one.\n\
         \n\
         Password variables set: {vars}\n\
         Repos with a configured password: {repos}\n\
         \n\
         To resolve it, start again with {FIX_PASSWORDS_VAR}=1. For each repo listed, \
         RESTIC_PASSWORD then replaces the configured password, and RESTIC_PASSWORD_FILE / \
         RESTIC_PASSWORD_COMMAND clear it and are added to the repo's env as NAME=value, so \
         restic keeps finding the password the same way. The corrected config is saved, after \
         which the variables can be removed from the server's environment.",
        vars = vars.join(", "),
        repos = repos.join(", "),
    )
}

/// 5 → 6: identities that are not complete ed25519 keys (the old ECDSA
/// ones) are dropped; a new one is generated afterwards.
fn drop_legacy_identity(cfg: &mut v1::Config) {
    let Some(multihost) = cfg.multihost.as_mut() else {
        return;
    };
    let Some(id) = multihost.identity.as_ref() else {
        return;
    };
    let usable = id.keyid.starts_with(super::identity::KEY_ID_PREFIX)
        && !id.ed25519priv.is_empty()
        && !id.ed25519pub.is_empty();
    if !usable {
        tracing::warn!(key_id = %id.keyid, "dropping a legacy (non-ed25519) sync identity; a new one will be generated");
        multihost.identity = None;
    }
}
