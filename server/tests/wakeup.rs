//! Cross-worker wakeups and mailboxes on real tokio-uring runtimes.

#![cfg(feature = "runtime")]

use std::io;
use std::thread;
use std::time::Duration;

use sstpd::worker::mailbox::{mailbox, SendBatchErrorKind, Wakeup, WakeupStats};

/// Upper bound for anything that should happen "at once"; only hit when a
/// test is failing.
const PATIENCE: Duration = Duration::from_secs(10);

/// Runs `f` on a fresh thread with its own tokio-uring runtime, as a worker
/// would.
fn on_uring_thread<F, Fut, R>(f: F) -> R
where
    F: FnOnce() -> Fut + Send,
    Fut: std::future::Future<Output = R>,
    R: Send,
{
    thread::scope(|scope| scope.spawn(|| tokio_uring::start(f())).join().unwrap())
}

#[test]
fn a_burst_of_notifies_costs_one_eventfd_write() {
    let wakeup = Wakeup::new().unwrap();
    for _ in 0..1000 {
        wakeup.notify();
    }
    assert_eq!(
        wakeup.stats(),
        WakeupStats {
            notify_calls: 1000,
            eventfd_writes: 1
        }
    );
    let listener_side = wakeup.clone();
    on_uring_thread(|| async move {
        let mut listener = listener_side.listener().unwrap();
        assert_eq!(listener.wait().await.unwrap(), 1, "one write, counter 1");
        // Disarmed: the next burst writes once more.
        for _ in 0..500 {
            listener_side.notify();
        }
        assert_eq!(listener.wait().await.unwrap(), 1);
    });
    assert_eq!(
        wakeup.stats(),
        WakeupStats {
            notify_calls: 1500,
            eventfd_writes: 2
        }
    );
}

#[test]
fn a_wakeup_has_exactly_one_listener() {
    let wakeup = Wakeup::new().unwrap();
    let _listener = wakeup.listener().unwrap();
    let error = wakeup.listener().unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::AlreadyExists);
    let error = wakeup.clone().listener().unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::AlreadyExists);
}

#[test]
fn wait_is_cancel_safe() {
    let wakeup = Wakeup::new().unwrap();
    on_uring_thread(|| async {
        let mut listener = wakeup.listener().unwrap();
        // Nothing notified: the wait times out and its future is dropped
        // with the eventfd read in flight.
        let early = tokio::time::timeout(Duration::from_millis(20), listener.wait()).await;
        assert!(early.is_err(), "woke without a notify");
        // Notify from another thread. If the dropped future had taken the
        // read with it, that orphaned read would swallow this wakeup and
        // the wait below would time out.
        let notifier = wakeup.clone();
        thread::spawn(move || notifier.notify()).join().unwrap();
        let woke = tokio::time::timeout(PATIENCE, listener.wait()).await;
        assert_eq!(woke.expect("wakeup lost").unwrap(), 1);
    });
    assert_eq!(wakeup.stats().eventfd_writes, 1);
}

#[test]
fn mailbox_delivers_batches_from_other_threads_in_order() {
    const SENDERS: u64 = 3;
    const BATCHES: u64 = 1000;
    const BATCH_LEN: u64 = 10;
    let (sender, mut mailbox) = mailbox::<u64>(64).unwrap();

    let received = thread::scope(|scope| {
        for id in 0..SENDERS {
            let sender = sender.clone();
            scope.spawn(move || {
                for batch in 0..BATCHES {
                    let mut items: Vec<u64> = (0..BATCH_LEN)
                        .map(|i| id << 32 | (batch * BATCH_LEN + i))
                        .collect();
                    // This test is about delivery, not drops: retry on full.
                    let mut attempts = 0;
                    while let Err(error) = sender.send_batch(items) {
                        assert_eq!(error.kind, SendBatchErrorKind::Full);
                        items = error.batch;
                        attempts += 1;
                        assert!(attempts < 10_000_000, "receiver stalled");
                        thread::yield_now();
                    }
                }
            });
        }
        let receiver = scope.spawn(|| {
            tokio_uring::start(async {
                let mut listener = mailbox.listener().unwrap();
                let mut next = [0u64; SENDERS as usize];
                let mut total = 0;
                while total < SENDERS * BATCHES * BATCH_LEN {
                    tokio::time::timeout(PATIENCE, listener.wait())
                        .await
                        .expect("wakeup lost")
                        .unwrap();
                    mailbox.drain(&mut |item: u64| {
                        let (id, seq) = ((item >> 32) as usize, item & 0xffff_ffff);
                        assert_eq!(seq, next[id], "sender {id} out of order");
                        next[id] += 1;
                        total += 1;
                    });
                }
                (total, mailbox.stats(), mailbox.wakeup_stats())
            })
        });
        receiver.join().unwrap()
    });

    let (total, stats, wakeups) = received;
    assert_eq!(total, SENDERS * BATCHES * BATCH_LEN);
    assert_eq!(stats.batches_sent, SENDERS * BATCHES);
    assert_eq!(stats.items_sent, SENDERS * BATCHES * BATCH_LEN);
    assert!(wakeups.eventfd_writes <= wakeups.notify_calls);
    assert!(wakeups.notify_calls >= SENDERS * BATCHES);
}

#[test]
fn full_mailbox_drops_and_counts_instead_of_blocking() {
    let (sender, mut mailbox) = mailbox::<u32>(2).unwrap();
    sender.send_batch(vec![1, 2]).unwrap();
    sender.send_batch(vec![3]).unwrap();
    let error = sender.send_batch(vec![4, 5, 6]).unwrap_err();
    assert_eq!(error.kind, SendBatchErrorKind::Full);
    assert_eq!(error.kind.as_str(), "mailbox_full");
    assert_eq!(error.batch, vec![4, 5, 6], "the batch comes back untouched");
    // An empty batch is no message and no wakeup.
    sender.send_batch(Vec::new()).unwrap();
    let stats = sender.stats();
    assert_eq!(
        (
            stats.batches_sent,
            stats.items_sent,
            stats.batches_dropped,
            stats.items_dropped
        ),
        (2, 3, 1, 3)
    );
    assert_eq!(mailbox.wakeup_stats().notify_calls, 2);

    let mut items = Vec::new();
    assert_eq!(mailbox.drain(&mut |i| items.push(i)), 3);
    assert_eq!(items, [1, 2, 3]);
    sender.send_batch(vec![7]).unwrap();
    assert_eq!(mailbox.drain(&mut |i| items.push(i)), 1);
    assert_eq!(items, [1, 2, 3, 7]);

    drop(mailbox);
    let error = sender.send_batch(vec![8]).unwrap_err();
    assert_eq!(error.kind, SendBatchErrorKind::Disconnected);
    assert_eq!(sender.stats().items_dropped, 4);
}

#[test]
fn what_a_bounded_drain_leaves_behind_still_wakes_the_listener() {
    let (sender, mut mailbox) = mailbox::<u32>(2).unwrap();
    on_uring_thread(|| async {
        let mut listener = mailbox.listener().unwrap();
        sender.send_batch(vec![1]).unwrap();
        sender.send_batch(vec![2]).unwrap();
        listener.wait().await.unwrap();
        let mut items = Vec::new();
        // While draining, another batch arrives; the drain takes at most
        // `capacity` (2) batches, so it stays queued...
        let handled = mailbox.drain(&mut |i| {
            if i == 1 {
                sender.send_batch(vec![3]).unwrap();
            }
            items.push(i);
        });
        assert_eq!((handled, items.as_slice()), (2, &[1, 2][..]));
        // ...and its sender's wakeup makes the next wait return.
        tokio::time::timeout(PATIENCE, listener.wait())
            .await
            .expect("leftover batch without a wakeup")
            .unwrap();
        assert_eq!(mailbox.drain(&mut |i| items.push(i)), 1);
        assert_eq!(items, [1, 2, 3]);
    });
}

#[test]
fn control_messages_pass_a_full_mailbox_first_and_wake_the_listener() {
    let (sender, mut mailbox) = mailbox::<u32>(1).unwrap();
    on_uring_thread(|| async {
        let mut listener = mailbox.listener().unwrap();
        sender.send_batch(vec![1]).unwrap();
        let full = sender.send_batch(vec![2]).unwrap_err();
        assert_eq!(full.kind, SendBatchErrorKind::Full);
        // The data lane is full; the control lane still takes a message,
        // wakes the listener, and is drained first.
        sender.send_control(100).unwrap();
        tokio::time::timeout(PATIENCE, listener.wait())
            .await
            .expect("control message without a wakeup")
            .unwrap();
        let mut items = Vec::new();
        assert_eq!(mailbox.drain(&mut |i| items.push(i)), 2);
        assert_eq!(items, [100, 1]);
    });
    let stats = sender.stats();
    assert_eq!((stats.control_sent, stats.items_dropped), (1, 1));
    drop(mailbox);
    assert_eq!(
        sender.send_control(7),
        Err(7),
        "handed back once nobody listens"
    );
}
