//! `hubpulse dashboards push [--dry-run]`: the bundled Datadog dashboards, created or updated.

use std::path::Path;

use tokio::runtime::Handle;

use super::AppError;
use super::out::Out;

/// `hubpulse dashboards push [--dry-run]`: one line per dashboard on stdout.
pub(super) fn dashboards_push(
    rt: &Handle,
    dir: Option<&Path>,
    url: Option<String>,
    dry_run: bool,
) -> Result<(), AppError> {
    use crate::sinks::datadog::config::{ApiKey, DatadogConfig, api_base};
    use crate::sinks::datadog::dashboards::{Action, Client, load};
    let boards = load(dir)?;
    let cfg = DatadogConfig {
        url,
        ..DatadogConfig::default()
    };
    let base = api_base(&cfg)?;
    let keys = (
        ApiKey::from_env("DD_API_KEY"),
        ApiKey::from_env("DD_APP_KEY"),
    );
    let mut w = Out::stdout();
    let (Some(api), Some(app)) = keys else {
        if dry_run {
            for b in &boards {
                w.line(format_args!(
                    "would push {:?} ({}); DD_API_KEY/DD_APP_KEY unset, so not compared with {base}",
                    b.title, b.file
                ))?;
            }
            return w.flush_now();
        }
        return Err(AppError::Input(
            "dashboards push: set DD_API_KEY and DD_APP_KEY (an application key with dashboards_write)".into(),
        ));
    };
    let client = Client::new(&base, &api, &app)?;
    let out = rt.block_on(client.push(&boards, dry_run))?;
    for o in out {
        let verb = match (&o.action, dry_run) {
            (Action::Create, true) => "would create",
            (Action::Update { .. }, true) => "would update",
            (Action::Create, false) => "created",
            (Action::Update { .. }, false) => "updated",
        };
        let id = o.id.as_deref().unwrap_or("-");
        w.line(format_args!(
            "{verb} {:?} id={id}{}",
            o.title,
            o.url.map(|u| format!(" {u}")).unwrap_or_default()
        ))?;
    }
    w.flush_now()
}
