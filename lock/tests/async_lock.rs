//! Async acquisition (feature `tokio`) never blocks the executor: seed 003's server hung because
//! a blocking flock ran on its event loop.
#![cfg(feature = "tokio")]

use std::time::{Duration, Instant};

use litekeep_lock::{FileLock, LockError, Mode, Wait};

fn lock(name: &str) -> FileLock {
    let dir = litekeep_faults::harness::process_scratch(&format!("async-{name}"));
    FileLock::for_database(dir.join("app.db")).unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn waiting_for_the_lock_leaves_the_executor_free() {
    let lock = lock("free");
    let held = lock.exclusive(Wait::None).unwrap();
    // One executor thread: if the wait blocked it, the ticker could not run.
    let waiter = {
        let lock = lock.clone();
        tokio::spawn(async move { lock.acquire_async(Mode::Exclusive, Wait::Forever).await })
    };
    let mut ticks = 0;
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(100) {
        tokio::time::sleep(Duration::from_millis(5)).await;
        ticks += 1;
    }
    assert!(ticks >= 5, "executor starved: {ticks} ticks");
    assert!(!waiter.is_finished(), "got the lock while it was held");
    drop(held);
    let guard = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("waiter never got the released lock")
        .unwrap()
        .unwrap();
    assert_eq!(guard.mode(), Mode::Exclusive);
}

#[tokio::test(flavor = "current_thread")]
async fn async_timeout_names_the_holder() {
    let lock = lock("timeout").with_label("blocking holder");
    let _held = std::thread::scope(|s| {
        s.spawn(|| lock.exclusive(Wait::None).unwrap())
            .join()
            .unwrap()
    });
    let err = lock
        .acquire_async(Mode::Shared, Duration::from_millis(50))
        .await
        .unwrap_err();
    match &err {
        LockError::Timeout { waited, holder, .. } => {
            assert!(*waited >= Duration::from_millis(50));
            let holder = holder.as_deref().unwrap();
            assert!(holder.this_process);
            assert_eq!(holder.label.as_deref(), Some("blocking holder"));
        }
        other => panic!("expected a timeout, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_asking_again_is_refused_at_once() {
    let lock = lock("reentry");
    let _held = lock
        .acquire_async(Mode::Exclusive, Wait::None)
        .await
        .unwrap();
    let again = tokio::time::timeout(
        Duration::from_secs(10),
        lock.acquire_async(Mode::Exclusive, Wait::Forever),
    )
    .await
    .expect("re-entry hung");
    assert!(matches!(again, Err(LockError::WouldDeadlock { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_take_turns() {
    let lock = lock("turns");
    let inside = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (lock, inside) = (lock.clone(), inside.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..20 {
                let _g = lock
                    .acquire_async(Mode::Exclusive, Wait::Forever)
                    .await
                    .unwrap();
                assert_eq!(inside.fetch_add(1, std::sync::atomic::Ordering::SeqCst), 0);
                tokio::task::yield_now().await;
                inside.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}
