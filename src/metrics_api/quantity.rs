//! Canonical Kubernetes quantity strings (contract §1.8).
//!
//! The HPA parses every value with Go's `ParseQuantity` and reads `MilliValue()`. We print what Go's
//! `resource.Quantity` prints for a DecimalSI value: the exact decimal is written as
//! `mantissa × 10^exp`, trailing zeros of the mantissa move into `exp`, `exp` is rounded down to a
//! multiple of three, and the suffix for `exp` follows the mantissa.

/// Formats `value` as a canonical DecimalSI quantity (`1.5` → `1500m`, `2000` → `2k`).
///
/// Precision is kept down to nano units (Go's parser rounds finer values up to the next nano anyway).
/// Returns `None` for NaN and infinities, which no quantity can represent: callers leave such
/// samples out.
pub fn format_quantity(value: f64) -> Option<String> {
    if !value.is_finite() {
        return None;
    }
    if value == 0.0 {
        return Some("0".to_owned());
    }
    // Shortest round-trip decimal digits of |value|: "d.ddde±x".
    let sci = format!("{:e}", value.abs());
    let (mantissa, exp) = sci.split_once('e')?;
    let exp: i32 = exp.parse().ok()?;
    let mut digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    // value = digits × 10^e10
    let mut e10 = exp - (digits.len() as i32 - 1);
    if e10 < -9 {
        // Round half up to nano precision.
        let drop = (-9 - e10) as usize;
        if drop > digits.len() {
            return Some("0".to_owned());
        }
        let keep = digits.len() - drop;
        let round_up = digits[keep] >= b'5';
        digits.truncate(keep);
        if round_up {
            let mut i = digits.len();
            loop {
                if i == 0 {
                    digits.insert(0, b'1');
                    break;
                }
                i -= 1;
                if digits[i] == b'9' {
                    digits[i] = b'0';
                } else {
                    digits[i] += 1;
                    break;
                }
            }
        }
        e10 = -9;
    }
    // Strip leading zeros (from rounding) and trailing zeros into the exponent.
    while digits.len() > 1 && digits[0] == b'0' {
        digits.remove(0);
    }
    if digits.iter().all(|d| *d == b'0') {
        return Some("0".to_owned());
    }
    while digits.last() == Some(&b'0') {
        digits.pop();
        e10 += 1;
    }
    // Round the exponent down to a multiple of three, capped at the largest suffix (E).
    let mut pad = e10.rem_euclid(3);
    e10 -= pad;
    if e10 > 18 {
        pad += e10 - 18;
        e10 = 18;
    }
    digits.extend(std::iter::repeat_n(b'0', pad as usize));
    let suffix = match e10 {
        -9 => "n",
        -6 => "u",
        -3 => "m",
        0 => "",
        3 => "k",
        6 => "M",
        9 => "G",
        12 => "T",
        15 => "P",
        18 => "E",
        _ => return None,
    };
    let mut out = String::with_capacity(digits.len() + 2);
    if value < 0.0 {
        out.push('-');
    }
    out.push_str(std::str::from_utf8(&digits).ok()?);
    out.push_str(suffix);
    Some(out)
}

/// Parses a Kubernetes quantity (`500m`, `2`, `1.5Gi`, `4k`, `1e3`) into its value; `None` when
/// it is not one. Binary suffixes are powers of 1024, decimal ones powers of 1000.
pub fn parse_quantity(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '+' | '-')))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exponent if exponent.starts_with(['e', 'E']) => 10f64.powi(exponent[1..].parse().ok()?),
        _ => return None,
    };
    Some(number * factor).filter(|v| v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::{format_quantity, parse_quantity};

    #[test]
    fn parses_what_kubernetes_writes() {
        let table: &[(&str, f64)] = &[
            ("500m", 0.5),
            ("2", 2.0),
            ("1.5", 1.5),
            ("4k", 4000.0),
            ("2Gi", 2.0 * 1024.0 * 1024.0 * 1024.0),
            ("512Mi", 512.0 * 1024.0 * 1024.0),
            ("1e3", 1000.0),
            ("800m", 0.8),
        ];
        for (text, want) in table {
            let got = parse_quantity(text).unwrap_or_else(|| panic!("{text} parses"));
            assert!(
                (got - want).abs() < 1e-9 * want.abs().max(1.0),
                "{text}: {got}"
            );
        }
        assert_eq!(parse_quantity("two"), None);
        assert_eq!(parse_quantity("1Xi"), None);
        assert_eq!(parse_quantity(""), None);
    }

    #[test]
    fn contract_table() {
        let table: &[(f64, &str)] = &[
            (1.5, "1500m"),
            (0.0, "0"),
            (2.0, "2"),
            (42.0, "42"),
            (2000.0, "2k"),
            (1200.0, "1200"),
            (100000.0, "100k"),
            (1500000.0, "1500k"),
            (1234567.0, "1234567"),
            (12.345, "12345m"),
            (0.5, "500m"),
            (-2.5, "-2500m"),
            (0.0001, "100u"),
        ];
        for (value, want) in table {
            assert_eq!(
                format_quantity(*value).as_deref(),
                Some(*want),
                "value {value}"
            );
        }
    }

    #[test]
    fn not_representable() {
        assert_eq!(format_quantity(f64::NAN), None);
        assert_eq!(format_quantity(f64::INFINITY), None);
        assert_eq!(format_quantity(f64::NEG_INFINITY), None);
    }

    #[test]
    fn float_noise_and_tiny_values() {
        assert_eq!(format_quantity(0.1 + 0.2).as_deref(), Some("300m"));
        assert_eq!(format_quantity(-0.0).as_deref(), Some("0"));
        assert_eq!(format_quantity(1e-12).as_deref(), Some("0"));
        assert_eq!(format_quantity(6e-10).as_deref(), Some("1n"));
        assert_eq!(format_quantity(1e-9).as_deref(), Some("1n"));
        assert_eq!(format_quantity(3e6).as_deref(), Some("3M"));
        assert_eq!(format_quantity(1e21).as_deref(), Some("1000E"));
        assert_eq!(format_quantity(0.999_999_999_7).as_deref(), Some("1"));
        assert_eq!(format_quantity(10.5).as_deref(), Some("10500m"));
    }
}
