//! `hello-rewrite`: a typed filter. Decodes `helloworld.HelloRequest` with prost on
//! `/helloworld.Greeter/*` and upper-cases `name` before forwarding.

use sluice_sdk::{CallInfo, Code, Filter, Interest, Status, Verdict};
use std::rc::Rc;

/// `helloworld.HelloRequest`, declared by hand (no build step needed for one field).
#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloRequest {
    /// The name to greet.
    #[prost(string, tag = "1")]
    pub name: String,
}

/// Per-call state (none).
#[derive(Debug)]
pub struct HelloRewrite;

impl Filter for HelloRewrite {
    type Settings = ();

    fn configure(_config: &str) -> Result<((), Interest), String> {
        Ok((
            (),
            Interest::new()
                .request_messages()
                .methods(["/helloworld.Greeter/*"])
                .stateless(),
        ))
    }

    fn new(_settings: Rc<()>, _info: &CallInfo) -> Self {
        HelloRewrite
    }

    fn on_request_message(&mut self, message: &[u8]) -> Verdict {
        let mut request: HelloRequest = match sluice_sdk::decode(message) {
            Ok(request) => request,
            Err(err) => {
                return Verdict::Reject(Status::new(
                    Code::InvalidArgument,
                    format!("hello-rewrite: not a HelloRequest: {err}"),
                ));
            }
        };
        let upper = request.name.to_uppercase();
        if upper == request.name {
            return Verdict::Forward;
        }
        request.name = upper;
        sluice_sdk::counter_add("rewritten", 1);
        Verdict::Modify(sluice_sdk::encode(&request))
    }
}

sluice_sdk::register!(HelloRewrite);

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_sdk::testing;

    #[test]
    fn upper_cases_the_name() {
        let mut call = testing::call::<HelloRewrite>("", "/helloworld.Greeter/SayHello").unwrap();
        let message = sluice_sdk::encode(&HelloRequest { name: "ada".into() });
        let Verdict::Modify(out) = call.request_message(&message) else {
            panic!("not modified")
        };
        assert_eq!(
            sluice_sdk::decode::<HelloRequest>(&out).unwrap().name,
            "ADA"
        );
        let already = sluice_sdk::encode(&HelloRequest { name: "ADA".into() });
        assert_eq!(call.request_message(&already), Verdict::Forward);
        assert!(matches!(
            call.request_message(&[0x0a, 0x09]),
            Verdict::Reject(_)
        ));
        assert_eq!(call.interest().methods, ["/helloworld.Greeter/*"]);
    }
}
