//! The queue in front of the audit table: the channel most events take, the shelf where
//! `token.issued` events wait, and the task that appends both (see the module above).

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{AuditEvent, BATCH, FLUSH_EVERY, QUEUE, TokenIssued};
use crate::store::Store;

enum Message {
    Event(Box<AuditEvent>),
    Flush(oneshot::Sender<()>),
}

/// Shards of the shelf where `token.issued` events wait.
const SHARDS: usize = 8;
/// A buffer with room for more events than this was grown by a burst, and is not kept.
const GROWN: usize = 4 * BATCH;

/// Where `token.issued` events wait for the appender: one event per token, so not the channel
/// the other events take (an atomic or two per message, and its blocks to fill). Each thread
/// puts its events in one of a few shards, a `Vec` behind its own lock (threads seldom share
/// one, so the lock is uncontended); the appender moves them out and leaves each shard its
/// buffer, so a steady load queues without allocating.
struct Shelf {
    shards: Box<[std::sync::Mutex<Vec<TokenIssued>>]>,
    /// Events on the shelf, at most [`QUEUE`] in all.
    queued: std::sync::atomic::AtomicUsize,
    /// The next event's `seq`: the appender puts the shards' events back in recorded order.
    next: std::sync::atomic::AtomicU64,
    /// Wakes the appender when the shelf is half full.
    filling: tokio::sync::Notify,
}

/// Threads take shards in turn.
static NEXT_SHARD: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

thread_local! {
    static SHARD: usize = NEXT_SHARD.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % SHARDS;
}

impl Shelf {
    fn new() -> Shelf {
        Shelf {
            shards: (0..SHARDS).map(|_| Default::default()).collect(),
            queued: std::sync::atomic::AtomicUsize::new(0),
            next: std::sync::atomic::AtomicU64::new(0),
            filling: tokio::sync::Notify::new(),
        }
    }

    /// `false` when the shelf is full (the event is not kept).
    fn put(&self, mut event: TokenIssued) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let queued = self.queued.fetch_add(1, Relaxed);
        if queued >= QUEUE {
            self.queued.fetch_sub(1, Relaxed);
            return false;
        }
        if queued == QUEUE / 2 {
            self.filling.notify_one();
        }
        let mut shard = self.shards[SHARD.with(|s| *s)]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Numbered under the shard's lock, so each shard is in `seq` order.
        event.seq = self.next.fetch_add(1, Relaxed);
        shard.push(event);
        true
    }

    /// Move every shelved event to `into`, in the order they were put. Each shard keeps its
    /// buffer (a steady load queues without allocating), unless a burst grew it.
    fn take(&self, into: &mut Vec<TokenIssued>) {
        let before = into.len();
        let mut shards_taken = 0;
        for shard in &self.shards {
            let mut shard = shard
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if shard.is_empty() {
                continue;
            }
            shards_taken += 1;
            into.append(&mut shard);
            if shard.capacity() > GROWN {
                *shard = Vec::new();
            }
        }
        self.queued
            .fetch_sub(into.len() - before, std::sync::atomic::Ordering::Relaxed);
        if shards_taken > 1 {
            // Runs already in order: a stable sort merges them.
            into[before..].sort_by_key(|e| e.seq);
        }
    }
}

/// The queue in front of the audit table; cheap to clone.
#[derive(Clone)]
pub struct Auditor {
    queue: mpsc::Sender<Message>,
    shelf: Arc<Shelf>,
}

impl Auditor {
    /// Start the task that appends queued events to `store`.
    pub fn start(store: Arc<dyn Store>) -> Auditor {
        let (queue, rx) = mpsc::channel(QUEUE);
        let shelf = Arc::new(Shelf::new());
        tokio::spawn(append(store, rx, Arc::clone(&shelf)));
        Auditor { queue, shelf }
    }

    /// Queue `event`, with the current request's IP and id; never waits.
    pub fn record(&self, event: AuditEvent) {
        let event = event.in_request_context();
        log_line(&event);
        if let Err(mpsc::error::TrySendError::Full(_)) =
            self.queue.try_send(Message::Event(Box::new(event)))
        {
            dropped();
        }
    }

    /// Queue a `token.issued` event; never waits. Its log line (when that target is on) is
    /// written as [`Auditor::record`] writes one.
    pub fn issued(&self, event: TokenIssued) {
        if tracing::enabled!(target: "tessera::audit", tracing::Level::INFO) {
            log_line(&event.to_event());
        }
        if !self.shelf.put(event) {
            dropped();
        }
    }

    /// Wait until every event queued before this call is stored (or failed to be).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.queue.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

/// The event's log line (target `tessera::audit`; its fields are read only when it is on).
fn log_line(event: &AuditEvent) {
    tracing::info!(
        target: "tessera::audit",
        event = %event.event,
        partner_id = event.partner_id.as_deref(),
        username = event.username.as_deref(),
        client_id = event.client_id.as_deref(),
        ip = event.ip.as_deref(),
        detail = %serde_json::Value::Object(event.detail.clone()),
        "audit"
    );
}

fn dropped() {
    crate::telemetry::audit_dropped();
    tracing::warn!("audit queue full; an event was dropped");
}

/// The appender: every [`FLUSH_EVERY`], or at once when a flush is asked for or a queue is
/// half full, appends what has queued in one call. It ends, after a last append, when every
/// [`Auditor`] is gone.
async fn append(store: Arc<dyn Store>, mut rx: mpsc::Receiver<Message>, shelf: Arc<Shelf>) {
    let mut batch: Vec<AuditEvent> = Vec::new();
    let mut issued: Vec<TokenIssued> = Vec::new();
    let mut flushed: Vec<oneshot::Sender<()>> = Vec::new();
    let mut messages = Vec::with_capacity(BATCH);
    let mut open = true;
    while open {
        let due = tokio::time::sleep(FLUSH_EVERY);
        tokio::pin!(due);
        loop {
            tokio::select! {
                n = rx.recv_many(&mut messages, BATCH) => {
                    open = n > 0;
                    for m in messages.drain(..) {
                        match m {
                            Message::Event(e) => batch.push(*e),
                            Message::Flush(done) => flushed.push(done),
                        }
                    }
                    if !open || !flushed.is_empty() || batch.len() >= BATCH {
                        break;
                    }
                }
                () = shelf.filling.notified() => break,
                () = &mut due => break,
            }
        }
        shelf.take(&mut issued);
        // An event recorded before a token taken just now may still be in the channel: it
        // goes in this append too, so that its id is not above the token's.
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(Message::Event(e)) => batch.push(*e),
                Ok(Message::Flush(done)) => flushed.push(done),
                Err(_) => break,
            }
        }
        if !batch.is_empty() || !issued.is_empty() {
            let started = std::time::Instant::now();
            let events = batch.len() + issued.len();
            if let Err(e) = store.append_audit(&batch, &issued).await {
                // One retry after a pause: a busy database usually answers the second time.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                if let Err(e2) = store.append_audit(&batch, &issued).await {
                    tracing::error!(error = %e, retry = %e2, events, "could not store audit events");
                }
            }
            crate::telemetry::audit_appended(events, started.elapsed().as_secs_f64());
            batch.clear();
            issued.clear();
        }
        if issued.capacity() > GROWN {
            issued = Vec::new();
        }
        for done in flushed.drain(..) {
            let _ = done.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caller::Caller;
    use crate::model::{Partner, PartnerStatus, PasswordHash};

    fn issued(jti: String) -> TokenIssued {
        let partner = Partner {
            id: "p1".into(),
            name: "P".into(),
            email: "p@example.com".into(),
            org_code: "O".into(),
            status: PartnerStatus::Active,
            scopes: crate::scope::ScopeSet::default(),
            password_hash: PasswordHash("$argon2id$x".into()),
            created_at: 1,
        };
        TokenIssued::new(
            1,
            &Caller::Partner(Arc::new(partner)),
            "client_credentials",
            "p1",
            &jti,
            false,
        )
    }

    #[test]
    fn every_thread_s_events_are_taken_once_and_a_full_shard_refuses() {
        let shelf = Arc::new(Shelf::new());
        let threads: Vec<_> = (0..SHARDS + 3)
            .map(|t| {
                let shelf = Arc::clone(&shelf);
                std::thread::spawn(move || (0..100).all(|i| shelf.put(issued(format!("{t}-{i}")))))
            })
            .collect();
        assert!(threads.into_iter().all(|t| t.join().unwrap()));
        let mut into = Vec::new();
        shelf.take(&mut into);
        let mut jtis: Vec<String> = into.iter().map(|e| e.jti.clone()).collect();
        jtis.sort();
        jtis.dedup();
        assert_eq!(jtis.len(), (SHARDS + 3) * 100, "every event, once");
        into.clear();
        shelf.take(&mut into);
        assert!(into.is_empty(), "taken events are gone from the shelf");

        // The shelf holds QUEUE events in all: the next is refused, not kept.
        let kept = (0..QUEUE + 5)
            .filter(|i| shelf.put(issued(i.to_string())))
            .count();
        assert_eq!(kept, QUEUE);
        shelf.take(&mut into);
        assert_eq!(into.len(), QUEUE);
        assert!(shelf.put(issued("after".into())), "room again once taken");
    }

    #[test]
    fn events_of_several_threads_come_back_in_the_order_they_were_put() {
        let shelf = Arc::new(Shelf::new());
        // Threads take turns, one event each: their shards differ, the order must not.
        for i in 0..40 {
            let shelf = Arc::clone(&shelf);
            std::thread::spawn(move || assert!(shelf.put(issued(i.to_string()))))
                .join()
                .unwrap();
        }
        let mut into = Vec::new();
        shelf.take(&mut into);
        let order: Vec<String> = into.iter().map(|e| e.jti.clone()).collect();
        let put: Vec<String> = (0..40).map(|i: i32| i.to_string()).collect();
        assert_eq!(order, put);
    }
}
