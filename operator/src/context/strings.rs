//! What a container's literal strings say: PostgreSQL connection strings and the `sslmode` they
//! ask for, passwords written into URLs, and environment variables whose name says "credential"
//! while their value is written in the manifest.
//!
//! Why this is done here and not in Rego: these are facts about text (is this a libpq keyword
//! string? which sslmode does it name?), not judgments. In Rego each test is a regex builtin plus
//! a function call per string, and they were about half of the built-in library's evaluation time
//! (BENCHMARKS.md). The judgments stay in Rego: which sslmodes guarantee TLS, whether a literal
//! credential or a URL password is a finding, how likely it is.
//!
//! Every scanner here works on bytes: the patterns are ASCII, so matching bytes matches the same
//! strings as the regular expressions they replace (written next to each function), and a
//! multi-byte character can never be mistaken for one of them.

use std::collections::BTreeSet;

use super::document::{Connection, EnvInfo, PgSslMode};

/// The facts about one container's strings.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct StringFacts {
    pub pgsslmode: PgSslMode,
    pub connections: Vec<Connection>,
    pub literal_credentials: Vec<String>,
}

/// Reads the container's literal environment values and its command line (`command` then `args`).
pub(crate) fn analyse(env: &[EnvInfo], args: &[String]) -> StringFacts {
    let mut facts = StringFacts::default();
    let mut pgsslmodes = BTreeSet::new();
    for e in env {
        let literal = e.value.as_deref().filter(|v| !v.is_empty());
        if e.name.to_uppercase() == "PGSSLMODE" {
            // Set at all, even from a Secret or ConfigMap (whose value is trusted).
            facts.pgsslmode.set = true;
            if let Some(v) = literal {
                pgsslmodes.insert(v.trim().to_lowercase());
            }
        }
        let Some(value) = literal else { continue };
        if credential_name(&e.name) && !env_reference(value) {
            facts.literal_credentials.push(e.name.clone());
        }
        facts.connections.extend(connection(Some(&e.name), value));
    }
    facts.connections.extend(args.iter().filter_map(|a| connection(None, a)));
    facts.pgsslmode.values = pgsslmodes.into_iter().collect();
    facts
}

/// A string that holds a PostgreSQL connection, names an sslmode, or carries a URL password;
/// `None` for every other string (most are short flags and plain values).
fn connection(env: Option<&str>, s: &str) -> Option<Connection> {
    if !s.contains("://") && !s.contains('=') {
        return None;
    }
    let lower = s.to_lowercase();
    let sslmodes = if lower.contains("sslmode") { sslmodes(&lower) } else { Vec::new() };
    let postgres = is_postgres(&lower);
    let url_password = url_password(s);
    if sslmodes.is_empty() && !postgres && !url_password {
        return None;
    }
    Some(Connection {
        env: env.map(str::to_owned),
        postgres,
        sslmodes,
        jdbc_ssl_true: jdbc_ssl_true(&lower),
        url_password,
    })
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// The first index at or after `i` that is not a blank.
fn skip_blanks(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_blank(b[i]) {
        i += 1;
    }
    i
}

/// Every `sslmode=<mode>` in a lower-case string, sorted and unique: keyword/value
/// (`sslmode=disable`, `sslmode = 'require'`), URL query (`?sslmode=disable`) and JDBC.
/// Regex: `sslmode[ \t]*=[ \t]*'?[a-z-]+`, all non-overlapping matches.
fn sslmodes(lower: &str) -> Vec<String> {
    let b = lower.as_bytes();
    let mut modes = BTreeSet::new();
    let mut from = 0;
    while let Some(at) = lower[from..].find("sslmode") {
        let start = from + at;
        from = start + 1;
        let mut i = skip_blanks(b, start + "sslmode".len());
        if b.get(i) != Some(&b'=') {
            continue;
        }
        i = skip_blanks(b, i + 1);
        if b.get(i) == Some(&b'\'') {
            i += 1;
        }
        let mode_start = i;
        while i < b.len() && (b[i].is_ascii_lowercase() || b[i] == b'-') {
            i += 1;
        }
        if i > mode_start {
            modes.insert(lower[mode_start..i].to_owned());
            from = i;
        }
    }
    modes.into_iter().collect()
}

/// A PostgreSQL connection string (lower case): a `postgres://` or `postgresql://` URL (JDBC's
/// `jdbc:postgresql://` included), or a libpq keyword/value string naming a host and a database
/// or user (`host=crm-db dbname=crm`).
fn is_postgres(lower: &str) -> bool {
    if lower.contains("postgres://") || lower.contains("postgresql://") {
        return true;
    }
    lower.contains('=') && keyword_set(lower, &["host", "hostaddr"]) && keyword_set(lower, &["dbname", "user"])
}

/// One of `keywords` set to a non-blank value, at the start or after a blank.
/// Regex: `(^|[ \t])(k1|k2)[ \t]*=[ \t]*[^ \t]`.
fn keyword_set(lower: &str, keywords: &[&str]) -> bool {
    let b = lower.as_bytes();
    (0..b.len()).filter(|&p| p == 0 || is_blank(b[p - 1])).any(|p| {
        keywords.iter().any(|k| {
            if !b[p..].starts_with(k.as_bytes()) {
                return false;
            }
            let i = skip_blanks(b, p + k.len());
            if b.get(i) != Some(&b'=') {
                return false;
            }
            let i = skip_blanks(b, i + 1);
            i < b.len()
        })
    })
}

/// JDBC's `ssl=true` (which means verify-full when no sslmode is given) in a
/// `jdbc:postgresql://` URL (lower case). Regex: `jdbc:postgresql://[^ \t]*[?&]ssl=true`.
fn jdbc_ssl_true(lower: &str) -> bool {
    const PREFIX: &str = "jdbc:postgresql://";
    lower.match_indices(PREFIX).any(|(at, _)| {
        let rest = &lower[at + PREFIX.len()..];
        let url = rest.split([' ', '\t']).next().unwrap_or_default();
        url.contains("?ssl=true") || url.contains("&ssl=true")
    })
}

/// A URL that carries a literal password, `scheme://user:password@host`, where the password is
/// not a `$(VAR)` reference. Case-sensitive.
/// Regex: `[A-Za-z][A-Za-z0-9+.-]*://[^/ \t:@]+:[^/ \t@$][^/ \t@]*@`.
fn url_password(s: &str) -> bool {
    if !s.contains('@') {
        return false;
    }
    let b = s.as_bytes();
    s.match_indices("://").any(|(at, _)| {
        // The scheme: a run of scheme characters right before "://" holding a letter (the
        // regex can start at any letter of the run).
        let scheme_char = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'.' | b'-');
        let has_scheme = b[..at].iter().rev().take_while(|&&c| scheme_char(c)).any(u8::is_ascii_alphabetic);
        if !has_scheme {
            return false;
        }
        // The user: one or more characters other than / blank : @, then ':'.
        let mut i = at + 3;
        let user_start = i;
        while i < b.len() && !matches!(b[i], b'/' | b' ' | b'\t' | b':' | b'@') {
            i += 1;
        }
        if i == user_start || b.get(i) != Some(&b':') {
            return false;
        }
        // The password: not starting with '$', up to '@'.
        i += 1;
        let password_start = i;
        while i < b.len() && !matches!(b[i], b'/' | b' ' | b'\t' | b'@') {
            i += 1;
        }
        i > password_start && b[password_start] != b'$' && b.get(i) == Some(&b'@')
    })
}

/// Whole `_`-separated words (or word pairs) that say "credential"; `PASSWORD` and `PASSWD`
/// count anywhere in the name.
const CREDENTIAL_WORDS: &[&str] = &[
    "PASS",
    "PWD",
    "SECRET",
    "TOKEN",
    "API_KEY",
    "APIKEY",
    "PRIVATE_KEY",
    "PRIVATEKEY",
    "SECRET_KEY",
    "SECRETKEY",
    "ACCESS_KEY",
    "ACCESSKEY",
    "CREDENTIAL",
    "CREDENTIALS",
];

/// Suffixes of names that hold a pointer to a secret or a setting about it, not the secret.
const POINTER_SUFFIXES: &[&str] =
    &["_FILE", "_PATH", "_DIR", "_NAME", "_REF", "_TTL", "_EXPIRY", "_LENGTH", "_ENABLED"];

/// An environment variable name that says it holds a credential (compared upper-case):
/// `DB_PASSWORD`, `GITHUB_TOKEN`, `STRIPE_API_KEY`, but not `TOKENIZER_MODEL` (a word must be
/// whole) nor `DB_PASSWORD_FILE` (a pointer to one).
fn credential_name(name: &str) -> bool {
    let upper = name.to_uppercase();
    if POINTER_SUFFIXES.iter().any(|s| upper.ends_with(s)) {
        return false;
    }
    if upper.contains("PASSWORD") || upper.contains("PASSWD") {
        return true;
    }
    let b = upper.as_bytes();
    (0..b.len()).filter(|&p| p == 0 || b[p - 1] == b'_').any(|p| {
        CREDENTIAL_WORDS.iter().any(|w| {
            let end = p + w.len();
            b[p..].starts_with(w.as_bytes()) && (end == b.len() || b[end] == b'_')
        })
    })
}

/// A value that only refers to another variable, `$(DB_PASSWORD)`: Kubernetes expands it from
/// the container's other variables, so the credential is not in the manifest.
fn env_reference(value: &str) -> bool {
    let Some(name) = value.strip_prefix("$(").and_then(|v| v.strip_suffix(')')) else {
        return false;
    };
    let mut chars = name.bytes();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str, value: &str) -> EnvInfo {
        EnvInfo { name: name.into(), value: Some(value.into()), from_secret: None, from_config_map: None }
    }

    fn one_env(name: &str, value: &str) -> StringFacts {
        analyse(&[env(name, value)], &[])
    }

    fn modes(s: &str) -> Vec<String> {
        sslmodes(&s.to_lowercase())
    }

    #[test]
    fn sslmodes_in_every_syntax() {
        assert_eq!(modes("postgresql://crm@db:5432/crm?sslmode=disable"), ["disable"]);
        assert_eq!(modes("postgres://crm@db/crm?connect_timeout=5&sslmode=verify-full"), ["verify-full"]);
        assert_eq!(modes("host=crm-db dbname=crm user=crm sslmode=allow"), ["allow"]);
        assert_eq!(modes("host=a sslmode = 'require' dbname=b"), ["require"]);
        assert_eq!(modes("jdbc:postgresql://h/db?sslmode=prefer"), ["prefer"]);
        assert_eq!(modes("SSLMODE=Disable"), ["disable"]);
        assert_eq!(modes("a sslmode=disable b sslmode=require c sslmode=disable"), ["disable", "require"]);
        // No value, or no '=': not an sslmode.
        assert!(modes("sslmode=").is_empty());
        assert!(modes("sslmode disable").is_empty());
        assert!(modes("--sslmode-file=/x").is_empty());
        assert!(modes("sslmode='").is_empty());
        // A failed occurrence does not hide a later one.
        assert_eq!(modes("sslmode sslmode=require"), ["require"]);
    }

    #[test]
    fn postgres_connection_strings() {
        for s in [
            "postgres://crm@crm-db:5432/crm",
            "postgresql://crm@db/crm",
            "jdbc:postgresql://crm-db:5432/crm",
            "host=crm-db dbname=crm user=crm",
            "hostaddr = 10.0.0.1 user=crm",
            "\thost=crm-db\tdbname=crm",
        ] {
            assert!(is_postgres(&s.to_lowercase()), "{s}");
        }
        for s in [
            "redis://cache:6379/0",
            "host=a",
            "myhost=a dbname=b",
            "dbname=crm host= ",
            "host=a xuser=b",
            "--host=crm-db --dbname=crm",
        ] {
            assert!(!is_postgres(&s.to_lowercase()), "{s}");
        }
    }

    #[test]
    fn jdbc_ssl() {
        assert!(jdbc_ssl_true("jdbc:postgresql://crm-db:5432/crm?ssl=true"));
        assert!(jdbc_ssl_true("x jdbc:postgresql://crm-db/crm?user=a&ssl=true&x=y"));
        assert!(!jdbc_ssl_true("jdbc:postgresql://crm-db:5432/crm"));
        assert!(!jdbc_ssl_true("jdbc:postgresql://crm-db/crm ?ssl=true"));
        assert!(!jdbc_ssl_true("postgres://crm-db/crm?ssl=true"));
    }

    #[test]
    fn passwords_in_urls() {
        assert!(url_password("postgres://crm:hunter2@crm-db/crm?sslmode=verify-full"));
        assert!(url_password("--database=postgres://crm:hunter2@crm-db/crm"));
        assert!(url_password("amqp://guest:pa:ss@mq"));
        assert!(url_password("redis+sentinel://u:p@h"));
        assert!(!url_password("postgres://crm:$(DB_PASSWORD)@crm-db/crm"));
        assert!(!url_password("postgres://crm@crm-db/crm"));
        assert!(!url_password("https://example.com/a:b@c"));
        assert!(!url_password("postgres://:pw@h"));
        assert!(!url_password("postgres://u:@h"));
        assert!(!url_password("://u:p@h"));
        assert!(!url_password("1://u:p@h"));
        assert!(url_password("x1://u:p@h"));
        assert!(!url_password("postgres://u:p"));
    }

    #[test]
    fn credential_names() {
        for name in [
            "DB_PASSWORD",
            "db_password",
            "PASSWD",
            "MYPASSWORDX",
            "GITHUB_TOKEN",
            "STRIPE_API_KEY",
            "APIKEY",
            "AWS_SECRET_ACCESS_KEY",
            "PRIVATE_KEY",
            "GCP_CREDENTIALS",
            "PASS",
            "REDIS_PWD",
            "jwt_secret",
        ] {
            assert!(credential_name(name), "{name}");
        }
        for name in [
            "TOKENIZER_MODEL",
            "DB_PASSWORD_FILE",
            "SECRET_NAME",
            "jwtSecret",
            "PASSTHROUGH",
            "KEY",
            "TOKEN_TTL",
            "COMPASS",
            "HOST",
        ] {
            assert!(!credential_name(name), "{name}");
        }
    }

    #[test]
    fn env_references() {
        assert!(env_reference("$(DB_PASSWORD)"));
        assert!(env_reference("$(_x1)"));
        assert!(!env_reference("$(1X)"));
        assert!(!env_reference("$()"));
        assert!(!env_reference("$(A)B"));
        assert!(!env_reference("x$(A)"));
        assert!(!env_reference("$(A-B)"));
    }

    #[test]
    fn pgsslmode_literal_and_from_elsewhere() {
        let facts = analyse(&[env("PGSSLMODE", " Disable "), env("pgsslmode", "require")], &[]);
        assert_eq!(facts.pgsslmode, PgSslMode { set: true, values: vec!["disable".into(), "require".into()] });
        let from_secret = EnvInfo { name: "PGSSLMODE".into(), value: None, from_secret: None, from_config_map: None };
        let facts = analyse(&[from_secret], &[]);
        assert_eq!(facts.pgsslmode, PgSslMode { set: true, values: vec![] });
        assert_eq!(analyse(&[], &[]).pgsslmode, PgSslMode::default());
    }

    #[test]
    fn connections_from_env_and_args() {
        let facts = one_env("DATABASE_URL", "postgres://crm:hunter2@crm-db/crm?sslmode=disable");
        assert_eq!(
            facts.connections,
            [Connection {
                env: Some("DATABASE_URL".into()),
                postgres: true,
                sslmodes: vec!["disable".into()],
                jdbc_ssl_true: false,
                url_password: true,
            }]
        );
        // The password is a URL password, not a credential-named variable.
        assert!(facts.literal_credentials.is_empty());

        let facts = analyse(&[], &["psql".into(), "host=crm-db dbname=crm user=crm".into(), "-c".into()]);
        assert_eq!(facts.connections.len(), 1);
        assert_eq!(facts.connections[0].env, None);
        assert!(facts.connections[0].postgres);
        assert!(facts.connections[0].sslmodes.is_empty());

        let facts = one_env("SPRING_DATASOURCE_URL", "jdbc:postgresql://crm-db:5432/crm?ssl=true");
        assert!(facts.connections[0].jdbc_ssl_true);

        // Strings that are none of these are not listed.
        for (name, value) in [("REDIS_URL", "redis://cache:6379/0"), ("HOSTNAME_HINT", "host=a"), ("LOG", "info")] {
            assert!(one_env(name, value).connections.is_empty(), "{name}");
        }
    }

    #[test]
    fn literal_credentials() {
        let facts = analyse(
            &[
                env("DB_PASSWORD", "s3cret!"),
                env("GITHUB_TOKEN", "ghp_x"),
                env("DB_PASSWORD_FILE", "/run/secrets/pw"),
                env("API_TOKEN", ""),
                env("ADMIN_PASSWORD", "$(RAW_ADMIN_PASSWORD)"),
                EnvInfo { name: "X_PASSWORD".into(), value: None, from_secret: None, from_config_map: None },
            ],
            &[],
        );
        assert_eq!(facts.literal_credentials, ["DB_PASSWORD", "GITHUB_TOKEN"]);
    }

    #[test]
    fn multi_byte_text_is_safe() {
        let facts =
            analyse(&[env("PASSWÖRD_TÖKEN", "ß=ü://ä:ö@ü sslmode=ä")], &["Ω://é:è@x".into(), "pgsql://é:è@x".into()]);
        assert_eq!(facts.literal_credentials, Vec::<String>::new());
        assert!(facts.connections.iter().any(|c| c.url_password));
    }
}
