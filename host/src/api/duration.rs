//! Durations as Vault's API takes them: a number of seconds, or a string such as
//! `"3600"`, `"90m"` or `"1h30m"`.

use serde::{Deserialize, Deserializer};

/// A duration in whole seconds.
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
        match Raw::deserialize(deserializer)? {
            Raw::Number(seconds) => Ok(Self(seconds)),
            Raw::Text(text) => parse(&text).map(Self).ok_or_else(|| {
                serde::de::Error::custom(
                    "not a duration: use seconds or a value like 1h, 30m, 1h30m",
                )
            }),
        }
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
    }
}
