//! Test support shared by freshet's tests, benchmarks and demo (dev only).
//!
//! Owns the launcher for the real CNCF distribution registry (`registry`), the
//! token server it trusts (`registry::token`), the test image model, pusher and
//! fixture images (`registry::image`, `registry::push`, `registry::fixtures`), a
//! misbehaving registry for the faults the real one cannot produce (`faults`), the
//! commands of the `freshet-testbed` binary (the demo registry, `demo`, and the
//! resolve benchmark, `bench`), and the tests' helpers: the poll loop (`wait`), the
//! real `kubectl` and `git` (`kubectl`, `git`), and a Git server over HTTP that
//! demands basic auth (`git_http`). Nothing in freshet's shipped binary
//! depends on this crate, and this crate must not depend on the API test bed
//! (`freshet-apiserver`): registry tests would build it.
#![forbid(unsafe_code)]

pub mod bench;
pub mod bench_scale;
pub mod demo;
pub mod faults;
pub mod git;
pub mod git_http;
pub mod kubectl;
pub mod registry;
pub mod wait;
