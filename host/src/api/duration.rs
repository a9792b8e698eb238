//! Durations as Vault's API takes them: a number of seconds, or a string such as
//! `"3600"`, `"90m"` or `"1h30m"`.

use serde::{Deserialize, Deserializer};

/// The longest duration any field takes: a hundred years. Beyond it a value is
/// a mistake (or an attempt to overflow an expiry time), refused with 400.
pub const MAX_SECONDS: u64 = 100 * 365 * 24 * 3600;

/// A duration in whole seconds, at most [`MAX_SECONDS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Seconds(pub u64);

#[derive(Deserialize)]
#[serde(untagged)]
enum Raw {
    Number(u64),
    Text(String),
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let seconds = match Raw::deserialize(deserializer)? {
            Raw::Number(seconds) => seconds,
            Raw::Text(text) => parse(&text).ok_or_else(|| {
                serde::de::Error::custom(
                    "not a duration: use seconds or a value like 1h, 30m, 1h30m",
                )
            })?,
        };
        if seconds > MAX_SECONDS {
            return Err(serde::de::Error::custom(
                "a duration of more than 100 years is not accepted",
            ));
        }
        Ok(Self(seconds))
    }
}

fn parse(text: &str) -> Option<u64> {
    let text = text.trim();
    if text.is_empty() {
        return Some(0);
    }
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(seconds);
    }
    humantime::parse_duration(text).ok().map(|d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vault_duration_forms() {
        let parse = |json: &str| serde_json::from_str::<Seconds>(json).map(|s| s.0).ok();
        assert_eq!(parse("3600"), Some(3600));
        assert_eq!(parse("\"3600\""), Some(3600));
        assert_eq!(parse("\"1h\""), Some(3600));
        assert_eq!(parse("\"1h30m\""), Some(5400));
        assert_eq!(parse("\"768h\""), Some(768 * 3600));
        assert_eq!(parse("\"\""), Some(0));
        assert_eq!(parse("\"soon\""), None);
        assert_eq!(parse("-5"), None);
        assert_eq!(parse(&u64::MAX.to_string()), None);
        assert_eq!(parse("\"2562047788015215h\""), None);
        assert_eq!(parse(&MAX_SECONDS.to_string()), Some(MAX_SECONDS));
    }
}
