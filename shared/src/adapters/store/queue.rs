//! The sync queue in process: the demo, the CLI and the tests (SQS in AWS).

use crate::ports::{EnqueueFailure, QueueError, SyncQueue};
use crate::queue::SyncRequest;
use async_trait::async_trait;
use std::collections::VecDeque;
use std::sync::Mutex;

/// A FIFO in memory. `enqueue` is the port; `take` is what a local worker loop uses.
#[derive(Debug, Default)]
pub struct MemoryQueue {
    bodies: Mutex<VecDeque<String>>,
}

impl MemoryQueue {
    /// Puts a raw body on the queue, as another producer might (tests use it for bad input).
    pub fn push_raw(&self, body: impl Into<String>) {
        self.lock().push_back(body.into());
    }

    /// Takes up to `max` message bodies off the queue.
    pub fn take(&self, max: usize) -> Vec<String> {
        let mut bodies = self.lock();
        let n = max.min(bodies.len());
        bodies.drain(..n).collect()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<String>> {
        self.bodies.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl SyncQueue for MemoryQueue {
    async fn enqueue(&self, requests: &[SyncRequest]) -> Result<Vec<EnqueueFailure>, QueueError> {
        let mut bodies = self.lock();
        bodies.extend(requests.iter().map(SyncRequest::to_body));
        Ok(Vec::new())
    }
}
