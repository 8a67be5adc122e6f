//! The global allocator of the functions that run the batch engine (fold-batch,
//! replay-worker): jemalloc, with one arena, small thread caches and dirty pages returned
//! after 300 ms.
//!
//! Why not glibc's malloc: the engine decodes and folds a batch on every core
//! (`refold::parallel`), and glibc with the one arena that keeps a 1 M-key batch under
//! 128 MB (`MALLOC_ARENA_MAX=1`) serialises those threads on its lock: two threads were
//! slower than one. With more arenas the peak passed 128 MB. jemalloc's per-thread caches
//! serve the threads from one arena without that lock, and the decay bounds what it keeps.
//! Measured in BENCHMARKS.md ("A batch's decode and fold on every core").
//!
//! A binary links this crate with `use refold_alloc as _;` (the functions' libraries do,
//! so their benches measure the same allocator).

// The configuration jemalloc reads as it starts: its documented `malloc_conf` symbol,
// under the `_rjem_` prefix tikv-jemalloc-sys builds it with. A static C string; the test
// below reads the options back, so a name jemalloc did not take fails loudly.
#[allow(unsafe_code)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static MALLOC_CONF: &[u8; 62] = CONF;

/// One arena (memory freed by any thread is reused by all); thread caches for sizes up to
/// 4 KiB only (against the default 32 KiB: peaks of 110 against 115 MiB over 8 batches at
/// 1 M keys, at the same speed); dirty pages purged after 300 ms (a warm container's
/// batches come every ~100 ms: 100 ms or less purged and faulted again, slower); no muzzy
/// stage (Lambda gains nothing from lazily freed pages).
const CONF: &[u8; 62] = b"narenas:1,tcache_max:4096,dirty_decay_ms:300,muzzy_decay_ms:0\0";

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[cfg(test)]
mod tests {
    #[test]
    fn jemalloc_runs_with_the_configuration() {
        let boxed = Box::new([7u8; 64]);
        assert_eq!(boxed[63], 7);
        let narenas = tikv_jemalloc_ctl::opt::narenas::read().map_err(|e| e.to_string());
        assert_eq!(narenas, Ok(1));
        let tcache_max = tikv_jemalloc_ctl::opt::tcache_max::read().map_err(|e| e.to_string());
        assert_eq!(tcache_max, Ok(4096));
        #[allow(unsafe_code)]
        let read = |name: &[u8]| {
            // SAFETY: both options are `ssize_t` (jemalloc(3), "opt.dirty_decay_ms"), read
            // into an `isize`; the names are NUL-terminated.
            unsafe { tikv_jemalloc_ctl::raw::read::<isize>(name) }.map_err(|e| e.to_string())
        };
        assert_eq!(read(b"opt.dirty_decay_ms\0"), Ok(300));
        assert_eq!(read(b"opt.muzzy_decay_ms\0"), Ok(0));
    }
}
