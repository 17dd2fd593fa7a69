//! Rolling a new release over running instances, on either target, and judging a canary on the way:
//! [`canary`] is the pure part both share (the canary plan, Fisher's exact test on a step's samples,
//! the analysis table that goes into the release record); [`local`] rolls the local instance group
//! one instance at a time as an Auto Scaling instance refresh does, holding the first replacement
//! as the canary while the load balancer splits traffic; [`aws`] starts and follows the Auto
//! Scaling group's own instance refresh after a launch-template change. Which release is rolled,
//! and whether a rollout is needed at all, is decided by the deploy's plan (`crate::deploy::plan`)
//! and the local lifecycle (`crate::local::lifecycle`), from what runs.
pub mod aws;
pub mod canary;
pub mod local;
