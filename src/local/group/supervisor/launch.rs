//! Launching an instance of the local group: a free address in the zone's loopback range, the
//! process started, the target registered with the load balancer and its health checker; a failed
//! launch backs the zone off and names its real cause.
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;

use super::{Running, Supervisor, Zone};
use crate::local::group::launcher::{new_instance_id, LaunchSpec};
use crate::local::lb::pool::Target;
use crate::local::release::Release;

/// Why a launch could not start an instance.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("checking that {addr} is free: {source}")]
    Probe { addr: SocketAddr, source: std::io::Error },
}

impl Supervisor {
    /// Launch an instance of `release` in `zone_name`; its id, or None when the launch failed.
    pub(crate) fn launch(&mut self, zone_name: &str, release: Arc<Release>) -> Option<String> {
        if self.zones_down.contains(zone_name) {
            self.event(format!("launch in {zone_name} failed: zone is down"));
            return None;
        }
        let zone = self.zones.iter().find(|z| z.name == zone_name).cloned()?;
        let addr = match self.free_addr(&zone) {
            Ok(Some(addr)) => addr,
            Ok(None) => {
                let wait = self.backoff.failed(zone_name);
                self.event(format!(
                    "launch in {zone_name} failed: no free address in {}; retry in {wait:?}",
                    zone.net
                ));
                return None;
            }
            Err(e) => {
                let wait = self.backoff.failed(zone_name);
                self.event(format!("launch in {zone_name} failed: {e}; retry in {wait:?}"));
                return None;
            }
        };
        let spec = LaunchSpec { id: new_instance_id(), zone: zone.name.clone(), addr, release };
        match self.launcher.launch(&spec) {
            Ok(process) => {
                let target =
                    Arc::new(Target::new(&spec.id, &spec.zone, addr).running(&spec.release.id));
                self.pool.register(target.clone());
                self.checker.spawn(target.clone());
                self.running.push(Running { target, process, release: spec.release.clone() });
                self.event(format!(
                    "{} launched in {} on {addr} (release {})",
                    spec.id, spec.zone, spec.release.id
                ));
                Some(spec.id)
            }
            Err(e) => {
                let wait = self.backoff.failed(zone_name);
                self.event(format!(
                    "launch in {zone_name} failed: starting the instance: {e}; retry in {wait:?}"
                ));
                None
            }
        }
    }

    /// Put a drained (deregistered) instance back into service as a fresh target: registered with
    /// the load balancer and probed by a new health-check task (the old one ended when it was
    /// deregistered). Nothing happens for an instance that is no longer running.
    pub(crate) fn restore(&mut self, id: &str) {
        let Some(r) = self.running.iter_mut().find(|r| r.target.id == id) else { return };
        let fresh = Arc::new(r.target.restored());
        r.target = fresh.clone();
        self.pool.register(fresh.clone());
        self.checker.spawn(fresh);
        self.event(format!("{id} back in service: its replacement was rolled back"));
    }

    /// The first address of the zone's range (hosts .2 to .254, base port then the next ones) that
    /// no instance uses and that can be bound right now. An error other than the address being
    /// taken (out of descriptors, for one) ends the search: it is the launch's real cause.
    fn free_addr(&self, zone: &Zone) -> Result<Option<SocketAddr>, LaunchError> {
        let used: Vec<SocketAddr> = self.running.iter().map(|r| r.target.addr).collect();
        let [a, b, c, _] = zone.net.network().octets();
        for port in (0..16u16).filter_map(|k| self.base_port.checked_add(k)) {
            for host in 2..=254u8 {
                let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(a, b, c, host), port));
                if used.contains(&addr) {
                    continue;
                }
                match std::net::TcpListener::bind(addr) {
                    Ok(_) => return Ok(Some(addr)),
                    Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => {}
                    Err(source) => return Err(LaunchError::Probe { addr, source }),
                }
            }
        }
        Ok(None)
    }
}
