//! Standard 5-field cron schedules and `@hourly`-style descriptors, as CronJobs accept them.
//! Error texts follow the cron library Kubernetes uses.

const MONTHS: &[&str] = &[
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
const DESCRIPTORS: &[&str] = &[
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
];

struct FieldSpec {
    min: u32,
    max: u32,
    /// Names accepted in place of numbers, the first standing for `min`.
    names: &'static [&'static str],
}

const FIELDS: [FieldSpec; 5] = [
    FieldSpec {
        min: 0,
        max: 59,
        names: &[],
    },
    FieldSpec {
        min: 0,
        max: 23,
        names: &[],
    },
    FieldSpec {
        min: 1,
        max: 31,
        names: &[],
    },
    FieldSpec {
        min: 1,
        max: 12,
        names: MONTHS,
    },
    FieldSpec {
        min: 0,
        max: 6,
        names: DAYS,
    },
];

/// Checks a schedule; the error is the message to show after `Invalid value: "...": `.
pub(crate) fn check_schedule(schedule: &str) -> Result<(), String> {
    let schedule = schedule.trim();
    if let Some(rest) = schedule.strip_prefix('@') {
        if let Some(duration) = rest.strip_prefix("every ") {
            return check_every(duration);
        }
        if DESCRIPTORS.contains(&schedule) {
            return Ok(());
        }
        return Err(format!("unrecognized descriptor: {schedule}"));
    }
    let fields: Vec<&str> = schedule.split_whitespace().collect();
    if fields.len() != FIELDS.len() {
        return Err(format!(
            "expected exactly 5 fields, found {}: [{}]",
            fields.len(),
            fields.join(" ")
        ));
    }
    for (field, spec) in fields.iter().zip(FIELDS.iter()) {
        for part in field.split(',') {
            check_range(part, spec)?;
        }
    }
    Ok(())
}

/// `@every <duration>` takes a Go duration such as `1h30m`.
fn check_every(duration: &str) -> Result<(), String> {
    let bad =
        || format!("failed to parse duration @every {duration}: invalid duration {duration:?}");
    let mut rest = duration.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let after = &rest[digits..];
        let unit = ["ns", "us", "µs", "ms", "s", "m", "h"]
            .iter()
            .filter(|u| after.starts_with(**u))
            .max_by_key(|u| u.len())
            .ok_or_else(bad)?;
        rest = &after[unit.len()..];
    }
    Ok(())
}

/// One comma-separated part: `*`, `?`, `n`, `a-b`, each optionally with `/step`.
fn check_range(part: &str, spec: &FieldSpec) -> Result<(), String> {
    let (range, step) = match part.split_once('/') {
        Some((range, step)) => (range, Some(step)),
        None => (part, None),
    };
    if step.is_some_and(|s| s.contains('/')) {
        return Err(format!("too many slashes: {part}"));
    }
    let (start, end) = if range == "*" || range == "?" {
        (spec.min, spec.max)
    } else {
        match range.split_once('-') {
            Some((lo, hi)) => {
                if hi.contains('-') {
                    return Err(format!("too many hyphens: {part}"));
                }
                (parse_value(lo, spec)?, parse_value(hi, spec)?)
            }
            None => {
                let v = parse_value(range, spec)?;
                (v, v)
            }
        }
    };
    if let Some(step) = step {
        let step: u32 = step
            .parse()
            .map_err(|_| format!("failed to parse int from {step}: invalid syntax"))?;
        if step == 0 {
            return Err(format!("step of range should be a positive number: {part}"));
        }
    }
    if start < spec.min {
        return Err(format!(
            "beginning of range ({start}) below minimum ({}): {part}",
            spec.min
        ));
    }
    if end > spec.max {
        return Err(format!(
            "end of range ({end}) above maximum ({}): {part}",
            spec.max
        ));
    }
    if start > end {
        return Err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {part}"
        ));
    }
    Ok(())
}

fn parse_value(text: &str, spec: &FieldSpec) -> Result<u32, String> {
    let lower = text.to_ascii_lowercase();
    if let Some(pos) = spec.names.iter().position(|n| *n == lower) {
        let offset = u32::try_from(pos).unwrap_or(u32::MAX);
        return Ok(spec.min.saturating_add(offset));
    }
    text.parse::<u32>()
        .map_err(|_| format!("failed to parse int from {text}: invalid syntax"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_standard_schedules() {
        for ok in [
            "*/5 * * * *",
            "0 0 1,15 * MON-FRI",
            "30 2 * jan-mar ?",
            "@hourly",
            "@every 1h30m",
            "0-59/10 0-23 1-31 1-12 0-6",
        ] {
            assert_eq!(check_schedule(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn rejects_bad_schedules_with_cron_messages() {
        assert_eq!(
            check_schedule("bad").unwrap_err(),
            "expected exactly 5 fields, found 1: [bad]"
        );
        assert_eq!(
            check_schedule("60 * * * *").unwrap_err(),
            "end of range (60) above maximum (59): 60"
        );
        assert_eq!(
            check_schedule("* * 0 * *").unwrap_err(),
            "beginning of range (0) below minimum (1): 0"
        );
        assert_eq!(
            check_schedule("*/0 * * * *").unwrap_err(),
            "step of range should be a positive number: */0"
        );
        assert_eq!(
            check_schedule("5-1 * * * *").unwrap_err(),
            "beginning of range (5) beyond end of range (1): 5-1"
        );
        assert_eq!(
            check_schedule("@sometimes").unwrap_err(),
            "unrecognized descriptor: @sometimes"
        );
        assert!(check_schedule("@every soon").is_err());
        assert!(check_schedule("x * * * *").is_err());
    }
}
