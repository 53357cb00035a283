//! The failed requests of a `raft-kv bench` run, by kind: the HTTP status and API error
//! code of an answer, or what broke on the client's side. A count of errors says that a run
//! failed writes; the kinds say whether they were the cluster refusing work (503), losing
//! track of it (504), or the connection (resets, timeouts), and when in the run they came.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::server::client::{Answer, ClientError};
use crate::server::wire::ErrorBody;

/// One kind of failure seen in a run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ErrorKind {
    /// `"<status> <code>"` for an error answer (e.g. `503 unavailable`), otherwise the
    /// client's side: `connect`, `connection broken`, `client timeout`, ...
    pub kind: String,
    /// Requests that failed this way.
    pub count: u64,
    /// Seconds from the start of the measured phase to the first and last of them
    /// (negative: during the warm-up).
    pub first_at_s: f64,
    /// See `first_at_s`.
    pub last_at_s: f64,
    /// The message of the first one.
    pub example: String,
}

/// Failures counted by kind.
#[derive(Clone, Debug, Default)]
pub struct ErrorTally {
    kinds: BTreeMap<String, ErrorKind>,
}

impl ErrorTally {
    /// Counts one failure of `kind`, `at_s` seconds from the start of the measured phase.
    pub fn add(&mut self, kind: String, message: String, at_s: f64) {
        let mut other = ErrorTally::default();
        other.kinds.insert(
            kind.clone(),
            ErrorKind {
                kind,
                count: 1,
                first_at_s: at_s,
                last_at_s: at_s,
                example: message,
            },
        );
        self.merge(other);
    }

    /// Adds another tally's counts to this one.
    pub fn merge(&mut self, other: ErrorTally) {
        for (key, kind) in other.kinds {
            match self.kinds.get_mut(&key) {
                Some(mine) => {
                    if kind.first_at_s < mine.first_at_s {
                        mine.example = kind.example;
                    }
                    mine.count += kind.count;
                    mine.first_at_s = mine.first_at_s.min(kind.first_at_s);
                    mine.last_at_s = mine.last_at_s.max(kind.last_at_s);
                }
                None => {
                    self.kinds.insert(key, kind);
                }
            }
        }
    }

    /// The kinds, most frequent first.
    pub fn into_kinds(self) -> Vec<ErrorKind> {
        let mut kinds: Vec<ErrorKind> = self.kinds.into_values().collect();
        kinds.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.kind.cmp(&b.kind)));
        kinds
    }
}

/// The kind and message of a failed request: an answer that is neither a success nor
/// `accepted` (the caller decides which statuses count as success), or a client error.
pub fn classify(result: &Result<Answer, ClientError>) -> (String, String) {
    match result {
        Ok(answer) => match serde_json::from_slice::<ErrorBody>(&answer.body) {
            Ok(body) => (
                format!("{} {}", answer.status.as_u16(), body.error),
                body.message,
            ),
            Err(_) => (
                format!("{} (not an API error)", answer.status.as_u16()),
                String::from_utf8_lossy(&answer.body).into_owned(),
            ),
        },
        Err(error) => {
            let kind = match error {
                ClientError::Api { status, body } => format!("{status} {}", body.error),
                ClientError::Connect { .. } => "connect".to_string(),
                ClientError::Transport { .. } => "connection broken".to_string(),
                ClientError::Timeout { .. } => "client timeout".to_string(),
                ClientError::NoLeader { .. } => "no leader (client)".to_string(),
                ClientError::Decode { status, .. } => format!("{status} (undecodable)"),
                ClientError::BadEndpoint(_) => "bad endpoint".to_string(),
            };
            (kind, error.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Result<Answer, ClientError> {
        Ok(Answer {
            status: hyper::StatusCode::from_u16(status).unwrap(),
            headers: hyper::HeaderMap::new(),
            body: bytes::Bytes::from(body.to_string()),
        })
    }

    /// Goal: a user reading a bench report sees which failures a run had (status and API
    /// code, or the broken connection), how many, and when, not only a total.
    #[test]
    fn failures_are_counted_by_status_and_code() {
        let mut tally = ErrorTally::default();
        let no_leader = answer(
            503,
            r#"{"error":"unavailable","message":"no leader known","leader":null}"#,
        );
        let unknown = answer(
            504,
            r#"{"error":"outcome_unknown","message":"leader changed","leader":null}"#,
        );
        let reset = Err(ClientError::Transport {
            endpoint: "n1".into(),
            message: "connection reset".into(),
        });
        for (result, at) in [(&no_leader, 1.5), (&no_leader, 0.5), (&unknown, 2.0)] {
            let (kind, message) = classify(result);
            tally.add(kind, message, at);
        }
        let mut other = ErrorTally::default();
        let (kind, message) = classify(&reset);
        other.add(kind, message, -0.2);
        let (kind, message) = classify(&no_leader);
        other.add(kind, message, 3.0);
        tally.merge(other);
        let kinds = tally.into_kinds();
        let summary: Vec<(&str, u64, f64, f64)> = kinds
            .iter()
            .map(|k| (k.kind.as_str(), k.count, k.first_at_s, k.last_at_s))
            .collect();
        assert_eq!(
            summary,
            [
                ("503 unavailable", 3, 0.5, 3.0),
                ("504 outcome_unknown", 1, 2.0, 2.0),
                ("connection broken", 1, -0.2, -0.2),
            ]
        );
        assert_eq!(kinds[0].example, "no leader known");
    }
}
