//! The texts a row holds: payload texts cut to a bound, messages, string
//! lists and timestamps.

use provenant_events::event::write_timestamp;
use serde_json::Value;

/// A message: a string as is, another non-null value as its JSON text.
pub(super) fn text_of(v: Option<&Value>) -> Option<String> {
    match v {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
    }
}

pub(super) fn strings_of(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array)
        .map(|items| items.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// `s` cut to `max` characters (an ellipsis marks a cut).
pub(super) fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_owned(),
        Some((end, _)) => {
            let mut out = s.get(..end).unwrap_or_default().to_owned();
            out.push('…');
            out
        }
    }
}

/// Appends [`format_timestamp`]'s text of `t` to `out` (the same text,
/// without the formatting machinery for the years it can write).
pub(super) fn write_time(out: &mut String, t: &chrono::DateTime<chrono::Utc>) {
    use chrono::{Datelike, Timelike};
    let utc = t.naive_utc();
    let year = match u32::try_from(utc.year()) {
        Ok(year) if year <= 9999 => year,
        _ => return write_timestamp(out, t),
    };
    /// Writes `n` in the digits of `field`, zero-padded.
    fn put(field: &mut [u8], mut n: u32) {
        for d in field.iter_mut().rev() {
            *d = b'0' + (n % 10) as u8;
            n /= 10;
        }
    }
    let mut text = *b"0000-00-00T00:00:00.000000Z";
    put(&mut text[0..4], year);
    put(&mut text[5..7], utc.month());
    put(&mut text[8..10], utc.day());
    put(&mut text[11..13], utc.hour());
    put(&mut text[14..16], utc.minute());
    put(&mut text[17..19], utc.second());
    // A leap second is carried in the nanoseconds; kept in range as
    // `format_timestamp` does.
    put(
        &mut text[20..26],
        (utc.nanosecond() % 1_000_000_000) / 1_000,
    );
    match std::str::from_utf8(&text) {
        Ok(text) => out.push_str(text),
        Err(_) => write_timestamp(out, t),
    }
}

/// Sets `slot` to `text`, reusing its buffer.
pub(super) fn set_text(slot: &mut Option<String>, text: &str) {
    match slot {
        Some(s) => {
            s.clear();
            s.push_str(text);
        }
        None => *slot = Some(text.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeZone, Utc};
    use provenant_events::event::format_timestamp;

    use crate::plugin_metrics::text::write_time;

    fn base() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap()
    }

    #[test]
    fn timestamps_are_written_as_format_timestamp_writes_them() {
        let mut times = vec![
            base(),
            Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(-1, 6, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(10000, 6, 1, 0, 0, 0).unwrap(),
            // A leap second.
            Utc.from_utc_datetime(
                &chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
                    .unwrap()
                    .and_hms_nano_opt(23, 59, 59, 1_999_999_999)
                    .unwrap(),
            ),
        ];
        for i in 0..200i64 {
            times.push(base() + chrono::Duration::microseconds(i * 987_654_321_123 + i));
        }
        for t in times {
            let mut out = "x".to_owned();
            write_time(&mut out, &t);
            assert_eq!(out, format!("x{}", format_timestamp(&t)));
        }
    }
}
