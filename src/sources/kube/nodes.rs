//! Node instance types (issue 7): a pod's node → its `node.kubernetes.io/instance-type` and
//! `topology.kubernetes.io/zone` labels, for the `pods` table's `instance_type` and `zone`.
//!
//! One `GET /api/v1/nodes/{name}` per node the pods watch sees, cached for the run ([`NodeCache`]
//! decides, pure; [`lookup`] is the call). Nodes are cluster-scoped: reading them needs a
//! ClusterRole with `nodes` get (`deploy/rbac.yaml`).
//!
//! # Guarantees
//! - Without that permission (401/403) the columns stay null: one warning, no further request,
//!   nothing else changes.
//! - A node that does not exist (404) is remembered as unknown (null columns, asked once); any
//!   other failure is not remembered, so the next observation of a pod on that node asks again.
//! - The cache is bounded ([`NODE_CAP`] nodes; beyond it, it starts over).

use std::collections::HashMap;

use k8s_openapi::api::core::v1::Node;
use kube::Api;

/// What the `pods` table takes from a node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeInfo {
    pub instance_type: Option<String>,
    pub zone: Option<String>,
}

/// A node's instance type and zone from its well-known labels (the `beta.` and
/// `failure-domain.` forms of older clusters as fallbacks).
pub fn node_info(n: &Node) -> NodeInfo {
    let labels = n.metadata.labels.as_ref();
    let label = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| labels.and_then(|l| l.get(*k)).cloned())
            .filter(|v| !v.is_empty())
    };
    NodeInfo {
        instance_type: label(&[
            "node.kubernetes.io/instance-type",
            "beta.kubernetes.io/instance-type",
        ]),
        zone: label(&[
            "topology.kubernetes.io/zone",
            "failure-domain.beta.kubernetes.io/zone",
        ]),
    }
}

/// The outcome of one node lookup.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    Found(NodeInfo),
    /// 404: no such node (deleted).
    Missing,
    /// 401/403: the agent may not read nodes.
    Denied(String),
    /// Anything else (network, 5xx): try again later.
    Failed(String),
}

/// The most nodes remembered.
pub const NODE_CAP: usize = 10_000;

/// Nodes looked up so far. Pure.
#[derive(Debug, Default)]
pub struct NodeCache {
    known: HashMap<String, NodeInfo>,
    denied: bool,
}

impl NodeCache {
    /// Whether `node` should be looked up now.
    pub fn needs(&self, node: &str) -> bool {
        !self.denied && !self.known.contains_key(node)
    }

    /// What is known of `node` (empty when unknown).
    pub fn info(&self, node: &str) -> NodeInfo {
        self.known.get(node).cloned().unwrap_or_default()
    }

    /// Takes a lookup's outcome; returns the warning to log, once, when nodes cannot be read.
    pub fn learn(&mut self, node: &str, l: Lookup) -> Option<String> {
        if self.known.len() >= NODE_CAP {
            self.known.clear();
        }
        match l {
            Lookup::Found(i) => {
                self.known.insert(node.to_string(), i);
                None
            }
            Lookup::Missing => {
                self.known.insert(node.to_string(), NodeInfo::default());
                None
            }
            Lookup::Denied(why) if !self.denied => {
                self.denied = true;
                Some(format!(
                    "pods: may not read nodes ({why}): instance_type and zone stay empty; \
                     grant nodes get/list/watch with the ClusterRole in deploy/rbac.yaml"
                ))
            }
            Lookup::Denied(_) | Lookup::Failed(_) => None,
        }
    }
}

/// How long one node lookup may hold up the pods watch.
pub const LOOKUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// `GET /api/v1/nodes/{name}`, at most [`LOOKUP_TIMEOUT`] (then `Failed`: asked again later).
pub async fn lookup(api: &Api<Node>, name: &str) -> Lookup {
    let Ok(got) = tokio::time::timeout(LOOKUP_TIMEOUT, api.get(name)).await else {
        return Lookup::Failed(format!("no answer within {LOOKUP_TIMEOUT:?}"));
    };
    match got {
        Ok(n) => Lookup::Found(node_info(&n)),
        Err(kube::Error::Api(s)) if s.code == 404 => Lookup::Missing,
        Err(kube::Error::Api(s)) if s.code == 401 || s.code == 403 => {
            Lookup::Denied(format!("HTTP {}: {}", s.code, s.message))
        }
        Err(e) => Lookup::Failed(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    fn node(labels: serde_json::Value) -> Node {
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "ip-10-0-1-7.ec2.internal", "labels": labels}}))
        .unwrap()
    }

    #[test]
    fn instance_type_and_zone_come_from_the_well_known_labels() {
        let n = node(json!({"kubernetes.io/hostname": "ip-10-0-1-7",
            "node.kubernetes.io/instance-type": "m5.xlarge",
            "beta.kubernetes.io/instance-type": "m4.large",
            "topology.kubernetes.io/zone": "us-east-1a"}));
        assert_eq!(
            node_info(&n),
            NodeInfo {
                instance_type: Some("m5.xlarge".into()),
                zone: Some("us-east-1a".into())
            }
        );
        let old = node(json!({"beta.kubernetes.io/instance-type": "n1-standard-4",
            "failure-domain.beta.kubernetes.io/zone": "europe-west1-b"}));
        assert_eq!(
            node_info(&old).instance_type.as_deref(),
            Some("n1-standard-4")
        );
        assert_eq!(node_info(&old).zone.as_deref(), Some("europe-west1-b"));
        assert_eq!(node_info(&node(json!({}))), NodeInfo::default());
    }

    #[test]
    fn a_node_is_asked_once_and_a_denial_stops_all_lookups_with_one_warning() {
        let mut c = NodeCache::default();
        assert!(c.needs("n1"));
        let i = NodeInfo {
            instance_type: Some("m5.xlarge".into()),
            zone: None,
        };
        assert_eq!(c.learn("n1", Lookup::Found(i.clone())), None);
        assert!(!c.needs("n1"));
        assert_eq!(c.info("n1"), i);
        // a failure is retried, a missing node is not
        assert_eq!(c.learn("n2", Lookup::Failed("timeout".into())), None);
        assert!(c.needs("n2"));
        assert_eq!(c.learn("n3", Lookup::Missing), None);
        assert!(!c.needs("n3"));
        assert_eq!(c.info("n3"), NodeInfo::default());
        let w = c.learn("n2", Lookup::Denied("HTTP 403: forbidden".into()));
        assert!(w.unwrap().contains("deploy/rbac.yaml"));
        assert_eq!(c.learn("n4", Lookup::Denied("HTTP 403".into())), None);
        assert!(!c.needs("n2") && !c.needs("n4"));
        // what was known stays known
        assert_eq!(c.info("n1"), i);
    }
}
