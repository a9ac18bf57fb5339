//! The `freshet` binary.
#![forbid(unsafe_code)]

fn main() {}
