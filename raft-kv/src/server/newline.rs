//! A response layer that ends every JSON answer with a newline, so `curl` output and shell
//! pipelines (`| jq`, `| while read`) see complete lines. Streams (`application/x-ndjson`)
//! write their own line ends and pass through untouched.

use axum::body::Body;
use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;

/// Answers bigger than this are passed through as they are (JSON answers are far smaller).
const JSON_BUFFER_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Appends `\n` to `application/json` bodies that do not end with one.
pub async fn json_newline(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
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
