//! What `up`, `rollback` and `down` do with SIGINT or SIGTERM once they hold the deploy lock
//! ([`crate::interrupt`] forwards the signal to pulumi as SIGINT, its graceful cancel): [`guarded`]
//! runs the locked work; on a signal it lets a running child process (pulumi) finish its cancel,
//! then stops the work at its next await, and hands the signal back so the caller records the
//! interruption and releases the lock before exiting 130 (SIGINT) or 143 (SIGTERM).
use std::future::Future;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::error::OrchError;
use crate::printer::Printer;

/// How the guarded work ended.
pub(crate) enum Ended<T> {
    Done(Result<T, OrchError>),
    Interrupted(Signal),
}

/// Run `work`; on SIGINT/SIGTERM wait for the children it runs to stop (pulumi cancels
/// gracefully), then drop it.
pub(crate) async fn guarded<T>(
    work: impl Future<Output = Result<T, OrchError>>,
    p: &Printer,
) -> Ended<T> {
    tokio::pin!(work);
    let sig = tokio::select! {
        r = &mut work => return Ended::Done(r),
        sig = crate::interrupt::wait() => sig,
    };
    if crate::interrupt::children_running() {
        p.warn(&format!(
            "{sig}: pulumi got SIGINT and cancels after the operations in flight (send {sig} again to make it stop at once, which may orphan resources)"
        ));
    } else {
        p.warn(&format!("{sig}: stopping"));
    }
    loop {
        tokio::select! {
            // Ended by the cancel (pulumi exits 8): what it failed with is the interruption.
            _ = &mut work => break,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                if !crate::interrupt::children_running() { break }
            }
        }
    }
    Ended::Interrupted(sig)
}

/// The error an interrupted run exits with (130 for SIGINT, 143 for SIGTERM).
pub(crate) fn interrupted(sig: Signal, command: &str, what: &str) -> OrchError {
    OrchError::Interrupted {
        message: format!("{command} stopped by {sig}: {what}"),
        hint: format!("rerun `{command}`; every step is idempotent and pulumi kept the state of what completed"),
        code: crate::interrupt::exit_code(sig),
    }
}
