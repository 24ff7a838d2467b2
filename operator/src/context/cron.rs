//! Cron expressions, reduced to the one number backup rules need: the longest gap between two
//! consecutive runs (the worst-case recovery point objective the schedule allows).
//!
//! Accepted syntax is the union of what Velero (robfig/cron, 5 fields plus `@` descriptors) and
//! CloudNativePG (6 fields, leading seconds) accept: lists, ranges, steps (`*/6`, `1-30/2`,
//! `5/15`), month and weekday names (`JAN`, `mon-fri`), `?` as `*` in the day fields, `7` as
//! Sunday, a `CRON_TZ=`/`TZ=` prefix (ignored: the time zone shifts runs but does not change
//! the gaps, daylight saving aside), and `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`,
//! `@midnight`, `@hourly`, `@every <go duration>`. Anything else is rejected rather than guessed,
//! so a typo shows up as "interval unknown" instead of a wrong number.
//!
//! The day-of-month / day-of-week rule is Vixie cron's (and robfig's): when both fields are
//! restricted (neither starts with `*` or `?`) a day matches if *either* matches; otherwise both
//! must.

use super::duration::{parse_go_duration, seconds_to_hours};

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// Calendar fields as bit sets.
    Cron(Fields),
    /// `@every <duration>`: a fixed interval, in whole milliseconds.
    Every { millis: u64 },
}

/// The calendar fields of a cron expression. Bit `n` set means value `n` is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields {
    seconds: u64,
    minutes: u64,
    hours: u64,
    days_of_month: u64,
    months: u64,
    days_of_week: u64,
    dom_star: bool,
    dow_star: bool,
}

/// Parse a cron expression; `None` if it is not one this module understands.
pub fn parse(expr: &str) -> Option<Schedule> {
    let mut s = expr.trim();
    if let Some(rest) = s.strip_prefix("CRON_TZ=").or_else(|| s.strip_prefix("TZ=")) {
        // The zone name runs up to the first whitespace.
        s = rest.split_once(char::is_whitespace)?.1.trim();
    }
    if let Some(descriptor) = s.strip_prefix('@') {
        let (word, arg) = descriptor.split_once(char::is_whitespace).unwrap_or((descriptor, ""));
        let standard = match word.to_ascii_lowercase().as_str() {
            "yearly" | "annually" => "0 0 1 1 *",
            "monthly" => "0 0 1 * *",
            "weekly" => "0 0 * * 0",
            "daily" | "midnight" => "0 0 * * *",
            "hourly" => "0 * * * *",
            "every" => {
                let secs = parse_go_duration(arg)?;
                let millis = (secs * 1000.0).round();
                return (1.0..1e15).contains(&millis).then_some(Schedule::Every { millis: millis as u64 });
            }
            _ => return None,
        };
        if !arg.trim().is_empty() {
            return None;
        }
        return parse(standard);
    }
    let parts: Vec<&str> = s.split_whitespace().collect();
    let (sec, rest) = match parts.len() {
        5 => ("0", &parts[..]),
        6 => (parts[0], &parts[1..]),
        _ => return None,
    };
    let [min, hour, dom, month, dow] = rest else { return None };
    let mut days_of_week = field(dow, 0, 7, DAY_NAMES)?;
    if days_of_week & (1 << 7) != 0 {
        days_of_week = (days_of_week & !(1 << 7)) | 1;
    }
    Some(Schedule::Cron(Fields {
        seconds: field(sec, 0, 59, &[])?,
        minutes: field(min, 0, 59, &[])?,
        hours: field(hour, 0, 23, &[])?,
        days_of_month: field(dom, 1, 31, &[])?,
        months: field(month, 1, 12, MONTH_NAMES)?,
        days_of_week,
        dom_star: dom.starts_with('*') || dom.starts_with('?'),
        dow_star: dow.starts_with('*') || dow.starts_with('?'),
    }))
}

/// Longest gap between two consecutive runs, in hours; `None` if the expression does not parse
/// or does not run at least twice in the evaluation window.
pub fn interval_hours(expr: &str) -> Option<f64> {
    parse(expr)?.longest_gap_seconds().map(|s| seconds_to_hours(s as f64))
}

impl Schedule {
    /// Longest gap between two consecutive runs, in seconds (`@every` rounds to whole seconds,
    /// upwards, so a sub-second interval still counts as a gap).
    ///
    /// Runs are not enumerated one by one (a per-second schedule would make that slow): every
    /// matching day has the same times of day, so the longest gap is either the longest gap
    /// inside a day or the longest gap from a day's last run to the next matching day's first run.
    /// Days are walked over eight calendar years from 2024-01-01 (two leap days, every weekday on
    /// every date), or over two weeks when only the weekday restricts the days.
    pub fn longest_gap_seconds(&self) -> Option<u64> {
        let f = match self {
            Schedule::Every { millis } => return Some(millis.div_ceil(1000)),
            Schedule::Cron(f) => f,
        };
        let secs = bits(f.seconds);
        let mins = bits(f.minutes);
        let hours = bits(f.hours);
        let (s0, sn) = (*secs.first()?, *secs.last()?);
        let (m0, mn) = (*mins.first()?, *mins.last()?);
        let (h0, hn) = (*hours.first()?, *hours.last()?);
        let first_tod = h0 * 3600 + m0 * 60 + s0;
        let last_tod = hn * 3600 + mn * 60 + sn;
        let runs_per_day = secs.len() * mins.len() * hours.len();

        // Longest gap within one day, from the sorted (hour, minute, second) product.
        let mut within_day: Option<u64> = None;
        consider(max_step(&secs), &mut within_day);
        consider(max_step(&mins).map(|g| g * 60 + s0 - sn), &mut within_day);
        consider(max_step(&hours).map(|g| g * 3600 + m0 * 60 + s0 - mn * 60 - sn), &mut within_day);

        let full_days = f.days_of_month == mask(1, 31) && f.months == mask(1, 12);
        let window_days = if full_days { 15 } else { 8 * 366 };
        let mut best: Option<u64> = None;
        let mut previous_day: Option<u64> = None;
        let mut matching_days = 0usize;
        let mut day_index = 0u64;
        let mut weekday = 1u64; // 2024-01-01 was a Monday.
        'years: for year in 2024u64.. {
            for month in 1..=12u64 {
                for day in 1..=days_in_month(year, month) {
                    if day_index >= window_days {
                        break 'years;
                    }
                    if f.matches_day(day, month, weekday) {
                        matching_days += 1;
                        if let Some(prev) = previous_day {
                            consider(Some((day_index - prev) * 86_400 + first_tod - last_tod), &mut best);
                        }
                        previous_day = Some(day_index);
                    }
                    day_index += 1;
                    weekday = (weekday + 1) % 7;
                }
            }
        }
        if matching_days == 0 || (matching_days == 1 && runs_per_day < 2) {
            return None;
        }
        consider(within_day, &mut best);
        best
    }
}

impl Fields {
    fn matches_day(&self, day: u64, month: u64, weekday: u64) -> bool {
        if self.months & (1 << month) == 0 {
            return false;
        }
        let dom = self.days_of_month & (1 << day) != 0;
        let dow = self.days_of_week & (1 << weekday) != 0;
        if self.dom_star || self.dow_star { dom && dow } else { dom || dow }
    }
}

const MONTH_NAMES: &[&str] = &["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
/// Indexed from 0 = Sunday.
const DAY_NAMES: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// Parse one field (comma-separated items) into a bit set over `min..=max`.
/// `names[i]` stands for `min + i` (months: JAN = 1; weekdays: SUN = 0).
fn field(text: &str, min: u64, max: u64, names: &[&str]) -> Option<u64> {
    let mut set = 0u64;
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, Some(s.parse::<u64>().ok().filter(|s| *s > 0)?)),
            None => (item, None),
        };
        let (lo, hi) = if range == "*" || range == "?" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a, min, names)?, value(b, min, names)?)
        } else {
            let v = value(range, min, names)?;
            // `5/15` means "from 5 to the end, every 15".
            (v, if step.is_some() { max } else { v })
        };
        if lo < min || hi > max || lo > hi {
            return None;
        }
        let step = step.unwrap_or(1);
        let mut v = lo;
        while v <= hi {
            set |= 1 << v;
            let Some(next) = v.checked_add(step) else { break };
            v = next;
        }
    }
    Some(set)
}

fn value(text: &str, min: u64, names: &[&str]) -> Option<u64> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok().filter(|v| *v < 64);
    }
    names.iter().position(|n| n.eq_ignore_ascii_case(text)).map(|i| min + i as u64)
}

fn consider(gap: Option<u64>, best: &mut Option<u64>) {
    if let Some(g) = gap {
        *best = Some(best.map_or(g, |b| b.max(g)));
    }
}

fn mask(lo: u64, hi: u64) -> u64 {
    (lo..=hi).fold(0, |m, v| m | (1 << v))
}

fn bits(set: u64) -> Vec<u64> {
    (0..64).filter(|b| set & (1 << b) != 0).collect()
}

fn max_step(sorted: &[u64]) -> Option<u64> {
    sorted.windows(2).map(|w| w[1] - w[0]).max()
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_examples() {
        assert_eq!(interval_hours("0 2 * * *"), Some(24.0));
        assert_eq!(interval_hours("0 */6 * * *"), Some(6.0));
        assert_eq!(interval_hours("0 0 * * 0"), Some(168.0));
        assert_eq!(interval_hours("0 0 2 * * *"), Some(24.0));
        assert_eq!(interval_hours("@every 12h"), Some(12.0));
        assert_eq!(interval_hours("garbage"), None);
    }

    #[test]
    fn lists_ranges_steps_and_names() {
        assert_eq!(interval_hours("0 2,14 * * *"), Some(12.0));
        assert_eq!(interval_hours("0 1,2,20 * * *"), Some(18.0));
        assert_eq!(interval_hours("*/15 * * * *"), Some(0.25));
        assert_eq!(interval_hours("0 9-17 * * *"), Some(16.0));
        assert_eq!(interval_hours("0 0 * * MON-FRI"), Some(72.0), "Friday to Monday");
        assert_eq!(interval_hours("0 0 * * mon,wed,fri"), Some(72.0));
        assert_eq!(interval_hours("0 0 * * 1-5"), Some(72.0));
        assert_eq!(interval_hours("0 0 * * 7"), Some(168.0), "7 is Sunday");
        assert_eq!(interval_hours("30 3 * * SUN"), Some(168.0));
        assert_eq!(interval_hours("0 0 1 JAN,JUL *"), Some(184.0 * 24.0), "July to January");
        assert_eq!(interval_hours("15/30 * * * *"), Some(0.5), "15 and 45 past");
        assert_eq!(interval_hours("0-30/15 0 * * *"), Some(23.5), "00:30 to 00:00 the next day");
        assert_eq!(interval_hours("0 0 */2 * *"), Some(48.0), "31st then 1st is one day, 30th to 1st is two");
        assert_eq!(interval_hours("0 0 ? * 0"), Some(168.0));
    }

    #[test]
    fn six_fields_and_seconds() {
        assert_eq!(interval_hours("0 0 0 * * *"), Some(24.0));
        assert_eq!(interval_hours("0 30 1 * * 0"), Some(168.0));
        assert_eq!(interval_hours("*/30 * * * * *"), Some(seconds_to_hours(30.0)));
        assert_eq!(interval_hours("15 0 3 * * *"), Some(24.0));
    }

    #[test]
    fn descriptors() {
        assert_eq!(interval_hours("@hourly"), Some(1.0));
        assert_eq!(interval_hours("@daily"), Some(24.0));
        assert_eq!(interval_hours("@midnight"), Some(24.0));
        assert_eq!(interval_hours("@weekly"), Some(168.0));
        assert_eq!(interval_hours("@monthly"), Some(31.0 * 24.0));
        assert_eq!(interval_hours("@yearly"), Some(366.0 * 24.0));
        assert_eq!(interval_hours("@annually"), Some(366.0 * 24.0));
        assert_eq!(interval_hours("@every 30m"), Some(0.5));
        assert_eq!(interval_hours("@every 1h30m"), Some(1.5));
        assert_eq!(interval_hours("CRON_TZ=Europe/Berlin 0 2 * * *"), Some(24.0));
        assert_eq!(interval_hours("TZ=UTC @daily"), Some(24.0));
    }

    #[test]
    fn day_of_month_and_weekday_are_ored_when_both_restricted() {
        // The 1st of each month or any Monday: never more than a week apart.
        assert_eq!(interval_hours("0 0 1 * MON"), Some(168.0));
        // A `*/` step in day-of-month counts as `*`, so the fields are ANDed.
        assert_eq!(interval_hours("0 0 */1 * MON"), Some(168.0));
    }

    #[test]
    fn rare_and_impossible_schedules() {
        assert_eq!(interval_hours("0 0 29 2 *"), Some((366.0 + 365.0 * 3.0) * 24.0), "leap days");
        assert_eq!(interval_hours("0 0 30 2 *"), None, "never runs");
        assert_eq!(interval_hours("0 0 31 4 *"), None, "April has 30 days");
    }

    #[test]
    fn rejects_malformed_expressions() {
        for bad in [
            "",
            "* * * *",
            "* * * * * * *",
            "60 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "* * 32 * *",
            "* * * 13 *",
            "* * * * 8",
            "*/0 * * * *",
            "5-1 * * * *",
            "a * * * *",
            "1,,2 * * * *",
            "@fortnightly",
            "@every",
            "@every 0s",
            "@every -1h",
            "@daily 5",
            "CRON_TZ=UTC",
            "0 0 * * FOO",
            "99999999999999999999 * * * *",
        ] {
            assert_eq!(interval_hours(bad), None, "{bad:?}");
        }
    }
}
