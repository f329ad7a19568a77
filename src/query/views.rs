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

/// Where `events` rows are registered (the files under `events/`).
pub const EVENTS_ROWS: &str = "events_rows";
/// Where `lifecycle` rows are registered (the files under `lifecycle/`).
pub const LIFECYCLE_ROWS: &str = "lifecycle_rows";

/// Create the views in `ctx` (its tables registered): the statements docs/ENGINES.md gives
/// DuckDB, in DataFusion's dialect ([`super::engines::datafusion_views`]).
pub async fn create(ctx: &SessionContext) -> Result<(), QueryError> {
    for sql in super::engines::datafusion_views() {
        ctx.sql(&sql).await?.collect().await?;
    }
    Ok(())
}
