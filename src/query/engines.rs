//! The statements that give DuckDB, Spark, Trino and Athena the tables and views `hubpulse
//! query` has: the stored tables `events_rows`, `lifecycle_rows` and `activity` (their files,
//! `hub` and `dt` from the path), and the views `events` and `lifecycle` with the columns, order
//! and types of `hubpulse query`'s own (made here too: [`datafusion_views`]; the stored columns with `message` in place of `text`, then
//! `hub`, `dt`). docs/ENGINES.md shows exactly what these functions return (a test keeps it so),
//! and the reader tests run the DuckDB and Spark statements against lakes `hubpulse` wrote.

use arrow::datatypes::{DataType, Schema};

use crate::lake::rebuild::{Dialect, heartbeat_message_sql, message_sql};
use crate::lake::tables::events as schema;

/// An engine docs/ENGINES.md gives statements for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    DuckDb,
    Spark,
    /// Trino's Hive connector, catalog `lake`.
    Trino,
    Athena,
}

/// The stored tables: name, directory in the lake, file schema.
fn stored_tables() -> [(&'static str, &'static str, arrow::datatypes::SchemaRef); 3] {
    use crate::lake::derived::{ACTIVITY, LIFECYCLE};
    [
        (super::views::EVENTS_ROWS, schema::EVENTS, schema::stored()),
        (super::views::LIFECYCLE_ROWS, LIFECYCLE, schema::stored()),
        (
            ACTIVITY,
            ACTIVITY,
            crate::lake::heartbeat::activity_schema(),
        ),
    ]
}

/// Names that are keywords somewhere and are quoted everywhere.
const KEYWORDS: &[&str] = &["user", "count", "first", "last"];

impl Engine {
    fn dialect(self) -> Dialect {
        match self {
            Engine::DuckDb => Dialect::DuckDb,
            Engine::Spark => Dialect::Spark,
            Engine::Trino | Engine::Athena => Dialect::Athena,
        }
    }

    /// A table or view's qualified name.
    fn name(self, table: &str) -> String {
        match self {
            Engine::DuckDb => table.to_string(),
            Engine::Spark | Engine::Athena => format!("hubpulse.{table}"),
            Engine::Trino => format!("lake.hubpulse.{table}"),
        }
    }

    /// A column name in a query.
    fn col(self, name: &str) -> String {
        if KEYWORDS.contains(&name) {
            self.dialect().quote(name)
        } else {
            name.to_string()
        }
    }

    /// A column name in a table's DDL (Athena's Hive DDL quotes every one).
    fn ddl_col(self, name: &str) -> String {
        match self {
            Engine::Athena => format!("`{name}`"),
            _ => self.col(name),
        }
    }

    fn ty(self, t: &DataType) -> String {
        let (spark, hive) = (self == Engine::Spark, self == Engine::Athena);
        let pick = |s: &str, h: &str, t: &str| {
            if spark {
                s.to_string()
            } else if hive {
                h.to_string()
            } else {
                t.to_string()
            }
        };
        match t {
            DataType::Timestamp(..) => pick("TIMESTAMP", "timestamp", "timestamp"),
            DataType::Utf8 => pick("STRING", "string", "varchar"),
            DataType::Int32 => pick("INT", "int", "integer"),
            DataType::Int64 => pick("BIGINT", "bigint", "bigint"),
            DataType::Float64 => pick("DOUBLE", "double", "double"),
            DataType::Boolean => pick("BOOLEAN", "boolean", "boolean"),
            DataType::List(f) => {
                let item = self.ty(f.data_type());
                pick(
                    &format!("ARRAY<{item}>"),
                    &format!("array<{item}>"),
                    &format!("array({item})"),
                )
            }
            other => unreachable!("no lake column has type {other}"),
        }
    }

    fn string(self) -> &'static str {
        if self == Engine::Spark {
            "STRING"
        } else {
            "VARCHAR"
        }
    }
}

/// `items` joined by `, ` on lines of at most 96 characters, each after `indent` (an item
/// longer than that gets a line of its own).
fn wrap(items: &[String], indent: &str) -> String {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for (i, item) in items.iter().enumerate() {
        let piece = if i + 1 < items.len() {
            format!("{item},")
        } else {
            item.clone()
        };
        if !line.is_empty() && indent.len() + line.len() + 1 + piece.len() > 96 {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&piece);
    }
    lines.push(line);
    lines
        .iter()
        .map(|l| format!("{indent}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The statements that declare the stored tables over `lake` (a directory or an S3 prefix).
pub fn tables(e: Engine, lake: &str) -> Vec<String> {
    stored_tables()
        .iter()
        .map(|(name, dir, s)| table(e, name, &format!("{lake}/{dir}"), s))
        .collect()
}

fn table(e: Engine, name: &str, location: &str, s: &Schema) -> String {
    let cols: Vec<String> = s
        .fields()
        .iter()
        .map(|f| format!("{} {}", e.ddl_col(f.name()), e.ty(f.data_type())))
        .collect();
    let q = e.name(name);
    match e {
        Engine::DuckDb => format!(
            "CREATE OR REPLACE VIEW {q} AS\nSELECT * FROM read_parquet('{location}/*/*/*.parquet',\n    \
             hive_partitioning = true, hive_types = {{'hub': VARCHAR, 'dt': VARCHAR}})"
        ),
        Engine::Spark => format!(
            "CREATE TABLE IF NOT EXISTS {q} (\n{}\n) USING parquet\n\
             PARTITIONED BY (hub STRING, dt STRING)\nLOCATION '{location}'",
            wrap(&cols, "  ")
        ),
        Engine::Trino => {
            let mut cols = cols;
            cols.extend(["hub varchar".to_string(), "dt varchar".to_string()]);
            format!(
                "CREATE TABLE {q} (\n{}\n) WITH (\n  format = 'PARQUET',\n  \
                 external_location = '{location}/',\n  partitioned_by = ARRAY['hub', 'dt']\n)",
                wrap(&cols, "  ")
            )
        }
        Engine::Athena => format!(
            "CREATE EXTERNAL TABLE {q} (\n{}\n)\nPARTITIONED BY (`hub` string, `dt` string)\n\
             STORED AS PARQUET\nLOCATION '{location}/'\nTBLPROPERTIES (\n  \
             'projection.enabled' = 'true',\n  'projection.hub.type' = 'enum',\n  \
             'projection.hub.values' = 'prod-hub,dev-hub',\n  'projection.dt.type' = 'date',\n  \
             'projection.dt.format' = 'yyyy-MM-dd',\n  \
             'projection.dt.range' = '2026-01-01,NOW',\n  'projection.dt.interval' = '1',\n  \
             'projection.dt.interval.unit' = 'DAYS',\n  \
             'storage.location.template' = '{location}/hub=${{hub}}/dt=${{dt}}/'\n)",
            wrap(&cols, "  ")
        ),
    }
}

/// The names of the views' columns, in order: the stored columns with `message` for `text`,
/// then `hub` and `dt`.
pub fn view_columns() -> Vec<String> {
    let mut out: Vec<String> = schema::stored()
        .fields()
        .iter()
        .map(|f| match f.name().as_str() {
            schema::TEXT_COL => "message".to_string(),
            n => n.to_string(),
        })
        .collect();
    out.extend([
        schema::HUB_COL.to_string(),
        schema::PARTITION_COL.to_string(),
    ]);
    out
}

/// The stored rows of `rows` with their `message` (rebuilt in dialect `d`).
fn rows_select(e: Engine, d: Dialect, rows: &str) -> String {
    let cols: Vec<String> = view_columns()
        .iter()
        .map(|c| match c.as_str() {
            "message" => format!("{} AS message", message_sql(d)),
            c => e.col(c),
        })
        .collect();
    format!("SELECT\n{}\nFROM {}", wrap(&cols, "  "), e.name(rows))
}

/// The expression of column `c` of a heartbeat unnested from `activity` (its lists unnested
/// as `ts`, `status`, `client_ip`, `duration_cs` and `source_offset`; `message` rebuilt in
/// dialect `d`). `ts` is in milliseconds in the files: DataFusion's union wants the µs of
/// `events_rows.ts`, cast here (the other engines' timestamp types hold both alike).
fn heartbeat_col(e: Engine, d: Dialect, c: &str) -> String {
    let (s, user) = (e.string(), e.col("user"));
    let null = |t: &str| format!("CAST(NULL AS {t}) AS {}", e.col(c));
    match c {
        "source" => "'hub' AS source".into(),
        "level" => "'INFO' AS level".into(),
        "kind" => "'request' AS kind".into(),
        "actor" => format!("{user} AS actor"),
        "method" => "'POST' AS method".into(),
        "route" => "'/hub/api/users/{user}/activity' AS route".into(),
        "path" => format!("concat('/hub/api/users/', {user}, '/activity') AS path"),
        "server_name" | "target" | "service" | "attrs" | "flags" => null(s),
        "exit_code" => null("INT"),
        "count" => null("BIGINT"),
        "duration_ms" => "CAST(duration_cs AS DOUBLE) / 100.0 AS duration_ms".into(),
        "ts" if d == Dialect::DataFusion => {
            "arrow_cast(ts, 'Timestamp(Microsecond, Some(\"UTC\"))') AS ts".into()
        }
        "message" => format!("{} AS message", heartbeat_message_sql(d)),
        "lines" => "CAST(1 AS INT) AS lines".into(),
        c => e.col(c),
    }
}

/// The heartbeats folded into `activity`, as `events` rows.
fn heartbeats_select(e: Engine, d: Dialect) -> String {
    let cols: Vec<String> = view_columns()
        .iter()
        .map(|c| heartbeat_col(e, d, c))
        .collect();
    let activity = e.name(crate::lake::derived::ACTIVITY);
    let lists = ["times", "statuses", "client_ips", "durations_cs", "offsets"];
    let names = ["ts", "status", "client_ip", "duration_cs", "source_offset"];
    let from = match e {
        // Several unnest()s in one projection walk their lists together.
        Engine::DuckDb => {
            let mut inner: Vec<String> = ["hub", "dt", "user", "logger", "module"]
                .iter()
                .chain(&["source_file", "source_fp"])
                .map(|c| e.col(c))
                .collect();
            inner.extend(
                lists
                    .iter()
                    .zip(names)
                    .map(|(l, n)| format!("unnest({l}) AS {n}")),
            );
            format!(
                "FROM (SELECT\n{}\n  FROM {activity} WHERE offsets IS NOT NULL) AS beats",
                wrap(&inner, "    ")
            )
        }
        Engine::Spark => format!(
            "FROM {activity}\nLATERAL VIEW inline(arrays_zip({})) beats AS {}\n\
             WHERE offsets IS NOT NULL",
            lists.join(", "),
            names.join(", ")
        ),
        Engine::Trino | Engine::Athena => format!(
            "FROM {activity}\nCROSS JOIN UNNEST({}) AS beats ({})\nWHERE offsets IS NOT NULL",
            lists.join(", "),
            names.join(", ")
        ),
    };
    format!("SELECT\n{}\n{from}", wrap(&cols, "  "))
}

/// `CREATE … VIEW events`: the stored rows and the folded heartbeats.
pub fn events_view(e: Engine) -> String {
    events_view_in(e, e.dialect())
}

/// `CREATE … VIEW lifecycle`: the stored lifecycle rows.
pub fn lifecycle_view(e: Engine) -> String {
    lifecycle_view_in(e, e.dialect())
}

fn events_view_in(e: Engine, d: Dialect) -> String {
    format!(
        "CREATE OR REPLACE VIEW {} AS\n{}\nUNION ALL\n{}",
        e.name(schema::EVENTS),
        rows_select(e, d, super::views::EVENTS_ROWS),
        heartbeats_select(e, d)
    )
}

fn lifecycle_view_in(e: Engine, d: Dialect) -> String {
    format!(
        "CREATE OR REPLACE VIEW {} AS\n{}",
        e.name(crate::lake::derived::LIFECYCLE),
        rows_select(e, d, super::views::LIFECYCLE_ROWS)
    )
}

/// `hubpulse query`'s own views: DuckDB's statements (unqualified names, several `unnest`s in
/// one projection walking their lists together, as DataFusion's do), with the rebuild in
/// DataFusion's dialect (its `/` on integers is the integer division).
pub fn datafusion_views() -> [String; 2] {
    [
        events_view_in(Engine::DuckDb, Dialect::DataFusion),
        lifecycle_view_in(Engine::DuckDb, Dialect::DataFusion),
    ]
}

/// Every statement as one script (`;` after each): the schema, the stored tables, the
/// registration of their partitions where the engine needs one, the views.
pub fn script(e: Engine, lake: &str) -> String {
    let mut all: Vec<String> = match e {
        Engine::DuckDb => vec![],
        Engine::Spark | Engine::Athena => vec!["CREATE DATABASE IF NOT EXISTS hubpulse".into()],
        Engine::Trino => vec!["CREATE SCHEMA IF NOT EXISTS lake.hubpulse".into()],
    };
    all.extend(tables(e, lake));
    for (name, _, _) in stored_tables() {
        match e {
            Engine::Spark => all.push(format!("MSCK REPAIR TABLE {}", e.name(name))),
            Engine::Trino => all.push(format!(
                "CALL lake.system.sync_partition_metadata(schema_name => 'hubpulse', \
                 table_name => '{name}', mode => 'ADD')"
            )),
            Engine::DuckDb | Engine::Athena => {}
        }
    }
    all.extend([events_view(e), lifecycle_view(e)]);
    all.iter().map(|s| format!("{s};\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = include_str!("../../docs/ENGINES.md");

    /// The `## ` section of docs/ENGINES.md titled `title`.
    fn section(title: &str) -> &'static str {
        let head = format!("\n## {title}\n");
        let at = DOC
            .find(&head)
            .unwrap_or_else(|| panic!("no section {title}"));
        let rest = &DOC[at + head.len()..];
        &rest[..rest.find("\n## ").unwrap_or(rest.len())]
    }

    /// docs/ENGINES.md shows each engine's statements exactly as generated, in a `sql` block of
    /// their own.
    #[test]
    fn docs_engines_shows_the_generated_statements() {
        for (e, title, lakes) in [
            (
                Engine::DuckDb,
                "DuckDB",
                &["/data/lake", "s3://bucket/prefix"][..],
            ),
            (Engine::Spark, "Spark", &["/data/lake"][..]),
            (
                Engine::Trino,
                "Trino (Hive connector)",
                &["s3://bucket/prefix"][..],
            ),
            (Engine::Athena, "Athena", &["s3://bucket/prefix"][..]),
        ] {
            for lake in lakes {
                let block = format!("```sql\n{}```\n", script(e, lake));
                assert!(
                    section(title).contains(&block),
                    "docs/ENGINES.md, section {title}, lacks this block (paste it):\n{block}"
                );
            }
        }
    }

    /// Every engine's views name the columns of `hubpulse query`'s, in its order.
    #[test]
    fn every_view_has_the_datafusion_columns_in_order() {
        let want: Vec<String> = schema::events()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|n| n != schema::HUB_COL)
            .chain([schema::HUB_COL.into(), schema::PARTITION_COL.into()])
            .collect();
        assert_eq!(view_columns(), want);
        for e in [Engine::DuckDb, Engine::Spark, Engine::Trino, Engine::Athena] {
            for c in &want {
                let named = heartbeat_col(e, e.dialect(), c);
                let bare = e.col(c);
                assert!(
                    named == bare || named.ends_with(&format!(" AS {bare}")),
                    "{e:?}: heartbeat column {c} is {named}"
                );
            }
        }
    }

    /// README.md's table of `events` columns lists the views' columns in their order, and its
    /// account of `activity` names every column of its files.
    #[test]
    fn readme_documents_the_view_and_activity_columns() {
        let readme = include_str!("../../README.md");
        let at = readme
            .find("### Table `events`")
            .expect("README: Table `events`");
        let listed: Vec<&str> = readme[at..]
            .lines()
            .skip_while(|l| !l.starts_with("|---"))
            .skip(1)
            .take_while(|l| l.starts_with("| `"))
            .filter_map(|l| l.split('`').nth(1))
            .collect();
        assert_eq!(listed, view_columns(), "README.md: Table `events`");
        let lake = &readme[readme.find("## The lake").expect("README: The lake")..at];
        for f in crate::lake::heartbeat::activity_schema().fields() {
            assert!(
                lake.contains(&format!("`{}`", f.name())),
                "README.md \"The lake\" does not name activity's `{}`",
                f.name()
            );
        }
    }

    /// Spark's double quotes make strings, not names: no double-quoted name in its SQL.
    #[test]
    fn spark_quotes_names_with_backquotes() {
        let all = script(Engine::Spark, "/data/lake");
        assert!(
            !all.contains("\"user\"") && !all.contains("\"count\""),
            "{all}"
        );
        assert!(all.contains("(duration_cs) div 100"), "{all}");
        let duck = script(Engine::DuckDb, "/data/lake");
        assert!(duck.contains("(duration_cs) // 100"), "{duck}");
    }
}
