//! Vault's statement templates: `{{name}}` (or `{{username}}`), `{{password}}`
//! and `{{expiration}}`, substituted with the quoting their place needs, and cut
//! into the statements they hold.
//!
//! A template is read the way PostgreSQL's scanner reads SQL, so where a
//! placeholder stands is known, never guessed: `-- ...` and nested `/* ... */`
//! comments, `'...'` strings (`''` is a quote; the plugin's sessions keep
//! `standard_conforming_strings` on, so a backslash is only a backslash),
//! `E'...'` strings (backslash escapes), `"..."` identifiers and `$tag$...$tag$`
//! strings. Inside `'...'` a value has its single quotes doubled; inside
//! `E'...'` its backslashes and single quotes; inside `"..."` its double quotes;
//! outside any quotes a name becomes a quoted identifier and anything else a
//! quoted literal. The body of a dollar-quoted string is read as SQL too (it is
//! PL/pgSQL in a `DO` block), and a value that would hold the string's closing
//! tag is refused: nothing escapes a tag. Placeholders in comments are left as
//! they are. So `CREATE ROLE "{{name}}" PASSWORD '{{password}}'` and
//! `CREATE ROLE {{name}} PASSWORD {{password}}` both come out right whatever the
//! values hold.
//!
//! Statements end at a `;` outside quotes, comments, parentheses and a routine's
//! `BEGIN ATOMIC ... END` (psql's rule), so a `DO $$ ... ; ... $$` block or a
//! `';'` stays one statement.

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

/// How a value is written where its placeholder stands.
#[derive(Clone, Copy, PartialEq)]
enum Place {
    /// Outside quotes: a name as a quoted identifier, anything else as a literal.
    Bare,
    /// Inside `'...'`.
    Literal,
    /// Inside `E'...'`.
    EscapeLiteral,
    /// Inside `"..."`.
    Identifier,
}

/// `template` with its placeholders substituted, cut into statements (without
/// their `;`); a statement of only comments and whitespace is left out.
pub fn render(template: &str, values: &Values<'_>) -> Result<Vec<String>> {
    let mut scan = Scan::new(template, values, true);
    scan.code()?;
    scan.end_statement();
    Ok(scan.statements)
}

/// Every template of `templates` rendered, their statements in order.
pub fn render_all(templates: &[String], values: &Values<'_>) -> Result<Vec<String>> {
    let mut statements = Vec::new();
    for template in templates {
        statements.extend(render(template, values)?);
    }
    Ok(statements)
}

/// Checks that `template` uses only known placeholders and closes every quote
/// and comment it opens.
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

/// A character that starts an identifier or keyword.
fn starts_word(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || !c.is_ascii()
}

/// A character that continues one.
fn continues_word(c: char) -> bool {
    starts_word(c) || c.is_ascii_digit() || c == '$'
}

/// The `$tag$` that `rest` starts with, if it starts a dollar-quoted string.
fn dollar_tag(rest: &str) -> Option<&str> {
    let inner = rest.strip_prefix('$')?;
    let len = inner
        .find(|c: char| !(starts_word(c) || c.is_ascii_digit()))
        .unwrap_or(inner.len());
    let starts_with_digit = inner.starts_with(|c: char| c.is_ascii_digit());
    (!starts_with_digit && inner[len..].starts_with('$')).then(|| &rest[..len + 2])
}

/// How many bytes of `rest` (just after a string's closing quote) join it to a
/// next `'...'` as one string, up to and without that quote: PostgreSQL's
/// whitespace holding a newline, `--` comments included. The next part keeps
/// the first one's kind: after `E'a'` and a newline, `'b\n'` still has escapes.
fn continuation(rest: &str) -> Option<usize> {
    let bytes = rest.as_bytes();
    let (mut at, mut newline) = (0, false);
    loop {
        match bytes.get(at)? {
            // `\v` too: PostgreSQL 16 counts it, and taking a join that is not
            // one only doubles backslashes that needed no doubling.
            b' ' | b'\t' | b'\x0b' | b'\x0c' => at += 1,
            b'\n' | b'\r' => {
                newline = true;
                at += 1;
            }
            b'-' if bytes.get(at + 1) == Some(&b'-') => {
                at += rest[at..].find(['\n', '\r'])?;
            }
            b'\'' if newline => return Some(at),
            _ => return None,
        }
    }
}

/// One pass over a template, or over the body of a dollar-quoted string in one.
struct Scan<'a> {
    text: &'a str,
    at: usize,
    values: &'a Values<'a>,
    /// Whether `;` ends a statement: in the template, not in a dollar-quoted body.
    split: bool,
    out: String,
    /// Whether `out` holds more than whitespace and comments.
    has_code: bool,
    statements: Vec<String>,
    parens: usize,
    /// The statement's first words, lowercased, enough to tell a routine.
    head: Vec<String>,
    /// `BEGIN` (and `CASE` inside one) not yet closed by `END`, in a routine.
    blocks: usize,
}

impl<'a> Scan<'a> {
    fn new(text: &'a str, values: &'a Values<'a>, split: bool) -> Self {
        Self {
            text,
            at: 0,
            values,
            split,
            out: String::with_capacity(text.len() + 64),
            has_code: false,
            statements: Vec::new(),
            parens: 0,
            head: Vec::new(),
            blocks: 0,
        }
    }

    fn rest(&self) -> &'a str {
        &self.text[self.at..]
    }

    /// Copies the next `len` bytes as they are.
    fn copy(&mut self, len: usize) {
        self.out.push_str(&self.text[self.at..self.at + len]);
        self.at += len;
    }

    fn unterminated(what: &str) -> Error {
        Error::invalid_request(format!("a statement has {what}"))
    }

    /// SQL outside quotes and comments, to the end of the text.
    fn code(&mut self) -> Result<()> {
        while let Some(c) = self.rest().chars().next() {
            let rest = self.rest();
            if rest.starts_with("{{") {
                self.placeholder(Place::Bare)?;
                self.has_code = true;
            } else if rest.starts_with("--") {
                self.copy(rest.find('\n').map_or(rest.len(), |end| end + 1));
            } else if rest.starts_with("/*") {
                self.block_comment()?;
            } else if c == '\'' {
                self.string(Place::Literal)?;
            } else if c == '"' {
                self.identifier()?;
            } else if let Some(tag) = dollar_tag(rest) {
                self.dollar_quoted(tag)?;
            } else if starts_word(c) {
                self.word()?;
            } else if c == ';' && self.split && self.parens == 0 && self.blocks == 0 {
                self.at += 1;
                self.end_statement();
            } else {
                match c {
                    '(' => self.parens += 1,
                    ')' => self.parens = self.parens.saturating_sub(1),
                    _ => {}
                }
                self.has_code |= !c.is_whitespace();
                self.copy(c.len_utf8());
            }
        }
        Ok(())
    }

    /// A keyword or unquoted identifier; `E` before a quote starts an escape string.
    fn word(&mut self) -> Result<()> {
        let rest = self.rest();
        let len = rest.find(|c| !continues_word(c)).unwrap_or(rest.len());
        let word = rest[..len].to_ascii_lowercase();
        self.copy(len);
        self.has_code = true;
        if word == "e" && self.rest().starts_with('\'') {
            return self.string(Place::EscapeLiteral);
        }
        if !self.split {
            return Ok(());
        }
        // psql's rule for `CREATE [OR REPLACE] FUNCTION|PROCEDURE ... BEGIN
        // ATOMIC ...; ...; END`: its `;` belong to the routine's body.
        if self.head.len() < 4 {
            self.head.push(word.clone());
        }
        let head: Vec<&str> = self.head.iter().map(String::as_str).collect();
        let routine = matches!(
            head.as_slice(),
            ["create", "function" | "procedure", ..]
                | ["create", "or", "replace", "function" | "procedure", ..]
        );
        if routine && self.parens == 0 {
            match word.as_str() {
                "begin" => self.blocks += 1,
                "case" if self.blocks > 0 => self.blocks += 1,
                "end" => self.blocks = self.blocks.saturating_sub(1),
                _ => {}
            }
        }
        Ok(())
    }

    /// A `/* ... */` comment, nested ones included, as it is.
    fn block_comment(&mut self) -> Result<()> {
        let mut depth = 0;
        loop {
            let rest = self.rest();
            if rest.starts_with("/*") {
                depth += 1;
                self.copy(2);
            } else if rest.starts_with("*/") {
                depth -= 1;
                self.copy(2);
                if depth == 0 {
                    return Ok(());
                }
            } else if let Some(c) = rest.chars().next() {
                self.copy(c.len_utf8());
            } else {
                return Err(Self::unterminated("a /* comment without its */"));
            }
        }
    }

    /// A `'...'` string (`E'...'` for [`Place::EscapeLiteral`]), and the strings
    /// that continue it on later lines.
    fn string(&mut self, place: Place) -> Result<()> {
        self.has_code = true;
        self.copy(1);
        loop {
            let rest = self.rest();
            let Some(c) = rest.chars().next() else {
                return Err(Self::unterminated(
                    "a '...' string without its closing quote",
                ));
            };
            if rest.starts_with("{{") {
                self.placeholder(place)?;
            } else if c == '\\' && place == Place::EscapeLiteral {
                // The escaped character, a quote included, is part of the string.
                let escaped = rest[1..].chars().next().map_or(0, char::len_utf8);
                self.copy(1 + escaped);
            } else if rest.starts_with("''") {
                self.copy(2);
            } else if c == '\'' {
                self.copy(1);
                match continuation(self.rest()) {
                    Some(len) => self.copy(len + 1),
                    None => return Ok(()),
                }
            } else {
                self.copy(c.len_utf8());
            }
        }
    }

    /// A `"..."` identifier.
    fn identifier(&mut self) -> Result<()> {
        self.has_code = true;
        self.copy(1);
        loop {
            let rest = self.rest();
            let Some(c) = rest.chars().next() else {
                return Err(Self::unterminated(
                    "a \"...\" identifier without its closing quote",
                ));
            };
            if rest.starts_with("{{") {
                self.placeholder(Place::Identifier)?;
            } else if rest.starts_with("\"\"") {
                self.copy(2);
            } else {
                self.copy(c.len_utf8());
                if c == '"' {
                    return Ok(());
                }
            }
        }
    }

    /// A `$tag$...$tag$` string: it ends at the first `$tag$`, whatever is
    /// between. Its body is read as SQL for the places of its placeholders.
    fn dollar_quoted(&mut self, tag: &str) -> Result<()> {
        self.has_code = true;
        let after = self.at + tag.len();
        let len = self.text[after..].find(tag).ok_or_else(|| {
            Self::unterminated(&format!("a dollar-quoted string without its closing {tag}"))
        })?;
        let body = &self.text[after..after + len];
        self.out.push_str(tag);
        // Without placeholders a body need not be SQL (`$$it's$$` is a string).
        if body.contains("{{") {
            let mut inner = Scan::new(body, self.values, false);
            inner.code()?;
            // The body ends where the tag first appears: a value may not move that.
            if format!("{}{tag}", inner.out).find(tag) != Some(inner.out.len()) {
                return Err(Error::invalid_request(format!(
                    "a value would end the dollar-quoted string {tag} early: write its placeholder outside it, or choose another tag"
                )));
            }
            self.out.push_str(&inner.out);
        } else {
            self.out.push_str(body);
        }
        self.out.push_str(tag);
        self.at = after + len + tag.len();
        Ok(())
    }

    /// The placeholder at `at`, written for `place`.
    fn placeholder(&mut self, place: Place) -> Result<()> {
        let rest = self.rest();
        let end = rest
            .find("}}")
            .ok_or_else(|| Error::invalid_request("a statement has `{{` without a closing `}}`"))?;
        let key = rest[2..end].trim();
        let (value, is_name) = match key {
            "name" | "username" => (self.values.name, true),
            "password" => (
                self.values.password.ok_or_else(|| {
                    Error::invalid_request("{{password}} is only available in creation statements")
                })?,
                false,
            ),
            "expiration" => (self.values.expiration, false),
            other => {
                return Err(Error::invalid_request(format!(
                    "unknown placeholder {{{{{other}}}}}: use name, password or expiration"
                )));
            }
        };
        if value.contains('\0') {
            return Err(Error::invalid_request("a value holds a NUL character"));
        }
        self.out.push_str(&match place {
            Place::Bare if is_name => escape_identifier(value),
            Place::Bare => escape_literal(value),
            Place::Literal => value.replace('\'', "''"),
            Place::EscapeLiteral => value.replace('\\', "\\\\").replace('\'', "''"),
            Place::Identifier => value.replace('"', "\"\""),
        });
        self.at += end + 2;
        Ok(())
    }

    /// Ends the statement in `out`, keeping it if it holds any SQL.
    fn end_statement(&mut self) {
        let statement = std::mem::take(&mut self.out);
        if self.has_code {
            self.statements.push(statement.trim().to_owned());
        }
        self.has_code = false;
        self.parens = 0;
        self.head.clear();
        self.blocks = 0;
    }
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

    fn one(template: &str, values: &Values<'_>) -> String {
        let statements = render(template, values).unwrap();
        assert_eq!(statements.len(), 1, "{statements:?}");
        statements.into_iter().next().unwrap()
    }

    #[test]
    fn quoting_follows_the_place() {
        let quoted = one(
            "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';",
            &values(),
        );
        assert_eq!(
            quoted,
            "CREATE ROLE \"v-a\"\"b\" WITH LOGIN PASSWORD 'p''w' VALID UNTIL '2030-01-01T00:00:00Z'"
        );
        let bare = one("CREATE ROLE {{name}} PASSWORD {{password}}", &values());
        assert_eq!(bare, "CREATE ROLE \"v-a\"\"b\" PASSWORD 'p''w'");
        // A quote inside a literal does not flip the state for what follows.
        let doubled = one("SELECT 'it''s', \"{{name}}\"", &values());
        assert_eq!(doubled, "SELECT 'it''s', \"v-a\"\"b\"");
        // A backslash is only a backslash in a standard string.
        let backslash = one("SELECT 'a\\', {{name}}", &values());
        assert_eq!(backslash, "SELECT 'a\\', \"v-a\"\"b\"");
    }

    #[test]
    fn statements_end_at_semicolons_outside_quotes_and_comments() {
        let statements = render(
            "CREATE ROLE {{name}}; GRANT SELECT ON t TO {{name}};\n\
             SELECT ';', \"a;b\", E'\\';', $$;$$, $x$;$x$ /* ; */ -- ;\n;  ; -- only a comment",
            &values(),
        )
        .unwrap();
        assert_eq!(
            statements,
            [
                "CREATE ROLE \"v-a\"\"b\"",
                "GRANT SELECT ON t TO \"v-a\"\"b\"",
                "SELECT ';', \"a;b\", E'\\';', $$;$$, $x$;$x$ /* ; */ -- ;",
            ]
        );
        // Parentheses (a rule's actions) and a routine's BEGIN ATOMIC ... END.
        let statements = render(
            "CREATE RULE r AS ON INSERT TO t DO ALSO (SELECT 1; SELECT 2);\
             CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql \
             BEGIN ATOMIC SELECT CASE WHEN true THEN 1 END; SELECT 2; END;\
             GRANT EXECUTE ON FUNCTION f() TO {{name}}",
            &values(),
        )
        .unwrap();
        assert_eq!(statements.len(), 3, "{statements:?}");
        assert!(statements[1].ends_with("SELECT 2; END"), "{statements:?}");
        assert!(statements[2].starts_with("GRANT EXECUTE"), "{statements:?}");
    }

    #[test]
    fn comments_keep_their_placeholders_and_quotes() {
        let sql = one(
            "-- it's {{name}}; not a statement\n\
             /* a /* nested ' */ \"still; {{password}} */ CREATE ROLE {{name}}",
            &values(),
        );
        assert_eq!(
            sql,
            "-- it's {{name}}; not a statement\n\
             /* a /* nested ' */ \"still; {{password}} */ CREATE ROLE \"v-a\"\"b\""
        );
    }

    #[test]
    fn escape_strings_double_backslashes_and_read_backslash_quotes() {
        let values = Values {
            password: Some("x\\'; DROP ROLE admin; --"),
            ..values()
        };
        // `\'` does not end the string: what follows it is still inside.
        let sql = one("ALTER ROLE x PASSWORD E'it\\'s {{password}}'", &values);
        assert_eq!(
            sql,
            "ALTER ROLE x PASSWORD E'it\\'s x\\\\''; DROP ROLE admin; --'"
        );
        // A backslash before the placeholder escapes the `{`, not the value.
        assert_eq!(
            one("SELECT E'\\{{password}}'", &values),
            "SELECT E'\\{{password}}'"
        );
        // A string continued on the next line keeps its kind.
        let continued = one("SELECT e'a' -- more\n  '{{password}}'", &values);
        assert_eq!(
            continued,
            "SELECT e'a' -- more\n  'x\\\\''; DROP ROLE admin; --'"
        );
        // A standard string after an `E` that is part of a word.
        let standard = one("SELECT be'{{password}}'", &values);
        assert_eq!(standard, "SELECT be'x\\''; DROP ROLE admin; --'");
    }

    #[test]
    fn dollar_quoted_bodies_are_read_as_sql() {
        let sql = one(
            "DO $$BEGIN CREATE ROLE {{name}}; EXECUTE 'ALTER ROLE ' || quote_ident('{{name}}') \
             || $q$ PASSWORD $q$ || quote_literal({{password}}); END$$",
            &values(),
        );
        assert_eq!(
            sql,
            "DO $$BEGIN CREATE ROLE \"v-a\"\"b\"; EXECUTE 'ALTER ROLE ' || quote_ident('v-a\"b') \
             || $q$ PASSWORD $q$ || quote_literal('p''w'); END$$"
        );
        // The README's example: one statement, each value quoted for its place.
        let statements = render(
            "DO $$ BEGIN\n  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{{name}}') THEN\n    \
             CREATE ROLE {{name}} LOGIN PASSWORD {{password}};\n  END IF;\nEND $$;",
            &values(),
        )
        .unwrap();
        assert_eq!(
            statements,
            [
                "DO $$ BEGIN\n  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'v-a\"b') THEN\n    \
              CREATE ROLE \"v-a\"\"b\" LOGIN PASSWORD 'p''w';\n  END IF;\nEND $$"
            ]
        );
        // Without placeholders a body is only a string.
        assert_eq!(
            one(
                "COMMENT ON ROLE {{name}} IS $c$it's ours; {really}$c$",
                &values()
            ),
            "COMMENT ON ROLE \"v-a\"\"b\" IS $c$it's ours; {really}$c$"
        );
        // Not tags: a parameter, a word with a dollar.
        assert_eq!(
            one("SELECT $1, a$b$ FROM t WHERE x = '{{name}}'", &values()),
            "SELECT $1, a$b$ FROM t WHERE x = 'v-a\"b'"
        );
    }

    #[test]
    fn no_value_escapes_its_place() {
        let templates = [
            "CREATE ROLE {{name}}",
            "CREATE ROLE \"{{name}}\"",
            "SELECT '{{name}}'",
            "SELECT E'{{name}}'",
            "DO $$BEGIN CREATE ROLE {{name}}; END$$",
            "DO $t$BEGIN PERFORM '{{name}}'; END$t$",
        ];
        let hostile = [
            "a\"b",
            "a'b",
            "a;b",
            "a--b",
            "a/*b",
            "a\\b",
            "a\\'b",
            "a$$b",
            "a$",
            "{{password}}",
        ];
        let quiet = Values {
            name: "n",
            password: Some("p"),
            expiration: "e",
        };
        for template in templates {
            for name in hostile {
                let values = Values { name, ..values() };
                let rendered = match render(template, &values) {
                    Ok(rendered) => rendered,
                    // Only a tag in a dollar-quoted body may be refused.
                    Err(err) => {
                        assert!(
                            template.contains('$') && name.contains('$'),
                            "{template} {name}"
                        );
                        assert!(err.message().contains("dollar-quoted"), "{err:?}");
                        continue;
                    }
                };
                assert_eq!(rendered.len(), 1, "{template} {name}: {rendered:?}");
                // Read again, the result is the same one statement: the value
                // opened or closed nothing.
                if !name.contains("{{") {
                    assert_eq!(
                        render(&rendered[0], &quiet).unwrap(),
                        rendered,
                        "{template} {name}"
                    );
                }
                assert!(
                    !rendered[0].contains("p'w"),
                    "{template} {name}: {rendered:?}"
                );
            }
        }
        let tagged = Values {
            password: Some("p$$w"),
            ..values()
        };
        assert!(render("DO $$BEGIN PERFORM {{password}}; END$$", &tagged).is_err());
        assert!(render("DO $x$BEGIN PERFORM {{password}}; END$x$", &tagged).is_ok());
    }

    #[test]
    fn unknown_unavailable_or_unclosed_is_an_error() {
        assert!(check("DROP ROLE {{nme}}").is_err());
        assert!(check("DROP ROLE {{name}").is_err());
        for unclosed in [
            "SELECT 'a",
            "SELECT E'a\\'",
            "SELECT \"a",
            "SELECT 1 /* a /* b */",
            "DO $$ BEGIN",
            "DO $$ PERFORM '{{name}} $$",
        ] {
            assert!(check(unclosed).is_err(), "{unclosed}");
        }
        let revoking = Values {
            password: None,
            ..values()
        };
        assert!(render("ALTER ROLE {{name}} PASSWORD {{password}}", &revoking).is_err());
    }
}
