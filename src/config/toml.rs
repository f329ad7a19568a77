//! TOML read with errors that say where: `NAME:LINE:COL: key: why`, the position taken from the
//! parser's own spans (`toml::Spanned`), never from searching the text. Shared by every TOML
//! file hubpulse reads (agent config, pricing, admission policy).

use super::{At, ConfigError};

/// Deserialize TOML text; a syntax or type error is one line `NAME:LINE:COL: why`. Shared by
/// every TOML file hubpulse reads (agent config, pricing, admission policy).
pub(crate) fn toml_from_str<T: serde::de::DeserializeOwned>(
    text: &str,
    name: &str,
) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e: toml::de::Error| ConfigError::Toml {
        file: name.to_string(),
        at: At(e.span().map(|s| line_col(text, s.start))),
        why: e.message().trim().replace('\n', " "),
        source: Box::new(e),
    })
}

/// A validation error as one line `NAME:LINE:COL: key: why`, placed at the key when found.
pub(crate) fn invalid_key(text: &str, name: &str, key: &str, why: &str) -> ConfigError {
    ConfigError::Invalid {
        file: name.to_string(),
        at: At(key_position(text, key)),
        key: key.to_string(),
        why: why.to_string(),
    }
}

pub(crate) fn line_col(text: &str, byte: usize) -> (usize, usize) {
    let before = &text[..byte.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.len(), |i| before.len() - i - 1)
        + 1;
    (line, col)
}

/// The position of a key path (`lake.flush_interval`, `files[1].include`,
/// `instance_types."m5.2xlarge".memory`, `datadog.tags[2]`) in the document, from the spans
/// the TOML parser records: the key as written (under a table header, as a dotted key or in an
/// inline table alike; an array element by its own span). `None` when the path is not in the
/// text (a key that is missing, or a value that came from a default).
pub(crate) fn key_position(text: &str, key: &str) -> Option<(usize, usize)> {
    let root = toml::de::DeValue::Table(toml::de::DeTable::parse(text).ok()?.into_inner());
    let mut at = &root;
    let mut span = None;
    for seg in key_segments(key)? {
        span = Some(step(&mut at, &seg)?);
    }
    Some(line_col(text, span?.start))
}

/// One segment of a key path: a (possibly quoted) key, or an array index.
#[derive(Debug, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// `a."b.c"[2].d` → `a`, `b.c`, `[2]`, `d`.
fn key_segments(key: &str) -> Option<Vec<Seg>> {
    let mut out = Vec::new();
    let mut chars = key.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            '.' => {
                chars.next();
            }
            '[' => {
                chars.next();
                let n: String = chars.by_ref().take_while(|c| *c != ']').collect();
                out.push(Seg::Index(n.trim().parse().ok()?));
            }
            '"' => {
                chars.next();
                let k: String = chars.by_ref().take_while(|c| *c != '"').collect();
                out.push(Seg::Key(k));
            }
            _ => {
                let mut k = String::new();
                while let Some(&c) = chars.peek() {
                    if matches!(c, '.' | '[') {
                        break;
                    }
                    k.push(c);
                    chars.next();
                }
                out.push(Seg::Key(k.trim().to_string()));
            }
        }
    }
    Some(out)
}

/// Moves `at` to `seg` under it; returns the span that names it (a key's, an element's).
fn step<'r, 'i>(at: &mut &'r toml::de::DeValue<'i>, seg: &Seg) -> Option<std::ops::Range<usize>> {
    use toml::de::DeValue;
    match (seg, *at) {
        (Seg::Key(k), DeValue::Table(t)) => {
            let (key, value) = t.get_key_value(k.as_str())?;
            *at = value.get_ref();
            Some(key.span())
        }
        (Seg::Index(i), DeValue::Array(a)) => {
            let item = a.get(*i)?;
            *at = item.get_ref();
            Some(item.span())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct T {
        #[allow(dead_code)]
        a: u64,
    }

    #[test]
    fn errors_are_one_line_at_their_position_and_keep_their_cause() {
        let e = toml_from_str::<T>("a = \"x\"\n", "f.toml").unwrap_err();
        assert!(e.to_string().starts_with("f.toml:1:5: "), "{e}");
        assert!(!e.to_string().contains('\n'), "{e}");
        assert!(std::error::Error::source(&e).is_some(), "{e:?}");
        let text = "a = 1\n[lake]\nflush = 2\n";
        let e = invalid_key(text, "f.toml", "lake.flush", "too big");
        assert_eq!(e.to_string(), "f.toml:3:1: lake.flush: too big");
        let e = invalid_key(text, "f.toml", "lake.missing", "is required");
        assert_eq!(e.to_string(), "f.toml: lake.missing: is required");
        let e = crate::config::units::parse_duration("5 minutes").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid duration \"5 minutes\" (use e.g. 250ms, 10s, 5m, 1h)"
        );
    }
}
