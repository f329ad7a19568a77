//! DataFusion's errors as one human line.
//!
//! DataFusion prints a parser error in Rust debug form (`SQL error: ParserError("Expected: …")`)
//! and an unknown table with its full catalogue path (`table 'datafusion.public.decisions' not
//! found`), which says nothing about why. Guarantees: the result is one line, starts with what
//! went wrong, quotes DataFusion's own words for the detail, and for an unknown table names the
//! tables this lake does have.

use datafusion::error::DataFusionError;
use datafusion::sql::sqlparser::parser::ParserError;

/// `e` as one line; `tables` are the tables registered for this lake (for an unknown table).
pub fn describe(e: &DataFusionError, tables: &[String]) -> String {
    let root = e.find_root();
    let text = match root {
        DataFusionError::SQL(p, _) => match p.as_ref() {
            ParserError::ParserError(m) | ParserError::TokenizerError(m) => {
                format!("SQL syntax error: {m}")
            }
            ParserError::RecursionLimitExceeded => {
                "SQL syntax error: the statement is nested too deeply".into()
            }
        },
        DataFusionError::Plan(m) => match unknown_table(m) {
            Some(t) => {
                let mut have = tables.to_vec();
                have.sort();
                format!(
                    "no table '{t}' in this lake; it has: {} (a table appears once the agent first writes it: decisions with [culler]/[admission]/[capacity], observations with [hub], pods with [pods])",
                    have.join(", ")
                )
            }
            None => format!("SQL: {m}"),
        },
        other => format!("SQL: {}", other.message()),
    };
    one_line(&text)
}

/// The table of DataFusion's "table 'datafusion.public.NAME' not found", without the catalogue.
fn unknown_table(m: &str) -> Option<&str> {
    let rest = m.strip_prefix("table '")?;
    let name = rest.strip_suffix("' not found")?;
    Some(name.rsplit('.').next().unwrap_or(name))
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_table_drops_the_catalogue_path() {
        assert_eq!(
            unknown_table("table 'datafusion.public.decisions' not found"),
            Some("decisions")
        );
        assert_eq!(unknown_table("table 'pods' not found"), Some("pods"));
        assert_eq!(unknown_table("column 'x' not found"), None);
    }
}
