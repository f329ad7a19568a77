//! hubpulse's integration tests: one binary, one module per behaviour area.
//! They run the real binary or the library against real files, real lakes and real servers.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod admission_cache;
mod admission_wait;
mod agent;
mod capacity;
mod cli;
mod cli_edges;
mod cli_help;
mod cli_pipes;
mod cull;
mod cull_admission;
mod cull_common;
mod dd_agent;
mod dd_common;
mod dd_dashboards;
mod dd_derive;
mod dd_payload;
mod dd_sink;
mod dd_truth;
mod disk_full;
mod golden;
mod grounding;
mod http_limits;
mod hub_api;
mod ingest_files;
mod kube_fixtures;
mod kube_source;
mod lake;
mod migrate;
mod month_truth;
mod observe;
mod pods_table;
mod queries;
mod quota_trust;
mod readers;
mod real_hub;
mod report;
mod report_observed;
mod rotation;
mod roundtrip;
mod s3;
mod scale;
mod scrub;
mod support;
mod z2jh_values;
