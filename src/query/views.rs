//! The `events` and `lifecycle` views: the lake's stored rows as readers have always seen them.
//!
//! Since format 2 the files store each fact once ([`crate::lake::derived`]): a stored row keeps
//! its message in `text` only when its columns do not rebuild it, and activity heartbeats are
//! stored only in `activity`. The views put them back: `events` is `events_rows` with its
//! `message` rebuilt, and every folded heartbeat unnested from `activity` as the row it was;
//! `lifecycle` is `lifecycle_rows` with its `message`. Their columns, types and order are the
//! format 1 tables' (the file columns, then `hub` and `dt`), so every query reads as before.
//! docs/ENGINES.md gives the same views for DuckDB, Spark and Athena.

use datafusion::prelude::SessionContext;

use super::QueryError;
use crate::lake::rebuild::{Dialect, heartbeat_message_sql, message_sql};

/// Where `events` rows are registered (the files under `events/`).
pub const EVENTS_ROWS: &str = "events_rows";
/// Where `lifecycle` rows are registered (the files under `lifecycle/`).
pub const LIFECYCLE_ROWS: &str = "lifecycle_rows";

/// The columns of a stored row before and after `message`.
const BEFORE: &str = "ts, source, level, logger, module, kind, \"user\", actor, server_name, \
                      method, status, route, path, target, client_ip, service, duration_ms, \
                      exit_code, \"count\", attrs";
const AFTER: &str = "lines, flags, source_file, source_fp, source_offset, hub, dt";

/// A view of stored rows with their `message`.
pub fn rows_sql(rows: &str, d: Dialect) -> String {
    format!(
        "SELECT {BEFORE}, {} AS message, {AFTER} FROM {rows}",
        message_sql(d)
    )
}

/// The folded heartbeats of `activity` as `events` rows (DataFusion and DuckDB: several
/// `unnest`s in one projection walk their lists together).
pub fn heartbeats_sql(activity: &str) -> String {
    let d = Dialect::DataFusion;
    format!(
        "SELECT ts, 'hub' AS source, 'INFO' AS level, logger, module, 'request' AS kind, \
         \"user\", \"user\" AS actor, CAST(NULL AS VARCHAR) AS server_name, 'POST' AS method, \
         status, '/hub/api/users/{{user}}/activity' AS route, \
         concat('/hub/api/users/', \"user\", '/activity') AS path, \
         CAST(NULL AS VARCHAR) AS target, client_ip, CAST(NULL AS VARCHAR) AS service, \
         CAST(duration_us AS DOUBLE) / 1000.0 AS duration_ms, CAST(NULL AS INT) AS exit_code, \
         CAST(NULL AS BIGINT) AS \"count\", CAST(NULL AS VARCHAR) AS attrs, \
         {} AS message, CAST(1 AS INT) AS lines, CAST(NULL AS VARCHAR) AS flags, \
         source_file, source_fp, source_offset, hub, dt \
         FROM (SELECT hub, dt, \"user\", logger, module, source_file, source_fp, \
               unnest(times) AS ts, unnest(statuses) AS status, \
               unnest(client_ips) AS client_ip, unnest(durations_us) AS duration_us, \
               unnest(offsets) AS source_offset \
               FROM {activity} WHERE offsets IS NOT NULL) AS beats",
        heartbeat_message_sql(d)
    )
}

/// Create the views in `ctx` (its tables registered).
pub async fn create(ctx: &SessionContext) -> Result<(), QueryError> {
    let d = Dialect::DataFusion;
    let events = format!(
        "CREATE VIEW events AS {} UNION ALL {}",
        rows_sql(EVENTS_ROWS, d),
        heartbeats_sql("activity")
    );
    let lifecycle = format!("CREATE VIEW lifecycle AS {}", rows_sql(LIFECYCLE_ROWS, d));
    for sql in [events, lifecycle] {
        ctx.sql(&sql).await?.collect().await?;
    }
    Ok(())
}
