//! HTTP layer: URL parsing into Kubernetes request attributes, fault
//! handling, access logging, and dispatch to the store.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue, USER_AGENT};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use crate::error::{ApiError, success_status};
use crate::paging;
use crate::patch::PatchKind;
use crate::registry::ResourceType;
use crate::selector::{FieldSelector, LabelSelector, Selectors};
use crate::store::{
    DeleteOptions, Deleted, State, Target, WatchStart, WriteOptions, meta_str, present,
};
use crate::watch::{self, WatchFilter, WatchItem, WatchSettings};
use crate::{RequestRecord, Shared, discovery, metadata_only};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Body = BoxBody<Bytes, BoxError>;

/// Serves one request. Never fails: every problem becomes a `Status` response.
pub async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let raw_query = req.uri().query().unwrap_or_default().to_string();
    let query = Query::parse(&raw_query);
    let mut record = describe(req.method(), req.uri().path(), &query);
    record.query = raw_query;
    let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    if record.verb == "patch" {
        let kind = PatchKind::from_content_type(header(CONTENT_TYPE).unwrap_or_default());
        record.patch_type = kind.map(|k| k.name().to_string());
    }
    record.field_manager = query.get("fieldManager").map(str::to_string);
    let bearer = header(AUTHORIZATION)
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);

    // The body is read first so that the access log has its size (and, when asked, the body).
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|collected| collected.to_bytes());
    if let Ok(bytes) = &body {
        record.request_bytes = bytes.len();
        if shared.records_bodies() {
            record.body = Some(bytes.clone());
        }
    }

    let delay = shared.faults.delay_for(&record);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let response = match (shared.faults.check(&record, bearer.as_deref()), body) {
        (Some(fault), _) => error_response(&fault),
        (None, Err(e)) => error_response(&ApiError::bad_request(format!("reading body: {e}"))),
        (None, Ok(body)) => {
            serve(&shared, &parts, body, &record, &query).unwrap_or_else(|err| error_response(&err))
        }
    };
    record.status = response.status().as_u16();
    shared.log_request(record);
    Ok(response)
}

/// Derives the Kubernetes request attributes (verb, group, resource, …) from
/// method, path and query the way the real API server's RequestInfo does.
fn describe(method: &Method, path: &str, query: &Query) -> RequestRecord {
    let mut record = RequestRecord {
        path: path.to_string(),
        ..RequestRecord::default()
    };
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let rest = match segments.as_slice() {
        ["api", version, rest @ ..] if !rest.is_empty() => {
            record.version = (*version).into();
            rest
        }
        ["apis", group, version, rest @ ..] if !rest.is_empty() => {
            (record.group, record.version) = ((*group).into(), (*version).into());
            rest
        }
        _ => {
            record.verb = method.as_str().to_lowercase();
            return record;
        }
    };
    let rest = match rest {
        // namespaces/{ns}/status and /finalize are subresources of the namespace itself.
        ["namespaces", ns, sub @ ("status" | "finalize")] => {
            record.resource = "namespaces".into();
            (record.name, record.subresource) = (Some((*ns).into()), Some((*sub).into()));
            &[][..]
        }
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => {
            record.namespace = Some((*ns).into());
            rest
        }
        rest => rest,
    };
    if let [resource, more @ ..] = rest {
        record.resource = (*resource).into();
        record.name = more.first().map(|s| s.to_string());
        record.subresource = more.get(1).map(|s| s.to_string());
        if more.len() > 2 {
            record.resource.clear(); // unparseable: served as 404
        }
    }
    let collection = record.name.is_none();
    record.verb = match *method {
        Method::GET if query.is("watch", "true") || query.is("watch", "1") => "watch",
        Method::GET if collection => "list",
        Method::GET => "get",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if collection => "deletecollection",
        Method::DELETE => "delete",
        _ => "unknown",
    }
    .into();
    record
}

fn serve(
    shared: &Shared,
    req: &hyper::http::request::Parts,
    body: Bytes,
    record: &RequestRecord,
    query: &Query,
) -> Result<Response<Body>, ApiError> {
    if record.resource.is_empty() {
        return non_resource(shared, req.uri.path().trim_end_matches('/'));
    }
    let header = |name| {
        req.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_type = header(CONTENT_TYPE).unwrap_or_default();
    // Upstream's default field manager for non-apply writes is the user agent's
    // product name (prefixFromUserAgent: printable characters, at most 128 bytes).
    let user_agent = header(USER_AGENT).map(|ua| {
        let product = ua.split('/').next().unwrap_or_default();
        let mut manager = String::new();
        for c in product.chars().filter(|c| !c.is_control()) {
            if manager.len() + c.len_utf8() > 128 {
                break;
            }
            manager.push(c);
        }
        manager
    });
    let mut store = shared.store.lock();
    let rt = store
        .registry
        .find(&record.group, &record.version, &record.resource)
        .cloned();
    let rt = rt.ok_or_else(ApiError::no_such_resource)?;
    let verb = record.verb.as_str();
    // Namespaced kinds need a namespace except for cross-namespace list/watch;
    // cluster-scoped kinds must not have one.
    let ns = match (&record.namespace, rt.namespaced) {
        (Some(ns), true) => ns.clone(),
        (None, false) => String::new(),
        (None, true) if matches!(verb, "list" | "watch" | "deletecollection") => String::new(),
        _ => return Err(ApiError::no_such_resource()),
    };
    let list_ns = record.namespace.as_deref();
    let subresource = record.subresource.as_deref();
    let served = match subresource {
        None => true,
        Some("status") => rt.status && matches!(verb, "get" | "update" | "patch"),
        Some("eviction") => rt.eviction && verb == "create",
        Some(_) => false,
    };
    if !served {
        return Err(ApiError::no_such_resource());
    }
    let name = record.name.clone().unwrap_or_default();
    let t = Target {
        rt: &rt,
        ns: &ns,
        name: &name,
        subresource,
    };
    let opts = WriteOptions {
        field_manager: query.get("fieldManager").map(str::to_string).or(user_agent),
        dry_run: query.is("dryRun", "All"),
        ..WriteOptions::default()
    };
    let selectors = || -> Result<Selectors, ApiError> {
        let labels = LabelSelector::parse(query.get("labelSelector").unwrap_or_default())?;
        let fields = FieldSelector::parse(query.get("fieldSelector").unwrap_or_default(), &rt)?;
        Ok(Selectors { labels, fields })
    };

    let metadata_only = metadata_only::wanted(header(ACCEPT).as_deref());
    let (code, object) = match verb {
        "get" if metadata_only => (200, metadata_only::object(&store.get(&t)?)),
        "get" => (200, store.get(&t)?),
        "list" => {
            let request = paging::request(store.rv, query.get("limit"), query.get("continue"))?;
            let selectors = selectors()?;
            let matching = store.matching(&rt, list_ns, &selectors, request.after.as_ref());
            let page = request.page(matching, |object| present(&rt, object.clone()));
            let mut list = list_object(&rt, page.items, Some(page.resource_version));
            if let (Some(token), Some(metadata)) = (page.continue_token, list.get_mut("metadata")) {
                metadata["continue"] = json!(token);
            }
            (
                200,
                if metadata_only {
                    metadata_only::list(&list)
                } else {
                    list
                },
            )
        }
        "watch" => {
            let selectors = selectors()?;
            return watch(
                shared,
                &mut store,
                &rt,
                list_ns,
                selectors,
                query,
                metadata_only,
            );
        }
        "create" if subresource == Some("eviction") => {
            let eviction = parse_json(&body)?;
            if meta_str(&eviction, "name").is_some_and(|n| n != name) {
                return Err(ApiError::bad_request(
                    "name in URL does not match the Eviction",
                ));
            }
            let delete_opts = eviction.get("deleteOptions").cloned().unwrap_or_default();
            (201, store.evict(&t, &delete_options(delete_opts, query)?)?)
        }
        "create" => (201, store.create(&rt, &ns, parse_json(&body)?, &opts)?),
        "update" => (200, store.update(&t, parse_json(&body)?, &opts)?),
        "patch" => match PatchKind::from_content_type(&content_type) {
            Some(PatchKind::Apply) => {
                // Apply needs an explicit manager: no user-agent fallback.
                let field_manager = query.get("fieldManager").map(str::to_string);
                let opts = WriteOptions {
                    field_manager,
                    ..opts
                };
                match store.apply(&t, &body, query.is("force", "true"), &opts)? {
                    (created, true) => (201, created),
                    (applied, false) => (200, applied),
                }
            }
            Some(_) if query.get("force").is_some() => {
                let message = "PatchOptions.meta.k8s.io \"\" is invalid: force: Forbidden: may not be specified for non-apply patch";
                let cause = json!({"reason": "FieldValueForbidden", "field": "force",
                                   "message": "Forbidden: may not be specified for non-apply patch"});
                let details =
                    json!({"group": "meta.k8s.io", "kind": "PatchOptions", "causes": [cause]});
                return Err(ApiError::invalid(message).with_details(details));
            }
            Some(kind) => (200, store.patch(&t, kind, &body, &opts)?),
            None => {
                let message =
                    format!("the body of the request was in an unknown format: {content_type:?}");
                return Err(ApiError::new(415, message));
            }
        },
        "delete" => match store.delete(&t, &delete_options(parse_optional_json(&body)?, query)?)? {
            Deleted::Pending(obj) => (200, obj),
            Deleted::Removed(obj) => {
                let uid = meta_str(&obj, "uid").unwrap_or_default();
                let details =
                    json!({"name": name, "group": rt.group, "kind": rt.plural, "uid": uid});
                (200, success_status(200, details))
            }
        },
        "deletecollection" => {
            let opts = delete_options(parse_optional_json(&body)?, query)?;
            (
                200,
                list_object(
                    &rt,
                    store.delete_collection(&rt, list_ns, &selectors()?, &opts),
                    None,
                ),
            )
        }
        _ => {
            return Err(ApiError::new(
                405,
                format!("method {verb} is not supported"),
            ));
        }
    };
    Ok(json_response(code, &object))
}

fn non_resource(shared: &Shared, path: &str) -> Result<Response<Body>, ApiError> {
    let registry = shared.store.lock().registry.clone();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let doc = match segments.as_slice() {
        ["version"] => Some(discovery::version()),
        ["api"] => Some(discovery::core_versions(&shared.addr.to_string())),
        ["api", version] => discovery::resource_list(&registry, "", version),
        ["apis"] => Some(discovery::group_list(&registry)),
        ["apis", group] => discovery::group_document(&registry, group),
        ["apis", group, version] => discovery::resource_list(&registry, group, version),
        ["healthz" | "readyz" | "livez"] => return Ok(Response::new(full(Bytes::from("ok")))),
        _ => None,
    };
    Ok(json_response(
        200,
        &doc.ok_or_else(ApiError::no_such_resource)?,
    ))
}

fn watch(
    shared: &Shared,
    store: &mut State,
    rt: &ResourceType,
    namespace: Option<&str>,
    selectors: Selectors,
    query: &Query,
    metadata_only: bool,
) -> Result<Response<Body>, ApiError> {
    let initial_events = query.is("sendInitialEvents", "true");
    let start = match query.get("resourceVersion") {
        _ if initial_events => WatchStart::Snapshot,
        None | Some("" | "0") => WatchStart::Snapshot,
        Some(rv) => WatchStart::After(
            rv.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?,
        ),
    };
    let timeout = match query.get("timeoutSeconds").map(str::parse) {
        Some(Ok(secs)) => Some(Duration::from_secs(secs)),
        Some(Err(_)) => return Err(ApiError::bad_request("invalid timeoutSeconds")),
        None => None,
    };
    let filter = WatchFilter {
        rt: rt.clone(),
        namespace: namespace.map(str::to_string),
        selectors,
        metadata_only,
    };
    let settings = WatchSettings {
        bookmarks: query.is("allowWatchBookmarks", "true"),
        initial_events_end: initial_events,
        timeout,
        bookmark_interval: shared.options.bookmark_interval,
    };
    let feed = match store.watch(rt, start) {
        Ok(subscription) => watch::spawn(filter, settings, subscription),
        // Upstream reports an expired resourceVersion inside a 200 watch stream.
        Err(err) if err.code == 410 => watch::error_stream(err.to_status()),
        Err(err) => return Err(err),
    };
    let frames = futures::stream::unfold(feed, |mut feed| async move {
        let item: WatchItem = feed.recv().await?;
        Some((item.map(Frame::data).map_err(BoxError::from), feed))
    });
    let mut response = Response::new(BoxBody::new(StreamBody::new(frames)));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

fn delete_options(body: Value, query: &Query) -> Result<DeleteOptions, ApiError> {
    if !body.is_null() && !body.is_object() {
        return Err(ApiError::bad_request("DeleteOptions must be a JSON object"));
    }
    let policy = query
        .get("propagationPolicy")
        .or(body.get("propagationPolicy").and_then(Value::as_str));
    let precondition = |field: &str| {
        let value = body.get("preconditions").and_then(|p| p.get(field));
        value.and_then(Value::as_str).map(str::to_string)
    };
    let dry_run = body
        .get("dryRun")
        .and_then(Value::as_array)
        .is_some_and(|d| d.contains(&json!("All")));
    Ok(DeleteOptions {
        orphan: policy == Some("Orphan") || body.get("orphanDependents") == Some(&json!(true)),
        uid: precondition("uid"),
        resource_version: precondition("resourceVersion"),
        dry_run: dry_run || query.is("dryRun", "All"),
    })
}

fn list_object(rt: &ResourceType, items: Vec<Value>, rv: Option<u64>) -> Value {
    let metadata = match rv {
        Some(rv) => json!({"resourceVersion": rv.to_string()}),
        None => json!({}),
    };
    let kind = format!("{}List", rt.kind);
    json!({"apiVersion": rt.api_version(), "kind": kind, "metadata": metadata, "items": items})
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

fn parse_optional_json(body: &[u8]) -> Result<Value, ApiError> {
    if body.is_empty() {
        Ok(Value::Null)
    } else {
        parse_json(body)
    }
}

fn full(bytes: Bytes) -> Body {
    BoxBody::new(Full::new(bytes).map_err(|never| match never {}))
}

fn json_response(code: u16, body: &Value) -> Response<Body> {
    let mut response = Response::new(full(Bytes::from(body.to_string())));
    *response.status_mut() =
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

pub fn error_response(err: &ApiError) -> Response<Body> {
    json_response(err.code, &err.to_status())
}

/// Decoded query parameters (the last occurrence wins).
struct Query(HashMap<String, String>);

impl Query {
    fn parse(query: &str) -> Self {
        let pairs = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (
                    percent_decode(&k.replace('+', " ")),
                    percent_decode(&v.replace('+', " ")),
                )
            });
        Query(pairs.collect())
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn is(&self, key: &str, value: &str) -> bool {
        self.get(key) == Some(value)
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, hex) {
            (b'%', Some(decoded)) => {
                out.push(decoded);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    type Attributes = (
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
    );

    fn attributes(method: Method, path_and_query: &str) -> Attributes {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let r = describe(&method, path, &Query::parse(query));
        (r.verb, r.resource, r.subresource, r.namespace, r.name)
    }

    #[test]
    fn verbs_and_attributes_are_derived_like_upstream_request_info() {
        let s = |s: &str| Some(s.to_string());
        let list = attributes(Method::GET, "/api/v1/namespaces/a/pods");
        assert_eq!(list, ("list".into(), "pods".into(), None, s("a"), None));
        assert_eq!(attributes(Method::GET, "/api/v1/pods?watch=1").0, "watch");
        let ns = attributes(Method::GET, "/api/v1/namespaces/a");
        assert_eq!(ns, ("get".into(), "namespaces".into(), None, None, s("a")));
        let ns_status = attributes(Method::PUT, "/api/v1/namespaces/a/status");
        assert_eq!(
            ns_status,
            (
                "update".into(),
                "namespaces".into(),
                s("status"),
                None,
                s("a")
            )
        );
        let eviction = attributes(Method::POST, "/api/v1/namespaces/a/pods/p/eviction");
        assert_eq!(
            eviction,
            (
                "create".into(),
                "pods".into(),
                s("eviction"),
                s("a"),
                s("p")
            )
        );
        let collection = attributes(Method::DELETE, "/apis/apps/v1/namespaces/a/deployments");
        assert_eq!(collection.0, "deletecollection");
        assert_eq!(
            attributes(Method::GET, "/apis/apps/v1").1,
            "",
            "discovery is not a resource"
        );
    }

    #[test]
    fn query_values_are_percent_decoded() {
        let q = Query::parse("labelSelector=app%3Dweb%2Ctier+in+(a%2Cb)&watch=true&x=%zz");
        assert_eq!(q.get("labelSelector"), Some("app=web,tier in (a,b)"));
        assert_eq!(q.get("x"), Some("%zz"));
    }
}
