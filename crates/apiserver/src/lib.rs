//! A Kubernetes API server test bed (dev only): discovery, CRUD, watch,
//! patches, RBAC, and simulated controllers and a kubelet whose image pulls
//! resolve against a real registry.
//!
//! Start one in-process with [`TestCluster::start`], or run
//! `freshet-apiserver serve` (see [`serve`]). `crates/testbed/DIVERGENCES.md`
//! lists every known way it differs from a real API server.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use freshet_apiserver::{ClusterOptions, TestCluster};
//!
//! // HTTPS on 127.0.0.1, nodes amd64, amd64, arm64, images resolved against
//! // the real registries they name (use `.resolver(..)` to fake them).
//! let cluster = TestCluster::start(ClusterOptions::default().crash_image("127.0.0.1:5000/team/api:bad")).await?;
//! // kubectl: `kubectl --kubeconfig <cluster.kubeconfig_path()> get nodes`.
//! // kube: deserialize `cluster.admin_kubeconfig()` into `kube::config::Kubeconfig`,
//! // then `kube::Config::from_custom_kubeconfig(..)` and `kube::Client::try_from(..)`.
//! // A least-privilege client: `cluster.service_account_kubeconfig("apps", "freshet")`.
//! let kubeconfig = cluster.admin_kubeconfig();
//! # let _ = kubeconfig;
//! # Ok(())
//! # }
//! ```
//!
//! Everything stops when the [`TestCluster`] drops.
#![forbid(unsafe_code)]

pub mod admission;
pub mod api;
pub mod auth;
pub mod controllers;
pub mod crds;
pub mod discovery;
pub mod fieldmanager;
pub mod gotext;
pub mod images;
pub mod kubeconfig;
pub mod measure;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod resources;
pub mod schema;
pub mod selector;
pub mod server;
pub mod status;
pub mod store;
pub mod table;
pub mod tls;
pub mod util;
pub mod validation;

pub use api::{WriteCall, WriteHook};
pub use auth::{Token, User};
pub use controllers::{NodeSpec, PullRecord};
pub use images::{ImagePullError, ImageResolver, PulledImage, RegistryResolver};
pub use server::{ClusterOptions, ServeArgs, ServerError, TestCluster, serve};
