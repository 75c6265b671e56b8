use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use konductor_core::error::Error;
use konductor_core::ops::DEFAULT_HORIZON;
use konductor_core::store::{Identity, Remote};
use konductor_serve::{repo_name, Config, RepoConfig, DEFAULT_MAX_BODY};

/// Serve the live board, webhooks that tick trains at once, the API and metrics
///
/// A long-running, stateless server: every answer is read from the remotes' tags. Webhooks
/// (GitHub, GitLab, Gitea/Forgejo) are checked with the secret in
/// $KONDUCTOR_WEBHOOK_SECRET; a safety-net tick runs every `--tick-every` seconds. Several
/// servers and cron ticks may run at once. See docs/operations.md, "konductor serve".
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  # one repository\n  KONDUCTOR_WEBHOOK_SECRET=… konductor serve --listen 0.0.0.0:8080 --remote https://github.com/acme/app.git\n  # two, named\n  konductor serve --listen :8080 --remote app=https://github.com/acme/app.git --remote infra=git@github.com:acme/infra.git"
)]
pub struct ServeArgs {
    /// Where to listen, `HOST:PORT` (`:PORT` for every address; port 0 picks a free one)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// A repository to follow: `URL`, or `NAME=URL` (repeat for several)
    ///
    /// Webhooks are routed by the repository in their payload: its `owner/name` is
    /// matched to the URL's last two path segments, or to `NAME`.
    #[arg(
        long = "remote",
        value_name = "[NAME=]URL",
        env = "KONDUCTOR_REMOTE",
        required = true
    )]
    pub remotes: Vec<String>,
    /// Seconds between two safety-net ticks of every running train
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub tick_every: u64,
    /// How many of the newest train numbers to follow
    #[arg(long, value_name = "N", default_value_t = DEFAULT_HORIZON)]
    pub horizon: u32,
    /// The largest webhook body accepted, in bytes (larger ones get 413)
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_BODY)]
    pub max_body: usize,
    /// Send notifications after each tick: `webhook+https://…`,
    /// `slack+https://hooks.slack.com/…` or `github` (repeatable; in `KONDUCTOR_NOTIFY`,
    /// separated by spaces)
    ///
    /// As `konductor tick --notify`: each event is delivered once per target, whatever
    /// the number of servers and cron ticks. See docs/notifications.md.
    #[arg(
        long = "notify",
        value_name = "SPEC",
        env = "KONDUCTOR_NOTIFY",
        value_delimiter = ' ',
        hide_env_values = true
    )]
    pub notify: Vec<String>,
    /// Sign every tag written with this SSH private key
    #[arg(
        long,
        env = "KONDUCTOR_SIGNING_KEY",
        value_name = "FILE",
        help_heading = "Signing"
    )]
    pub signing_key: Option<PathBuf>,
    /// Trust only tags signed by a key of this allowed-signers file
    #[arg(
        long,
        env = "KONDUCTOR_ALLOWED_SIGNERS",
        value_name = "FILE",
        help_heading = "Signing"
    )]
    pub allowed_signers: Option<PathBuf>,
}

/// `NAME=URL` or `URL`: a name is given when the part before the first `=` has no `/`,
/// `:` or `.` at its start (a path or URL always has one of those first).
fn repo(spec: &str) -> anyhow::Result<RepoConfig> {
    let (name, url) = match spec.split_once('=') {
        Some((n, u))
            if !n.is_empty()
                && !n.starts_with(['/', '.', '~'])
                && !n.contains(':')
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c)) =>
        {
            (Some(n.to_string()), u)
        }
        _ => (None, spec),
    };
    let remote = Remote::parse(url)?;
    Ok(RepoConfig {
        name: name.unwrap_or_else(|| repo_name(&remote.url)),
        remote,
        notifier: None,
    })
}

pub fn cmd_serve(args: ServeArgs) -> anyhow::Result<i32> {
    if args.tick_every == 0 {
        return Err(Error::input("`--tick-every` must be at least 1 second").into());
    }
    let mut repos = args
        .remotes
        .iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| repo(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // Every notification problem is bad input, found before the server starts; the
    // `github` target's repository comes from each remote's URL.
    for r in &mut repos {
        r.notifier =
            konductor_core::ops::notify::Notifier::from_specs(&args.notify, &r.remote.url)?;
    }
    let listen = match args.listen.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => args.listen.clone(),
    };
    let secret = std::env::var("KONDUCTOR_WEBHOOK_SECRET")
        .ok()
        .filter(|s| !s.is_empty());
    konductor_serve::run(Config {
        listen,
        repos,
        signing_key: args.signing_key,
        allowed_signers: args.allowed_signers,
        tick_every: Duration::from_secs(args.tick_every),
        horizon: args.horizon.max(1),
        webhook_secret: secret,
        max_body: args.max_body,
        identity: Identity::from_env("konductor"),
    })?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::repo;

    #[test]
    fn remote_names_are_told_from_urls() {
        let r = repo("app=https://example.invalid/acme/app.git").unwrap();
        assert_eq!(
            (r.name.as_str(), r.remote.url.as_str()),
            ("app", "https://example.invalid/acme/app.git")
        );
        let r = repo("https://example.invalid/acme/app.git").unwrap();
        assert_eq!(r.name, "acme/app");
        let r = repo("git://example.invalid/srv/team/app.git").unwrap();
        assert_eq!(r.name, "team/app");
        let r = repo("acme/app=git://example.invalid/a=b/app.git").unwrap();
        assert_eq!(
            (r.name.as_str(), r.remote.url.as_str()),
            ("acme/app", "git://example.invalid/a=b/app.git")
        );
    }
}
