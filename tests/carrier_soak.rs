//! Soak: 10 000 bind cycles against smsc-sim, 5 000 whole pool lifetimes (connect, bind,
//! unbind, close) and 5 000 reconnects after the SMSC drops the connection. Tasks, file
//! descriptors and memory must come back to where they were.

mod carrier_support;

use std::time::Duration;

use carrier_support::*;
use smsc_sim::config::Faults;

const LIFETIMES: usize = 5_000;
const RECONNECTS: u64 = 5_000;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

struct Usage {
    tasks: usize,
    fds: usize,
    rss: u64,
}

fn usage() -> Usage {
    Usage {
        tasks: tasks(),
        fds: open_fds(),
        rss: rss_bytes(),
    }
}

async fn lifetimes(sim: &TestSim, n: usize) {
    for _ in 0..n {
        let s = start(carrier("soak", sim.addr, "esme"));
        until("bound", || s.pool.binds_up() == 1).await;
        assert!(s.pool.shutdown(WAIT).await, "clean unbind");
        s.tracker.close();
        s.tracker.wait().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_bind_cycles_leave_tasks_fds_and_memory_flat() {
    let sim = TestSim::start(vec![account("esme"), account("flaky")]).await;
    // Warm up allocator pools and the runtime before the baseline.
    lifetimes(&sim, 200).await;
    until("the simulator's sessions are gone", || {
        sim.handle.stats().binds_active == 0
    })
    .await;
    let before = usage();

    lifetimes(&sim, LIFETIMES).await;

    // Reconnects: the SMSC closes every connection right after the bind.
    sim.handle
        .set_faults(
            "flaky",
            Faults {
                disconnect_after_secs: Some(0.0),
                ..Faults::default()
            },
        )
        .unwrap();
    let mut config = carrier("flaky", sim.addr, "flaky");
    config.reconnect.initial_ms = 1;
    config.reconnect.max_ms = 1;
    let s = start(config);
    until("five thousand reconnects", || {
        s.pool.status().binds[0].connections >= RECONNECTS
    })
    .await;
    s.pool.shutdown(WAIT).await;
    s.tracker.close();
    s.tracker.wait().await;
    drop(s);

    until("the simulator's sessions are gone", || {
        sim.handle.stats().binds_active == 0
    })
    .await;
    // Closed sockets and finished tasks are reaped asynchronously; give them a moment.
    until("tasks back to the baseline", || tasks() <= before.tasks).await;
    until("file descriptors back to the baseline", || {
        open_fds() <= before.fds
    })
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let after = usage();
    let stats = sim.handle.stats();
    assert!(
        stats.binds_total >= LIFETIMES as u64 + RECONNECTS,
        "{} binds",
        stats.binds_total
    );
    let grown = after.rss.saturating_sub(before.rss);
    eprintln!(
        "soak: tasks {} -> {}, fds {} -> {}, rss {} KiB -> {} KiB, {} binds",
        before.tasks,
        after.tasks,
        before.fds,
        after.fds,
        before.rss / 1024,
        after.rss / 1024,
        stats.binds_total
    );
    assert!(
        grown < 8 * 1024 * 1024,
        "memory grew by {grown} bytes over 10 000 cycles (tasks {} -> {}, fds {} -> {})",
        before.tasks,
        after.tasks,
        before.fds,
        after.fds
    );
    sim.stop().await;
}
