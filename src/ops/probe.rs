//! A live probe of the environment's URL. Against an emulated cloud (an `AWS_ENDPOINT_URL*`
//! override is set) the load balancer names are fake, so only loopback URLs are probed there.
use serde::Serialize;
use std::time::{Duration, Instant};

use super::report::{Level, Row};

#[derive(Debug, Clone, Serialize)]
pub struct Probe {
    pub url: String,
    pub status: Option<u16>,
    pub millis: u128,
    pub error: Option<String>,
}

/// Whether `url` may be probed: always against real AWS; only loopback hosts against an emulator.
pub fn allowed(url: &str, emulated: bool) -> bool {
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
pub async fn get(url: &str) -> Probe {
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

/// The status row for a probe.
pub fn row(p: &Probe) -> Row {
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
}
