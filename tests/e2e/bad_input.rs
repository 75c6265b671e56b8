//! Runs every row of the bad-input catalogue in docs/bad-input.md.

use crate::harness::Env;
use crate::support::servers::Kind;

const SDD: &str =
    "a: []\nb: [a]\ngate: {needs: [b], manual: true}\ndone: {needs: [gate], virtual: true}\n";

/// Split a command line: whitespace-separated words, `""` for an empty word.
fn words(cmd: &str) -> Vec<String> {
    cmd.split_whitespace()
        .map(|w| {
            if w == "\"\"" {
                String::new()
            } else {
                w.to_string()
            }
        })
        .collect()
}

#[test]
fn every_row_of_the_bad_input_catalogue() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let doc = std::fs::read_to_string(root.join("docs/bad-input.md")).unwrap();
    let env = Env::new(Kind::Http, SDD);
    let t = env.start();
    env.tick(&t);
    env.report("release=1.0=a.1", "success").ok();
    let before = env.server.tags();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let hostport = env
        .server
        .url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let subst = |s: &str| {
        s.replace("$REMOTE", &env.server.url)
            .replace("$SHA", &env.sha)
            .replace("$ROOT", env.root.path().to_str().unwrap())
            .replace("$PORT", &port)
            .replace("$HOSTPORT", &hostport)
            .replace("$SDD", root.join("tests/sdd/invalid").to_str().unwrap())
            .replace("$REPO", root.to_str().unwrap())
    };
    let mut rows = 0;
    let mut failures = Vec::new();
    // The plain table only: the hostile section's rows are proved by their named tests.
    let plain = doc
        .split("## Hostile remotes and boundary values")
        .next()
        .unwrap();
    for line in plain
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| id"))
    {
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
        let [id, _area, case, command, exit, message] = cells[..] else {
            panic!("malformed catalogue row: {line}");
        };
        let command = subst(command.trim_matches('`'));
        let message = subst(&message[1..message.len() - 1]);
        let argv = words(&command);
        // Outside any repository: `--remote ""` must not find an `origin`.
        let out = env.run_cmd(env.cmd(&argv[0]).args(&argv[1..]));
        let want: i32 = exit.parse().unwrap();
        if out.code != want || !out.stderr.contains(&message) {
            failures.push(format!(
                "#{id} {case}: `{command}`\n  want exit {want} and `{message}`\n  got exit {}: {}",
                out.code,
                out.stderr.trim()
            ));
        }
        if out.code == 1 || out.stderr.contains("panicked") {
            failures.push(format!("#{id}: internal error or panic: {}", out.stderr));
        }
        assert!(
            !out.stderr.contains("hunter2") && !out.stderr.contains("s3cret"),
            "#{id} leaked a secret: {}",
            out.stderr
        );
        rows += 1;
    }
    assert!(
        failures.is_empty(),
        "{} of {rows} rows failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(rows >= 30, "the catalogue has {rows} rows");
    assert_eq!(env.server.tags(), before, "bad input changed the remote");
}
