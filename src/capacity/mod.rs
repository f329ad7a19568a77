//! Capacity ahead of demand: a forecast of concurrent servers per hour of the week from the
//! lake's sessions, and the Z2JH `user-placeholder` StatefulSet scaled ahead of its peaks.
//! Each is pure ([`forecast::forecast`], [`placeholder::decide`]) with a thin runner
//! ([`runner`]) that reads and patches the StatefulSet's scale and records every change in the
//! lake table `decisions`.
//!
//! | module | what it is |
//! | --- | --- |
//! | `forecast` | expected concurrent servers per profile and hour of the week (quantile × trend) |
//! | `placeholder` | the pure replicas decision (look-ahead, bounds, cooldown, dry-run) |
//! | `runner` | Kubernetes reads and the scale patch, recording, the periodic loop |
//!
//! # RBAC
//! The runner needs, in the hub's namespace: `statefulsets/scale` get + patch (the placeholder
//! set), and `pods` list (running and pending single-user pods). See `deploy/rbac.yaml`.

pub mod forecast;
pub mod placeholder;
pub mod runner;
