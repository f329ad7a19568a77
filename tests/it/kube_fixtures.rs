//! The Kubernetes objects of `fixtures/kube/` (reconstructed from published real objects, see
//! its README), for the scripted API servers: JSON documents served as list/GET answers, and
//! `.jsonl` watch streams replayed line by line as the API server sends them.

use serde_json::Value;

fn path(name: &str) -> std::path::PathBuf {
    crate::support::root().join("fixtures/kube").join(name)
}

/// A JSON fixture (a `…List`, a `Node`, a `Scale`).
pub fn json(name: &str) -> Value {
    let text = std::fs::read_to_string(path(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The lines of a watch stream fixture, each one watch event (`{"type": …, "object": …}`),
/// byte for byte as stored.
pub fn watch_lines(name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(path(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let lines: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    for l in &lines {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{name}: {e}: {l}"));
        assert!(
            v["type"].is_string() && v["object"].is_object(),
            "{name}: {l}"
        );
    }
    lines
}

/// The watch events of a stream fixture, parsed.
pub fn watch_events(name: &str) -> Vec<Value> {
    watch_lines(name)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A list fixture's `metadata.resourceVersion`.
pub fn list_rv(list: &Value) -> String {
    list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string()
}
