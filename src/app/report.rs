//! `hubpulse report monthly`: the month's report from the lake, to stdout or a file.

use std::path::PathBuf;

use tokio::runtime::Handle;

use crate::query;

use super::AppError;
use super::out::Out;

pub(super) fn report_monthly(
    rt: &Handle,
    lake: &crate::lake::LakeLocation,
    month: &str,
    pricing: Option<PathBuf>,
    format: crate::report::ReportFormat,
    out: Option<PathBuf>,
) -> Result<(), AppError> {
    use crate::report::{self, pricing::Pricing};
    let first = report::parse_month(month)?;
    let pricing = match pricing.as_deref() {
        Some(p) => Pricing::load(p)?,
        None => Pricing::default(),
    };
    let m = rt.block_on(async {
        let ctx = query::session(lake).await?;
        report::monthly(&ctx, first, &pricing).await
    })?;
    let text = report::render(&m, format);
    match out.as_deref() {
        Some(path) => std::fs::write(path, text)
            .map_err(|e| AppError::Runtime(format!("{}: {e}", path.display()))),
        None => {
            let mut w = Out::stdout();
            w.text(&text)?;
            w.flush_now()
        }
    }
}
