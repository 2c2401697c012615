//! JSON-RPC notifications are executed, not dropped.
//!
//! jsonrpsee answers notifications (requests without an `id`) by doing nothing. For an
//! ingestion service a fire-and-forget `track` is the most natural call there is, so this
//! middleware runs each notification like a call and throws the reply away, as JSON-RPC 2.0
//! specifies. It handles batches itself because the inner service would otherwise skip the
//! notifications inside them.

use jsonrpsee::server::middleware::rpc::{
    Batch, BatchEntry, MethodResponse, Notification, Request, RpcServiceT,
};
use jsonrpsee::types::Id;

/// The tower layer that installs [`ExecuteNotifications`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ExecuteNotificationsLayer;

impl<S> tower::Layer<S> for ExecuteNotificationsLayer {
    type Service = ExecuteNotifications<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ExecuteNotifications(inner)
    }
}

/// Runs notifications as calls whose replies are discarded.
#[derive(Debug, Clone)]
pub struct ExecuteNotifications<S>(S);

impl<S> ExecuteNotifications<S>
where
    S: RpcServiceT<MethodResponse = MethodResponse> + Clone + Send + Sync + 'static,
{
    async fn run(inner: S, notification: Notification<'_>) {
        let params = notification.params.map(std::borrow::Cow::into_owned);
        let mut request = Request::owned(notification.method.into_owned(), params, Id::Null);
        *request.extensions_mut() = notification.extensions;
        let method = request.method_name().to_owned();
        let response = inner.call(request).await;
        if !response.is_success() {
            tracing::debug!(%method, "notification failed; JSON-RPC sends no reply to notifications");
        }
    }
}

impl<S> RpcServiceT for ExecuteNotifications<S>
where
    S: RpcServiceT<
            MethodResponse = MethodResponse,
            BatchResponse = MethodResponse,
            NotificationResponse = MethodResponse,
        > + Clone
        + Send
        + Sync
        + 'static,
{
    type MethodResponse = MethodResponse;
    type NotificationResponse = MethodResponse;
    type BatchResponse = MethodResponse;

    fn call<'a>(&self, request: Request<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        self.0.call(request)
    }

    fn batch<'a>(&self, batch: Batch<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        let inner = self.0.clone();
        async move {
            let mut calls = Vec::new();
            let mut had_notification = false;
            for entry in batch {
                match entry {
                    Ok(BatchEntry::Notification(notification)) => {
                        had_notification = true;
                        Self::run(inner.clone(), notification).await;
                    }
                    other => calls.push(other),
                }
            }
            if calls.is_empty() && had_notification {
                MethodResponse::notification()
            } else {
                inner.batch(Batch::from(calls)).await
            }
        }
    }

    fn notification<'a>(
        &self,
        notification: Notification<'a>,
    ) -> impl Future<Output = MethodResponse> + Send + 'a {
        let inner = self.0.clone();
        async move {
            let extensions = notification.extensions.clone();
            Self::run(inner, notification).await;
            MethodResponse::notification().with_extensions(extensions)
        }
    }
}
