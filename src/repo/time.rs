//! Fossil's timestamps: the `D` card text (UTC `YYYY-MM-DDTHH:MM:SS.SSS`) and
//! the Julian day numbers stored in `event.mtime` and friends.

/// Julian day number of the Unix epoch.
const UNIX_EPOCH_JULIAN: f64 = 2_440_587.5;
const MS_PER_DAY: f64 = 86_400_000.0;

/// Formats Unix milliseconds as a `D` card date.
pub fn format_date(unix_ms: i64) -> String {
    let days = unix_ms.div_euclid(86_400_000);
    let ms_of_day = unix_ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    let secs = ms_of_day / 1000;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        ms_of_day % 1000
    )
}

/// Julian day of Unix milliseconds.
pub fn julian_of_ms(unix_ms: i64) -> f64 {
    unix_ms as f64 / MS_PER_DAY + UNIX_EPOCH_JULIAN
}

/// Unix milliseconds of a Julian day made by [`julian_of_ms`]: the round
/// trip is exact (a day's f64 near 2.46 million resolves some 0.04 ms).
pub fn ms_of_julian(julian: f64) -> i64 {
    ((julian - UNIX_EPOCH_JULIAN) * MS_PER_DAY).round() as i64
}

/// Parses a `D` card date (`YYYY-MM-DDTHH:MM:SS` with optional `.fff`) into
/// Unix milliseconds; `None` if it is not one.
pub fn parse_date(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = text.get(r)?;
        if s.bytes().all(|c| c.is_ascii_digit()) {
            s.parse().ok()
        } else {
            None
        }
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut ms = 0;
    if b.len() > 19 {
        if b[19] != b'.' || b.len() == 20 || b.len() > 23 {
            return None;
        }
        let frac = text.get(20..)?;
        let digits = num(20..b.len())?;
        ms = digits * 10_i64.pow(3 - frac.len() as u32);
    }
    let days = days_from_civil(y, mo, d);
    Some(((days * 24 + h) * 60 + mi) * 60_000 + s * 1000 + ms)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_round_trip() {
        for ms in [0, 1_795_750_982_123, 951_782_400_000, 4_102_444_799_999] {
            assert_eq!(parse_date(&format_date(ms)), Some(ms));
        }
        assert_eq!(format_date(0), "1970-01-01T00:00:00.000");
        assert_eq!(
            parse_date("2026-11-27T03:43:25"),
            parse_date("2026-11-27T03:43:25.000")
        );
        assert_eq!(parse_date("1970-01-02T00:00:00.5"), Some(86_400_500));
        assert_eq!(parse_date("2026-13-27T03:43:25"), None);
        assert_eq!(parse_date("2026-11-27 03:43:25"), None);
    }

    #[test]
    fn julian_days_give_back_the_milliseconds_they_were_made_of() {
        for ms in [
            0,
            1,
            999,
            1_765_000_000_123,
            1_765_000_000_999,
            4_102_444_800_001,
        ] {
            assert_eq!(ms_of_julian(julian_of_ms(ms)), ms);
        }
    }

    #[test]
    fn julian_of_epoch() {
        assert_eq!(julian_of_ms(0), 2_440_587.5);
        assert_eq!(julian_of_ms(86_400_000), 2_440_588.5);
    }
}
