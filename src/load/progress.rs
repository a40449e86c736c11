//! The live progress line on standard error: elapsed time, a bar when the end is known,
//! messages sent, accepted, rejected, errors, and the current rate. Drawn only when standard
//! error is a terminal, so scripts and logs get nothing but the summary.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::Shared;

const REDRAW: Duration = Duration::from_millis(250);
const BAR: usize = 24;

/// A running progress line.
pub(crate) struct Progress {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Progress {
    /// Starts redrawing, or does nothing when standard error is not a terminal.
    pub(crate) fn start(
        shared: Arc<Shared>,
        count: Option<u64>,
        duration: Option<Duration>,
    ) -> Option<Progress> {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            let mut last = (Instant::now(), 0u64);
            // Ends when the run stops it; the sending loops are bounded, so this is too.
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    () = tokio::time::sleep(REDRAW) => {}
                }
                let now = Instant::now();
                let sent = shared.live.sent.load(Relaxed);
                let rate = (sent - last.1) as f64 / (now - last.0).as_secs_f64().max(1e-3);
                last = (now, sent);
                let elapsed = now - shared.start;
                let done = match (count, duration) {
                    (Some(c), Some(d)) => {
                        (sent as f64 / c as f64).max(elapsed.as_secs_f64() / d.as_secs_f64())
                    }
                    (Some(c), None) => sent as f64 / c as f64,
                    (None, Some(d)) => elapsed.as_secs_f64() / d.as_secs_f64(),
                    (None, None) => 0.0,
                }
                .clamp(0.0, 1.0);
                let filled = (done * BAR as f64) as usize;
                let line = format!(
                    "\r\x1b[2K{:>6.1}s [{}{}] {:>3.0}%  sent {sent}  accepted {}  rejected {}  errors {}  {rate:.0} msg/s",
                    elapsed.as_secs_f64(),
                    "#".repeat(filled),
                    "-".repeat(BAR - filled),
                    done * 100.0,
                    shared.live.accepted.load(Relaxed),
                    shared.live.rejected.load(Relaxed),
                    shared.live.errors.load(Relaxed),
                );
                let mut err = std::io::stderr().lock();
                let _ = err.write_all(line.as_bytes());
                let _ = err.flush();
            }
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(b"\r\x1b[2K");
            let _ = err.flush();
        });
        Some(Progress { stop, task })
    }

    /// Clears the line.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}
