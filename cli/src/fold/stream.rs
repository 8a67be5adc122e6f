//! A JSONL file folded as a stream: memory holds the rows (one per key) and a few batches,
//! never the whole file.
//!
//! Three threads, so both cores work: one reads the file, decodes each batch's envelopes
//! and reads their row keys, the caller's groups and folds them in order (a key's events
//! never leave this thread, so their order is the file's), and one frees the batches
//! folded. The folding thread is the critical path (2.0 s of 3.0 s CPU on the 302,000-line
//! order stream); a fold thread per core was measured and did not pay on 2 cores: the
//! handing over costs what it saves (BENCHMARKS.md).

use std::io::{BufRead, BufReader, Read};
use std::sync::mpsc;

use anyhow::Context;
use refold::batch::{self, CompiledPipeline, Decoded, InMemoryFold, InMemoryView};
use refold::record::SourceRecord;

/// Batches decoded ahead of the fold, at most: bounds memory when decoding runs ahead.
const BATCHES_AHEAD_MAX: usize = 1;

/// A batch read and decoded, ready to be grouped and folded.
type ReadBatch = (Vec<SourceRecord>, Vec<Decoded>);

/// Folds the JSONL `file` (one envelope per non-blank line; all in partition 0, the offset
/// being the line's 0-based index) in batches of `batch_size` records.
pub fn fold_file(
    cp: &CompiledPipeline,
    file: impl Read + Send,
    topic: &str,
    batch_size: usize,
) -> anyhow::Result<InMemoryView> {
    std::thread::scope(|s| {
        // Both channels live in this closure: each hangs up when it returns, and the
        // threads end before the scope joins them.
        let (batches, decoded) = mpsc::sync_channel::<anyhow::Result<ReadBatch>>(BATCHES_AHEAD_MAX);
        let (bin, garbage) = mpsc::channel::<ReadBatch>();
        s.spawn(move || read_and_decode(cp, file, topic, batch_size, &batches));
        s.spawn(move || garbage.into_iter().for_each(drop));
        let mut fold = InMemoryFold::default();
        for batch in decoded {
            let (records, decoded) = batch?;
            let prepared = batch::prepare_decoded(cp, &records, &decoded, &[])?;
            fold.fold_batch(cp, &prepared);
            drop(prepared);
            // The freeing thread ends when `bin` is dropped, so a send cannot fail.
            let _ = bin.send((records, decoded));
        }
        drop(bin);
        Ok(fold.finish())
    })
}

/// Reads `file` batch by batch and decodes each (envelopes and row keys), until the end,
/// an error, or the folding side hangs up.
fn read_and_decode(
    cp: &CompiledPipeline,
    file: impl Read,
    topic: &str,
    batch_size: usize,
    out: &mpsc::SyncSender<anyhow::Result<ReadBatch>>,
) {
    let mut lines = Lines {
        reader: BufReader::with_capacity(1 << 20, file),
        index: 0,
        topic,
    };
    loop {
        let records = match lines.next_batch(batch_size) {
            Ok(r) if r.is_empty() => return,
            Ok(r) => r,
            Err(e) => {
                let _ = out.send(Err(e));
                return;
            }
        };
        let decoded = batch::decode(cp, &records);
        if out.send(Ok((records, decoded))).is_err() {
            return;
        }
    }
}

/// The records of a JSON Lines file, as [`refold::record::from_jsonl`] makes them.
struct Lines<'t, R> {
    reader: BufReader<R>,
    /// The 0-based index of the next line.
    index: i64,
    topic: &'t str,
}

impl<R: Read> Lines<'_, R> {
    /// Up to `n` records: one per non-blank line; empty at the end of the file.
    fn next_batch(&mut self, n: usize) -> anyhow::Result<Vec<SourceRecord>> {
        let mut records = Vec::with_capacity(n);
        while records.len() < n {
            let mut line = Vec::new();
            let read = self
                .reader
                .read_until(b'\n', &mut line)
                .with_context(|| format!("line {}", self.index + 1))?;
            if read == 0 {
                break;
            }
            let offset = self.index;
            self.index += 1;
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            records.push(SourceRecord {
                topic: self.topic.to_owned(),
                partition: 0,
                offset,
                timestamp_ms: None,
                key: None,
                value: line,
            });
        }
        Ok(records)
    }
}
