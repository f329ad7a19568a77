//! Durations (`250ms`, `10s`, `5m`, `1h`) and sizes (`64KiB`, `1MB`, or a number of bytes) as
//! configuration writes them, parsed once into `Duration` and `u64`.

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;

/// Split `"<integer><unit>"` (spaces around the unit allowed) and look the unit up.
fn number_unit<T>(
    s: &str,
    what: &'static str,
    hint: &'static str,
    unit: impl Fn(&str) -> Option<T>,
) -> Result<(u64, T), ConfigError> {
    let s = s.trim();
    let bad = || ConfigError::Unit {
        what,
        text: s.to_string(),
        hint,
    };
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, u) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| bad())?;
    let u = unit(u.trim()).ok_or_else(bad)?;
    Ok((n, u))
}

/// Parse `250ms`, `10s`, `5m`, `1h` (an integer and a unit).
pub fn parse_duration(s: &str) -> Result<Duration, ConfigError> {
    let (n, ms) = number_unit(s, "duration", "250ms, 10s, 5m, 1h", |u| match u {
        "ms" => Some(1),
        "s" => Some(1000),
        "m" => Some(60_000),
        "h" => Some(3_600_000),
        _ => None,
    })?;
    Ok(Duration::from_millis(n * ms))
}

/// Parse `65536`, `64KiB`, `32MiB`, `1GiB`.
pub fn parse_size(s: &str) -> Result<u64, ConfigError> {
    let (n, mult) = number_unit(s, "size", "65536, 64KiB, 32MiB", |u| match u {
        "" | "B" => Some(1),
        "KiB" => Some(1 << 10),
        "MiB" => Some(1 << 20),
        "GiB" => Some(1 << 30),
        _ => None,
    })?;
    Ok(n * mult)
}

/// A size as TOML writes it: a number of bytes, or text with a unit.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum SizeValue {
    Int(u64),
    Text(String),
}

impl SizeValue {
    pub fn get(&self) -> Result<u64, ConfigError> {
        match self {
            SizeValue::Int(n) => Ok(*n),
            SizeValue::Text(s) => parse_size(s),
        }
    }
}
