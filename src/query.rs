//! SQL over the lake with DataFusion.
//!
//! Each table is a `ListingTable` over `<lake>/<table>/dt=…/*.parquet` with its schema passed
//! explicitly (an empty lake has nothing to infer from) and `dt` declared as a partition column,
//! so `WHERE dt = '2026-11-02'` prunes directories. The list-files cache is disabled: the lake is
//! written while it is read, and a cached listing would hide new parts.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::DataType;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::lake::schema;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("{path}: not a hubpulse lake (no {table}/ directory)")]
    NotALake { path: PathBuf, table: &'static str },
    #[error("{0}")]
    Sql(String),
    #[error("{0}")]
    Output(String),
}

/// A DataFusion session with the lake's tables registered.
pub async fn session(lake: &Path) -> Result<SessionContext, QueryError> {
    let events_dir = lake.join(schema::EVENTS);
    let decisions_dir = lake.join(crate::control::decisions::DECISIONS);
    let pods_dir = lake.join(crate::agent::kube::podtable::PODS);
    // A lake only `hubpulse cull --once` has written to holds `decisions` alone.
    if !events_dir.is_dir() && !decisions_dir.is_dir() && !pods_dir.is_dir() {
        return Err(QueryError::NotALake {
            path: lake.to_path_buf(),
            table: schema::EVENTS,
        });
    }
    let runtime = RuntimeEnvBuilder::new()
        .with_object_list_cache_limit(0)
        .build_arc()
        .map_err(|e| QueryError::Sql(e.to_string()))?;
    let config = SessionConfig::new()
        .with_information_schema(true)
        .with_target_partitions(2);
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    if events_dir.is_dir() {
        register(&ctx, schema::EVENTS, &events_dir, schema::events()).await?;
    }
    if decisions_dir.is_dir() {
        let s = crate::control::decisions::schema();
        register(
            &ctx,
            crate::control::decisions::DECISIONS,
            &decisions_dir,
            s,
        )
        .await?;
    }
    if pods_dir.is_dir() {
        let s = crate::agent::kube::podtable::schema();
        register(&ctx, crate::agent::kube::podtable::PODS, &pods_dir, s).await?;
    }
    Ok(ctx)
}

async fn register(
    ctx: &SessionContext,
    name: &str,
    dir: &Path,
    file_schema: arrow::datatypes::SchemaRef,
) -> Result<(), QueryError> {
    let abs = std::fs::canonicalize(dir)
        .map_err(|e| QueryError::Sql(format!("{}: {e}", dir.display())))?;
    let url = ListingTableUrl::parse(format!("{}/", abs.display()))
        .map_err(|e| QueryError::Sql(e.to_string()))?;
    let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
        .with_file_extension(".parquet")
        .with_table_partition_cols(vec![(schema::PARTITION_COL.to_string(), DataType::Utf8)]);
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(file_schema);
    let table = ListingTable::try_new(config).map_err(|e| QueryError::Sql(e.to_string()))?;
    ctx.register_table(name, Arc::new(table))
        .map_err(|e| QueryError::Sql(e.to_string()))?;
    Ok(())
}

/// Run one SQL statement and collect its result.
pub async fn run(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>, QueryError> {
    let df = ctx
        .sql(sql)
        .await
        .map_err(|e| QueryError::Sql(one_line(&e.to_string())))?;
    df.collect()
        .await
        .map_err(|e| QueryError::Sql(one_line(&e.to_string())))
}

/// Run one SQL statement and stream its result batch by batch (bounded memory).
pub async fn stream(
    ctx: &SessionContext,
    sql: &str,
) -> Result<datafusion::physical_plan::SendableRecordBatchStream, QueryError> {
    let df = ctx
        .sql(sql)
        .await
        .map_err(|e| QueryError::Sql(one_line(&e.to_string())))?;
    df.execute_stream()
        .await
        .map_err(|e| QueryError::Sql(one_line(&e.to_string())))
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

/// Render batches in the requested format.
pub fn render(
    batches: &[RecordBatch],
    format: Format,
    out: &mut impl std::io::Write,
) -> Result<(), QueryError> {
    let err = |e: arrow::error::ArrowError| QueryError::Output(e.to_string());
    match format {
        Format::Table => {
            let t = arrow::util::pretty::pretty_format_batches(batches).map_err(err)?;
            writeln!(out, "{t}").map_err(|e| QueryError::Output(e.to_string()))
        }
        Format::Csv => {
            let mut w = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(out);
            for b in batches {
                w.write(b).map_err(err)?;
            }
            Ok(())
        }
        Format::Json => {
            let mut w = arrow::json::LineDelimitedWriter::new(out);
            for b in batches {
                w.write(b).map_err(err)?;
            }
            w.finish().map_err(err)
        }
    }
}

/// A named query from `queries/`: the embedded copy, or `<dir>/<name>.sql` when a directory is given.
pub fn named(name: &str, dir: Option<&Path>) -> Result<String, String> {
    if let Some(d) = dir {
        let p = d.join(format!("{name}.sql"));
        return std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()));
    }
    crate::queries::get(name)
        .map(str::to_string)
        .ok_or_else(|| {
            format!(
                "no named query {name:?}; available: {}",
                crate::queries::NAMES.join(", ")
            )
        })
}
