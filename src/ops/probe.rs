//! A live probe of the environment's URL, and of the app's readiness behind it (`GET /readyz` as
//! JSON: whether an instance reaches its database, and if not the reason it gives, e.g. refused
//! credentials). Against an emulated cloud (an `AWS_ENDPOINT_URL*` override is set) the load
//! balancer names are fake, so only loopback URLs are probed there.
use serde::Serialize;
use std::time::{Duration, Instant};

use super::report::{Level, Row};

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Probe {
    pub url: String,
    pub status: Option<u16>,
    pub millis: u128,
    pub error: Option<String>,
}

/// Whether `url` may be probed: always against real AWS; only loopback hosts against an emulator.
pub(crate) fn allowed(url: &str, emulated: bool) -> bool {
    if !emulated {
        return true;
    }
    let Ok(parsed) = reqwest::Url::parse(url) else { return false };
    let Some(host) = parsed.host_str() else { return false };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// GET `url` with a short timeout. The certificate is judged by its own row, so the probe accepts
/// any certificate (self-signed environments included).
pub(crate) async fn get(url: &str) -> Probe {
    let started = Instant::now();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .connect_timeout(Duration::from_secs(3))
        .danger_accept_invalid_certs(true)
        .build();
    let result = match client {
        Ok(c) => c
            .get(url)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .map_err(|e| super::cloud::describe(&e)),
        Err(e) => Err(e.to_string()),
    };
    let millis = started.elapsed().as_millis();
    match result {
        Ok(code) => Probe { url: url.into(), status: Some(code), millis, error: None },
        Err(e) => Probe { url: url.into(), status: None, millis, error: Some(e) },
    }
}

/// What `GET <url>/readyz` said: the status and the app's own detail (never a secret: the app
/// only ever puts a fixed phrase there).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Readiness {
    pub url: String,
    pub status: Option<u16>,
    pub detail: Option<String>,
    pub error: Option<String>,
}

/// `GET <base>/readyz` with `Accept: application/json`, through the load balancer (one instance).
pub(crate) async fn readiness(base: &str) -> Readiness {
    let url = format!("{}/readyz", base.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .connect_timeout(Duration::from_secs(3))
        .danger_accept_invalid_certs(true)
        .build();
    let sent = match client {
        Ok(c) => c.get(&url).header("accept", "application/json").send().await,
        Err(e) => return Readiness { url, status: None, detail: None, error: Some(e.to_string()) },
    };
    match sent {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let body: serde_json::Value = resp.json().await.unwrap_or_default();
            let detail = ["detail", "db"]
                .iter()
                .find_map(|k| body.get(*k).and_then(|v| v.as_str()).map(str::to_string));
            Readiness { url, status: Some(status), detail, error: None }
        }
        Err(e) => {
            Readiness { url, status: None, detail: None, error: Some(super::cloud::describe(&e)) }
        }
    }
}

/// The `database` row: ready, or not ready with the app's reason.
pub(crate) fn database_row(r: &Readiness) -> Row {
    let detail = r.detail.as_deref().unwrap_or("no detail");
    match r.status {
        Some(code) if (200..300).contains(&code) => {
            Row::ok("database", format!("ready ({detail})"))
        }
        Some(code) => {
            Row::bad("database", format!("not ready: {detail} ({} answered {code})", r.url))
        }
        None => Row::bad(
            "database",
            format!("{} did not answer: {}", r.url, r.error.as_deref().unwrap_or("?")),
        ),
    }
    .data(r)
}

/// The status row for a probe.
pub(crate) fn row(p: &Probe) -> Row {
    match (p.status, &p.error) {
        (Some(code), _) if (200..400).contains(&code) => {
            Row::ok("probe", format!("{} answered {code} in {} ms", p.url, p.millis))
        }
        (Some(code), _) => {
            Row::bad("probe", format!("{} answered {code} in {} ms", p.url, p.millis))
        }
        (None, e) => Row::new(
            "probe",
            Level::Bad,
            format!("{} did not answer: {}", p.url, e.as_deref().unwrap_or("?")),
        ),
    }
    .data(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_is_probed_against_an_emulator() {
        assert!(allowed("https://127.0.0.1:8443/", true));
        assert!(allowed("http://localhost:1/", true));
        assert!(allowed("https://[::1]:8443/", true));
        assert!(!allowed("https://lb-1.eu-west-1.elb.amazonaws.com/", true));
        assert!(!allowed("https://10.0.0.1/", true));
        assert!(!allowed("not a url", true));
        assert!(allowed("https://www.example.com/", false));
    }

    #[test]
    fn rows_judge_the_answer() {
        let p = |status, error: Option<&str>| Probe {
            url: "u".into(),
            status,
            millis: 1,
            error: error.map(str::to_string),
        };
        assert_eq!(row(&p(Some(200), None)).level, Level::Ok);
        assert_eq!(row(&p(Some(503), None)).level, Level::Bad);
        assert_eq!(row(&p(None, Some("refused"))).level, Level::Bad);
    }

    #[test]
    fn database_row_names_the_reason() {
        let r = |status, detail: &str| Readiness {
            url: "https://x/readyz".into(),
            status,
            detail: Some(detail.into()),
            error: None,
        };
        assert_eq!(database_row(&r(Some(200), "postgres")).level, Level::Ok);
        let bad = database_row(&r(Some(503), "database refused the credentials (SQLSTATE 28P01)"));
        assert_eq!(bad.level, Level::Bad);
        assert!(bad.summary.contains("refused the credentials"), "{}", bad.summary);
    }
}
