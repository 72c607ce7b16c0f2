//! A call's method name (`/package.Service/Method`), shared without copying: it is the
//! request URI's own path, whose bytes every clone shares.

use http::Uri;
use http::uri::PathAndQuery;
use std::fmt;

/// The method a call names: the path of its request URI.
#[derive(Clone, Debug)]
pub struct MethodName(PathAndQuery);

impl MethodName {
    /// The method `uri` names (`/` when it has no path).
    pub fn of(uri: &Uri) -> MethodName {
        MethodName(
            uri.path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/")),
        )
    }

    /// The name, as the client sent it (without a query, which gRPC does not use).
    pub fn as_str(&self) -> &str {
        self.0.path()
    }

    /// The request URI's path and query it was read from (a cheap clone).
    pub fn path_and_query(&self) -> &PathAndQuery {
        &self.0
    }
}

impl std::ops::Deref for MethodName {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for MethodName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::MethodName;

    #[test]
    fn the_name_is_the_path_without_the_query() {
        let uri: http::Uri = "http://host/pkg.Svc/Call?x=1".parse().unwrap();
        assert_eq!(MethodName::of(&uri).as_str(), "/pkg.Svc/Call");
        let bare: http::Uri = "http://host".parse().unwrap();
        assert_eq!(MethodName::of(&bare).to_string(), "/");
    }
}
