//! The cascade: a classifier run on the crops of tracked objects, so that
//! a "bird" becomes a "goldfinch" (a stream's `classify:` rules).
//!
//! It runs inside the tracking stage, after the tracker, on the inference
//! thread that delivered the frame: within the detector's budget, not
//! beside it. That costs one classification (about 8 to 12 ms for
//! EfficientNet-Lite0 on one x86 core) on the few frames where
//! [`policy`] says an object deserves one, at most `max_attempts` per
//! object over its life, and nothing on frames without such an object.
//! The crop comes from the full decoded frame (a square around the box,
//! with a margin), scaled straight to the classifier's input.

pub mod policy;

use schemars::JsonSchema;
use serde::Deserialize;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use crate::frame::ObjectView;
use crate::frame::{Class, Crop, FullView, Output, SubLabel};
use crate::inference::Model;
use crate::inference::{ModelSpec, Task};
use crate::sync::locked;
pub use policy::Limits;
use policy::{Attempts, View};

/// Room around the box in a crop: the side is the box's longer side times this.
const MARGIN: f32 = 1.2;

/// ImageNet-1k class indices of each group (the classifier must have 1000
/// labels; `visiond check` says so otherwise).
pub fn group_classes(g: ClassGroup) -> Vec<u32> {
    match g {
        ClassGroup::Birds => (7..=24).chain(80..=100).chain(127..=146).collect(),
        ClassGroup::Dogs => (151..=268).collect(),
        ClassGroup::Cats => (281..=285).collect(),
        // ambulance, beach wagon, bicycle-built-for-two, cab, convertible,
        // fire engine, forklift, garbage truck, go-kart, golfcart, jeep,
        // limousine, minibus, minivan, Model T, moped, motor scooter,
        // mountain bike, moving van, pickup, police van, racer, recreational
        // vehicle, school bus, snowplow, sports car, streetcar, tow truck,
        // tractor, trailer truck, tricycle, trolleybus.
        ClassGroup::Vehicles => vec![
            407, 436, 444, 468, 511, 555, 561, 569, 573, 575, 609, 627, 654, 656, 661, 665, 670,
            671, 675, 717, 734, 751, 757, 779, 803, 817, 829, 864, 866, 867, 870, 874,
        ],
    }
}

/// Named sets of ImageNet-1k classes (a classifier with 1000 labels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ClassGroup {
    /// 59 bird species.
    Birds,
    /// 118 dog breeds.
    Dogs,
    /// 5 domestic cats.
    Cats,
    /// Cars, buses, trucks, vans, motorbikes, bicycles and the like.
    Vehicles,
}

/// One `classify:` rule of a stream, as the config resolved it.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSpec {
    /// The detector's labels whose objects are classified.
    pub labels: Vec<String>,
    /// The classifier's model name.
    pub model: String,
    /// Only these classes, by name (with `group`: both); empty: every class.
    pub classes: Vec<String>,
    pub group: Option<ClassGroup>,
    pub limits: Limits,
}

/// A classifier's session, shared by the rules that name it.
type Session = Arc<Mutex<Model>>;

/// Classifier sessions, loaded once per model and shared by the streams
/// whose rules name it (a reload with a changed model entry loads again).
#[derive(Default)]
pub struct Classifiers {
    loaded: Mutex<HashMap<String, (ModelSpec, Session)>>,
}

impl Classifiers {
    fn get(&self, cfg: &ModelSpec) -> Result<Session, String> {
        let mut loaded = locked(&self.loaded);
        if let Some((c, m)) = loaded.get(&cfg.name)
            && c == cfg
        {
            return Ok(m.clone());
        }
        // Every class, best first: a rule's subset may lie past any top_k.
        let mut every = cfg.clone();
        every.settings.top_k = usize::MAX;
        let started = std::time::Instant::now();
        let model = Model::load(&every, 1).map_err(|e| e.to_string())?;
        let ms = started.elapsed().as_secs_f32() * 1e3;
        tracing::info!(model = %cfg.name, ms, "classifier loaded");
        if model.task != Task::Classification {
            return Err(format!("model {:?} is not a classifier", cfg.name));
        }
        let model = Arc::new(Mutex::new(model));
        loaded.insert(cfg.name.clone(), (cfg.clone(), model.clone()));
        Ok(model)
    }
}

/// One rule, ready to run.
struct Rule {
    labels: Vec<Arc<str>>,
    /// Class indices the answer is chosen from; `None`: all.
    subset: Option<HashSet<u32>>,
    limits: Limits,
    classifier: Session,
}

/// A stream's rules and what they have tried.
pub struct Cascade {
    rules: Vec<Rule>,
    /// Per object: the rule that applies and its attempts.
    objects: HashMap<Arc<str>, (usize, Attempts)>,
    /// Classifier calls made, for the log and the tests.
    pub calls: u64,
}

impl Cascade {
    /// The stream's rules with their classifiers; a rule that cannot run
    /// (its model missing or not a classifier, a class it lacks) is left
    /// out and said why. `visiond check` refuses such a config first.
    pub fn new(
        rules: &[RuleSpec],
        models: &[ModelSpec],
        classifiers: &Classifiers,
    ) -> (Option<Self>, Vec<String>) {
        let mut ready = Vec::new();
        let mut problems = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            match resolve(r, models, classifiers) {
                Ok(rule) => ready.push(rule),
                Err(e) => problems.push(format!("classify[{i}]: {e}")),
            }
        }
        let cascade = (!ready.is_empty()).then(|| Self {
            rules: ready,
            objects: HashMap::new(),
            calls: 0,
        });
        (cascade, problems)
    }

    /// Classifies the objects of one frame that deserve it; the names
    /// assigned now. `now_ns`: the tracker's clock.
    pub fn frame(
        &mut self,
        objects: &[ObjectView],
        full: &FullView,
        now_ns: u64,
    ) -> Vec<(Arc<str>, SubLabel)> {
        let (fw, fh) = (full.0.width() as f32, full.0.height() as f32);
        // Ended objects are forgotten; one missed for a frame is not.
        self.objects
            .retain(|id, _| objects.iter().any(|o| o.id == *id));
        let mut named = Vec::new();
        for o in objects.iter().filter(|o| o.seen && o.sub_label.is_none()) {
            let Some(r) = self.rules.iter().position(|r| r.labels.contains(&o.label)) else {
                continue;
            };
            let rule = &self.rules[r];
            let (w, h) = (o.bbox.w * fw, o.bbox.h * fh);
            let view = View {
                long_side: w.max(h),
                area: w * h,
                score: o.score,
                stationary: o.stationary,
            };
            let (_, attempts) = self
                .objects
                .entry(o.id.clone())
                .or_insert((r, Attempts::default()));
            if !attempts.due(&view, &rule.limits, now_ns) {
                continue;
            }
            self.calls += 1;
            let started = std::time::Instant::now();
            let answer = classify(rule, full, o);
            let ms = started.elapsed().as_secs_f32() * 1e3;
            if let Some((class, score)) =
                attempts.record(&view, answer.map(|a| (a.0, a.1)), &rule.limits, now_ns)
            {
                let label = locked(&rule.classifier).labels.get(class as usize);
                tracing::info!(object = %o.id, sub_label = %label, score, attempts = attempts.made(), ms, "classified");
                named.push((o.id.clone(), SubLabel { label, score }));
            } else if let Some((class, p)) = answer {
                tracing::debug!(object = %o.id, class, p, attempt = attempts.made(), ms, "classify attempt");
            }
        }
        named
    }
}

fn resolve(r: &RuleSpec, models: &[ModelSpec], classifiers: &Classifiers) -> Result<Rule, String> {
    let cfg = models
        .iter()
        .find(|m| m.name == r.model)
        .ok_or_else(|| format!("no model named {:?}", r.model))?;
    let classifier = classifiers.get(cfg)?;
    let labels = locked(&classifier).labels.clone();
    let mut subset: Option<HashSet<u32>> = None;
    if let Some(g) = r.group {
        if labels.len() != 1000 {
            return Err(format!(
                "group needs an ImageNet-1k classifier; {:?} has {} labels",
                r.model,
                labels.len()
            ));
        }
        subset.get_or_insert_default().extend(group_classes(g));
    }
    for name in &r.classes {
        let i = (0..labels.len())
            .find(|&i| &*labels.get(i) == name.as_str())
            .ok_or_else(|| format!("{:?} has no class {name:?}", r.model))?;
        subset.get_or_insert_default().insert(i as u32);
    }
    Ok(Rule {
        labels: r.labels.iter().map(|l| Arc::from(l.as_str())).collect(),
        subset,
        limits: r.limits,
        classifier,
    })
}

/// The square crop around `o` with a margin, shifted inside the frame.
pub fn crop(o: &ObjectView, width: u32, height: u32) -> Crop {
    let (fw, fh) = (width as f32, height as f32);
    let side = ((o.bbox.w * fw).max(o.bbox.h * fh) * MARGIN)
        .min(fw.min(fh))
        .max(1.0);
    let cx = (o.bbox.x + o.bbox.w / 2.0) * fw;
    let cy = (o.bbox.y + o.bbox.h / 2.0) * fh;
    let x = (cx - side / 2.0).clamp(0.0, fw - side);
    let y = (cy - side / 2.0).clamp(0.0, fh - side);
    Crop {
        x: x as u32,
        y: y as u32,
        width: side as u32,
        height: side as u32,
    }
}

/// The best class within the rule's subset, and its probability.
fn classify(rule: &Rule, full: &FullView, o: &ObjectView) -> Option<(u32, f32)> {
    let mut model = locked(&rule.classifier);
    let (w, h) = (model.input.width, model.input.height);
    let image = full
        .0
        .rgb(crop(o, full.0.width(), full.0.height()), w, h)
        .map_err(|e| tracing::warn!(object = %o.id, "classify: the crop: {e}"))
        .ok()?;
    match model.infer(&image, 0.0) {
        Ok(Output::Classes(classes)) => best_within(&classes, rule.subset.as_ref()),
        Ok(Output::Detections(_)) => None,
        Err(e) => {
            tracing::warn!(object = %o.id, "classify: {e}");
            None
        }
    }
}

/// The first of `classes` (best first) within `subset`: the answer is
/// restricted to the rule's classes, not renormalised.
fn best_within(classes: &[Class], subset: Option<&HashSet<u32>>) -> Option<(u32, f32)> {
    classes
        .iter()
        .find(|c| subset.is_none_or(|s| s.contains(&c.label_id)))
        .map(|c| (c.label_id, c.score))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::BBox;

    #[test]
    fn the_answer_is_the_best_class_within_the_subset() {
        let class = |id: u32, score: f32| Class {
            label: "x".into(),
            label_id: id,
            score,
        };
        // Best first, as the classifier returns them.
        let classes = [class(285, 0.6), class(281, 0.2), class(11, 0.1)];
        assert_eq!(best_within(&classes, None), Some((285, 0.6)));
        let birds: HashSet<u32> = group_classes(ClassGroup::Birds).into_iter().collect();
        assert_eq!(best_within(&classes, Some(&birds)), Some((11, 0.1)));
        let dogs: HashSet<u32> = group_classes(ClassGroup::Dogs).into_iter().collect();
        assert_eq!(best_within(&classes, Some(&dogs)), None);
    }

    fn object(x: f32, y: f32, w: f32, h: f32) -> ObjectView {
        ObjectView {
            id: "o-1".into(),
            label: "cat".into(),
            bbox: BBox { x, y, w, h },
            score: 0.8,
            stationary: false,
            seen: true,
            sub_label: None,
        }
    }

    #[test]
    fn a_crop_is_a_square_with_margin_inside_the_frame() {
        // A 100x50 px box centred at (500, 250) of 1000x500: a 120 px
        // square around the same centre.
        let c = crop(&object(0.45, 0.45, 0.1, 0.1), 1000, 500);
        assert_eq!((c.width, c.height), (120, 120));
        assert_eq!((c.x, c.y), (440, 190));
        // At the corner: shifted inside, not cut.
        let c = crop(&object(0.0, 0.9, 0.1, 0.1), 1000, 500);
        assert_eq!((c.x, c.y, c.width), (0, 380, 120));
        // Larger than the frame's short side: the short side, centred.
        let c = crop(&object(0.0, 0.0, 1.0, 1.0), 1000, 500);
        assert_eq!((c.x, c.y, c.width, c.height), (250, 0, 500, 500));
    }

    #[test]
    fn groups_are_the_imagenet_classes_they_name() {
        assert_eq!(group_classes(ClassGroup::Birds).len(), 59);
        assert_eq!(group_classes(ClassGroup::Dogs).len(), 118);
        assert_eq!(group_classes(ClassGroup::Cats), [281, 282, 283, 284, 285]);
        let v = group_classes(ClassGroup::Vehicles);
        assert_eq!(v.len(), 32);
        assert!(v.iter().all(|&i| i < 1000));
    }
}
