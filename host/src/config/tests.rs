use super::*;

fn flags() -> Overrides {
    Overrides::default()
}

#[test]
fn defaults_serve_out_of_the_box() {
    let config = Config::load(&flags()).unwrap();
    assert_eq!(config.listen, DEFAULT_LISTEN);
    assert_eq!(config.routes.len(), 1);
    assert_eq!(config.routes[0].pattern, Pattern::parse("*").unwrap());
    assert_eq!(
        config.clusters[0].endpoints,
        vec![DEFAULT_UPSTREAM.to_owned()]
    );
    assert_eq!(config.body_mode, BodyMode::Auto);
}

#[test]
fn upstream_flag_is_a_catch_all_route() {
    let overrides = Overrides {
        upstream: Some("127.0.0.1:9".into()),
        ..flags()
    };
    let config = Config::load(&overrides).unwrap();
    assert_eq!(
        config.clusters[config.routes[0].cluster].endpoints,
        ["127.0.0.1:9"]
    );
}

#[test]
fn file_routes_and_clusters_are_read_and_flags_win() {
    let text = r#"
        listen = "127.0.0.1:7000"
        body_mode = "message"
        [clusters.a]
        endpoints = ["127.0.0.1:1", "localhost:2"]
        connections_per_endpoint = 3
        balancing = "power_of_two_choices"
        [[routes]]
        match = "/pkg.Svc/*"
        cluster = "a"
        [[routes]]
        match = "*"
        cluster = "a"
        [limits]
        max_message_bytes = 1024
        plugin_instances = 300
    "#;
    let overrides = Overrides {
        listen: Some("127.0.0.1:7001".into()),
        routes: vec!["*=127.0.0.1:3".into()],
        ..flags()
    };
    let config = Config::from_toml(text, Path::new("x.toml"), &overrides).unwrap();
    assert_eq!(config.listen, "127.0.0.1:7001");
    assert_eq!(config.body_mode, BodyMode::Message);
    assert_eq!(config.limits.max_message_bytes, 1024);
    assert_eq!(config.limits.plugin_instances, 300);
    assert_eq!(config.clusters[0].connections_per_endpoint, 3);
    assert_eq!(config.clusters[0].balancing, Balancing::PowerOfTwoChoices);
    assert_eq!(config.routes.len(), 2, "the flag's `*` replaced the file's");
    let star = config
        .routes
        .iter()
        .find(|r| r.pattern == Pattern::parse("*").unwrap())
        .unwrap();
    assert_eq!(config.clusters[star.cluster].endpoints, ["127.0.0.1:3"]);
}

#[test]
fn unknown_key_names_key_and_line() {
    let err = Config::from_toml(
        "listen = \"127.0.0.1:1\"\nlsiten = 3\n",
        Path::new("x.toml"),
        &flags(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("lsiten"), "{err}");
    assert!(err.contains("line 2"), "{err}");
}

#[test]
fn bad_values_name_their_key() {
    let cases = [
        ("listen = \"nope\"", "listen"),
        (
            "[[routes]]\nmatch = \"*\"\ncluster = \"missing\"",
            "routes[0].cluster",
        ),
        (
            "[[routes]]\nmatch = \"/a/*b\"\ncluster = \"x\"\n[clusters.x]\nendpoints=[\"h:1\"]",
            "routes[0].match",
        ),
        ("[clusters.x]\nendpoints = []", "clusters.x.endpoints"),
        (
            "[clusters.x]\nendpoints = [\"h:99999\"]",
            "clusters.x.endpoints[0]",
        ),
        (
            "[clusters.x]\nendpoints = [\"h:1\"]\nconnections_per_endpoint = 0",
            "clusters.x.connections_per_endpoint",
        ),
        (
            "[limits]\nmax_message_bytes = 0",
            "limits.max_message_bytes",
        ),
        ("[limits]\nplugin_instances = 0", "limits.plugin_instances"),
        (
            "[limits]\nplugin_instances = 20000",
            "limits.plugin_instances",
        ),
    ];
    for (text, key) in cases {
        let err = Config::from_toml(text, Path::new("x.toml"), &flags())
            .unwrap_err()
            .to_string();
        assert!(err.contains(key), "{text:?} gave {err}");
    }
}

#[test]
fn missing_file_is_named() {
    let overrides = Overrides {
        config: Some("/nonexistent/sluice.toml".into()),
        ..flags()
    };
    let err = Config::load(&overrides).unwrap_err().to_string();
    assert!(err.contains("/nonexistent/sluice.toml"), "{err}");
}

#[test]
fn route_flag_syntax_is_checked() {
    for bad in ["nothing", "*=", "*=host", "/a/b=h:1,"] {
        let overrides = Overrides {
            routes: vec![bad.into()],
            ..flags()
        };
        assert!(Config::load(&overrides).is_err(), "{bad} accepted");
    }
}

#[test]
fn plugin_policies_have_defaults_and_overrides() {
    let text = r#"
        [plugin_defaults]
        hook_deadline_ms = 20
        [plugin.10-auth]
        on_error = "fail-open"
        memory_bytes = 2097152
        max_call_state_bytes = 16
    "#;
    let config = Config::from_toml(text, Path::new("x.toml"), &flags()).unwrap();
    let policies = &config.plugin_policies;
    assert_eq!(policies.defaults.hook_deadline, Duration::from_millis(20));
    let auth = policies.for_plugin("10-auth");
    assert_eq!(auth.on_error, FailurePolicy::FailOpen);
    assert_eq!(auth.memory_bytes, 2 * 1024 * 1024);
    assert_eq!(auth.max_call_state_bytes, 16);
    assert_eq!(policies.defaults.max_call_state_bytes, 64 * 1024);
    assert_eq!(
        auth.hook_deadline,
        Duration::from_millis(20),
        "inherits the defaults"
    );
    assert_eq!(
        policies.for_plugin("other").on_error,
        FailurePolicy::FailClosed
    );
    let err = Config::from_toml(
        "[plugin.x]\non_error = \"maybe\"",
        Path::new("x.toml"),
        &flags(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("on_error"), "{err}");
    let err = Config::from_toml(
        "[plugin_defaults]\nmax_call_state_bytes = 268435457",
        Path::new("x.toml"),
        &flags(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("max_call_state_bytes"), "{err}");
}
