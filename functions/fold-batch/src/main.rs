//! fold-batch: wiring lands with refold::batch::BatchProcessor.
fn main() {
    fold_batch::logging::init();
}
