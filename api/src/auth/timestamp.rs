//! The date formats signed requests carry, parsed without a date crate, and
//! the clock-skew check.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::auth::AuthError;

/// `YYYYMMDDTHHMMSSZ`, the SigV4 `X-Amz-Date` form.
pub(crate) fn parse_amz(s: &str) -> Option<SystemTime> {
    if s.len() != 16 || s.get(8..9)? != "T" || s.get(15..16)? != "Z" {
        return None;
    }
    civil(
        num(s.get(0..4)?)?,
        num(s.get(4..6)?)?,
        num(s.get(6..8)?)?,
        (
            num(s.get(9..11)?)?,
            num(s.get(11..13)?)?,
            num(s.get(13..15)?)?,
        ),
        0,
        0,
    )
}

/// ISO 8601 as SigV2 clients send it: `YYYY-MM-DDTHH:MM:SS`, optional
/// fraction, then `Z`, `+HH:MM`, `+HHMM` or nothing (taken as UTC).
pub(crate) fn parse_iso8601(s: &str) -> Option<SystemTime> {
    let date = s.get(0..10)?;
    let time = s.get(11..19)?;
    if !matches!(s.get(10..11)?, "T" | "t")
        || date.get(4..5)? != "-"
        || date.get(7..8)? != "-"
        || time.get(2..3)? != ":"
        || time.get(5..6)? != ":"
    {
        return None;
    }
    let mut rest = s.get(19..)?;
    let mut nanos = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        // Digits past nanoseconds cannot matter to a window of seconds.
        let kept = fraction.get(..digits.min(9))?;
        nanos = num(kept)? * 10u32.pow(9 - kept.len() as u32);
        rest = fraction.get(digits..)?;
    }
    let offset = match rest {
        "" | "Z" | "z" => 0,
        _ => zone_offset(rest)?,
    };
    civil(
        num(date.get(0..4)?)?,
        num(date.get(5..7)?)?,
        num(date.get(8..10)?)?,
        (
            num(time.get(0..2)?)?,
            num(time.get(3..5)?)?,
            num(time.get(6..8)?)?,
        ),
        nanos,
        offset,
    )
}

/// An HTTP `Date` header: `[Sun, ]06 Nov 1994 08:49:37 GMT`, also with a
/// numeric zone such as `-0000`, which botocore's `formatdate()` writes.
pub(crate) fn parse_http_date(s: &str) -> Option<SystemTime> {
    let mut words: Vec<&str> = s.split_whitespace().collect();
    if words.first()?.ends_with(',') {
        words.remove(0);
    }
    let [day, month, year, time, zone] = words.as_slice() else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let month = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(month))?;
    let mut clock = time.split(':');
    let hms = (
        num(clock.next()?)?,
        num(clock.next()?)?,
        num(clock.next()?)?,
    );
    if clock.next().is_some() || year.len() != 4 {
        return None;
    }
    let offset = match *zone {
        "GMT" | "UTC" | "UT" | "Z" => 0,
        _ => zone_offset(zone)?,
    };
    civil(num(year)?, month as u32 + 1, num(day)?, hms, 0, offset)
}

/// `t` as `YYYYMMDDTHHMMSSZ`.
pub(crate) fn format_amz(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s) = fields(t);
    format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z")
}

/// `t` as `YYYY-MM-DDTHH:MM:SSZ`, for messages.
pub(crate) fn format_iso(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s) = fields(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// Refuses `t` if it is further than `window` from `now`, either way.
pub(crate) fn check_window(
    what: &str,
    t: SystemTime,
    now: SystemTime,
    window: Duration,
) -> Result<(), AuthError> {
    let skew = match now.duration_since(t) {
        Ok(behind) => behind,
        Err(ahead) => ahead.duration(),
    };
    if skew > window {
        return Err(AuthError::Expired(format!(
            "{what} {} is {}s from the server time {}; the allowed window is {}s",
            format_iso(t),
            skew.as_secs(),
            format_iso(now),
            window.as_secs()
        )));
    }
    Ok(())
}

fn num(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Seconds east of UTC for `+HH:MM`, `+HHMM` or `-…`.
fn zone_offset(zone: &str) -> Option<i64> {
    let sign = match zone.get(0..1)? {
        "+" => 1,
        "-" => -1,
        _ => return None,
    };
    let digits = zone.get(1..)?.replacen(':', "", 1);
    if digits.len() != 4 {
        return None;
    }
    let hours = num(digits.get(0..2)?)?;
    let minutes = num(digits.get(2..4)?)?;
    if hours > 23 || minutes > 59 {
        return None;
    }
    Some(sign * i64::from(hours * 3600 + minutes * 60))
}

/// A validated civil UTC time (shifted by `offset` seconds east) as a SystemTime.
fn civil(
    year: u32,
    month: u32,
    day: u32,
    (hour, minute, second): (u32, u32, u32),
    nanos: u32,
    offset: i64,
) -> Option<SystemTime> {
    let leap = year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if year > 9999 || day == 0 || day > month_days || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let days = days_from_civil(i64::from(year), i64::from(month), i64::from(day));
    let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset;
    let whole = Duration::from_secs(secs.unsigned_abs());
    let base = if secs >= 0 {
        UNIX_EPOCH.checked_add(whole)?
    } else {
        UNIX_EPOCH.checked_sub(whole)?
    };
    base.checked_add(Duration::from_nanos(u64::from(nanos)))
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// UTC calendar fields of `t` (times before 1970 show as the epoch; only
/// messages and the SigV4 date line use this, and such times fail the window).
fn fields(t: SystemTime) -> (i64, i64, i64, i64, i64, i64) {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let secs = i64::try_from(secs).unwrap_or(i64::MAX / 2);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    // 2015-08-30T12:36:00Z, the AWS test suite's signing time.
    const SUITE: u64 = 1_440_938_160;

    #[test]
    fn amz_basic_round_trips() {
        assert_eq!(parse_amz("20150830T123600Z"), Some(at(SUITE)));
        assert_eq!(format_amz(at(SUITE)), "20150830T123600Z");
        assert_eq!(parse_amz("20150830T123600"), None);
        assert_eq!(parse_amz("20150230T123600Z"), None);
        assert_eq!(parse_amz("2015083ሴT12360Z"), None);
    }

    #[test]
    fn iso8601_variants() {
        let t = Some(at(SUITE));
        assert_eq!(parse_iso8601("2015-08-30T12:36:00Z"), t);
        assert_eq!(parse_iso8601("2015-08-30T12:36:00"), t);
        assert_eq!(parse_iso8601("2015-08-30T12:36:00+00:00"), t);
        assert_eq!(parse_iso8601("2015-08-30T14:36:00+0200"), t);
        assert_eq!(parse_iso8601("2015-08-30T11:36:00-01:00"), t);
        assert_eq!(
            parse_iso8601("2015-08-30T12:36:00.250Z"),
            Some(at(SUITE) + Duration::from_millis(250))
        );
        assert_eq!(
            parse_iso8601("2015-08-30T12:36:00.123456789123Z"),
            Some(at(SUITE) + Duration::from_nanos(123_456_789))
        );
        assert_eq!(parse_iso8601("2015-08-30T12:36:00.Z"), None);
        assert_eq!(parse_iso8601("2015-08-30 12:36:00Z"), None);
        assert_eq!(parse_iso8601("2015-13-30T12:36:00Z"), None);
        assert_eq!(parse_iso8601("2015-08-30T12:36:00+24:00"), None);
        assert_eq!(
            parse_iso8601("1969-12-31T23:59:59Z"),
            UNIX_EPOCH.checked_sub(Duration::from_secs(1))
        );
    }

    #[test]
    fn http_dates() {
        let t = Some(at(SUITE));
        assert_eq!(parse_http_date("Sun, 30 Aug 2015 12:36:00 GMT"), t);
        assert_eq!(parse_http_date("Sun, 30 Aug 2015 12:36:00 -0000"), t);
        assert_eq!(parse_http_date("30 aug 2015 13:36:00 +0100"), t);
        assert_eq!(parse_http_date("Sun, 30 Aug 2015 12:36 GMT"), None);
        assert_eq!(parse_http_date(""), None);
    }

    #[test]
    fn leap_years() {
        assert!(parse_amz("20240229T000000Z").is_some());
        assert!(parse_amz("20000229T000000Z").is_some());
        assert!(parse_amz("19000229T000000Z").is_none());
        assert_eq!(
            format_iso(parse_amz("20240229T235959Z").unwrap_or(UNIX_EPOCH)),
            "2024-02-29T23:59:59Z"
        );
    }

    #[test]
    fn window_is_symmetric_and_inclusive() {
        let w = Duration::from_secs(300);
        assert!(check_window("t", at(SUITE), at(SUITE + 300), w).is_ok());
        assert!(check_window("t", at(SUITE + 300), at(SUITE), w).is_ok());
        let err = check_window("Request time", at(SUITE), at(SUITE + 301), w);
        assert_eq!(
            err,
            Err(AuthError::Expired(
                "Request time 2015-08-30T12:36:00Z is 301s from the server time \
                 2015-08-30T12:41:01Z; the allowed window is 300s"
                    .to_string()
            ))
        );
    }
}
