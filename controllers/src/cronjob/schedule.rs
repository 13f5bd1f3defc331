//! Standard 5-field cron schedules as CronJobs take them (minute, hour, day of month, month,
//! day of week), with ranges, steps, lists, month and weekday names and the `@hourly`-style
//! macros. Times are UTC and have minute precision.

use k8s_openapi::jiff::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("expected 5 fields in schedule {schedule:?}, found {found}")]
    FieldCount { schedule: String, found: usize },
    #[error("unrecognized descriptor {0:?}")]
    Descriptor(String),
    #[error("invalid {field} value {value:?}")]
    Value { field: &'static str, value: String },
    #[error("{field} value {value} is outside {min}-{max}")]
    OutOfRange {
        field: &'static str,
        value: u32,
        min: u32,
        max: u32,
    },
    #[error("invalid step in {field} item {item:?}")]
    Step { field: &'static str, item: String },
}

/// The times a cron schedule names; each field is a bit set of the values it allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    minutes: u64,
    hours: u64,
    days_of_month: u64,
    months: u64,
    days_of_week: u64,
    /// A `*` (or `?`) day field does not restrict; when either day field is one, a day must
    /// satisfy both, otherwise either (the cron rule).
    any_day_of_month: bool,
    any_day_of_week: bool,
}

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MINUTE: Field = Field {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: Field = Field {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
};
const DAY_OF_MONTH: Field = Field {
    name: "day of month",
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
};
const DAY_OF_WEEK: Field = Field {
    name: "day of week",
    min: 0,
    max: 6,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
};

impl Field {
    fn value(&self, text: &str) -> Result<u32, ScheduleError> {
        let lower = text.to_ascii_lowercase();
        let value = match self.names.iter().position(|n| *n == lower) {
            Some(index) => self.min + index as u32,
            None => text.parse().map_err(|_| ScheduleError::Value {
                field: self.name,
                value: text.to_string(),
            })?,
        };
        if value < self.min || value > self.max {
            return Err(ScheduleError::OutOfRange {
                field: self.name,
                value,
                min: self.min,
                max: self.max,
            });
        }
        Ok(value)
    }

    /// The bits of a comma-separated field, and whether it was an unrestricted `*`.
    fn parse(&self, text: &str) -> Result<(u64, bool), ScheduleError> {
        let mut bits = 0;
        let mut star = false;
        for item in text.split(',') {
            let (range, step) = match item.split_once('/') {
                Some((range, step)) => {
                    let step: u32 = step.parse().map_err(|_| ScheduleError::Step {
                        field: self.name,
                        item: item.to_string(),
                    })?;
                    if step == 0 {
                        return Err(ScheduleError::Step {
                            field: self.name,
                            item: item.to_string(),
                        });
                    }
                    (range, Some(step))
                }
                None => (item, None),
            };
            let (low, high) = if range == "*" || range == "?" {
                star |= step.is_none_or(|s| s == 1);
                (self.min, self.max)
            } else if let Some((low, high)) = range.split_once('-') {
                (self.value(low)?, self.value(high)?)
            } else {
                let low = self.value(range)?;
                // `N/step` means from N to the end of the field.
                (low, if step.is_some() { self.max } else { low })
            };
            if low > high {
                return Err(ScheduleError::Value {
                    field: self.name,
                    value: item.to_string(),
                });
            }
            let step = step.unwrap_or(1);
            bits |= (low..=high)
                .step_by(step as usize)
                .fold(0u64, |b, v| b | (1 << v));
        }
        Ok((bits, star))
    }
}

impl std::str::FromStr for Schedule {
    type Err = ScheduleError;

    fn from_str(text: &str) -> Result<Schedule, ScheduleError> {
        let text = text.trim();
        let expanded = match text {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other if other.starts_with('@') => {
                return Err(ScheduleError::Descriptor(other.to_string()));
            }
            other => other,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let [minute, hour, day_of_month, month, day_of_week] = fields[..] else {
            return Err(ScheduleError::FieldCount {
                schedule: text.to_string(),
                found: fields.len(),
            });
        };
        let (days_of_month, any_day_of_month) = DAY_OF_MONTH.parse(day_of_month)?;
        let (days_of_week, any_day_of_week) = DAY_OF_WEEK.parse(day_of_week)?;
        Ok(Schedule {
            minutes: MINUTE.parse(minute)?.0,
            hours: HOUR.parse(hour)?.0,
            days_of_month,
            months: MONTH.parse(month)?.0,
            days_of_week,
            any_day_of_month,
            any_day_of_week,
        })
    }
}

/// A UTC calendar date and time of day, from minutes since the epoch.
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    /// 0 = Sunday.
    weekday: u32,
    day_index: i64,
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil(minutes: i64) -> Civil {
    let day_index = minutes.div_euclid(1440);
    let in_day = minutes.rem_euclid(1440);
    let z = day_index + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    Civil {
        year,
        month,
        day,
        hour: (in_day / 60) as u32,
        minute: (in_day % 60) as u32,
        weekday: (day_index + 4).rem_euclid(7) as u32,
        day_index,
    }
}

fn has(bits: u64, value: u32) -> bool {
    bits & (1 << value) != 0
}

impl Schedule {
    fn day_matches(&self, at: &Civil) -> bool {
        let by_month = has(self.days_of_month, at.day);
        let by_week = has(self.days_of_week, at.weekday);
        if self.any_day_of_month || self.any_day_of_week {
            by_month && by_week
        } else {
            by_month || by_week
        }
    }

    /// The first scheduled time strictly after `after`; None when the schedule names no
    /// time in the next five years (say, February 30th).
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let mut minutes = after.as_second().div_euclid(60) + 1;
        let limit_year = civil(minutes).year + 5;
        loop {
            let at = civil(minutes);
            if at.year > limit_year {
                return None;
            }
            minutes = if !has(self.months, at.month) {
                let (year, month) = if at.month == 12 {
                    (at.year + 1, 1)
                } else {
                    (at.year, at.month + 1)
                };
                days_from_civil(year, month, 1) * 1440
            } else if !self.day_matches(&at) {
                (at.day_index + 1) * 1440
            } else if !has(self.hours, at.hour) {
                (minutes.div_euclid(60) + 1) * 60
            } else if !has(self.minutes, at.minute) {
                minutes + 1
            } else {
                return Timestamp::from_second(minutes * 60).ok();
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn next(schedule: &str, after: &str) -> Option<String> {
        let schedule: Schedule = schedule.parse().unwrap();
        schedule.next_after(at(after)).map(|t| t.to_string())
    }

    #[test]
    fn civil_conversion_round_trips() {
        for minutes in [0, 1_440 * 59, 27_000_000, -1_000_000, 30_000_000] {
            let c = civil(minutes);
            let back = days_from_civil(c.year, c.month, c.day) * 1440
                + i64::from(c.hour) * 60
                + i64::from(c.minute);
            assert_eq!(back, minutes);
        }
        let leap = civil(days_from_civil(2024, 2, 29) * 1440);
        assert_eq!(
            (leap.year, leap.month, leap.day, leap.weekday),
            (2024, 2, 29, 4)
        );
    }

    #[test]
    fn every_minute_and_macros() {
        assert_eq!(
            next("* * * * *", "2025-03-01T10:15:30Z").as_deref(),
            Some("2025-03-01T10:16:00Z")
        );
        assert_eq!(
            next("* * * * *", "2025-03-01T10:15:00Z").as_deref(),
            Some("2025-03-01T10:16:00Z")
        );
        assert_eq!(
            next("@hourly", "2025-03-01T10:15:00Z").as_deref(),
            Some("2025-03-01T11:00:00Z")
        );
        assert_eq!(
            next("@yearly", "2025-03-01T10:15:00Z").as_deref(),
            Some("2026-01-01T00:00:00Z")
        );
        assert_eq!(
            next("@weekly", "2025-03-01T10:15:00Z").as_deref(),
            Some("2025-03-02T00:00:00Z")
        );
    }

    #[test]
    fn ranges_steps_lists_and_names() {
        assert_eq!(
            next("*/15 9-17 * * mon-fri", "2025-03-01T10:15:00Z").as_deref(),
            Some("2025-03-03T09:00:00Z")
        );
        assert_eq!(
            next("5,35 */6 * JAN,Jul *", "2025-03-01T00:00:00Z").as_deref(),
            Some("2025-07-01T00:05:00Z")
        );
        assert_eq!(
            next("10/20 * * * *", "2025-03-01T00:31:00Z").as_deref(),
            Some("2025-03-01T00:50:00Z")
        );
        assert_eq!(
            next("0 0 29 2 *", "2025-03-01T00:00:00Z").as_deref(),
            Some("2028-02-29T00:00:00Z")
        );
    }

    #[test]
    fn restricted_day_fields_match_either() {
        // The 13th, or any Friday.
        assert_eq!(
            next("0 0 13 * 5", "2025-06-01T00:00:00Z").as_deref(),
            Some("2025-06-06T00:00:00Z")
        );
        assert_eq!(
            next("0 0 13 * 5", "2025-06-10T00:00:00Z").as_deref(),
            Some("2025-06-13T00:00:00Z")
        );
        // With one of them `*`, both must hold: Fridays only.
        assert_eq!(
            next("0 0 * * 5", "2025-06-10T00:00:00Z").as_deref(),
            Some("2025-06-13T00:00:00Z")
        );
    }

    #[test]
    fn impossible_dates_have_no_next_time() {
        assert_eq!(next("0 0 30 2 *", "2025-01-01T00:00:00Z"), None);
    }

    #[test]
    fn bad_schedules_are_errors() {
        for bad in [
            "* * * *",
            "60 * * * *",
            "* * * * 7",
            "*/0 * * * *",
            "5-1 * * * *",
            "* * * foo *",
            "@every 5m",
            "a b c d e",
        ] {
            assert!(bad.parse::<Schedule>().is_err(), "{bad} parsed");
        }
    }
}
