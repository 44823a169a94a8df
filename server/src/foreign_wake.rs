//! Waiting on this shard for a value that another shard's thread delivers, without ever
//! letting that thread drop a glommio task waker.
//!
//! glommio-ng 0.12 counts a task's references atomically but lets a waker dropped on a
//! foreign thread take the count to zero and then raise it again to queue one last wake
//! for the owner. If the owner releases the task in between (its `JoinHandle` read the
//! output and was dropped), the task is freed twice: the broker died with "double free
//! detected" under a 100k-record consumer group load, in the task of a request that had
//! awaited a cross-shard reply (`oneshot::SharedReceiver` hands the task's waker to the
//! replying shard, which wakes and drops it there).
//!
//! `Relayed` polls such a future with a waker of its own (an `Arc`, safe on any thread).
//! That waker keeps the task's waker in a slot and only calls `wake_by_ref` on it, which
//! adds a reference while the slot still holds one and queues the wake for the owner; the
//! slot's waker is replaced and finally dropped only on the owner thread, under the same
//! lock. So a foreign thread never releases a reference to one of our tasks.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};

/// The owner task's waker, woken by reference from any thread.
#[derive(Default)]
struct Slot {
    waker: Mutex<Option<Waker>>,
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, Option<Waker>> {
        self.waker.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Wake for Slot {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Under the lock, so the owner cannot drop this waker while it is in use.
        if let Some(w) = self.lock().as_ref() {
            w.wake_by_ref();
        }
    }
}

/// Polls `F` through a `Slot` waker; see the module doc. Must be polled and dropped on
/// the thread of the task that polls it (as every glommio future is).
pub struct Relayed<F> {
    inner: F,
    slot: Arc<Slot>,
    relay: Waker,
}

impl<F: Future + Unpin> Relayed<F> {
    pub fn new(inner: F) -> Self {
        let slot = Arc::new(Slot::default());
        let relay = Waker::from(slot.clone());
        Relayed { inner, slot, relay }
    }
}

impl<F: Future + Unpin> Future for Relayed<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        {
            let mut slot = this.slot.lock();
            if !slot.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                // The previous waker (if any) is dropped here, on the owner thread.
                *slot = Some(cx.waker().clone());
            }
        }
        let mut relay_cx = Context::from_waker(&this.relay);
        let out = Pin::new(&mut this.inner).poll(&mut relay_cx);
        if out.is_ready() {
            this.slot.lock().take();
        }
        out
    }
}

impl<F> Drop for Relayed<F> {
    fn drop(&mut self) {
        // Taken out and dropped on the owner thread: a foreign thread still holding the
        // relay waker finds the slot empty.
        let owned = self.slot.lock().take();
        drop(owned);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use glommio::channels::oneshot;
    use glommio::{LocalExecutorBuilder, Placement};

    use super::*;

    const ASKS: usize = 20_000;

    /// Runs `ASKS` cross-thread asks: a task on executor A awaits a shared oneshot that a
    /// thread standing in for another shard fills; A joins each task and drops its handle
    /// at once, the pattern of a connection's request tasks.
    fn asks() -> usize {
        let (to_replier, requests) = std::sync::mpsc::channel::<oneshot::SharedSender<usize>>();
        let replier = std::thread::spawn(move || {
            for (i, tx) in requests.into_iter().enumerate() {
                let _ = tx.send(i);
            }
        });
        let owner = LocalExecutorBuilder::new(Placement::Unbound)
            .spawn(move || async move {
                let mut answered = 0;
                for _ in 0..ASKS {
                    let (tx, rx) = oneshot::shared::<usize>();
                    let task =
                        glommio::spawn_local(async move { Relayed::new(rx).await.ok() }).detach();
                    // The task registers its waker before the reply is sent, so the reply
                    // wakes it from the other thread.
                    futures_lite::future::yield_now().await;
                    to_replier.send(tx).unwrap();
                    if task.await.flatten().is_some() {
                        answered += 1;
                    }
                }
                drop(to_replier);
                glommio::timer::sleep(Duration::from_millis(10)).await;
                answered
            })
            .unwrap();
        let answered = owner.join().unwrap();
        replier.join().unwrap();
        answered
    }

    #[test]
    fn relayed_cross_thread_replies_all_arrive() {
        // Proves a task awaiting a value sent from another thread through `Relayed` is
        // woken every time (no reply lost, no hang) over many short-lived tasks whose
        // handles are dropped right after they finish.
        assert_eq!(asks(), ASKS);
    }

    #[test]
    fn a_reply_to_a_dropped_waiter_is_harmless() {
        // Proves a waiter dropped before its reply arrives leaves nothing for the replying
        // thread to release: the send fails cleanly (receiver gone) and the owner goes on.
        let (tx_tx, tx_rx) = std::sync::mpsc::channel::<oneshot::SharedSender<u32>>();
        let owner = LocalExecutorBuilder::new(Placement::Unbound)
            .spawn(move || async move {
                let (tx, rx) = oneshot::shared::<u32>();
                let mut waiter = Relayed::new(rx);
                // Poll once so the relay is registered, then give up on the reply.
                let pending = futures_lite::future::poll_once(&mut waiter).await;
                assert!(pending.is_none());
                drop(waiter);
                tx_tx.send(tx).unwrap();
                glommio::timer::sleep(Duration::from_millis(20)).await;
            })
            .unwrap();
        let tx = tx_rx.recv().unwrap();
        assert!(tx.send(7).is_err(), "the receiver is gone");
        owner.join().unwrap();
    }
}
