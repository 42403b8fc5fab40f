//! Fault injection: failing, slowing down, forbidding and authenticating requests.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::RequestRecord;
use crate::error::ApiError;

/// Selects requests by any combination of verb, group, resource, subresource,
/// namespace and name; unset fields match anything.
///
/// ```
/// # use test_apiserver::RequestMatcher;
/// let m = RequestMatcher::verb("patch").group("apps").resource("deployments").subresource("status");
/// let everything = RequestMatcher::any();
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestMatcher {
    pub verb: Option<String>,
    pub group: Option<String>,
    pub resource: Option<String>,
    pub subresource: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
}

impl RequestMatcher {
    /// Matches every request (including discovery).
    pub fn any() -> Self {
        Self::default()
    }

    /// Matches requests with this Kubernetes verb (get, list, watch, create, update, patch, delete, deletecollection).
    pub fn verb(verb: &str) -> Self {
        Self::any().with_verb(verb)
    }

    pub fn with_verb(mut self, verb: &str) -> Self {
        self.verb = Some(verb.into());
        self
    }

    /// The API group ("" for core).
    pub fn group(mut self, group: &str) -> Self {
        self.group = Some(group.into());
        self
    }

    /// The plural resource name, e.g. "deployments".
    pub fn resource(mut self, resource: &str) -> Self {
        self.resource = Some(resource.into());
        self
    }

    pub fn subresource(mut self, subresource: &str) -> Self {
        self.subresource = Some(subresource.into());
        self
    }

    pub fn namespace(mut self, namespace: &str) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.into());
        self
    }

    pub fn matches(&self, request: &RequestRecord) -> bool {
        let field = |want: &Option<String>, have: Option<&str>| {
            want.as_deref().is_none_or(|w| Some(w) == have)
        };
        field(&self.verb, Some(&request.verb))
            && field(&self.group, Some(&request.group))
            && field(&self.resource, Some(&request.resource))
            && field(&self.subresource, request.subresource.as_deref())
            && field(&self.namespace, request.namespace.as_deref())
            && field(&self.name, request.name.as_deref())
    }
}

#[derive(Debug, Default)]
struct FaultState {
    /// (matcher, HTTP status, remaining count)
    failures: Vec<(RequestMatcher, u16, usize)>,
    delays: Vec<(RequestMatcher, Duration)>,
    forbidden: Vec<RequestMatcher>,
    token: Option<String>,
}

/// The faults a server currently injects. All methods take `&self`.
#[derive(Debug, Default)]
pub struct Faults {
    state: Mutex<FaultState>,
}

impl Faults {
    fn lock(&self) -> MutexGuard<'_, FaultState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next `count` matching requests fail with `status` and a proper
    /// `Status` body. Note that kube's default client retries 429/503/504
    /// transparently, so use e.g. 500 or 409 to make a single failure visible.
    pub fn fail_next(&self, matcher: RequestMatcher, status: u16, count: usize) {
        self.lock().failures.push((matcher, status, count));
    }

    /// Adds latency to every matching request (a slow member).
    pub fn delay(&self, matcher: RequestMatcher, delay: Duration) {
        self.lock().delays.push((matcher, delay));
    }

    /// Answers matching requests with 403 Forbidden until [`Faults::clear`].
    pub fn forbid(&self, matcher: RequestMatcher) {
        self.lock().forbidden.push(matcher);
    }

    /// Requires `Authorization: Bearer <token>` (401 otherwise); `None` lifts it.
    pub fn require_token(&self, token: Option<String>) {
        self.lock().token = token;
    }

    pub fn required_token(&self) -> Option<String> {
        self.lock().token.clone()
    }

    /// Removes every fault, including the token requirement.
    pub fn clear(&self) {
        *self.lock() = FaultState::default();
    }

    /// The total delay to add to a request.
    pub(crate) fn delay_for(&self, request: &RequestRecord) -> Duration {
        self.lock()
            .delays
            .iter()
            .filter(|(m, _)| m.matches(request))
            .map(|(_, d)| *d)
            .sum()
    }

    /// The error to answer instead of serving the request, if any. Consumes one
    /// `fail_next` count when it applies.
    pub(crate) fn check(&self, request: &RequestRecord, bearer: Option<&str>) -> Option<ApiError> {
        let mut state = self.lock();
        if let Some(token) = &state.token
            && bearer != Some(token.as_str())
        {
            return Some(ApiError::new(401, "Unauthorized"));
        }
        if state.forbidden.iter().any(|m| m.matches(request)) {
            return Some(ApiError::new(
                403,
                format!(
                    "{} \"{}\" is forbidden: User \"system:serviceaccount:test:restricted\" cannot {} resource \"{}\" in API group \"{}\"",
                    request.resource,
                    request.name.as_deref().unwrap_or_default(),
                    request.verb,
                    request.resource,
                    request.group
                ),
            ));
        }
        let failure = state
            .failures
            .iter_mut()
            .find(|(m, _, left)| *left > 0 && m.matches(request))?;
        failure.2 -= 1;
        let status = failure.1;
        state.failures.retain(|(_, _, left)| *left > 0);
        Some(ApiError::new(
            status,
            format!("injected fault: HTTP {status}"),
        ))
    }
}
