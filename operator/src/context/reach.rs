//! Which cluster-wide objects can concern a workload, without looking at all of them.
//!
//! ClusterRoleBindings and Velero Schedules are listed cluster-wide, and the builder used to
//! test every one of them for every workload: a cost that grows with the cluster twice over
//! (BENCHMARKS.md, "Whole pipeline"). A [`Reach`] files each object under the keys it can
//! concern (a ServiceAccount, a namespace) or under "everywhere" when it cannot tell, and hands
//! back the candidates for a workload's keys in the original list order. It is a prefilter: the
//! builder still checks each candidate exactly, so an object filed too widely costs time, never
//! a wrong document, and one that cannot be read is filed everywhere (its warnings stay).

use std::collections::HashMap;
use std::sync::Arc;

/// Where an object can matter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scope {
    /// For every key (no filter, a wildcard, or something the key function does not vouch for).
    Everywhere,
    /// Only for these keys (none: for no workload at all).
    Keys(Vec<String>),
}

/// Objects of one list, filed by [`Scope`].
#[derive(Debug)]
pub(crate) struct Reach<V> {
    /// (position in the list, object), in list order.
    everywhere: Vec<(usize, Arc<V>)>,
    by_key: HashMap<String, Vec<(usize, Arc<V>)>>,
}

impl<V> Reach<V> {
    pub(crate) fn new(list: Vec<Arc<V>>, scope_of: impl Fn(&V) -> Scope) -> Reach<V> {
        let mut reach = Reach { everywhere: Vec::new(), by_key: HashMap::new() };
        for (position, object) in list.into_iter().enumerate() {
            match scope_of(&object) {
                Scope::Everywhere => reach.everywhere.push((position, object)),
                Scope::Keys(mut keys) => {
                    keys.sort();
                    keys.dedup();
                    for key in keys {
                        reach.by_key.entry(key).or_default().push((position, object.clone()));
                    }
                }
            }
        }
        reach
    }

    /// The objects filed everywhere or under any of `keys`, each once, in list order.
    pub(crate) fn candidates(&self, keys: &[&str]) -> Vec<Arc<V>> {
        let mut found: Vec<&(usize, Arc<V>)> = self.everywhere.iter().collect();
        for key in keys {
            found.extend(self.by_key.get(*key).into_iter().flatten());
        }
        found.sort_by_key(|(position, _)| *position);
        found.dedup_by_key(|(position, _)| *position);
        found.into_iter().map(|(_, object)| object.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reach() -> Reach<String> {
        let list =
            ["all-1", "a-only", "a-and-b", "nowhere", "all-2", "b-only"].map(|n| Arc::new(n.to_owned())).to_vec();
        Reach::new(list, |name| match name.as_str() {
            "all-1" | "all-2" => Scope::Everywhere,
            "a-only" => Scope::Keys(vec!["a".into()]),
            "a-and-b" => Scope::Keys(vec!["b".into(), "a".into(), "b".into()]),
            "b-only" => Scope::Keys(vec!["b".into()]),
            _ => Scope::Keys(vec![]),
        })
    }

    fn names(objects: Vec<Arc<String>>) -> Vec<String> {
        objects.into_iter().map(|o| o.to_string()).collect()
    }

    #[test]
    fn candidates_are_the_objects_filed_everywhere_or_under_a_key_in_list_order() {
        let r = reach();
        assert_eq!(names(r.candidates(&["a"])), ["all-1", "a-only", "a-and-b", "all-2"]);
        assert_eq!(names(r.candidates(&["b"])), ["all-1", "a-and-b", "all-2", "b-only"]);
        assert_eq!(names(r.candidates(&["a", "b"])), ["all-1", "a-only", "a-and-b", "all-2", "b-only"]);
        assert_eq!(names(r.candidates(&["c"])), ["all-1", "all-2"]);
        assert_eq!(names(r.candidates(&[])), ["all-1", "all-2"]);
    }
}
