//! The instants orch records (deployment records, locks, down markers, releases, the local tier's
//! state and scaling decisions): `chrono` UTC times, stored as RFC 3339 by chrono's serde, shown to
//! a person in one format.
use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};

/// An instant orch records.
pub(crate) type Time = DateTime<Utc>;

/// Now, to the millisecond: what records keep (two deployments within one second still order).
pub(crate) fn now() -> Time {
    Utc::now().trunc_subsecs(3)
}

/// How reports and tables show an instant: RFC 3339 to the second, in UTC (`2026-11-30T18:00:00Z`).
pub(crate) fn show(t: &Time) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A compact stamp for object names that sort by time (`20261130T180000.123Z`).
pub(crate) fn stamp(t: &Time) -> String {
    t.format("%Y%m%dT%H%M%S%.3fZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_read_older_forms() {
        let t: Time = "2026-11-30T18:00:00.123Z".parse().unwrap();
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"2026-11-30T18:00:00.123Z\"");
        assert_eq!(serde_json::from_str::<Time>(&json).unwrap(), t);
        // Records of older orch versions: whole seconds, or an explicit offset.
        let old: Time = serde_json::from_str("\"2026-11-30T19:00:00+01:00\"").unwrap();
        assert_eq!(show(&old), "2026-11-30T18:00:00Z");
        assert_eq!(stamp(&t), "20261130T180000.123Z");
        assert_eq!(now().timestamp_subsec_nanos() % 1_000_000, 0);
    }
}
