//! Scatter-gather over the mesh: a request that touches partitions (or groups) of several
//! shards is split per owning shard, every message is enqueued before any reply is
//! awaited (so all owners work at once), and the replies are joined back in the order of
//! the items. Produce, Fetch, ListOffsets, OffsetForLeaderEpoch, DeleteRecords and the
//! group admin calls all go through here.
//!
//! Two shapes: `per_owner` sends one message per owning shard carrying all of its items
//! (Fetch), `per_item` one message per item (one partition's append, one group's call).
//! An item answered before sending (unknown partition, bad input) is `Item::Answered` and
//! keeps its place; a message that gets no answer fills its places with `failed(&e)`.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;

use crate::mesh::{CallError, PendingReply, Reply, ShardRequest};
use crate::shard::Shard;
use crate::topic_table::ShardId;

/// One item of a scattered request.
pub enum Item<I, R> {
    /// To be sent to its owning shard.
    To(ShardId, I),
    /// Already answered without a message (bad input, unknown partition).
    Answered(R),
}

/// Messages already enqueued on their owners, waiting to be joined in item order. `R` is
/// the owners' reply per item, `A` what the caller makes of it (and gave for items it
/// answered itself).
pub struct Scatter<R: Send, A = R> {
    len: usize,
    answered: Vec<(usize, A)>,
    sent: Vec<Sent<R>>,
}

enum Sent<R: Send> {
    Item(usize, Result<PendingReply<R>, CallError>),
    Owner(Vec<usize>, Result<PendingReply<Vec<R>>, CallError>),
}

impl<R: Send + 'static, A> Scatter<R, A> {
    /// Sends one message per item to the item's owner, in item order.
    pub async fn per_item<I>(
        shard: &Rc<Shard>,
        items: impl IntoIterator<Item = Item<I, A>>,
        mut make: impl FnMut(I, Reply<R>) -> ShardRequest,
    ) -> Scatter<R, A> {
        let mut s = Scatter::empty();
        for (i, item) in items.into_iter().enumerate() {
            s.len += 1;
            match item {
                Item::To(owner, item) => {
                    let pending = shard.send(owner, |reply| make(item, reply)).await;
                    s.sent.push(Sent::Item(i, pending));
                }
                Item::Answered(r) => s.answered.push((i, r)),
            }
        }
        s
    }

    /// Groups the items by owner and sends each owner one message with its items (in item
    /// order); the owner answers one result per item, in the same order.
    pub async fn per_owner<I>(
        shard: &Rc<Shard>,
        items: impl IntoIterator<Item = Item<I, A>>,
        mut make: impl FnMut(Vec<I>, Reply<Vec<R>>) -> ShardRequest,
    ) -> Scatter<R, A> {
        let mut s = Scatter::empty();
        let mut by_owner: std::collections::BTreeMap<ShardId, (Vec<usize>, Vec<I>)> =
            Default::default();
        for (i, item) in items.into_iter().enumerate() {
            s.len += 1;
            match item {
                Item::To(owner, item) => {
                    let (idx, items) = by_owner.entry(owner).or_default();
                    idx.push(i);
                    items.push(item);
                }
                Item::Answered(r) => s.answered.push((i, r)),
            }
        }
        for (owner, (idx, items)) in by_owner {
            let pending = shard.send(owner, |reply| make(items, reply)).await;
            s.sent.push(Sent::Owner(idx, pending));
        }
        s
    }

    fn empty() -> Scatter<R, A> {
        Scatter {
            len: 0,
            answered: Vec::new(),
            sent: Vec::new(),
        }
    }

    /// Waits for every reply and returns one answer per item, in item order: `ok` of the
    /// owner's reply, or `failed` of the call error when its message got no answer.
    pub async fn gather(self, ok: impl Fn(R) -> A, failed: impl Fn(&CallError) -> A) -> Vec<A> {
        let mut out: Vec<Option<A>> = Vec::with_capacity(self.len);
        out.resize_with(self.len, || None);
        for (i, a) in self.answered {
            out[i] = Some(a);
        }
        for (i, r) in replies(self.sent).await {
            out[i] = Some(r.map_or_else(|e| failed(&e), &ok));
        }
        out.into_iter()
            .map(|a| a.expect("every item answered"))
            .collect()
    }

    /// Waits until any one message is answered or fails; the others are dropped, and
    /// their owners' replies go nowhere.
    pub async fn any(self) {
        type Wait = Pin<Box<dyn Future<Output = ()>>>;
        let mut waits: Vec<Wait> = Vec::with_capacity(self.sent.len());
        for sent in self.sent {
            let wait: Wait = match sent {
                Sent::Item(_, Ok(p)) => Box::pin(async move {
                    let _ = p.wait().await;
                }),
                Sent::Owner(_, Ok(p)) => Box::pin(async move {
                    let _ = p.wait().await;
                }),
                Sent::Item(_, Err(_)) | Sent::Owner(_, Err(_)) => return,
            };
            waits.push(wait);
        }
        if waits.is_empty() {
            return;
        }
        futures_lite::future::poll_fn(|cx| {
            if waits.iter_mut().any(|w| w.as_mut().poll(cx).is_ready()) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }
}

impl<R: Send + 'static> Scatter<R, Result<R, CallError>> {
    /// Like `gather`, keeping the call error of each item whose message got no answer.
    pub async fn gather_results(self) -> Vec<Result<R, CallError>> {
        self.gather(Ok, |e| Err(*e)).await
    }
}

/// Waits for every message's reply: per item sent, its index and reply.
async fn replies<R: Send>(sent: Vec<Sent<R>>) -> Vec<(usize, Result<R, CallError>)> {
    let mut out = Vec::new();
    for sent in sent {
        match sent {
            Sent::Item(i, pending) => {
                let r = match pending {
                    Ok(p) => p.wait().await,
                    Err(e) => Err(e),
                };
                out.push((i, r));
            }
            Sent::Owner(idx, pending) => {
                let rs = match pending {
                    Ok(p) => p.wait().await,
                    Err(e) => Err(e),
                };
                match rs {
                    Ok(rs) => {
                        assert_eq!(rs.len(), idx.len(), "one result per item");
                        out.extend(idx.into_iter().zip(rs.into_iter().map(Ok)));
                    }
                    Err(e) => out.extend(idx.into_iter().map(|i| (i, Err(e)))),
                }
            }
        }
    }
    out
}
