//! The background arbiter: one actix thread for what must run even outside an actix system (the
//! global hub, client connections opened from a plain tokio runtime).

use std::sync::OnceLock;

use actix_rt::ArbiterHandle;

/// The process-wide background arbiter, started on first use on a thread of its own.
///
/// # Panics
///
/// When the operating system refuses to start the thread.
pub(crate) fn background() -> ArbiterHandle {
    static BACKGROUND: OnceLock<ArbiterHandle> = OnceLock::new();
    BACKGROUND.get_or_init(start).clone()
}

// Failing to start a thread at startup is not recoverable, and no peer input reaches here.
#[allow(clippy::expect_used)]
fn start() -> ArbiterHandle {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("switchboard-background".into())
        .spawn(move || {
            actix_rt::System::new().block_on(async move {
                // The receiver waits for exactly this message; it cannot be gone.
                let _ = tx.send(actix_rt::Arbiter::current());
                std::future::pending::<()>().await;
            });
        })
        .expect("failed to spawn the switchboard background thread");
    rx.recv()
        .expect("the switchboard background thread died while starting")
}
