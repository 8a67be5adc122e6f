//! A batch step split over the cores: contiguous chunks of a slice, each on a scoped thread
//! of its own (the first on the caller's), results in the order of the input. So a step
//! that maps each item independently (decoding an envelope, folding a key) gives exactly
//! what it gives on one thread.
//!
//! Why scoped threads and not a pool: the steps borrow the batch, run once or twice a
//! batch, and a thread's start (~30 µs) is a few percent at most of the work it gets
//! (the callers' `min_chunk`).

use std::panic;

/// At most this many threads for one step of one batch.
pub const MAX_THREADS: usize = 4;

/// Stack of a step's thread: as the main thread's, since a fold may recurse as deep there.
const STACK_BYTES: usize = 8 * 1024 * 1024;

/// The threads a step may use: the cores this process may run on, at most [`MAX_THREADS`].
pub fn available_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, MAX_THREADS)
}

/// `f` over contiguous chunks of `items` on up to `threads` threads, each chunk at least
/// `min_chunk` items; the results concatenated in the order of the chunks. One thread (or
/// too few items) runs `f` over all of them on the caller's thread. A thread the OS refuses
/// to start is run on the caller's thread instead; a panic in a chunk resumes on the
/// caller's thread, as it would have happened there.
pub fn map_chunks<T, R, F>(items: &[T], threads: usize, min_chunk: usize, f: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&[T]) -> Vec<R> + Sync,
{
    let chunks = threads
        .min(MAX_THREADS)
        .min(items.len() / min_chunk.max(1))
        .max(1);
    if chunks == 1 {
        return f(items);
    }
    let per_chunk = items.len().div_ceil(chunks);
    let (first, rest) = items.split_at(per_chunk.min(items.len()));
    let f = &f;
    std::thread::scope(|s| {
        let spawned: Vec<_> = rest
            .chunks(per_chunk)
            .map(|chunk| {
                let started = std::thread::Builder::new()
                    .name("refold-step".into())
                    .stack_size(STACK_BYTES)
                    .spawn_scoped(s, move || f(chunk));
                (chunk, started)
            })
            .collect();
        let mut out = f(first);
        for (chunk, started) in spawned {
            match started {
                Ok(handle) => match handle.join() {
                    Ok(part) => out.extend(part),
                    Err(payload) => panic::resume_unwind(payload),
                },
                Err(_) => out.extend(f(chunk)),
            }
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_keep_the_order_of_the_input() {
        let items: Vec<u32> = (0..10_000).collect();
        let seen = std::sync::Mutex::new(std::collections::HashSet::new());
        let out = map_chunks(&items, 3, 100, |chunk| {
            seen.lock()
                .map(|mut s| s.insert(std::thread::current().id()))
                .ok();
            chunk.iter().map(|i| i * 2).collect()
        });
        let want: Vec<u32> = items.iter().map(|i| i * 2).collect();
        assert_eq!(out, want);
        let threads = seen.lock().map(|s| s.len()).unwrap_or(0);
        assert_eq!(threads, 3, "three chunks, three threads");
    }

    #[test]
    fn small_inputs_and_one_thread_stay_on_the_caller() {
        let caller = std::thread::current().id();
        for (n, threads) in [(0, 4), (10, 4), (10_000, 1)] {
            let items: Vec<u32> = (0..n).collect();
            let out = map_chunks(&items, threads, 100, |chunk| {
                assert_eq!(std::thread::current().id(), caller);
                chunk.to_vec()
            });
            assert_eq!(out, items);
        }
    }

    #[test]
    fn a_panic_in_a_chunk_reaches_the_caller() {
        let items: Vec<u32> = (0..1_000).collect();
        let caught = panic::catch_unwind(|| {
            map_chunks(&items, 2, 100, |chunk| {
                assert!(!chunk.contains(&999), "the last chunk fails");
                chunk.to_vec()
            })
        });
        assert!(caught.is_err());
    }
}
