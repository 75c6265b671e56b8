//! GitHub App credentials: konductor mints its own installation token (a JWT signed with
//! the App's key, exchanged at a fake GitHub API on loopback that checks it as GitHub
//! does) and pushes with it to a real smart-HTTP git server guarded by basic auth.

use std::process::Command;

use crate::harness::{Env, Out, SMALL_SDD};
use crate::support::github_api::{AppKey, FakeGitHubApi};
use crate::support::servers::{Kind, HTTP_PASS};

const APP_ID: &str = "123456";
const INSTALLATION: &str = "987654";

/// `konductor` with the App configured and no static token.
fn app_cmd(env: &Env, api: &str, app_id: &str, key_file: &std::path::Path) -> Command {
    let mut c = env.cmd("konductor");
    c.env_remove("KONDUCTOR_TOKEN")
        .env("KONDUCTOR_GITHUB_APP_ID", app_id)
        .env("KONDUCTOR_GITHUB_INSTALLATION_ID", INSTALLATION)
        .env("KONDUCTOR_GITHUB_APP_KEY_FILE", key_file)
        .env("KONDUCTOR_GITHUB_API", api);
    c
}

#[track_caller]
fn assert_no_secret(out: &Out, secrets: &[&str]) {
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        assert!(
            !out.stdout.contains(s) && !out.stderr.contains(s),
            "a credential leaked into the output: {out:?}"
        );
    }
}

fn key_lines(key: &AppKey) -> Vec<&str> {
    key.private_pem
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 20)
        .collect()
}

#[test]
fn github_app_token_is_minted_and_pushes_to_a_real_http_remote() {
    let env = Env::new(Kind::Http, SMALL_SDD);
    let key = AppKey::generate(env.root.path());
    let key_file = env.root.path().join("app-key.pem");
    std::fs::write(&key_file, &key.private_pem).unwrap();

    // The fake hands out the HTTP password as the installation token: the push succeeds
    // only with the token konductor minted.
    let api = FakeGitHubApi::start(APP_ID, INSTALLATION, &key.public_pem, HTTP_PASS);
    let out = env.run_cmd(app_cmd(&env, &api.base, APP_ID, &key_file).args([
        "start",
        "--sha",
        env.sha.as_str(),
    ]));
    let jwts = api.jwts.lock().unwrap().clone();
    let mut secrets: Vec<&str> = jwts.iter().map(String::as_str).collect();
    secrets.push(HTTP_PASS);
    secrets.extend(key_lines(&key));
    assert_no_secret(&out, &secrets);
    out.ok();
    assert_eq!(env.tags("1.0"), vec!["release=1.0".to_string()]);
    // One JWT, checked and accepted: the token is minted once per process.
    let seen = api.seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![(
            format!("/app/installations/{INSTALLATION}/access_tokens"),
            "ok".to_string()
        )]
    );

    // The control: an App whose token the git server does not accept gets exit 4, so the
    // push above really went through with the minted token.
    let other = FakeGitHubApi::start(
        APP_ID,
        INSTALLATION,
        &key.public_pem,
        "ghs_not-the-password",
    );
    let out = env.run_cmd(app_cmd(&env, &other.base, APP_ID, &key_file).args(["tick"]));
    assert_no_secret(&out, &["ghs_not-the-password"]);
    out.fails(4, "rejected the credentials");
}

#[test]
fn github_app_wrong_app_id_is_refused_with_exit_4_and_no_credential_shown() {
    let env = Env::new(Kind::Http, SMALL_SDD);
    let key = AppKey::generate(env.root.path());
    let key_file = env.root.path().join("app-key.pem");
    std::fs::write(&key_file, &key.private_pem).unwrap();
    let api = FakeGitHubApi::start(APP_ID, INSTALLATION, &key.public_pem, HTTP_PASS);

    let out = env.run_cmd(app_cmd(&env, &api.base, "111", &key_file).args([
        "start",
        "--sha",
        env.sha.as_str(),
    ]));
    let jwts = api.jwts.lock().unwrap().clone();
    assert_eq!(jwts.len(), 1, "{out:?}");
    let mut secrets: Vec<&str> = jwts.iter().map(String::as_str).collect();
    secrets.extend(key_lines(&key));
    assert_no_secret(&out, &secrets);
    let out = out.fails(4, "refused to mint an installation token for App `111`");
    assert!(out.stderr.contains("HTTP 401"), "{out:?}");
    assert!(env.tags("1.0").is_empty(), "nothing was written");

    // A key that is not the App's: the signature does not verify.
    let stranger = AppKey::generate(&env.root.path().join("..").canonicalize().unwrap());
    let stranger_file = env.root.path().join("stranger.pem");
    std::fs::write(&stranger_file, &stranger.private_pem).unwrap();
    let out = env.run_cmd(app_cmd(&env, &api.base, APP_ID, &stranger_file).args(["status"]));
    assert_no_secret(&out, &key_lines(&stranger));
    out.fails(4, "could not be decoded");
}

#[test]
fn github_app_bad_pem_is_exit_4_and_nothing_is_sent() {
    let env = Env::new(Kind::Http, SMALL_SDD);
    let api = FakeGitHubApi::start(APP_ID, INSTALLATION, "unused", HTTP_PASS);
    let bad = "-----BEGIN RSA PRIVATE KEY-----\nTm90QUtleVRoaXNJc05vdEFLZXlOb3RBS2V5\n-----END RSA PRIVATE KEY-----\n";
    let out = env.run_cmd(
        env.cmd("konductor")
            .env_remove("KONDUCTOR_TOKEN")
            .env("KONDUCTOR_GITHUB_APP_ID", APP_ID)
            .env("KONDUCTOR_GITHUB_INSTALLATION_ID", INSTALLATION)
            .env("KONDUCTOR_GITHUB_APP_KEY", bad)
            .env("KONDUCTOR_GITHUB_API", &api.base)
            .args(["status"]),
    );
    assert_no_secret(&out, &["Tm90QUtleVRoaXNJc05vdEFLZXlOb3RBS2V5"]);
    out.fails(4, "is not an RSA private key in PEM format");
    assert!(api.seen.lock().unwrap().is_empty());
}

#[test]
fn github_app_unreachable_api_is_exit_3() {
    let env = Env::new(Kind::Http, SMALL_SDD);
    let key = AppKey::generate(env.root.path());
    let key_file = env.root.path().join("app-key.pem");
    std::fs::write(&key_file, &key.private_pem).unwrap();
    // A loopback port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let api = format!("http://127.0.0.1:{port}");
    let out = env.run_cmd(app_cmd(&env, &api, APP_ID, &key_file).args(["status"]));
    assert_no_secret(&out, &key_lines(&key));
    out.fails(3, "cannot reach the GitHub API at");
}

#[test]
fn github_app_half_configured_is_exit_2() {
    let env = Env::new(Kind::Http, SMALL_SDD);
    let out = env.run_cmd(
        env.cmd("konductor")
            .env_remove("KONDUCTOR_TOKEN")
            .env("KONDUCTOR_GITHUB_APP_ID", APP_ID)
            .args(["status"]),
    );
    out.fails(2, "`KONDUCTOR_GITHUB_INSTALLATION_ID` is not set");
}
