//! `hubpulse migrate`: a lake of format 1 or 2 converted to format 3 in place (see
//! [`crate::lake::migrate`]). One line per hub on stderr as it is done, and a summary line.

use std::io::{self, Write};

use crate::lake::LakeLocation;
use crate::lake::manifest::LakeError;
use crate::lake::migrate::{Counts, Outcome, migrate};
use crate::lake::writer::WriterConfig;

use super::AppError;

fn counts_line(c: &Counts) -> String {
    format!(
        "days={} already={} parts={}->{} bytes={}->{}",
        c.days, c.current_days, c.parts_before, c.parts_after, c.bytes_before, c.bytes_after
    )
}

fn stderr_line(s: &str) {
    let _ = writeln!(io::stderr().lock(), "{s}");
}

pub(super) fn migrate_cmd(lake: &LakeLocation) -> Result<(), AppError> {
    let outcome = migrate(lake, &WriterConfig::default(), |hub, c| {
        stderr_line(&format!("migrate: hub {hub}: {}", counts_line(c)));
    })
    .map_err(|e| match e {
        LakeError::Locked { .. } => AppError::Input(format!(
            "{e} (stop the agents writing to this lake before migrating it)"
        )),
        LakeError::Io { .. }
        | LakeError::Store { .. }
        | LakeError::Parquet(_)
        | LakeError::Arrow(_)
        | LakeError::Encode { .. }
        | LakeError::WriterGone
        | LakeError::ParserGone
        | LakeError::Shared(_) => AppError::Runtime(e.to_string()),
        e => AppError::Input(e.to_string()),
    })?;
    match outcome {
        Outcome::NoLake => Err(AppError::Input(format!(
            "{lake}: no hubpulse lake here (no _hubpulse/hubs/): nothing to migrate"
        ))),
        Outcome::Unknown(v) => Err(AppError::Input(format!(
            "{lake}: lake format {v}, which this hubpulse does not know (it writes format {})",
            crate::lake::tables::events::FORMAT_VERSION
        ))),
        Outcome::Current => {
            stderr_line(&format!(
                "migrate: {lake} is format {} already: nothing to do",
                crate::lake::tables::events::FORMAT_VERSION
            ));
            Ok(())
        }
        Outcome::Migrated(total) => {
            stderr_line(&format!(
                "migrate: {lake} is now format {}: {}",
                crate::lake::tables::events::FORMAT_VERSION,
                counts_line(&total)
            ));
            Ok(())
        }
    }
}
