//! Every table of the lake and its Arrow schema, in one place: the writers and the readers
//! (DataFusion is given each schema explicitly: a fresh, empty lake has nothing to infer from).
//!
//! * [`events`]: one row per log record, through the manifest (with `lifecycle`, `activity`).
//! * [`decisions`], [`observations`], [`pods`]: the side tables, written as whole parts
//!   outside the manifest.
//!
//! Column documentation lives in README.md ("The lake"); keep the two in step.

pub mod decisions;
pub mod events;
pub mod observations;
pub mod pods;
mod side;

/// The directories of the tables written through the manifest, under the lake root.
pub const ALL: [&str; 3] = [events::EVENTS, "lifecycle", "activity"];

pub use side::{SideRoot, publish};
