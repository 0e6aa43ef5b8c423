//! Reading the export zip as Spotify delivers it, with zip bomb limits.
//!
//! Limits are checked twice: against the sizes the zip declares (before an entry is
//! decompressed) and, because declared sizes can lie, while reading, by a
//! [`CountingReader`] that fails as soon as an entry or the whole archive produces more
//! bytes than allowed.

use super::stream::{ReadError, READ_BUFFER_BYTES};
use super::{parse_json_reader, ImportLimits, ParseEvent};
use crate::Error;
use std::cell::Cell;
use std::fs::File;
use std::io::{self, BufReader, Read};
use zip::ZipArchive;

/// Entries smaller than this are never flagged for their compression ratio.
const RATIO_FLOOR_BYTES: u64 = 1 << 20;

/// Uncompressed bytes read from all entries of one archive.
#[derive(Debug)]
pub(crate) struct ZipTotals {
    read: Cell<u64>,
    limit: u64,
    exceeded: Cell<bool>,
}

impl ZipTotals {
    /// Totals for an archive allowed to produce `limit` bytes.
    pub(crate) fn new(limit: u64) -> Self {
        ZipTotals { read: Cell::new(0), limit, exceeded: Cell::new(false) }
    }
}

/// Counts the bytes an entry produces and fails the read past the entry limit, past
/// `ratio` times its compressed size (when above 1 MiB), or past the archive's total.
/// Other read errors of the entry (CRC, deflate) are reported as a corrupt entry.
pub(crate) struct CountingReader<'t, R> {
    inner: R,
    read: u64,
    entry_limit: u64,
    ratio_limit: u64,
    ratio: u64,
    totals: &'t ZipTotals,
}

impl<'t, R: Read> CountingReader<'t, R> {
    /// Wraps the decompressed reader of an entry whose compressed size is `compressed`.
    pub(crate) fn new(inner: R, compressed: u64, limits: &ImportLimits, totals: &'t ZipTotals) -> Self {
        let ratio = limits.max_compression_ratio;
        CountingReader {
            inner,
            read: 0,
            entry_limit: limits.max_entry_bytes,
            ratio_limit: compressed.saturating_mul(ratio).max(RATIO_FLOOR_BYTES),
            ratio,
            totals,
        }
    }
}

impl<R: Read> Read for CountingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf).map_err(|e| ReadError::io(format!("corrupt zip entry: {e}")))?;
        self.read += n as u64;
        let total = self.totals.read.get() + n as u64;
        self.totals.read.set(total);
        if self.read > self.entry_limit {
            return Err(ReadError::io(format!(
                "entry is larger than the limit of {} bytes uncompressed (possible zip bomb)",
                self.entry_limit
            )));
        }
        if self.read > self.ratio_limit {
            return Err(ReadError::io(format!(
                "entry expands to more than {} times its compressed size (possible zip bomb)",
                self.ratio
            )));
        }
        if total > self.totals.limit {
            self.totals.exceeded.set(true);
            return Err(ReadError::io(total_exceeded(self.totals.limit)));
        }
        Ok(n)
    }
}

fn total_exceeded(limit: u64) -> String {
    format!("zip exceeds total uncompressed limit of {limit} bytes (possible zip bomb)")
}

/// Whether a path inside a zip is metadata nobody wants imported (`.DS_Store`,
/// `__MACOSX/._x.json`, ...).
pub(crate) fn is_hidden(name: &str) -> bool {
    name.split('/').any(|part| part.starts_with('.') || part == "__MACOSX")
}

/// The declared-size checks of one entry: a reason to refuse it, or `None`.
fn refuse_declared(size: u64, compressed: u64, limits: &ImportLimits) -> Option<String> {
    if size > limits.max_entry_bytes {
        return Some(format!(
            "entry declares {size} bytes uncompressed, more than the limit of {} (possible zip bomb)",
            limits.max_entry_bytes
        ));
    }
    if size > RATIO_FLOOR_BYTES && size / compressed.max(1) > limits.max_compression_ratio {
        return Some(format!(
            "entry declares a compression ratio of {}:1 ({size} bytes from {compressed}), more than the limit of {}:1 (possible zip bomb)",
            size / compressed.max(1),
            limits.max_compression_ratio
        ));
    }
    None
}

fn fail(sink: &mut dyn FnMut(ParseEvent) -> bool, file: &str, reason: String) -> bool {
    sink(ParseEvent::FileFailed {
        file: file.to_string(),
        error: Error::Import { file: file.to_string(), entry: None, position: None, reason },
    })
}

/// Parses every `.json` entry of the zip at `path` (named `display` in events), in
/// name order, whatever the folder layout inside.
///
/// Returns `Err` when the archive itself cannot be read (truncated, corrupt, too many
/// entries); `Ok(false)` when the sink asked to stop.
pub(crate) fn parse_zip(
    display: &str,
    file: File,
    limits: &ImportLimits,
    chunk_size: usize,
    sink: &mut dyn FnMut(ParseEvent) -> bool,
) -> crate::Result<bool> {
    let whole = |reason: String| Error::Import { file: display.to_string(), entry: None, position: None, reason };
    let mut archive = ZipArchive::new(BufReader::with_capacity(READ_BUFFER_BYTES, file))
        .map_err(|e| whole(format!("not a readable zip archive (truncated or corrupt?): {e}")))?;
    if archive.len() > limits.max_zip_entries {
        return Err(whole(format!(
            "the zip has {} entries, more than the limit of {} (possible zip bomb)",
            archive.len(),
            limits.max_zip_entries
        )));
    }
    let mut names: Vec<(String, usize)> =
        (0..archive.len()).filter_map(|i| archive.name_for_index(i).map(|name| (name.to_string(), i))).collect();
    names.sort_by(|a, b| (super::account_data_last(&a.0), a).cmp(&(super::account_data_last(&b.0), b)));

    let totals = ZipTotals::new(limits.max_total_bytes);
    for (name, index) in names {
        if name.ends_with('/') || is_hidden(&name) {
            continue;
        }
        let file = format!("{display}!{name}");
        let lower = name.to_ascii_lowercase();
        let go_on = if lower.ends_with(".zip") {
            sink(ParseEvent::FileSkipped { file, reason: "nested zip archives are not imported".into() })
        } else if !lower.ends_with(".json") {
            sink(ParseEvent::FileSkipped { file, reason: "not a JSON file".into() })
        } else if totals.exceeded.get() {
            fail(sink, &file, format!("not read: {}", total_exceeded(totals.limit)))
        } else {
            match archive.by_index(index) {
                Err(e) => fail(sink, &file, format!("cannot read this zip entry: {e}")),
                Ok(entry) if entry.is_dir() => true,
                Ok(entry) => match refuse_declared(entry.size(), entry.compressed_size(), limits) {
                    Some(reason) => fail(sink, &file, reason),
                    None => {
                        let compressed = entry.compressed_size();
                        let reader = CountingReader::new(entry, compressed, limits, &totals);
                        parse_json_reader(&file, reader, chunk_size, false, sink)
                    }
                },
            }
        };
        if !go_on {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(entry: u64, total: u64, ratio: u64) -> ImportLimits {
        ImportLimits {
            max_entry_bytes: entry,
            max_total_bytes: total,
            max_compression_ratio: ratio,
            ..ImportLimits::default()
        }
    }

    fn drain(r: &mut impl Read) -> io::Result<u64> {
        io::copy(r, &mut io::sink())
    }

    fn reason(e: io::Error) -> String {
        super::super::stream::io_reason(&e)
    }

    #[test]
    fn counting_reader_enforces_the_entry_limit() {
        let totals = ZipTotals::new(u64::MAX);
        let l = limits(10 << 20, u64::MAX, u64::MAX);
        let mut ok = CountingReader::new(io::repeat(b' ').take(10 << 20), 1, &l, &totals);
        assert_eq!(drain(&mut ok).unwrap(), 10 << 20);
        let mut big = CountingReader::new(io::repeat(b' ').take((10 << 20) + 1), 1, &l, &totals);
        assert!(reason(drain(&mut big).unwrap_err()).contains("larger than the limit of 10485760 bytes"));
    }

    #[test]
    fn counting_reader_enforces_the_ratio_whatever_the_declared_size() {
        let totals = ZipTotals::new(u64::MAX);
        let l = limits(u64::MAX, u64::MAX, 200);
        // 1 MiB is always allowed, even from 1 compressed byte.
        let mut small = CountingReader::new(io::repeat(0).take(1 << 20), 1, &l, &totals);
        assert!(drain(&mut small).is_ok());
        // 10 KiB compressed may expand to 2000 KiB, not more.
        let mut fine = CountingReader::new(io::repeat(0).take(2_048_000), 10_240, &l, &totals);
        assert!(drain(&mut fine).is_ok());
        let mut bomb = CountingReader::new(io::repeat(0).take(2_048_001), 10_240, &l, &totals);
        assert!(reason(drain(&mut bomb).unwrap_err()).contains("more than 200 times"));
    }

    #[test]
    fn counting_reader_enforces_the_total_across_entries() {
        let totals = ZipTotals::new(3000);
        let l = limits(u64::MAX, 3000, u64::MAX);
        let mut first = CountingReader::new(io::repeat(0).take(2000), 1, &l, &totals);
        assert!(drain(&mut first).is_ok());
        assert!(!totals.exceeded.get());
        let mut second = CountingReader::new(io::repeat(0).take(2000), 1, &l, &totals);
        assert!(reason(drain(&mut second).unwrap_err()).starts_with("zip exceeds total uncompressed limit"));
        assert!(totals.exceeded.get());
    }

    #[test]
    fn counting_reader_reports_inner_errors_as_corrupt_entry() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::InvalidData, "Invalid checksum"))
            }
        }
        let totals = ZipTotals::new(u64::MAX);
        let mut r = CountingReader::new(Broken, 1, &ImportLimits::default(), &totals);
        assert_eq!(reason(drain(&mut r).unwrap_err()), "corrupt zip entry: Invalid checksum");
    }

    #[test]
    fn declared_sizes_are_checked() {
        let l = limits(100 << 20, u64::MAX, 200);
        assert!(refuse_declared(50 << 20, 50_000, &l).unwrap().contains("compression ratio of 1048:1"));
        assert_eq!(refuse_declared(50 << 20, 1 << 20, &l), None);
        assert_eq!(refuse_declared(1 << 20, 10, &l), None, "small entries are never flagged for their ratio");
        assert!(refuse_declared(101 << 20, 100 << 20, &l).unwrap().contains("more than the limit of 104857600"));
        assert!(refuse_declared(2 << 20, 0, &l).is_some());
    }

    #[test]
    fn hidden_paths() {
        assert!(is_hidden("__MACOSX/Spotify/._x.json"));
        assert!(is_hidden("MyData/.DS_Store"));
        assert!(!is_hidden("Spotify Extended Streaming History/Streaming_History_Audio_2019.json"));
    }
}
