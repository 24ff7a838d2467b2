//! One in-memory store per kind, keyed by (namespace, name) in a `BTreeMap` so that "everything
//! in namespace X" is a range scan, not a walk over the whole cluster.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::context::reach::{Reach, Scope};

/// (namespace, name); the namespace is empty for cluster-scoped kinds.
pub type Key = (String, String);

/// A store of one kind. Cheap clones of `Arc<V>` come out; the lock is never held across an
/// `.await`.
#[derive(Debug)]
pub struct KindStore<V> {
    map: RwLock<BTreeMap<Key, Arc<V>>>,
    synced: AtomicBool,
    /// Bumped on every write, so derived indexes ([`ReachCache`]) know when to rebuild.
    generation: AtomicU64,
}

impl<V> Default for KindStore<V> {
    fn default() -> Self {
        KindStore { map: RwLock::new(BTreeMap::new()), synced: AtomicBool::new(false), generation: AtomicU64::new(0) }
    }
}

/// One object that changed: the old and the new version (`None` = absent).
#[derive(Debug)]
pub struct Diff<V> {
    pub key: Key,
    pub old: Option<Arc<V>>,
    pub new: Option<Arc<V>>,
}

impl<V> KindStore<V> {
    // A poisoned lock only means another thread panicked while holding it; the map itself is
    // still consistent (every write is a single insert/remove/swap), so keep serving it.
    fn read(&self) -> RwLockReadGuard<'_, BTreeMap<Key, Arc<V>>> {
        self.map.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, BTreeMap<Key, Arc<V>>> {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.map.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes with every write (see [`ReachCache`]).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<V>> {
        self.read().get(&(namespace.to_owned(), name.to_owned())).cloned()
    }

    /// Everything in one namespace, ordered by name.
    pub fn list_namespace(&self, namespace: &str) -> Vec<Arc<V>> {
        let start = (namespace.to_owned(), String::new());
        self.read().range(start..).take_while(|((ns, _), _)| ns == namespace).map(|(_, v)| v.clone()).collect()
    }

    /// Everything, ordered by (namespace, name).
    pub fn list(&self) -> Vec<Arc<V>> {
        self.read().values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// Insert or replace; returns the previous version.
    pub fn apply(&self, key: Key, value: V) -> Diff<V> {
        let new = Arc::new(value);
        let old = self.write().insert(key.clone(), new.clone());
        Diff { key, old, new: Some(new) }
    }

    pub fn delete(&self, key: &Key) -> Diff<V> {
        let old = self.write().remove(key);
        Diff { key: key.clone(), old, new: None }
    }

    /// Replace the whole content after a (re)list; returns only what actually differs, as
    /// judged by `same`, so a relist after an API server restart changes nothing downstream.
    pub fn replace_all(&self, items: Vec<(Key, V)>, same: impl Fn(&V, &V) -> bool) -> Vec<Diff<V>> {
        let mut fresh: BTreeMap<Key, Arc<V>> = BTreeMap::new();
        for (k, v) in items {
            fresh.insert(k, Arc::new(v));
        }
        let mut map = self.write();
        let mut diffs = Vec::new();
        for (k, old) in map.iter() {
            match fresh.get(k) {
                None => diffs.push(Diff { key: k.clone(), old: Some(old.clone()), new: None }),
                Some(new) if !same(old, new) => {
                    diffs.push(Diff { key: k.clone(), old: Some(old.clone()), new: Some(new.clone()) })
                }
                Some(_) => {}
            }
        }
        for (k, new) in fresh.iter() {
            if !map.contains_key(k) {
                diffs.push(Diff { key: k.clone(), old: None, new: Some(new.clone()) });
            }
        }
        // Keep the old Arcs for unchanged objects (readers may hold them), take the rest.
        let mut next = BTreeMap::new();
        for (k, v) in fresh {
            match map.get(&k) {
                Some(old) if same(old, &v) => next.insert(k, old.clone()),
                _ => next.insert(k, v),
            };
        }
        *map = next;
        self.synced.store(true, Ordering::Release);
        diffs
    }

    /// True once the first full list arrived.
    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }
}

/// A [`Reach`] over one store's list, rebuilt on the first lookup after the store changed.
///
/// The generation is read before the list, so a write that lands in between makes the next
/// lookup rebuild again rather than keep an index older than its tag.
pub(crate) struct ReachCache<V> {
    cached: Mutex<Option<(u64, Arc<Reach<V>>)>>,
}

impl<V> Default for ReachCache<V> {
    fn default() -> Self {
        ReachCache { cached: Mutex::new(None) }
    }
}

impl<V> ReachCache<V> {
    pub(crate) fn get(&self, store: &KindStore<V>, scope_of: impl Fn(&V) -> Scope) -> Arc<Reach<V>> {
        let generation = store.generation();
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        match &*cached {
            Some((g, reach)) if *g == generation => reach.clone(),
            _ => {
                let reach = Arc::new(Reach::new(store.list(), scope_of));
                *cached = Some((generation, reach.clone()));
                reach
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(ns: &str, n: &str) -> Key {
        (ns.into(), n.into())
    }

    #[test]
    fn namespace_range_and_relist_diffs() {
        let s: KindStore<u32> = KindStore::default();
        s.apply(k("a", "x"), 1);
        s.apply(k("ab", "y"), 2);
        s.apply(k("a", "z"), 3);
        assert_eq!(s.list_namespace("a").iter().map(|v| **v).collect::<Vec<_>>(), [1, 3]);
        assert!(s.list_namespace("b").is_empty());
        assert!(!s.is_synced());
        // Relist: x unchanged, z changed, y gone, w new.
        let diffs = s.replace_all(vec![(k("a", "x"), 1), (k("a", "z"), 4), (k("c", "w"), 5)], |a, b| a == b);
        let mut keys: Vec<_> = diffs.iter().map(|d| (d.key.1.clone(), d.old.is_some(), d.new.is_some())).collect();
        keys.sort();
        assert_eq!(keys, [("w".into(), false, true), ("y".into(), true, false), ("z".into(), true, true)]);
        assert_eq!(s.len(), 3);
        assert!(s.is_synced());
        assert_eq!(s.get("a", "z").map(|v| *v), Some(4));
    }

    #[test]
    fn a_reach_follows_every_kind_of_write() {
        let s: KindStore<u32> = KindStore::default();
        let cache = ReachCache::default();
        // Even numbers concern key "even", odd ones only themselves.
        let scope = |v: &u32| {
            if v.is_multiple_of(2) { Scope::Keys(vec!["even".into()]) } else { Scope::Keys(vec![v.to_string()]) }
        };
        let candidates = |key: &str| cache.get(&s, scope).candidates(&[key]).iter().map(|v| **v).collect::<Vec<_>>();
        s.apply(k("", "a"), 2);
        s.apply(k("", "b"), 3);
        assert_eq!(candidates("even"), [2]);
        let first = cache.get(&s, scope);
        assert!(Arc::ptr_eq(&first, &cache.get(&s, scope)), "no write, no rebuild");
        s.apply(k("", "c"), 4);
        assert_eq!(candidates("even"), [2, 4]);
        s.delete(&k("", "a"));
        assert_eq!(candidates("even"), [4]);
        s.replace_all(vec![(k("", "d"), 6), (k("", "e"), 5)], |a, b| a == b);
        assert_eq!(candidates("even"), [6]);
        assert_eq!(candidates("5"), [5]);
        assert!(candidates("3").is_empty());
    }
}
