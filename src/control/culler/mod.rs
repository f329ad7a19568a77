//! The idle culler: pure decisions ([`decide`]) over the hub's own activity, a runner that
//! confirms with the hub before it stops anything, and the record stream it watches.

pub mod decide;
pub mod runner;
pub mod stream;
