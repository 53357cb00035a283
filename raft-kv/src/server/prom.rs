//! Prometheus text exposition (format 0.0.4), written by hand: a few gauges, counters and
//! fixed-bucket histograms do not need a metrics framework.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Appends metric families to a string.
pub struct PromWriter<'a> {
    out: &'a mut String,
}

impl<'a> PromWriter<'a> {
    /// Writes into `out`.
    pub fn new(out: &'a mut String) -> Self {
        PromWriter { out }
    }

    /// Starts a family: its `# HELP` and `# TYPE` lines.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        // Writing to a String cannot fail.
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample line; `labels` are `(name, value)` pairs, values escaped.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{label}=\"{}\"", escape(value));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// A family with a single unlabelled sample.
    pub fn single(&mut self, name: &str, kind: &str, help: &str, value: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Upper bounds of the request latency buckets, in microseconds: 50 us to 10 s, fine below
/// a millisecond where a healthy loopback or LAN cluster answers.
const BUCKET_BOUNDS_US: [u64; 20] = [
    50, 100, 200, 300, 400, 500, 750, 1_000, 2_000, 5_000, 10_000, 25_000, 50_000, 100_000,
    250_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// The routes the HTTP layer tells apart in its metrics.
pub const ROUTES: [&str; 11] = [
    "put",
    "get",
    "delete",
    "list",
    "status",
    "members",
    "transfer",
    "metrics",
    "healthz",
    "other",
    "forwarded",
];

/// Latency and outcome counters of one route.
#[derive(Debug, Default)]
struct RouteCounters {
    buckets: [AtomicU64; BUCKET_BOUNDS_US.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
    by_class: [AtomicU64; 5],
}

/// Request counters and latency histograms per route, and connection counters; lock-free.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    routes: [RouteCounters; ROUTES.len()],
    /// Connections of the HTTP listener.
    pub connections: ConnectionMetrics,
}

/// What the HTTP accept loop counts.
#[derive(Debug, Default)]
pub struct ConnectionMetrics {
    /// Connections open now.
    pub open: AtomicU64,
    /// Connections accepted since start.
    pub accepted: AtomicU64,
    /// TLS handshakes that failed or timed out.
    pub handshakes_failed: AtomicU64,
    /// The connection cap in force.
    pub max: AtomicU64,
}

impl ConnectionMetrics {
    fn render(&self, w: &mut PromWriter<'_>) {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed) as f64;
        w.single(
            "raft_kv_http_connections_open",
            "gauge",
            "HTTP connections open now.",
            load(&self.open),
        );
        w.single(
            "raft_kv_http_connections_max",
            "gauge",
            "The HTTP connection cap (sized under the open-files limit).",
            load(&self.max),
        );
        w.single(
            "raft_kv_http_connections_accepted_total",
            "counter",
            "HTTP connections accepted.",
            load(&self.accepted),
        );
        w.single(
            "raft_kv_http_tls_handshakes_failed_total",
            "counter",
            "HTTPS handshakes that failed or timed out.",
            load(&self.handshakes_failed),
        );
    }
}

impl HttpMetrics {
    /// Records one request on route number `route` (an index into [`ROUTES`]).
    pub fn record(&self, route: usize, status: u16, elapsed: Duration) {
        let Some(counters) = self.routes.get(route) else {
            return;
        };
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        if let Some(bucket) = BUCKET_BOUNDS_US.iter().position(|&bound| us <= bound) {
            counters.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        }
        counters.count.fetch_add(1, Ordering::Relaxed);
        counters.sum_us.fetch_add(us, Ordering::Relaxed);
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        counters.by_class[class].fetch_add(1, Ordering::Relaxed);
    }

    /// Appends the request metrics.
    pub fn render(&self, w: &mut PromWriter<'_>) {
        let name = "raft_kv_http_request_duration_seconds";
        w.family(name, "histogram", "HTTP request latency by route.");
        for (route, counters) in ROUTES.iter().zip(&self.routes) {
            let mut cumulative = 0;
            for (bound, bucket) in BUCKET_BOUNDS_US.iter().zip(&counters.buckets) {
                cumulative += bucket.load(Ordering::Relaxed);
                let le = format!("{}", *bound as f64 / 1e6);
                w.sample(
                    &format!("{name}_bucket"),
                    &[("route", route), ("le", &le)],
                    cumulative as f64,
                );
            }
            let count = counters.count.load(Ordering::Relaxed) as f64;
            w.sample(
                &format!("{name}_bucket"),
                &[("route", route), ("le", "+Inf")],
                count,
            );
            let sum = counters.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
            w.sample(&format!("{name}_sum"), &[("route", route)], sum);
            w.sample(&format!("{name}_count"), &[("route", route)], count);
        }
        let name = "raft_kv_http_responses_total";
        w.family(name, "counter", "HTTP responses by route and status class.");
        for (route, counters) in ROUTES.iter().zip(&self.routes) {
            for (class, counter) in ["1xx", "2xx", "3xx", "4xx", "5xx"]
                .iter()
                .zip(&counters.by_class)
            {
                let n = counter.load(Ordering::Relaxed);
                if n > 0 {
                    w.sample(name, &[("route", route), ("class", class)], n as f64);
                }
            }
        }
        self.connections.render(w);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: histogram buckets are cumulative, the +Inf bucket equals the count, and labels
    /// are escaped.
    #[test]
    fn renders_cumulative_histograms() {
        let metrics = HttpMetrics::default();
        metrics.record(0, 200, Duration::from_micros(80));
        metrics.record(0, 200, Duration::from_micros(40));
        metrics.record(0, 200, Duration::from_micros(300));
        metrics.record(0, 412, Duration::from_secs(20));
        let mut out = String::new();
        metrics.render(&mut PromWriter::new(&mut out));
        assert!(out.contains(
            "raft_kv_http_request_duration_seconds_bucket{route=\"put\",le=\"0.0001\"} 2\n"
        ));
        assert!(out.contains(
            "raft_kv_http_request_duration_seconds_bucket{route=\"put\",le=\"0.0005\"} 3\n"
        ));
        assert!(out.contains(
            "raft_kv_http_request_duration_seconds_bucket{route=\"put\",le=\"+Inf\"} 4\n"
        ));
        assert!(out.contains("raft_kv_http_responses_total{route=\"put\",class=\"4xx\"} 1\n"));
        let mut out = String::new();
        PromWriter::new(&mut out).sample("m", &[("l", "a\"b")], 1.0);
        assert_eq!(out, "m{l=\"a\\\"b\"} 1\n");
    }
}
