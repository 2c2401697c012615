//! The procedures over a store whose faults the tests control.

use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::api::rate_limit::RateLimitSettings;
use crate::api::types::TrackBatchOutput;
use crate::pipeline::clock::SystemClock;
use crate::pipeline::{FlusherHandle, PipelineConfig};
use crate::storage::MemoryStore;

fn service(capacity: usize) -> (EventIngestion, FlusherHandle, Arc<MemoryStore>) {
    let mut config = PipelineConfig::default();
    config.flush.batch_size = capacity;
    config.buffer_capacity = capacity;
    let store = Arc::new(MemoryStore::default());
    let (pipeline, flusher) = Pipeline::start(config, store.clone(), Arc::new(SystemClock));
    let rate_limits = RateLimits::new(RateLimitSettings {
        per_second: 0,
        burst: 0,
    });
    let service = EventIngestion::new(
        pipeline,
        Authenticator::new(None, None),
        rate_limits,
        Default::default(),
    );
    (service, flusher, store)
}

fn item_codes(output: &TrackBatchOutput) -> Vec<Option<i32>> {
    output
        .results
        .iter()
        .map(|result| result.error.as_ref().map(|error| error.code))
        .collect()
}

#[tokio::test]
async fn a_full_buffer_turns_requests_away_before_validating_them() {
    let (service, _flusher, store) = service(2);
    let context = RequestContext::default();
    store.set_writes_failing(true);
    let fill = json!({"events": [{"eventType": "a"}, {"eventType": "b"}]});
    let filled = service
        .track_batch(&context, Some(fill))
        .await
        .expect("answered");
    assert_eq!(filled.successful, 2);

    let mixed = json!({"events": [{"eventType": "c"}, "not an object"]});
    let refused = service
        .track_batch(&context, Some(mixed.clone()))
        .await
        .expect_err("nothing fits: the batch is refused before its items are validated");
    assert_eq!(refused.code, ErrorCode::ServiceUnavailable);
    assert_eq!(refused.retry_after_secs, Some(1));
    let single = service
        .track(&context, Some(json!({"eventType": "d"})))
        .await
        .expect_err("refused");
    assert_eq!(single.code, ErrorCode::ServiceUnavailable);
    assert_eq!(service.pipeline().stats().counters.rejected, 0);
    assert_eq!(
        service.pipeline().buffer_len(),
        2,
        "what was accepted is kept"
    );

    store.set_writes_failing(false);
    service.pipeline().force_flush().await.expect("flush");
    let retried = service
        .track_batch(&context, Some(mixed))
        .await
        .expect("answered");
    assert_eq!(
        item_codes(&retried),
        [None, Some(ErrorCode::BadRequest.json_rpc_code())],
        "with room again, the retry is validated as usual"
    );
}
