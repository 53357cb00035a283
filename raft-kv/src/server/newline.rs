//! JSON answers end with a newline, so `curl` output and shell pipelines (`| jq`,
//! `| while read`) see complete lines. Streams (`application/x-ndjson`) write their own line
//! ends and pass through untouched.
//!
//! The hot routes build their body with the newline already in it ([`json_line`]), which marks
//! the response so [`end_line`] passes it on without buffering it again; any other JSON answer
//! is buffered once and given its newline there.

use std::io::Write as _;

use axum::body::{Body, Bytes, HttpBody as _};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Answers bigger than this (or of unknown size) are passed through as they are, without
/// the newline.
const JSON_BUFFER_BYTES_MAX: usize = 16 * 1024 * 1024;

/// JSON answers up to this size are built on the stack.
const SMALL_ANSWER_BYTES: usize = 256;

/// Marks a response whose JSON body already ends with `\n` (zero-sized: no allocation to box).
#[derive(Clone, Copy, Debug)]
struct EndsWithNewline;

/// A JSON answer of `value` with `status`, its body ending with `\n`, serialized once.
pub fn json_line<T: Serialize>(status: StatusCode, value: &T) -> Response {
    // Small answers (a write's revision, most errors) are written on the stack and copied
    // once into a body of their exact size; a `Vec` with spare capacity would cost `Bytes` a
    // second allocation for its shared header.
    let mut small = [0u8; SMALL_ANSWER_BYTES];
    let mut cursor = std::io::Cursor::new(&mut small[..]);
    let body = match serde_json::to_writer(&mut cursor, value).map(|()| cursor.write_all(b"\n")) {
        Ok(Ok(())) => {
            let len = usize::try_from(cursor.position()).unwrap_or(SMALL_ANSWER_BYTES);
            Bytes::copy_from_slice(&small[..len])
        }
        _ => {
            let mut body = Vec::with_capacity(4 * SMALL_ANSWER_BYTES);
            if let Err(error) = serde_json::to_writer(&mut body, value) {
                // Our answer types serialize infallibly (no maps with non-string keys); still
                // answer.
                tracing::error!(%error, "could not serialize a JSON answer");
                return (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response();
            }
            body.push(b'\n');
            Bytes::from(body)
        }
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response.extensions_mut().insert(EndsWithNewline);
    response
}

/// `response` with `\n` appended to an `application/json` body that does not end with one.
pub async fn end_line(response: Response) -> Response {
    if response.extensions().get::<EndsWithNewline>().is_some() {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return response;
    }
    // Only a body of known size that fits is buffered: giving up half way through would
    // have consumed it, and a 200 with an empty body is what a client then parsed ("EOF
    // while parsing"; a bench cleanup listing pages of 1 MB values hit it). A larger or
    // streamed answer goes out as it is, without the newline.
    let fits = response
        .body()
        .size_hint()
        .exact()
        .is_some_and(|len| len <= JSON_BUFFER_BYTES_MAX as u64);
    if !fits {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, JSON_BUFFER_BYTES_MAX).await {
        Ok(bytes) => bytes,
        Err(error) => {
            tracing::warn!(%error, "could not buffer a JSON answer to end it with a newline");
            return Response::from_parts(parts, Body::empty());
        }
    };
    if bytes.ends_with(b"\n") {
        return Response::from_parts(parts, Body::from(bytes));
    }
    let mut line = Vec::with_capacity(bytes.len() + 1);
    line.extend_from_slice(&bytes);
    line.push(b'\n');
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(line))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: a body built with its newline is sent as built, and any other JSON answer
    /// still gets exactly one newline.
    #[tokio::test]
    async fn every_json_answer_ends_with_one_newline() {
        let body = |response: Response| async {
            let response = end_line(response).await;
            axum::body::to_bytes(response.into_body(), 1024)
                .await
                .expect("a small in-memory body")
        };
        let built = json_line(StatusCode::OK, &serde_json::json!({"revision": 7}));
        assert_eq!(body(built).await, "{\"revision\":7}\n");
        let long = "x".repeat(SMALL_ANSWER_BYTES);
        let built = json_line(StatusCode::OK, &serde_json::json!({ "value": long }));
        assert_eq!(body(built).await, format!("{{\"value\":\"{long}\"}}\n"));
        let plain = axum::Json(serde_json::json!({"revision": 7})).into_response();
        assert_eq!(body(plain).await, "{\"revision\":7}\n");
        let text = (StatusCode::OK, "ok").into_response();
        assert_eq!(body(text).await, "ok");
    }

    /// Goal: a JSON answer too large to buffer reaches the client whole (it used to be sent
    /// as an empty 200, which clients failed to parse).
    #[tokio::test]
    async fn a_json_answer_too_large_to_buffer_is_sent_whole() {
        let big = "x".repeat(JSON_BUFFER_BYTES_MAX + 1);
        let response =
            end_line(axum::Json(serde_json::json!({ "value": big })).into_response()).await;
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("an in-memory body");
        let value: serde_json::Value = serde_json::from_slice(&bytes).expect("whole JSON");
        assert_eq!(value["value"].as_str().map(str::len), Some(big.len()));
    }
}
