//! The pod name KubeSpawner gives a user's server, to pair a logged profile with its session.
//!
//! The hub logs the chosen profile (`Applying KubeSpawner override for profile '…'`, DEBUG) and
//! then `Attempting to create pod <name>`; the session is known by user and server name. The pod
//! name is `pod_name_template` expanded with the *escaped* names, and the escaping changed:
//!
//! * **`escape` scheme** (`jupyterhub/kubespawner` ≤ 6.2.0 `spawner.py`
//!   `_expand_user_properties`, template `jupyter-{username}--{servername}` with trailing `-`
//!   stripped; and 7.x with `slug_scheme = "escape"`, `slugs.py` `escape_slug`): every
//!   character outside `[a-z0-9]` becomes `-` and the upper-case hex of each of its UTF-8 bytes
//!   (`minrk/escapism` `escape`), then the whole is lower-cased: `frank@example.org` →
//!   `jupyter-frank-40example-2eorg`, `Alice` → `jupyter--41lice`.
//! * **`safe` scheme** (the default from KubeSpawner 7.0.0, `slugs.py` `safe_slug`,
//!   `multi_slug`, `spawner.py` `_expand_user_properties`, template `jupyter-{user_server}`): a
//!   name that is already a valid DNS label without `--` (and ≤ 48 characters) is kept; any other
//!   is lower-cased, runs of characters outside `[a-z0-9]` become one `-`, it is cut to fit and
//!   gets `---` and the first 8 hex digits of its SHA-256: `frank@example.org` →
//!   `jupyter-frank-example-org---80ca8af6`. A named server is `{user}--{server}`; when the two
//!   slugs with `--` exceed 48 characters, both names are cut and one hash of both is appended.
//!
//! [`pod_names`] gives both candidates; a pod matches a server when its name (namespace
//! stripped) equals one. Plain lower-case names give the same name under both schemes. The
//! expected values in the tests were computed with the upstream `slugs.py` (7.1.0) and
//! `escapism.py`.
//!
//! Assumption: the default `pod_name_template`. A deployment that sets its own template gets no
//! pairing (its sessions cost the default profile, as documented in the README).

use std::fmt::Write as _;

/// KubeSpawner's `_slug_max_length` in `_expand_user_properties` (7.x).
const SLUG_MAX: usize = 48;
/// Hex digits of the hash suffix (`slugs.py` `_hash_length`).
const HASH_LEN: usize = 8;

/// The pod names of `user`'s server `server` (`""` = default) under the `safe` and the
/// `escape` scheme (equal for plain lower-case names).
pub fn pod_names(user: &str, server: &str) -> [String; 2] {
    [
        format!("jupyter-{}", safe_user_server(user, server)),
        format!("jupyter-{}", escaped_user_server(user, server)),
    ]
}

/// The `escape` scheme's `{username}--{servername}`, or `{username}` for the default server.
fn escaped_user_server(user: &str, server: &str) -> String {
    if server.is_empty() {
        escape_slug(user)
    } else {
        format!("{}--{}", escape_slug(user), escape_slug(server))
    }
}

/// `escapism.escape(name, safe=[a-z0-9], escape_char='-').lower()`.
fn escape_slug(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "-{b:x}");
            }
        }
    }
    out
}

/// The `safe` scheme's `safe_user_server`.
fn safe_user_server(user: &str, server: &str) -> String {
    let su = safe_slug(user, SLUG_MAX);
    let ss = if server.is_empty() {
        String::new()
    } else {
        safe_slug(server, SLUG_MAX)
    };
    if su.len() + ss.len() + 2 > SLUG_MAX {
        multi_slug(&[user, server], SLUG_MAX)
    } else if server.is_empty() {
        su
    } else {
        format!("{su}--{ss}")
    }
}

fn sha256_prefix(parts: &[&[u8]]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for p in parts {
        ctx.update(p);
    }
    let d = ctx.finish();
    let mut hex = String::with_capacity(64);
    for b in d.as_ref() {
        let _ = write!(hex, "{b:02x}");
    }
    hex.truncate(HASH_LEN);
    hex
}

/// `slugs.py` `is_valid_object_name`: 1–63 characters of `[a-z0-9-]`, starting with a letter,
/// ending with a letter or digit.
fn is_valid_object_name(s: &str) -> bool {
    let ok = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && ok(b[b.len() - 1])
        && b.iter().all(|&c| ok(c) || c == b'-')
}

/// `slugs.py` `_extract_safe_name`.
fn extract_safe_name(name: &str, max: usize) -> String {
    let lower = name.to_lowercase();
    let mut s = String::with_capacity(lower.len());
    let mut in_run = false;
    for c in lower.chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            s.push(c);
            in_run = false;
        } else if !in_run {
            s.push('-');
            in_run = true;
        }
    }
    // All ASCII now: byte slicing is character slicing.
    let s = s.trim_start_matches('-');
    let s = s[..s.len().min(max)].trim_end_matches('-');
    let s = if !s.is_empty() && !s.as_bytes()[0].is_ascii_lowercase() {
        format!("x-{}", &s[..s.len().min(max.saturating_sub(2))])
    } else {
        s.to_string()
    };
    if s.is_empty() { "x".into() } else { s }
}

/// `slugs.py` `strip_and_hash`.
fn strip_and_hash(name: &str, max: usize) -> String {
    let keep = max.saturating_sub(HASH_LEN + 3).max(1);
    format!(
        "{}---{}",
        extract_safe_name(name, keep),
        sha256_prefix(&[name.as_bytes()])
    )
}

/// `slugs.py` `safe_slug(name, max_length=max)`.
fn safe_slug(name: &str, max: usize) -> String {
    if !name.contains("--") && is_valid_object_name(name) && name.len() <= max {
        name.to_string()
    } else {
        strip_and_hash(name, max)
    }
}

/// `slugs.py` `multi_slug(names, max_length=max)`: one hash over the names joined by `0xFF`.
fn multi_slug(names: &[&str], max: usize) -> String {
    let mut parts: Vec<&[u8]> = Vec::with_capacity(names.len() * 2);
    for (i, n) in names.iter().enumerate() {
        if i > 0 {
            parts.push(&[0xff]);
        }
        parts.push(n.as_bytes());
    }
    let hash = sha256_prefix(&parts);
    let per_name = (max - (HASH_LEN + 1)) / names.len();
    let each = per_name.saturating_sub(2);
    let slugs: Vec<String> = names.iter().map(|n| extract_safe_name(n, each)).collect();
    format!("{}---{hash}", slugs.join("--"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected values printed by kubespawner 7.1.0's `slugs.py` (`safe`, through the
    /// `_expand_user_properties` logic) and by 6.2.0's template over `escapism.escape`.
    #[test]
    fn pod_names_equal_kubespawners_for_plain_email_and_odd_names() {
        let cases: [(&str, &str, &str, &str); 14] = [
            ("alice", "", "jupyter-alice", "jupyter-alice"),
            ("alice", "gpu", "jupyter-alice--gpu", "jupyter-alice--gpu"),
            (
                "frank@example.org",
                "",
                "jupyter-frank-example-org---80ca8af6",
                "jupyter-frank-40example-2eorg",
            ),
            (
                "frank@example.org",
                "analysis",
                "jupyter-frank-example-org---80ca8af6--analysis",
                "jupyter-frank-40example-2eorg--analysis",
            ),
            (
                "XXXXXX@mail.tau.ac.il",
                "",
                "jupyter-xxxxxx-mail-tau-ac-il---0ce735d6",
                "jupyter--58-58-58-58-58-58-40mail-2etau-2eac-2eil",
            ),
            ("Alice", "", "jupyter-alice---3bc51062", "jupyter--41lice"),
            (
                "ana.lopez@example.org",
                "gpu",
                "jupyter-ana-lopez-example-org---c2c46c1b--gpu",
                "jupyter-ana-2elopez-40example-2eorg--gpu",
            ),
            (
                "j.smith@example.org",
                "",
                "jupyter-j-smith-example-org---8a94c40b",
                "jupyter-j-2esmith-40example-2eorg",
            ),
            ("a--b", "", "jupyter-a-b---90827a2e", "jupyter-a-2d-2db"),
            (
                "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                "",
                "jupyter-xxxxxxxxxxxxxxxxx--x---cfcbdd85",
                "jupyter-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            ),
            (
                "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                "analysis-long-name",
                "jupyter-xxxxxxxxxxxxxxxxx--analysis-long-nam---bdcfb9a7",
                "jupyter-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx--analysis-2dlong-2dname",
            ),
            (
                "bob",
                "My Server",
                "jupyter-bob--my-server---c2d9a82f",
                "jupyter-bob---4dy-20-53erver",
            ),
            ("1user", "", "jupyter-x-1user---b5732d84", "jupyter-1user"),
            (
                "user0001",
                "scratch",
                "jupyter-user0001--scratch",
                "jupyter-user0001--scratch",
            ),
        ];
        for (user, server, safe, escape) in cases {
            assert_eq!(
                pod_names(user, server),
                [safe.to_string(), escape.to_string()],
                "{user:?} {server:?}"
            );
        }
    }
}
