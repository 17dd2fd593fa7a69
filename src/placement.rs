//! Where instances should run: the pure placement decision of an Auto Scaling group. Given the
//! desired capacity, the zones (and whether each is available) and the observed instances, [`plan`]
//! says what to launch and what to terminate. The local supervisor executes it every tick; the AWS
//! status command uses [`zone_health`] and [`is_balanced`] to judge the same rules.
use serde::Serialize;
use std::collections::BTreeMap;

/// A zone and whether launches there can succeed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ZoneState {
    pub name: String,
    pub available: bool,
}

impl ZoneState {
    pub(crate) fn up(name: &str) -> Self {
        ZoneState { name: name.into(), available: true }
    }
    #[cfg(test)]
    pub(crate) fn down(name: &str) -> Self {
        ZoneState { name: name.into(), available: false }
    }
}

/// One instance as the supervisor (or AWS) sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Observed {
    pub id: String,
    pub zone: String,
    /// In service: passing health checks.
    pub healthy: bool,
    /// Launched less than the grace period ago: failing checks do not count yet.
    pub in_grace: bool,
}

/// Why an instance is terminated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// Failing health checks after its grace period.
    Unhealthy,
    /// Its zone is unavailable (or not one of the group's zones).
    ZoneUnavailable,
    /// Its zone holds more than its share (or the group more than desired), and enough others are
    /// already in service.
    Rebalance,
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    Launch { zone: String },
    Terminate { id: String, reason: Reason },
}

/// The actions that move `instances` towards `desired` instances spread evenly over the available
/// zones. Unhealthy instances past their grace period and instances in unavailable zones are
/// replaced at once; rebalancing launches first and terminates only what is surplus among instances
/// already in service, so the number in service never drops below `desired` because of it.
pub(crate) fn plan(desired: u32, zones: &[ZoneState], instances: &[Observed]) -> Vec<Action> {
    let mut actions = Vec::new();
    let available: Vec<&str> =
        zones.iter().filter(|z| z.available).map(|z| z.name.as_str()).collect();

    // 1. Lost instances: in a zone that is down or unknown, or failing checks after the grace period.
    let mut live: Vec<&Observed> = Vec::new();
    for inst in instances {
        if !available.contains(&inst.zone.as_str()) {
            actions
                .push(Action::Terminate { id: inst.id.clone(), reason: Reason::ZoneUnavailable });
        } else if !inst.healthy && !inst.in_grace {
            actions.push(Action::Terminate { id: inst.id.clone(), reason: Reason::Unhealthy });
        } else {
            live.push(inst);
        }
    }
    if available.is_empty() {
        return actions;
    }

    // 2. Each available zone's share; extra instances (odd desired) go to the zones already holding
    // the most, so a valid layout is left alone.
    let mut count: BTreeMap<&str, u32> = available.iter().map(|z| (*z, 0)).collect();
    for inst in &live {
        *count.entry(inst.zone.as_str()).or_default() += 1;
    }
    let target = shares(desired, &available, &count);

    // 3. Launch what each zone lacks (pending instances in grace count as launched).
    for zone in &available {
        for _ in count[zone]..target[zone] {
            actions.push(Action::Launch { zone: (*zone).to_string() });
        }
    }

    // 4. Terminate surplus only among instances in service, and only while the number in service
    // stays at or above desired: launch first, then terminate.
    let mut in_service = live.iter().filter(|i| i.healthy).count() as u32;
    let mut surplus: BTreeMap<&str, u32> =
        available.iter().map(|z| (*z, count[z].saturating_sub(target[z]))).collect();
    let mut budget = (live.len() as u32).saturating_sub(desired);
    // Prefer terminating pending (not yet healthy) surplus instances: they serve no one.
    let mut ordered: Vec<&&Observed> = live.iter().collect();
    ordered.sort_by_key(|i| (i.healthy, std::cmp::Reverse(i.id.as_str())));
    for inst in ordered {
        let zone = inst.zone.as_str();
        if budget == 0 || surplus[zone] == 0 {
            continue;
        }
        if inst.healthy {
            if in_service <= desired {
                continue;
            }
            in_service -= 1;
        } else if in_service < desired {
            // A pending instance may still be needed to reach desired.
            continue;
        }
        budget -= 1;
        if let Some(s) = surplus.get_mut(zone) {
            *s -= 1;
        }
        actions.push(Action::Terminate { id: inst.id.clone(), reason: Reason::Rebalance });
    }
    actions
}

/// `desired` spread over `zones`: everyone gets the base share, the remainder goes to the zones
/// that currently hold the most instances (ties: zone order).
fn shares<'a>(
    desired: u32,
    zones: &[&'a str],
    count: &BTreeMap<&'a str, u32>,
) -> BTreeMap<&'a str, u32> {
    let n = zones.len() as u32;
    let (base, extra) = (desired / n, desired % n);
    let mut order: Vec<(usize, &str)> = zones.iter().copied().enumerate().collect();
    order.sort_by_key(|(i, z)| (std::cmp::Reverse(count.get(z).copied().unwrap_or(0)), *i));
    order
        .iter()
        .enumerate()
        .map(|(rank, (_, z))| (*z, base + u32::from((rank as u32) < extra)))
        .collect()
}

/// Per zone: instances, how many are healthy, and whether the zone has at least one healthy one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ZoneHealth {
    pub zone: String,
    pub instances: u32,
    pub healthy: u32,
}

impl ZoneHealth {
    pub(crate) fn has_healthy(&self) -> bool {
        self.healthy > 0
    }
}

/// How many instances, and how many healthy ones, each zone holds (every zone listed, in order).
pub(crate) fn zone_health(zones: &[String], instances: &[Observed]) -> Vec<ZoneHealth> {
    zones
        .iter()
        .map(|zone| {
            let here = instances.iter().filter(|i| &i.zone == zone);
            ZoneHealth {
                zone: zone.clone(),
                instances: here.clone().count() as u32,
                healthy: here.filter(|i| i.healthy).count() as u32,
            }
        })
        .collect()
}

/// Balanced: every zone has a healthy instance, `desired` are in service, and the plan (with every
/// zone available) has nothing left to do.
pub(crate) fn is_balanced(desired: u32, zones: &[String], instances: &[Observed]) -> bool {
    let states: Vec<ZoneState> = zones.iter().map(|z| ZoneState::up(z)).collect();
    let in_service = instances.iter().filter(|i| i.healthy).count() as u32;
    zone_health(zones, instances).iter().all(ZoneHealth::has_healthy)
        && in_service >= desired
        && plan(desired, &states, instances).is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zones() -> Vec<ZoneState> {
        vec![ZoneState::up("a"), ZoneState::up("b")]
    }
    fn inst(id: &str, zone: &str) -> Observed {
        Observed { id: id.into(), zone: zone.into(), healthy: true, in_grace: false }
    }
    fn pending(id: &str, zone: &str) -> Observed {
        Observed { id: id.into(), zone: zone.into(), healthy: false, in_grace: true }
    }
    fn launches(actions: &[Action]) -> Vec<&str> {
        actions
            .iter()
            .filter_map(
                |a| if let Action::Launch { zone } = a { Some(zone.as_str()) } else { None },
            )
            .collect()
    }
    fn terminates(actions: &[Action]) -> Vec<(&str, Reason)> {
        actions
            .iter()
            .filter_map(|a| {
                if let Action::Terminate { id, reason } = a {
                    Some((id.as_str(), *reason))
                } else {
                    None
                }
            })
            .collect()
    }

    #[test]
    fn empty_group_launches_an_even_spread() {
        assert_eq!(launches(&plan(4, &zones(), &[])), ["a", "a", "b", "b"]);
    }

    #[test]
    fn odd_desired_puts_the_extra_in_the_first_zone_and_keeps_a_valid_layout() {
        assert_eq!(launches(&plan(3, &zones(), &[])), ["a", "a", "b"]);
        // 1 in a, 2 in b is just as even: leave it alone.
        assert!(plan(3, &zones(), &[inst("1", "a"), inst("2", "b"), inst("3", "b")]).is_empty());
    }

    #[test]
    fn balanced_group_needs_nothing() {
        let group = [inst("1", "a"), inst("2", "a"), inst("3", "b"), inst("4", "b")];
        assert!(plan(4, &zones(), &group).is_empty());
        let names = vec!["a".to_string(), "b".to_string()];
        assert!(is_balanced(4, &names, &group));
    }

    #[test]
    fn dead_instance_is_replaced_in_its_zone() {
        // The supervisor drops exited processes; one of zone b's is gone.
        let group = [inst("1", "a"), inst("2", "a"), inst("3", "b")];
        assert_eq!(plan(4, &zones(), &group), vec![Action::Launch { zone: "b".into() }]);
    }

    #[test]
    fn unhealthy_after_grace_is_terminated_and_replaced() {
        let mut sick = inst("3", "b");
        sick.healthy = false;
        let group = [inst("1", "a"), inst("2", "a"), sick, inst("4", "b")];
        let actions = plan(4, &zones(), &group);
        assert_eq!(terminates(&actions), [("3", Reason::Unhealthy)]);
        assert_eq!(launches(&actions), ["b"]);
    }

    #[test]
    fn unhealthy_within_grace_is_left_alone() {
        let group = [inst("1", "a"), inst("2", "a"), pending("3", "b"), inst("4", "b")];
        assert!(plan(4, &zones(), &group).is_empty());
    }

    #[test]
    fn zone_down_moves_capacity_to_the_healthy_zone() {
        let down = [ZoneState::down("a"), ZoneState::up("b")];
        let group = [inst("1", "a"), inst("2", "a"), inst("3", "b"), inst("4", "b")];
        let actions = plan(4, &down, &group);
        assert_eq!(
            terminates(&actions),
            [("1", Reason::ZoneUnavailable), ("2", Reason::ZoneUnavailable)]
        );
        assert_eq!(launches(&actions), ["b", "b"]);
    }

    #[test]
    fn zone_back_launches_first_and_terminates_nothing_yet() {
        let group = [inst("1", "b"), inst("2", "b"), inst("3", "b"), inst("4", "b")];
        let actions = plan(4, &zones(), &group);
        assert_eq!(launches(&actions), ["a", "a"]);
        assert!(
            terminates(&actions).is_empty(),
            "never terminate before the replacements serve: {actions:?}"
        );
        // Replacements pending: still nothing to terminate, nothing more to launch.
        let group2 = [
            pending("5", "a"),
            pending("6", "a"),
            inst("1", "b"),
            inst("2", "b"),
            inst("3", "b"),
            inst("4", "b"),
        ];
        assert!(plan(4, &zones(), &group2).is_empty());
    }

    #[test]
    fn zone_back_terminates_surplus_once_replacements_serve() {
        let group = [
            inst("5", "a"),
            inst("6", "a"),
            inst("1", "b"),
            inst("2", "b"),
            inst("3", "b"),
            inst("4", "b"),
        ];
        let actions = plan(4, &zones(), &group);
        assert!(launches(&actions).is_empty());
        let t = terminates(&actions);
        assert_eq!(t.len(), 2);
        assert!(
            t.iter().all(|(id, r)| ["1", "2", "3", "4"].contains(id) && *r == Reason::Rebalance),
            "{t:?}"
        );
    }

    #[test]
    fn never_below_desired_when_only_one_replacement_serves() {
        let group = [
            inst("5", "a"),
            pending("6", "a"),
            inst("1", "b"),
            inst("2", "b"),
            inst("3", "b"),
            inst("4", "b"),
        ];
        let t = terminates(&plan(4, &zones(), &group)).len();
        assert_eq!(t, 1, "5 in service, desired 4: exactly one may go");
    }

    #[test]
    fn plans_never_take_in_service_below_desired() {
        // Exhaustive over small layouts: applying the terminations leaves ≥ min(desired, in service).
        for desired in 1..=5u32 {
            for mask in 0..(1u32 << 7) {
                let group: Vec<Observed> = (0..7)
                    .filter(|i| mask & (1 << i) != 0)
                    .map(|i| Observed {
                        id: i.to_string(),
                        zone: if i % 3 == 0 { "a" } else { "b" }.into(),
                        healthy: i % 4 != 1,
                        in_grace: i % 4 == 1,
                    })
                    .collect();
                let before = group.iter().filter(|i| i.healthy).count() as u32;
                let actions = plan(desired, &zones(), &group);
                let gone: Vec<&str> = terminates(&actions).iter().map(|(id, _)| *id).collect();
                let after =
                    group.iter().filter(|i| i.healthy && !gone.contains(&i.id.as_str())).count()
                        as u32;
                assert!(
                    after >= before.min(desired),
                    "desired {desired} group {group:?} actions {actions:?}"
                );
            }
        }
    }

    #[test]
    fn surplus_above_desired_is_trimmed() {
        let group =
            [inst("1", "a"), inst("2", "a"), inst("3", "a"), inst("4", "b"), inst("5", "b")];
        let actions = plan(4, &zones(), &group);
        let t = terminates(&actions);
        assert_eq!(t.len(), 1);
        assert!(["1", "2", "3"].contains(&t[0].0));
    }

    #[test]
    fn all_zones_down_terminates_and_launches_nothing() {
        let down = [ZoneState::down("a"), ZoneState::down("b")];
        let actions = plan(4, &down, &[inst("1", "a")]);
        assert_eq!(
            actions,
            vec![Action::Terminate { id: "1".into(), reason: Reason::ZoneUnavailable }]
        );
    }

    #[test]
    fn zone_health_reports_every_zone() {
        let names = vec!["a".to_string(), "b".to_string()];
        let mut sick = inst("2", "b");
        sick.healthy = false;
        let h = zone_health(&names, &[inst("1", "a"), sick]);
        assert_eq!(
            h.iter().map(|z| (z.zone.as_str(), z.instances, z.healthy)).collect::<Vec<_>>(),
            [("a", 1, 1), ("b", 1, 0)]
        );
        assert!(!h[1].has_healthy());
        assert!(!is_balanced(2, &names, &[inst("1", "a"), inst("3", "a")]));
    }
}
