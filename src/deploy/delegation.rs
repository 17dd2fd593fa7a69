//! The public-DNS check of an NS delegation made at a registrar (the parent zone is not in this
//! account): ask a resolver for the name's NS records and compare them with the hosted zone's name
//! servers. `ORCH_DNS_SERVER` (`ip[:port]`) picks the resolver, else the system's; no answer at all
//! (offline) is reported as unknown, never as a mismatch.
use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;

use super::dns::norm;

/// What public DNS says about the delegation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Delegation {
    /// The name servers answered are the hosted zone's.
    Matches,
    /// Public DNS answers other name servers (or none: the name does not exist yet).
    Differs { found: Vec<String> },
    /// No resolver answered (offline, or DNS blocked): nothing can be said.
    Unknown(String),
}

/// Whether to ask DNS, and whom: skipped with `ORCH_OFFLINE`, and under an emulator (public DNS
/// cannot see its zones) unless `ORCH_DNS_SERVER` names a resolver; a malformed one is an error.
pub(crate) fn mode(
    settings: &crate::settings::Settings,
) -> Result<Option<Option<SocketAddr>>, String> {
    let server = settings.dns_server;
    Ok((!settings.offline && (server.is_some() || !crate::aws::emulated())).then_some(server))
}

fn resolver(server: Option<SocketAddr>) -> Result<TokioResolver, String> {
    let mut builder = match server {
        Some(addr) => {
            let connections = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
                .into_iter()
                .map(|mut c| {
                    c.port = addr.port();
                    c
                })
                .collect();
            let server = NameServerConfig::new(addr.ip(), true, connections);
            TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(vec![server]),
                TokioRuntimeProvider::default(),
            )
        }
        None => TokioResolver::builder_tokio()
            .map_err(|e| format!("reading the system's resolver configuration: {e}"))?,
    };
    let opts = builder.options_mut();
    opts.timeout = Duration::from_secs(3);
    opts.attempts = 1;
    builder.build().map_err(|e| format!("building the DNS resolver: {e}"))
}

/// Ask DNS (`server`, else the system's resolver) for the NS records of `name` and compare with
/// `expected` (any case, trailing dots).
pub(crate) async fn check(
    name: &str,
    expected: &[String],
    server: Option<SocketAddr>,
) -> Delegation {
    let resolver = match resolver(server) {
        Ok(r) => r,
        Err(e) => return Delegation::Unknown(e),
    };
    let mut want: Vec<String> = expected.iter().map(|n| norm(n)).collect();
    want.sort();
    want.dedup();
    let found = match resolver.ns_lookup(format!("{}.", norm(name))).await {
        Ok(lookup) => lookup
            .answers()
            .iter()
            .filter_map(|r| {
                if let RData::NS(ns) = &r.data {
                    Some(norm(&ns.0.to_string()))
                } else {
                    None
                }
            })
            .collect(),
        Err(e) if e.is_no_records_found() || e.is_nx_domain() => vec![],
        Err(e) => return Delegation::Unknown(e.to_string()),
    };
    let mut found: Vec<String> = found;
    found.sort();
    found.dedup();
    if found == want {
        Delegation::Matches
    } else {
        Delegation::Differs { found }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_resolver_that_never_answers_is_unknown_not_a_mismatch() {
        // A UDP socket that reads nothing: the query times out.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let got = check(
            "dev.example.com",
            &["ns-1.example.net".into()],
            Some(silent.local_addr().unwrap()),
        )
        .await;
        assert!(matches!(got, Delegation::Unknown(_)), "{got:?}");
    }
}
