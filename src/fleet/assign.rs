//! Which live node runs which camera: a pure function of what every node
//! reads from etcd, so all of them compute the same answer and each acts on
//! its own part. Cameras stay where they run while that node is within its
//! fair share (moving a camera costs its tracks and a restart); only the
//! excess moves, and free cameras go to the node that rendezvous hashing
//! ranks first among those with room.

use std::collections::{BTreeMap, BTreeSet};

/// A live node as its registration says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    /// The most cameras it takes; `None`: no limit.
    pub max_streams: Option<usize>,
    /// The models it has: it takes only cameras on one of them.
    pub models: BTreeSet<String>,
    /// Cameras it tried and could not run (a spec its checks refuse).
    pub refused: BTreeSet<String>,
}

impl Member {
    fn takes(&self, camera: &str, model: &str) -> bool {
        self.models.contains(model) && !self.refused.contains(camera)
    }

    fn cap(&self) -> usize {
        self.max_streams.unwrap_or(usize::MAX)
    }
}

/// Camera name -> node name. Cameras no live node can take are absent.
pub type Assignment = BTreeMap<String, String>;

/// `cameras`: name -> model; `owners`: camera -> node holding its owner key.
pub fn assign(
    members: &[Member],
    cameras: &BTreeMap<String, String>,
    owners: &BTreeMap<String, String>,
) -> Assignment {
    let takers = |camera: &str| -> Vec<&Member> {
        let model = &cameras[camera];
        members.iter().filter(|m| m.takes(camera, model)).collect()
    };
    let placeable = cameras.keys().filter(|c| !takers(c).is_empty()).count();
    let quota = quotas(members, placeable, owners);
    let mut load: BTreeMap<&str, usize> = members.iter().map(|m| (m.name.as_str(), 0)).collect();
    let mut out = Assignment::new();

    // Each node keeps the cameras it runs, up to its quota: those it ranks
    // highest first, so which one moves is the same everywhere.
    for m in members {
        let mut own: Vec<&String> = owners
            .iter()
            .filter(|(c, o)| *o == &m.name && cameras.get(*c).is_some_and(|md| m.takes(c, md)))
            .map(|(c, _)| c)
            .collect();
        own.sort_by_key(|c| std::cmp::Reverse(score(c, &m.name)));
        for c in own.into_iter().take(quota[m.name.as_str()]) {
            out.insert(c.clone(), m.name.clone());
            *load.entry(&m.name).or_default() += 1;
        }
    }
    // The rest go to the best-ranked node with room: within its quota if
    // one has room, else within its cap.
    let free: Vec<&String> = cameras.keys().filter(|c| !out.contains_key(*c)).collect();
    for camera in free {
        let mut candidates = takers(camera);
        candidates.sort_by_key(|m| std::cmp::Reverse(score(camera, &m.name)));
        let pick = candidates
            .iter()
            .find(|m| load[m.name.as_str()] < quota[m.name.as_str()])
            .or_else(|| candidates.iter().find(|m| load[m.name.as_str()] < m.cap()));
        if let Some(m) = pick {
            out.insert(camera.clone(), m.name.clone());
            *load.entry(&m.name).or_default() += 1;
        }
    }
    out
}

/// Each node's fair share of `total` cameras: as equal as the caps allow,
/// the odd ones to the nodes that run the most now (so they need not move).
fn quotas<'a>(
    members: &'a [Member],
    total: usize,
    owners: &BTreeMap<String, String>,
) -> BTreeMap<&'a str, usize> {
    let mut quota: BTreeMap<&str, usize> = members.iter().map(|m| (m.name.as_str(), 0)).collect();
    let mut left = total;
    // Water filling: nodes whose cap is below the even share take their
    // cap; the others all get the same floor share; the remainder follows.
    let mut by_cap: Vec<&Member> = members.iter().collect();
    by_cap.sort_by_key(|m| (m.cap(), m.name.clone()));
    let mut capped = 0;
    while capped < by_cap.len() {
        let m = by_cap[capped];
        if m.cap() >= left / (by_cap.len() - capped) {
            break;
        }
        quota.insert(&m.name, m.cap());
        left -= m.cap();
        capped += 1;
    }
    let even = left.checked_div(by_cap.len() - capped).unwrap_or(0);
    for m in &by_cap[capped..] {
        quota.insert(&m.name, even);
        left -= even;
    }
    let running = |m: &Member| owners.values().filter(|o| **o == m.name).count();
    let mut order: Vec<&Member> = members.iter().collect();
    order.sort_by_key(|m| (std::cmp::Reverse(running(m)), m.name.clone()));
    while left > 0 {
        let Some(m) = order.iter().find(|m| quota[m.name.as_str()] < m.cap()) else {
            break;
        };
        *quota.entry(&m.name).or_default() += 1;
        left -= 1;
        order.retain(|o| o.name != m.name);
        if order.is_empty() {
            order = members.iter().collect();
        }
    }
    quota
}

/// Rendezvous (highest random weight) score: stable across nodes, runs and
/// versions (FNV-1a, then a SplitMix64 finaliser to spread the bits).
fn score(camera: &str, node: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in camera.bytes().chain([0]).chain(node.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, max: Option<usize>) -> Member {
        Member {
            name: name.into(),
            max_streams: max,
            models: ["coco".to_string()].into(),
            refused: BTreeSet::new(),
        }
    }

    fn cams(n: usize) -> BTreeMap<String, String> {
        (0..n).map(|i| (format!("cam{i}"), "coco".into())).collect()
    }

    fn counts(a: &Assignment) -> BTreeMap<String, usize> {
        let mut c = BTreeMap::new();
        for n in a.values() {
            *c.entry(n.clone()).or_default() += 1;
        }
        c
    }

    fn moved(a: &Assignment, b: &Assignment) -> usize {
        a.iter().filter(|(c, n)| b.get(*c) != Some(n)).count()
    }

    #[test]
    fn six_cameras_spread_two_each_over_three_nodes() {
        let members = [node("a", None), node("b", None), node("c", None)];
        let a = assign(&members, &cams(6), &BTreeMap::new());
        assert_eq!(a.len(), 6);
        assert!(counts(&a).values().all(|&n| n == 2), "{a:?}");
        // Every node computes the same, whatever order it lists members in.
        let mut rev = members.to_vec();
        rev.reverse();
        assert_eq!(assign(&rev, &cams(6), &BTreeMap::new()), a);
    }

    #[test]
    fn a_dead_node_moves_only_its_own_cameras() {
        let members = [node("a", None), node("b", None), node("c", None)];
        let before = assign(&members, &cams(6), &BTreeMap::new());
        let after = assign(&members[..2], &cams(6), &before);
        assert_eq!(moved(&before, &after), 2);
        assert!(counts(&after).values().all(|&n| n == 3));
    }

    #[test]
    fn a_joining_node_takes_only_its_share() {
        let two = [node("a", None), node("b", None)];
        let before = assign(&two, &cams(6), &BTreeMap::new());
        let three = [node("a", None), node("b", None), node("c", None)];
        let after = assign(&three, &cams(6), &before);
        assert_eq!(moved(&before, &after), 2, "{before:?} -> {after:?}");
        assert_eq!(counts(&after)["c"], 2);
        // Then nothing moves while nothing changes.
        assert_eq!(assign(&three, &cams(6), &after), after);
        // 6 cameras on 4 nodes: one more moves, none of the others.
        let four = [three.to_vec(), vec![node("d", None)]].concat();
        let fourth = assign(&four, &cams(6), &after);
        assert_eq!(moved(&after, &fourth), 1, "{after:?} -> {fourth:?}");
    }

    #[test]
    fn caps_models_and_refusals_are_kept() {
        let mut members = [node("a", Some(1)), node("b", Some(2))];
        let a = assign(&members, &cams(5), &BTreeMap::new());
        assert_eq!(counts(&a), [("a".into(), 1), ("b".into(), 2)].into());
        members[1].models = ["other".to_string()].into();
        let a = assign(&members, &cams(3), &BTreeMap::new());
        assert_eq!(counts(&a), [("a".into(), 1)].into());
        members[1].models = ["coco".to_string()].into();
        members[0].refused = ["cam0".to_string()].into();
        let a = assign(&members, &cams(1), &BTreeMap::new());
        assert_eq!(a.get("cam0").map(String::as_str), Some("b"));
        members[1].refused = ["cam0".to_string()].into();
        assert!(assign(&members, &cams(1), &BTreeMap::new()).is_empty());
    }

    #[test]
    fn an_owner_that_is_not_a_member_is_ignored() {
        let members = [node("a", None)];
        let owners = [("cam0".to_string(), "gone".to_string())].into();
        assert_eq!(assign(&members, &cams(1), &owners)["cam0"], "a");
        assert!(assign(&[], &cams(2), &BTreeMap::new()).is_empty());
    }
}
