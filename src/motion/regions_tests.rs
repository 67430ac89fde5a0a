//! The region builder and the merge on hand-made boxes in a 1920x1080
//! frame, with the SSD's 300-pixel input.

use std::sync::Arc;

use super::*;

const W: u32 = 1920;
const H: u32 = 1080;

/// A box given in source pixels, normalised.
fn px(x: f32, y: f32, w: f32, h: f32) -> BBox {
    BBox {
        x: x / W as f32,
        y: y / H as f32,
        w: w / W as f32,
        h: h / H as f32,
    }
}

fn regions(boxes: &[BBox]) -> Vec<Crop> {
    match plan(boxes, W, H, &RegionSettings::default()) {
        Look::Regions(r) => r,
        other => panic!("{other:?}"),
    }
}

fn contains(r: &Crop, b: &BBox) -> bool {
    let (x0, y0) = (b.x * W as f32, b.y * H as f32);
    let (x1, y1) = (x0 + b.w * W as f32, y0 + b.h * H as f32);
    r.x as f32 <= x0
        && r.y as f32 <= y0
        && x1 <= (r.x + r.width) as f32
        && y1 <= (r.y + r.height) as f32
}

#[test]
fn a_small_far_person_gets_one_region_of_the_models_size_around_it() {
    // 40x100 px at the end of a drive: 6x28 px if the frame were squeezed
    // to 300x300; 1:1 in its region.
    let person = px(1500.0, 200.0, 40.0, 100.0);
    let r = regions(&[person]);
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].width, r[0].height), (300, 300));
    assert!(contains(&r[0], &person), "{r:?}");
}

#[test]
fn a_region_at_the_frames_edge_is_shifted_inside_it() {
    let corner = px(1900.0, 1060.0, 20.0, 20.0);
    let r = regions(&[corner]);
    assert_eq!((r[0].x + r[0].width, r[0].y + r[0].height), (W, H));
    assert!(contains(&r[0], &corner));
}

#[test]
fn near_boxes_share_a_region_and_far_ones_do_not() {
    let a = px(100.0, 100.0, 40.0, 80.0);
    let b = px(200.0, 150.0, 40.0, 80.0);
    let far = px(1500.0, 800.0, 40.0, 80.0);
    let r = regions(&[a, b, far]);
    assert_eq!(r.len(), 2, "{r:?}");
    let shared = r.iter().find(|r| contains(r, &a)).expect("a's region");
    assert!(contains(shared, &b));
    assert!(r.iter().any(|r| contains(r, &far)));
}

#[test]
fn a_large_object_gets_a_region_large_enough_to_hold_it() {
    // Closer than the model's size: the region grows (the crop is then
    // scaled down to the model), never cut.
    let car = px(600.0, 300.0, 500.0, 300.0);
    let r = regions(&[car]);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].width, 600);
    assert!(contains(&r[0], &car));
    // A cluster wider than a square the frame's height holds: the whole
    // frame, never a region that leaves part of it out.
    let wide = px(100.0, 400.0, 1500.0, 200.0);
    assert_eq!(plan(&[wide], W, H, &RegionSettings::default()), Look::Whole);
}

#[test]
fn motion_in_many_places_joins_the_nearest_and_over_most_of_the_frame_is_whole() {
    let s = RegionSettings::default();
    // Five far-apart spots, one more than the limit: the two nearest
    // share a larger region; the others keep theirs.
    let mut spots: Vec<BBox> = (0..4)
        .map(|i| px(50.0 + i as f32 * 500.0, 500.0, 30.0, 30.0))
        .collect();
    spots.push(px(50.0, 800.0, 30.0, 30.0));
    let Look::Regions(r) = plan(&spots, W, H, &s) else {
        panic!("regions expected");
    };
    assert_eq!(r.len(), 4);
    assert!(spots.iter().all(|b| r.iter().any(|r| contains(r, b))));
    assert_eq!(r.iter().filter(|r| r.width > 300).count(), 1, "{r:?}");
    // Spread so that no two fit in a square of the frame's height: whole.
    let apart: Vec<BBox> = (0..3)
        .flat_map(|i| {
            [
                px(20.0 + i as f32 * 900.0, 20.0, 30.0, 30.0),
                px(20.0 + i as f32 * 900.0, 1030.0, 30.0, 30.0),
            ]
        })
        .collect();
    assert_eq!(plan(&apart, W, H, &s), Look::Whole);
    // Two regions as large as the frame's height cover most of it.
    let big = [px(0.0, 0.0, 900.0, 1000.0), px(1000.0, 0.0, 900.0, 1000.0)];
    assert_eq!(plan(&big, W, H, &s), Look::Whole);
    // Nothing moving: no model call at all.
    assert_eq!(plan(&[], W, H, &s), Look::Nothing);
    // A frame no larger than the model's input: whole.
    assert_eq!(plan(&spots[..1], 320, 240, &s), Look::Whole);
}

fn det(label: &str, score: f32, bbox: BBox) -> Detection {
    Detection {
        label: Arc::from(label),
        label_id: 0,
        score,
        bbox,
        track: None,
        sub_label: None,
        held: false,
    }
}

#[test]
fn detections_in_a_region_move_to_the_frames_coordinates() {
    let region = Crop {
        x: 960,
        y: 540,
        width: 300,
        height: 300,
    };
    // The region's centre, a tenth of it wide.
    let mut d = vec![det(
        "person",
        0.9,
        BBox {
            x: 0.45,
            y: 0.45,
            w: 0.1,
            h: 0.1,
        },
    )];
    to_frame(&mut d, &region, W, H);
    let b = &d[0].bbox;
    assert!((b.x * W as f32 - 1095.0).abs() < 0.5, "{b:?}");
    assert!((b.y * H as f32 - 675.0).abs() < 0.5, "{b:?}");
    assert!((b.w * W as f32 - 30.0).abs() < 0.5, "{b:?}");
}

#[test]
fn an_object_cut_by_a_regions_edge_is_one_object() {
    // Whole in one region, its left half in the neighbour's.
    let whole = det("person", 0.8, px(700.0, 300.0, 60.0, 150.0));
    let half = det("person", 0.7, px(700.0, 300.0, 30.0, 150.0));
    let merged = merge(vec![vec![half], vec![whole.clone()]]);
    assert_eq!(merged, vec![whole]);
}

#[test]
fn two_people_side_by_side_stay_two_and_labels_never_merge() {
    let left = det("person", 0.8, px(700.0, 300.0, 60.0, 150.0));
    let right = det("person", 0.9, px(755.0, 300.0, 60.0, 150.0));
    let merged = merge(vec![vec![left.clone()], vec![right.clone()]]);
    assert_eq!(merged, vec![right, left], "best first");
    // A dog in front of a person: two objects.
    let person = det("person", 0.8, px(700.0, 300.0, 60.0, 150.0));
    let dog = det("dog", 0.7, px(705.0, 400.0, 40.0, 40.0));
    assert_eq!(merge(vec![vec![person.clone()], vec![dog]]).len(), 2);
    // One region's own list stands: a child mostly behind an adult, as
    // the model saw them, stays two.
    let child = det("person", 0.6, px(710.0, 380.0, 40.0, 70.0));
    assert_eq!(merge(vec![vec![person, child]]).len(), 2);
}
