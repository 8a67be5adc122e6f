//! `lambda_http` to [`crate::routes`] and back.

use lambda_http::{Body, Request, Response};

use crate::routes::{Answer, Api, answer};

/// Answers one API Gateway request.
pub async fn handle(api: &Api, req: Request) -> Response<Body> {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let body: &[u8] = req.body().as_ref();
    let a = answer(api, &method, &path, body).await;
    tracing::info!(%method, %path, status = a.status, "replay API");
    to_response(&a)
}

fn to_response(a: &Answer) -> Response<Body> {
    let text = a.body.to_string();
    Response::builder()
        .status(a.status)
        .header("content-type", "application/json")
        .body(Body::Text(text))
        .unwrap_or_else(|_| {
            let mut r = Response::new(Body::Text(r#"{"error":"bad answer"}"#.into()));
            *r.status_mut() = lambda_http::http::StatusCode::INTERNAL_SERVER_ERROR;
            r
        })
}
