//! HTTP surfaces the controller serves besides its metrics: today the registry-webhook
//! receiver ([`webhooks`]). Each submodule exposes a `router` for the controller to
//! merge next to `/metrics`; none of them binds a socket itself.

pub mod webhooks;
