//! Route classification tests, and the table scan the trie replaced as a reference.

use std::borrow::Cow;
use std::sync::LazyLock;

use super::table::{Seg, Template, templates};
use super::trie::{TRIE, matches};
use super::*;

fn r(p: &str) -> (&'static str, Option<String>, Option<String>) {
    let i = classify(p);
    (
        i.route,
        i.user.map(|c| c.into_owned()),
        i.server.map(|c| c.into_owned()),
    )
}

#[test]
fn hub_api_routes() {
    assert_eq!(
        r("/hub/api/users/alice/activity"),
        ("/hub/api/users/{user}/activity", Some("alice".into()), None)
    );
    assert_eq!(
        r("/hub/api/users/carol/servers/scratch"),
        (
            "/hub/api/users/{user}/servers/{server}",
            Some("carol".into()),
            Some("scratch".into())
        )
    );
    assert_eq!(
        r("/hub/api/users/bob/server"),
        (
            "/hub/api/users/{user}/server",
            Some("bob".into()),
            Some("".into())
        )
    );
    assert_eq!(r("/hub/api/users?state=[secret]").0, "/hub/api/users");
    assert_eq!(r("/hub/api/").0, "/hub/api");
    assert_eq!(
        r("/hub/api/groups/data-science/users").0,
        "/hub/api/groups/{group}/users"
    );
}

#[test]
fn user_server_routes() {
    assert_eq!(
        r("/user/alice/analysis/api/kernels/5d7c-11/channels?session_id=x"),
        (
            "/user/{user}/{server}/api/kernels/{id}/channels",
            Some("alice".into()),
            Some("analysis".into())
        )
    );
    assert_eq!(
        r("/user/alice/api/kernels/5d7c"),
        (
            "/user/{user}/api/kernels/{id}",
            Some("alice".into()),
            Some("".into())
        )
    );
    assert_eq!(
        r("/user/alice/lab/tree/a/b.ipynb").0,
        "/user/{user}/lab/tree/{path}"
    );
    assert_eq!(
        r("/hub/user/alice/api/status").0,
        "/hub/user/{user}/api/status"
    );
    assert_eq!(
        r("/user/frank%40example.org/lab").1.as_deref(),
        Some("frank@example.org")
    );
}

#[test]
fn unknown_paths_fall_back_to_bounded_heads() {
    assert_eq!(r("/hub/some/custom/handler/alice").0, "/hub/*");
    assert_eq!(
        r("/user/alice/gpu/weird/deep/path").0,
        "/user/{user}/{server}/*"
    );
    assert_eq!(r("/wp-login.php").0, "/*");
    assert_eq!(r("").0, "/");
}

/// The table scan the trie replaced: templates bucketed by their first two segments, the
/// literal bucket first, then the placeholder one, first match in table order.
fn reference(path: &str) -> RouteInfo<'_> {
    use std::collections::HashMap;
    type Buckets = HashMap<(&'static str, &'static str), Vec<Template>>;
    static BY_HEAD: LazyLock<Buckets> = LazyLock::new(|| {
        let key_of = |seg: Option<&Seg>| match seg {
            Some(Seg::Lit(l)) => *l,
            Some(_) => "*",
            None => "",
        };
        let mut by_head = Buckets::new();
        for t in templates() {
            let key = (key_of(t.segs.first()), key_of(t.segs.get(1)));
            by_head.entry(key).or_default().push(t);
        }
        by_head
    });
    let by_head = &*BY_HEAD;
    let path = path.split(['?', '#']).next().unwrap_or("");
    let segs: Vec<&str> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .take(MAX_SEGS)
        .collect();
    let first = segs.first().copied().unwrap_or("");
    let second = segs.get(1).copied().unwrap_or("");
    let lookup = |key: (&str, &str)| {
        by_head
            .get(&key)
            .and_then(|ts| ts.iter().find_map(|t| matches(t, &segs)))
    };
    let mut info = lookup((first, second))
        .or_else(|| {
            if second.is_empty() {
                None
            } else {
                lookup((first, "*"))
            }
        })
        .unwrap_or_else(|| fallback(&segs));
    if info.server.is_none() && is_server_route(info.route) {
        info.server = Some(Cow::Borrowed(""));
    }
    info
}

#[test]
fn trie_agrees_with_the_table_scan() {
    let words = [
        "",
        "hub",
        "api",
        "user",
        "users",
        "alice",
        "a%40b",
        "lab",
        "tree",
        "api",
        "kernels",
        "k1",
        "channels",
        "servers",
        "server",
        "progress",
        "gpu",
        "spawn",
        "static",
        "x",
        "*",
        "routes",
        "groups",
        "g",
        "shared",
        "tokens",
        "activity",
        "contents",
        "metrics",
        "favicon.ico",
        "services",
        "login",
        "oauth_callback",
        "authorizations",
        "token",
    ];
    let mut paths: Vec<String> = templates()
        .iter()
        .map(|t| {
            t.route
                .replace("{user}", "alice")
                .replace("{server}", "gpu")
                .replace("{path}", "a/b")
                .replace(['{', '}'], "")
        })
        .collect();
    // Every combination of up to three words, and a sample of deeper ones.
    let n = words.len();
    for i in 0..n * n * n {
        let (a, b, c) = (i % n, i / n % n, i / n / n);
        paths.push(format!("/{}/{}/{}", words[a], words[b], words[c]));
        let d = (i * 7) % n;
        paths.push(format!(
            "/{}/{}/{}/{}",
            words[c], words[b], words[a], words[d]
        ));
        paths.push(format!(
            "/user/{}/{}/{}/{}",
            words[a], words[b], words[c], words[d]
        ));
        paths.push(format!(
            "/hub/{}/{}/{}/{}/x",
            words[a], words[b], words[c], words[d]
        ));
    }
    for p in &paths {
        assert_eq!(classify(p), reference(p), "{p}");
    }
    // Again in reverse, so the recent-template shortcut sees other sequences.
    for p in paths.iter().rev() {
        assert_eq!(classify(p), reference(p), "{p}");
    }
    let t = &*TRIE;
    let hot = |r: &str| t.templates.iter().position(|x| x.route == r).unwrap();
    assert!(t.unrivalled[hot("/hub/api/users/{user}/activity")]);
    assert!(t.unrivalled[hot("/user/{user}/{server}/api/kernels/{id}/channels")]);
}

#[test]
fn percent_decoding_keeps_malformed_escapes() {
    assert_eq!(percent_decode("a%40b"), "a@b");
    assert_eq!(percent_decode("a%4"), "a%4");
    assert_eq!(percent_decode("%zz"), "%zz");
}
