use std::time::UNIX_EPOCH;

use super::*;

fn t(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + ms)
}

fn view(score: f32, x: f32, w: f32) -> View {
    View {
        score,
        bbox: BBox {
            x,
            y: 0.2,
            w,
            h: 0.5,
        },
    }
}

fn id(s: &str) -> Arc<str> {
    s.into()
}

/// Frames are numbered: which frame a shot shows.
type P = Policy<u32>;

#[test]
fn new_sends_at_once_and_a_second_within_the_interval_waits_for_it() {
    let mut p = P::new(INTERVAL);
    let (a, b, person) = (id("a"), id("b"), id("person"));
    let shot = p.confirmed(&a, &person, view(0.6, 0.3, 0.1), false, 1, t(0));
    assert_eq!(shot.map(|s| (s.frame, s.first)), Some((1, true)));
    // Another person 1 s later: too soon, it waits.
    assert!(
        p.confirmed(&b, &person, view(0.7, 0.5, 0.1), false, 2, t(1000))
            .is_none()
    );
    assert_eq!(p.waiting(), 1);
    assert!(p.due(t(4999)).is_empty(), "not before 5 s");
    let due = p.due(t(5000));
    assert_eq!(due.len(), 1);
    assert_eq!((&*due[0].id, due[0].frame), ("b", 2));
    assert_eq!(p.waiting(), 0);
    // Another label has its own interval.
    let car = id("car");
    assert!(
        p.confirmed(&id("c"), &car, view(0.5, 0.4, 0.2), false, 3, t(5001))
            .is_some()
    );
}

#[test]
fn a_clearly_better_view_is_sent_and_near_copies_are_not() {
    let mut p = P::new(INTERVAL);
    let (a, person) = (id("a"), id("person"));
    assert!(
        p.confirmed(&a, &person, view(0.5, 0.3, 0.1), false, 0, t(0))
            .is_some()
    );
    let mut sent = Vec::new();
    // Every 200 ms for 20 s, a slightly different view: none clearly better.
    for i in 1..100 {
        let v = view(0.5 + (i % 3) as f32 * 0.02, 0.3 + i as f32 * 0.001, 0.1);
        sent.extend(p.seen(&a, v, i, t(i as u64 * 200)));
        sent.extend(p.due(t(i as u64 * 200)));
    }
    assert!(sent.is_empty(), "{sent:?}");
    // Larger and as sure: better, and the interval has passed.
    let big = view(0.52, 0.3, 0.16);
    assert_eq!(p.seen(&a, big, 200, t(30_000)).map(|s| s.frame), Some(200));
    // Surer, 1 s later: it waits, and an even better one replaces it.
    assert!(p.seen(&a, view(0.65, 0.3, 0.16), 201, t(31_000)).is_none());
    assert!(p.seen(&a, view(0.80, 0.3, 0.16), 202, t(32_000)).is_none());
    assert!(p.seen(&a, view(0.70, 0.3, 0.16), 203, t(33_000)).is_none());
    let due = p.due(t(35_000));
    assert_eq!(due.iter().map(|s| s.frame).collect::<Vec<_>>(), [202]);
    // And what is compared from now on is that view.
    assert!(p.seen(&a, view(0.85, 0.3, 0.16), 204, t(50_000)).is_none());
}

#[test]
fn a_view_on_the_frame_edge_is_worse_and_leaving_the_edge_is_better() {
    let edge = view(0.9, 0.0, 0.2);
    let inside = view(0.85, 0.3, 0.2);
    assert!(edge.on_edge() && !inside.on_edge());
    assert!(inside.clearly_better(&edge));
    assert!(!edge.clearly_better(&inside));
    assert!(
        !view(0.99, 0.995, 0.3).clearly_better(&inside),
        "cut off on the right"
    );
    let mut p = P::new(INTERVAL);
    let (a, person) = (id("a"), id("person"));
    assert!(p.confirmed(&a, &person, edge, false, 0, t(0)).is_some());
    assert!(p.seen(&a, inside, 1, t(6000)).is_some());
}

#[test]
fn nothing_is_sent_while_an_object_stands_still() {
    let mut p = P::new(INTERVAL);
    let (a, person) = (id("a"), id("person"));
    // Confirmed standing still: no snapshot, none for later views either.
    assert!(
        p.confirmed(&a, &person, view(0.6, 0.3, 0.1), true, 0, t(0))
            .is_none()
    );
    assert!(p.seen(&a, view(0.9, 0.3, 0.3), 1, t(10_000)).is_none());
    // It moves: its first view goes out as news.
    p.stationary(&a, false);
    let s = p.seen(&a, view(0.6, 0.3, 0.1), 2, t(11_000)).expect("sent");
    assert!(s.first);
    // A better view waits; it stops before the interval is over: dropped.
    assert!(p.seen(&a, view(0.9, 0.3, 0.2), 3, t(12_000)).is_none());
    assert_eq!(p.waiting(), 1);
    p.stationary(&a, true);
    assert_eq!(p.waiting(), 0, "a still object's waiting view goes");
    assert!(p.due(t(20_000)).is_empty());
    assert!(p.seen(&a, view(0.99, 0.3, 0.4), 4, t(30_000)).is_none());
}

#[test]
fn an_ended_object_sends_nothing_more_and_unknown_ones_nothing_at_all() {
    let mut p = P::new(INTERVAL);
    let (a, b, person) = (id("a"), id("b"), id("person"));
    assert!(
        p.confirmed(&a, &person, view(0.5, 0.3, 0.1), false, 0, t(0))
            .is_some()
    );
    assert!(
        p.confirmed(&b, &person, view(0.5, 0.5, 0.1), false, 1, t(100))
            .is_none()
    );
    p.ended("b");
    assert!(p.due(t(6000)).is_empty(), "b's view went with b");
    p.ended("a");
    assert!(p.seen(&a, view(0.9, 0.3, 0.3), 2, t(20_000)).is_none());
    assert!(
        p.seen(&id("x"), view(0.9, 0.3, 0.3), 3, t(20_000))
            .is_none()
    );
}

#[test]
fn news_beats_a_better_view_of_an_older_object() {
    let mut p = P::new(INTERVAL);
    let (a, b, person) = (id("a"), id("b"), id("person"));
    assert!(
        p.confirmed(&a, &person, view(0.5, 0.3, 0.1), false, 0, t(0))
            .is_some()
    );
    assert!(
        p.confirmed(&b, &person, view(0.5, 0.6, 0.1), false, 1, t(1000))
            .is_none()
    );
    // A's better view does not push b's `new` out.
    assert!(p.seen(&a, view(0.9, 0.3, 0.2), 2, t(2000)).is_none());
    let due = p.due(t(5000));
    assert_eq!(due.iter().map(|s| &*s.id).collect::<Vec<_>>(), ["b"]);
}

#[test]
fn at_most_one_per_label_per_interval_whatever_comes() {
    // Many objects of one label, confirmed and improving, every 100 ms.
    let mut p = P::new(INTERVAL);
    let person = id("person");
    let mut sent = Vec::new();
    for i in 0..600u32 {
        let at = t(u64::from(i) * 100);
        let o = id(&format!("o{}", i / 10));
        if i % 10 == 0 {
            sent.extend(
                p.confirmed(&o, &person, view(0.4, 0.3, 0.1), false, i, at)
                    .map(|_| at),
            );
        } else {
            let v = view(
                0.4 + (i % 10) as f32 * 0.06,
                0.3,
                0.1 + (i % 10) as f32 * 0.02,
            );
            sent.extend(p.seen(&o, v, i, at).map(|_| at));
        }
        sent.extend(p.due(at).into_iter().map(|_| at));
        if i % 10 == 9 {
            p.ended(&o);
        }
    }
    assert!(sent.len() >= 10, "{} sent", sent.len());
    for w in sent.windows(2) {
        assert!(
            w[1].duration_since(w[0]).unwrap_or_default() >= INTERVAL,
            "{w:?}"
        );
    }
}

#[test]
fn a_clock_that_steps_back_does_not_mute_snapshots() {
    let mut p = P::new(INTERVAL);
    let person = id("person");
    assert!(
        p.confirmed(&id("a"), &person, view(0.5, 0.3, 0.1), false, 0, t(100_000))
            .is_some()
    );
    assert!(
        p.confirmed(&id("b"), &person, view(0.5, 0.3, 0.1), false, 1, t(0))
            .is_some()
    );
}
