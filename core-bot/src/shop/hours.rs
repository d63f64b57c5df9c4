//! Opening hours: a weekly pattern plus dated exceptions, evaluated in the
//! store's own time zone.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;

/// Minutes since local midnight, `0..=1440` (1440 is "24:00", end of day).
pub type Minutes = u16;

/// One opening span on one day, `opens < closes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    pub opens: Minutes,
    pub closes: Minutes,
}

/// The spans a store is open on one day; empty means closed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DayHours(pub Vec<Interval>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "expected \"closed\" or spans like \"09:00-18:00\" or \"09:00-12:00, 13:00-18:00\": {reason}"
)]
pub struct InvalidHours {
    pub reason: &'static str,
}

impl DayHours {
    pub fn closed() -> Self {
        Self(Vec::new())
    }

    pub fn is_closed(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromStr for DayHours {
    type Err = InvalidHours;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("closed") {
            return Ok(Self::closed());
        }
        let mut spans = Vec::new();
        for part in text.split(',') {
            let (opens, closes) = part.trim().split_once('-').ok_or(InvalidHours {
                reason: "a span needs a '-' between opening and closing time",
            })?;
            let opens = parse_clock(opens)?;
            let closes = parse_clock(closes)?;
            if closes <= opens {
                return Err(InvalidHours {
                    reason: "closing time must be after opening time",
                });
            }
            if spans
                .last()
                .is_some_and(|last: &Interval| last.closes > opens)
            {
                return Err(InvalidHours {
                    reason: "spans must be in order and must not overlap",
                });
            }
            spans.push(Interval { opens, closes });
        }
        Ok(Self(spans))
    }
}

fn parse_clock(text: &str) -> Result<Minutes, InvalidHours> {
    const BAD: InvalidHours = InvalidHours {
        reason: "times are HH:MM, 00:00 to 24:00",
    };
    let (hours, minutes) = text.trim().split_once(':').ok_or(BAD)?;
    if hours.is_empty() || hours.len() > 2 || minutes.len() != 2 {
        return Err(BAD);
    }
    let hours: u16 = hours.parse().map_err(|_| BAD)?;
    let minutes: u16 = minutes.parse().map_err(|_| BAD)?;
    if minutes > 59 || hours > 24 || (hours == 24 && minutes > 0) {
        return Err(BAD);
    }
    Ok(hours * 60 + minutes)
}

/// `HH:MM`, with the end of day shown as `24:00`.
pub fn format_clock(minutes: Minutes) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

impl fmt::Display for DayHours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, span) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str(", ")?;
            }
            write!(
                f,
                "{}–{}",
                format_clock(span.opens),
                format_clock(span.closes)
            )?;
        }
        Ok(())
    }
}

/// A dated change to the weekly pattern (holiday, special hours).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoursException {
    pub hours: DayHours,
    pub note: Option<String>,
}

/// What a store does on one date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DaySchedule<'a> {
    pub hours: &'a DayHours,
    /// Set when an exception applies ("Christmas Day").
    pub note: Option<&'a str>,
    pub is_exception: bool,
}

/// Open now or when it opens next, as local wall-clock values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenStatus {
    OpenUntil {
        closes: Minutes,
    },
    ClosedUntil {
        date: Date,
        opens: Minutes,
    },
    /// No opening within the next two weeks.
    ClosedForNow,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpeningHours {
    /// Monday first.
    pub weekly: [DayHours; 7],
    pub exceptions: BTreeMap<Date, HoursException>,
}

impl OpeningHours {
    pub fn on(&self, date: Date) -> DaySchedule<'_> {
        match self.exceptions.get(&date) {
            Some(exception) => DaySchedule {
                hours: &exception.hours,
                note: exception.note.as_deref(),
                is_exception: true,
            },
            None => DaySchedule {
                hours: &self.weekly[weekday_index(date.weekday())],
                note: None,
                is_exception: false,
            },
        }
    }

    pub fn status_at(&self, date: Date, minute: Minutes) -> OpenStatus {
        let today = self.on(date);
        if let Some(span) = today
            .hours
            .0
            .iter()
            .find(|span| span.opens <= minute && minute < span.closes)
        {
            return OpenStatus::OpenUntil {
                closes: span.closes,
            };
        }
        if let Some(span) = today.hours.0.iter().find(|span| span.opens > minute) {
            return OpenStatus::ClosedUntil {
                date,
                opens: span.opens,
            };
        }
        let mut day = date;
        for _ in 0..14 {
            let Ok(next) = day.tomorrow() else {
                break;
            };
            day = next;
            if let Some(span) = self.on(day).hours.0.first() {
                return OpenStatus::ClosedUntil {
                    date: day,
                    opens: span.opens,
                };
            }
        }
        OpenStatus::ClosedForNow
    }
}

pub fn weekday_index(weekday: Weekday) -> usize {
    usize::from(weekday.to_monday_zero_offset().unsigned_abs())
}

/// The local date and minute of `now_ms` in `zone`; `None` only for
/// timestamps outside jiff's range.
pub fn local_date_minute(zone: &TimeZone, now_ms: i64) -> Option<(Date, Minutes)> {
    let zoned = Timestamp::from_millisecond(now_ms)
        .ok()?
        .to_zoned(zone.clone());
    let time = zoned.time();
    let minute = u16::try_from(time.hour()).ok()? * 60 + u16::try_from(time.minute()).ok()?;
    Some((zoned.date(), minute))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_hours_parse_spans_and_closed() {
        let hours: DayHours = "09:00-12:00, 13:30-24:00".parse().unwrap();
        assert_eq!(hours.to_string(), "09:00–12:00, 13:30–24:00");
        assert!("Closed".parse::<DayHours>().unwrap().is_closed());
        assert!("18:00-09:00".parse::<DayHours>().is_err());
        assert!("9-17".parse::<DayHours>().is_err());
        assert!("09:00-25:00".parse::<DayHours>().is_err());
        assert!("09:00-13:00, 12:00-14:00".parse::<DayHours>().is_err());
    }
}
