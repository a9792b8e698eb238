//! Role names from a template.

use leasehold_sdk::{Error, Lease, Result};
use sha2::{Digest, Sha256};

/// The fewest hex digits of `{{random N}}` a username template must hold: 64 bits
/// of the lease id's hash, so two leases' names collide with negligible odds.
pub const MIN_RANDOM: usize = 16;

/// One piece of a role name, already reduced to the characters a name keeps.
enum Part {
    /// Kept whole: the template's own text, `{{random N}}` and `{{unix_time}}`.
    Fixed(String),
    /// `{{.DisplayName}}` or `{{.RoleName}}`, shortened when the name is too long.
    Cut(String),
}

/// The pieces of the name `template` gives `lease`, and the most `{{random N}}`
/// digits it holds.
fn parts(template: &str, lease: &Lease) -> Result<(Vec<Part>, usize)> {
    let digest = hex::encode(Sha256::digest(lease.id().as_bytes()));
    let mut parts = Vec::new();
    let mut random = 0;
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        parts.push(Part::Fixed(sanitized(&rest[..start])));
        let end = rest[start..]
            .find("}}")
            .map(|e| start + e)
            .ok_or_else(|| Error::invalid_config("username_template has `{{` without `}}`"))?;
        let token = rest[start + 2..end].trim();
        let words: Vec<&str> = token.split_whitespace().collect();
        parts.push(match words.as_slice() {
            [".DisplayName"] => Part::Cut(sanitized(lease.requester())),
            [".RoleName"] => Part::Cut(sanitized(lease.role())),
            ["unix_time"] => Part::Fixed(lease.issued_at().to_string()),
            ["random", n] => {
                let n: usize = n
                    .parse()
                    .ok()
                    .filter(|n| (1..=64).contains(n))
                    .ok_or_else(|| Error::invalid_config("{{random N}} takes N from 1 to 64"))?;
                random = random.max(n);
                Part::Fixed(digest[..n].to_owned())
            }
            _ => {
                return Err(Error::invalid_config(format!(
                    "username_template: unknown {{{{{token}}}}}; use .DisplayName, .RoleName, unix_time or random N"
                )));
            }
        });
        rest = &rest[end + 2..];
    }
    parts.push(Part::Fixed(sanitized(rest)));
    Ok((parts, random))
}

/// `text` with every character a role name does not keep as `_`: ASCII only, so
/// a cut by bytes never splits a character.
fn sanitized(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A role name from `template`, a subset of Vault's username templates:
/// `{{.DisplayName}}`, `{{.RoleName}}`, `{{unix_time}}` and `{{random N}}`. The
/// "random" part is the lease id's SHA-256 in hex, so the name can be computed
/// again at revoke time from the lease alone.
///
/// At most `max` bytes. Only the display and role names are shortened to get
/// there, the longer one first, never the template's text, its random part or
/// its time: cutting the end of the name, as Vault does, cuts the part that
/// tells two leases of one requester and role apart.
pub fn from_template(template: &str, lease: &Lease, max: usize) -> Result<String> {
    let (parts, _) = parts(template, lease)?;
    let fixed: usize = parts
        .iter()
        .map(|part| match part {
            Part::Fixed(text) => text.len(),
            Part::Cut(_) => 0,
        })
        .sum();
    let budget = max.checked_sub(fixed).ok_or_else(|| {
        Error::invalid_config(format!(
            "username_template's own text, {{{{random N}}}} and {{{{unix_time}}}} make {fixed} bytes; a role name has at most {max}"
        ))
    })?;
    let cut_len = |cap: usize| -> usize {
        parts
            .iter()
            .map(|part| match part {
                Part::Cut(text) => text.len().min(cap),
                Part::Fixed(_) => 0,
            })
            .sum()
    };
    // The longest each cut part may stay: names shorter than it keep their length.
    let mut cap = parts
        .iter()
        .map(|part| match part {
            Part::Cut(text) => text.len(),
            Part::Fixed(_) => 0,
        })
        .max()
        .unwrap_or(0);
    while cut_len(cap) > budget {
        cap -= 1;
    }
    // What the cap leaves over goes a byte each to the first names it cut.
    let mut spare = budget - cut_len(cap);
    let name: String = parts
        .iter()
        .map(|part| match part {
            Part::Fixed(text) => text.as_str(),
            Part::Cut(text) => {
                let extra = usize::from(spare > 0 && text.len() > cap);
                spare -= extra;
                &text[..text.len().min(cap + extra)]
            }
        })
        .collect();
    if name.is_empty() {
        return Err(Error::invalid_config(
            "username_template makes an empty name",
        ));
    }
    Ok(name)
}

/// Checks that `template` gives every lease a name of its own that fits in
/// `max` bytes: it must hold `{{random N}}` with N of at least [`MIN_RANDOM`],
/// and its fixed parts must leave room with a ten-digit `{{unix_time}}`.
pub fn check_template(template: &str, max: usize) -> Result<()> {
    let lease = Lease::new(
        leasehold_sdk::bindings::leasehold::provider::types::LeaseInfo {
            lease_id: "db/creds/r/x".into(),
            mount: "db".into(),
            role: "r".into(),
            requester: "token".into(),
            issued_at: 9_999_999_999,
            ttl_seconds: 0,
            expires_at: 0,
        },
    );
    let (_, random) = parts(template, &lease)?;
    if random < MIN_RANDOM {
        return Err(Error::invalid_config(format!(
            "username_template needs {{{{random N}}}} with N of at least {MIN_RANDOM}: it is the part of the name that is the lease's own, so no two leases get one name"
        )));
    }
    from_template(template, &lease, max).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(id: &str, requester: &str, role: &str) -> Lease {
        Lease::new(
            leasehold_sdk::bindings::leasehold::provider::types::LeaseInfo {
                lease_id: id.into(),
                mount: "db".into(),
                role: role.into(),
                requester: requester.into(),
                issued_at: 1_795_356_935,
                ttl_seconds: 3600,
                expires_at: 1_795_360_535,
            },
        )
    }

    fn hash(lease: &Lease, digits: usize) -> String {
        hex::encode(Sha256::digest(lease.id().as_bytes()))[..digits].to_owned()
    }

    #[test]
    fn long_names_are_cut_before_the_unique_part() {
        let requester = "a-very-long-display-name-of-some-token-".repeat(5);
        let role = "and-an-equally-long-role-name-".repeat(5);
        let first = lease("db/creds/r/one", &requester, &role);
        let second = lease("db/creds/r/two", &requester, &role);
        for template in [
            "v-{{.DisplayName}}-{{.RoleName}}-{{random 20}}-{{unix_time}}",
            "{{.DisplayName}}{{.RoleName}}{{random 16}}",
            "{{random 16}}_{{.RoleName}}_{{.DisplayName}}",
        ] {
            check_template(template, 63).unwrap();
            let a = from_template(template, &first, 63).unwrap();
            let b = from_template(template, &second, 63).unwrap();
            assert_ne!(a, b, "{template}");
            for (name, lease) in [(&a, &first), (&b, &second)] {
                assert_eq!(name.len(), 63, "{name}");
                assert!(name.contains(&hash(lease, 16)), "{template}: {name}");
            }
            if template.contains("unix_time") {
                assert!(
                    a.ends_with(&format!("{}-1795356935", hash(&first, 20))),
                    "{a}"
                );
            }
        }
        // Both names are cut, the longer first, to (nearly) the same length.
        let name =
            from_template("{{.DisplayName}}.{{.RoleName}}.{{random 16}}", &first, 63).unwrap();
        assert_eq!(
            name,
            format!("{}_{}_{}", &requester[..23], &role[..22], hash(&first, 16))
        );
        // A short name keeps its length; the long one takes what is left.
        let short = lease("db/creds/r/one", "ci", &role);
        let name =
            from_template("{{.DisplayName}}-{{.RoleName}}-{{random 16}}", &short, 63).unwrap();
        assert_eq!(name.len(), 63);
        assert!(name.starts_with("ci-and-an-equally"), "{name}");
    }

    #[test]
    fn short_names_are_whole_and_characters_are_kept_safe() {
        let lease = lease("db/creds/r/x", "Jo\"; DROP ROLE x; --é", "ro");
        let name =
            from_template("v-{{.DisplayName}}-{{.RoleName}}-{{random 16}}", &lease, 63).unwrap();
        assert_eq!(
            name,
            format!("v-Jo___DROP_ROLE_x__--_-ro-{}", hash(&lease, 16))
        );
    }

    #[test]
    fn templates_that_could_repeat_a_name_or_not_fit_are_refused() {
        // No lease-derived part, or too few of its digits: two leases could share a name.
        for template in [
            "{{.DisplayName}}-{{.RoleName}}",
            "{{.DisplayName}}-{{unix_time}}",
            "v-{{.RoleName}}-{{random 12}}",
        ] {
            let err = check_template(template, 63).unwrap_err();
            assert!(err.message().contains("random N"), "{template}: {err:?}");
        }
        // The fixed parts alone are longer than a name.
        let long = format!("{}-{{{{random 16}}}}", "x".repeat(50));
        assert!(check_template(&long, 63).is_err());
        assert!(check_template("{{random 64}}", 63).is_err());
        assert!(check_template("{{random 65}}", 63).is_err());
        assert!(check_template("{{random 16}}-{{.Nope}}", 63).is_err());
        assert!(check_template("{{random 16", 63).is_err());
    }
}
