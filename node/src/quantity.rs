//! Just enough of the Kubernetes quantity format for container limits.

/// Parses a quantity (`128Mi`, `1G`, `500m`, `2`) into thousandths of its unit, so that both
/// bytes and millicores come out of one parser.
pub fn parse_milli(text: &str) -> Option<u128> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    // Thousandths from up to three fraction digits; finer precision is dropped.
    let mut milli_fraction = 0u128;
    for (i, digit) in fraction.chars().take(3).enumerate() {
        milli_fraction += u128::from(digit.to_digit(10)?) * 10u128.pow(2 - i as u32);
    }
    let milli = whole.checked_mul(1000)?.checked_add(milli_fraction)?;
    let factor: u128 = match suffix {
        "m" => return Some(milli / 1000),
        "" => 1,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        _ => return None,
    };
    milli.checked_mul(factor)
}

/// A memory quantity in bytes.
pub fn bytes(text: &str) -> Option<u64> {
    u64::try_from(parse_milli(text)? / 1000).ok()
}

/// A CPU quantity in millicores.
pub fn millicores(text: &str) -> Option<u32> {
    u32::try_from(parse_milli(text)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_and_cpu_quantities() {
        assert_eq!(bytes("128Mi"), Some(128 << 20));
        assert_eq!(bytes("1G"), Some(1_000_000_000));
        assert_eq!(bytes("1.5Ki"), Some(1536));
        assert_eq!(millicores("500m"), Some(500));
        assert_eq!(millicores("2"), Some(2000));
        assert_eq!(millicores("0.25"), Some(250));
        assert_eq!(bytes("lots"), None);
        assert_eq!(bytes(""), None);
    }
}
