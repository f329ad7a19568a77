//! The Zero to JupyterHub values hubpulse documents are valid for the chart: each snippet is
//! validated against the chart's own schema (fixtures/z2jh, vendored from the chart unchanged)
//! the way Helm validates an install, by tests/support/z2jh_validate.py (jsonschema + PyYAML, the
//! Datadog intake's venv). A misspelled key and a wrong type are refused, so the check is real.

use std::io::Write;
use std::process::Stdio;

use crate::support::root;

/// Every values snippet in the docs: `deploy/z2jh-values.yaml`, and in `README.md` and
/// `deploy/*.md` each fenced `yaml` block and each `<<'YAML'` heredoc that is not a Kubernetes
/// manifest (no `apiVersion`).
fn snippets() -> Vec<(String, String)> {
    let mut out = vec![(
        "deploy/z2jh-values.yaml".to_string(),
        std::fs::read_to_string(root().join("deploy/z2jh-values.yaml")).unwrap(),
    )];
    let mut docs = vec![root().join("README.md")];
    for e in std::fs::read_dir(root().join("deploy")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            docs.push(p);
        }
    }
    docs.sort();
    for doc in docs {
        let text = std::fs::read_to_string(&doc).unwrap();
        let name = doc.strip_prefix(root()).unwrap().display().to_string();
        let mut cur: Option<(usize, &str, String)> = None;
        for (i, line) in text.lines().enumerate() {
            match &mut cur {
                None if line.trim_start() == "```yaml" => cur = Some((i + 1, "```", String::new())),
                None if line.contains("<<'YAML'") => cur = Some((i + 1, "YAML", String::new())),
                None => {}
                Some((start, end, body)) => {
                    if line.trim() == *end {
                        if !body.contains("apiVersion:") {
                            out.push((format!("{name}:{start}"), std::mem::take(body)));
                        }
                        cur = None;
                    } else {
                        body.push_str(line);
                        body.push('\n');
                    }
                }
            }
        }
    }
    out
}

/// `(name, errors)` per snippet.
fn validate(snippets: &[(String, String)]) -> Vec<(String, Vec<String>)> {
    let input: Vec<serde_json::Value> = snippets
        .iter()
        .map(|(n, y)| serde_json::json!({"name": n, "yaml": y}))
        .collect();
    let mut child = std::process::Command::new(crate::support::prereq::dd_intake_python())
        .arg(root().join("tests/support/z2jh_validate.py"))
        .arg(root().join("fixtures/z2jh"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(&input).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "z2jh_validate.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let errors = v["errors"].as_array().unwrap();
            (
                v["name"].as_str().unwrap().to_string(),
                errors
                    .iter()
                    .map(|e| e.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect()
}

#[test]
fn documented_z2jh_values_are_valid_for_the_charts_schema() {
    let docs = snippets();
    // deploy/z2jh-values.yaml and the kind recipe's values in deploy/GETTING-STARTED.md at least.
    assert!(
        docs.len() >= 2,
        "{:?}",
        docs.iter().map(|d| &d.0).collect::<Vec<_>>()
    );
    assert!(
        docs.iter()
            .any(|(n, _)| n.starts_with("deploy/GETTING-STARTED.md"))
    );
    let results = validate(&docs);
    assert_eq!(results.len(), docs.len());
    for (name, errors) in &results {
        assert!(
            errors.is_empty(),
            "{name} is not valid for the chart: {errors:?}"
        );
    }
}

#[test]
fn the_schema_check_refuses_a_misspelled_key_and_a_wrong_type() {
    let bad = [
        ("typo".to_string(), "hub:\n  loadroles: {}\n".to_string()),
        (
            "type".to_string(),
            "scheduling:\n  userPlaceholder:\n    replicas: two\n".to_string(),
        ),
    ];
    let results = validate(&bad);
    assert!(
        results[0].1.iter().any(|e| e.contains("loadroles")),
        "{results:?}"
    );
    assert!(
        results[1].1.iter().any(|e| e.contains("replicas")),
        "{results:?}"
    );
}
