//! UTC calendar fields of a Unix time, for S3 key prefixes and file names.

/// Seconds in one S3 delivery window: a file holds records whose `end` falls in it.
pub const WINDOW_SECS: u64 = 300;

/// The start of the 5-minute window holding `unix`.
pub fn window_start(unix: u64) -> u64 {
    unix - unix % WINDOW_SECS
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UtcTime {
    pub year: u32,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
}

impl UtcTime {
    pub fn from_unix(unix: u64) -> Self {
        let days = unix / 86_400;
        let secs = unix % 86_400;
        let (year, month, day) = civil_from_days(days);
        UtcTime { year, month, day, hour: (secs / 3600) as u32, minute: (secs % 3600 / 60) as u32 }
    }

    /// `YYYYMMDDTHHmmZ`, as in S3 flow-log file names.
    pub fn compact(&self) -> String {
        format!("{:04}{:02}{:02}T{:02}{:02}Z", self.year, self.month, self.day, self.hour, self.minute)
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day), after Howard
/// Hinnant's `civil_from_days`, restricted to dates on or after the epoch.
fn civil_from_days(days: u64) -> (u32, u32, u32) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year as u32, month as u32, day as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        let t = UtcTime::from_unix(0);
        assert_eq!((t.year, t.month, t.day, t.hour, t.minute), (1970, 1, 1, 0, 0));
        // The AWS documentation's example file: 2018-06-20 16:20 UTC.
        assert_eq!(UtcTime::from_unix(1_529_511_600).compact(), "20180620T1620Z");
        // Leap day and the turn of a century that is a leap year.
        assert_eq!(UtcTime::from_unix(951_782_400).compact(), "20000229T0000Z");
        assert_eq!(UtcTime::from_unix(1_709_251_199).compact(), "20240229T2359Z");
        assert_eq!(UtcTime::from_unix(4_102_444_800).compact(), "21000101T0000Z");
    }

    #[test]
    fn windows_are_five_minutes() {
        assert_eq!(window_start(1_529_511_600), 1_529_511_600);
        assert_eq!(window_start(1_529_511_899), 1_529_511_600);
        assert_eq!(window_start(1_529_511_900), 1_529_511_900);
    }
}
