//! Timestamps and the human-readable durations kubectl shows in AGE-like columns.

use serde_json::Value;

const NANOS_PER_SECOND: i128 = 1_000_000_000;

/// Parses an RFC 3339 timestamp (`2024-05-01T10:00:00Z`, optional fraction and offset) into
/// nanoseconds since the Unix epoch.
pub fn parse_rfc3339(s: &str) -> Option<i128> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let year = digits(&b[0..4])?;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let hour = digits(&b[11..13])?;
    let minute = digits(&b[14..16])?;
    let second = digits(&b[17..19])?;
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut rest = &b[19..];
    let mut fraction_nanos: i128 = 0;
    if rest.first() == Some(&b'.') {
        let count = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if count == 0 {
            return None;
        }
        for (i, c) in rest[1..=count].iter().enumerate() {
            if i < 9 {
                fraction_nanos += i128::from(c - b'0') * 10_i128.pow(8 - i as u32);
            }
        }
        rest = &rest[1 + count..];
    }
    let offset_seconds: i64 = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let hours = digits(&[*h1, *h2])?;
            let minutes = digits(&[*m1, *m2])?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let magnitude = hours * 3600 + minutes * 60;
            if *sign == b'-' { -magnitude } else { magnitude }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    Some(i128::from(seconds) * NANOS_PER_SECOND + fraction_nanos)
}

fn digits(bytes: &[u8]) -> Option<i64> {
    bytes.iter().try_fold(0_i64, |acc, c| {
        c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
    })
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let shifted_month = (month + 9) % 12;
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Kubernetes's `duration.HumanDuration`: coarser units the older something is.
pub fn human_duration(seconds: i64) -> String {
    // Up to a second into the future still reads as "now", tolerating clock skew.
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        return match seconds % 60 {
            0 => format!("{minutes}m"),
            s => format!("{minutes}m{s}s"),
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        return match minutes % 60 {
            0 => format!("{hours}h"),
            m => format!("{hours}h{m}m"),
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        return match hours % 24 {
            0 => format!("{days}d"),
            h => format!("{days}d{h}h"),
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    let years = days / 365;
    if hours < 24 * 365 * 8 {
        return match days % 365 {
            0 => format!("{years}y"),
            d => format!("{years}y{d}d"),
        };
    }
    format!("{years}y")
}

/// Whole seconds between two instants, truncated toward zero as Go's `Duration.Seconds` cast is.
fn seconds_between(from_nanos: i128, to_nanos: i128) -> i64 {
    let seconds = (to_nanos - from_nanos) / NANOS_PER_SECOND;
    i64::try_from(seconds).unwrap_or(if seconds < 0 { i64::MIN } else { i64::MAX })
}

/// The timestamp at `pointer` in `object`, if present and well formed.
pub fn timestamp_at(object: &Value, pointer: &str) -> Option<i128> {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .and_then(parse_rfc3339)
}

/// How long ago `instant` was, or `<unknown>` without one, like kubectl's AGE.
pub fn since(instant: Option<i128>, now_unix_seconds: i64) -> String {
    match instant {
        Some(instant) => human_duration(seconds_between(
            instant,
            i128::from(now_unix_seconds) * NANOS_PER_SECOND,
        )),
        None => "<unknown>".to_string(),
    }
}

/// The span between two instants in the same format.
pub fn between(start: i128, end: i128) -> String {
    human_duration(seconds_between(start, end))
}

/// The AGE cell: time since `metadata.creationTimestamp`.
pub fn age(object: &Value, now_unix_seconds: i64) -> String {
    since(
        timestamp_at(object, "/metadata/creationTimestamp"),
        now_unix_seconds,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc3339_variants() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2024-02-29T12:30:15Z"),
            Some(1_709_209_815 * NANOS_PER_SECOND)
        );
        assert_eq!(
            parse_rfc3339("2024-02-29T14:30:15+02:00"),
            parse_rfc3339("2024-02-29T12:30:15Z")
        );
        assert_eq!(
            parse_rfc3339("2024-02-29T12:30:15.250000Z"),
            Some(1_709_209_815 * NANOS_PER_SECOND + 250_000_000)
        );
        assert_eq!(
            parse_rfc3339("1969-12-31T23:59:59Z"),
            Some(-NANOS_PER_SECOND)
        );
        for bad in [
            "",
            "2024-02-30T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:00",
            "2024-01-01T00:00:00.Z",
            "2024-01-01 00:00:00+0100",
            "yyyy-01-01T00:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn human_duration_matches_kubernetes() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (200, "3m20s"),
            (599, "9m59s"),
            (600, "10m"),
            (179 * 60 + 59, "179m"),
            (3 * 3600, "3h"),
            (5 * 3600 + 30 * 60, "5h30m"),
            (8 * 3600, "8h"),
            (47 * 3600 + 59 * 60, "47h"),
            (48 * 3600, "2d"),
            (3 * 86_400 + 4 * 3600, "3d4h"),
            (8 * 86_400, "8d"),
            (45 * 86_400, "45d"),
            (729 * 86_400, "729d"),
            (730 * 86_400, "2y"),
            (740 * 86_400, "2y10d"),
            (8 * 365 * 86_400, "8y"),
            (20 * 365 * 86_400 + 40 * 86_400, "20y"),
        ];
        for (seconds, want) in cases {
            assert_eq!(human_duration(seconds), want, "{seconds}s");
        }
    }

    #[test]
    fn age_truncates_fractions_and_handles_missing() {
        let now = 1_000;
        let created =
            serde_json::json!({"metadata": {"creationTimestamp": "1970-01-01T00:16:40Z"}});
        assert_eq!(age(&created, now + 200), "3m20s");
        assert_eq!(age(&serde_json::json!({"metadata": {}}), now), "<unknown>");
        // 0.5 s ago reads as 0s, not 1s.
        assert_eq!(since(parse_rfc3339("1970-01-01T00:16:39.5Z"), now), "0s");
        // A second in the future is tolerated, two are not.
        assert_eq!(since(parse_rfc3339("1970-01-01T00:16:41Z"), now), "0s");
        assert_eq!(
            since(parse_rfc3339("1970-01-01T00:16:42Z"), now),
            "<invalid>"
        );
    }
}
