//! Opening-hours and store texts, computed in each store's time zone.

use jiff::ToSpan;
use jiff::civil::Date;

use crate::nlu::DayRef;
use crate::shop::{OpenStatus, Store, format_clock, local_date_minute, weekday_index};
use crate::texts::Text;

use super::turn::Turn;

const DAY_TEXTS: [Text; 7] = [
    Text::DayMonday,
    Text::DayTuesday,
    Text::DayWednesday,
    Text::DayThursday,
    Text::DayFriday,
    Text::DaySaturday,
    Text::DaySunday,
];

const WEEKDAY_TEXTS: [Text; 7] = [
    Text::WeekdayMonday,
    Text::WeekdayTuesday,
    Text::WeekdayWednesday,
    Text::WeekdayThursday,
    Text::WeekdayFriday,
    Text::WeekdaySaturday,
    Text::WeekdaySunday,
];

const MONTH_TEXTS: [Text; 12] = [
    Text::Month1,
    Text::Month2,
    Text::Month3,
    Text::Month4,
    Text::Month5,
    Text::Month6,
    Text::Month7,
    Text::Month8,
    Text::Month9,
    Text::Month10,
    Text::Month11,
    Text::Month12,
];

/// The date a day reference means, seen from `today`.
pub(super) fn resolve_day(day: DayRef, today: Date) -> Option<Date> {
    match day {
        DayRef::Now | DayRef::Today => Some(today),
        DayRef::Tomorrow => today.tomorrow().ok(),
        DayRef::Weekday { index } => {
            let current = i64::try_from(weekday_index(today.weekday())).ok()?;
            let ahead = (i64::from(index) - current).rem_euclid(7);
            today.checked_add(ahead.days()).ok()
        }
        DayRef::Date { month, day } => {
            let this_year = Date::new(today.year(), month, day).ok()?;
            if this_year >= today {
                Some(this_year)
            } else {
                Date::new(today.year() + 1, month, day).ok()
            }
        }
    }
}

/// "today", "tomorrow", "on Friday" or "on Wed 24 Dec".
fn day_label(turn: &Turn<'_>, date: Date, today: Date) -> String {
    if date == today {
        return turn.t(Text::DayToday);
    }
    if today.tomorrow().ok() == Some(date) {
        return turn.t(Text::DayTomorrow);
    }
    let weekday = weekday_index(date.weekday());
    let within_week = date < today.checked_add(7.days()).unwrap_or(today);
    if within_week {
        return turn.t(DAY_TEXTS[weekday]);
    }
    let month = usize::try_from(date.month() - 1).unwrap_or(0).min(11);
    turn.render(
        Text::DateOn,
        &[
            ("weekday", &turn.t(WEEKDAY_TEXTS[weekday])),
            ("day", &date.day().to_string()),
            ("month", &turn.t(MONTH_TEXTS[month])),
        ],
    )
}

/// The store's hours on the day asked about, exceptions included.
pub(super) fn day_line(turn: &Turn<'_>, store: &Store, day: DayRef) -> String {
    let Some((today, _)) = local_date_minute(&store.time_zone, turn.ctx.now_ms) else {
        return status_line(turn, store);
    };
    if day == DayRef::Now {
        return status_line(turn, store);
    }
    let Some(date) = resolve_day(day, today) else {
        return status_line(turn, store);
    };
    let schedule = store.hours.on(date);
    let label = day_label(turn, date, today);
    let hours = schedule.hours.to_string();
    match (schedule.hours.is_closed(), schedule.note) {
        (true, Some(note)) => turn.render(
            Text::HoursDayClosedNote,
            &[("store", &store.name), ("day", &label), ("note", note)],
        ),
        (true, None) => turn.render(
            Text::HoursDayClosed,
            &[("store", &store.name), ("day", &label)],
        ),
        (false, Some(note)) => turn.render(
            Text::HoursDayOpenNote,
            &[
                ("store", &store.name),
                ("day", &label),
                ("note", note),
                ("hours", &hours),
            ],
        ),
        (false, None) => turn.render(
            Text::HoursDayOpen,
            &[("store", &store.name), ("day", &label), ("hours", &hours)],
        ),
    }
}

/// Open now until when, or when it opens next.
pub(super) fn status_line(turn: &Turn<'_>, store: &Store) -> String {
    let Some((today, minute)) = local_date_minute(&store.time_zone, turn.ctx.now_ms) else {
        return turn.render(Text::HoursClosedIndefinitely, &[("store", &store.name)]);
    };
    match store.hours.status_at(today, minute) {
        OpenStatus::OpenUntil { closes } => turn.render(
            Text::HoursOpenNow,
            &[("store", &store.name), ("closes", &format_clock(closes))],
        ),
        OpenStatus::ClosedUntil { date, opens } => turn.render(
            Text::HoursClosedNow,
            &[
                ("store", &store.name),
                ("day", &day_label(turn, date, today)),
                ("opens", &format_clock(opens)),
            ],
        ),
        OpenStatus::ClosedForNow => {
            turn.render(Text::HoursClosedIndefinitely, &[("store", &store.name)])
        }
    }
}

/// The usual week, consecutive days with equal hours grouped:
/// "Mon–Wed 09:00–19:00".
pub(super) fn week_summary(turn: &Turn<'_>, store: &Store) -> String {
    let mut lines = vec![turn.render(Text::HoursWeekHeading, &[("store", &store.name)])];
    let weekly = &store.hours.weekly;
    let mut start = 0;
    while start < 7 {
        let mut end = start;
        while end + 1 < 7 && weekly[end + 1] == weekly[start] {
            end += 1;
        }
        let days = if start == end {
            turn.t(WEEKDAY_TEXTS[start])
        } else {
            format!(
                "{}–{}",
                turn.t(WEEKDAY_TEXTS[start]),
                turn.t(WEEKDAY_TEXTS[end])
            )
        };
        let hours = if weekly[start].is_closed() {
            turn.t(Text::ClosedWord)
        } else {
            weekly[start].to_string()
        };
        lines.push(format!("{days} {hours}"));
        start = end + 1;
    }
    lines.join("\n")
}

/// "850 m", "1.2 km", "254 km".
pub(super) fn distance_text(turn: &Turn<'_>, km: f64) -> String {
    if km < 1.0 {
        let meters = ((km * 1000.0) / 10.0).round() * 10.0;
        turn.render(Text::DistanceM, &[("meters", &format!("{meters:.0}"))])
    } else if km < 10.0 {
        turn.render(Text::DistanceKm, &[("km", &format!("{km:.1}"))])
    } else {
        turn.render(Text::DistanceKm, &[("km", &format!("{km:.0}"))])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weekdays_resolve_to_the_next_occurrence_including_today() {
        let wednesday = Date::new(2025, 6, 11).unwrap();
        assert_eq!(
            resolve_day(DayRef::Weekday { index: 2 }, wednesday),
            Some(wednesday)
        );
        assert_eq!(
            resolve_day(DayRef::Weekday { index: 0 }, wednesday),
            Some(Date::new(2025, 6, 16).unwrap())
        );
        assert_eq!(
            resolve_day(DayRef::Date { month: 1, day: 1 }, wednesday),
            Some(Date::new(2026, 1, 1).unwrap())
        );
    }
}
