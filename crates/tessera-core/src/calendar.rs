//! Calendar arithmetic for the few places that show or read dates (the audit trail's times,
//! the connected-applications page), without a date crate: UTC only, proleptic Gregorian.

/// `s` as an instant: Unix seconds, a UTC date `YYYY-MM-DD` or date-time
/// `YYYY-MM-DDTHH:MM:SSZ` (years 1970 to 9999, real calendar days), or an age before `now`
/// (`90s`, `15m`, `24h`, `7d`; at most 100 years).
pub fn parse_instant(s: &str, now: i64) -> Result<i64, String> {
    let s = s.trim();
    let bad = || {
        format!(
            "{s:?} is not a time: give Unix seconds, YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ or an age \
             such as 24h or 7d"
        )
    };
    const LATEST: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    if let Ok(secs) = s.parse::<i64>() {
        return (0..=LATEST).contains(&secs).then_some(secs).ok_or_else(bad);
    }
    if let Some(unit) = s.chars().last().filter(|c| "smhd".contains(*c)) {
        let n: u32 = s[..s.len() - 1].parse().map_err(|_| bad())?;
        let per = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            _ => 86_400,
        };
        let age = i64::from(n) * per;
        return (age <= 100 * 365 * 86_400)
            .then_some(now - age)
            .ok_or_else(bad);
    }
    let (date, time) = match s.split_once('T') {
        Some((d, t)) => (d, Some(t.strip_suffix('Z').ok_or_else(bad)?)),
        None => (s, None),
    };
    let d: Vec<i64> = date
        .split('-')
        .map(|p| p.parse().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    let [y, m, day] = d[..] else {
        return Err(bad());
    };
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let days_in_month = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err(bad()),
    };
    if !(1970..=9999).contains(&y) || !(1..=days_in_month).contains(&day) {
        return Err(bad());
    }
    let secs = match time {
        None => 0,
        Some(t) => {
            let t: Vec<i64> = t
                .split(':')
                .map(|p| p.parse().map_err(|_| bad()))
                .collect::<Result<_, _>>()?;
            let [h, mi, sec] = t[..] else {
                return Err(bad());
            };
            if !(0..24).contains(&h) || !(0..60).contains(&mi) || !(0..60).contains(&sec) {
                return Err(bad());
            }
            h * 3_600 + mi * 60 + sec
        }
    };
    Ok(days_from_civil(y, m, day) * 86_400 + secs)
}

/// `at` as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_instant(at: i64) -> String {
    let (days, secs) = (at.div_euclid(86_400), at.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3_600,
        secs % 3_600 / 60,
        secs % 60
    )
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_796_000_000;

    #[test]
    fn instants_parse_as_seconds_dates_and_ages() {
        assert_eq!(parse_instant("1700000000", NOW), Ok(1_700_000_000));
        assert_eq!(parse_instant("1970-01-01", NOW), Ok(0));
        assert_eq!(parse_instant("2024-02-29", NOW), Ok(1_709_164_800));
        assert_eq!(parse_instant("2026-11-30", NOW), Ok(1795996800));
        assert_eq!(parse_instant("2000-02-29T12:30:05Z", NOW), Ok(951_827_405));
        assert_eq!(parse_instant("24h", NOW), Ok(NOW - 86_400));
        assert_eq!(parse_instant("15m", NOW), Ok(NOW - 900));
        for bad in [
            "yesterday",
            "2026-13-01",
            "2026-11-30T25:00:00Z",
            "2026-11-30T10:00",
            "h",
        ] {
            assert!(parse_instant(bad, NOW).is_err(), "{bad}");
        }
    }

    #[test]
    fn instants_format_and_parse_back() {
        for at in [0, 951_827_405, NOW, 4_102_444_799] {
            assert_eq!(parse_instant(&format_instant(at), NOW), Ok(at));
        }
        assert_eq!(format_instant(951_827_405), "2000-02-29T12:30:05Z");
    }
}
