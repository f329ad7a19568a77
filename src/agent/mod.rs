//! `hubpulse run`: the live agent (sources → parse → lake, with exactly-once checkpoints).

pub mod kube;
