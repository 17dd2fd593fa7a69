//! What the load balancer bounds, and the values: how long each connection state may last (TLS
//! handshake, request head, keep-alive idle, request body progress, response body progress), how
//! large a request body may be, how many bytes all connections together may buffer, how many
//! connections each listener holds at once, and how long the accept loops pause after an error
//! such as EMFILE.
//! The connection caps follow the process's file-descriptor limit (raised to its hard limit at
//! start, like HAProxy does): a reserve stays free for health checks, the supervisor, logs and
//! `state.json`, so a flood of sockets never starves them. docs/local.md explains the choices.
//! `ORCH_LB_*` variables override the values (the tests shorten the timeouts with them).
use std::time::Duration;

/// File descriptors kept out of the listeners' reach (health probes, launches, logs, state).
const FD_RESERVE: u64 = 64;

/// The load balancer's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// TLS handshake, from accept to the first request byte being readable.
    pub tls_handshake: Duration,
    /// A whole request head; also how long a keep-alive connection may sit idle (hyper's
    /// `header_read_timeout` runs from the end of the previous response).
    pub head: Duration,
    /// Request body progress: no byte for this long → 408.
    pub body_idle: Duration,
    /// A buffered (idempotent, ≤ 1 MiB) request body must arrive whole within this → 408; a
    /// trickle of one byte every few seconds cannot hold a connection forever.
    pub body_buffered: Duration,
    /// Response progress: a client that takes no byte of its response for this long is dropped.
    pub send_idle: Duration,
    /// Response body progress upstream: once an instance has sent its response head, the load
    /// balancer waits at most this long for each further byte, then closes the client connection.
    pub response_idle: Duration,
    /// The largest request body forwarded as a stream (non-idempotent requests): a declared larger
    /// one is answered 413 before a byte is read (no `100 Continue`), a chunked one when it crosses.
    pub max_body: u64,
    /// Bytes all connections together may hold in buffered (idempotent) request bodies: a request
    /// that would go beyond is answered 503.
    pub buffer_budget: usize,
    /// Concurrent connections on the HTTPS listener (each also holds an upstream connection).
    pub https_conns: usize,
    /// Concurrent connections on the HTTP (redirect) listener.
    pub http_conns: usize,
    /// Pause of an accept loop after an accept error (EMFILE, ENFILE, ENOBUFS...).
    pub accept_backoff: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            tls_handshake: Duration::from_secs(10),
            head: Duration::from_secs(10),
            body_idle: Duration::from_secs(10),
            body_buffered: Duration::from_secs(30),
            send_idle: Duration::from_secs(30),
            response_idle: Duration::from_secs(30),
            max_body: 10 << 20,
            buffer_budget: 64 << 20,
            https_conns: 10_000,
            http_conns: 1_000,
            accept_backoff: Duration::from_millis(100),
        }
    }
}

impl Limits {
    /// The defaults, overridden by `ORCH_LB_{TLS,HEAD,BODY,SEND,RESPONSE}_TIMEOUT_MS`,
    /// `ORCH_LB_BODY_TOTAL_MS`, `ORCH_LB_MAX_BODY_BYTES`, `ORCH_LB_BUFFER_BYTES`,
    /// `ORCH_LB_MAX_{HTTPS,HTTP}_CONNS`; [`within_fds`](Self::within_fds) then caps them by the
    /// file-descriptor budget.
    pub(crate) fn from_settings(s: &crate::settings::Settings) -> Self {
        let d = Limits::default();
        Limits {
            tls_handshake: s.lb_tls_timeout.unwrap_or(d.tls_handshake),
            head: s.lb_head_timeout.unwrap_or(d.head),
            body_idle: s.lb_body_timeout.unwrap_or(d.body_idle),
            body_buffered: s.lb_body_total.unwrap_or(d.body_buffered),
            send_idle: s.lb_send_timeout.unwrap_or(d.send_idle),
            response_idle: s.lb_response_timeout.unwrap_or(d.response_idle),
            max_body: s.lb_max_body.map_or(d.max_body, |b| b as u64),
            buffer_budget: s.lb_buffer_bytes.unwrap_or(d.buffer_budget),
            https_conns: s.lb_max_https_conns.unwrap_or(d.https_conns),
            http_conns: s.lb_max_http_conns.unwrap_or(d.http_conns),
            accept_backoff: d.accept_backoff,
        }
    }

    /// Caps that fit `nofile` descriptors: after the reserve, a quarter for the HTTP listener (one
    /// descriptor per connection) and the rest for HTTPS (two: the client and the upstream).
    pub fn within_fds(mut self, nofile: u64) -> Self {
        let budget = nofile.saturating_sub(FD_RESERVE);
        let http = to_usize((budget / 4).max(1));
        let https = to_usize((budget.saturating_sub(budget / 4) / 2).max(1));
        self.http_conns = self.http_conns.clamp(1, http);
        self.https_conns = self.https_conns.clamp(1, https);
        self
    }
}

fn to_usize(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

/// Raise the soft file-descriptor limit to the hard one (at most 1 << 20) and return the limit in
/// force. A lowered hard limit (`prlimit --nofile=200`) stays what it is.
pub fn raise_nofile() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) => {
            let want = hard.min(1 << 20);
            if want > soft && setrlimit(Resource::RLIMIT_NOFILE, want, hard).is_ok() {
                want
            } else {
                soft
            }
        }
        Err(_) => 1024,
    }
}

/// Is this error the process or the system running out of descriptors (or buffers)?
pub fn is_exhaustion(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(nix::libc::EMFILE | nix::libc::ENFILE | nix::libc::ENOBUFS | nix::libc::ENOMEM)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_follow_the_descriptor_budget() {
        let l = Limits::default().within_fds(200);
        assert_eq!((l.http_conns, l.https_conns), (34, 51));
        assert!(l.http_conns + 2 * l.https_conns + FD_RESERVE as usize <= 200);
        let l = Limits::default().within_fds(1 << 20);
        assert_eq!((l.http_conns, l.https_conns), (1_000, 10_000));
        let l = Limits::default().within_fds(10);
        assert_eq!((l.http_conns, l.https_conns), (1, 1));
    }

    #[test]
    fn emfile_is_exhaustion_refused_is_not() {
        assert!(is_exhaustion(&std::io::Error::from_raw_os_error(nix::libc::EMFILE)));
        assert!(!is_exhaustion(&std::io::Error::from(std::io::ErrorKind::ConnectionRefused)));
    }
}
