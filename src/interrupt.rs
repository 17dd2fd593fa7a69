//! SIGINT and SIGTERM while a run changes an environment (`up`, `rollback`, `down` on AWS): a
//! cancelled CI job sends SIGTERM, a person presses Ctrl-C. [`install`] takes both signals over
//! (from then on neither kills orch); each one received is forwarded as SIGINT to every child
//! process running at that moment (the [`crate::runner::Duct`] runner registers them with
//! [`track`]) — pulumi's documented graceful cancel: the first SIGINT or SIGTERM cancels the
//! update after the operations in flight, a second terminates it (`pkg/backend/cancellation.go`,
//! `cancellationScopeSource.NewScope`). The command then records the interruption, releases its
//! lock and exits `128 + signal` (130 for SIGINT, 143 for SIGTERM).
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Mutex, OnceLock};

use nix::sys::signal::Signal;

/// The first signal received (0: none).
static FIRST: AtomicI32 = AtomicI32::new(0);
/// Child processes running now.
static CHILDREN: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());
static RECEIVED: OnceLock<tokio::sync::watch::Sender<i32>> = OnceLock::new();

/// Handle SIGINT and SIGTERM from now on (call inside the runtime; a second call does nothing).
pub(crate) fn install() -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    if RECEIVED.get().is_some() {
        return Ok(());
    }
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let (tx, _) = tokio::sync::watch::channel(0);
    if RECEIVED.set(tx).is_err() {
        return Ok(());
    }
    tokio::spawn(async move {
        loop {
            let sig = tokio::select! {
                Some(()) = int.recv() => Signal::SIGINT,
                Some(()) = term.recv() => Signal::SIGTERM,
                else => return,
            };
            let _ = FIRST.compare_exchange(0, sig as i32, Ordering::SeqCst, Ordering::SeqCst);
            forward();
            if let Some(tx) = RECEIVED.get() {
                tx.send_replace(sig as i32);
            }
        }
    });
    Ok(())
}

/// The first signal received, if any.
pub(crate) fn received() -> Option<Signal> {
    Signal::try_from(FIRST.load(Ordering::SeqCst)).ok()
}

/// Resolves when a signal has been received (at once if one was); pending forever without
/// [`install`].
pub(crate) async fn wait() -> Signal {
    let Some(tx) = RECEIVED.get() else { return std::future::pending().await };
    let mut rx = tx.subscribe();
    loop {
        if let Some(sig) = received() {
            return sig;
        }
        if rx.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// The exit code for a run stopped by `sig`: 128 + its number, as shells report it.
pub(crate) fn exit_code(sig: Signal) -> u8 {
    128u8.saturating_add(sig as i32 as u8)
}

/// True while a tracked child process runs.
pub(crate) fn children_running() -> bool {
    CHILDREN.lock().map(|c| !c.is_empty()).unwrap_or(false)
}

/// Registers child processes while it lives.
#[derive(Debug)]
pub(crate) struct Tracked(Vec<u32>);

/// Track `pids` until the returned guard is dropped; a signal that came before is forwarded now.
pub(crate) fn track(pids: Vec<u32>) -> Tracked {
    if let Ok(mut c) = CHILDREN.lock() {
        c.extend(pids.iter().copied());
    }
    if received().is_some() {
        for pid in &pids {
            interrupt(*pid);
        }
    }
    Tracked(pids)
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if let Ok(mut c) = CHILDREN.lock() {
            for pid in &self.0 {
                c.remove(pid);
            }
        }
    }
}

fn forward() {
    let pids: Vec<u32> = CHILDREN.lock().map(|c| c.iter().copied().collect()).unwrap_or_default();
    for pid in pids {
        interrupt(pid);
    }
}

fn interrupt(pid: u32) {
    if let Ok(raw) = i32::try_from(pid) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), Signal::SIGINT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell_convention() {
        assert_eq!(exit_code(Signal::SIGINT), 130);
        assert_eq!(exit_code(Signal::SIGTERM), 143);
    }
}
