//! replay-api: the replay HTTP API (API Gateway HTTP API, `lambda_http`) over
//! `refold::replay::ReplayService`. `routes` maps a request to an answer; `config` builds the
//! service from the function's environment; `http` adapts `lambda_http` to `routes`.

pub mod config;
pub mod http;
pub mod routes;
