//! Prefix tests: every family's header, lines that are not prefixes, and record starts.

use super::*;

#[test]
fn hub_prefix() {
    let h = header(
        "[I 2026-11-28 15:30:10.250 JupyterHub log:192] 200 GET /hub/api/ (@127.0.0.1) 1.14ms",
    )
    .unwrap();
    assert_eq!(h.family, Family::Hub);
    assert_eq!(h.level, Some(Level::Info));
    assert_eq!(h.logger, Some("JupyterHub"));
    assert_eq!(h.module, Some("log:192"));
    assert_eq!(h.message, "200 GET /hub/api/ (@127.0.0.1) 1.14ms");
    let Stamp::Local(st) = h.stamp else { panic!() };
    assert_eq!(
        st.micros_of_day,
        micros_of_day(15, 30, 10, 250_000).unwrap()
    );
}

#[test]
fn dotted_logger_and_single_user_without_module() {
    let h = header("[I 2017-11-17 10:07:56.470 alembic.runtime.migration migration:117] Context impl SQLiteImpl.").unwrap();
    assert_eq!(
        (h.family, h.logger),
        (Family::Hub, Some("alembic.runtime.migration"))
    );
    let h = header("[W 2024-05-21 20:49:19.086 LabApp] 'extra_template_paths' was found").unwrap();
    assert_eq!((h.family, h.module), (Family::SingleUser, None));
    let h = header("[I 2023-09-11 06:21:56.643 SingleUserLabApp log:186] 201 POST /user/a/api/sessions (a@10.1.0.1) 69.93ms").unwrap();
    assert_eq!(h.family, Family::SingleUser);
}

#[test]
fn culler_tornado_default_and_v2() {
    let h = header("[I 241111 16:38:10 __init__:251] Culling server alice (inactive for 01:00:41)")
        .unwrap();
    assert_eq!(h.family, Family::Culler);
    let Stamp::Local(st) = h.stamp else { panic!() };
    assert_eq!(st.date, NaiveDate::from_ymd_opt(2024, 11, 11).unwrap());
    let h = header("[I 2026-07-01 10:00:00.123 IdleCuller __init__:255] Culling server alice/gpu (inactive for 01:00:12)").unwrap();
    assert_eq!(h.family, Family::Culler);
}

#[test]
fn chp_three_generations() {
    let h = header("2025-06-01T12:00:00.000Z [ConfigProxy] info: 200 GET /api/routes ").unwrap();
    assert_eq!((h.family, h.level), (Family::Chp, Some(Level::Info)));
    assert!(matches!(h.stamp, Stamp::Utc(_)));
    assert_eq!(h.message, "200 GET /api/routes ");
    let h =
        header("21:44:04.424 [ConfigProxy] info: Adding route /user/jim -> http://127.0.0.1:32772")
            .unwrap();
    assert!(matches!(h.stamp, Stamp::TimeOnly(_)));
    assert_eq!(
        h.message,
        "Adding route /user/jim -> http://127.0.0.1:32772"
    );
    let h = header("14:02:57.164 - warn: [ConfigProxy] Removing route /user/jaime").unwrap();
    assert_eq!(h.level, Some(Level::Warning));
    assert_eq!(h.message, "Removing route /user/jaime");
}

#[test]
fn kernel_app_lines() {
    let h =
        header("[IPKernelApp] WARNING | Parent appears to have exited, shutting down.").unwrap();
    assert_eq!(
        (h.family, h.level),
        (Family::SingleUser, Some(Level::Warning))
    );
}

#[test]
fn rejects_non_prefixes() {
    assert!(header("Task exception was never retrieved").is_none());
    assert!(header("[X 2026-11-28 15:30:10.250 JupyterHub log:192] x").is_none());
    assert!(header("[I 2026-13-28 15:30:10.250 JupyterHub log:192] x").is_none());
    assert!(header("").is_none());
}

#[test]
fn record_starts() {
    assert!(starts_record(
        b"[I 2026-11-28 15:30:10.250 JupyterHub log:192] x"
    ));
    assert!(starts_record(b"[I 241111 16:38:10 __init__:251] x"));
    assert!(starts_record(
        b"2025-06-01T12:00:00.000Z [ConfigProxy] info: x"
    ));
    assert!(starts_record(b"[IPKernelApp] WARNING | x"));
    assert!(!starts_record(b"    Traceback (most recent call last):"));
    assert!(!starts_record(b"}"));
}
