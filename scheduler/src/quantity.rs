//! Just enough of `resource.Quantity` for scheduling: a quantity as milli-units, rounded up.

/// Parses `s` (`100m`, `1.5`, `128Mi`, `1e3`) into milli-units, rounded up and saturating;
/// `None` when malformed.
pub fn parse_milli(s: &str) -> Option<i64> {
    let s = s.trim();
    let (negative, rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let number_len = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(number_len);
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if (int_part.is_empty() && frac_part.is_empty()) || frac_part.contains('.') {
        return None;
    }
    let (dec_exp, bin_exp) = suffix_exponents(suffix)?;
    let mut value: i128 = 0;
    for d in int_part.bytes().chain(frac_part.bytes()) {
        value = value
            .saturating_mul(10)
            .saturating_add(i128::from(d - b'0'));
    }
    value = value.saturating_mul(1i128 << bin_exp);
    let frac_len = i32::try_from(frac_part.len()).ok()?;
    // Milli-units: three more decimal places.
    let mut exp = dec_exp + 3 - frac_len;
    while exp > 0 {
        value = value.saturating_mul(10);
        exp -= 1;
    }
    while exp < 0 {
        value = value / 10 + i128::from(value % 10 != 0);
        exp += 1;
    }
    let value = i64::try_from(value).unwrap_or(i64::MAX);
    Some(if negative { -value } else { value })
}

/// Whole units (bytes, pods), rounded up.
pub fn parse_units(s: &str) -> Option<i64> {
    parse_milli(s).map(|m| m / 1000 + i64::from(m % 1000 > 0))
}

fn suffix_exponents(suffix: &str) -> Option<(i32, u32)> {
    Some(match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        _ => {
            let exp = suffix.strip_prefix(['e', 'E'])?;
            let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            (exp.parse::<i32>().ok()?.clamp(-30, 30), 0)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_and_memory_forms() {
        assert_eq!(parse_milli("100m"), Some(100));
        assert_eq!(parse_milli("1.5"), Some(1500));
        assert_eq!(parse_milli("32"), Some(32_000));
        assert_eq!(parse_milli("0.0001"), Some(1));
        assert_eq!(parse_units("128Mi"), Some(128 << 20));
        assert_eq!(parse_units("1Gi"), Some(1 << 30));
        assert_eq!(parse_units("1k"), Some(1000));
        assert_eq!(parse_units("1e3"), Some(1000));
        assert_eq!(parse_units("110"), Some(110));
    }

    #[test]
    fn refuses_garbage() {
        assert_eq!(parse_milli(""), None);
        assert_eq!(parse_milli("abc"), None);
        assert_eq!(parse_milli("1.2.3"), None);
        assert_eq!(parse_milli("5Qi"), None);
    }
}
