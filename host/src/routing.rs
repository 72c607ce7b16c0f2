//! Method routing: which upstream cluster serves a `/package.Service/Method`.
//! Precedence: exact method, then the longest matching prefix glob
//! (`/package.Service/*` beats `/package.*`), then `*`.

use std::collections::HashMap;

/// A method pattern: `*`, an exact method, or a prefix ending in `*`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// `*`: every method.
    Any,
    /// `/pkg.Svc/Method`.
    Exact(String),
    /// `/pkg.Svc/*` or `/pkg.*`: the text before the `*`.
    Prefix(String),
}

/// Why a pattern was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("bad method pattern {pattern:?}: {why}")]
pub struct PatternError {
    pattern: String,
    why: &'static str,
}

impl Pattern {
    /// Parses a pattern (`*`, `/pkg.Svc/Method`, `/pkg.Svc/*`, `/pkg.*`).
    pub fn parse(text: &str) -> Result<Pattern, PatternError> {
        let error = |why| PatternError {
            pattern: text.to_owned(),
            why,
        };
        if text == "*" {
            return Ok(Pattern::Any);
        }
        if !text.starts_with('/') {
            return Err(error("must be `*` or start with `/`"));
        }
        match text.find('*') {
            None => Ok(Pattern::Exact(text.to_owned())),
            Some(at) if at == text.len() - 1 => Ok(Pattern::Prefix(text[..at].to_owned())),
            Some(_) => Err(error("`*` may only stand at the end")),
        }
    }

    /// Whether `method` matches.
    pub fn matches(&self, method: &str) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Exact(exact) => exact == method,
            Pattern::Prefix(prefix) => method.starts_with(prefix.as_str()),
        }
    }
}

/// A routing table compiled from `(pattern, target)` pairs.
#[derive(Debug, Clone)]
pub struct RouteTable<T> {
    exact: HashMap<String, T>,
    /// Longest prefix first.
    prefixes: Vec<(String, T)>,
    any: Option<T>,
}

impl<T: Clone> RouteTable<T> {
    /// Builds the table; for a pattern given twice, the later entry wins.
    pub fn new(routes: impl IntoIterator<Item = (Pattern, T)>) -> RouteTable<T> {
        let mut table = RouteTable {
            exact: HashMap::new(),
            prefixes: Vec::new(),
            any: None,
        };
        for (pattern, target) in routes {
            match pattern {
                Pattern::Any => table.any = Some(target),
                Pattern::Exact(method) => {
                    table.exact.insert(method, target);
                }
                Pattern::Prefix(prefix) => {
                    table.prefixes.retain(|(p, _)| *p != prefix);
                    table.prefixes.push((prefix, target));
                }
            }
        }
        // Stable sort keeps insertion order among equal lengths.
        table
            .prefixes
            .sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        table
    }

    /// The target for `method`, or `None` when nothing matches.
    pub fn lookup(&self, method: &str) -> Option<&T> {
        if let Some(target) = self.exact.get(method) {
            return Some(target);
        }
        self.prefixes
            .iter()
            .find(|(prefix, _)| method.starts_with(prefix.as_str()))
            .map(|(_, target)| target)
            .or(self.any.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(routes: &[(&str, u32)]) -> RouteTable<u32> {
        RouteTable::new(routes.iter().map(|(p, t)| (Pattern::parse(p).unwrap(), *t)))
    }

    #[test]
    fn precedence_is_exact_then_longest_prefix_then_any() {
        let t = table(&[
            ("*", 0),
            ("/pkg.*", 1),
            ("/pkg.Svc/*", 2),
            ("/pkg.Svc/Get", 3),
        ]);
        assert_eq!(t.lookup("/pkg.Svc/Get"), Some(&3));
        assert_eq!(t.lookup("/pkg.Svc/Put"), Some(&2));
        assert_eq!(t.lookup("/pkg.Other/Put"), Some(&1));
        assert_eq!(t.lookup("/zzz.Svc/Put"), Some(&0));
    }

    #[test]
    fn no_match_without_default() {
        let t = table(&[("/pkg.Svc/*", 2)]);
        assert_eq!(t.lookup("/other.Svc/X"), None);
    }

    #[test]
    fn later_duplicate_wins() {
        let t = table(&[("/a/*", 1), ("/a/*", 2), ("*", 3), ("*", 4)]);
        assert_eq!(t.lookup("/a/b"), Some(&2));
        assert_eq!(t.lookup("/b/b"), Some(&4));
    }

    #[test]
    fn pattern_syntax() {
        assert_eq!(Pattern::parse("*"), Ok(Pattern::Any));
        assert_eq!(Pattern::parse("/a/b"), Ok(Pattern::Exact("/a/b".into())));
        assert_eq!(Pattern::parse("/a/*"), Ok(Pattern::Prefix("/a/".into())));
        assert!(Pattern::parse("a/b").is_err());
        assert!(Pattern::parse("/a*/b").is_err());
        assert!(Pattern::parse("/a/**").is_err());
        assert!(Pattern::parse("/a/*").unwrap().matches("/a/b"));
    }
}
