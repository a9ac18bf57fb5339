//! A Kubernetes API server test bed (dev only): discovery, CRUD, watch,
//! patches, RBAC, and simulated controllers and a kubelet whose image pulls
//! resolve against a real registry.
//!
//! Start one in-process with [`TestCluster::start`], or run
//! `freshet-testbed serve` (see [`serve`]). `crates/testbed/DIVERGENCES.md`
//! lists every known way it differs from a real API server.
#![forbid(unsafe_code)]

pub mod admission;
pub mod api;
pub mod auth;
pub mod controllers;
pub mod discovery;
pub mod images;
pub mod kubeconfig;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod resources;
pub mod selector;
pub mod server;
pub mod status;
pub mod store;
pub mod table;
pub mod tls;
pub mod util;

pub use auth::{Token, User};
pub use controllers::NodeSpec;
pub use images::{ImagePullError, ImageResolver, PulledImage, RegistryResolver};
pub use server::{ClusterOptions, ServeArgs, ServerError, TestCluster, serve};
