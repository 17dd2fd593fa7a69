//! The HTTPS listener's connections run on one single-threaded tokio runtime per core (a "worker"),
//! like HAProxy's threads: the accept loop hands each new connection to the next worker in turn,
//! and everything the connection does afterwards — TLS, each request, the upstream connection taken
//! from that worker's own pool — stays on that thread: no work stealing, no cross-thread wake-ups on
//! the request path. The workers stop when the accept loop (which owns the handles) ends.
use std::cell::Cell;
use std::future::Future;
use std::net::SocketAddr;

use tokio::net::TcpStream;
use tokio::sync::mpsc;

thread_local! {
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// The index of the worker running on this thread (0 outside the workers).
pub fn current() -> usize {
    INDEX.with(Cell::get)
}

/// How many workers: one per core (as many as the default tokio runtime has worker threads), or
/// `configured` (`ORCH_LB_WORKERS`; 0: no workers, connections run on the main multi-threaded
/// runtime — kept for comparing the two in `scripts/bench-lb.sh`).
pub fn count(configured: Option<usize>) -> usize {
    match configured {
        Some(n) => n,
        None => std::thread::available_parallelism().map(usize::from).unwrap_or(1),
    }
}

/// Handles to the running workers; `E` travels with each connection (its slot in the listener's
/// connection cap).
pub struct Workers<E> {
    queues: Vec<mpsc::UnboundedSender<(std::net::TcpStream, SocketAddr, E)>>,
    next: usize,
}

impl<E: Send + 'static> Workers<E> {
    /// Start `n` workers; each runs `handle(stream, peer, extra)` as a task on its own thread for
    /// every connection handed to it.
    pub fn start<F, Fut>(n: usize, handle: F) -> std::io::Result<Self>
    where
        F: Fn(TcpStream, SocketAddr, E) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let mut queues = Vec::with_capacity(n);
        for index in 0..n {
            let (tx, mut rx) = mpsc::unbounded_channel::<(std::net::TcpStream, SocketAddr, E)>();
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let handle = handle.clone();
            std::thread::Builder::new().name(format!("lb-worker-{index}")).spawn(move || {
                INDEX.with(|i| i.set(index));
                runtime.block_on(async move {
                    while let Some((stream, peer, extra)) = rx.recv().await {
                        if let Ok(stream) = TcpStream::from_std(stream) {
                            tokio::spawn(handle(stream, peer, extra));
                        }
                    }
                });
            })?;
            queues.push(tx);
        }
        Ok(Workers { queues, next: 0 })
    }

    /// Hand a freshly accepted connection to the next worker (none started: give it back).
    pub fn dispatch(
        &mut self,
        stream: TcpStream,
        peer: SocketAddr,
        extra: E,
    ) -> Option<(TcpStream, SocketAddr, E)> {
        if self.queues.is_empty() {
            return Some((stream, peer, extra));
        }
        let Ok(stream) = stream.into_std() else { return None };
        let k = self.next % self.queues.len();
        self.next = self.next.wrapping_add(1);
        let _ = self.queues[k].send((stream, peer, extra));
        None
    }
}
