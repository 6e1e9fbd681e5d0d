//! ConfigStore: loading, first start, migrations on disk, transform.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::*;
use crate::connect::Code;
use crate::pb::v1::schedule::Clock;

fn no_env(_: &str) -> Option<String> {
    None
}

fn open(path: &Path) -> anyhow::Result<ConfigStore> {
    ConfigStore::open_with_env(path, &no_env)
}

fn open_env(path: &Path, vars: &[(&str, &str)]) -> anyhow::Result<ConfigStore> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    ConfigStore::open_with_env(path, &move |k| vars.get(k).cloned())
}

fn backups(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".bak."))
        .collect();
    v.sort();
    v
}

fn identity_of(cfg: &v1::Config) -> v1::PrivateKey {
    cfg.multihost.as_ref().unwrap().identity.clone().unwrap()
}

/// A config.json as Backrest 1.14 writes it (protojson, json names, int64
/// as strings, `backup_flags` in snake case), plus fields this server does
/// not know, which must be ignored.
fn backrest_style_config(identity: &v1::PrivateKey) -> String {
    let guid = migrate::legacy_repo_guid("b2");
    format!(
        r#"{{
  "modno": 17,
  "version": 6,
  "instance": "nas",
  "futureTopLevel": {{"nested": [1, 2, 3]}},
  "repos": [
    {{
      "id": "b2",
      "uri": "b2:bucket:/restic",
      "guid": "{guid}",
      "password": "hunter2",
      "env": ["B2_ACCOUNT_KEY=zzz", "B2_ACCOUNT_ID=aaa"],
      "flags": ["--limit-upload=1000"],
      "prunePolicy": {{"schedule": {{"cron": "0 0 1 * *", "clock": "CLOCK_LAST_RUN_TIME"}}, "maxUnusedBytes": "1000000", "maxUnusedPercent": 10}},
      "checkPolicy": {{"schedule": {{"maxFrequencyDays": 30}}, "readDataSubsetPercent": 5}},
      "commandPrefix": {{"ioNice": "IO_BEST_EFFORT_LOW", "cpuNice": "CPU_LOW"}},
      "autoUnlock": true,
      "someNewRepoOption": "ignored"
    }}
  ],
  "plans": [
    {{
      "id": "photos",
      "repo": "b2",
      "paths": ["/srv/photos", "/srv/albums"],
      "excludes": ["*.tmp"],
      "schedule": {{"cron": "0 0/4 * * *", "clock": "CLOCK_LOCAL"}},
      "retention": {{"policyTimeBucketed": {{"daily": 7, "weekly": 4, "keepLastN": 2}}}},
      "hooks": [{{"conditions": ["CONDITION_SNAPSHOT_ERROR"], "actionCommand": {{"command": "echo failed"}}}}],
      "backup_flags": ["--one-file-system"],
      "unknownPlanField": 5
    }}
  ],
  "auth": {{
    "users": [{{"name": "admin", "passwordBcrypt": "JDJhJDEwJHNvbWVoYXNo"}}]
  }},
  "sync": {{
    "identity": {{"keyId": "{kid}", "ed25519priv": "{priv}", "ed25519pub": "{public}"}},
    "knownHosts": [{{"instanceId": "office", "keyId": "ed25519.office-key", "instanceUrl": "https://office:9898", "permissions": [{{"type": "PERMISSION_READ_CONFIG", "scopes": ["*"]}}]}}]
  }}
}}"#,
        kid = identity.keyid,
        priv = identity.ed25519priv,
        public = identity.ed25519pub,
    )
}

#[test]
fn first_start_writes_a_private_default_config_with_a_stable_identity() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/config.json");
    let store = open(&path).unwrap();
    assert_eq!(store.path(), path);

    let cfg = store.get();
    assert_eq!(cfg.version, CURRENT_VERSION);
    assert_eq!(cfg.instance, "");
    assert_eq!(cfg.modno, 0);
    assert!(cfg.repos.is_empty() && cfg.plans.is_empty());
    assert_eq!(
        cfg.auth,
        Some(v1::Auth {
            disabled: true,
            users: vec![]
        })
    );
    let id = identity_of(&cfg);
    identity::verify(&id).unwrap();

    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let bytes = fs::read(&path).unwrap();
    let on_disk: v1::Config = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(on_disk, *cfg);
    let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(json["version"], 6);
    assert_eq!(json["auth"]["disabled"], true);
    assert_eq!(json["sync"]["identity"]["keyId"], id.keyid.as_str());

    drop(store);
    let again = open(&path).unwrap();
    assert_eq!(
        identity_of(&again.get()),
        id,
        "the identity must survive a restart"
    );
    assert_eq!(
        fs::read(&path).unwrap(),
        bytes,
        "reopening must not rewrite the file"
    );
    assert!(backups(path.parent().unwrap()).is_empty());
}

#[test]
fn a_backrest_config_is_read_without_being_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    let id = identity::generate().unwrap();
    let text = backrest_style_config(&id);
    fs::write(&path, &text).unwrap();

    let store = open(&path).unwrap();
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        text,
        "file bytes must be unchanged"
    );
    assert!(backups(dir.path()).is_empty());

    let cfg = store.get();
    assert_eq!(cfg.modno, 17);
    assert_eq!(cfg.instance, "nas");
    assert_eq!(identity_of(&cfg), id);
    let repo = &cfg.repos[0];
    assert_eq!(repo.password, "hunter2");
    // Sorted in memory by validation, though the file keeps its order.
    assert_eq!(repo.env, ["B2_ACCOUNT_ID=aaa", "B2_ACCOUNT_KEY=zzz"]);
    assert_eq!(
        repo.prune_policy.as_ref().unwrap().max_unused_bytes,
        1_000_000
    );
    assert_eq!(
        repo.prune_policy
            .as_ref()
            .unwrap()
            .schedule
            .as_ref()
            .unwrap()
            .clock,
        Clock::LastRunTime as i32
    );
    let plan = &cfg.plans[0];
    assert_eq!(plan.backup_flags, ["--one-file-system"]);
    assert_eq!(plan.paths, ["/srv/albums", "/srv/photos"]);
    let users = &cfg.auth.as_ref().unwrap().users;
    assert_eq!(
        users[0].password,
        Some(v1::user::Password::PasswordBcrypt(
            "JDJhJDEwJHNvbWVoYXNo".into()
        ))
    );
    assert!(!cfg.auth.as_ref().unwrap().disabled);
    assert_eq!(
        cfg.multihost.as_ref().unwrap().known_hosts[0].instance_id,
        "office"
    );
}

#[test]
fn migration_from_version_2_sets_relative_clocks_and_guids() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    let text = r#"{
      "version": 2,
      "instance": "old",
      "repos": [
        {"id": "pruned", "uri": "/r1",
         "prunePolicy": {"schedule": {"maxFrequencyDays": 7}},
         "checkPolicy": {"schedule": {"maxFrequencyDays": 30}}},
        {"id": "checked-only", "uri": "/r2",
         "checkPolicy": {"schedule": {"maxFrequencyDays": 30}}},
        {"id": "has-guid", "uri": "/r3", "guid": "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
      ]
    }"#;
    fs::write(&path, text).unwrap();
    let store = open(&path).unwrap();
    let cfg = store.get();
    assert_eq!(cfg.version, 6);
    let by_id = |id: &str| cfg.repos.iter().find(|r| r.id == id).unwrap().clone();

    let pruned = by_id("pruned");
    let clock = |s: &Option<v1::Schedule>| s.as_ref().unwrap().clock;
    assert_eq!(
        clock(&pruned.prune_policy.as_ref().unwrap().schedule),
        Clock::LastRunTime as i32
    );
    assert_eq!(
        clock(&pruned.check_policy.as_ref().unwrap().schedule),
        Clock::LastRunTime as i32
    );
    // Only repos with a prune policy are touched by 003.
    let checked = by_id("checked-only");
    assert_eq!(
        clock(&checked.check_policy.as_ref().unwrap().schedule),
        Clock::Default as i32
    );

    // 004: hex(sha256(id)) where the guid was missing.
    use sha2::{Digest, Sha256};
    assert_eq!(pruned.guid, hex::encode(Sha256::digest(b"pruned")));
    assert_eq!(
        by_id("has-guid").guid,
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    );

    // The migrated config was saved, and the original kept as a backup.
    let saved: v1::Config = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    assert_eq!(saved, *cfg);
    let baks = backups(dir.path());
    assert_eq!(baks.len(), 1);
    assert_eq!(fs::read_to_string(dir.path().join(&baks[0])).unwrap(), text);
    identity::verify(&identity_of(&cfg)).unwrap();
}

const V4_WITH_PASSWORD: &str = r#"{
  "version": 4,
  "instance": "h",
  "repos": [
    {"id": "withpw", "uri": "/r1", "password": "from-ui", "env": ["X=1"],
     "guid": "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
    {"id": "nopw", "uri": "/r2",
     "guid": "1123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
  ]
}"#;

#[test]
fn migration_005_refuses_to_start_on_a_password_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    fs::write(&path, V4_WITH_PASSWORD).unwrap();
    let err = open_env(&path, &[("RESTIC_PASSWORD_FILE", "/run/pw")])
        .err()
        .expect("must refuse");
    let msg = format!("{err:#}");
    for needle in [
        "issue 1139",
        "RESTIC_PASSWORD_FILE",
        "withpw",
        "ISSUE_1139_FIX_PASSWORDS=1",
    ] {
        assert!(msg.contains(needle), "{msg} should mention {needle}");
    }
    assert!(
        !msg.contains("nopw"),
        "repos without a password are not affected: {msg}"
    );
    assert_eq!(fs::read_to_string(&path).unwrap(), V4_WITH_PASSWORD);

    // An empty variable counts as unset.
    let store = open_env(&path, &[("RESTIC_PASSWORD", "")]).unwrap();
    assert_eq!(
        store
            .get()
            .repos
            .iter()
            .find(|r| r.id == "withpw")
            .unwrap()
            .password,
        "from-ui"
    );
}

#[test]
fn migration_005_fixes_repos_when_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");

    fs::write(&path, V4_WITH_PASSWORD).unwrap();
    let env = [
        ("RESTIC_PASSWORD_COMMAND", "pass show restic"),
        (migrate::FIX_PASSWORDS_VAR, "1"),
    ];
    let cfg = open_env(&path, &env).unwrap().get();
    let repo = cfg.repos.iter().find(|r| r.id == "withpw").unwrap();
    assert_eq!(repo.password, "");
    assert_eq!(
        repo.env,
        ["RESTIC_PASSWORD_COMMAND=pass show restic", "X=1"]
    );
    let untouched = cfg.repos.iter().find(|r| r.id == "nopw").unwrap();
    assert!(untouched.env.is_empty());

    fs::remove_file(&path).unwrap();
    fs::write(&path, V4_WITH_PASSWORD).unwrap();
    let env = [
        ("RESTIC_PASSWORD", "from-env"),
        (migrate::FIX_PASSWORDS_VAR, "1"),
    ];
    let cfg = open_env(&path, &env).unwrap().get();
    let repo = cfg.repos.iter().find(|r| r.id == "withpw").unwrap();
    assert_eq!(repo.password, "from-env");
    assert_eq!(repo.env, ["X=1"]);
    let saved: v1::Config = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    assert_eq!(
        saved
            .repos
            .iter()
            .find(|r| r.id == "withpw")
            .unwrap()
            .password,
        "from-env"
    );
}

#[test]
fn migration_006_replaces_a_legacy_identity_only_below_version_6() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    let legacy = r#"{"version": 5, "instance": "h",
      "sync": {"identity": {"keyId": "ecdsa.abc", "ecdsaPriv": "-----BEGIN...", "ed25519pub": "x"},
               "knownHosts": []}}"#;
    fs::write(&path, legacy).unwrap();
    let cfg = open(&path).unwrap().get();
    let id = identity_of(&cfg);
    assert!(id.keyid.starts_with("ed25519."), "{id:?}");
    identity::verify(&id).unwrap();

    // A version-5 ed25519 identity is kept.
    let good = identity::generate().unwrap();
    let text = format!(
        r#"{{"version": 5, "instance": "h", "sync": {{"identity": {{"keyId": "{}", "ed25519priv": "{}", "ed25519pub": "{}"}}}}}}"#,
        good.keyid, good.ed25519priv, good.ed25519pub
    );
    fs::write(&path, &text).unwrap();
    assert_eq!(identity_of(&open(&path).unwrap().get()), good);

    // At version 6 the migration does not run, so the same legacy identity
    // is a validation error.
    fs::write(&path, legacy.replace("\"version\": 5", "\"version\": 6")).unwrap();
    let err = format!(
        "{:#}",
        open(&path).err().expect("legacy identity at version 6")
    );
    assert!(err.contains("multihost: verify private key"), "{err}");
}

#[test]
fn unsupported_versions_are_refused_and_the_file_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    for (version, needle) in [
        (1, "Backrest 1.4.0"),
        (-3, "Backrest 1.4.0"),
        (
            7,
            "config version 7 is greater than the latest known config format 6",
        ),
    ] {
        let text = format!(r#"{{"version": {version}, "instance": "h"}}"#);
        fs::write(&path, &text).unwrap();
        let err = format!(
            "{:#}",
            open(&path)
                .err()
                .unwrap_or_else(|| panic!("version {version} accepted"))
        );
        assert!(err.contains(needle), "version {version}: {err}");
        assert!(
            err.contains(&format!("config version {version} ")),
            "version {version}: {err}"
        );
        assert_eq!(fs::read_to_string(&path).unwrap(), text);
    }
    assert!(backups(dir.path()).is_empty());
}

#[test]
fn a_config_without_version_is_read_as_current() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    fs::write(
        &path,
        r#"{"instance": "hand-written", "auth": {"disabled": true}}"#,
    )
    .unwrap();
    let cfg = open(&path).unwrap().get();
    assert_eq!(cfg.version, CURRENT_VERSION);
    assert_eq!(cfg.instance, "hand-written");
    // Saved with the version and the generated identity, so the next start
    // reads the same thing.
    let saved: v1::Config = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    assert_eq!(saved, *cfg);
    let bytes = fs::read(&path).unwrap();
    assert_eq!(identity_of(&open(&path).unwrap().get()), identity_of(&cfg));
    assert_eq!(fs::read(&path).unwrap(), bytes);

    fs::write(&path, "{}").unwrap();
    assert_eq!(open(&path).unwrap().get().version, CURRENT_VERSION);
}

#[test]
fn an_invalid_or_unreadable_file_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    let id = identity::generate().unwrap();
    let text = backrest_style_config(&id).replace(r#""repo": "b2","#, r#""repo": "nope","#);
    fs::write(&path, &text).unwrap();
    let err = format!("{:#}", open(&path).err().expect("invalid config accepted"));
    assert!(
        err.contains("plan photos: repo \"nope\" not found"),
        "{err}"
    );
    assert_eq!(fs::read_to_string(&path).unwrap(), text);

    fs::write(&path, "{ not json").unwrap();
    let err = format!("{:#}", open(&path).err().expect("garbage accepted"));
    assert!(err.contains("cannot parse"), "{err}");
    assert_eq!(fs::read_to_string(&path).unwrap(), "{ not json");
}

fn valid_repo(id: &str) -> v1::Repo {
    v1::Repo {
        id: id.into(),
        uri: format!("/b/{id}"),
        guid: migrate::legacy_repo_guid(id),
        ..Default::default()
    }
}

#[tokio::test]
async fn transform_validates_persists_caches_and_notifies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    let store = open(&path).unwrap();
    let mut rx = store.subscribe();
    let before = store.get();

    let stored = store
        .transform(|mut c| {
            c.instance = "box".into();
            c.repos = vec![valid_repo("z"), valid_repo("a")];
            Ok(Some(c))
        })
        .await
        .unwrap();
    // Normalized by validation.
    assert_eq!(
        stored
            .repos
            .iter()
            .map(|r| r.id.as_str())
            .collect::<Vec<_>>(),
        ["a", "z"]
    );
    assert_eq!(store.get(), stored);
    assert!(rx.has_changed().unwrap());
    assert_eq!(*rx.borrow_and_update(), stored);
    let on_disk: v1::Config = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    assert_eq!(on_disk, *stored);
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let baks = backups(dir.path());
    assert_eq!(baks.len(), 1);
    let previous: v1::Config =
        serde_json::from_slice(&fs::read(dir.path().join(&baks[0])).unwrap()).unwrap();
    assert_eq!(previous, *before);

    // Returning None changes nothing and writes nothing.
    let bytes = fs::read(&path).unwrap();
    let same = store.transform(|_| Ok(None)).await.unwrap();
    assert_eq!(same, stored);
    assert!(!rx.has_changed().unwrap());
    assert_eq!(fs::read(&path).unwrap(), bytes);

    // Errors from the closure come back as they are.
    let err = store
        .transform(|_| Err(ConnectError::aborted("no thanks")))
        .await
        .unwrap_err();
    assert_eq!(err, ConnectError::aborted("no thanks"));
}

#[tokio::test]
async fn a_failed_transform_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    let store = open(&path).unwrap();
    let mut rx = store.subscribe();
    rx.mark_unchanged();
    let before = store.get();
    let bytes = fs::read(&path).unwrap();

    // Validation failure.
    let err = store
        .transform(|mut c| {
            c.instance = "ok".into();
            c.plans.push(v1::Plan {
                id: "p".into(),
                repo: "missing".into(),
                paths: vec!["/x".into()],
                ..Default::default()
            });
            Ok(Some(c))
        })
        .await
        .unwrap_err();
    assert_eq!(err.code, Code::InvalidArgument);
    assert_eq!(
        err.message,
        "validation error: plan p: repo \"missing\" not found"
    );

    // Write failure (the rename onto config.json fails).
    jsonfile::failpoint::fail_rename_onto(&path);
    let err = store
        .transform(|mut c| {
            c.instance = "ok".into();
            Ok(Some(c))
        })
        .await
        .unwrap_err();
    jsonfile::failpoint::clear(&path);
    assert_eq!(err.code, Code::Unknown);
    assert!(
        err.message.contains("failed to update config"),
        "{}",
        err.message
    );

    assert_eq!(store.get(), before);
    assert_eq!(fs::read(&path).unwrap(), bytes);
    assert!(!rx.has_changed().unwrap());
    let leftovers: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // And the store still works afterwards.
    let stored = store
        .transform(|mut c| {
            c.instance = "ok".into();
            Ok(Some(c))
        })
        .await
        .unwrap();
    assert_eq!(stored.instance, "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_transforms_do_not_lose_updates() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(open(&dir.path().join("config.json")).unwrap());
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .transform(|mut c| {
                    c.modno += 1;
                    Ok(Some(c))
                })
                .await
                .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(store.get().modno, 8);
    let on_disk: v1::Config = serde_json::from_slice(&fs::read(store.path()).unwrap()).unwrap();
    assert_eq!(on_disk.modno, 8);
}
