//! What the compact caches (`child_view`, `node_view`) share: the watch reads an object of its
//! own trimmed type, each event becomes the view the cache keeps, and the view is keyed by name
//! (and namespace) alone: no reader takes a UID or resource version from a cached view.

use kube::runtime::watcher;

/// A watch event of the object as read, as the view the cache keeps of it.
pub fn view_event<O, V: From<O>>(event: watcher::Event<O>) -> watcher::Event<V> {
    match event {
        watcher::Event::Apply(object) => watcher::Event::Apply(object.into()),
        watcher::Event::Delete(object) => watcher::Event::Delete(object.into()),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitApply(object) => watcher::Event::InitApply(object.into()),
        watcher::Event::InitDone => watcher::Event::InitDone,
    }
}

/// What keys a cached view in its store.
pub trait ViewKey {
    fn view_name(&self) -> &str;
    /// `None` for a view of a cluster-scoped object.
    fn view_namespace(&self) -> Option<&str>;
}

/// Implements kube-runtime's `Lookup` for a cached view (a [`ViewKey`]) of a `$resource`: its
/// kind, group, version and plural are the resource's; its name and namespace are the view's
/// key; it has no UID nor resource version.
macro_rules! lookup_by_name {
    ($view:ty, $resource:ty) => {
        impl kube::runtime::reflector::Lookup for $view {
            type DynamicType = ();

            fn kind(_: &()) -> std::borrow::Cow<'_, str> {
                <$resource as kube::Resource>::kind(&())
            }
            fn group(_: &()) -> std::borrow::Cow<'_, str> {
                <$resource as kube::Resource>::group(&())
            }
            fn version(_: &()) -> std::borrow::Cow<'_, str> {
                <$resource as kube::Resource>::version(&())
            }
            fn plural(_: &()) -> std::borrow::Cow<'_, str> {
                <$resource as kube::Resource>::plural(&())
            }
            fn name(&self) -> Option<std::borrow::Cow<'_, str>> {
                let name = super::cache_view::ViewKey::view_name(self);
                Some(std::borrow::Cow::Borrowed(name))
            }
            fn namespace(&self) -> Option<std::borrow::Cow<'_, str>> {
                super::cache_view::ViewKey::view_namespace(self).map(std::borrow::Cow::Borrowed)
            }
            fn resource_version(&self) -> Option<std::borrow::Cow<'_, str>> {
                None
            }
            fn uid(&self) -> Option<std::borrow::Cow<'_, str>> {
                None
            }
        }
    };
}
pub(super) use lookup_by_name;
