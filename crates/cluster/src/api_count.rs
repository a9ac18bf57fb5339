//! Counting the Kubernetes API requests a client sends, on the wire.
//!
//! Owns [`ApiCounter`], a tower layer put under a `kube::Client` ([`counted_client`])
//! that counts each request by verb (LIST, WATCH, GET, PATCH, create, other), read
//! from its method, path and query only, and the most PATCHes in flight at once. A
//! pass reports the difference between two [`ApiCounts`] so that "a steady pass
//! sends no LIST" and "writes stay within their bound" are facts, measured where
//! the requests leave. Must not change, delay or read the body of any request.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use serde::Serialize;

/// Counts the requests of every client built over it; clones share the counts.
#[derive(Debug, Clone, Default)]
pub struct ApiCounter {
    inner: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    lists: AtomicU64,
    watches: AtomicU64,
    gets: AtomicU64,
    patches: AtomicU64,
    creates: AtomicU64,
    other: AtomicU64,
    patches_in_flight: AtomicU64,
    max_patches_in_flight: AtomicU64,
}

/// The counts at one moment (or, from [`ApiCounts::since`], of one interval).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ApiCounts {
    /// Collection GETs without `watch`.
    pub lists: u64,
    /// Collection GETs with `watch`.
    pub watches: u64,
    /// Object GETs.
    pub gets: u64,
    /// PATCHes.
    pub patches: u64,
    /// POSTs (Events, leases).
    pub creates: u64,
    /// PUT, DELETE and the rest (discovery, version).
    pub other: u64,
    /// The most PATCHes in flight at once since the counter was made.
    pub max_patches_in_flight: u64,
}

impl ApiCounts {
    /// The requests sent since `earlier` (the in-flight maximum is kept as is).
    pub fn since(self, earlier: ApiCounts) -> ApiCounts {
        ApiCounts {
            lists: self.lists.saturating_sub(earlier.lists),
            watches: self.watches.saturating_sub(earlier.watches),
            gets: self.gets.saturating_sub(earlier.gets),
            patches: self.patches.saturating_sub(earlier.patches),
            creates: self.creates.saturating_sub(earlier.creates),
            other: self.other.saturating_sub(earlier.other),
            max_patches_in_flight: self.max_patches_in_flight,
        }
    }
}

impl ApiCounter {
    /// The counts now.
    pub fn snapshot(&self) -> ApiCounts {
        let c = &self.inner;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ApiCounts {
            lists: get(&c.lists),
            watches: get(&c.watches),
            gets: get(&c.gets),
            patches: get(&c.patches),
            creates: get(&c.creates),
            other: get(&c.other),
            max_patches_in_flight: get(&c.max_patches_in_flight),
        }
    }

    fn count(&self, verb: Verb) {
        let c = &self.inner;
        let counter = match verb {
            Verb::List => &c.lists,
            Verb::Watch => &c.watches,
            Verb::Get => &c.gets,
            Verb::Patch => &c.patches,
            Verb::Create => &c.creates,
            Verb::Other => &c.other,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if verb == Verb::Patch {
            let now = c.patches_in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            c.max_patches_in_flight.fetch_max(now, Ordering::SeqCst);
        }
    }

    fn done(&self, verb: Verb) {
        if verb == Verb::Patch {
            self.inner.patches_in_flight.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    List,
    Watch,
    Get,
    Patch,
    Create,
    Other,
}

/// The verb of a request to a resource path (`/api/v1/…`, `/apis/g/v/…`).
fn verb(method: &http::Method, path: &str, query: Option<&str>) -> Verb {
    match *method {
        http::Method::PATCH => return Verb::Patch,
        http::Method::POST => return Verb::Create,
        http::Method::GET => {}
        _ => return Verb::Other,
    }
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let rest = match segments.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => return Verb::Other,
    };
    // `namespaces/<ns>/<resource>…` is a namespaced path; `namespaces` alone or
    // `namespaces/<ns>` is the namespace resource itself.
    let rest = match rest {
        ["namespaces", _ns, tail @ ..] if !tail.is_empty() => tail,
        other => other,
    };
    match rest.len() {
        0 => Verb::Other,
        1 => {
            let watch = query.is_some_and(|q| {
                q.split('&')
                    .any(|kv| kv == "watch=true" || kv == "watch=1" || kv == "watch")
            });
            if watch { Verb::Watch } else { Verb::List }
        }
        _ => Verb::Get,
    }
}

impl<S> tower::Layer<S> for ApiCounter {
    type Service = Counted<S>;

    fn layer(&self, inner: S) -> Counted<S> {
        Counted {
            inner,
            counter: self.clone(),
        }
    }
}

/// A service that counts its requests (see [`ApiCounter`]).
#[derive(Debug, Clone)]
pub struct Counted<S> {
    inner: S,
    counter: ApiCounter,
}

impl<S, B> tower::Service<http::Request<B>> for Counted<S>
where
    S: tower::Service<http::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let verb = verb(req.method(), req.uri().path(), req.uri().query());
        self.counter.count(verb);
        let counter = self.counter.clone();
        let fut = self.inner.call(req);
        Box::pin(async move {
            // Counted down however the request ends, dropped futures included.
            let _done = Done { counter, verb };
            fut.await
        })
    }
}

struct Done {
    counter: ApiCounter,
    verb: Verb,
}

impl Drop for Done {
    fn drop(&mut self) {
        self.counter.done(self.verb);
    }
}

/// A client from `config` whose requests `counter` counts.
pub fn counted_client(
    config: kube::Config,
    counter: &ApiCounter,
) -> Result<kube::Client, kube::Error> {
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(counter)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_come_from_method_path_and_query() {
        let get = http::Method::GET;
        let cases = [
            (
                &get,
                "/apis/apps/v1/deployments",
                Some("limit=500"),
                Verb::List,
            ),
            (
                &get,
                "/apis/apps/v1/namespaces/a/deployments",
                None,
                Verb::List,
            ),
            (
                &get,
                "/apis/apps/v1/namespaces/a/deployments/web",
                None,
                Verb::Get,
            ),
            (
                &get,
                "/apis/apps/v1/deployments",
                Some("watch=true&resourceVersion=5"),
                Verb::Watch,
            ),
            (&get, "/api/v1/namespaces", None, Verb::List),
            (&get, "/api/v1/namespaces/a", None, Verb::Get),
            (
                &get,
                "/api/v1/namespaces/a/serviceaccounts/default",
                None,
                Verb::Get,
            ),
            (&get, "/version", None, Verb::Other),
            (
                &http::Method::PATCH,
                "/apis/apps/v1/namespaces/a/deployments/web",
                None,
                Verb::Patch,
            ),
            (
                &http::Method::POST,
                "/apis/events.k8s.io/v1/namespaces/a/events",
                None,
                Verb::Create,
            ),
            (
                &http::Method::PUT,
                "/apis/coordination.k8s.io/v1/namespaces/a/leases/x",
                None,
                Verb::Other,
            ),
        ];
        for (method, path, query, want) in cases {
            assert_eq!(verb(method, path, query), want, "{method} {path} {query:?}");
        }
    }

    #[test]
    fn since_subtracts_counts_and_keeps_the_maximum() {
        let a = ApiCounts {
            lists: 3,
            patches: 10,
            max_patches_in_flight: 4,
            ..ApiCounts::default()
        };
        let b = ApiCounts {
            lists: 5,
            patches: 30,
            max_patches_in_flight: 16,
            ..ApiCounts::default()
        };
        let d = b.since(a);
        assert_eq!((d.lists, d.patches, d.max_patches_in_flight), (2, 20, 16));
    }
}
