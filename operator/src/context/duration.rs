//! Durations as the backup tools spell them: Go's `time.ParseDuration` syntax (Velero `ttl`,
//! cron `@every`) and CloudNativePG's `retentionPolicy` (`30d`, `4w`, `6m`).
//!
//! Hand-written rather than pulled from a crate because both grammars are tiny and the exact
//! accepted set matters: a value Velero would reject must come out as `None` (reported as
//! unknown), not as a guess.

/// Parse a Go duration (`"720h0m0s"`, `"168h"`, `"30m"`, `"1.5h"`, `"0"`) into seconds.
///
/// Accepts an optional leading `+`, decimal fractions and the units `ns`, `us`, `µs`, `μs`, `ms`,
/// `s`, `m`, `h`, like Go. Negative durations are rejected: neither a retention nor a backup
/// interval can be negative, and Velero treats them as errors.
pub fn parse_go_duration(input: &str) -> Option<f64> {
    let s = input.trim();
    let s = s.strip_prefix('+').unwrap_or(s);
    if s.is_empty() || s.starts_with('-') {
        return None;
    }
    if s == "0" {
        return Some(0.0);
    }
    let mut total = 0.0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (number, tail) = rest.split_at(number_len);
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return None;
        }
        let value: f64 = number.parse().ok()?;
        let unit_len = tail.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += value * scale;
        rest = tail;
    }
    total.is_finite().then_some(total)
}

/// Parse a CloudNativePG `retentionPolicy` (`^[1-9][0-9]*[dwm]$`) into days. A month counts as
/// 30 days: the number feeds a "keeps at least N days" comparison, and 30 is the shortest month
/// that such a policy could reasonably mean.
pub fn parse_retention_days(input: &str) -> Option<u32> {
    let s = input.trim();
    let unit = s.chars().last()?;
    let number = &s[..s.len() - unit.len_utf8()];
    if number.is_empty() || number.starts_with('0') || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u32 = number.parse().ok()?;
    let per = match unit {
        'd' => 1,
        'w' => 7,
        'm' => 30,
        _ => return None,
    };
    n.checked_mul(per)
}

/// Seconds to hours for the document, rounded to the millisecond so that float noise from
/// fractions never shows up in a rule's message.
pub(crate) fn seconds_to_hours(seconds: f64) -> f64 {
    (seconds / 3600.0 * 1e6).round() / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("720h0m0s"), Some(720.0 * 3600.0));
        assert_eq!(parse_go_duration("168h"), Some(168.0 * 3600.0));
        assert_eq!(parse_go_duration("30m"), Some(1800.0));
        assert_eq!(parse_go_duration("1h30m"), Some(5400.0));
        assert_eq!(parse_go_duration("1.5h"), Some(5400.0));
        assert_eq!(parse_go_duration("0"), Some(0.0));
        assert_eq!(parse_go_duration("0s"), Some(0.0));
        assert_eq!(parse_go_duration("500ms"), Some(0.5));
        assert_eq!(parse_go_duration(" 12h "), Some(43200.0));
    }

    #[test]
    fn bad_go_durations() {
        for bad in ["", "h", "12", "12d", "-1h", "1..5h", "1h-5m", "abc", ".h", "5 h", "1e3h"] {
            assert_eq!(parse_go_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn retention_policies() {
        assert_eq!(parse_retention_days("30d"), Some(30));
        assert_eq!(parse_retention_days("4w"), Some(28));
        assert_eq!(parse_retention_days("6m"), Some(180));
        for bad in ["", "d", "0d", "07d", "30", "30y", "3.5d", "-1d", "30D", "99999999999d"] {
            assert_eq!(parse_retention_days(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn hours_are_rounded() {
        assert_eq!(seconds_to_hours(720.0 * 3600.0), 720.0);
        assert_eq!(seconds_to_hours(1800.0), 0.5);
    }
}
