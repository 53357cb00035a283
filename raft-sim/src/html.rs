//! A self-contained HTML page (inline SVG, no scripts or external files) showing one run as
//! a timeline: a lane per node colored by role, with its term and commit index, crash,
//! pause and other fault markers; a lane per client with its operations; violations in red.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use raft_core::{NodeId, Role};

use crate::checker::Violation;
use crate::host::{Host, Liveness};
use crate::linearizability::Operation;

/// A node's visible state at some time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NodeState {
    Running { role: Role, term: u64, commit: u64 },
    Down,
    Halted,
}

/// What the page shows, collected during the run.
#[derive(Clone, Debug)]
pub struct Timeline {
    nodes: Vec<NodeId>,
    samples: BTreeMap<NodeId, Vec<(u64, NodeState)>>,
    marks: Vec<(u64, Option<NodeId>, String)>,
    operations: Vec<Operation>,
    violations: Vec<Violation>,
    end_us: u64,
}

impl Timeline {
    /// An empty timeline for these nodes.
    pub fn new(nodes: Vec<NodeId>) -> Self {
        Timeline {
            nodes,
            samples: BTreeMap::new(),
            marks: Vec::new(),
            operations: Vec::new(),
            violations: Vec::new(),
            end_us: 0,
        }
    }

    /// Records the host's state if it changed.
    pub fn sample(&mut self, now_us: u64, host: &Host) {
        let state = match (&host.liveness, host.node()) {
            (Liveness::Up, Some(node)) => NodeState::Running {
                role: node.role(),
                term: node.term(),
                commit: node.commit_index(),
            },
            (Liveness::Halted(_), _) => NodeState::Halted,
            _ => NodeState::Down,
        };
        let samples = self.samples.entry(host.id()).or_default();
        if samples.last().map(|(_, s)| *s) != Some(state) {
            samples.push((now_us, state));
        }
    }

    /// Records a fault or other notable moment (`None`: cluster-wide).
    pub fn mark(&mut self, now_us: u64, node: Option<NodeId>, text: String) {
        self.marks.push((now_us, node, text));
    }

    /// Closes the timeline with the client history and the violations.
    pub fn finish(&mut self, end_us: u64, history: &[Operation], violations: &[Violation]) {
        self.end_us = end_us.max(1);
        self.operations = history.to_vec();
        self.violations = violations.to_vec();
    }

    /// Renders the page.
    pub fn render_html(&self, title: &str) -> String {
        const LEFT: f64 = 90.0;
        const WIDTH: f64 = 1800.0;
        const LANE: f64 = 34.0;
        let x = |t: u64| LEFT + WIDTH * t as f64 / self.end_us as f64;
        let clients: Vec<u64> = {
            let mut c: Vec<u64> = self.operations.iter().map(|o| o.client).collect();
            c.sort_unstable();
            c.dedup();
            c
        };
        let height = 40.0 + LANE * (self.nodes.len() + clients.len()) as f64 + 40.0;
        let mut svg = String::new();
        let _ = write!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{height}" font-family="monospace" font-size="11">"#,
            LEFT + WIDTH + 20.0
        );
        self.render_axis(&mut svg, &x, height);
        for (lane, node) in self.nodes.iter().enumerate() {
            let y = 30.0 + LANE * lane as f64;
            self.render_node(&mut svg, *node, y, LANE, &x);
        }
        for (lane, client) in clients.iter().enumerate() {
            let y = 30.0 + LANE * (self.nodes.len() + lane) as f64;
            self.render_client(&mut svg, *client, y, LANE, &x);
        }
        for v in &self.violations {
            let vx = x(v.at_us);
            let _ = write!(
                svg,
                r#"<line x1="{vx}" y1="20" x2="{vx}" y2="{height}" stroke="red" stroke-width="2"><title>{}</title></line>"#,
                escape(&v.to_string())
            );
        }
        svg.push_str("</svg>");
        let violations: String = if self.violations.is_empty() {
            "<p>All checks held.</p>".into()
        } else {
            let items: Vec<String> = self
                .violations
                .iter()
                .map(|v| format!("<li>{}</li>", escape(&v.to_string())))
                .collect();
            format!("<ul class=v>{}</ul>", items.join(""))
        };
        format!(
            "<!DOCTYPE html><html><head><meta charset=utf-8><title>{t}</title><style>\
             body{{font-family:sans-serif;margin:1em}}.v li{{color:#b00}}.legend span{{padding:0 .6em;margin-right:.5em}}\
             div.scroll{{overflow-x:auto;border:1px solid #ccc}}</style></head><body><h1>{t}</h1>\
             <p class=legend><span style=background:#2e7d32;color:white>leader</span>\
             <span style=background:#f9a825>candidate</span><span style=background:#ffe082>pre-candidate</span>\
             <span style=background:#90caf9>follower</span><span style=background:#555;color:white>down</span>\
             <span style=background:#000;color:white>halted</span> client ops: \
             <span style=background:#66bb6a>answered</span><span style=background:#ef9a9a>unknown</span>. \
             Hover for details; fault markers are triangles, red lines are violations.</p>\
             {violations}<div class=scroll>{svg}</div></body></html>",
            t = escape(title)
        )
    }

    fn render_axis(&self, svg: &mut String, x: &dyn Fn(u64) -> f64, height: f64) {
        let step = nice_step(self.end_us);
        let mut t = 0;
        while t <= self.end_us {
            let tx = x(t);
            let _ = write!(
                svg,
                r##"<line x1="{tx}" y1="18" x2="{tx}" y2="{height}" stroke="#eee"/><text x="{tx}" y="12">{}ms</text>"##,
                t / 1000
            );
            t += step;
        }
        for (at, node, text) in &self.marks {
            if node.is_none() {
                let mx = x(*at);
                let _ = write!(
                    svg,
                    r##"<line x1="{mx}" y1="18" x2="{mx}" y2="{height}" stroke="#7b1fa2" stroke-dasharray="4 3"><title>{}</title></line>"##,
                    escape(text)
                );
            }
        }
    }

    fn render_node(
        &self,
        svg: &mut String,
        node: NodeId,
        y: f64,
        lane: f64,
        x: &dyn Fn(u64) -> f64,
    ) {
        let _ = write!(svg, r#"<text x="4" y="{}">n{node}</text>"#, y + lane / 2.0);
        let samples = self.samples.get(&node).cloned().unwrap_or_default();
        let max_commit = samples
            .iter()
            .filter_map(|(_, s)| match s {
                NodeState::Running { commit, .. } => Some(*commit),
                _ => None,
            })
            .max()
            .unwrap_or(0)
            .max(1);
        let commit_points = self.render_segments(svg, node, &samples, y, lane, x);
        if !commit_points.is_empty() {
            let points: Vec<String> = commit_points
                .iter()
                .map(|(px, c)| {
                    format!(
                        "{px:.1},{:.1}",
                        y + lane - 5.0 - (lane - 14.0) * *c as f64 / max_commit as f64
                    )
                })
                .collect();
            let _ = write!(
                svg,
                r##"<polyline points="{}" fill="none" stroke="#1a237e" stroke-width="1"/>"##,
                points.join(" ")
            );
        }
        for (at, _, text) in self.marks.iter().filter(|(_, n, _)| *n == Some(node)) {
            let mx = x(*at);
            let _ = write!(
                svg,
                r##"<path d="M{mx},{} l-4,-7 h8 z" fill="#d84315"><title>{}</title></path>"##,
                y + 9.0,
                escape(text)
            );
        }
    }

    /// Draws the node's role segments and term labels; returns the commit-index points.
    fn render_segments(
        &self,
        svg: &mut String,
        node: NodeId,
        samples: &[(u64, NodeState)],
        y: f64,
        lane: f64,
        x: &dyn Fn(u64) -> f64,
    ) -> Vec<(f64, u64)> {
        let mut last_term = None;
        let mut commit_points = Vec::new();
        for (i, (at, state)) in samples.iter().enumerate() {
            let end = samples.get(i + 1).map_or(self.end_us, |(t, _)| *t);
            let (x0, x1) = (x(*at), x(end).max(x(*at) + 0.5));
            let (color, label) = match state {
                NodeState::Running { role, term, commit } => {
                    commit_points.push((x0, *commit));
                    (
                        role_color(*role),
                        format!("{role:?} term {term} commit {commit}"),
                    )
                }
                NodeState::Down => ("#555", "down".to_string()),
                NodeState::Halted => ("#000", "halted".to_string()),
            };
            let _ = write!(
                svg,
                r#"<rect x="{x0}" y="{}" width="{}" height="{}" fill="{color}"><title>n{node} {}</title></rect>"#,
                y + 2.0,
                x1 - x0,
                lane - 6.0,
                escape(&label)
            );
            if let NodeState::Running { term, .. } = state
                && last_term != Some(*term)
            {
                last_term = Some(*term);
                let _ = write!(
                    svg,
                    r#"<text x="{}" y="{}" font-size="9">t{term}</text>"#,
                    x0 + 1.0,
                    y + 11.0
                );
            }
        }
        commit_points
    }

    fn render_client(
        &self,
        svg: &mut String,
        client: u64,
        y: f64,
        lane: f64,
        x: &dyn Fn(u64) -> f64,
    ) {
        let _ = write!(
            svg,
            r#"<text x="4" y="{}">client {client}</text>"#,
            y + lane / 2.0
        );
        for op in self.operations.iter().filter(|o| o.client == client) {
            let end = op.return_us.unwrap_or(self.end_us);
            let (x0, x1) = (x(op.call_us), x(end).max(x(op.call_us) + 1.0));
            let color = if op.return_us.is_some() {
                "#66bb6a"
            } else {
                "#ef9a9a"
            };
            let _ = write!(
                svg,
                r#"<rect x="{x0}" y="{}" width="{}" height="{}" fill="{color}" stroke="white" stroke-width="0.3"><title>{}</title></rect>"#,
                y + 4.0,
                x1 - x0,
                lane - 10.0,
                escape(&op.to_string())
            );
        }
    }
}

fn role_color(role: Role) -> &'static str {
    match role {
        Role::Leader => "#2e7d32",
        Role::Candidate => "#f9a825",
        Role::PreCandidate => "#ffe082",
        Role::Follower => "#90caf9",
    }
}

fn nice_step(end_us: u64) -> u64 {
    let target = (end_us / 10).max(1);
    let mut base = 1_000u64;
    loop {
        for multiple in [1, 2, 5] {
            if base * multiple >= target {
                return base * multiple;
            }
        }
        base *= 10;
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_steps_are_round_numbers() {
        for end in [1_000u64, 55_000, 3_000_000, 17_000_000] {
            let step = nice_step(end);
            let leading = step.to_string().chars().next().unwrap_or('0');
            assert!(matches!(leading, '1' | '2' | '5'), "{step}");
            assert!(end / step <= 10, "{end} {step}");
        }
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(escape("<a & \"b\">"), "&lt;a &amp; &quot;b&quot;&gt;");
    }
}
