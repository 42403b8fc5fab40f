//! Object storage with etcd-like semantics: one global resourceVersion
//! counter, a bounded change history for watches, optimistic concurrency,
//! finalizers, owner-reference garbage collection and CRD registration.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use crate::error::{ApiError, success_status};
use crate::fieldmanager::{self, Projection, Schema, Scope};
use crate::patch::{self, PatchKind};
use crate::registry::{CRD_GROUP, CRD_PLURAL, Registry, ResourceType};
use crate::selector::{LabelSelector, Selectors};
use crate::validation::Admission;

/// `(group, plural)`: objects are stored once per resource, whatever version wrote them.
pub type GroupPlural = (String, String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

/// One committed write, as replayed to watchers.
#[derive(Debug, Clone)]
pub struct Change {
    pub kind: ChangeKind,
    pub resource: GroupPlural,
    pub namespace: String,
    pub rv: u64,
    /// The new state; for deletions the last state, carrying the deletion's resourceVersion.
    pub object: Value,
    /// The state before (lets a filtered watcher turn "stopped matching" into DELETED).
    pub previous: Option<Value>,
}

/// Where a watch starts.
pub enum WatchStart {
    /// `resourceVersion` "" or "0": synthetic ADDED events for every current object.
    Snapshot,
    /// Replay the history after this resourceVersion.
    After(u64),
}

/// A registered watch: the changes to send first, then the live feed.
pub struct Subscription {
    pub backlog: Vec<Arc<Change>>,
    pub live: mpsc::UnboundedReceiver<Arc<Change>>,
    /// The global resourceVersion at subscription time (a valid bookmark).
    pub rv: u64,
}

/// The object a request addresses.
#[derive(Clone, Copy)]
pub struct Target<'a> {
    pub rt: &'a ResourceType,
    /// "" for cluster-scoped resources.
    pub ns: &'a str,
    pub name: &'a str,
    pub subresource: Option<&'a str>,
}

impl Target<'_> {
    fn not_found(&self) -> ApiError {
        let details = json!({"name": self.name, "group": self.rt.group, "kind": self.rt.plural});
        ApiError::not_found(&self.rt.group_resource(), self.name).with_details(details)
    }
}

/// Per-request write settings.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    pub field_manager: Option<String>,
    pub dry_run: bool,
    /// Direct store access (`TestApiServer::put`): keep the caller's `.status`.
    pub backdoor: bool,
    /// Record the manager as an `Apply` (rather than `Update`) operation; set by `State::apply`.
    pub apply: bool,
    /// Skip admission (pruning, defaulting, validation): `TestApiServer::put_unvalidated`.
    pub unvalidated: bool,
}

#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub orphan: bool,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub dry_run: bool,
}

/// What a DELETE did.
pub enum Deleted {
    /// Finalizers keep the object around, now with a deletionTimestamp.
    Pending(Value),
    /// The object is gone; this is its last state.
    Removed(Value),
}

pub struct Store {
    state: Mutex<State>,
}

impl Store {
    pub fn new(history_limit: usize) -> Self {
        let mut state = State {
            registry: Registry::builtin(),
            rv: 0,
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            history_limit: history_limit.max(1),
            oldest_watchable: 0,
            watchers: Vec::new(),
            orphaned: HashSet::new(),
        };
        for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
            if let Err(err) = state.put(ns) {
                tracing::error!(%err, "creating namespace {name}");
            }
        }
        Store {
            state: Mutex::new(state),
        }
    }

    /// The whole store is one critical section, like a single etcd member.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not take every other request down with it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pub struct State {
    pub registry: Registry,
    pub rv: u64,
    objects: BTreeMap<GroupPlural, BTreeMap<(String, String), Value>>,
    history: VecDeque<Arc<Change>>,
    history_limit: usize,
    /// A watch from a resourceVersion below this gets 410 Gone.
    oldest_watchable: u64,
    watchers: Vec<mpsc::UnboundedSender<Arc<Change>>>,
    /// uids deleted with propagationPolicy=Orphan that still wait for finalizers.
    orphaned: HashSet<String>,
}

impl State {
    fn object(&self, resource: &GroupPlural, ns: &str, name: &str) -> Option<&Value> {
        self.objects
            .get(resource)?
            .get(&(ns.to_string(), name.to_string()))
    }

    fn current(&self, t: &Target) -> Result<Value, ApiError> {
        self.object(&key(t.rt), t.ns, t.name)
            .cloned()
            .ok_or_else(|| t.not_found())
    }

    /// The stored CustomResourceDefinition behind a custom resource type.
    fn crd_of(&self, rt: &ResourceType) -> Option<&Value> {
        let crds = (CRD_GROUP.to_string(), CRD_PLURAL.to_string());
        let name = format!("{}.{}", rt.plural, rt.group);
        self.object(&crds, "", &name).filter(|_| rt.custom)
    }

    pub fn get(&self, t: &Target) -> Result<Value, ApiError> {
        self.current(t).map(|obj| present(t.rt, obj))
    }

    /// Matching objects whose key (namespace, name) comes after `after`, in key order,
    /// uncopied: a page of a list copies only the objects it serves.
    pub fn matching<'a>(
        &'a self,
        rt: &ResourceType,
        ns: Option<&'a str>,
        selectors: &'a Selectors,
        after: Option<&(String, String)>,
    ) -> impl Iterator<Item = (&'a (String, String), &'a Value)> + 'a {
        use std::ops::Bound::{Excluded, Unbounded};
        let start = after.map_or(Unbounded, |key| Excluded(key.clone()));
        self.objects
            .get(&key(rt))
            .into_iter()
            .flat_map(move |objects| objects.range((start.clone(), Unbounded)))
            .filter(move |((obj_ns, _), obj)| {
                ns.is_none_or(|ns| ns == obj_ns) && selectors.matches(obj)
            })
    }

    /// Matching objects sorted by namespace/name.
    pub fn list(&self, rt: &ResourceType, ns: Option<&str>, selectors: &Selectors) -> Vec<Value> {
        self.matching(rt, ns, selectors, None)
            .map(|(_, obj)| present(rt, obj.clone()))
            .collect()
    }

    pub fn create(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        mut obj: Value,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        }
        let meta = metadata_mut(&mut obj);
        if meta.get("resourceVersion").is_some_and(|rv| rv != "") && !opts.backdoor {
            let message = "resourceVersion should not be set on objects to be created";
            return Err(ApiError::bad_request(message));
        }
        let name = match (meta.get("name"), meta.get("generateName")) {
            (Some(Value::String(name)), _) if !name.is_empty() => name.clone(),
            (_, Some(Value::String(prefix))) if !prefix.is_empty() => {
                format!("{prefix}{}", random_suffix())
            }
            _ => return Err(crate::validation::name_required(rt)),
        };
        check_identity(rt, ns, &name, &obj)?;
        if rt.namespaced {
            match self.object(&namespaces(), "", ns) {
                None => return Err(ApiError::not_found("namespaces", ns)),
                Some(namespace) if meta_str(namespace, "deletionTimestamp").is_some() => {
                    return Err(ApiError::new(
                        403,
                        format!(
                            "unable to create new content in namespace {ns} because it is being terminated"
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
        if rt.status && !opts.backdoor {
            object_mut(&mut obj).remove("status");
        }
        let meta = metadata_mut(&mut obj);
        meta.insert("name".into(), json!(name));
        meta.insert("namespace".into(), json!(ns));
        if !rt.namespaced {
            meta.remove("namespace");
        }
        meta.insert("uid".into(), json!(new_uid()));
        meta.insert("creationTimestamp".into(), json!(now()));
        meta.insert("generation".into(), json!(1));
        for system in ["deletionTimestamp", "deletionGracePeriodSeconds"] {
            meta.remove(system);
        }
        if !opts.unvalidated {
            let (crd, backdoor) = (self.crd_of(rt), opts.backdoor);
            let adm = Admission {
                rt,
                old: None,
                subresource: None,
                backdoor,
                crd,
            };
            crate::validation::admit(&adm, &mut obj)?;
        }
        // Like upstream, an invalid object is refused (422) before its name is found taken.
        if self.object(&key(rt), ns, &name).is_some() {
            return Err(ApiError::already_exists(&rt.group_resource(), &name));
        }
        // An apply brings its managedFields; any other create is an Update of
        // every field it sets (a client may also send managedFields to keep).
        if !opts.apply {
            let candidate = obj.pointer("/metadata/managedFields").cloned();
            let manager = write_manager(opts);
            let schema = self.schema_for(rt);
            let scope = write_scope(rt, None, &schema);
            fieldmanager::update(&Value::Null, &mut obj, candidate.as_ref(), manager, &scope);
        }
        self.system_hooks(rt, &mut obj)?;
        if opts.dry_run {
            return Ok(present(rt, obj));
        }
        let created = self.commit(ChangeKind::Added, key(rt), ns, &name, obj, None);
        Ok(present(rt, created))
    }

    pub fn update(
        &mut self,
        t: &Target,
        obj: Value,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        check_identity(t.rt, t.ns, t.name, &obj)?;
        let current = self.current(t)?;
        crate::validation::check_unconditional_update(t.rt, &obj)?;
        self.write(t, &current, obj, opts)
    }

    pub fn patch(
        &mut self,
        t: &Target,
        kind: PatchKind,
        body: &[u8],
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let current = self.current(t)?;
        let patched = patch::patch_object(kind, &present(t.rt, current.clone()), body)?;
        check_identity(t.rt, t.ns, t.name, &patched)?;
        self.write(t, &current, patched, opts)
    }

    /// Server-side apply (`application/apply-patch+yaml`). Returns the object
    /// and whether it was created. See [`fieldmanager`] for the semantics.
    pub fn apply(
        &mut self,
        t: &Target,
        body: &[u8],
        force: bool,
        opts: &WriteOptions,
    ) -> Result<(Value, bool), ApiError> {
        let manager = match opts.field_manager.as_deref() {
            Some(manager) if !manager.is_empty() => manager.to_string(),
            _ => {
                let (reason, message) = ("FieldValueRequired", "is required for apply patch");
                return Err(invalid_patch_options(
                    reason,
                    &format!("Required value: {message}"),
                ));
            }
        };
        if manager.len() > FIELD_MANAGER_MAX_LENGTH {
            let message =
                format!("Too long: may not be more than {FIELD_MANAGER_MAX_LENGTH} bytes");
            return Err(invalid_patch_options("FieldValueTooLong", &message));
        }
        let opts = WriteOptions {
            apply: true,
            ..opts.clone()
        };
        let config = patch::parse_apply_body(body)?;
        let text = |field: &str| {
            config
                .get(field)
                .and_then(Value::as_str)
                .unwrap_or_default()
        };
        let (api_version, kind) = (text("apiVersion"), text("kind"));
        if api_version != t.rt.api_version() || kind != t.rt.kind {
            let (group, version) = crate::registry::split_api_version(api_version);
            let message = format!("invalid object type: {group}/{version}, Kind={kind}");
            return Err(ApiError::bad_request(message));
        }
        if config
            .pointer("/metadata/managedFields")
            .is_some_and(|m| !m.is_null())
        {
            return Err(ApiError::bad_request("metadata.managedFields must be nil"));
        }
        check_identity(t.rt, t.ns, t.name, &config)?;

        let current = self.current(t).ok();
        let live = match &current {
            Some(current) => present(t.rt, current.clone()),
            None if t.subresource.is_some() => return Err(t.not_found()),
            None => {
                if let Some(uid) = meta_str(&config, "uid") {
                    let message = format!(
                        "Operation cannot be fulfilled on {} \"{}\": uid mismatch: the provided object specified uid {uid}, and no existing object was found",
                        t.rt.group_resource(),
                        t.name
                    );
                    return Err(ApiError::new(409, message));
                }
                json!({})
            }
        };
        let schema = self.schema_for(t.rt);
        let scope = write_scope(t.rt, t.subresource, &schema);
        let describe = format!(
            "{}/{}; {}/{}, Kind={}",
            t.ns, t.name, t.rt.group, t.rt.version, t.rt.kind
        );
        let applied = fieldmanager::apply(&live, &config, &manager, force, &scope, &describe)?;
        let Some(current) = current else {
            // Upstream's checkName: an apply that creates must name the object.
            let name = meta_str(&applied, "name").unwrap_or_default();
            if name != t.name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({name}) does not match the name on the URL ({})",
                    t.name
                )));
            }
            return Ok((self.create(t.rt, t.ns, applied, &opts)?, true));
        };
        Ok((self.write(t, &current, applied, &opts)?, false))
    }

    /// The merge structure of `rt`'s objects: a CRD's schema for the version,
    /// or the built-in table.
    fn schema_for(&self, rt: &ResourceType) -> Arc<Schema> {
        if !rt.custom {
            return fieldmanager::schema::builtin(&rt.group, &rt.kind);
        }
        let crds = (CRD_GROUP.to_string(), CRD_PLURAL.to_string());
        let crd = self.object(&crds, "", &format!("{}.{}", rt.plural, rt.group));
        let versions = crd.and_then(|c| c.pointer("/spec/versions"));
        let version = versions
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|v| v.get("name").and_then(Value::as_str) == Some(rt.version.as_str()));
        let open_api = version.and_then(|v| v.pointer("/schema/openAPIV3Schema"));
        Arc::new(fieldmanager::schema::from_crd(open_api))
    }

    /// Turns a candidate for an existing object into the stored next state:
    /// status isolation, system metadata, generation, managedFields, no-op
    /// detection, and removal once a deleting object's finalizers are gone.
    fn write(
        &mut self,
        t: &Target,
        current: &Value,
        candidate: Value,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        // An empty or missing resourceVersion means "unconditional".
        if meta_str(&candidate, "resourceVersion")
            .is_some_and(|rv| !rv.is_empty() && Some(rv) != rv_of(current))
        {
            return Err(ApiError::conflict(&t.rt.group_resource(), t.name));
        }
        if !candidate.get("metadata").is_some_and(Value::is_object) {
            return Err(ApiError::bad_request(
                "the object must be a JSON object with metadata",
            ));
        }
        let candidate_fields = candidate.pointer("/metadata/managedFields").cloned();
        let mut next = candidate;
        if t.subresource == Some("status") {
            let status = next.get("status").cloned();
            next = current.clone();
            set_field(&mut next, "status", status);
        } else if t.rt.status && !opts.backdoor {
            set_field(&mut next, "status", current.get("status").cloned());
        }
        let meta = metadata_mut(&mut next);
        for system in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "resourceVersion",
            "managedFields",
        ] {
            match current.get("metadata").and_then(|m| m.get(system)) {
                Some(value) => meta.insert(system.into(), value.clone()),
                None => meta.remove(system),
            };
        }
        if !opts.unvalidated {
            let (crd, backdoor) = (self.crd_of(t.rt), opts.backdoor);
            let (old, subresource) = (Some(current), t.subresource);
            let adm = Admission {
                rt: t.rt,
                old,
                subresource,
                backdoor,
                crd,
            };
            crate::validation::admit(&adm, &mut next)?;
        }
        if meta_str(current, "deletionTimestamp").is_some() {
            let old = finalizers(current);
            if let Some(added) = finalizers(&next).into_iter().find(|f| !old.contains(f)) {
                return Err(ApiError::invalid(format!(
                    "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers [{added:?}]"
                )));
            }
        }
        if spec_of(&next) != spec_of(current) {
            let generation = current
                .pointer("/metadata/generation")
                .and_then(Value::as_i64);
            metadata_mut(&mut next).insert("generation".into(), json!(generation.unwrap_or(0) + 1));
        }
        if opts.apply {
            // fieldmanager::apply already worked out the managedFields.
            let meta = metadata_mut(&mut next);
            match candidate_fields {
                Some(fields) => meta.insert("managedFields".into(), fields),
                None => meta.remove("managedFields"),
            };
        } else {
            let schema = self.schema_for(t.rt);
            let scope = write_scope(t.rt, t.subresource, &schema);
            let manager = write_manager(opts);
            let candidate = candidate_fields.as_ref();
            fieldmanager::update(current, &mut next, candidate, manager, &scope);
        }
        self.system_hooks(t.rt, &mut next)?;
        // Like the real server: a no-op write keeps the resourceVersion and emits no event.
        if next == *current || opts.dry_run {
            return Ok(present(t.rt, next));
        }
        let resource = key(t.rt);
        let previous = Some(current.clone());
        let written = self.commit(
            ChangeKind::Modified,
            resource.clone(),
            t.ns,
            t.name,
            next,
            previous,
        );
        if self.ready_to_remove(&resource, &written) {
            return Ok(present(t.rt, self.remove(&resource, t.ns, t.name, false)));
        }
        Ok(present(t.rt, written))
    }

    /// What built-in controllers would do right away: CRDs get registered and
    /// Established (operators wait for that), namespaces get `status.phase`.
    fn system_hooks(&mut self, rt: &ResourceType, obj: &mut Value) -> Result<(), ApiError> {
        set_type(rt, obj);
        if (rt.group.as_str(), rt.plural.as_str()) == ("", "namespaces") {
            if obj.pointer("/status/phase").is_none() {
                set_field(obj, "status", Some(json!({"phase": "Active"})));
            }
            return Ok(());
        }
        if (rt.group.as_str(), rt.plural.as_str()) != (CRD_GROUP, CRD_PLURAL) {
            return Ok(());
        }
        self.registry.register_crd(obj)?;
        let versions = obj.pointer("/spec/versions").and_then(Value::as_array);
        let storage: Vec<Value> = versions
            .into_iter()
            .flatten()
            .filter(|v| v.get("storage") == Some(&json!(true)))
            .filter_map(|v| v.get("name").cloned())
            .collect();
        let names = obj.pointer("/spec/names").cloned().unwrap_or_default();
        let conditions = obj.pointer("/status/conditions").and_then(Value::as_array);
        let established = conditions.is_some_and(|c| c.iter().any(|c| c["type"] == "Established"));
        let time = now();
        let status = object_mut(object_mut(obj).entry("status").or_insert_with(|| json!({})));
        status.insert("acceptedNames".into(), names);
        status.insert("storedVersions".into(), Value::Array(storage));
        if !established {
            let conditions = json!([
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                 "message": "no conflicts found", "lastTransitionTime": time},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                 "message": "the initial names have been accepted", "lastTransitionTime": time},
            ]);
            status.insert("conditions".into(), conditions);
        }
        Ok(())
    }

    /// Assigns the next resourceVersion, stores (or removes) the object and
    /// feeds history and watchers.
    fn commit(
        &mut self,
        kind: ChangeKind,
        resource: GroupPlural,
        ns: &str,
        name: &str,
        mut obj: Value,
        previous: Option<Value>,
    ) -> Value {
        self.rv += 1;
        metadata_mut(&mut obj).insert("resourceVersion".into(), json!(self.rv.to_string()));
        let slot = (ns.to_string(), name.to_string());
        let objects = self.objects.entry(resource.clone()).or_default();
        if kind == ChangeKind::Deleted {
            objects.remove(&slot);
        } else {
            objects.insert(slot, obj.clone());
        }
        let namespace = ns.to_string();
        let (rv, object) = (self.rv, obj.clone());
        let change = Arc::new(Change {
            kind,
            resource,
            namespace,
            rv,
            object,
            previous,
        });
        self.history.push_back(change.clone());
        while self.history.len() > self.history_limit {
            if let Some(dropped) = self.history.pop_front() {
                self.oldest_watchable = dropped.rv;
            }
        }
        self.watchers.retain(|w| w.send(change.clone()).is_ok());
        obj
    }

    fn ready_to_remove(&self, resource: &GroupPlural, obj: &Value) -> bool {
        if meta_str(obj, "deletionTimestamp").is_none() || !finalizers(obj).is_empty() {
            return false;
        }
        // A terminating namespace goes away only once it is empty.
        let name = meta_str(obj, "name");
        let mut all = self.objects.values().flat_map(|m| m.keys());
        *resource != namespaces() || !all.any(|(ns, _)| Some(ns.as_str()) == name)
    }

    pub fn delete(&mut self, t: &Target, opts: &DeleteOptions) -> Result<Deleted, ApiError> {
        let current = self.current(t)?;
        let uid = meta_str(&current, "uid").unwrap_or_default().to_string();
        if let Some(expected) = opts.uid.as_ref().filter(|expected| **expected != uid) {
            return Err(ApiError::new(
                409,
                format!(
                    "Precondition failed: UID in precondition: {expected}, UID in object meta: {uid}"
                ),
            ));
        }
        if opts
            .resource_version
            .as_deref()
            .is_some_and(|rv| Some(rv) != rv_of(&current))
        {
            return Err(ApiError::conflict(&t.rt.group_resource(), t.name));
        }
        let outcome = self.delete_object(&key(t.rt), t.ns, t.name, opts);
        Ok(match outcome {
            Deleted::Pending(obj) => Deleted::Pending(present(t.rt, obj)),
            Deleted::Removed(obj) => Deleted::Removed(present(t.rt, obj)),
        })
    }

    fn delete_object(
        &mut self,
        resource: &GroupPlural,
        ns: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> Deleted {
        let Some(current) = self.object(resource, ns, name).cloned() else {
            return Deleted::Removed(Value::Null);
        };
        if opts.dry_run || meta_str(&current, "deletionTimestamp").is_some() {
            return Deleted::Pending(current);
        }
        let is_namespace = *resource == namespaces();
        if finalizers(&current).is_empty() && !is_namespace {
            return Deleted::Removed(self.remove(resource, ns, name, opts.orphan));
        }
        if opts.orphan {
            self.orphaned
                .insert(meta_str(&current, "uid").unwrap_or_default().into());
        }
        let mut next = current.clone();
        let meta = metadata_mut(&mut next);
        meta.insert("deletionTimestamp".into(), json!(now()));
        meta.insert("deletionGracePeriodSeconds".into(), json!(0));
        if is_namespace {
            set_field(&mut next, "status", Some(json!({"phase": "Terminating"})));
        }
        let marked = self.commit(
            ChangeKind::Modified,
            resource.clone(),
            ns,
            name,
            next,
            Some(current),
        );
        if !is_namespace {
            return Deleted::Pending(marked);
        }
        // The namespace controller: delete the contents; the namespace goes once they are gone.
        let contents: Vec<(GroupPlural, String)> = self
            .objects
            .iter()
            .flat_map(|(res, objs)| objs.keys().map(move |slot| (res, slot)))
            .filter(|(_, (obj_ns, _))| obj_ns == name)
            .map(|(res, (_, obj_name))| (res.clone(), obj_name.clone()))
            .collect();
        for (res, obj_name) in contents {
            self.delete_object(&res, name, &obj_name, &DeleteOptions::default());
        }
        match self.object(resource, "", name).cloned() {
            None => Deleted::Removed(marked),
            Some(ns_obj) if self.ready_to_remove(resource, &ns_obj) => {
                Deleted::Removed(self.remove(resource, "", name, false))
            }
            Some(ns_obj) => Deleted::Pending(ns_obj),
        }
    }

    /// Removes an object for good, then does what the garbage collector, the
    /// CRD controller and the namespace controller would do about it.
    fn remove(&mut self, resource: &GroupPlural, ns: &str, name: &str, orphan: bool) -> Value {
        let Some(current) = self.object(resource, ns, name).cloned() else {
            return Value::Null;
        };
        let removed = self.commit(
            ChangeKind::Deleted,
            resource.clone(),
            ns,
            name,
            current.clone(),
            Some(current),
        );
        let uid = meta_str(&removed, "uid").unwrap_or_default().to_string();
        let orphan = self.orphaned.remove(&uid) || orphan;

        if *resource == (CRD_GROUP.to_string(), CRD_PLURAL.to_string())
            && let (Some(Value::String(group)), Some(Value::String(plural))) = (
                removed.pointer("/spec/group"),
                removed.pointer("/spec/names/plural"),
            )
        {
            let custom = (group.clone(), plural.clone());
            let instances: Vec<(String, String)> = self
                .objects
                .get(&custom)
                .into_iter()
                .flat_map(|m| m.keys().cloned())
                .collect();
            for (obj_ns, obj_name) in instances {
                self.remove(&custom, &obj_ns, &obj_name, false);
            }
            self.registry.unregister_crd(group, plural);
        }

        let dependents: Vec<(GroupPlural, String, String)> = self
            .objects
            .iter()
            .flat_map(|(res, objs)| objs.iter().map(move |(slot, obj)| (res, slot, obj)))
            .filter(|(_, _, obj)| owner_uids(obj).any(|owner| owner == uid))
            .map(|(res, (dep_ns, dep_name), _)| (res.clone(), dep_ns.clone(), dep_name.clone()))
            .collect();
        for (res, dep_ns, dep_name) in dependents {
            // Like the real GC, a dependent with another live owner only loses the dangling reference.
            let other_owner_alive = self
                .object(&res, &dep_ns, &dep_name)
                .is_some_and(|dep| owner_uids(dep).any(|o| o != uid && self.uid_exists(o)));
            if orphan || other_owner_alive {
                self.drop_owner_reference(&res, &dep_ns, &dep_name, &uid);
            } else {
                self.delete_object(&res, &dep_ns, &dep_name, &DeleteOptions::default());
            }
        }

        if let Some(namespace) = self.object(&namespaces(), "", ns).cloned()
            && !ns.is_empty()
            && self.ready_to_remove(&namespaces(), &namespace)
        {
            self.remove(&namespaces(), "", ns, false);
        }
        removed
    }

    fn uid_exists(&self, uid: &str) -> bool {
        let mut all = self.objects.values().flat_map(|m| m.values());
        all.any(|obj| meta_str(obj, "uid") == Some(uid))
    }

    fn drop_owner_reference(
        &mut self,
        resource: &GroupPlural,
        ns: &str,
        name: &str,
        owner_uid: &str,
    ) {
        let Some(current) = self.object(resource, ns, name).cloned() else {
            return;
        };
        let mut next = current.clone();
        if let Some(Value::Array(refs)) = metadata_mut(&mut next).get_mut("ownerReferences") {
            refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(owner_uid));
        }
        // Nobody gains the change, but nobody owns the dropped reference any more.
        let rt = self
            .registry
            .all()
            .iter()
            .find(|rt| key(rt) == *resource)
            .cloned();
        if let Some(rt) = rt {
            let schema = self.schema_for(&rt);
            let scope = write_scope(&rt, None, &schema);
            fieldmanager::update(&current, &mut next, None, None, &scope);
        }
        self.commit(
            ChangeKind::Modified,
            resource.clone(),
            ns,
            name,
            next,
            Some(current),
        );
    }

    /// Deletes every matching object; returns what each delete returned.
    pub fn delete_collection(
        &mut self,
        rt: &ResourceType,
        ns: Option<&str>,
        selectors: &Selectors,
        opts: &DeleteOptions,
    ) -> Vec<Value> {
        let items = self.list(rt, ns, selectors);
        let mut deleted = Vec::new();
        for item in items {
            let obj_ns = meta_str(&item, "namespace").unwrap_or_default();
            let name = meta_str(&item, "name").unwrap_or_default();
            match self.delete_object(&key(rt), obj_ns, name, opts) {
                Deleted::Pending(obj) | Deleted::Removed(obj) => deleted.push(present(rt, obj)),
            }
        }
        deleted
    }

    /// `POST pods/{name}/eviction`: refused with 429 while a matching
    /// PodDisruptionBudget allows no disruption; otherwise the budget's
    /// `disruptionsAllowed` is decremented and the pod deleted.
    pub fn evict(&mut self, t: &Target, opts: &DeleteOptions) -> Result<Value, ApiError> {
        let pod = self.current(t)?;
        // Upstream lets pods that are not running (or already deleting) go regardless of budgets.
        let phase = pod
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let terminating = meta_str(&pod, "deletionTimestamp").is_some();
        let ignores_budgets = matches!(phase, "Succeeded" | "Failed" | "Pending") || terminating;
        let pdbs = ("policy".to_string(), "poddisruptionbudgets".to_string());
        let selects_pod = |pdb: &Value| {
            let selector = pdb
                .pointer("/spec/selector")
                .and_then(LabelSelector::from_object);
            selector.is_some_and(|s| s.matches(&pod))
        };
        let budgets: Vec<Value> = self
            .objects
            .get(&pdbs)
            .into_iter()
            .flatten()
            .filter(|((pdb_ns, _), pdb)| pdb_ns == t.ns && selects_pod(pdb))
            .map(|(_, pdb)| pdb.clone())
            .collect();
        if let (false, [pdb]) = (ignores_budgets, budgets.as_slice()) {
            let status = |field: &str| {
                pdb.get("status")
                    .and_then(|s| s.get(field))
                    .and_then(Value::as_i64)
            };
            let allowed = status("disruptionsAllowed").unwrap_or(0);
            let pdb_name = meta_str(pdb, "name").unwrap_or_default().to_string();
            if allowed <= 0 {
                let cause = format!(
                    "The disruption budget {pdb_name} needs {} healthy pods and has {} currently",
                    status("desiredHealthy").unwrap_or(0),
                    status("currentHealthy").unwrap_or(0)
                );
                let message = "Cannot evict pod as it would violate the pod's disruption budget.";
                let details = json!({"causes": [{"reason": "DisruptionBudget", "message": cause}]});
                return Err(ApiError::new(429, message).with_details(details));
            }
            if !opts.dry_run {
                let mut next = pdb.clone();
                let pdb_status =
                    object_mut(object_mut(&mut next).entry("status").or_insert(json!({})));
                pdb_status.insert("disruptionsAllowed".into(), json!(allowed - 1));
                self.commit(
                    ChangeKind::Modified,
                    pdbs,
                    t.ns,
                    &pdb_name,
                    next,
                    Some(pdb.clone()),
                );
            }
        } else if !ignores_budgets && budgets.len() > 1 {
            let message = "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.";
            return Err(ApiError::internal(message));
        }
        self.delete(t, opts)?;
        Ok(success_status(201, json!({})))
    }

    /// Create-or-replace, bypassing HTTP: keeps the given `.status`, no preconditions.
    pub fn put(&mut self, obj: Value) -> Result<Value, ApiError> {
        self.put_with(obj, true)
    }

    /// [`State::put`], validated like a create or an update, or (`validate: false`)
    /// written as it is.
    pub fn put_with(&mut self, mut obj: Value, validate: bool) -> Result<Value, ApiError> {
        let api_version = obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
        let Some(rt) = self.registry.find_kind(api_version, kind).cloned() else {
            let message = format!("no kind {kind:?} is registered for version {api_version:?}");
            return Err(ApiError::new(404, message));
        };
        let ns = match meta_str(&obj, "namespace") {
            _ if !rt.namespaced => "",
            Some(ns) => ns,
            None => "default",
        }
        .to_string();
        let name = meta_str(&obj, "name").unwrap_or_default().to_string();
        let opts = WriteOptions {
            backdoor: true,
            unvalidated: !validate,
            ..WriteOptions::default()
        };
        let t = Target {
            rt: &rt,
            ns: &ns,
            name: &name,
            subresource: None,
        };
        match self.current(&t) {
            Ok(current) => {
                metadata_mut(&mut obj).remove("resourceVersion");
                self.write(&t, &current, obj, &opts)
            }
            Err(_) => self.create(&rt, &ns, obj, &opts),
        }
    }

    /// Registers a watcher on `rt` and returns what to replay first.
    pub fn watch(
        &mut self,
        rt: &ResourceType,
        start: WatchStart,
    ) -> Result<Subscription, ApiError> {
        let resource = key(rt);
        let backlog = match start {
            WatchStart::Snapshot => {
                let objects = self.objects.get(&resource).into_iter().flatten();
                let added = |((ns, _), obj): (&(String, String), &Value)| Change {
                    kind: ChangeKind::Added,
                    resource: resource.clone(),
                    namespace: ns.clone(),
                    rv: rv_of(obj)
                        .and_then(|rv| rv.parse().ok())
                        .unwrap_or_default(),
                    object: obj.clone(),
                    previous: None,
                };
                objects.map(added).map(Arc::new).collect()
            }
            WatchStart::After(rv) if rv < self.oldest_watchable => {
                let message = format!("too old resource version: {rv} ({})", self.oldest_watchable);
                return Err(ApiError::expired(message));
            }
            WatchStart::After(rv) => {
                let newer = self
                    .history
                    .iter()
                    .filter(|c| c.rv > rv && c.resource == resource);
                newer.cloned().collect()
            }
        };
        let (tx, live) = mpsc::unbounded_channel();
        self.watchers.push(tx);
        Ok(Subscription {
            backlog,
            live,
            rv: self.rv,
        })
    }

    /// Forgets the history: watches from any resourceVersion handed out so far get 410.
    pub fn compact(&mut self) {
        self.history.clear();
        // Consume a resourceVersion so that a relist (which reports the new
        // current version) can watch again, while every older one is expired.
        self.rv += 1;
        self.oldest_watchable = self.rv;
    }

    /// Drops every watcher's feed; their streams end abruptly.
    pub fn cut_watches(&mut self) {
        self.watchers.clear();
    }
}

/// Checks that the name/namespace in a body agree with the URL.
fn check_identity(rt: &ResourceType, ns: &str, name: &str, obj: &Value) -> Result<(), ApiError> {
    if !obj.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    if let Some(body_name) = meta_str(obj, "name").filter(|n| *n != name) {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    if rt.namespaced && meta_str(obj, "namespace").is_some_and(|n| !n.is_empty() && n != ns) {
        let message =
            "the namespace of the provided object does not match the namespace sent on the request";
        return Err(ApiError::bad_request(message));
    }
    Ok(())
}

pub fn key(rt: &ResourceType) -> GroupPlural {
    (rt.group.clone(), rt.plural.clone())
}

fn namespaces() -> GroupPlural {
    (String::new(), "namespaces".into())
}

/// The object as served at `rt`'s version (no conversion: only apiVersion changes).
pub fn present(rt: &ResourceType, mut obj: Value) -> Value {
    set_type(rt, &mut obj);
    obj
}

fn set_type(rt: &ResourceType, obj: &mut Value) {
    let map = object_mut(obj);
    map.insert("apiVersion".into(), json!(rt.api_version()));
    map.insert("kind".into(), json!(rt.kind));
}

/// Everything except metadata and status: what `generation` tracks.
fn spec_of(obj: &Value) -> Value {
    let mut obj = obj.clone();
    for field in ["metadata", "status", "apiVersion", "kind"] {
        object_mut(&mut obj).remove(field);
    }
    obj
}

/// Upstream's `FieldManagerMaxLength`.
const FIELD_MANAGER_MAX_LENGTH: usize = 128;

/// The 422 upstream answers for bad `PatchOptions` (before looking at the object).
fn invalid_patch_options(reason: &str, message: &str) -> ApiError {
    let cause = json!({"reason": reason, "message": message, "field": "fieldManager"});
    ApiError::invalid(format!(
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: {message}"
    ))
    .with_details(json!({"group": "meta.k8s.io", "kind": "PatchOptions", "causes": [cause]}))
}

/// Who a non-apply write is recorded for: the request's manager ("" becomes
/// "unknown", like upstream), nobody for the test backdoor.
fn write_manager(opts: &WriteOptions) -> Option<&str> {
    match opts.backdoor {
        true => None,
        false => Some(opts.field_manager.as_deref().unwrap_or_default()),
    }
}

/// What a write to `rt` (or its `subresource`) may own.
fn write_scope<'a>(
    rt: &ResourceType,
    subresource: Option<&'a str>,
    schema: &'a Schema,
) -> Scope<'a> {
    let projection = match subresource {
        Some("status") => Projection::StatusOnly,
        _ if rt.status => Projection::WithoutStatus,
        _ => Projection::Whole,
    };
    Scope {
        schema,
        api_version: rt.api_version(),
        subresource,
        projection,
    }
}

fn finalizers(obj: &Value) -> Vec<String> {
    let list = obj
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array);
    list.into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

fn owner_uids(obj: &Value) -> impl Iterator<Item = &str> {
    let refs = obj
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array);
    refs.into_iter()
        .flatten()
        .filter_map(|r| r.get("uid")?.as_str())
}

pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

fn rv_of(obj: &Value) -> Option<&str> {
    meta_str(obj, "resourceVersion")
}

/// The map inside `value`, turning a non-object into an empty object first.
pub fn object_mut(value: &mut Value) -> &mut Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => {
            *other = Value::Object(Map::new());
            object_mut(other)
        }
    }
}

pub fn metadata_mut(obj: &mut Value) -> &mut Map<String, Value> {
    object_mut(
        object_mut(obj)
            .entry("metadata")
            .or_insert_with(|| json!({})),
    )
}

fn set_field(obj: &mut Value, field: &str, value: Option<Value>) {
    let map = object_mut(obj);
    match value {
        Some(value) => map.insert(field.into(), value),
        None => map.remove(field),
    };
}

/// RFC 3339 UTC, second precision, as Kubernetes serialises `metav1.Time`.
pub fn now() -> String {
    format!("{:.0}", k8s_openapi::jiff::Timestamp::now())
}

fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.finish()
}

fn new_uid() -> String {
    let (a, b) = (random_u64(), random_u64());
    let (a1, a2, a3) = (a >> 32, (a >> 16) & 0xffff, a & 0xfff);
    let (b1, b2) = ((b >> 48) | 0x8000, b & 0xffff_ffff_ffff);
    format!("{a1:08x}-{a2:04x}-4{a3:03x}-{b1:04x}-{b2:012x}")
}

/// The 5-character suffix `generateName` gets (upstream's alphabet).
fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut n = random_u64();
    let mut suffix = String::new();
    for _ in 0..5 {
        let c = ALPHABET
            .get((n % ALPHABET.len() as u64) as usize)
            .copied()
            .unwrap_or(b'x');
        suffix.push(char::from(c));
        n /= ALPHABET.len() as u64;
    }
    suffix
}
