//! Unit tests of the scrubbing rules, one syntax at a time. The corpus of real log lines is in
//! `fixtures/secrets/corpus.txt` (tests/it/scrub.rs); these pin each rule and each thing that
//! must *not* be scrubbed.

use super::*;

/// The scrubbed text (the input itself when nothing was scrubbed).
fn s(text: &str) -> String {
    scrub(text).unwrap_or_else(|| text.to_string())
}

#[test]
fn query_keys_jupyterhub_scrubs_and_ours() {
    assert_eq!(
        s("302 GET /hub/oauth_callback?code=abc123&state=eyJ4&next=%2Fhub%2F"),
        "302 GET /hub/oauth_callback?code=[secret]&state=[secret]&next=%2Fhub%2F"
    );
    // JupyterHub scrubs any parameter *containing* `key`, `auth`, ...: so do we.
    assert_eq!(
        s("GET /x?sort_key=name&page=2"),
        "GET /x?sort_key=[secret]&page=2"
    );
    assert_eq!(
        s("GET /x?password=hunter2&client_secret=cs1&jwt=e.y.J&_xsrf=2|ab|cd&user=alice"),
        "GET /x?password=[secret]&client_secret=[secret]&jwt=[secret]&_xsrf=[secret]&user=alice"
    );
    assert_eq!(s("GET /lab;token=t0k3n;x=1"), "GET /lab;token=[secret];x=1");
}

#[test]
fn nested_url_encoded_next_values() {
    assert_eq!(
        s("302 GET /hub/login?next=%2Fuser%2Fa%2Flab%3Ftoken%3Dabc123%26x%3D1 -> /hub/"),
        "302 GET /hub/login?next=%2Fuser%2Fa%2Flab%3Ftoken%3D[secret]%26x%3D1 -> /hub/"
    );
    assert_eq!(
        s("/hub/login?next=%2Fhub%2Flogin%3Fnext%3D%252Flab%253Ftoken%253Ddeadbeef%2526y%253D2"),
        "/hub/login?next=%2Fhub%2Flogin%3Fnext%3D%252Flab%253Ftoken%253D[secret]%2526y%253D2"
    );
}

#[test]
fn json_and_python_dicts() {
    assert_eq!(
        s(
            r#"{"access_token": "gho_abc", "token_type": "bearer", "refresh_token": "r1", "expires_in": 28800}"#
        ),
        r#"{"access_token": "[secret]", "token_type": "bearer", "refresh_token": "[secret]", "expires_in": 28800}"#
    );
    assert_eq!(
        s("{'token': 'abc', 'Authorization': 'token def', 'Cookie': 'session=ghi; _xsrf=jkl'}"),
        "{'token': '[secret]', 'Authorization': 'token [secret]', 'Cookie': 'session=[secret]; _xsrf=[secret]'}"
    );
    assert_eq!(
        s("{'id_token': b'eyJ.x', 'n': 1}"),
        "{'id_token': b'[secret]', 'n': 1}"
    );
    assert_eq!(
        s(r#"body="{\"password\": \"pw1\"}""#),
        r#"body="{\"password\": \"[secret]\"}""#
    );
    // Unquoted scalars go; `None` and structures stay (their own keys are looked at).
    assert_eq!(
        s("{'token': None, 'secret': 42}"),
        "{'token': None, 'secret': [secret]}"
    );
    assert_eq!(
        s("{'tokens': {'access_token': 'a1'}}"),
        "{'tokens': {'access_token': '[secret]'}}"
    );
}

#[test]
fn oauth_code_and_state_only_in_oauth_records() {
    let grant = "[D 2026-11-28 10:00:00.000 JupyterHub authorization_code:172] Created authorization code grant {'code': 'c0de', 'state': 'st4te'} for request";
    assert!(
        !s(grant).contains("c0de") && !s(grant).contains("st4te"),
        "{}",
        s(grant)
    );
    // Outside OAuth, `state` and `code` are ordinary words.
    let pod = "[D 2026-11-28 10:00:00.000 JupyterHub spawner:1] pod status {'state': 'Running'}";
    assert_eq!(s(pod), pod);
    let exit =
        "[W 2026-11-28 10:00:00.000 JupyterHub user:1] User alice server stopped with exit code: 1";
    assert_eq!(s(exit), exit);
}

#[test]
fn keyword_args_env_and_key_colon_value() {
    assert_eq!(
        s("HubOAuth(access_token='abc', api_url='http://hub:8081/hub/api')"),
        "HubOAuth(access_token='[secret]', api_url='http://hub:8081/hub/api')"
    );
    assert_eq!(
        s("env JUPYTERHUB_API_TOKEN=0123abcd JPY_COOKIE_SECRET=ff00 HOME=/home/jovyan"),
        "env JUPYTERHUB_API_TOKEN=[secret] JPY_COOKIE_SECRET=[secret] HOME=/home/jovyan"
    );
    assert_eq!(s("password: hunter2"), "password: [secret]");
    assert_eq!(
        s("token: abc123, user: alice"),
        "token: [secret], user: alice"
    );
    assert_eq!(
        s("--ServerApp.token=abc --ip=0.0.0.0"),
        "--ServerApp.token=[secret] --ip=0.0.0.0"
    );
}

#[test]
fn headers_keep_scheme_and_cookie_names() {
    assert_eq!(
        s("> Authorization: token abc"),
        "> Authorization: token [secret]"
    );
    assert_eq!(
        s("Authorization: Bearer eyJ.a.b"),
        "Authorization: Bearer [secret]"
    );
    assert_eq!(s("Authorization: abc"), "Authorization: [secret]");
    assert_eq!(
        s("X-Jupyterhub-Api-Token: abc"),
        "X-Jupyterhub-Api-Token: [secret]"
    );
    assert_eq!(
        s(
            "< Set-Cookie: jupyterhub-hub-login=2|1:0|10:17|x; expires=Mon, 01 Dec 2026 10:00:00 GMT; HttpOnly; Path=/hub/"
        ),
        "< Set-Cookie: jupyterhub-hub-login=[secret]; expires=Mon, 01 Dec 2026 10:00:00 GMT; HttpOnly; Path=/hub/"
    );
    assert_eq!(
        s("Cookie: jupyterhub-session-id=a1; _xsrf=b2"),
        "Cookie: jupyterhub-session-id=[secret]; _xsrf=[secret]"
    );
}

#[test]
fn userinfo_paths_and_messages() {
    assert_eq!(
        s("Connecting to db: postgresql://hub:pw0rd@db:5432/jupyterhub"),
        "Connecting to db: postgresql://hub:[secret]@db:5432/jupyterhub"
    );
    assert_eq!(
        s("200 GET /hub/api/authorizations/token/abcdef0123 (@10.0.0.1) 3.00ms"),
        "200 GET /hub/api/authorizations/token/[secret] (@10.0.0.1) 3.00ms"
    );
    assert_eq!(
        s("200 GET /hub/api/authorizations/cookie/jupyterhub-services/c00k1e (@::1) 3.00ms"),
        "200 GET /hub/api/authorizations/cookie/jupyterhub-services/[secret] (@::1) 3.00ms"
    );
    assert_eq!(
        s("Setting new xsrf cookie for b'5e55:c00c1e' {'path': '/hub/', 'max_age': 3600}"),
        "Setting new xsrf cookie for b'[secret]' {'path': '/hub/', 'max_age': 3600}"
    );
    assert_eq!(
        s("OAuth state mismatch: abc != def"),
        "OAuth state mismatch: [secret] != [secret]"
    );
    assert_eq!(
        s("Rejecting API request from: token abc"),
        "Rejecting API request from: token [secret]"
    );
    let none = "Rejecting API request from: no authorization";
    assert_eq!(s(none), none);
    assert_eq!(
        s("{'name': 'JUPYTERHUB_API_TOKEN', 'value': 'abc', 'value_from': None}"),
        "{'name': 'JUPYTERHUB_API_TOKEN', 'value': '[secret]', 'value_from': None}"
    );
}

#[test]
fn names_of_secrets_and_ordinary_messages_are_kept() {
    for line in [
        "[I 2026-11-28 10:00:00.000 JupyterHub app:1] Writing cookie_secret to /srv/jupyterhub/jupyterhub_cookie_secret",
        "[D 2026-11-28 17:05:25.241 oauthlib.oauth2.rfc6749.endpoints.authorization authorization:98] Dispatching",
        "[I 2026-11-28 10:00:00.000 JupyterHub auth:1] Deleting token a12 for alice",
        "[I 2026-11-28 10:00:00.000 JupyterHub app:1] Adding API token for service: jupyterhub-idle-culler",
        "GitHubOAuthenticator(token_url='https://github.com/login/oauth/access_token', cookie_secret_file='/srv/c')",
        "{'token_type': 'Bearer', 'expires_in': 3600}",
        "Upstream failure verifying auth token: [401] Unauthorized",
        "Adding route /user/alice -> http://10.0.0.7:8888",
        "200 GET /hub/api/users/alice/activity (alice@10.0.0.7) 2.00ms",
        "Setting cookie jupyterhub-session-id: {'httponly': True, 'path': '/'}",
    ] {
        assert_eq!(s(line), line);
    }
}

#[test]
fn scrubbing_is_idempotent_and_redactions_are_not_a_change() {
    let once =
        s("GET /x?token=abc&state=def Authorization: token ghi {'refresh_token': 'REDACTED'}");
    assert_eq!(scrub(&once), None, "{once}");
    assert!(once.contains("'refresh_token': 'REDACTED'"), "{once}");
    assert_eq!(scrub("GET /lab?token=..."), None);
}

#[test]
fn lines_without_a_key_word_are_not_looked_at() {
    assert!(!may_hold_secret(
        "200 GET /hub/api/users/alice/activity (alice@::1) 12.00ms"
    ));
    assert!(may_hold_secret("200 GET /hub/api/users?STATE=x"));
    assert!(secret_spans("User alice took 2.5 seconds to start").is_empty());
}

mod planted {
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]
        /// The fuzz target's check (`fuzz/fuzz_targets/secrets.rs`) as a property test, so that
        /// it runs with every `cargo test` (cargo-fuzz needs a nightly toolchain).
        #[test]
        fn a_planted_secret_never_survives(data in prop::collection::vec(any::<u8>(), 36..160)) {
            // 36 bytes always hold a value (at most 31) and the four choice bytes.
            prop_assert!(super::super::fuzz::check_planted(&data) || data.len() < 36);
        }
    }

    #[test]
    fn every_syntax_and_key_is_planted_and_scrubbed() {
        // Deterministically: each syntax × each key × each case, with a fixed value and noise.
        for syntax in 0..30u8 {
            for key in 0..22u8 {
                for case in 0..3u8 {
                    let mut data = vec![syntax, key, case, 4];
                    data.extend_from_slice(b"Zq9x7Wv5Ut3s ab'c\"d=e");
                    assert!(super::super::fuzz::check_planted(&data), "{data:?}");
                }
            }
        }
    }
}
