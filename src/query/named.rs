//! The named queries of `queries/`, embedded so that `hubpulse query --name NAME` works from
//! any directory. Each file opens with a comment: what it answers and its output columns.

pub const NAMES: &[&str] = &[
    "daily_active_users",
    "hourly_running_servers",
    "spawn_duration_percentiles",
    "request_errors_by_route",
    "activity_by_user",
    "failed_spawns",
];

const SQL: &[&str] = &[
    include_str!("../../queries/daily_active_users.sql"),
    include_str!("../../queries/hourly_running_servers.sql"),
    include_str!("../../queries/spawn_duration_percentiles.sql"),
    include_str!("../../queries/request_errors_by_route.sql"),
    include_str!("../../queries/activity_by_user.sql"),
    include_str!("../../queries/failed_spawns.sql"),
];

pub fn get(name: &str) -> Option<&'static str> {
    NAMES.iter().position(|n| *n == name).map(|i| SQL[i])
}
