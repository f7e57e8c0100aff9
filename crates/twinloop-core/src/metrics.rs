//! The process-wide Prometheus recorder: the `metrics` macros record into one global recorder,
//! and every server in the process (V2 serving, the feature server) renders `/metrics` from it.
//! It lives here so that a server can share it without linking another server's crate.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        // Buckets are refused only when empty, and these are constants; were they refused,
        // histograms would render as summaries rather than take `/metrics` down.
        let recorder = with_buckets(PrometheusBuilder::new())
            .unwrap_or_else(|_| PrometheusBuilder::new())
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (tests run several servers in one process).
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

fn with_buckets(builder: PrometheusBuilder) -> Result<PrometheusBuilder, BuildError> {
    builder
        .set_buckets_for_metric(
            Matcher::Suffix("seconds".into()),
            &[
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0,
            ],
        )?
        .set_buckets_for_metric(
            Matcher::Prefix("twinloop_serving_batch".into()),
            &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0],
        )
}
