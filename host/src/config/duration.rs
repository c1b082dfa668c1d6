//! Durations as people write them in `koppel.toml`: `30s`, `5m`, `1h`, `1d`. They are read
//! once, when the file is read ([`HumanDuration`]): a wrong one stops the load naming its
//! key, and everything after works with a `Duration`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration as written in `koppel.toml` (`15m`), read when the file is read, and written
/// back the same way (`90s` → `90s`, `3600s` → `1h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub fn get(self) -> Duration {
        self.0
    }
}

impl From<Duration> for HumanDuration {
    fn from(duration: Duration) -> Self {
        HumanDuration(duration)
    }
}

impl FromStr for HumanDuration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        parse_duration(text).map(HumanDuration)
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        let (n, unit) = [(86_400, "d"), (3600, "h"), (60, "m")]
            .into_iter()
            .find(|(size, _)| secs >= *size && secs.is_multiple_of(*size))
            .map_or((secs, "s"), |(size, unit)| (secs / size, unit));
        write!(f, "{n}{unit}")
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Text(String),
            Seconds(u64),
        }
        match Written::deserialize(deserializer)? {
            Written::Text(text) => text.parse().map_err(serde::de::Error::custom),
            Written::Seconds(0) => Err(serde::de::Error::custom(
                "0: a duration must be longer than zero",
            )),
            Written::Seconds(secs) => Ok(HumanDuration(Duration::from_secs(secs))),
        }
    }
}

/// Parses `30s`, `5m`, `2h`, `1d` (or plain seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration; write it like 30s, 5m, 1h or 1d"))?;
    let seconds = match unit.trim() {
        "" | "s" => n,
        "m" | "min" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => {
            return Err(format!(
                "{text:?} is not a duration; write it like 30s, 5m, 1h or 1d"
            ));
        }
    };
    if seconds == 0 {
        return Err(format!("{text:?}: a duration must be longer than zero"));
    }
    Ok(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert!(
            parse_duration("soon")
                .expect_err("bad")
                .contains("30s, 5m, 1h or 1d")
        );
        assert!(parse_duration("0m").is_err());
    }

    #[test]
    fn a_duration_is_read_once_and_written_back_as_written() {
        #[derive(Deserialize, Serialize)]
        struct T {
            every: HumanDuration,
        }
        let t: T = toml::from_str("every = \"90m\"").expect("reads");
        assert_eq!(t.every.get(), Duration::from_secs(5400));
        assert_eq!(toml::to_string(&t).expect("writes"), "every = \"90m\"\n");
        let t: T = toml::from_str("every = 3600").expect("plain seconds");
        assert_eq!(t.every.to_string(), "1h");
        let error = toml::from_str::<T>("every = \"often\"")
            .err()
            .expect("refused")
            .to_string();
        assert!(
            error.contains("30s, 5m, 1h or 1d") && error.contains("every"),
            "{error}"
        );
    }
}
