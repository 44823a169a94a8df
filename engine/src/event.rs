//! A tiny single-threaded notification: `listen()` returns a future that resolves at the
//! next `notify()`. Used for "something was appended" (Fetch long-poll) and "please
//! flush soon" (the background flusher).

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

#[derive(Default)]
struct Inner {
    generation: u64,
    wakers: Vec<Waker>,
}

#[derive(Default, Clone)]
pub struct Event {
    inner: Rc<RefCell<Inner>>,
}

impl Event {
    pub fn new() -> Self {
        Event::default()
    }

    /// Wakes every current listener.
    pub fn notify(&self) {
        let wakers = {
            let mut inner = self.inner.borrow_mut();
            inner.generation += 1;
            std::mem::take(&mut inner.wakers)
        };
        for w in wakers {
            w.wake();
        }
    }

    /// A future resolving at the first `notify` after this call.
    pub fn listen(&self) -> EventListener {
        EventListener {
            inner: self.inner.clone(),
            generation: self.inner.borrow().generation,
        }
    }
}

pub struct EventListener {
    inner: Rc<RefCell<Inner>>,
    generation: u64,
}

impl Future for EventListener {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut inner = self.inner.borrow_mut();
        if inner.generation != self.generation {
            return Poll::Ready(());
        }
        if !inner.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            inner.wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}
