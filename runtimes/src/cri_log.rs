//! Container stdout/stderr in the CRI log format that kubelet writes and `kubectl logs` reads:
//! `<RFC3339Nano> <stream> <F|P> <text>`, one record per line, `P` for a chunk of a line that
//! was too long to keep whole.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{SecondsFormat, Utc};

use crate::RuntimeError;

/// Longest record body; longer lines are split into `P` records like kubelet does.
const MAX_RECORD: usize = 16 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    Stderr,
}

impl LogStream {
    fn name(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        }
    }

    fn index(self) -> usize {
        match self {
            LogStream::Stdout => 0,
            LogStream::Stderr => 1,
        }
    }
}

/// One container's log file, shared by its two streams; each stream buffers its unfinished line.
#[derive(Clone)]
pub struct CriLog {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    file: File,
    partial: [Vec<u8>; 2],
}

impl CriLog {
    /// Opens (appending) or creates the log file; its directory must exist.
    pub fn open(path: &Path) -> Result<Self, RuntimeError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| RuntimeError::LogFile {
                path: PathBuf::from(path),
                source,
            })?;
        Ok(Self {
            inner: Arc::new(Mutex::new(Inner {
                file,
                partial: [Vec::new(), Vec::new()],
            })),
        })
    }

    /// Appends output of one stream, writing a record for every line it completes.
    pub fn write(&self, stream: LogStream, bytes: &[u8]) -> io::Result<()> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let Inner { file, partial } = &mut *inner;
        let partial = &mut partial[stream.index()];
        let stamp = timestamp();
        let mut records = Vec::new();
        let mut rest = bytes;
        loop {
            let newline = rest.iter().position(|b| *b == b'\n');
            let (chunk, complete) = match newline {
                Some(at) => (&rest[..at], true),
                None => (rest, false),
            };
            partial.extend_from_slice(chunk);
            while partial.len() > MAX_RECORD || (!complete && partial.len() == MAX_RECORD) {
                push_record(&mut records, &stamp, stream, 'P', &partial[..MAX_RECORD]);
                partial.drain(..MAX_RECORD);
            }
            let Some(at) = newline else { break };
            push_record(&mut records, &stamp, stream, 'F', partial);
            partial.clear();
            rest = &rest[at + 1..];
        }
        file.write_all(&records)
    }

    /// Writes out unfinished lines as whole records; called when the container's output ends.
    pub fn finish(&self) -> io::Result<()> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let Inner { file, partial } = &mut *inner;
        let stamp = timestamp();
        let mut records = Vec::new();
        for stream in [LogStream::Stdout, LogStream::Stderr] {
            let pending = &mut partial[stream.index()];
            if !pending.is_empty() {
                push_record(&mut records, &stamp, stream, 'F', pending);
                pending.clear();
            }
        }
        file.write_all(&records)
    }
}

fn timestamp() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Nanos, true)
}

fn push_record(out: &mut Vec<u8>, stamp: &str, stream: LogStream, tag: char, body: &[u8]) {
    out.extend_from_slice(stamp.as_bytes());
    out.push(b' ');
    out.extend_from_slice(stream.name().as_bytes());
    out.push(b' ');
    out.push(tag as u8);
    out.push(b' ');
    out.extend_from_slice(body);
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(path: &Path) -> Vec<(String, String, String)> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|line| {
                let mut parts = line.splitn(4, ' ');
                let stamp = parts.next().unwrap_or_default();
                assert!(
                    chrono::DateTime::parse_from_rfc3339(stamp).is_ok(),
                    "bad timestamp in {line:?}"
                );
                (
                    parts.next().unwrap_or_default().to_string(),
                    parts.next().unwrap_or_default().to_string(),
                    parts.next().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    fn rec(stream: &str, tag: &str, body: &str) -> (String, String, String) {
        (stream.into(), tag.into(), body.into())
    }

    #[test]
    fn lines_are_buffered_per_stream_until_complete() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let log = CriLog::open(&path).unwrap();
        log.write(LogStream::Stdout, b"hel").unwrap();
        log.write(LogStream::Stderr, b"oops\n").unwrap();
        log.write(LogStream::Stdout, b"lo\nworld\n\ntail").unwrap();
        log.finish().unwrap();
        assert_eq!(
            records(&path),
            vec![
                rec("stderr", "F", "oops"),
                rec("stdout", "F", "hello"),
                rec("stdout", "F", "world"),
                rec("stdout", "F", ""),
                rec("stdout", "F", "tail"),
            ]
        );
    }

    #[test]
    fn long_lines_are_split_into_partial_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let log = CriLog::open(&path).unwrap();
        let mut line = vec![b'x'; MAX_RECORD + 10];
        line.push(b'\n');
        log.write(LogStream::Stdout, &line).unwrap();
        let got = records(&path);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].1, "P");
        assert_eq!(got[0].2.len(), MAX_RECORD);
        assert_eq!(got[1], rec("stdout", "F", &"x".repeat(10)));
    }

    #[test]
    fn a_missing_directory_is_a_log_file_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = CriLog::open(&dir.path().join("nope/0.log")).err();
        assert!(matches!(err, Some(RuntimeError::LogFile { .. })), "{err:?}");
    }
}
