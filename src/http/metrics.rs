//! `/metrics`: the streams', the MQTT client's and the fleet's numbers,
//! read at each scrape and written in the Prometheus text format (0.0.4)
//! by the Prometheus project's own encoder (`prometheus-client`), which
//! escapes label values and names counters with `_total`.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::fleet::FleetState;
use crate::publish::MqttCounters;
use crate::stats::{LATENCY_BUCKETS_MS, StreamStats};
use crate::status::StreamState;

/// The exposition of `streams`, `mqtt` and, where this node is in one, the fleet.
pub fn text(
    streams: Vec<(String, Arc<StreamStats>)>,
    mqtt: Arc<MqttCounters>,
    fleet: Option<Arc<FleetState>>,
) -> String {
    let mut registry = Registry::with_prefix("visiond");
    registry.register_collector(Box::new(Streams(streams)));
    registry.register_collector(Box::new(Process(mqtt)));
    if let Some(f) = fleet {
        registry
            .sub_registry_with_prefix("fleet")
            .register_collector(Box::new(Fleet(f)));
    }
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
    out
}

/// One counter per stream: its name, help and value.
type StreamCounter = (&'static str, &'static str, fn(&StreamStats) -> u64);

const STREAM_COUNTERS: [StreamCounter; 12] = [
    ("frames_in", "Decoded frames.", |s| {
        s.frames_in.load(Relaxed)
    }),
    (
        "frames_skipped",
        "Frames left out by the fps setting.",
        |s| s.frames_skipped.load(Relaxed),
    ),
    (
        "frames_dropped",
        "Frames dropped because inference was busy.",
        |s| s.frames_dropped.load(Relaxed),
    ),
    ("frames_analysed", "Frames analysed and published.", |s| {
        s.frames_analysed.load(Relaxed)
    }),
    (
        "frames_failed",
        "Frames the model failed on (an error or a panic).",
        |s| s.frames_failed.load(Relaxed),
    ),
    (
        "inference_panics",
        "Frames whose analysis panicked; the worker carries on.",
        |s| s.inference_panics.load(Relaxed),
    ),
    ("reconnects", "Source reconnections.", |s| {
        s.sessions.load(Relaxed).saturating_sub(1)
    }),
    (
        "model_inputs",
        "Model inputs run: whole frames and motion regions.",
        |s| s.model_inputs.load(Relaxed),
    ),
    (
        "motion_frames_whole",
        "Analysed frames the model looked at whole.",
        |s| s.looked_whole.load(Relaxed),
    ),
    (
        "motion_frames_regions",
        "Analysed frames the model looked at in regions.",
        |s| s.looked_regions.load(Relaxed),
    ),
    (
        "motion_frames_idle",
        "Analysed frames with nothing moving: no model call.",
        |s| s.looked_none.load(Relaxed),
    ),
    ("motion_regions", "Motion regions analysed.", |s| {
        s.regions.load(Relaxed)
    }),
];

#[derive(Debug)]
struct Streams(Vec<(String, Arc<StreamStats>)>);

impl Collector for Streams {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (name, help, get) in STREAM_COUNTERS {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (s, stats) in &self.0 {
                ConstCounter::new(get(stats))
                    .encode(family.encode_family(&[("stream", s.as_str())])?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "motion_seconds",
            "Time in the motion stage.",
            None,
            MetricType::Counter,
        )?;
        for (s, stats) in &self.0 {
            let secs = stats.motion_us.load(Relaxed) as f64 / 1e6;
            ConstCounter::new(secs).encode(family.encode_family(&[("stream", s.as_str())])?)?;
        }
        let mut family = encoder.encode_descriptor(
            "stream_state",
            "1 for the state the stream is in.",
            None,
            MetricType::Gauge,
        )?;
        for (s, stats) in &self.0 {
            let now = stats.state.lock().ok().and_then(|st| *st).map(|st| st.0);
            for state in StreamState::ALL {
                let labels = [("stream", s.as_str()), ("state", state.as_str())];
                ConstGauge::new(i64::from(now == Some(state)))
                    .encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "inference_ms",
            "Time in the model per analysed frame.",
            None,
            MetricType::Histogram,
        )?;
        for (s, stats) in &self.0 {
            let (cumulative, sum) = stats.inference.read();
            // The encoder adds the buckets up itself.
            let mut before = 0;
            let buckets: Vec<(f64, u64)> = cumulative
                .iter()
                .enumerate()
                .map(|(i, &c)| {
                    let le = LATENCY_BUCKETS_MS.get(i).map_or(f64::INFINITY, |b| *b);
                    let n = c - before;
                    before = c;
                    (le, n)
                })
                .collect();
            family
                .encode_family(&[("stream", s.as_str())])?
                .encode_histogram::<NoLabelSet>(sum, before, &buckets, None)?;
        }
        Ok(())
    }
}

/// The MQTT client's counts and the process's memory.
#[derive(Debug)]
struct Process(Arc<MqttCounters>);

impl Collector for Process {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let m = &self.0;
        for (name, help, v) in [
            (
                "mqtt_published",
                "Messages sent (QoS 0) or acknowledged by the broker (QoS 1).",
                m.published.load(Relaxed),
            ),
            (
                "mqtt_dropped",
                "Messages lost: QoS 0 while the broker was unreachable, QoS 1 beyond the spool's bound.",
                m.dropped.load(Relaxed),
            ),
        ] {
            let c = ConstCounter::new(v);
            c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)?;
        }
        for (name, help, v) in [
            (
                "mqtt_spooled",
                "QoS 1 messages in the spool waiting for the broker's acknowledgement.",
                m.spooled.load(Relaxed),
            ),
            (
                "mqtt_connected",
                "1 while connected to the broker.",
                u64::from(m.connected.load(Relaxed)),
            ),
            (
                "full_frames_held",
                "Decoded frames kept by reference for snapshots and the status page, all streams.",
                crate::source::full::held(),
            ),
            (
                "heap_in_use_bytes",
                "Bytes allocated and not freed (glibc's count): a leak raises it; RSS also keeps what was freed.",
                heap_in_use(),
            ),
        ] {
            gauge(&mut encoder, name, help, v)?;
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Fleet(Arc<FleetState>);

impl Collector for Fleet {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let f = &self.0;
        let refused = crate::sync::locked(&f.refused).len();
        for (name, help, v) in [
            (
                "etcd_up",
                "1 while etcd answers.",
                u64::from(f.etcd_up.load(Relaxed)),
            ),
            (
                "lease_ok",
                "1 while this node's lease is alive: its fleet cameras may run.",
                u64::from(f.lease_ok.load(Relaxed)),
            ),
            (
                "streams_owned",
                "Fleet cameras this node runs (holds the owner key of).",
                f.owned.load(Relaxed) as u64,
            ),
            (
                "nodes",
                "Live nodes in the fleet, this one included.",
                f.nodes.load(Relaxed) as u64,
            ),
            (
                "streams_refused",
                "Fleet cameras this node refuses (invalid here, or failed to start).",
                refused as u64,
            ),
        ] {
            gauge(&mut encoder, name, help, v)?;
        }
        let c = ConstCounter::new(f.fence.dropped.load(Relaxed));
        c.encode(encoder.encode_descriptor(
            "messages_fenced",
            "Fleet cameras' messages held back: the lease had lapsed, or the camera had moved.",
            None,
            c.metric_type(),
        )?)
    }
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: u64,
) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(v);
    g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)
}

/// What glibc's allocator has handed out and not had back, in its arenas
/// and mmapped blocks; 0 on other C libraries.
fn heap_in_use() -> u64 {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 only reads the allocator's statistics.
        let m = unsafe { libc::mallinfo2() };
        (m.uordblks + m.hblkhd) as u64
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::Fence;

    #[test]
    fn the_fleet_counts_under_their_names() {
        let fleet = Arc::new(FleetState {
            fence: Arc::new(Fence::new(std::time::Instant::now())),
            etcd_up: true.into(),
            lease_ok: true.into(),
            owned: 3.into(),
            nodes: 2.into(),
            refused: std::sync::Mutex::new([("cam".into(), "why".into())].into()),
        });
        let text = text(Vec::new(), Arc::default(), Some(fleet));
        for line in [
            "visiond_fleet_etcd_up 1",
            "visiond_fleet_lease_ok 1",
            "visiond_fleet_streams_owned 3",
            "visiond_fleet_nodes 2",
            "visiond_fleet_streams_refused 1",
            "visiond_fleet_messages_fenced_total 0",
            "# TYPE visiond_fleet_messages_fenced_total counter",
            "visiond_mqtt_connected 0",
            "visiond_mqtt_published_total 0",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
    }
}
