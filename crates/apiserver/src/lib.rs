//! A Kubernetes API server test bed (dev only).
#![forbid(unsafe_code)]
