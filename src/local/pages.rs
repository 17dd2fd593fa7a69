//! The custom error pages the load balancer answers with when no instance can: 502, 503 and 504,
//! read once at start from the project's `app/pages/` (the same files the app ships), with a
//! minimal built-in page for any file that is missing.
use bytes::Bytes;
use std::path::Path;

/// The error pages, by status.
#[derive(Debug, Clone)]
pub struct Pages {
    pub bad_gateway: Bytes,
    pub unavailable: Bytes,
    pub timeout: Bytes,
}

impl Pages {
    /// Read `502.html`, `503.html` and `504.html` from `dir`, falling back to built-in pages.
    pub fn load(dir: &Path) -> Self {
        let page = |code: u16, title: &str| -> Bytes {
            match std::fs::read(dir.join(format!("{code}.html"))) {
                Ok(bytes) if !bytes.is_empty() => Bytes::from(bytes),
                _ => Bytes::from(builtin(code, title)),
            }
        };
        Pages {
            bad_gateway: page(502, "Bad gateway"),
            unavailable: page(503, "Service unavailable"),
            timeout: page(504, "Gateway timeout"),
        }
    }

    pub fn for_status(&self, status: u16) -> Bytes {
        match status {
            503 => self.unavailable.clone(),
            504 => self.timeout.clone(),
            _ => self.bad_gateway.clone(),
        }
    }
}

fn builtin(code: u16, title: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{code} {title}</title></head>\n\
         <body><h1>{code} {title}</h1><p>The orch load balancer could not get an answer from any instance.</p></body></html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_win_over_builtin_pages() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("503.html"), "<p>custom 503</p>").unwrap();
        let pages = Pages::load(dir.path());
        assert_eq!(&pages.for_status(503)[..], b"<p>custom 503</p>");
        assert!(String::from_utf8_lossy(&pages.for_status(502)).contains("502 Bad gateway"));
        assert!(String::from_utf8_lossy(&pages.for_status(504)).contains("504 Gateway timeout"));
    }
}
