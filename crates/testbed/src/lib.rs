//! Test support shared by freshet's tests, benchmarks and demo (dev only).
//!
//! Owns the launcher for the real CNCF distribution registry (`registry`), the
//! token server it trusts (`registry::token`), the image pusher and fixture images
//! (`registry::push`, `registry::fixtures`), and a misbehaving registry for the
//! faults the real one cannot produce (`faults`), and the commands of the `freshet-testbed` binary: the demo
//! registry (`demo`) and the resolve benchmark (`bench`), and the tests' poll loop
//! (`wait`). Nothing in freshet's shipped
//! binary depends on this crate.
#![forbid(unsafe_code)]

pub mod bench;
pub mod demo;
pub mod faults;
pub mod git;
pub mod kubectl;
pub mod registry;
pub mod wait;
