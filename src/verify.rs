//! The acceptance suite, one for local and AWS: [`run_suite`] checks a deployed tier over the
//! network and returns a [`Report`] (a pass/fail table, JSON too). Checks: HTTP answers 301 to
//! HTTPS keeping path and query; HTTPS `/` names an instance (`i-` + 17 hex), a zone and database
//! content; N requests reach at least two instances and two zones; an unknown path gets our 404 page.
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

/// How to run the suite.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Requests to spread over the instances.
    pub requests: u32,
    /// Accept any certificate (`--insecure`).
    pub insecure: bool,
    /// Trust this CA certificate (PEM) in addition to the system roots (the local tier's CA).
    pub ca_pem: Option<Vec<u8>>,
    /// The HTTP URL to test the redirect on; derived from the HTTPS URL (port 80) when absent.
    pub http_url: Option<String>,
    /// Text our custom 404 page contains; without it, any HTML 404 page that names 404 passes.
    pub not_found_marker: Option<String>,
}

/// One check's result.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

/// The suite's results.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub url: String,
    pub passed: bool,
    pub checks: Vec<Check>,
    /// Instance ids seen, and answers per zone.
    pub instances: Vec<String>,
    pub zones: Vec<String>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.passed
    }

    /// The pass/fail table.
    pub fn table(&self) -> String {
        let width = self.checks.iter().map(|c| c.name.len()).max().unwrap_or(5).max(5);
        let mut out = format!("{:<width$}  result  detail\n", "check");
        for c in &self.checks {
            out.push_str(&format!(
                "{:<width$}  {:<6}  {}\n",
                c.name,
                if c.passed { "pass" } else { "FAIL" },
                c.detail
            ));
        }
        out.push_str(&format!(
            "{}: {}",
            self.url,
            if self.passed { "all checks passed" } else { "some checks FAILED" }
        ));
        out
    }
}

/// The `<title>` of our 404 page (the marker the suite looks for), if the page exists.
pub fn marker_from_page(path: &Path) -> Option<String> {
    let html = std::fs::read_to_string(path).ok()?;
    let start = html.find("<title>")? + "<title>".len();
    let end = html[start..].find("</title>")? + start;
    let title = html[start..end].trim();
    (!title.is_empty()).then(|| title.to_string())
}

/// Options for a deployed AWS environment: our 404 page's marker; the HTTP URL from the stack's
/// `httpUrl` output; `ca` (`ORCH_VERIFY_CA`, a PEM file) trusted besides the system roots; without
/// a domain the load balancer serves orch's self-signed certificate, so any certificate is accepted.
pub fn options_for_aws(
    pages: Option<&Path>,
    has_domain: bool,
    http_url: Option<String>,
    requests: u32,
    ca: Option<&Path>,
) -> Result<Options, String> {
    let ca_pem = match ca {
        Some(path) => Some(
            std::fs::read(path)
                .map_err(|e| format!("ORCH_VERIFY_CA: cannot read {}: {e}", path.display()))?,
        ),
        None => None,
    };
    Ok(Options {
        requests,
        insecure: !has_domain,
        ca_pem,
        http_url,
        not_found_marker: pages.and_then(|p| marker_from_page(&p.join("404.html"))),
    })
}

/// Run the suite until it passes or `timeout` has passed, `interval` apart (a fresh deployment's
/// load balancer needs a while before both zones answer); `attempt` hears of each failed run.
pub async fn until_passed(
    base_url: &str,
    opts: &Options,
    timeout: Duration,
    interval: Duration,
    mut attempt: impl FnMut(&Report),
) -> Report {
    let start = std::time::Instant::now();
    loop {
        let report = run_suite(base_url, opts).await;
        if report.passed() || start.elapsed() + interval > timeout {
            return report;
        }
        attempt(&report);
        tokio::time::sleep(interval).await;
    }
}

/// Is `id` an EC2-style instance id?
pub fn is_instance_id(id: &str) -> bool {
    id.strip_prefix("i-").is_some_and(|h| {
        h.len() == 17 && h.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    })
}

fn client(opts: &Options) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .min_tls_version(reqwest::tls::Version::TLS_1_2)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(0);
    if opts.insecure {
        b = b.danger_accept_invalid_certs(true);
    }
    if let Some(pem) = &opts.ca_pem {
        let cert = reqwest::Certificate::from_pem(pem)
            .map_err(|e| format!("the CA certificate is not PEM: {e}"))?;
        b = b.add_root_certificate(cert);
    }
    b.build().map_err(|e| format!("building the HTTP client: {e}"))
}

fn join(base: &str, path: &str) -> String {
    format!("{}{}", base.trim_end_matches('/'), path)
}

/// The HTTP URL for an HTTPS one: same host, default port.
fn http_for(https: &str) -> Option<String> {
    let url = reqwest::Url::parse(https).ok()?;
    Some(format!("http://{}/", url.host_str()?))
}

/// Run every check against `base_url` (an https:// URL; given http://, the redirect is followed to find it).
pub async fn run_suite(base_url: &str, opts: &Options) -> Report {
    let mut checks = Vec::new();
    let mut check = |name: &str, passed: bool, detail: String| {
        checks.push(Check { name: name.into(), passed, detail });
    };
    let client = match client(opts) {
        Ok(c) => c,
        Err(e) => {
            check("client", false, e);
            return finish(base_url, checks, BTreeSet::new(), BTreeSet::new());
        }
    };
    let (mut https_base, mut http_base) = (base_url.to_string(), opts.http_url.clone());
    if base_url.starts_with("http://") {
        http_base = Some(base_url.to_string());
        https_base = String::new();
    } else if http_base.is_none() {
        http_base = http_for(base_url);
    }

    // 1. HTTP → 301 → HTTPS, path and query kept.
    let probe = "/verify/redirect?orch=1&x=a%20b";
    match &http_base {
        Some(http) => match client.get(join(http, probe)).send().await {
            Ok(resp) => {
                let location = resp
                    .headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                let parsed = reqwest::Url::parse(&location).ok();
                let kept = parsed.as_ref().is_some_and(|u| {
                    u.scheme() == "https"
                        && u.path() == "/verify/redirect"
                        && u.query() == Some("orch=1&x=a%20b")
                });
                if https_base.is_empty() {
                    if let Some(u) = &parsed {
                        https_base = format!("{}://{}/", u.scheme(), u.authority());
                    }
                }
                check(
                    "http redirects to https",
                    resp.status() == 301 && kept,
                    format!("{} → {location}", resp.status().as_u16()),
                );
            }
            Err(e) => {
                check("http redirects to https", false, format!("GET {http}: {}", error_chain(&e)));
            }
        },
        None => check("http redirects to https", false, "no HTTP URL to test".into()),
    }
    if https_base.is_empty() {
        return finish(base_url, checks, BTreeSet::new(), BTreeSet::new());
    }

    // 2. HTTPS / names an instance, a zone and database content.
    let (mut ids, mut zones) = (BTreeSet::new(), BTreeSet::new());
    match get_identity(&client, &https_base).await {
        Ok(who) => {
            let ok = is_instance_id(&who.instance_id) && !who.zone.is_empty() && who.db_ok;
            check(
                "https serves instance, zone and db",
                ok,
                format!("{} in {}; {}", who.instance_id, who.zone, who.db),
            );
            ids.insert(who.instance_id);
            zones.insert(who.zone);
        }
        Err(e) => check("https serves instance, zone and db", false, e),
    }

    // 3. Spread over instances and zones.
    let mut failures = 0;
    for _ in 0..opts.requests {
        match get_identity(&client, &https_base).await {
            Ok(who) => {
                ids.insert(who.instance_id);
                zones.insert(who.zone);
            }
            Err(_) => failures += 1,
        }
    }
    check(
        "requests reach ≥2 instances",
        ids.len() >= 2 && failures == 0,
        format!("{} instance(s) over {} request(s), {failures} failed", ids.len(), opts.requests),
    );
    check(
        "requests reach ≥2 zones",
        zones.len() >= 2,
        zones.iter().cloned().collect::<Vec<_>>().join(", "),
    );

    // 4. Unknown path → our HTML 404 page.
    let path = format!("/no-such-page-{}", rand::random::<u32>());
    match client.get(join(&https_base, &path)).header("accept", "text/html").send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let html = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|c| c.starts_with("text/html"));
            let body = resp.text().await.unwrap_or_default();
            let ours = match &opts.not_found_marker {
                Some(marker) => body.contains(marker.as_str()),
                None => body.contains("404"),
            };
            check(
                "unknown path gets our 404 page",
                status == 404 && html && ours,
                format!("{status}, html: {html}, our page: {ours}"),
            );
        }
        Err(e) => check("unknown path gets our 404 page", false, error_chain(&e)),
    }
    finish(&https_base, checks, ids, zones)
}

fn finish(url: &str, checks: Vec<Check>, ids: BTreeSet<String>, zones: BTreeSet<String>) -> Report {
    let passed = !checks.is_empty() && checks.iter().all(|c| c.passed);
    Report {
        url: url.to_string(),
        passed,
        checks,
        instances: ids.into_iter().collect(),
        zones: zones.into_iter().collect(),
    }
}

struct Identity {
    instance_id: String,
    zone: String,
    db: String,
    db_ok: bool,
}

async fn get_identity(client: &reqwest::Client, base: &str) -> Result<Identity, String> {
    let resp = client
        .get(base)
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| format!("GET {base}: {}", error_chain(&e)))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("GET {base}: {status}"));
    }
    let v: serde_json::Value =
        resp.json().await.map_err(|e| format!("GET {base}: not JSON: {e}"))?;
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
    let message = s("message");
    let db_ok = !message.is_empty() && v.get("db").is_some_and(|d| !d.is_null());
    let db = format!(
        "message {message:?}, hits {}, db {}",
        v.get("hits").unwrap_or(&serde_json::Value::Null),
        v.get("db").unwrap_or(&serde_json::Value::Null)
    );
    Ok(Identity { instance_id: s("instance_id"), zone: s("availability_zone"), db, db_ok })
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_is_the_page_title() {
        let dir = tempfile::tempdir().unwrap();
        let page = dir.path().join("404.html");
        std::fs::write(&page, "<html><head><title> Not found · orch </title></head></html>")
            .unwrap();
        assert_eq!(marker_from_page(&page).as_deref(), Some("Not found · orch"));
        assert_eq!(marker_from_page(&dir.path().join("none.html")), None);
    }

    #[test]
    fn http_url_is_derived_from_https() {
        assert_eq!(http_for("https://example.com/").as_deref(), Some("http://example.com/"));
        assert!(is_instance_id("i-0123456789abcdef0"));
        assert!(!is_instance_id("i-0123456789ABCDEF0"));
    }

    #[test]
    fn table_lists_each_check() {
        let r = finish(
            "https://x/",
            vec![
                Check { name: "a".into(), passed: true, detail: "ok".into() },
                Check { name: "b".into(), passed: false, detail: "no".into() },
            ],
            BTreeSet::new(),
            BTreeSet::new(),
        );
        assert!(!r.passed());
        assert!(r.table().contains("FAIL"));
    }
}
