//! GetOperations, ClearHistory and GetOperationEvents.

use std::time::Duration;

use futures::Stream;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use crate::api::operation_list::StoredOperationList;
use crate::connect::{ConnectError, ServerStream};
use crate::oplog::{EVENT_BUFFER, EncodedOperations, OpEvent, OpLog, OpLogError, Query};
use crate::pb::v1::operation_event::Event;
use crate::pb::{types, v1};
use crate::server::AppState;

/// What a client that fell too far behind the event stream is told.
pub const EVENT_OVERFLOW: &str =
    "event buffer overflow, closing stream for client retry and catchup";

/// Message for ClearHistory without a selector.
pub const CLEAR_NEEDS_SELECTOR: &str =
    "a selector is required: pass {\"selector\": {}} to clear all history";

impl From<OpLogError> for ConnectError {
    fn from(e: OpLogError) -> Self {
        match e {
            OpLogError::Invalid(m) => ConnectError::invalid_argument(m),
            OpLogError::NotFound(m) => ConnectError::not_found(m),
            e @ (OpLogError::Db(_) | OpLogError::Corrupt { .. } | OpLogError::Internal(_)) => {
                tracing::error!("operation log: {e}");
                ConnectError::internal(e.to_string())
            }
        }
    }
}

/// The query a request's selector stands for. A missing selector selects
/// everything (Backrest rejects it; its docs' `--data '{}'` example relies on
/// this working).
fn selector_query(selector: Option<&v1::OpSelector>) -> Result<Query, ConnectError> {
    match selector {
        None => Ok(Query::all()),
        Some(sel) => Ok(Query::from_selector(sel)?),
    }
}

pub async fn get_operations(
    state: &AppState,
    req: v1::GetOperationsRequest,
) -> Result<StoredOperationList, ConnectError> {
    let selected = select_operations(&state.oplog, req.selector.as_ref(), req.last_n).await?;
    Ok(StoredOperationList(selected))
}

/// GetOperations' selection, as stored, sorted by id. With `last_n`
/// non-zero: only the `n` with the latest start time (ties: highest id);
/// negative = all.
async fn select_operations(
    oplog: &OpLog,
    selector: Option<&v1::OpSelector>,
    last_n: i64,
) -> Result<EncodedOperations, ConnectError> {
    let query = selector_query(selector)?.last_n(last_n);
    Ok(oplog.query_encoded(&query).await?)
}

/// GetOperations' selection, decoded (see [`select_operations`]).
pub async fn list_operations(
    oplog: &OpLog,
    selector: Option<&v1::OpSelector>,
    last_n: i64,
) -> Result<Vec<v1::Operation>, ConnectError> {
    Ok(select_operations(oplog, selector, last_n).await?.decode()?)
}

/// Deletes the selected operations (with `only_failed`, only those in
/// STATUS_ERROR) in one transaction, then the logs they owned.
pub async fn clear_history(
    state: &AppState,
    req: v1::ClearHistoryRequest,
) -> Result<pbjson_types::Empty, ConnectError> {
    let Some(selector) = req.selector.as_ref() else {
        return Err(ConnectError::invalid_argument(CLEAR_NEEDS_SELECTOR));
    };
    let mut query = Query::from_selector(selector)?;
    if req.only_failed {
        query.statuses = vec![v1::OperationStatus::StatusError];
    }
    let ids: Vec<i64> = state
        .oplog
        .query(&query)
        .await?
        .iter()
        .map(|op| op.id)
        .collect();
    if ids.is_empty() {
        return Ok(pbjson_types::Empty {});
    }
    state.oplog.delete(&ids).await?;
    // The history is gone either way; leftover logs are swept up by garbage
    // collection.
    if let Err(e) = state.logs.delete_by_owners(&ids).await {
        tracing::warn!(
            "ClearHistory: cannot delete the logs of {} operations: {e}",
            ids.len()
        );
    }
    Ok(pbjson_types::Empty {})
}

/// Every later change of the operation log, plus a keep-alive every
/// `keepalive_interval` (the first one interval after connecting).
pub async fn get_operation_events(
    state: &AppState,
) -> Result<ServerStream<v1::OperationEvent>, ConnectError> {
    let events = state.oplog.subscribe();
    Ok(Box::pin(event_stream(
        events,
        state.options.keepalive_interval,
    )))
}

/// The stream behind GetOperationEvents. It ends with an error when the
/// client falls more than [`EVENT_BUFFER`] events behind (it would otherwise
/// miss some), and when dropped (client gone) it just stops: no task is left
/// behind.
pub fn event_stream(
    mut events: broadcast::Receiver<OpEvent>,
    keepalive: Duration,
) -> impl Stream<Item = Result<v1::OperationEvent, ConnectError>> + Send + 'static {
    let keepalive = keepalive.max(Duration::from_millis(1));
    async_stream::stream! {
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                received = events.recv() => match received {
                    Ok(event) => {
                        if events.len() > EVENT_BUFFER {
                            yield Err(ConnectError::unknown(EVENT_OVERFLOW));
                            break;
                        }
                        yield Ok(to_wire(event));
                    }
                    Err(RecvError::Lagged(_)) => {
                        yield Err(ConnectError::unknown(EVENT_OVERFLOW));
                        break;
                    }
                    // The operation log is gone: the server is stopping.
                    Err(RecvError::Closed) => break,
                },
                _ = ticker.tick() => {
                    yield Ok(v1::OperationEvent { event: Some(Event::KeepAlive(types::Empty {})) });
                }
            }
        }
    }
}

fn to_wire(event: OpEvent) -> v1::OperationEvent {
    let event = match event {
        OpEvent::Created(operations) => Event::CreatedOperations(v1::OperationList { operations }),
        OpEvent::Updated(operations) => Event::UpdatedOperations(v1::OperationList { operations }),
        OpEvent::Deleted(values) => Event::DeletedOperations(types::Int64List { values }),
    };
    v1::OperationEvent { event: Some(event) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    use crate::pb::v1::Operation;

    fn op(plan: &str) -> Operation {
        Operation {
            repo_id: "repo".into(),
            repo_guid: "guid".into(),
            plan_id: plan.into(),
            instance_id: "inst".into(),
            unix_time_start_ms: 1000,
            ..Default::default()
        }
    }

    async fn oplog() -> (tempfile::TempDir, OpLog) {
        let dir = tempfile::tempdir().unwrap();
        let log = OpLog::open(&dir.path().join("oplog.sqlite")).await.unwrap();
        (dir, log)
    }

    #[tokio::test]
    async fn two_subscribers_see_every_change_in_order() {
        let (_dir, log) = oplog().await;
        let mut a = Box::pin(event_stream(log.subscribe(), Duration::from_secs(3600)));
        let mut b = Box::pin(event_stream(log.subscribe(), Duration::from_secs(3600)));

        let added = log.add(vec![op("p1"), op("p2")]).await.unwrap();
        let mut changed = added[0].clone();
        changed.display_message = "hello".into();
        let updated = log.update(vec![changed]).await.unwrap();
        log.delete(&[added[1].id]).await.unwrap();

        for stream in [&mut a, &mut b] {
            let e = stream.next().await.unwrap().unwrap();
            assert_eq!(
                e.event,
                Some(Event::CreatedOperations(v1::OperationList {
                    operations: added.clone()
                }))
            );
            let e = stream.next().await.unwrap().unwrap();
            assert_eq!(
                e.event,
                Some(Event::UpdatedOperations(v1::OperationList {
                    operations: updated.clone()
                }))
            );
            let e = stream.next().await.unwrap().unwrap();
            assert_eq!(
                e.event,
                Some(Event::DeletedOperations(types::Int64List {
                    values: vec![added[1].id]
                }))
            );
        }
    }

    #[tokio::test]
    async fn a_lagging_subscriber_gets_the_overflow_error() {
        let (_dir, log) = oplog().await;
        let mut slow = Box::pin(event_stream(log.subscribe(), Duration::from_secs(3600)));
        for i in 0..(EVENT_BUFFER + 5) {
            log.add(vec![op(&format!("p{i}"))]).await.unwrap();
        }
        // Every event still buffered would be delivered; the client is too far
        // behind, so the stream ends with the error instead.
        let first = slow.next().await.unwrap();
        let err = first.unwrap_err();
        assert_eq!(err.code, crate::connect::Code::Unknown);
        assert_eq!(err.message, EVENT_OVERFLOW);
        assert!(slow.next().await.is_none());
    }

    #[tokio::test]
    async fn a_subscriber_within_the_buffer_loses_nothing() {
        let (_dir, log) = oplog().await;
        let mut s = Box::pin(event_stream(log.subscribe(), Duration::from_secs(3600)));
        for i in 0..EVENT_BUFFER {
            log.add(vec![op(&format!("p{i}"))]).await.unwrap();
        }
        for i in 0..EVENT_BUFFER {
            let e = s.next().await.unwrap().unwrap();
            let Some(Event::CreatedOperations(list)) = e.event else {
                panic!("{e:?}")
            };
            assert_eq!(list.operations[0].plan_id, format!("p{i}"));
        }
    }

    #[tokio::test]
    async fn keep_alive_comes_every_interval_and_the_stream_stops_when_dropped() {
        let (tx, rx) = broadcast::channel::<OpEvent>(EVENT_BUFFER);
        let interval = Duration::from_millis(150);
        let start = tokio::time::Instant::now();
        let mut s = Box::pin(event_stream(rx, interval));
        for n in 1..=2u32 {
            let e = s.next().await.unwrap().unwrap();
            assert_eq!(e.event, Some(Event::KeepAlive(types::Empty {})));
            assert!(
                start.elapsed() >= interval * n,
                "keep-alive {n} came too early"
            );
        }
        tx.send(OpEvent::Deleted(vec![7])).unwrap();
        let e = s.next().await.unwrap().unwrap();
        assert_eq!(
            e.event,
            Some(Event::DeletedOperations(types::Int64List {
                values: vec![7]
            }))
        );
        drop(s);
        // The receiver went with the stream: nothing is left running.
        assert_eq!(tx.receiver_count(), 0);
    }
}
