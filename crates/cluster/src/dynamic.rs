//! One `kube::Resource` implementation for the crate's slim wire types
//! ([`crate::workloads::SlimWorkload`], the pods, nodes and owners of
//! [`crate::observed::slim`]): typed at run time by an `ApiResource`, so each can be
//! listed and watched with `Api::all_with` / `Api::namespaced_with` while serde keeps
//! only the fields freshet reads.
//!
//! Owns the `dynamic_resource!` macro and nothing else; it must not grow behaviour.

/// Implements `kube::Resource` for `$t`, whose `ObjectMeta` is at `self.$meta`.
macro_rules! dynamic_resource {
    ($t:ty, $($meta:tt)+) => {
        impl ::kube::Resource for $t {
            type DynamicType = ::kube::core::ApiResource;
            type Scope = ::kube::core::DynamicResourceScope;

            fn kind(dt: &::kube::core::ApiResource) -> ::std::borrow::Cow<'_, str> {
                dt.kind.as_str().into()
            }
            fn group(dt: &::kube::core::ApiResource) -> ::std::borrow::Cow<'_, str> {
                dt.group.as_str().into()
            }
            fn version(dt: &::kube::core::ApiResource) -> ::std::borrow::Cow<'_, str> {
                dt.version.as_str().into()
            }
            fn api_version(dt: &::kube::core::ApiResource) -> ::std::borrow::Cow<'_, str> {
                dt.api_version.as_str().into()
            }
            fn plural(dt: &::kube::core::ApiResource) -> ::std::borrow::Cow<'_, str> {
                dt.plural.as_str().into()
            }
            fn meta(&self) -> &::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &self.$($meta)+
            }
            fn meta_mut(
                &mut self,
            ) -> &mut ::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &mut self.$($meta)+
            }
        }
    };
}
