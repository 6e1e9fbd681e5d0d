//! AddRepo, RemoveRepo and CheckRepoExists.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::{sanitize_for_network, validate};
use crate::connect::ConnectError;
use crate::oplog::Query;
use crate::orchestrator::{Task, TaskKind, priority};
use crate::pb::v1;
use crate::restic::{ErrorKind, RepoClient, ResticError, repo::discard};
use crate::server::AppState;

/// A restic client for a repo given in a request.
pub fn client_for(state: &AppState, repo: v1::Repo) -> Result<RepoClient, ConnectError> {
    let restic = state
        .orchestrator
        .restic()
        .map_err(ConnectError::failed_precondition)?;
    RepoClient::new(restic, repo).map_err(ConnectError::invalid_argument)
}

pub fn restic_error(context: &str, e: ResticError) -> ConnectError {
    let msg = format!("{context}: {e}");
    match e.kind {
        ErrorKind::Cancelled => ConnectError::canceled(msg),
        _ => ConnectError::unknown(msg),
    }
}

/// The candidate config with `repo` upserted, validated.
fn candidate(state: &AppState, repo: &v1::Repo) -> Result<v1::Config, ConnectError> {
    let mut cfg = (*state.config.get()).clone();
    match cfg.repos.iter_mut().find(|r| r.id == repo.id) {
        Some(r) => *r = repo.clone(),
        None => cfg.repos.push(repo.clone()),
    }
    validate::validate(&mut cfg)
        .map_err(|e| ConnectError::invalid_argument(format!("validation error: {e}")))?;
    Ok(cfg)
}

pub async fn add_repo(
    state: &AppState,
    req: v1::AddRepoRequest,
) -> Result<v1::Config, ConnectError> {
    let mut repo = req
        .repo
        .ok_or_else(|| ConnectError::invalid_argument("repo is required"))?;
    if repo.id.is_empty() {
        return Err(ConnectError::invalid_argument("repo.id is required"));
    }
    super::sftp::sanitize_sftp_flags(&mut repo);
    // Validate everything but the guid before touching restic.
    let mut probe = repo.clone();
    probe.guid = "0".repeat(64);
    probe.auto_initialize = false;
    candidate(state, &probe)?;

    let client = client_for(state, repo.clone())?;
    let cancel = CancellationToken::new();
    let config =
        match client.cat_config(&cancel, &mut discard()).await {
            Ok(c) => c,
            Err(e) if e.kind == ErrorKind::RepoNotFound => client
                .init(&cancel, &mut discard())
                .await
                .map_err(|e| restic_error("failed to init repo", e))?,
            Err(e) => return Err(restic_error("failed to init repo", e)),
        };
    let guid: String = config.id.chars().take(64).collect();
    if guid.len() != 64 {
        return Err(ConnectError::unknown(format!(
            "failed to get repo config: restic reported repository id {:?}",
            config.id
        )));
    }
    repo.guid = guid.clone();
    repo.auto_initialize = false;

    let previous_guid = state
        .config
        .get()
        .repos
        .iter()
        .find(|r| r.id == repo.id)
        .map(|r| r.guid.clone());
    let repo2 = repo.clone();
    let saved = state
        .config
        .transform(move |mut cfg| {
            match cfg.repos.iter_mut().find(|r| r.id == repo2.id) {
                Some(r) => *r = repo2,
                None => cfg.repos.push(repo2),
            }
            // Unlike Backrest we bump modno: a client still holding the old
            // config must not silently drop this repo with its next SetConfig.
            cfg.modno += 1;
            Ok(Some(cfg))
        })
        .await?;

    // The repo now points at another restic repository: its history follows.
    if let Some(old) = previous_guid.filter(|g| !g.is_empty() && *g != guid) {
        let instance = saved.instance.clone();
        let repo_id = repo.id.clone();
        let new_guid = guid.clone();
        let q = Query::all().repo_guid(old).instance_id(instance);
        state
            .oplog
            .transform(&q, move |mut op| {
                (op.repo_id == repo_id).then(|| {
                    op.repo_guid = new_guid.clone();
                    op
                })
            })
            .await?;
    }
    if !saved.instance.is_empty()
        && let Err(e) = state
            .orchestrator
            .schedule_now(
                Task::oneoff(TaskKind::IndexSnapshots, &repo.id),
                priority::INTERACTIVE | priority::INDEX_SNAPSHOTS,
            )
            .await
    {
        tracing::warn!("cannot index snapshots of {}: {e}", repo.id);
    }
    Ok(sanitize_for_network(&saved))
}

pub async fn remove_repo(
    state: &AppState,
    req: v1::RemoveRepoRequest,
) -> Result<v1::Config, ConnectError> {
    let id = req.repo_id;
    let cfg = state.config.get();
    let users: Vec<&str> = cfg
        .plans
        .iter()
        .filter(|p| p.repo == id)
        .map(|p| p.id.as_str())
        .collect();
    if !users.is_empty() {
        return Err(ConnectError::failed_precondition(format!(
            "repo \"{id}\" is used by plan(s) {}: delete or move those plans first",
            users.join(", ")
        )));
    }
    if !cfg.repos.iter().any(|r| r.id == id) {
        return Err(ConnectError::not_found(format!(
            "get repo \"{id}\": repo not found"
        )));
    }
    let instance = cfg.instance.clone();
    let id2 = id.clone();
    let saved = state
        .config
        .transform(move |mut cfg| {
            cfg.repos.retain(|r| r.id != id2);
            cfg.modno += 1;
            Ok(Some(cfg))
        })
        .await?;
    // Its local history goes; the repository's data is never touched.
    let ops = state
        .oplog
        .query(&Query::all().repo_id(&id).instance_id(&instance))
        .await?;
    let ids: Vec<i64> = ops.iter().map(|o| o.id).collect();
    for chunk in ids.chunks(256) {
        state.oplog.delete(chunk).await?;
        let _ = state.logs.delete_by_owners(chunk).await;
    }
    Ok(sanitize_for_network(&saved))
}

pub async fn check_repo_exists(
    state: &AppState,
    req: v1::CheckRepoExistsRequest,
) -> Result<v1::CheckRepoExistsResponse, ConnectError> {
    let mut repo = req
        .repo
        .ok_or_else(|| ConnectError::invalid_argument("repo is required"))?;
    if repo.guid.is_empty() {
        repo.guid = "0".repeat(64);
    }
    repo.auto_initialize = false;
    super::sftp::sanitize_sftp_flags(&mut repo);
    candidate(state, &repo)?;
    let client = client_for(state, repo)?;
    let cancel = CancellationToken::new();
    let probe = tokio::time::timeout(
        Duration::from_secs(30),
        client.cat_config(&cancel, &mut discard()),
    )
    .await;
    let result = match probe {
        Ok(r) => r,
        Err(_) => {
            cancel.cancel();
            return Err(ConnectError::deadline_exceeded(
                "restic did not answer within 30s (check the URI and network)",
            ));
        }
    };
    match result {
        Ok(_) => Ok(v1::CheckRepoExistsResponse {
            exists: true,
            ..Default::default()
        }),
        Err(e) if e.kind == ErrorKind::RepoNotFound => Ok(v1::CheckRepoExistsResponse::default()),
        Err(e) if e.kind == ErrorKind::HostKeyUntrusted => Ok(v1::CheckRepoExistsResponse {
            host_key_untrusted: true,
            ..Default::default()
        }),
        Err(e) => Err(restic_error("check repo", e)),
    }
}
