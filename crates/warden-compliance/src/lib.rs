//! Warden's compliance evidence, without I/O and without reading the clock: the shipped
//! control catalogs (SOC 2, HIPAA) and the automated tests that evidence them, computed from
//! the audit log's own events over a period.
//!
//! A test is a pure function of the events (in sequence order), the period, the parameters
//! (limits such as the time allowed to deprovision a leaver) and a few observations the
//! server makes beside the log (the settings in force, the signed checkpoints, whether each
//! session recording still hashes to what the log recorded). The server and an offline
//! verifier run the same code over the same inputs, so an auditor who holds the events and
//! the log's public key can recompute every result.
//!
//! Each test yields a population (every sign-in, every leaver, every grant …), the
//! exceptions among it with the events they rest on, and what is still pending (a grant not
//! yet due to end when the period closes). A test passes when it has no exception.
//!
//! Threat model: the events come from Warden's own log, whose integrity the audit crate
//! proves; the tests read them defensively (an unexpected shape is no evidence, never a
//! panic). Observations are the server's statement and are marked as such wherever they are
//! shown. What the tests cannot see (systems that do not sign in through Warden) each control
//! states plainly.

pub mod bundle;
mod catalog;
mod checks;
mod evaluate;
mod event;
mod period;
mod report;
mod test_id;

pub use catalog::{Catalog, CatalogError, Control, Framework, UnknownControl, UnknownFramework};
pub use evaluate::{Evaluator, evaluate};
pub use period::{Period, PeriodError};
pub use report::{
    CheckpointSeen, Item, Observations, Parameters, RecordingState, Settings, TestResult, human,
};
pub use test_id::{TestId, UnknownTest};
