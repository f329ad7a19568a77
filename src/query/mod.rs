//! SQL over the lake with DataFusion.
//!
//! Each table is a `ListingTable` over `<lake>/<table>/hub=…/dt=…/*.parquet` (a directory or an
//! S3 prefix) with its schema passed explicitly (an empty lake has nothing to infer from) and
//! `hub`, `dt` declared as partition columns, so `WHERE dt = '2026-11-02'` prunes prefixes. The list-files cache is disabled: the lake is
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

use crate::lake::LakeLocation;
use crate::lake::tables::events as schema;
use object_store::ObjectStore;

pub mod engines;
pub mod named;
mod sql_error;
pub mod views;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("{path}: not a hubpulse lake (no {table}/ directory)")]
    NotALake { path: PathBuf, table: &'static str },
    /// A statement refused or failed: DataFusion's error described as one human line (see
    /// `sql_error`), the error itself kept as the source.
    #[error("{why}")]
    Statement {
        why: String,
        source: Box<datafusion::error::DataFusionError>,
    },
    /// A step of a read that failed (`activity scan`, `observations`), with its error.
    #[error("{step}: {source}")]
    Step {
        step: &'static str,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A read that went wrong with no error of its own to carry (a report's window not read).
    #[error("{0}")]
    Sql(String),
    /// DataFusion's own error in its own words (registering a table, scanning one for a report).
    #[error("{0}")]
    DataFusion(#[source] Box<datafusion::error::DataFusionError>),
    /// A batch that could not be built (a report's derived table).
    #[error("{0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// The lake's location or its store (see [`crate::lake::LakeError`]).
    #[error(transparent)]
    Lake(#[from] crate::lake::LakeError),
    /// A lake's prefix that could not be listed.
    #[error("{url}: {source}")]
    List {
        url: String,
        source: Box<object_store::Error>,
    },
    /// A file that could not be read (the lake's directory, a named query's file).
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no named query {name:?}; available: {}", crate::query::named::NAMES.join(", "))]
    NoNamedQuery { name: String },
    /// The result could not be rendered or written (Arrow's writers, the output).
    #[error("{0}")]
    Output(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<datafusion::error::DataFusionError> for QueryError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        QueryError::DataFusion(Box::new(e))
    }
}

/// The names of the lake's tables (`sessions`, rebuilt from `lifecycle` when a query names it,
/// is not among them). `hubpulse query --help` lists them (a test keeps it so).
pub fn table_names() -> Vec<&'static str> {
    tables().iter().map(|(t, _)| *t).collect()
}

/// The name a table's stored rows are registered under: `events` and `lifecycle` are views
/// over `events_rows` and `lifecycle_rows` (see [`views`]); the others are their files.
fn stored_name(table: &'static str) -> &'static str {
    match table {
        schema::EVENTS => views::EVENTS_ROWS,
        crate::lake::derived::LIFECYCLE => views::LIFECYCLE_ROWS,
        other => other,
    }
}

/// The lake's tables (their directories), with their file schemas.
fn tables() -> [(&'static str, arrow::datatypes::SchemaRef); 6] {
    use crate::lake::derived;
    [
        (schema::EVENTS, schema::stored()),
        (derived::LIFECYCLE, schema::stored()),
        (derived::ACTIVITY, crate::lake::heartbeat::activity_schema()),
        (
            crate::lake::tables::decisions::DECISIONS,
            crate::lake::tables::decisions::schema(),
        ),
        (
            crate::lake::tables::pods::PODS,
            crate::lake::tables::pods::schema(),
        ),
        (
            crate::lake::tables::observations::OBSERVATIONS,
            crate::lake::tables::observations::schema(),
        ),
    ]
}

/// A DataFusion session with the lake's tables registered. `lake` is a directory or an S3
/// bucket prefix (credentials and endpoint from the AWS environment, see `lake::store`).
pub async fn session(lake: &LakeLocation) -> Result<SessionContext, QueryError> {
    let runtime = RuntimeEnvBuilder::new()
        .with_object_list_cache_limit(0)
        .build_arc()?;
    let config = SessionConfig::new()
        .with_information_schema(true)
        .with_target_partitions(2);
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    let (base, present): (String, Vec<&'static str>) = match lake {
        LakeLocation::Local(dir) => {
            // `lifecycle` and `activity` come with `events`, even where a hub's log had no
            // row for them yet (their directory does not exist then; it lists as empty).
            let events = dir.join(schema::EVENTS).is_dir();
            let present: Vec<_> = tables()
                .iter()
                .map(|(t, _)| *t)
                .filter(|t| {
                    dir.join(t).is_dir()
                        || (events
                            && [
                                crate::lake::derived::LIFECYCLE,
                                crate::lake::derived::ACTIVITY,
                            ]
                            .contains(t))
                })
                .collect();
            if present.is_empty() {
                return Err(QueryError::NotALake {
                    path: dir.clone(),
                    table: schema::EVENTS,
                });
            }
            crate::lake::format::check(lake)?;
            let abs = std::fs::canonicalize(dir).map_err(|source| QueryError::Read {
                path: dir.clone(),
                source,
            })?;
            (abs.display().to_string(), present)
        }
        LakeLocation::S3(url) => {
            let (store, prefix) = url.store()?;
            let bucket = url.bucket_url()?;
            let listed = store
                .list_with_delimiter(Some(&prefix))
                .await
                .map_err(|e| QueryError::List {
                    url: url.to_string(),
                    source: Box::new(e),
                })?;
            let dirs: Vec<String> = listed
                .common_prefixes
                .iter()
                .filter_map(|p| p.filename().map(str::to_string))
                .collect();
            // A lake whose writers have committed nothing visible yet still has `_hubpulse/`;
            // then every table is registered (an absent prefix lists as empty).
            let present: Vec<_> = tables()
                .iter()
                .map(|(t, _)| *t)
                .filter(|t| dirs.iter().any(|d| d == t || d == "_hubpulse"))
                .collect();
            if present.is_empty() {
                return Err(QueryError::NotALake {
                    path: PathBuf::from(url.to_string()),
                    table: schema::EVENTS,
                });
            }
            let marker = prefix.clone().join("_hubpulse").join("format.json");
            let body = match object_store::ObjectStoreExt::get(&store, &marker).await {
                Ok(r) => Some(r.bytes().await.map_err(|e| QueryError::List {
                    url: url.to_string(),
                    source: Box::new(e),
                })?),
                Err(object_store::Error::NotFound { .. }) => None,
                Err(e) => {
                    return Err(QueryError::List {
                        url: url.to_string(),
                        source: Box::new(e),
                    });
                }
            };
            let has_data = dirs
                .iter()
                .any(|d| crate::lake::tables::ALL.contains(&d.as_str()));
            crate::lake::format::judge(lake, body.as_deref(), has_data)?;
            ctx.register_object_store(&bucket, store);
            (url.to_string(), present)
        }
    };
    for (name, file_schema) in tables() {
        if present.contains(&name) {
            register(
                &ctx,
                stored_name(name),
                &format!("{base}/{name}/"),
                file_schema,
            )
            .await?;
        }
    }
    if present.contains(&schema::EVENTS) {
        views::create(&ctx).await?;
    }
    Ok(ctx)
}

/// Register `<base>/<table>/hub=…/dt=…/*.parquet`. `hub` and `dt` come from the path (so
/// `WHERE hub = … AND dt >= …` lists only the matching prefixes); the `hub` column the files
/// also carry is left out of the file schema, as Spark, Trino and Athena need too.
async fn register(
    ctx: &SessionContext,
    name: &str,
    url: &str,
    file_schema: arrow::datatypes::SchemaRef,
) -> Result<(), QueryError> {
    let url = ListingTableUrl::parse(url)?;
    let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
        .with_file_extension(".parquet")
        .with_table_partition_cols(vec![
            (schema::HUB_COL.to_string(), DataType::Utf8),
            (schema::PARTITION_COL.to_string(), DataType::Utf8),
        ]);
    let without_hub = arrow::datatypes::Schema::new(
        file_schema
            .fields()
            .iter()
            .filter(|f| f.name() != schema::HUB_COL)
            .cloned()
            .collect::<Vec<_>>(),
    );
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(Arc::new(without_hub));
    let table = ListingTable::try_new(config)?;
    ctx.register_table(name, Arc::new(table))?;
    Ok(())
}

/// Run one SQL statement and collect its result.
pub async fn run(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>, QueryError> {
    let df = ctx.sql(sql).await.map_err(|e| sql_err(ctx, e))?;
    df.collect().await.map_err(|e| sql_err(ctx, e))
}

/// Run one SQL statement and stream its result batch by batch (bounded memory).
pub async fn stream(
    ctx: &SessionContext,
    sql: &str,
) -> Result<datafusion::physical_plan::SendableRecordBatchStream, QueryError> {
    let df = ctx.sql(sql).await.map_err(|e| sql_err(ctx, e))?;
    df.execute_stream().await.map_err(|e| sql_err(ctx, e))
}

/// One human line (see [`sql_error`]), naming the tables registered in `ctx` when one is unknown.
fn sql_err(ctx: &SessionContext, e: datafusion::error::DataFusionError) -> QueryError {
    let tables: Vec<String> = ctx
        .catalog("datafusion")
        .and_then(|c| c.schema("public"))
        .map(|s| s.table_names())
        .unwrap_or_default();
    QueryError::Statement {
        why: sql_error::describe(&e, &tables),
        source: Box::new(e),
    }
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
    let err = |e: arrow::error::ArrowError| QueryError::Output(Box::new(e));
    match format {
        Format::Table => {
            let t = arrow::util::pretty::pretty_format_batches(batches).map_err(err)?;
            writeln!(out, "{t}").map_err(|e| QueryError::Output(Box::new(e)))
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
pub fn named(name: &str, dir: Option<&Path>) -> Result<String, QueryError> {
    if let Some(d) = dir {
        let path = d.join(format!("{name}.sql"));
        return std::fs::read_to_string(&path).map_err(|source| QueryError::Read { path, source });
    }
    crate::query::named::get(name)
        .map(str::to_string)
        .ok_or_else(|| QueryError::NoNamedQuery {
            name: name.to_string(),
        })
}
