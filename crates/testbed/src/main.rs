//! `freshet-testbed`: run freshet's test bed by hand (registry with example images,
//! Kubernetes API test bed).
#![forbid(unsafe_code)]

fn main() {}
