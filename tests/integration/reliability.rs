//! What happens when things go wrong: a row the database refuses does not block the rest.

use serde_json::json;

use crate::backend_tests;
use crate::support::{Backend, TestServer, page_view};

backend_tests!(a_poison_row_is_dead_lettered_and_the_rest_written);

async fn a_poison_row_is_dead_lettered_and_the_rest_written(backend: Backend) {
    let server = TestServer::start(backend).await;
    // A real database refusal, caused on the test's own database.
    server
        .execute_sql(
            "ALTER TABLE events ADD CONSTRAINT no_poison CHECK (event_type <> 'poison')",
            "CREATE TRIGGER no_poison BEFORE INSERT ON events WHEN NEW.event_type = 'poison'
             BEGIN SELECT RAISE(ABORT, 'poison row'); END;",
        )
        .await;
    let mut good = Vec::new();
    for index in 0..10 {
        if index == 6 {
            server
                .track(json!({"eventType": "poison", "props": {"n": index}}))
                .await;
        } else {
            good.push(server.track(page_view()).await);
        }
    }
    let flush = server.force_flush().await;
    assert_eq!(flush["persisted"], 9, "{flush}");
    assert_eq!(flush["flushed"], true);
    assert_eq!(server.count().await, 9);
    for id in good {
        assert!(server.stored(id).await.is_some());
    }
    assert_eq!(server.store().count_dead_letters().await.expect("count"), 1);
    let stats = server.stats().await;
    assert_eq!(stats["counters"]["deadLettered"], 1);
    assert_eq!(
        stats["bufferSize"], 0,
        "nothing is stuck behind the poison row"
    );
    assert_eq!(stats["health"], "healthy");
    // Later events keep flowing.
    server.track(page_view()).await;
    server.force_flush().await;
    assert_eq!(server.count().await, 10);
}
