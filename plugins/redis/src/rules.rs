//! Which ACL rules a role may give its users.
//!
//! The plugin owns the user's state and password (`reset on >password`), so a
//! role may not switch the user off, add passwords or `nopass`, or reset it; and
//! access to every key needs the role's explicit `allow_all_keys`.

use leasehold_sdk::{Error, Result};

/// Rules that would undo what the plugin sets.
const REFUSED: &[&str] = &["nopass", "resetpass", "reset", "on", "off"];
/// Commands with which a user could manage users, the server or its data as
/// a whole (`ACL SETUSER` on the admin, `CONFIG SET`, `SHUTDOWN`, ...).
const ADMIN_COMMANDS: &[&str] = &[
    "acl",
    "config",
    "debug",
    "module",
    "shutdown",
    "client",
    "monitor",
    "replicaof",
    "slaveof",
    "failover",
    "cluster",
    "sync",
    "psync",
    "save",
    "bgsave",
    "bgrewriteaof",
    "flushall",
    "flushdb",
    "script",
    "function",
];

/// Whether `rule` (lower case) grants every key: `allkeys`, or a key pattern of
/// only `*`, with or without a `%R`/`%W`/`%RW` selector.
fn grants_all_keys(rule: &str) -> bool {
    if rule == "allkeys" {
        return true;
    }
    let pattern = match rule.strip_prefix('%') {
        Some(rest) => rest.trim_start_matches(['r', 'w']),
        None => rule,
    };
    // `*` and `?` alone match every key (`~*`, `~**`, `~?*`).
    pattern
        .strip_prefix('~')
        .is_some_and(|keys| keys.contains('*') && keys.chars().all(|c| c == '*' || c == '?'))
}

/// Whether `rule` (lower case) grants administrative commands.
fn grants_admin(rule: &str) -> bool {
    if matches!(rule, "allcommands" | "+@all" | "+@admin" | "+@dangerous") {
        return true;
    }
    rule.strip_prefix('+').is_some_and(|command| {
        let command = command.split('|').next().unwrap_or_default();
        ADMIN_COMMANDS.contains(&command)
    })
}

/// Rules appended after a role's own unless it allows admin commands: ACL rules
/// apply left to right, so these take back whatever a category such as
/// `+@slow` (which holds `ACL` and `CONFIG`) gave.
pub const WITHOUT_ADMIN: &[&str] = &["-@admin", "-@dangerous"];

/// Checks a role's rules.
pub fn check(rules: &[String], allow_all_keys: bool, allow_admin_commands: bool) -> Result<()> {
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
        if grants_all_keys(&lower) && !allow_all_keys {
            return Err(Error::invalid_request(format!(
                "ACL rule `{rule}` grants every key; set allow_all_keys on the role to allow it"
            )));
        }
        if grants_admin(&lower) && !allow_admin_commands {
            return Err(Error::invalid_request(format!(
                "ACL rule `{rule}` grants administrative commands; set allow_admin_commands on the role to allow it"
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
        assert!(check(&rules(&["~app:*", "+@read"]), false, false).is_ok());
        assert!(check(&rules(&["%R~app:*", "+get", "-@all"]), false, false).is_ok());
        for bad in [
            &["nopass"][..],
            &["~app:*", ">pw"],
            &["<pw"],
            &["#abc"],
            &["off"],
            &["reset"],
            &["allkeys"],
            &["~*"],
            &["~**"],
            &["%RW~*"],
            &["%wr~*"],
            &["~?*"],
            &["+get extra"],
            &["~app:*", "+@all"],
            &["~app:*", "allcommands"],
            &["~app:*", "+acl"],
            &["~app:*", "+ACL|SETUSER"],
            &["~app:*", "+config|set"],
            &["~app:*", "+@admin"],
            &[],
        ] {
            assert!(check(&rules(bad), false, false).is_err(), "{bad:?}");
        }
        assert!(check(&rules(&["allkeys", "+@read"]), true, false).is_ok());
        assert!(check(&rules(&["~app:*", "+@all"]), false, true).is_ok());
    }
}
