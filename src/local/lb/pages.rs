//! The custom error pages of the responses the load balancer generates itself — 400, 408, 413,
//! 431, 502, 503 and 504 — read once at start from the project's `app/pages/` (the same files the
//! app ships), with a minimal built-in page for any file that is missing. Each status gets its own
//! page; a status without one gets the generic built-in page of that status.
use bytes::Bytes;
use std::path::Path;

/// The statuses the load balancer answers itself, with their titles.
pub const STATUSES: [(u16, &str); 7] = [
    (400, "Bad request"),
    (408, "Request timeout"),
    (413, "Payload too large"),
    (431, "Request header fields too large"),
    (502, "Bad gateway"),
    (503, "Service unavailable"),
    (504, "Gateway timeout"),
];

/// The error pages, by status.
#[derive(Debug, Clone)]
pub struct Pages {
    pages: Vec<(u16, Bytes)>,
}

impl Pages {
    /// Read `<status>.html` for every status in [`STATUSES`] from `dir`, falling back to built-in pages.
    pub fn load(dir: &Path) -> Self {
        let pages = STATUSES
            .iter()
            .map(|&(code, title)| {
                let page = match std::fs::read(dir.join(format!("{code}.html"))) {
                    Ok(bytes) if !bytes.is_empty() => Bytes::from(bytes),
                    _ => Bytes::from(builtin(code, title)),
                };
                (code, page)
            })
            .collect();
        Pages { pages }
    }

    /// The page of `status` (a built-in one naming the status when it has no page).
    pub fn for_status(&self, status: u16) -> Bytes {
        match self.pages.iter().find(|(code, _)| *code == status) {
            Some((_, page)) => page.clone(),
            None => Bytes::from(builtin(status, "Error")),
        }
    }
}

fn builtin(code: u16, title: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{code} {title}</title></head>\n\
         <body><h1>{code} {title}</h1><p>Answered by the orch load balancer.</p></body></html>\n"
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
        assert!(String::from_utf8_lossy(&pages.for_status(413)).contains("413 Payload too large"));
    }

    #[test]
    fn every_generated_status_has_its_own_page_in_the_app() {
        let pages = Pages::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("app/pages"));
        for (code, _) in STATUSES {
            let page = String::from_utf8_lossy(&pages.for_status(code)).into_owned();
            assert!(page.contains(&format!("data-status=\"{code}\"")), "{code}: {page}");
        }
    }
}
