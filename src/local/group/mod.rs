//! The local instance group, the twin of the Auto Scaling group: the supervisor that keeps the
//! desired capacity spread over the zones, launching and stopping instances, their health checks,
//! scaling on load, the brakes on a crash loop, and running the rollout of a new release
//! (`crate::rollout::local`: instance by instance, rolled back by itself when it fails). It
//! registers instances with the load balancer's target group (`super::lb::pool`) and knows nothing
//! else of the load balancer.
pub mod autoscale;
pub mod backoff;
pub mod health;
pub mod launcher;
pub mod supervisor;
