//! `limit` and `continue` on lists, as kube-apiserver serves them (`metav1.ListOptions`): at
//! most `limit` items in key (namespace/name) order, and while more remain a `continue` token
//! that the next request sends back for the items after the last one. Every page carries the
//! first page's `resourceVersion`, so a client that watches from it sees every change made
//! while it paged.
//!
//! Unlike kube-apiserver, which serves the later pages from an etcd snapshot at that version,
//! the later pages come from the current state: a change made meanwhile can show in a later
//! page and again as a watch event, which a watcher applies twice to the same effect. The token
//! is opaque to clients either way.

use super::error::ApiError;
use serde_json::Value;

/// What a list request asks for: from which key on, how many, at which resource version.
pub struct PageRequest {
    pub resource_version: u64,
    pub after: Option<(String, String)>,
    limit: Option<usize>,
}

/// One page of a list.
pub struct Page {
    pub items: Vec<Value>,
    pub resource_version: u64,
    pub continue_token: Option<String>,
}

/// The page `limit` and `token` ask for, the store at resource version `current`. No limit,
/// or a limit of zero or less, is every item.
pub fn request(
    current: u64,
    limit: Option<&str>,
    token: Option<&str>,
) -> Result<PageRequest, ApiError> {
    let limit = match limit.filter(|l| !l.is_empty()) {
        None => None,
        Some(text) => {
            let parsed: i64 = text
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid limit {text:?}")))?;
            usize::try_from(parsed).ok().filter(|l| *l > 0)
        }
    };
    let (resource_version, after) = match token.filter(|t| !t.is_empty()) {
        None => (current, None),
        Some(token) => {
            let (rv, after) = parse_token(token).ok_or_else(|| {
                ApiError::bad_request("continue key is not valid: incorrect encoded start")
            })?;
            (rv, Some(after))
        }
    };
    Ok(PageRequest {
        resource_version,
        after,
        limit,
    })
}

impl PageRequest {
    /// The page of `matching` (the matching objects after `self.after`, in key order): each
    /// served object is copied through `present`, the rest are not touched.
    pub fn page<'a>(
        &self,
        matching: impl Iterator<Item = (&'a (String, String), &'a Value)>,
        present: impl Fn(&Value) -> Value,
    ) -> Page {
        let mut matching = matching.peekable();
        let mut items = Vec::new();
        let mut last = None;
        while self.limit.is_none_or(|limit| items.len() < limit) {
            let Some((key, object)) = matching.next() else {
                break;
            };
            items.push(present(object));
            last = Some(key);
        }
        let continue_token = match (matching.peek(), last) {
            (Some(_), Some((namespace, name))) => {
                Some(format!("{}|{namespace}|{name}", self.resource_version))
            }
            _ => None,
        };
        Page {
            items,
            resource_version: self.resource_version,
            continue_token,
        }
    }
}

fn parse_token(token: &str) -> Option<(u64, (String, String))> {
    let mut parts = token.splitn(3, '|');
    let rv = parts.next()?.parse().ok()?;
    let namespace = parts.next()?.to_owned();
    let name = parts.next()?.to_owned();
    Some((rv, (namespace, name)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn store(names: &[&str]) -> std::collections::BTreeMap<(String, String), Value> {
        names
            .iter()
            .map(|n| {
                let key = ("ns".to_owned(), (*n).to_owned());
                (key, json!({"metadata": {"namespace": "ns", "name": n}}))
            })
            .collect()
    }

    fn serve(
        objects: &std::collections::BTreeMap<(String, String), Value>,
        request: &PageRequest,
    ) -> Page {
        use std::ops::Bound::{Excluded, Unbounded};
        let start = request.after.clone().map_or(Unbounded, Excluded);
        request.page(objects.range((start, Unbounded)), Value::clone)
    }

    fn names(page: &Page) -> Vec<&str> {
        page.items
            .iter()
            .filter_map(|i| i["metadata"]["name"].as_str())
            .collect()
    }

    #[test]
    fn a_limited_list_is_served_in_pages_that_carry_the_first_pages_resource_version() {
        let objects = store(&["a", "b", "c", "d", "e"]);
        let first = serve(&objects, &request(7, Some("2"), None).unwrap());
        assert_eq!(names(&first), ["a", "b"]);
        assert_eq!(first.resource_version, 7);
        let token = first.continue_token.clone().unwrap();
        // Later writes moved the store on to 9; the pages still say 7.
        let second = serve(&objects, &request(9, Some("2"), Some(&token)).unwrap());
        assert_eq!(names(&second), ["c", "d"]);
        assert_eq!(second.resource_version, 7);
        let token = second.continue_token.clone().unwrap();
        let last = serve(&objects, &request(9, Some("2"), Some(&token)).unwrap());
        assert_eq!(names(&last), ["e"]);
        assert!(last.continue_token.is_none(), "nothing remains");
    }

    #[test]
    fn no_limit_or_a_limit_of_zero_serves_every_item_without_a_token() {
        let objects = store(&["a", "b"]);
        for limit in [None, Some("0"), Some("")] {
            let all = serve(&objects, &request(3, limit, None).unwrap());
            assert_eq!(names(&all), ["a", "b"]);
            assert!(all.continue_token.is_none());
        }
        let exact = serve(&objects, &request(3, Some("2"), None).unwrap());
        assert!(
            exact.continue_token.is_none(),
            "a full last page has no token"
        );
    }

    #[test]
    fn a_malformed_limit_or_continue_token_is_a_bad_request() {
        assert_eq!(request(1, Some("many"), None).err().unwrap().code, 400);
        assert_eq!(request(1, None, Some("garbage")).err().unwrap().code, 400);
    }
}
