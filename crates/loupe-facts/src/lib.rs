//! Normalization: from audit events to typed pod facts, the vocabulary spans and rules match.
//!
//! Two steps, both pure:
//! 1. [`observe`] turns one decoded audit event into an [`Observation`]: what that single
//!    request says, owned, with no knowledge of what came before.
//! 2. [`PodState::apply`] folds observations of one pod, in event-time order, into the
//!    [`Fact`]s that changed (a condition *became* True, a finalizer was *removed*…).
//!
//! The vocabulary is documented in `docs/facts.md`; its JSON form is a stable contract.

mod fact;
mod observe;
mod small_map;
mod state;

pub use fact::{Actor, ContainerSpec, Fact, FactRecord, Field, Owner, PodCreated, VolumeSpec};
pub use observe::{
    observe, ContainerObs, EventObs, InvolvedRef, NodeObs, Observation, ObservedBody, PodSnapshot,
    PvcObs, RunState, Subject,
};
pub use small_map::SmallMap;
pub use state::{ContainerRecord, PodState};
