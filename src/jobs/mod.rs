//! Job handlers, one file per queue. See [`crate::queue`] for who
//! produces each job.

pub mod execute;
pub mod workflow_step;
