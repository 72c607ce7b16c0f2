//! `method-acl`: `allow = [globs]` and/or `deny = [globs]`. A method matching a `deny`
//! glob, or (when `allow` is given) matching no `allow` glob, is rejected
//! `PERMISSION_DENIED` before anything reaches the upstream. `*` in a glob matches any
//! run of characters.

use serde::Deserialize;
use sluice_sdk::{CallInfo, Code, Filter, Headers, Interest, Status};
use std::rc::Rc;

/// The plugin's config file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    deny: Vec<String>,
}

impl Settings {
    /// Why `method` is denied, if it is.
    fn denial(&self, method: &str) -> Option<String> {
        if let Some(glob) = self.deny.iter().find(|g| glob_match(g, method)) {
            return Some(format!("method-acl: {method} is denied by {glob:?}"));
        }
        if !self.allow.is_empty() && !self.allow.iter().any(|g| glob_match(g, method)) {
            return Some(format!("method-acl: {method} is not in the allow list"));
        }
        None
    }
}

/// Per-call state: the decision made at the start of the call.
#[derive(Debug)]
pub struct MethodAcl {
    denial: Option<String>,
}

impl Filter for MethodAcl {
    type Settings = Settings;

    fn configure(config: &str) -> Result<(Settings, Interest), String> {
        let settings: Settings =
            toml::from_str(config).map_err(|e| format!("method-acl config: {e}"))?;
        if settings.allow.is_empty() && settings.deny.is_empty() {
            return Err("method-acl config: give `allow` and/or `deny`".into());
        }
        Ok((settings, Interest::new().request_headers().stateless()))
    }

    fn new(settings: Rc<Settings>, info: &CallInfo) -> Self {
        MethodAcl {
            denial: settings.denial(info.method()),
        }
    }

    fn on_request_headers(&mut self, _headers: &mut Headers) -> Result<(), Status> {
        match self.denial.take() {
            Some(reason) => {
                sluice_sdk::counter_add("denied", 1);
                Err(Status::new(Code::PermissionDenied, reason))
            }
            None => Ok(()),
        }
    }
}

/// Matches `text` against `glob`, where `*` matches any run of characters. Allocates
/// nothing: it runs at the start of every call.
fn glob_match(glob: &str, text: &str) -> bool {
    let mut parts = glob.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let Some(last) = parts.next_back() else {
        return rest.is_empty();
    };
    for part in parts {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

sluice_sdk::register!(MethodAcl);

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_sdk::testing::{self, HeadersOutcome};

    fn outcome(config: &str, method: &str) -> HeadersOutcome {
        testing::call::<MethodAcl>(config, method)
            .unwrap()
            .request_headers(&[])
    }

    #[test]
    fn globs() {
        assert!(glob_match("*", "/a.B/C"));
        assert!(glob_match("/a.B/*", "/a.B/C"));
        assert!(!glob_match("/a.B/*", "/a.C/C"));
        assert!(glob_match("/*.Admin/*", "/x.Admin/Drop"));
        assert!(glob_match("/a.B/C", "/a.B/C"));
        assert!(!glob_match("/a.B/C", "/a.B/CD"));
        assert!(glob_match("/a*b*c", "/axxbyyc"));
        assert!(!glob_match("/a*b*c", "/axxcyyb"));
        assert!(
            !glob_match("/a*bc*bc", "/abc"),
            "the last part may not reuse the middle's"
        );
    }

    #[test]
    fn deny_wins_and_allow_limits() {
        let config = "allow = [\"/shop.*\"]\ndeny = [\"/shop.Admin/*\"]";
        assert_eq!(outcome(config, "/shop.Cart/Add"), HeadersOutcome::Continue);
        for method in ["/shop.Admin/Wipe", "/bank.Vault/Open"] {
            match outcome(config, method) {
                HeadersOutcome::Rejected(status) => assert_eq!(status.code, Code::PermissionDenied),
                other => panic!("{method}: {other:?}"),
            }
        }
    }

    #[test]
    fn empty_config_is_refused() {
        assert!(testing::call::<MethodAcl>("", "/a.B/C").is_err());
    }
}
