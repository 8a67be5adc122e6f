//! What the moto-backed tests of this crate share.

/// moto's endpoint (`REFOLD_S3_ENDPOINT`; one endpoint serves S3, Glue and Secrets Manager).
/// A test without it fails, naming what it needs (`needs`, e.g. "a local S3").
pub fn moto_endpoint(needs: &str) -> String {
    match std::env::var("REFOLD_S3_ENDPOINT") {
        Ok(e) if !e.is_empty() => e,
        _ => panic!(
            "REFOLD_S3_ENDPOINT is not set: start moto with `scripts/stack.sh up DIR s3` and export \
             the variables of DIR/stack.env (this test needs {needs})"
        ),
    }
}
