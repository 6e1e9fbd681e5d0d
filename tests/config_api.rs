//! GetConfig / SetConfig over real HTTP, in JSON and binary protobuf, and the
//! config file on disk.

mod common;

use std::os::unix::fs::PermissionsExt;

use backrest_rs::pb::v1;
use common::*;
use serde_json::json;

#[tokio::test]
async fn get_config_in_json_and_binary_agree() {
    let s = Server::start();
    let cfg = ok_json(&s, "/v1.Backrest/GetConfig", json!({})).await;
    assert_eq!(cfg["version"], 6);
    assert_eq!(cfg["auth"]["disabled"], true);
    let key_id = cfg["sync"]["identity"]["keyId"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(key_id.starts_with("ed25519."));
    // The private key never leaves the server.
    assert!(
        cfg["sync"]["identity"].get("ed25519priv").is_none(),
        "{cfg}"
    );

    let bin: v1::Config = call_proto(&s, "/v1.Backrest/GetConfig", &pbjson_types::Empty {})
        .await
        .unwrap();
    assert_eq!(bin.version, 6);
    assert_eq!(
        bin.multihost
            .as_ref()
            .unwrap()
            .identity
            .as_ref()
            .unwrap()
            .keyid,
        key_id
    );

    // The file was created on first start, 0600, with the full identity.
    let path = s.config_path();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let on_disk: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert!(
        !on_disk["sync"]["identity"]["ed25519priv"]
            .as_str()
            .unwrap()
            .is_empty()
    );
}

fn repo_json(id: &str) -> serde_json::Value {
    json!({"id": id, "uri": "/tmp/nowhere", "password": "pw", "guid": "a".repeat(64),
           "prunePolicy": {"schedule": {"cron": "0 0 1 * *", "clock": "CLOCK_LAST_RUN_TIME"}, "maxUnusedPercent": 10}})
}

#[tokio::test]
async fn set_config_round_trip_modno_and_validation() {
    let s = Server::start();
    let mut cfg = ok_json(&s, "/v1.Backrest/GetConfig", json!({})).await;
    let modno = cfg.get("modno").and_then(|m| m.as_i64()).unwrap_or(0);
    cfg["instance"] = json!("host-1");
    cfg["repos"] = json!([repo_json("r1")]);
    cfg["plans"] = json!([{"id": "p1", "repo": "r1", "paths": ["/b", "/a"],
                           "schedule": {"maxFrequencyDays": 1}, "retention": {"policyKeepLastN": 3},
                           "backup_flags": ["--one-file-system"]}]);
    let saved = ok_json(&s, "/v1.Backrest/SetConfig", cfg.clone()).await;
    assert_eq!(saved["modno"], modno + 1);
    assert_eq!(saved["instance"], "host-1");
    // Validation sorts paths; snake_case json name kept for backup_flags.
    assert_eq!(saved["plans"][0]["paths"], json!(["/a", "/b"]));
    assert_eq!(
        saved["plans"][0]["backup_flags"],
        json!(["--one-file-system"])
    );

    // Stale modno: failed_precondition, nothing changes.
    let mut stale = cfg.clone();
    stale["instance"] = json!("other");
    let (status, err) = call_json(&s, "/v1.Backrest/SetConfig", stale).await;
    assert_eq!(status, 400);
    assert_eq!(err["code"], "failed_precondition");
    assert!(err["message"].as_str().unwrap().contains("modno"));

    // Invalid config: invalid_argument naming the field; nothing written.
    let before = std::fs::read(s.config_path()).unwrap();
    let mut bad = saved.clone();
    bad["plans"][0]["repo"] = json!("missing-repo");
    let (status, err) = call_json(&s, "/v1.Backrest/SetConfig", bad).await;
    assert_eq!(status, 400);
    assert_eq!(err["code"], "invalid_argument");
    let msg = err["message"].as_str().unwrap();
    assert!(msg.contains("p1") && msg.contains("missing-repo"), "{msg}");
    let mut bad_cron = saved.clone();
    bad_cron["plans"][0]["schedule"] = json!({"cron": "61 * * * *"});
    let (_, err) = call_json(&s, "/v1.Backrest/SetConfig", bad_cron).await;
    assert!(err["message"].as_str().unwrap().contains("cron"), "{err}");
    let mut no_users = saved.clone();
    no_users["auth"] = json!({"disabled": false});
    let (_, err) = call_json(&s, "/v1.Backrest/SetConfig", no_users).await;
    assert!(
        err["message"].as_str().unwrap().contains("no users"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(s.config_path()).unwrap(),
        before,
        "a rejected SetConfig must not touch the file"
    );

    // Unknown fields are ignored and proto field names accepted.
    let mut lenient = saved.clone();
    lenient["someFutureField"] = json!({"x": 1});
    lenient["plans"][0]["skip_if_unchanged"] = json!(true);
    let saved2 = ok_json(&s, "/v1.Backrest/SetConfig", lenient).await;
    assert_eq!(saved2["modno"], modno + 2);
    assert_eq!(saved2["plans"][0]["skipIfUnchanged"], true);

    // Binary SetConfig.
    let mut bin: v1::Config = call_proto(&s, "/v1.Backrest/GetConfig", &pbjson_types::Empty {})
        .await
        .unwrap();
    bin.instance = "host-bin".into();
    let out: v1::Config = call_proto(&s, "/v1.Backrest/SetConfig", &bin)
        .await
        .unwrap();
    assert_eq!(out.modno, bin.modno + 1);
    assert_eq!(out.instance, "host-bin");
    let stale_err = call_proto::<_, v1::Config>(&s, "/v1.Backrest/SetConfig", &bin)
        .await
        .unwrap_err();
    assert_eq!(stale_err.0, 400);
    assert_eq!(stale_err.1["code"], "failed_precondition");
}

#[tokio::test]
async fn config_persists_across_restart_and_identity_is_stable() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = ServerBuilder::in_dir(dir.path()).start();
    let mut cfg = ok_json(&s, "/v1.Backrest/GetConfig", json!({})).await;
    let key = cfg["sync"]["identity"]["keyId"].clone();
    cfg["instance"] = json!("persisted");
    cfg["repos"] = json!([repo_json("r1")]);
    ok_json(&s, "/v1.Backrest/SetConfig", cfg).await;
    assert!(s.stop().success());

    let s2 = ServerBuilder::in_dir(dir.path()).start();
    let cfg2 = ok_json(&s2, "/v1.Backrest/GetConfig", json!({})).await;
    assert_eq!(cfg2["instance"], "persisted");
    assert_eq!(cfg2["repos"][0]["id"], "r1");
    assert_eq!(cfg2["sync"]["identity"]["keyId"], key);
    assert_eq!(cfg2["modno"], 1);
}

#[tokio::test]
async fn an_existing_backrest_config_is_read_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("config")).unwrap();
    // What Backrest writes: protojson, 2-space indent, json names.
    let text = r#"{
  "modno": 4,
  "version": 6,
  "instance": "backrest-host",
  "repos": [
    {
      "id": "local",
      "uri": "/srv/restic",
      "guid": "0c5e0c6dbd0c6b8c1d1e83b4c3a8b1f0c1f4e0b4f1c2d3e4f5a6b7c8d9e0f1a2",
      "password": "secret",
      "prunePolicy": {
        "schedule": {
          "cron": "0 0 1 * *",
          "clock": "CLOCK_LAST_RUN_TIME"
        },
        "maxUnusedPercent": 10
      },
      "autoUnlock": true
    }
  ],
  "plans": [
    {
      "id": "docs",
      "repo": "local",
      "paths": [
        "/home/me/docs"
      ],
      "schedule": {
        "cron": "0 * * * *",
        "clock": "CLOCK_LOCAL"
      },
      "retention": {
        "policyTimeBucketed": {
          "hourly": 24,
          "daily": 30
        }
      },
      "backup_flags": [
        "--one-file-system"
      ]
    }
  ],
  "auth": {
    "disabled": true
  }
}
"#;
    std::fs::write(dir.path().join("config/config.json"), text).unwrap();
    let s = ServerBuilder::in_dir(dir.path()).start();
    let cfg = ok_json(&s, "/v1.Backrest/GetConfig", json!({})).await;
    assert_eq!(cfg["instance"], "backrest-host");
    assert_eq!(cfg["modno"], 4);
    assert_eq!(
        cfg["plans"][0]["retention"]["policyTimeBucketed"]["daily"],
        30
    );
    assert_eq!(cfg["repos"][0]["autoUnlock"], true);
    // A config without a sync identity gets one (Backrest does the same).
    assert!(
        cfg["sync"]["identity"]["keyId"]
            .as_str()
            .unwrap()
            .starts_with("ed25519.")
    );
}

#[tokio::test]
async fn a_broken_config_file_stops_the_server_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("config")).unwrap();
    std::fs::write(dir.path().join("config/config.json"), r#"{"version": 99}"#).unwrap();
    let out = std::process::Command::new(BIN)
        .arg("-data-dir")
        .arg(dir.path().join("data"))
        .arg("-config-file")
        .arg(dir.path().join("config/config.json"))
        .arg("-bind-address")
        .arg("127.0.0.1:0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("99") && err.contains("config"), "{err}");
}
