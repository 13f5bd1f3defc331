//! Events are recorded off the scheduling path: a bounded queue drained by a few concurrent
//! writers. When the queue is full the event is dropped, as client-go's broadcaster does, so
//! that a burst of decisions is never slowed down by its own bookkeeping.

use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use rkube_client::events::{EventType, Recorder};
use tokio::sync::mpsc;

const QUEUE: usize = 4096;
const WRITERS: usize = 8;

pub struct PendingEvent {
    pub object: ObjectReference,
    pub kind: EventType,
    pub reason: &'static str,
    pub message: String,
}

#[derive(Clone)]
pub struct EventSink {
    queue: mpsc::Sender<PendingEvent>,
}

impl EventSink {
    /// The sink, and the task that writes its events through `recorder`.
    pub fn start(recorder: Recorder) -> (EventSink, impl Future<Output = ()>) {
        let (queue, receiver) = mpsc::channel(QUEUE);
        let writer =
            tokio_stream_from(receiver).for_each_concurrent(WRITERS, move |event: PendingEvent| {
                let recorder = recorder.clone();
                async move {
                    if let Err(err) = recorder
                        .record_ref(&event.object, event.kind, event.reason, &event.message)
                        .await
                    {
                        tracing::warn!(error = %err, "recording an event failed");
                    }
                }
            });
        (EventSink { queue }, writer)
    }

    pub fn send(&self, event: PendingEvent) {
        if self.queue.try_send(event).is_err() {
            tracing::debug!("event queue full, dropping an event");
        }
    }
}

fn tokio_stream_from<T>(mut receiver: mpsc::Receiver<T>) -> impl futures::Stream<Item = T> {
    futures::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}
