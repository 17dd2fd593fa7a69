//! What the supervisor shows: its instances and zones as `state.json` records them, and its events.
use super::Supervisor;
use crate::local::state::{InstanceView, ZoneView};
use crate::placement;

impl Supervisor {
    /// The instances and zones as `state.json` records them.
    pub fn views(&self) -> (Vec<InstanceView>, Vec<ZoneView>, bool) {
        let instances: Vec<InstanceView> = self
            .running
            .iter()
            .map(|r| InstanceView {
                id: r.target.id.clone(),
                zone: r.target.zone.clone(),
                addr: r.target.addr.to_string(),
                pid: r.process.pid(),
                healthy: r.target.is_healthy(),
                in_rotation: r.target.in_rotation(),
                in_grace: r.target.launched.elapsed() < self.grace,
                age_seconds: r.target.launched.elapsed().as_secs(),
                release: r.release.id.clone(),
                image_digest: r.release.digest.clone(),
            })
            .collect();
        let names: Vec<String> = self.zones.iter().map(|z| z.name.clone()).collect();
        let observed = self.observed();
        let zones = placement::zone_health(&names, &observed)
            .into_iter()
            .map(|z| {
                let (launch_failures, backoff_seconds) = self.backoff.view(&z.zone);
                ZoneView {
                    available: !self.zones_down.contains(&z.zone),
                    name: z.zone,
                    instances: z.instances,
                    healthy: z.healthy,
                    launch_failures,
                    backoff_seconds,
                }
            })
            .collect();
        let balanced =
            self.rollout.is_none() && placement::is_balanced(self.desired, &names, &observed);
        (instances, zones, balanced)
    }

    pub fn events(&self) -> &[String] {
        &self.events
    }
}
