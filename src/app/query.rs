//! `hubpulse query`: one SQL statement (given, from a file, or a named query) over the lake.

use std::path::{Path, PathBuf};

use tokio::runtime::Handle;

use crate::query::{self, Format};

use super::AppError;
use super::out::Out;

/// The statement to run: `--sql`, `--file`, or `--name` (from `--queries` or the bundled ones).
pub(super) fn sql_of(
    sql: Option<String>,
    file: Option<PathBuf>,
    name: Option<String>,
    queries: Option<&Path>,
) -> Result<String, AppError> {
    match (sql, file, name) {
        (Some(s), _, _) => Ok(s),
        (_, Some(f), _) => std::fs::read_to_string(&f)
            .map_err(|e| AppError::Input(format!("{}: {e}", f.display()))),
        (_, _, Some(n)) => query::named(&n, queries).map_err(AppError::from),
        _ => Err(AppError::Input("no SQL given".into())),
    }
}

/// Whether the SQL may read the derived `sessions` table (built only when asked for: it
/// reads every lifecycle record of the lake).
fn mentions_sessions(sql: &str) -> bool {
    sql.to_ascii_lowercase().contains("sessions")
}

pub(super) fn query_cmd(
    rt: &Handle,
    lake: &crate::lake::LakeLocation,
    sql: &str,
    format: Format,
) -> Result<(), AppError> {
    let batches = run_sql(rt, lake, sql)?;
    let mut out = Out::stdout();
    query::render(&batches, format, &mut out).map_err(|e| out.error(e))?;
    out.flush_now()
}

/// One statement over the lake, collected.
pub(crate) fn run_sql(
    rt: &Handle,
    lake: &crate::lake::LakeLocation,
    sql: &str,
) -> Result<Vec<arrow::array::RecordBatch>, AppError> {
    let batches = rt.block_on(async {
        let ctx = query::session(lake).await?;
        if mentions_sessions(sql) {
            crate::report::register_sessions(&ctx).await?;
        }
        query::run(&ctx, sql).await
    });
    batches.map_err(AppError::from)
}
