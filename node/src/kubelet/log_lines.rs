//! Reading CRI log records back as the lines `kubectl logs` shows: the prefix stripped, `P`
//! chunks joined to their line, then the query's tail, since, timestamps and byte limit.

use chrono::{DateTime, Utc};

use super::error::ApiError;

/// The query of `GET /containerLogs/...`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogQuery {
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    pub tail_lines: Option<usize>,
    pub since: Option<DateTime<Utc>>,
    pub limit_bytes: Option<u64>,
}

pub fn flag(value: &str) -> bool {
    matches!(value, "1" | "true" | "True" | "TRUE")
}

impl LogQuery {
    pub fn parse(pairs: &[(String, String)], now: DateTime<Utc>) -> Result<Self, ApiError> {
        let mut query = LogQuery::default();
        let number = |key: &str, value: &str| {
            value
                .parse::<u64>()
                .map_err(|_| ApiError::BadRequest(format!("invalid {key} {value:?}")))
        };
        let mut since_seconds = None;
        let mut since_time = None;
        for (key, value) in pairs {
            match key.as_str() {
                "follow" => query.follow = flag(value),
                "previous" => query.previous = flag(value),
                "timestamps" => query.timestamps = flag(value),
                "tailLines" => {
                    let lines = number(key, value)?;
                    query.tail_lines = Some(usize::try_from(lines).unwrap_or(usize::MAX));
                }
                "limitBytes" => query.limit_bytes = Some(number(key, value)?),
                "sinceSeconds" => since_seconds = Some(number(key, value)?),
                "sinceTime" => {
                    let at = DateTime::parse_from_rfc3339(value).map_err(|_| {
                        ApiError::BadRequest(format!("invalid sinceTime {value:?}"))
                    })?;
                    since_time = Some(at.with_timezone(&Utc));
                }
                _ => {}
            }
        }
        query.since = match (since_seconds, since_time) {
            (Some(_), Some(_)) => {
                return Err(ApiError::BadRequest(
                    "at most one of sinceTime or sinceSeconds may be specified".into(),
                ));
            }
            (Some(seconds), None) => {
                let seconds = i64::try_from(seconds).unwrap_or(i64::MAX);
                Some(now - chrono::Duration::try_seconds(seconds).unwrap_or(chrono::Duration::MAX))
            }
            (None, at) => at,
        };
        Ok(query)
    }
}

/// One whole line of output, stamped with the time its first chunk was written.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    pub stamp: String,
    pub at: DateTime<Utc>,
    pub text: Vec<u8>,
}

impl Line {
    pub fn render(&self, timestamps: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.text.len() + self.stamp.len() + 2);
        if timestamps {
            out.extend_from_slice(self.stamp.as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(&self.text);
        out.push(b'\n');
        out
    }
}

/// Joins `P` records to the `F` record that ends their line, per stream, across reads.
#[derive(Default)]
pub struct Assembler {
    /// Unfinished lines of stdout and stderr: the first chunk's stamp and the text so far.
    pending: [Option<(String, Vec<u8>)>; 2],
    /// The tail of the last read that was not a whole record yet.
    carry: Vec<u8>,
}

impl Assembler {
    /// Feeds raw file bytes and returns the lines they complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Line> {
        self.carry.extend_from_slice(bytes);
        let Some(end) = self.carry.iter().rposition(|b| *b == b'\n') else {
            return Vec::new();
        };
        let complete: Vec<u8> = self.carry.drain(..=end).collect();
        complete
            .split(|b| *b == b'\n')
            .filter_map(|record| self.record(record))
            .collect()
    }

    fn record(&mut self, record: &[u8]) -> Option<Line> {
        let mut fields = record.splitn(4, |b| *b == b' ');
        let stamp = std::str::from_utf8(fields.next()?).ok()?;
        let at = DateTime::parse_from_rfc3339(stamp)
            .ok()?
            .with_timezone(&Utc);
        let slot = match fields.next()? {
            b"stdout" => 0,
            b"stderr" => 1,
            _ => return None,
        };
        let partial = match fields.next()? {
            b"P" => true,
            b"F" => false,
            _ => return None,
        };
        let body = fields.next().unwrap_or_default();
        let pending = &mut self.pending[slot];
        let (stamp, mut text) = pending
            .take()
            .unwrap_or_else(|| (stamp.to_string(), Vec::new()));
        text.extend_from_slice(body);
        if partial {
            *pending = Some((stamp, text));
            return None;
        }
        let at = DateTime::parse_from_rfc3339(&stamp).map_or(at, |t| t.with_timezone(&Utc));
        Some(Line { stamp, at, text })
    }
}

/// The lines the query asks for out of a whole file's: the last `tailLines`, then those not
/// older than `since`.
pub fn select(lines: Vec<Line>, query: &LogQuery) -> Vec<Line> {
    let skip = query
        .tail_lines
        .map_or(0, |tail| lines.len().saturating_sub(tail));
    lines
        .into_iter()
        .skip(skip)
        .filter(|line| query.since.is_none_or(|since| line.at >= since))
        .collect()
}

/// What is left of `limitBytes`.
pub struct Budget(Option<u64>);

impl Budget {
    pub fn new(limit: Option<u64>) -> Self {
        Self(limit)
    }

    pub fn exhausted(&self) -> bool {
        self.0 == Some(0)
    }

    /// Cuts `bytes` down to what the limit still allows.
    pub fn take(&mut self, mut bytes: Vec<u8>) -> Vec<u8> {
        if let Some(left) = &mut self.0 {
            let keep = usize::try_from(*left)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            bytes.truncate(keep);
            *left -= keep as u64;
        }
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
2024-05-01T10:00:00.000000000Z stdout F one
2024-05-01T10:00:01.000000000Z stderr F two
2024-05-01T10:00:02.000000000Z stdout P thr
2024-05-01T10:00:02.500000000Z stderr F four
2024-05-01T10:00:03.000000000Z stdout F ee
";

    fn texts(lines: &[Line]) -> Vec<String> {
        lines
            .iter()
            .map(|l| String::from_utf8_lossy(&l.text).into_owned())
            .collect()
    }

    fn query(pairs: &[(&str, &str)]) -> LogQuery {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let now = DateTime::parse_from_rfc3339("2024-05-01T10:00:04Z").unwrap();
        LogQuery::parse(&pairs, now.with_timezone(&Utc)).unwrap()
    }

    #[test]
    fn partial_records_join_their_line_per_stream() {
        let lines = Assembler::default().feed(LOG.as_bytes());
        assert_eq!(texts(&lines), vec!["one", "two", "four", "three"]);
        // The joined line carries the stamp of its first chunk.
        assert_eq!(lines[3].stamp, "2024-05-01T10:00:02.000000000Z");
    }

    #[test]
    fn records_split_across_reads_are_kept_until_whole() {
        let mut assembler = Assembler::default();
        let (head, tail) = LOG.as_bytes().split_at(50);
        let mut lines = assembler.feed(head);
        assert_eq!(texts(&lines), vec!["one"]);
        lines.extend(assembler.feed(tail));
        assert_eq!(texts(&lines), vec!["one", "two", "four", "three"]);
    }

    #[test]
    fn tail_then_since() {
        let lines = Assembler::default().feed(LOG.as_bytes());
        let tail = select(lines.clone(), &query(&[("tailLines", "2")]));
        assert_eq!(texts(&tail), vec!["four", "three"]);
        let since = select(lines.clone(), &query(&[("sinceSeconds", "3")]));
        assert_eq!(texts(&since), vec!["two", "four", "three"]);
        let since_time = query(&[("sinceTime", "2024-05-01T10:00:02.2Z")]);
        assert_eq!(texts(&select(lines.clone(), &since_time)), vec!["four"]);
        let none = select(lines, &query(&[("tailLines", "0")]));
        assert!(none.is_empty());
    }

    #[test]
    fn timestamps_prefix_each_line() {
        let lines = Assembler::default().feed(LOG.as_bytes());
        assert_eq!(lines[0].render(false), b"one\n");
        assert_eq!(
            lines[0].render(true),
            b"2024-05-01T10:00:00.000000000Z one\n"
        );
    }

    #[test]
    fn the_byte_limit_cuts_the_output() {
        let mut budget = Budget::new(query(&[("limitBytes", "6")]).limit_bytes);
        assert_eq!(budget.take(b"one\n".to_vec()), b"one\n");
        assert_eq!(budget.take(b"two\n".to_vec()), b"tw");
        assert!(budget.exhausted());
        let mut unlimited = Budget::new(None);
        assert_eq!(unlimited.take(b"x\n".to_vec()), b"x\n");
    }

    #[test]
    fn bad_queries_are_rejected() {
        let pairs = |p: &[(&str, &str)]| -> Vec<(String, String)> {
            p.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        for bad in [
            pairs(&[("tailLines", "-1")]),
            pairs(&[("sinceTime", "yesterday")]),
            pairs(&[("sinceSeconds", "1"), ("sinceTime", "2024-05-01T10:00:00Z")]),
        ] {
            let parsed = LogQuery::parse(&bad, Utc::now());
            assert!(matches!(parsed, Err(ApiError::BadRequest(_))), "{bad:?}");
        }
        let flags = query(&[
            ("follow", "true"),
            ("previous", "1"),
            ("timestamps", "true"),
        ]);
        assert!(flags.follow && flags.previous && flags.timestamps);
    }
}
