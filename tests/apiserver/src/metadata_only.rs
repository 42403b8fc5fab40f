//! Metadata-only responses: a client that asks with `Accept: application/json;as=
//! PartialObjectMetadata;g=meta.k8s.io;v=v1` (or `as=PartialObjectMetadataList` for a list)
//! gets each object as a `meta.k8s.io/v1` PartialObjectMetadata, its metadata alone, as
//! upstream's `asPartialObjectMetadata` and `asPartialObjectMetadataList` give it
//! (staging/src/k8s.io/apiserver/pkg/endpoints/handlers/response.go). Watch events and
//! bookmarks carry the same shape.

use serde_json::{Value, json};

const API_VERSION: &str = "meta.k8s.io/v1";

/// Whether the request's Accept header asks for metadata only.
pub fn wanted(accept: Option<&str>) -> bool {
    accept.is_some_and(|accept| {
        accept.split(',').any(|media| {
            media
                .split(';')
                .any(|p| p.trim().starts_with("as=PartialObjectMetadata"))
        })
    })
}

/// The object as a PartialObjectMetadata.
pub fn object(object: &Value) -> Value {
    let metadata = object.get("metadata").cloned().unwrap_or_else(|| json!({}));
    json!({"apiVersion": API_VERSION, "kind": "PartialObjectMetadata", "metadata": metadata})
}

/// A list (its items and list metadata) as a PartialObjectMetadataList.
pub fn list(list: &Value) -> Value {
    let items: Vec<Value> = list
        .get("items")
        .and_then(Value::as_array)
        .map(|items| items.iter().map(object).collect())
        .unwrap_or_default();
    let metadata = list.get("metadata").cloned().unwrap_or_else(|| json!({}));
    json!({"apiVersion": API_VERSION, "kind": "PartialObjectMetadataList", "metadata": metadata, "items": items})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kube_clients_metadata_accept_headers_ask_for_metadata_only() {
        assert!(wanted(Some(
            "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
        )));
        assert!(wanted(Some(
            "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"
        )));
        assert!(!wanted(Some("application/json")));
        assert!(!wanted(None));
    }

    #[test]
    fn a_partial_object_keeps_the_metadata_and_nothing_else() {
        let full = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}},
                          "spec": {"nodeName": "n"}, "status": {"phase": "Running"}});
        assert_eq!(
            object(&full),
            json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                   "metadata": {"name": "p", "labels": {"a": "b"}}})
        );
        let list = list(&json!({"apiVersion": "v1", "kind": "PodList",
                                "metadata": {"resourceVersion": "7"}, "items": [full]}));
        assert_eq!(list["kind"], "PartialObjectMetadataList");
        assert_eq!(list["metadata"]["resourceVersion"], "7");
        assert_eq!(list["items"][0]["kind"], "PartialObjectMetadata");
        assert!(list["items"][0].get("spec").is_none());
    }
}
