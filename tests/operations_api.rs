//! GetOperations, ClearHistory, GetOperationEvents and GetLogs over real HTTP
//! against an oplog (and log store) seeded before the server starts.

mod common;

use std::path::Path;
use std::time::Duration;

use backrest_rs::logstore::LogStore;
use backrest_rs::oplog::OpLog;
use backrest_rs::pb::{types, v1};
use common::*;
use prost::Message;
use serde_json::json;

const GUID_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const GUID_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const SNAP: &str = "5555555555555555555555555555555555555555555555555555555555555555";

struct Seed {
    ids: Vec<i64>,
}

/// 12 operations over 2 repos, 3 plans, 2 instances, a peer's synced ops,
/// one snapshot, a shared flow, and some failures.
async fn seed(data: &Path) -> Seed {
    // Recent times: the server's garbage collection (a second after start)
    // trims operations older than 30 days.
    let base = chrono::Utc::now().timestamp_millis() - 3_600_000;
    std::fs::create_dir_all(data).unwrap();
    let oplog = OpLog::open(&data.join("oplog.sqlite")).await.unwrap();
    let mut ops = Vec::new();
    for i in 0..12i64 {
        let (guid, repo) = if i % 2 == 0 {
            (GUID_A, "repo-a")
        } else {
            (GUID_B, "repo-b")
        };
        let plan = ["plan-1", "plan-2", "plan-3"][(i % 3) as usize];
        let status = if i % 4 == 3 {
            v1::OperationStatus::StatusError
        } else {
            v1::OperationStatus::StatusSuccess
        };
        ops.push(v1::Operation {
            repo_id: repo.into(),
            repo_guid: guid.into(),
            plan_id: plan.into(),
            instance_id: if i < 10 {
                "local".into()
            } else {
                "peer".into()
            },
            original_instance_keyid: if i < 10 {
                String::new()
            } else {
                "ed25519.peerkey".into()
            },
            unix_time_start_ms: base + i * 60_000,
            unix_time_end_ms: base + i * 60_000 + 1000,
            status: status as i32,
            snapshot_id: if i == 4 { SNAP.into() } else { String::new() },
            display_message: format!("op {i}"),
            op: Some(v1::operation::Op::OperationBackup(
                v1::OperationBackup::default(),
            )),
            ..Default::default()
        });
    }
    let mut added = oplog.add(ops).await.unwrap();
    // The peer that synced ops 10 and 11 is a known client, so the server's
    // garbage collection keeps its operations.
    let config_dir = data.parent().unwrap().join("config");
    std::fs::create_dir_all(&config_dir).unwrap();
    std::fs::write(
        config_dir.join("config.json"),
        r#"{"version": 6, "auth": {"disabled": true}, "sync": {"authorizedClients": [{"instanceId": "peer", "keyId": "ed25519.peerkey"}]}}"#,
    )
    .unwrap();
    // Put ops 1, 2 and 3 in op 1's flow.
    let flow = added[1].id;
    for op in added.iter_mut().skip(2).take(2) {
        op.flow_id = flow;
    }
    oplog.update(added[2..4].to_vec()).await.unwrap();
    oplog.close().await;
    Seed {
        ids: added.iter().map(|o| o.id).collect(),
    }
}

fn ids_of(v: &serde_json::Value) -> Vec<i64> {
    v["operations"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|o| o["id"].as_str().unwrap().parse().unwrap())
                .collect()
        })
        .unwrap_or_default()
}

async fn get_ids(s: &Server, body: serde_json::Value) -> Vec<i64> {
    ids_of(&ok_json(s, "/v1.Backrest/GetOperations", body).await)
}

#[tokio::test]
async fn get_operations_by_every_selector_field() {
    let dir = tempfile::tempdir().unwrap();
    let seed = seed(&dir.path().join("data")).await;
    let id = |i: usize| seed.ids[i];
    let s = ServerBuilder::in_dir(dir.path()).start();
    // Let the start-up garbage collection (1 s after start) run first: none
    // of the seeded operations is old or from an unknown peer, so all stay.
    tokio::time::sleep(Duration::from_millis(2500)).await;

    // The documented example: `{}` returns the whole history, ordered by id.
    let all = get_ids(&s, json!({})).await;
    assert_eq!(all, seed.ids);
    assert_eq!(get_ids(&s, json!({"selector": {}})).await, seed.ids);

    assert_eq!(
        get_ids(&s, json!({"selector": {"planId": "plan-2"}})).await,
        vec![id(1), id(4), id(7), id(10)]
    );
    assert_eq!(
        get_ids(&s, json!({"selector": {"repoGuid": GUID_B}})).await,
        vec![id(1), id(3), id(5), id(7), id(9), id(11)]
    );
    assert_eq!(
        get_ids(&s, json!({"selector": {"instanceId": "peer"}})).await,
        vec![id(10), id(11)]
    );
    // originalInstanceKeyid "" = local operations only (presence matters).
    assert_eq!(
        get_ids(&s, json!({"selector": {"originalInstanceKeyid": ""}}))
            .await
            .len(),
        10
    );
    assert_eq!(
        get_ids(
            &s,
            json!({"selector": {"originalInstanceKeyid": "ed25519.peerkey"}})
        )
        .await,
        vec![id(10), id(11)]
    );
    assert_eq!(
        get_ids(&s, json!({"selector": {"snapshotId": SNAP}})).await,
        vec![id(4)]
    );
    assert_eq!(
        get_ids(&s, json!({"selector": {"flowId": id(1).to_string()}})).await,
        vec![id(1), id(2), id(3)]
    );
    // The two updates gave ops 2 and 3 the newest modnos.
    let newest = get_ids(&s, json!({"selector": {"modnoGte": "13"}})).await;
    assert_eq!(newest, vec![id(2), id(3)]);
    assert_eq!(
        get_ids(
            &s,
            json!({"selector": {"ids": [id(5).to_string(), id(0).to_string()]}})
        )
        .await,
        vec![id(0), id(5)]
    );
    // Fields combine with AND; proto field names work too.
    assert_eq!(
        get_ids(
            &s,
            json!({"selector": {"plan_id": "plan-1", "repo_guid": GUID_A}})
        )
        .await,
        vec![id(0), id(6)]
    );
    // lastN keeps the latest by start time, still returned in id order.
    assert_eq!(
        get_ids(&s, json!({"selector": {"repoGuid": GUID_A}, "lastN": "2"})).await,
        vec![id(8), id(10)]
    );
    assert_eq!(
        get_ids(&s, json!({"lastN": 3})).await,
        vec![id(9), id(10), id(11)]
    );
    // No match: an empty list.
    assert!(
        get_ids(&s, json!({"selector": {"planId": "nope"}}))
            .await
            .is_empty()
    );

    // ids together with another field is refused, clearly.
    let (status, err) = call_json(
        &s,
        "/v1.Backrest/GetOperations",
        json!({"selector": {"ids": ["1"], "planId": "x"}}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(err["code"], "invalid_argument");
    assert!(err["message"].as_str().unwrap().contains("ids"), "{err}");

    // Binary: same answer, full operations.
    let req = v1::GetOperationsRequest {
        selector: Some(v1::OpSelector {
            plan_id: Some("plan-2".into()),
            ..Default::default()
        }),
        last_n: 0,
    };
    let list: v1::OperationList = call_proto(&s, "/v1.Backrest/GetOperations", &req)
        .await
        .unwrap();
    assert_eq!(
        list.operations.iter().map(|o| o.id).collect::<Vec<_>>(),
        vec![id(1), id(4), id(7), id(10)]
    );
    assert_eq!(list.operations[1].snapshot_id, SNAP);
    assert!(matches!(
        list.operations[0].op,
        Some(v1::operation::Op::OperationBackup(_))
    ));

    // The two codecs carry the same operations, every field of them.
    let all_json: v1::OperationList =
        serde_json::from_value(ok_json(&s, "/v1.Backrest/GetOperations", json!({})).await).unwrap();
    let all_binary: v1::OperationList = call_proto(
        &s,
        "/v1.Backrest/GetOperations",
        &v1::GetOperationsRequest::default(),
    )
    .await
    .unwrap();
    assert_eq!(all_binary.operations.len(), seed.ids.len());
    assert_eq!(all_json, all_binary);
}

#[tokio::test]
async fn clear_history_only_failed_and_by_ids() {
    let dir = tempfile::tempdir().unwrap();
    let seed = seed(&dir.path().join("data")).await;
    let s = ServerBuilder::in_dir(dir.path()).start();
    // A missing selector is refused: wiping everything must be explicit.
    let (status, err) = call_json(&s, "/v1.Backrest/ClearHistory", json!({})).await;
    assert_eq!(status, 400);
    assert!(err["message"].as_str().unwrap().contains("selector"));

    ok_json(
        &s,
        "/v1.Backrest/ClearHistory",
        json!({"selector": {"repoGuid": GUID_B}, "onlyFailed": true}),
    )
    .await;
    let left = get_ids(&s, json!({"selector": {"repoGuid": GUID_B}})).await;
    // ops 3, 7, 11 were the failures (i % 4 == 3), all in repo B.
    assert_eq!(left, vec![seed.ids[1], seed.ids[5], seed.ids[9]]);
    ok_json(
        &s,
        "/v1.Backrest/ClearHistory",
        json!({"selector": {"ids": [seed.ids[0].to_string()]}}),
    )
    .await;
    assert_eq!(get_ids(&s, json!({})).await.len(), 12 - 3 - 1);
}

#[tokio::test]
async fn operation_events_stream_in_both_codecs() {
    let dir = tempfile::tempdir().unwrap();
    let seed = seed(&dir.path().join("data")).await;
    let s = ServerBuilder::in_dir(dir.path())
        .arg("-keepalive-interval")
        .arg("200ms")
        .start();

    for (json_mode, victim) in [(true, seed.ids[0]), (false, seed.ids[2])] {
        let mut stream = StreamReader::open(
            &s,
            "/v1.Backrest/GetOperationEvents",
            json_mode,
            if json_mode { b"{}".to_vec() } else { vec![] },
        )
        .await;
        assert_eq!(
            stream.content_type,
            if json_mode {
                "application/connect+json"
            } else {
                "application/connect+proto"
            }
        );
        // A keep-alive arrives on its own.
        let first = match stream.next(Duration::from_secs(5)).await {
            Some(Frame::Message(m)) => m,
            _ => panic!("expected a message"),
        };
        let ev: v1::OperationEvent = if json_mode {
            serde_json::from_slice(&first).unwrap()
        } else {
            v1::OperationEvent::decode(first).unwrap()
        };
        assert!(
            matches!(ev.event, Some(v1::operation_event::Event::KeepAlive(_))),
            "{ev:?}"
        );
        // A change shows up as an event.
        ok_json(
            &s,
            "/v1.Backrest/ClearHistory",
            json!({"selector": {"ids": [victim.to_string()]}}),
        )
        .await;
        let mut got = None;
        for _ in 0..20 {
            let Some(Frame::Message(m)) = stream.next(Duration::from_secs(5)).await else {
                panic!("stream ended")
            };
            let ev: v1::OperationEvent = if json_mode {
                serde_json::from_slice(&m).unwrap()
            } else {
                v1::OperationEvent::decode(m).unwrap()
            };
            if let Some(v1::operation_event::Event::DeletedOperations(ids)) = ev.event {
                got = Some(ids.values);
                break;
            }
        }
        assert_eq!(got, Some(vec![victim]));
    }
}

#[tokio::test]
async fn get_logs_streams_a_stored_log_and_explains_a_missing_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let logs = LogStore::open(&data.join("tasklogs")).await.unwrap();
    let mut w = logs.create("t-seeded", 1, None).await.unwrap();
    let text: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
    w.write_all(text.as_bytes()).await.unwrap();
    w.close().await.unwrap();
    logs.close().await;
    let s = ServerBuilder::in_dir(dir.path()).start();

    for json_mode in [true, false] {
        let req = v1::LogDataRequest {
            r#ref: "t-seeded".into(),
        };
        let payload = if json_mode {
            serde_json::to_vec(&req).unwrap()
        } else {
            req.encode_to_vec()
        };
        let mut stream = StreamReader::open(&s, "/v1.Backrest/GetLogs", json_mode, payload).await;
        let mut bytes = Vec::new();
        loop {
            match stream.next(Duration::from_secs(10)).await {
                Some(Frame::Message(m)) => {
                    let chunk: types::BytesValue = if json_mode {
                        serde_json::from_slice(&m).unwrap()
                    } else {
                        types::BytesValue::decode(m).unwrap()
                    };
                    bytes.extend_from_slice(&chunk.value);
                }
                Some(Frame::End(v)) => {
                    assert_eq!(v, json!({}));
                    break;
                }
                None => panic!("stream ended without end-of-stream"),
            }
        }
        assert_eq!(String::from_utf8(bytes).unwrap(), text);
    }

    let mut stream = StreamReader::open(
        &s,
        "/v1.Backrest/GetLogs",
        true,
        br#"{"ref":"t-nope"}"#.to_vec(),
    )
    .await;
    let Some(Frame::Message(m)) = stream.next(Duration::from_secs(5)).await else {
        panic!()
    };
    let chunk: types::BytesValue = serde_json::from_slice(&m).unwrap();
    assert_eq!(
        String::from_utf8(chunk.value).unwrap(),
        "file associated with log t-nope not found, it may have expired."
    );
    assert!(matches!(
        stream.next(Duration::from_secs(5)).await,
        Some(Frame::End(_))
    ));
}
