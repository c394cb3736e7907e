//! The configuration's loading, precedence and refusals.

use super::file::parse_file;
use super::*;
use std::collections::BTreeMap;

fn load(file: Option<&str>, env: &[(&str, &str)], flags: Overrides) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let mut flags = flags;
    if let Some(text) = file {
        let path = dir.path().join("warden.toml");
        std::fs::write(&path, text).unwrap();
        flags.config_file = Some(path);
    }
    let env: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::load(&flags, |k| env.get(k).cloned()).map_err(|e| {
        // Make the messages independent of the temporary directory.
        ConfigError(e.0.replace(&dir.path().display().to_string(), "DIR"))
    })
}

#[test]
fn defaults_for_dev() {
    let c = load(
        None,
        &[],
        Overrides {
            dev: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(c.data_dir.ends_with(".warden"));
    assert_eq!(c.listen_http, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(c.public_url.as_str(), "http://localhost:8080/");
    assert_eq!(c.limits, Limits::default());
    assert_eq!(c.vuln.figures_every, Duration::from_secs(300));
    assert_eq!(c.log.format, LogFormat::Json);
}

#[test]
fn flags_override_env_which_overrides_file() {
    let file = "data_dir = \"/from/file\"\n[listen]\nhttp = \"127.0.0.1:1111\"\n[limits]\nper_source_rps = 5\n";
    let env = [
        ("WARDEN_LISTEN_HTTP", "127.0.0.1:2222"),
        ("WARDEN_DATA_DIR", "/from/env"),
    ];
    let c = load(Some(file), &env, Overrides::default()).unwrap();
    assert_eq!(c.data_dir, PathBuf::from("/from/env"));
    assert_eq!(c.listen_http.port(), 2222);
    assert_eq!(c.limits.per_source_rps, 5);
    let flags = Overrides {
        listen: Some("127.0.0.1:3333".into()),
        ..Default::default()
    };
    let c = load(Some(file), &env, flags).unwrap();
    assert_eq!(c.listen_http.port(), 3333);
}

#[test]
fn unknown_key_names_key_file_and_line() {
    let err = load(
        Some("data_dir = \"/x\"\n\n[limits]\nper_source_rsp = 5\n"),
        &[],
        Overrides::default(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "config file DIR/warden.toml line 4: unknown key `limits.per_source_rsp`"
    );
    let err = load(Some("colour = 1\n"), &[], Overrides::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "config file DIR/warden.toml line 1: unknown key `colour`"
    );
}

#[test]
fn vulnerability_slas_and_security_txt() {
    let c = load(
        Some("[vuln]\nrestart_clock_on_rerate = true\n[vuln.sla.default]\nhigh = \"5d\"\ninformational = \"180d\"\n[vuln.sla.internet]\ncritical = \"12h\"\nlow = \"none\"\n[security_txt]\ncontact = [\"mailto:s@example.com\"]\nexpires = \"2099-01-01T00:00:00Z\"\n"),
        &[],
        Overrides::default(),
    )
    .unwrap();
    use warden_vuln::Severity::{Critical, High, Informational, Low};
    let hours = |h: u64| Some(Duration::from_secs(h * 3600));
    assert!(c.vuln.sla.restart_clock_on_rerate);
    let default = c.vuln.sla.policy("default");
    assert_eq!(
        (
            default.limit(Critical),
            default.limit(High),
            default.limit(Informational)
        ),
        (hours(24), hours(120), hours(4320))
    );
    // A tier inherits the default tier's limits it does not set.
    let internet = c.vuln.sla.policy("internet");
    assert_eq!(
        (
            internet.limit(Critical),
            internet.limit(High),
            internet.limit(Low)
        ),
        (hours(12), hours(120), None)
    );
    assert_eq!(c.security_txt.unwrap().contact, ["mailto:s@example.com"]);
    let err = |text: &str| {
        load(Some(text), &[], Overrides::default())
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        err("[vuln.sla.default]\nsevere = \"1d\"\n"),
        "vuln.sla.default: unknown severity `severe`: expected critical, high, medium, low or informational"
    );
    assert_eq!(
        err("[vuln.sla.default]\nhigh = \"soon\"\n"),
        "invalid duration `soon` for `vuln.sla.default.high`: at least 1s, like 24h or 30d, or `none`"
    );
    assert_eq!(
        err("[vuln.sla.\"Internet Facing\"]\nhigh = \"1d\"\n"),
        "invalid SLA tier name `Internet Facing`: use lowercase letters, digits, '.', '_' and '-'"
    );
    assert_eq!(
        err("[vuln]\nmax_import_bytes = 10\n"),
        "invalid `vuln.max_import_bytes` 10: between 1024 and 4 GiB"
    );
    assert_eq!(
        err("[vuln]\nfigures_every = \"500ms\"\n"),
        "invalid duration `500ms` for `vuln.figures_every`: at least 1s, like 24h or 30d"
    );
    assert_eq!(
        err(
            "[security_txt]\ncontact = [\"security@example.com\"]\nexpires = \"2099-01-01T00:00:00Z\"\n"
        ),
        "invalid security_txt.contact `security@example.com`: use a mailto:, https:// or tel: URI"
    );
    assert_eq!(
        err("[security_txt]\ncontact = []\nexpires = \"2099-01-01T00:00:00Z\"\n"),
        "security_txt.contact needs at least one mailto:, https:// or tel: URI"
    );
    assert_eq!(
        err(
            "[security_txt]\ncontact = [\"mailto:s@example.com\"]\nexpires = \"2020-01-01T00:00:00Z\"\n"
        ),
        "security_txt.expires 2020-01-01T00:00:00.000Z has passed: readers ignore an expired security.txt (RFC 9116 2.5.5)"
    );
    assert_eq!(
        err("[security_txt]\ncontact = [\"mailto:s@example.com\"]\nexpires = \"next year\"\n"),
        "invalid security_txt.expires `next year`: use an RFC 3339 time, like 2027-06-30T00:00:00Z"
    );
    assert_eq!(
        err(
            "[security_txt]\ncontact = [\"mailto:s@example.com\"]\nexpires = \"2099-01-01T00:00:00Z\"\npolicy = \"http://example.com\"\n"
        ),
        "invalid security_txt.policy `http://example.com`: use an https:// URL"
    );
}

#[test]
fn wrong_type_names_key_file_and_line() {
    let err = load(
        Some("[limits]\nmax_body_bytes = \"big\"\n"),
        &[],
        Overrides::default(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "config file DIR/warden.toml line 2: key `limits.max_body_bytes`: invalid type: string \"big\", expected u64"
    );
}

#[test]
fn bad_environment_values_are_refused() {
    let err = load(
        None,
        &[("WARDEN_LIMITS_PER_SOURCE_RPS", "fast")],
        Overrides::default(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "environment variable WARDEN_LIMITS_PER_SOURCE_RPS: expected a whole number for `limits.per_source_rps`, got `fast`"
    );
    let err = load(
        None,
        &[("WARDEN_LISTEN_HTTP", "localhost")],
        Overrides::default(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid listen address `localhost` for `listen.http`: use HOST:PORT, like 127.0.0.1:8080"
    );
}

#[test]
fn missing_file_and_syntax_errors() {
    let flags = Overrides {
        config_file: Some("/nonexistent/w.toml".into()),
        ..Default::default()
    };
    let err = Config::load(&flags, |_| None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot read config file /nonexistent/w.toml: No such file or directory"
    );
    let err = load(Some("[limits\n"), &[], Overrides::default()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("config file DIR/warden.toml line 1: "),
        "{err}"
    );
}

#[test]
fn recordings_go_to_a_directory_or_a_bucket() {
    let dev = Overrides {
        dev: true,
        ..Overrides::default()
    };
    let c = load(
        None,
        &[("WARDEN_SSH_RECORDINGS", "s3://rec/warden")],
        dev.clone(),
    )
    .unwrap();
    assert_eq!(
        c.ssh.recordings,
        RecordingsLocation::Bucket {
            url: "s3://rec/warden".into(),
            spool: c.data_dir.join("recordings-spool"),
        }
    );
    let c = load(Some("[ssh]\nrecordings = \"/srv/rec\"\n"), &[], dev.clone()).unwrap();
    assert_eq!(c.ssh.recordings, RecordingsLocation::Dir("/srv/rec".into()));
    for bad in ["ftp://host/x", "s3://"] {
        let err = load(None, &[("WARDEN_SSH_RECORDINGS", bad)], dev.clone()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("invalid `ssh.recordings` `{bad}`: a directory or s3://BUCKET[/PREFIX]")
        );
    }
}

#[test]
fn every_key_can_be_set_from_the_environment() {
    for key in KEYS {
        let mut f = FileConfig::default();
        let value = match key {
            k if k.starts_with("limits.") && k.ends_with("timeout") => "5s",
            k if k.starts_with("audit.") => "5s",
            k if k.starts_with("limits.") => "7",
            "policy.starter" => "false",
            "ssh.idle_timeout" | "ssh.max_session" => "5s",
            _ => "x",
        };
        f.set(key, value, "test").unwrap();
    }
    assert_eq!(
        env_var("limits.per_source_rps"),
        "WARDEN_LIMITS_PER_SOURCE_RPS"
    );
}

proptest::proptest! {
    #[test]
    fn any_file_text_parses_or_fails_with_one_line(text in "\\PC{0,200}") {
        if let Err(e) = parse_file(Path::new("w.toml"), &text) {
            proptest::prop_assert!(e.to_string().starts_with("config file w.toml"));
        }
    }

    #[test]
    fn any_environment_value_is_taken_or_refused_with_the_variable(value in "\\PC{0,40}") {
        for key in KEYS {
            let mut f = FileConfig::default();
            if let Err(e) = f.set(key, &value, "environment variable X") {
                proptest::prop_assert!(e.to_string().starts_with("environment variable X: "));
            }
        }
    }
}

#[test]
fn compliance_limits_and_review_schedules_are_read_and_bad_ones_refused() {
    let dev = Overrides {
        dev: true,
        ..Default::default()
    };
    let c = load(
        Some(
            "[compliance]\ndeprovision_within = \"15m\"\nreview_every = \"30d\"\n\
             [[compliance.review_schedule]]\nscope = \"groups:web,ops\"\nevery = \"92d\"\nreviewer = \"owner\"\n",
        ),
        &[],
        dev.clone(),
    )
    .unwrap();
    assert_eq!(c.compliance.deprovision_within, 15 * 60 * 1000);
    assert_eq!(c.compliance.review_every, 30 * 24 * 3600 * 1000);
    assert_eq!(c.compliance_monitor_every, Duration::from_secs(3600));
    let s = &c.review_schedules[0];
    assert_eq!(s.scope.as_text(), "groups:ops,web");
    assert_eq!(s.due, Duration::from_secs(14 * 24 * 3600));
    assert!(!s.auto_revoke);
    for (text, want) in [
        (
            "[compliance]\ngrant_grace = \"soon\"\n",
            "invalid duration `soon` for `compliance.grant_grace`: use a number and a unit, like 1s or 365d",
        ),
        (
            "[[compliance.review_schedule]]\nscope = \"teams:x\"\nevery = \"1d\"\nreviewer = \"owner\"\n",
            "`compliance.review_schedule` 1: invalid review scope `teams:x`: use groups:*, groups:NAME,NAME, tokens:* or tokens:ROLE,ROLE",
        ),
        (
            "[[compliance.review_schedule]]\nscope = \"groups:*\"\nevery = \"0s\"\nreviewer = \"owner\"\n",
            "invalid duration `0s` for `compliance.review_schedule.every`: use a number and a unit, like 1s or 365d",
        ),
    ] {
        let err = load(Some(text), &[], dev.clone()).unwrap_err().to_string();
        assert_eq!(err, want, "{text}");
    }
}
