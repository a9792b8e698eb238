//! Which ACL rules a role may give its users.
//!
//! The plugin owns the user's state and password (`reset on >password`), so a
//! role may not switch the user off, add passwords or `nopass`, or reset it; and
//! access to every key needs the role's explicit `allow_all_keys`.

use leasehold_sdk::{Error, Result};

/// Rules that would undo what the plugin sets.
const REFUSED: &[&str] = &["nopass", "resetpass", "reset", "on", "off"];
/// Rules that grant every key.
const ALL_KEYS: &[&str] = &["allkeys", "~*", "%RW~*", "%R~*", "%W~*"];

/// Checks a role's rules.
pub fn check(rules: &[String], allow_all_keys: bool) -> Result<()> {
    if rules.is_empty() {
        return Err(Error::invalid_request(
            "acl_rules is empty: a user with no rules can do nothing",
        ));
    }
    for rule in rules {
        let lower = rule.to_ascii_lowercase();
        if rule.is_empty() || rule.contains(char::is_whitespace) {
            return Err(Error::invalid_request(format!(
                "ACL rule `{rule}` is empty or has spaces: one rule per list item"
            )));
        }
        if REFUSED.contains(&lower.as_str()) {
            return Err(Error::invalid_request(format!(
                "ACL rule `{rule}` is not allowed: the plugin manages the user's state and password"
            )));
        }
        if matches!(rule.chars().next(), Some('>' | '<' | '#' | '!' | '(')) {
            return Err(Error::invalid_request(
                "ACL rules may not set passwords or selectors: the plugin sets the password",
            ));
        }
        if ALL_KEYS.contains(&lower.as_str()) && !allow_all_keys {
            return Err(Error::invalid_request(format!(
                "ACL rule `{rule}` grants every key; set allow_all_keys on the role to allow it"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check;

    fn rules(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn roles_cannot_take_over_the_user() {
        assert!(check(&rules(&["~app:*", "+@read"]), false).is_ok());
        for bad in [
            &["nopass"][..],
            &["~app:*", ">pw"],
            &["<pw"],
            &["#abc"],
            &["off"],
            &["reset"],
            &["allkeys"],
            &["~*"],
            &["+get extra"],
            &[],
        ] {
            assert!(check(&rules(bad), false).is_err(), "{bad:?}");
        }
        assert!(check(&rules(&["allkeys", "+@read"]), true).is_ok());
    }
}
