//! The index page (`app/templates/index.html`), rendered once per greeting instead of once per
//! request.
//!
//! Of the page's values only the hit count changes from one request to the next; the instance, its
//! zone, the identity source and the database kind are fixed once the identity is known, and the
//! greeting changes when the database's does. So the template is rendered, every value escaped by
//! askama, with a mark where the count goes, split there into the HTML before and after it, and
//! kept while the greeting is the same; a request copies the two parts around its count into one
//! buffer. A greeting that changes in the database shows on the next request that reads it.

use std::sync::Arc;

use arc_swap::ArcSwapOption;

use askama::Template;
use axum::body::Bytes;

use crate::error::AppError;

/// What the page shows besides the hit count.
#[derive(Clone, Copy)]
pub struct PageValues<'a> {
    pub instance_id: &'a str,
    pub availability_zone: &'a str,
    pub source: &'a dyn std::fmt::Display,
    pub message: &'a str,
    pub db: &'static str,
}

#[derive(Template)]
#[template(path = "index.html")]
struct IndexPage<'a> {
    page: PageValues<'a>,
    hits: &'a dyn std::fmt::Display,
}

/// Stands in for the count while rendering: the count is the template's last value, so the last
/// occurrence of the mark is the count's place whatever the greeting holds.
const MARK: &str = "\u{1}hits\u{1}";

/// The page for one greeting, split around the hit count.
#[derive(Debug)]
struct Rendered {
    message: Arc<str>,
    before: Bytes,
    after: Bytes,
}

/// The rendered page of the current greeting, read without a lock (`arc-swap`, as the greeting).
#[derive(Debug, Default)]
pub struct IndexPages {
    current: ArcSwapOption<Rendered>,
}

impl IndexPages {
    /// The page for `message` (rendered now if the greeting changed) with `hits` in its place.
    pub fn page(
        &self,
        values: &PageValues<'_>,
        message: &Arc<str>,
        hits: u64,
    ) -> Result<Bytes, AppError> {
        let current = self.current.load();
        match current.as_deref().filter(|r| r.shows(message)) {
            Some(rendered) => Ok(rendered.with(hits)),
            None => {
                let rendered = Arc::new(render(values, message)?);
                self.current.store(Some(rendered.clone()));
                Ok(rendered.with(hits))
            }
        }
    }
}

impl Rendered {
    fn shows(&self, message: &Arc<str>) -> bool {
        Arc::ptr_eq(&self.message, message) || *self.message == **message
    }

    /// The page with `hits` between its two parts, in one buffer.
    fn with(&self, hits: u64) -> Bytes {
        let mut page = Vec::with_capacity(self.before.len() + 20 + self.after.len());
        page.extend_from_slice(&self.before);
        page.extend_from_slice(itoa::Buffer::new().format(hits).as_bytes());
        page.extend_from_slice(&self.after);
        Bytes::from(page)
    }
}

fn render(values: &PageValues<'_>, message: &Arc<str>) -> Result<Rendered, AppError> {
    let page = PageValues { message, ..*values };
    let html =
        IndexPage { page, hits: &MARK }.render().map_err(|e| AppError::Internal(e.to_string()))?;
    let (before, after) = html
        .rsplit_once(MARK)
        .ok_or_else(|| AppError::Internal("index template has no hit count".into()))?;
    Ok(Rendered {
        message: message.clone(),
        before: Bytes::copy_from_slice(before.as_bytes()),
        after: Bytes::copy_from_slice(after.as_bytes()),
    })
}

/// The whole page in one render (no cache): what [`IndexPages::page`] must equal.
#[cfg(test)]
fn render_whole(values: &PageValues<'_>, hits: u64) -> String {
    IndexPage { page: *values, hits: &hits }.render().unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values<'a>(message: &'a str) -> PageValues<'a> {
        PageValues {
            instance_id: "i-0abc",
            availability_zone: "zone-a",
            source: &"imds",
            message,
            db: "sqlite",
        }
    }

    #[test]
    fn escapes_markup() {
        let pages = IndexPages::default();
        let message: Arc<str> = "<a href='x'>&</a>".into();
        let html = pages.page(&values(&message), &message, 1).unwrap();
        let html = String::from_utf8(html.to_vec()).unwrap();
        assert!(!html.contains("<a href"), "{html}");
        assert!(
            html.contains(r#"<dd id="message">&#60;a href=&#39;x&#39;&#62;&#38;&#60;/a&#62;</dd>"#),
            "{html}"
        );
        assert!(html.contains("<title>orch app &middot; i-0abc</title>"), "{html}");
        assert!(html.contains(r#"<dd id="hits">1</dd>"#), "{html}");
    }

    #[test]
    fn the_cached_page_is_the_page_rendered_whole_and_follows_the_greeting() {
        let pages = IndexPages::default();
        // A greeting holding the mark itself must not move the count.
        for (text, hits) in [("hello", 7), ("hello", 8), ("bye \u{1}hits\u{1} now", 9), ("x", 0)] {
            let message: Arc<str> = text.into();
            let cached = pages.page(&values(&message), &message, hits).unwrap();
            assert_eq!(
                String::from_utf8(cached.to_vec()).unwrap(),
                render_whole(&values(&message), hits),
                "{text} {hits}"
            );
        }
        let message: Arc<str> = "x".into();
        let again: Arc<str> = "x".into();
        pages.page(&values(&message), &message, 1).unwrap();
        let before = pages.current.load_full().unwrap();
        pages.page(&values(&again), &again, 2).unwrap();
        let after = pages.current.load_full().unwrap();
        assert!(Arc::ptr_eq(&before, &after), "same text: not rendered again");
        let other: Arc<str> = "y".into();
        pages.page(&values(&other), &other, 3).unwrap();
        assert!(!Arc::ptr_eq(&after, &pages.current.load_full().unwrap()), "new text: rendered");
    }
}
