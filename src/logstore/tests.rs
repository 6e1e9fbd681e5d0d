use std::path::PathBuf;
use std::time::Duration;

use super::*;

async fn open_temp() -> (tempfile::TempDir, PathBuf, LogStore) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tasklogs");
    let store = LogStore::open(&path).await.unwrap();
    (dir, path, store)
}

fn inprogress_files(dir: &Path) -> usize {
    std::fs::read_dir(dir.join(INPROGRESS_DIR)).unwrap().count()
}

#[tokio::test]
async fn a_finished_log_is_stored_compressed_and_reads_back() {
    let (_dir, path, store) = open_temp().await;
    let mut w = store
        .create("t-1", 7, Some(Duration::from_secs(3600)))
        .await
        .unwrap();
    assert_eq!(w.id(), "t-1");
    assert_eq!(inprogress_files(&path), 1);
    w.write_all(b"hello ").await.unwrap();
    w.write_all(b"world\n").await.unwrap();
    w.close().await.unwrap();

    assert_eq!(inprogress_files(&path), 0);
    let row = sqlx::query!("SELECT data_fname, data_gz FROM logs WHERE id = 't-1'")
        .fetch_one(&store.inner.pool)
        .await
        .unwrap();
    assert_eq!(row.data_fname, None);
    assert!(row.data_gz.unwrap().starts_with(&[0x1f, 0x8b]), "gzip data");
    assert_eq!(store.read_all("t-1").await.unwrap(), b"hello world\n");
    let reader = store.reader("t-1").await.unwrap();
    assert!(!reader.is_live());
}

#[tokio::test]
async fn a_reader_follows_a_live_log_until_the_writer_closes() {
    let (_dir, _path, store) = open_temp().await;
    let mut w = store.create("t-live", 1, None).await.unwrap();
    w.write_all(b"line 0\n").await.unwrap();

    let reader = store.reader("t-live").await.unwrap();
    assert!(reader.is_live());
    let follower = tokio::spawn({
        let mut reader = reader;
        async move {
            let mut got = Vec::new();
            while let Some(chunk) = reader.read_chunk(5).await.unwrap() {
                assert!(chunk.len() <= 5);
                got.extend(chunk);
            }
            got
        }
    });
    let mut expected = b"line 0\n".to_vec();
    for i in 1..20 {
        let line = format!("line {i}\n");
        w.write_all(line.as_bytes()).await.unwrap();
        expected.extend(line.as_bytes());
        if i % 5 == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    // A second reader that joins late still gets everything.
    let late = tokio::spawn({
        let store = store.clone();
        async move { store.read_all("t-live").await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!follower.is_finished(), "the follower waits for the writer");
    w.close().await.unwrap();
    assert_eq!(follower.await.unwrap(), expected);
    assert_eq!(late.await.unwrap(), expected);
    assert_eq!(store.read_all("t-live").await.unwrap(), expected);
}

#[tokio::test]
async fn a_writer_dropped_without_close_is_finished_in_the_background() {
    let (_dir, path, store) = open_temp().await;
    let mut w = store.create("t-drop", 1, None).await.unwrap();
    w.write_all(b"partial output").await.unwrap();
    let reader = store.reader("t-drop").await.unwrap();
    drop(w);
    let mut reader = reader;
    let mut got = Vec::new();
    while let Some(chunk) = reader.read_chunk(1024).await.unwrap() {
        got.extend(chunk);
    }
    assert_eq!(got, b"partial output");
    for _ in 0..100 {
        if inprogress_files(&path) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(inprogress_files(&path), 0);
    assert_eq!(store.read_all("t-drop").await.unwrap(), b"partial output");
}

#[tokio::test]
async fn unknown_logs_and_duplicate_ids() {
    let (_dir, _path, store) = open_temp().await;
    assert!(matches!(
        store.reader("t-nope").await,
        Err(LogStoreError::NotFound(_))
    ));
    assert!(matches!(
        store.reader("").await,
        Err(LogStoreError::NotFound(_))
    ));
    let w = store.create("t-dup", 1, None).await.unwrap();
    assert!(matches!(
        store.create("t-dup", 2, None).await,
        Err(LogStoreError::AlreadyExists(_))
    ));
    w.close().await.unwrap();
    assert!(matches!(
        store.create("t-dup", 2, None).await,
        Err(LogStoreError::AlreadyExists(_))
    ));
    assert!(store.delete("t-dup").await.unwrap());
    assert!(!store.delete("t-dup").await.unwrap());
}

#[tokio::test]
async fn expired_logs_disappear() {
    let (_dir, _path, store) = open_temp().await;
    for id in ["t-old", "t-new", "c-forever"] {
        let ttl = if id.starts_with('c') {
            None
        } else {
            Some(Duration::from_secs(3600))
        };
        let mut w = store.create(id, 1, ttl).await.unwrap();
        w.write_all(id.as_bytes()).await.unwrap();
        w.close().await.unwrap();
    }
    sqlx::query!("UPDATE logs SET expiration_ts_unix = 1000 WHERE id = 't-old'")
        .execute(&store.inner.pool)
        .await
        .unwrap();
    // Unreadable at once, and deleted by the next create.
    assert!(matches!(
        store.reader("t-old").await,
        Err(LogStoreError::NotFound(_))
    ));
    let w = store.create("t-other", 1, None).await.unwrap();
    w.close().await.unwrap();
    let ids: Vec<String> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids, ["c-forever", "t-new", "t-other"]);
    assert_eq!(store.read_all("c-forever").await.unwrap(), b"c-forever");
    assert_eq!(store.delete_expired().await.unwrap(), 0);
}

#[tokio::test]
async fn logs_are_deleted_with_their_owner() {
    let (_dir, _path, store) = open_temp().await;
    for (id, owner) in [("t-a", 5), ("c-a", 5), ("t-b", 6), ("t-c", 7), ("t-d", 8)] {
        store
            .create(id, owner, None)
            .await
            .unwrap()
            .close()
            .await
            .unwrap();
    }
    assert_eq!(store.find_by_owner(5).await.unwrap(), ["c-a", "t-a"]);
    assert_eq!(store.delete_by_owner(5).await.unwrap(), 2);
    assert_eq!(store.delete_by_owner(5).await.unwrap(), 0);
    assert_eq!(store.delete_by_owners(&[6, 7, 99]).await.unwrap(), 2);
    assert_eq!(store.list().await.unwrap(), [("t-d".to_string(), 8)]);
    assert!(matches!(
        store.reader("t-a").await,
        Err(LogStoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn leftover_in_progress_files_are_finished_at_open() {
    let (_dir, path, store) = open_temp().await;
    let mut w = store.create("t-crash", 3, None).await.unwrap();
    w.write_all(b"written before the crash\n").await.unwrap();
    // A crash: the writer never closes or drops.
    std::mem::forget(w);
    std::fs::write(
        path.join(INPROGRESS_DIR).join("0123.log"),
        b"no row names this file",
    )
    .unwrap();
    store.close().await;
    drop(store);

    let store = LogStore::open(&path).await.unwrap();
    assert_eq!(inprogress_files(&path), 0);
    let reader = store.reader("t-crash").await.unwrap();
    assert!(!reader.is_live());
    assert_eq!(
        store.read_all("t-crash").await.unwrap(),
        b"written before the crash\n"
    );
}
