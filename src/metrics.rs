//! Prometheus metrics: every metric camstream exports, registered once, all named `camstream_*`
//! (plus the standard `process_*` ones, from [`process`]). Label sets are kept empty (but for
//! the one constant `version` of `camstream_build_info`), so the series count is fixed.

pub mod process;

use anyhow::Result;
use prometheus::{
    Encoder as _, Gauge, Histogram, HistogramOpts, IntCounter, IntGauge, Opts, Registry,
    TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    pub frames_captured: IntCounter,
    pub frames_encoded: IntCounter,
    pub frames_sent: IntCounter,
    pub bytes_sent: IntCounter,
    pub frames_skipped: IntCounter,
    pub viewers_accepted: IntCounter,
    pub viewers_rejected: IntCounter,
    pub viewers_evicted: IntCounter,
    pub connections_rejected: IntCounter,
    pub auth_failures: IntCounter,
    pub auth_throttled: IntCounter,
    pub connections_evicted: IntCounter,
    pub source_errors: IntCounter,
    pub source_reconnects: IntCounter,
    pub control_changes: IntCounter,
    pub source_bad_frames: IntCounter,
    pub capture_fps: Gauge,
    pub viewers: IntGauge,
    pub viewers_max: IntGauge,
    pub connections: IntGauge,
    pub source_up: IntGauge,
    pub frame_bytes: IntGauge,
    pub encode_seconds: Histogram,
}

fn counter(r: &Registry, name: &str, help: &str) -> Result<IntCounter> {
    let c = IntCounter::with_opts(Opts::new(name, help).namespace("camstream"))?;
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

fn int_gauge(r: &Registry, name: &str, help: &str) -> Result<IntGauge> {
    let g = IntGauge::with_opts(Opts::new(name, help).namespace("camstream"))?;
    r.register(Box::new(g.clone()))?;
    Ok(g)
}

impl Metrics {
    pub fn new() -> Result<Metrics> {
        let r = Registry::new();
        let capture_fps = Gauge::with_opts(
            Opts::new(
                "capture_fps",
                "Frames per second delivered by the source, over the last second.",
            )
            .namespace("camstream"),
        )?;
        r.register(Box::new(capture_fps.clone()))?;
        // Buckets from 0.5 ms to 100 ms: a 640x480 frame takes ~1 ms, 1080p ~4 ms, a slow Pi ~30 ms.
        let encode_seconds = Histogram::with_opts(
            HistogramOpts::new("encode_seconds", "Time to encode one frame to JPEG.")
                .namespace("camstream")
                .buckets(vec![
                    0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.033, 0.066, 0.1,
                ]),
        )?;
        r.register(Box::new(encode_seconds.clone()))?;
        r.register(Box::new(process::ProcessCollector::new()?))?;
        let build_info = prometheus::IntGaugeVec::new(
            Opts::new(
                "build_info",
                "Always 1; the version label says which camstream runs.",
            )
            .namespace("camstream"),
            &["version"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        r.register(Box::new(build_info))?;
        Ok(Metrics {
            frames_captured: counter(&r, "frames_captured_total", "Frames received from the source.")?,
            frames_encoded: counter(&r, "frames_encoded_total", "Frames encoded to JPEG by camstream (passed-through frames are not).")?,
            frames_sent: counter(&r, "frames_sent_total", "Frames written to stream viewers.")?,
            bytes_sent: counter(&r, "bytes_sent_total", "Bytes written to stream viewers, headers included.")?,
            frames_skipped: counter(&r, "frames_skipped_total", "Frames a slow viewer did not get because a newer one replaced them.")?,
            viewers_accepted: counter(&r, "viewers_accepted_total", "Stream viewers admitted.")?,
            viewers_rejected: counter(&r, "viewers_rejected_total", "Stream viewers refused with 503 because every slot was taken.")?,
            viewers_evicted: counter(&r, "viewers_evicted_total", "Stream viewers disconnected because they accepted no data within the send timeout.")?,
            connections_rejected: counter(&r, "connections_rejected_total", "Connections refused because the connection limit or request queue was full.")?,
            auth_failures: counter(&r, "auth_failures_total", "Requests refused with 401 because their credentials were wrong.")?,
            auth_throttled: counter(&r, "auth_throttled_total", "Requests with credentials refused unchecked: 429 after too many wrong passwords from the address, or 503 while the password verifier was busy.")?,
            connections_evicted: counter(&r, "connections_evicted_total", "Connections closed before they sent a complete request head, to make room (connection cap, per-address head cap, head memory budget, or out of descriptors).")?,
            source_errors: counter(&r, "source_errors_total", "Failures to open or read the source.")?,
            source_reconnects: counter(&r, "source_reconnects_total", "Times the source came back after a failure.")?,
            control_changes: counter(&r, "control_changes_total", "Camera controls set through POST /controls.")?,
            source_bad_frames: counter(&r, "source_bad_frames_total", "Unusable frames from the source that were skipped.")?,
            capture_fps,
            viewers: int_gauge(&r, "viewers", "Stream viewers connected now.")?,
            viewers_max: int_gauge(&r, "viewers_max", "The stream viewer limit (--max-clients).")?,
            connections: int_gauge(&r, "connections", "Open HTTP connections of any kind.")?,
            source_up: int_gauge(&r, "source_up", "1 while the source delivers frames, 0 while it is down.")?,
            frame_bytes: int_gauge(&r, "frame_bytes", "Size of the newest JPEG frame in bytes.")?,
            encode_seconds,
            registry: r,
        })
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::with_capacity(8 << 10);
        // Encoding into a Vec cannot fail for the text format.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_metric_with_its_prefix() {
        let m = Metrics::new().unwrap();
        m.frames_sent.inc_by(3);
        m.viewers.set(2);
        m.encode_seconds.observe(0.0012);
        let text = m.render();
        assert!(text.contains("camstream_frames_sent_total 3\n"), "{text}");
        assert!(text.contains("camstream_viewers 2\n"));
        assert!(text.contains("camstream_encode_seconds_bucket{le=\"0.002\"} 1\n"));
        assert!(text.contains("process_resident_memory_bytes"));
        assert!(text.contains("process_cpu_seconds_total"));
        let version = env!("CARGO_PKG_VERSION");
        assert!(text.contains(&format!(
            "camstream_build_info{{version=\"{version}\"}} 1\n"
        )));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(
                line.starts_with("camstream_") || line.starts_with("process_"),
                "{line}"
            );
        }
    }
}
