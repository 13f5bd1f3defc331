//! Just enough of `resource.Quantity` to check its syntax, compare requests with limits and
//! add up what pods ask of a node: a quantity as integer nano-, milli- or whole units.

pub const QUANTITY_SYNTAX_ERROR: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

const NANO_EXP: i32 = 9;

/// Parses a quantity into nano-units (rounded up, saturating), or `None` when malformed.
pub fn parse_nanos(s: &str) -> Option<i128> {
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
    if int_part.is_empty() && frac_part.is_empty() || frac_part.contains('.') {
        return None;
    }
    let (dec_exp, bin_exp) = suffix_exponents(suffix)?;
    let digits = format!("{int_part}{frac_part}");
    let frac_len = i32::try_from(frac_part.len()).ok()?;
    let mut value: i128 = 0;
    let mut exp = dec_exp.checked_add(NANO_EXP)?.checked_sub(frac_len)?;
    for d in digits.bytes() {
        value = value
            .saturating_mul(10)
            .saturating_add(i128::from(d - b'0'));
    }
    value = value.saturating_mul(1i128 << bin_exp);
    while exp > 0 {
        value = value.saturating_mul(10);
        exp -= 1;
    }
    while exp < 0 {
        // Kubernetes rounds sub-nano precision up.
        value = value / 10 + i128::from(value % 10 != 0);
        exp += 1;
    }
    Some(if negative { -value } else { value })
}

/// Milli-units (`100m` is 100), rounded up and saturating; `None` when malformed. Surrounding
/// whitespace is ignored.
pub fn parse_milli(s: &str) -> Option<i64> {
    const NANOS_PER_MILLI: i128 = 1_000_000;
    let nanos = parse_nanos(s.trim())?;
    let magnitude = nanos
        .unsigned_abs()
        .div_ceil(NANOS_PER_MILLI.unsigned_abs());
    let milli = i64::try_from(magnitude).unwrap_or(i64::MAX);
    Some(if nanos < 0 { -milli } else { milli })
}

/// Whole units (bytes, pods), rounded up; as [`parse_milli`].
pub fn parse_units(s: &str) -> Option<i64> {
    parse_milli(s).map(|m| m / 1000 + i64::from(m % 1000 > 0))
}

/// The decimal and binary exponents a suffix stands for.
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
            // Anything beyond this range saturates or rounds to the smallest unit anyway.
            (exp.parse::<i32>().ok()?.clamp(-40, 40), 0)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_suffixes() {
        assert_eq!(parse_nanos("1"), Some(1_000_000_000));
        assert_eq!(parse_nanos("100m"), parse_nanos("0.1"));
        assert_eq!(parse_nanos("1Ki"), Some(1024 * 1_000_000_000));
        assert_eq!(parse_nanos("1e3"), parse_nanos("1k"));
        assert_eq!(parse_nanos("-2"), Some(-2_000_000_000));
        assert_eq!(parse_nanos("0.1n"), Some(1));
        assert!(parse_nanos("128Mi") > parse_nanos("100M"));
        for bad in ["", "abc", "1.2.3", "1x", "1e", "."] {
            assert_eq!(parse_nanos(bad), None, "{bad}");
        }
    }

    #[test]
    fn milli_and_whole_units_round_up() {
        assert_eq!(parse_milli("100m"), Some(100));
        assert_eq!(parse_milli("1.5"), Some(1500));
        assert_eq!(parse_milli(" 32 "), Some(32_000));
        assert_eq!(parse_milli("0.0001"), Some(1));
        assert_eq!(parse_milli("-0.0001"), Some(-1));
        assert_eq!(parse_milli("1e30"), Some(i64::MAX));
        assert_eq!(parse_units("128Mi"), Some(128 << 20));
        assert_eq!(parse_units("1Gi"), Some(1 << 30));
        assert_eq!(parse_units("1k"), Some(1000));
        assert_eq!(parse_units("1e3"), Some(1000));
        assert_eq!(parse_units("110"), Some(110));
        assert_eq!(parse_units("1500m"), Some(2));
        for bad in ["", "abc", "1.2.3", "5Qi"] {
            assert_eq!(parse_milli(bad), None, "{bad}");
        }
    }
}
