//! Tools that measure and torture hookd. [`receiver`] is the chaotic (or fast) webhook receiver
//! that the reliability scenarios and the benchmark send to.

pub mod receiver;
