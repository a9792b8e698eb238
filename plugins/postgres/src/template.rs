//! Vault's statement templates: `{{name}}` (or `{{username}}`), `{{password}}`
//! and `{{expiration}}`, substituted with the quoting their place needs.
//!
//! Inside `'...'` a value has its single quotes doubled; inside `"..."` its double
//! quotes; outside any quotes a name becomes a quoted identifier and anything
//! else a quoted literal. So `CREATE ROLE "{{name}}" PASSWORD '{{password}}'` and
//! `CREATE ROLE {{name}} PASSWORD {{password}}` both come out right whatever the
//! values hold.

use leasehold_sdk::{Error, Result};
use postgres_protocol::escape::{escape_identifier, escape_literal};

/// What the placeholders stand for.
pub struct Values<'a> {
    /// The role name.
    pub name: &'a str,
    /// The password, where one exists (creation, rotation).
    pub password: Option<&'a str>,
    /// When the role expires, as a timestamp PostgreSQL reads.
    pub expiration: &'a str,
}

#[derive(Clone, Copy, PartialEq)]
enum Quote {
    None,
    Single,
    Double,
}

/// `template` with its placeholders substituted.
pub fn render(template: &str, values: &Values<'_>) -> Result<String> {
    let mut out = String::with_capacity(template.len() + 64);
    let mut quote = Quote::None;
    let mut rest = template;
    while let Some(c) = rest.chars().next() {
        if rest.starts_with("{{") {
            let end = rest.find("}}").ok_or_else(|| {
                Error::invalid_request("a statement has `{{` without a closing `}}`")
            })?;
            let key = rest[2..end].trim();
            let (value, is_name) = match key {
                "name" | "username" => (values.name, true),
                "password" => (
                    values.password.ok_or_else(|| {
                        Error::invalid_request(
                            "{{password}} is only available in creation statements",
                        )
                    })?,
                    false,
                ),
                "expiration" => (values.expiration, false),
                other => {
                    return Err(Error::invalid_request(format!(
                        "unknown placeholder {{{{{other}}}}}: use name, password or expiration"
                    )));
                }
            };
            if value.contains('\0') {
                return Err(Error::invalid_request("a value holds a NUL character"));
            }
            out.push_str(&match quote {
                Quote::Single => value.replace('\'', "''"),
                Quote::Double => value.replace('"', "\"\""),
                Quote::None if is_name => escape_identifier(value),
                Quote::None => escape_literal(value),
            });
            rest = &rest[end + 2..];
            continue;
        }
        quote = match (quote, c) {
            (Quote::None, '\'') => Quote::Single,
            (Quote::Single, '\'') => Quote::None,
            (Quote::None, '"') => Quote::Double,
            (Quote::Double, '"') => Quote::None,
            (same, _) => same,
        };
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    Ok(out)
}

/// Checks that `template` uses only known placeholders.
pub fn check(template: &str) -> Result<()> {
    render(
        template,
        &Values {
            name: "n",
            password: Some("p"),
            expiration: "e",
        },
    )
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> Values<'static> {
        Values {
            name: "v-a\"b",
            password: Some("p'w"),
            expiration: "2030-01-01T00:00:00Z",
        }
    }

    #[test]
    fn quoting_follows_the_place() {
        let quoted = render(
            "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';",
            &values(),
        )
        .unwrap();
        assert_eq!(
            quoted,
            "CREATE ROLE \"v-a\"\"b\" WITH LOGIN PASSWORD 'p''w' VALID UNTIL '2030-01-01T00:00:00Z';"
        );
        let bare = render("CREATE ROLE {{name}} PASSWORD {{password}}", &values()).unwrap();
        assert_eq!(bare, "CREATE ROLE \"v-a\"\"b\" PASSWORD 'p''w'");
        // A quote inside a literal does not flip the state for what follows.
        let doubled = render("SELECT 'it''s', \"{{name}}\"", &values()).unwrap();
        assert_eq!(doubled, "SELECT 'it''s', \"v-a\"\"b\"");
    }

    #[test]
    fn unknown_or_unavailable_placeholders_are_errors() {
        assert!(check("DROP ROLE {{nme}}").is_err());
        assert!(check("DROP ROLE {{name}").is_err());
        let revoking = Values {
            password: None,
            ..values()
        };
        assert!(render("ALTER ROLE {{name}} PASSWORD {{password}}", &revoking).is_err());
    }
}
