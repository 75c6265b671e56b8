//! Tag filters of the CI systems Konductor drives: the filter that runs a step's job on its
//! trigger tags only (what `konductor ci-filter` prints), and evaluators of each system's
//! filter semantics (what `konductor doctor` checks configurations with).
//!
//! - CircleCI: `filters.tags.only` / `ignore`; a value in slashes is a regular expression
//!   that must match the entire tag, any other value must equal it. A job with neither
//!   `only` nor `ignore` runs for no tag.
//! - GitHub Actions: `on.push.tags` / `tags-ignore` take filter patterns (GitHub's "filter
//!   pattern cheat sheet"): `*` any characters but `/`, `**` any characters, `?` zero or
//!   one of the preceding character, `+` one or more of the preceding character, `[…]` one
//!   character of a set or range, `\` escapes, and `!` at the start negates. Later patterns
//!   override earlier ones; a pattern must match the whole tag name.
//! - Argo Events: a `body.ref` data filter holds Go regular expressions, matched unanchored
//!   against `refs/tags/<tag>`.

use std::fmt;

use regex::{Regex, RegexBuilder};

use crate::model::tag::validate_step_name;

/// A CI system `konductor ci-filter` prints filters for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CiSystem {
    /// CircleCI workflows (`filters.tags.only`).
    Circleci,
    /// GitHub Actions workflows (`on.push.tags`).
    Github,
}

impl fmt::Display for CiSystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CiSystem::Circleci => "circleci",
            CiSystem::Github => "github",
        })
    }
}

/// A filter that cannot be evaluated: an invalid pattern or regular expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} `{pattern}`: {reason}")]
pub struct FilterError {
    /// What kind of filter (`GitHub filter pattern`, `regular expression`, …).
    pub what: &'static str,
    /// The offending filter.
    pub pattern: String,
    /// What is wrong with it.
    pub reason: String,
}

impl FilterError {
    fn new(what: &'static str, pattern: &str, reason: impl Into<String>) -> Self {
        Self {
            what,
            pattern: pattern.escape_debug().collect(),
            reason: reason.into(),
        }
    }
}

// ------------------------------------------------------------------ generated filters

/// Escape the characters that are special in a regular expression outside a bracket
/// expression (the same in Java, Go and Rust). A valid step name needs none of it, so the
/// printed filter stays the readable `unit-tests`, not `unit\-tests`.
fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$#&~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn check_step(step: &str) -> Result<(), FilterError> {
    validate_step_name(step).map_err(|r| FilterError::new("step name", step, r))
}

/// The CircleCI `filters.tags.only` value that selects exactly the trigger tags of `step`:
/// `/^release=\d+\.\d+=<step>\.\d+$/`.
pub fn circleci_trigger_filter(step: &str) -> Result<String, FilterError> {
    check_step(step)?;
    Ok(format!(r"/^release=\d+\.\d+={}\.\d+$/", regex_escape(step)))
}

/// The GitHub `on.push.tags` patterns that select exactly the trigger tags of `step`: the
/// trigger pattern, then a negation of every tag with one more `=` (the state tags), which
/// the first already rejects; it keeps the filter safe should someone loosen the first.
pub fn github_trigger_patterns(step: &str) -> Result<[String; 2], FilterError> {
    check_step(step)?;
    // Step names hold only letters, digits, `-` and `_`: nothing GitHub patterns treat
    // specially, so the name is its own pattern.
    Ok([
        format!("release=[0-9]+.[0-9]+={step}.[0-9]+"),
        format!("!release=*={step}.*=*"),
    ])
}

/// The filter lines `konductor ci-filter` prints: one for CircleCI, two for GitHub.
pub fn trigger_filter_lines(ci: CiSystem, step: &str) -> Result<Vec<String>, FilterError> {
    Ok(match ci {
        CiSystem::Circleci => vec![circleci_trigger_filter(step)?],
        CiSystem::Github => github_trigger_patterns(step)?.to_vec(),
    })
}

/// A configuration snippet, ready to paste: the job's `filters:` for CircleCI, the
/// workflow's `on:` for GitHub.
pub fn trigger_filter_yaml(ci: CiSystem, step: &str) -> Result<String, FilterError> {
    Ok(match ci {
        CiSystem::Circleci => format!(
            "filters:\n  tags:\n    only: {}\n  branches:\n    ignore: /.*/\n",
            circleci_trigger_filter(step)?
        ),
        CiSystem::Github => {
            let [trigger, not_state] = github_trigger_patterns(step)?;
            format!("on:\n  push:\n    tags:\n      - \"{trigger}\"\n      - \"{not_state}\"\n")
        }
    })
}

// ------------------------------------------------------------------ regular expressions

/// Compile a CI system's regular expression. Java (CircleCI) and Go (Argo Events) give
/// `\d`, `\w` and `\s` their ASCII meaning; so does this, unless the expression can only
/// be compiled with Unicode on (e.g. it holds a `.`, which must match a whole character).
fn compile_regex(what: &'static str, source: &str, wrapped: &str) -> Result<Regex, FilterError> {
    RegexBuilder::new(wrapped)
        .unicode(false)
        .build()
        .or_else(|_| RegexBuilder::new(wrapped).build())
        .map_err(|e| {
            let msg = e.to_string();
            let reason = msg.lines().last().unwrap_or(&msg).trim();
            let reason = reason.strip_prefix("error: ").unwrap_or(reason);
            FilterError::new(what, source, reason)
        })
}

// ------------------------------------------------------------------ CircleCI

/// One CircleCI tag specifier: `/regex/` (must match the entire tag) or an exact name.
#[derive(Debug, Clone)]
pub enum CircleciSpec {
    /// `/regex/`, compiled anchored at both ends.
    Regex {
        /// The specifier as written, slashes included.
        source: String,
        /// The anchored expression.
        regex: Regex,
    },
    /// A plain string: the tag must equal it.
    Exact(String),
}

impl CircleciSpec {
    /// Parse one specifier.
    pub fn parse(spec: &str) -> Result<Self, FilterError> {
        match spec
            .strip_prefix('/')
            .and_then(|s| s.strip_suffix('/'))
            .filter(|_| spec.len() >= 2)
        {
            Some(inner) => Ok(CircleciSpec::Regex {
                source: spec.to_string(),
                regex: compile_regex("regular expression", spec, &format!("^(?:{inner})$"))?,
            }),
            None => Ok(CircleciSpec::Exact(spec.to_string())),
        }
    }

    /// Whether `tag` matches.
    pub fn matches(&self, tag: &str) -> bool {
        match self {
            CircleciSpec::Regex { regex, .. } => regex.is_match(tag),
            CircleciSpec::Exact(s) => s == tag,
        }
    }

    /// The specifier as written.
    pub fn source(&self) -> &str {
        match self {
            CircleciSpec::Regex { source, .. } => source,
            CircleciSpec::Exact(s) => s,
        }
    }
}

/// A CircleCI job's `filters.tags`: the job runs for a tag that matches some `only` (when
/// `only` is given) and no `ignore`. With neither, it runs for no tag.
#[derive(Debug, Clone)]
pub struct CircleciFilter {
    only: Option<Vec<CircleciSpec>>,
    ignore: Vec<CircleciSpec>,
}

impl CircleciFilter {
    /// A filter from its `only` (`None` when absent) and `ignore` lists.
    pub fn new<S: AsRef<str>>(only: Option<&[S]>, ignore: &[S]) -> Result<Self, FilterError> {
        let parse = |l: &[S]| -> Result<Vec<CircleciSpec>, FilterError> {
            l.iter().map(|s| CircleciSpec::parse(s.as_ref())).collect()
        };
        Ok(Self {
            only: only.map(parse).transpose()?,
            ignore: parse(ignore)?,
        })
    }

    /// Whether a job with this filter runs for `tag`.
    pub fn matches(&self, tag: &str) -> bool {
        if self.only.is_none() && self.ignore.is_empty() {
            return false;
        }
        let only = self
            .only
            .as_ref()
            .is_none_or(|o| o.iter().any(|s| s.matches(tag)));
        only && !self.ignore.iter().any(|s| s.matches(tag))
    }

    /// Every specifier as written, `only` first.
    pub fn sources(&self) -> Vec<&str> {
        self.only
            .iter()
            .flatten()
            .chain(&self.ignore)
            .map(CircleciSpec::source)
            .collect()
    }
}

// ------------------------------------------------------------------ GitHub

/// One GitHub filter pattern, `!` included.
#[derive(Debug, Clone)]
pub struct GithubPattern {
    source: String,
    negated: bool,
    regex: Regex,
}

impl GithubPattern {
    /// Parse a pattern. A leading `!` negates it.
    pub fn parse(pattern: &str) -> Result<Self, FilterError> {
        let (negated, body) = match pattern.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, pattern),
        };
        let translated = github_pattern_to_regex(pattern, body)?;
        let regex = Regex::new(&translated)
            .map_err(|e| FilterError::new("GitHub filter pattern", pattern, e.to_string()))?;
        Ok(Self {
            source: pattern.to_string(),
            negated,
            regex,
        })
    }

    /// Whether the pattern (without its `!`) matches the whole of `name`.
    pub fn matches(&self, name: &str) -> bool {
        self.regex.is_match(name)
    }

    /// Whether the pattern starts with `!`.
    pub fn is_negated(&self) -> bool {
        self.negated
    }

    /// The pattern as written.
    pub fn source(&self) -> &str {
        &self.source
    }
}

/// Translate the body of a GitHub filter pattern into an anchored regular expression.
fn github_pattern_to_regex(full: &str, body: &str) -> Result<String, FilterError> {
    let err = |reason: &str| FilterError::new("GitHub filter pattern", full, reason);
    // Each token is a regular expression for one unit, so that `?` and `+` can apply to
    // the unit before them.
    let mut tokens: Vec<String> = Vec::new();
    let chars: Vec<char> = body.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                let c = *chars
                    .get(i + 1)
                    .ok_or_else(|| err("ends with a lone `\\`"))?;
                tokens.push(regex_escape(&c.to_string()));
                i += 2;
            }
            '*' if chars.get(i + 1) == Some(&'*') => {
                if chars.get(i + 2) == Some(&'/') {
                    // `**/` also matches no directory at all: `**/README.md` matches
                    // `README.md`.
                    tokens.push("(?:.+/)?".into());
                    i += 3;
                } else {
                    tokens.push(".*".into());
                    i += 2;
                }
            }
            '*' => {
                tokens.push("[^/]*".into());
                i += 1;
            }
            q @ ('?' | '+') => {
                match tokens.pop() {
                    Some(prev) => tokens.push(format!("(?:{prev}){q}")),
                    // Nothing to repeat: a literal, as GitHub (and nektos/act) read it.
                    None => tokens.push(regex_escape(&q.to_string())),
                }
                i += 1;
            }
            '[' => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|&c| c == ']')
                    .map(|p| i + 1 + p)
                    .ok_or_else(|| err("`[` is never closed"))?;
                let set = &chars[i + 1..end];
                if set.is_empty() {
                    return Err(err("empty brackets `[]`"));
                }
                let mut class = String::from("[");
                let mut j = 0;
                while j < set.len() {
                    let c = set[j];
                    if !c.is_ascii_alphanumeric() {
                        return Err(err(
                            "brackets may hold only letters, digits and the ranges `a-z`, `A-Z`, `0-9`",
                        ));
                    }
                    if set.get(j + 1) == Some(&'-') && j + 2 < set.len() {
                        let hi = set[j + 2];
                        let same_kind = (c.is_ascii_lowercase() && hi.is_ascii_lowercase())
                            || (c.is_ascii_uppercase() && hi.is_ascii_uppercase())
                            || (c.is_ascii_digit() && hi.is_ascii_digit());
                        if !same_kind || c > hi {
                            return Err(err(&format!(
                                "invalid range `{c}-{hi}`; ranges can only include `a-z`, `A-Z` and `0-9`"
                            )));
                        }
                        class.push(c);
                        class.push('-');
                        class.push(hi);
                        j += 3;
                    } else {
                        class.push(c);
                        j += 1;
                    }
                }
                class.push(']');
                tokens.push(class);
                i = end + 1;
            }
            c => {
                tokens.push(regex_escape(&c.to_string()));
                i += 1;
            }
        }
    }
    Ok(format!("(?s)^{}$", tokens.concat()))
}

/// A GitHub `on.push` tag filter: `tags` (patterns with `!` negations, the last matching
/// pattern deciding) and `tags-ignore`.
#[derive(Debug, Clone)]
pub struct GithubRefFilter {
    include: Option<Vec<GithubPattern>>,
    ignore: Vec<GithubPattern>,
}

impl GithubRefFilter {
    /// A filter from `tags` (`None` when absent: every name is included) and `tags-ignore`.
    pub fn new<S: AsRef<str>>(include: Option<&[S]>, ignore: &[S]) -> Result<Self, FilterError> {
        let parse = |l: &[S]| -> Result<Vec<GithubPattern>, FilterError> {
            l.iter().map(|s| GithubPattern::parse(s.as_ref())).collect()
        };
        Ok(Self {
            include: include.map(parse).transpose()?,
            ignore: parse(ignore)?,
        })
    }

    /// Whether a push of the tag `name` starts the workflow.
    pub fn matches(&self, name: &str) -> bool {
        let included = match &self.include {
            None => true,
            Some(patterns) => patterns
                .iter()
                .rfind(|p| p.matches(name))
                .is_some_and(|p| !p.is_negated()),
        };
        // A `!` in `tags-ignore` re-includes what an earlier ignore pattern excluded.
        let ignored = self
            .ignore
            .iter()
            .rfind(|p| p.matches(name))
            .is_some_and(|p| !p.is_negated());
        included && !ignored
    }

    /// Every pattern as written, `tags` first.
    pub fn sources(&self) -> Vec<&str> {
        self.include
            .iter()
            .flatten()
            .chain(&self.ignore)
            .map(GithubPattern::source)
            .collect()
    }
}

// ------------------------------------------------------------------ Argo Events

/// An Argo Events string data filter: Go regular expressions, any of which must match
/// somewhere in the value (unanchored); `!=` negates.
#[derive(Debug, Clone)]
pub struct GoRegexFilter {
    sources: Vec<String>,
    regexes: Vec<Regex>,
    negated: bool,
}

impl GoRegexFilter {
    /// A filter from its values and whether its comparator is `!=`.
    pub fn new<S: AsRef<str>>(values: &[S], negated: bool) -> Result<Self, FilterError> {
        let regexes = values
            .iter()
            .map(|v| compile_regex("regular expression", v.as_ref(), v.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            sources: values.iter().map(|v| v.as_ref().to_string()).collect(),
            regexes,
            negated,
        })
    }

    /// Whether the value passes the filter.
    pub fn matches(&self, value: &str) -> bool {
        self.regexes.iter().any(|r| r.is_match(value)) != self.negated
    }

    /// The expressions as written.
    pub fn sources(&self) -> &[String] {
        &self.sources
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tag::{JobState, StepVerb, Tag, TrainId, Trigger};
    use proptest::prelude::*;

    fn gh(patterns: &[&str]) -> GithubRefFilter {
        GithubRefFilter::new(Some(patterns), &[]).unwrap()
    }

    /// Every example of GitHub's "filter pattern cheat sheet" (branches and tags, then
    /// file paths): the patterns, the names they match, and names they must not.
    #[test]
    fn github_cheat_sheet_examples() {
        let cases: &[(&[&str], &[&str], &[&str])] = &[
            (
                &["feature/*"],
                &["feature/my-branch", "feature/your-branch"],
                &["feature/beta-a/my-branch"],
            ),
            (
                &["feature/**"],
                &[
                    "feature/beta-a/my-branch",
                    "feature/your-branch",
                    "feature/mona/the/octocat",
                ],
                &["features/x"],
            ),
            (
                &["main", "releases/mona-the-octocat"],
                &["main", "releases/mona-the-octocat"],
                &["mainline", "releases/other"],
            ),
            (&["*"], &["main", "releases"], &["all/the/branches"]),
            (&["**"], &["all/the/branches", "every/tag"], &[]),
            (
                &["*feature"],
                &["mona-feature", "feature", "ver-10-feature"],
                &["feature-x", "a/feature"],
            ),
            (&["v2*"], &["v2", "v2.0", "v2.9"], &["v3", "v2/x"]),
            (
                &["v[12].[0-9]+.[0-9]+"],
                &["v1.10.1", "v2.0.0"],
                &["v3.0.0", "v1.x.1", "v1.10.", "v1x10.1"],
            ),
            // File paths.
            (&["*"], &["README.md", "server.rb"], &["docs/README.md"]),
            (
                &["*.jsx?"],
                &["page.js", "page.jsx"],
                &["page.jsxx", "pagexjs"],
            ),
            (&["**"], &["all/the/files.md"], &[]),
            (&["*.js"], &["app.js", "index.js"], &["js/app.js"]),
            (
                &["**.js"],
                &["index.js", "js/index.js", "src/js/app.js"],
                &["index.ts"],
            ),
            (
                &["docs/*"],
                &["docs/README.md", "docs/file.txt"],
                &["docs/a/b.md"],
            ),
            (
                &["docs/**"],
                &["docs/README.md", "docs/mona/octocat.txt"],
                &["README.md"],
            ),
            (
                &["docs/**/*.md"],
                &[
                    "docs/README.md",
                    "docs/mona/hello-world.md",
                    "docs/a/markdown/file.md",
                ],
                &["docs/a/file.txt"],
            ),
            (
                &["**/docs/**"],
                &[
                    "docs/hello.md",
                    "dir/docs/my-file.txt",
                    "space/docs/plan/space.doc",
                ],
                &["mydocs/x"],
            ),
            (
                &["**/README.md"],
                &["README.md", "js/README.md"],
                &["README.mdx"],
            ),
            (
                &["**/*src/**"],
                &["a/src/app.js", "my-src/code/js/app.js"],
                &["src"],
            ),
            (
                &["**/*-post.md"],
                &["my-post.md", "path/their-post.md"],
                &["post.md"],
            ),
            (
                &["**/migrate-*.sql"],
                &[
                    "migrate-10909.sql",
                    "db/migrate-v1.0.sql",
                    "db/sept/migrate-v1.sql",
                ],
                &["migrate.sql"],
            ),
            (
                &["*.md", "!README.md"],
                &["hello.md"],
                &["README.md", "docs/hello.md"],
            ),
            (
                &["*.md", "!README.md", "README*"],
                &["hello.md", "README.md", "README.doc"],
                &[],
            ),
            // `[]`, from the pattern syntax list.
            (&["[CB]at"], &["Cat", "Bat"], &["Hat", "at"]),
            (&["[1-2]00"], &["100", "200"], &["300"]),
            // `.` is literal; `\` escapes.
            (&[".yml"], &[".yml"], &["fyml"]),
            (&["\\!file"], &["!file"], &["file"]),
            (&["a\\*b"], &["a*b"], &["axb"]),
            (&["ab+c"], &["abc", "abbbc"], &["ac"]),
        ];
        for (patterns, yes, no) in cases {
            let f = gh(patterns);
            for name in *yes {
                assert!(f.matches(name), "{patterns:?} must match `{name}`");
            }
            for name in *no {
                assert!(!f.matches(name), "{patterns:?} must not match `{name}`");
            }
        }
    }

    #[test]
    fn github_question_mark_repeats_the_preceding_character() {
        // Not "any one character": `Octoc?t` matches `Octot` and `Octoct`, not `Octocat`.
        let f = gh(&["Octoc?t"]);
        assert!(f.matches("Octot") && f.matches("Octoct"));
        assert!(!f.matches("Octocat"));
        // A leading `?` or `+` has nothing to repeat and is literal.
        assert!(gh(&["+1"]).matches("+1"));
    }

    #[test]
    fn github_tags_ignore_and_negation_order() {
        let f = GithubRefFilter::new(None, &["v*"]).unwrap();
        assert!(f.matches("release=1.0") && !f.matches("v1"));
        // A leading negation negates nothing before it: nothing matches.
        assert!(!gh(&["!v*"]).matches("v1"));
        assert!(!gh(&["!v*"]).matches("x"));
    }

    #[test]
    fn github_invalid_patterns_are_rejected() {
        for bad in ["a\\", "[abc", "[]", "[a-Z]", "[9-0]", "[.]"] {
            let e = GithubPattern::parse(bad).unwrap_err();
            assert!(
                e.to_string().starts_with("invalid GitHub filter pattern"),
                "{e}"
            );
        }
    }

    #[test]
    fn shipped_github_example_agrees_with_ci_filter_on_real_tags() {
        // examples/github/workflows/unit-tests.yml uses `*` for the numbers, which also
        // accepts malformed tags Konductor never creates.
        let shipped = gh(&["release=*=unit-tests.*", "!release=*=unit-tests.*=*"]);
        let printed = GithubRefFilter::new(
            Some(&github_trigger_patterns("unit-tests").unwrap()[..]),
            &[],
        )
        .unwrap();
        for t in ["release=1.0=unit-tests.1", "release=42.3=unit-tests.17"] {
            assert!(shipped.matches(t) && printed.matches(t), "{t}");
        }
        for t in [
            "release=1.0=unit-tests.1=started",
            "release=1.0=lint.1",
            "release=1.0=unit-tests.1=rerun.1=started",
            "release=1.0=unit-tests.1=rerun.12=success",
        ] {
            assert!(!shipped.matches(t) && !printed.matches(t), "{t}");
        }
        assert!(shipped.matches("release=x=unit-tests.y"));
        assert!(!printed.matches("release=x=unit-tests.y"));
    }

    #[test]
    fn circleci_specifiers() {
        let f = CircleciFilter::new(Some(&[r"/^release=\d+\.\d+=lint\.\d+$/"]), &[]).unwrap();
        assert!(f.matches("release=4.0=lint.2"));
        assert!(!f.matches("release=4.0=lint.2=started"));
        // Must match the entire tag, even without anchors.
        let f = CircleciFilter::new(Some(&["/v[0-9]+/"]), &[]).unwrap();
        assert!(f.matches("v12") && !f.matches("xv12") && !f.matches("v12x"));
        // A plain string is an exact name.
        let f = CircleciFilter::new(Some(&["v1"]), &[]).unwrap();
        assert!(f.matches("v1") && !f.matches("v12"));
        // `ignore` alone: every tag but the ignored ones.
        let f = CircleciFilter::new(None, &["/.*=.*=.*/"]).unwrap();
        assert!(f.matches("release=1.0") && !f.matches("release=1.0=a.1"));
        // Neither: no tag at all.
        let f = CircleciFilter::new::<&str>(None, &[]).unwrap();
        assert!(!f.matches("release=1.0=a.1"));
        // `only` wins before `ignore`, which still removes.
        let f = CircleciFilter::new(Some(&["/.*/"]), &["/.*=started/"]).unwrap();
        assert!(f.matches("release=1.0=a.1") && !f.matches("release=1.0=a.1=started"));
        // ASCII `\d`, as in Java.
        let f = CircleciFilter::new(Some(&[r"/\d/"]), &[]).unwrap();
        assert!(f.matches("7") && !f.matches("٣"));
        let e = CircleciSpec::parse("/(/").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid regular expression `/(/`"),
            "{e}"
        );
    }

    #[test]
    fn go_regex_is_unanchored() {
        let f = GoRegexFilter::new(&["release=[0-9]+"], false).unwrap();
        assert!(f.matches("refs/tags/release=1.0=a.1=started"));
        let f =
            GoRegexFilter::new(&[r"^refs/tags/release=[0-9]+\.[0-9]+=a\.[0-9]+$"], false).unwrap();
        assert!(f.matches("refs/tags/release=1.0=a.1"));
        assert!(!f.matches("refs/tags/release=1.0=a.1=started"));
        let f = GoRegexFilter::new(&["=started$"], true).unwrap();
        assert!(!f.matches("refs/tags/release=1.0=a.1=started"));
    }

    #[test]
    fn printed_filters() {
        assert_eq!(
            circleci_trigger_filter("unit-tests").unwrap(),
            r"/^release=\d+\.\d+=unit-tests\.\d+$/"
        );
        assert_eq!(
            github_trigger_patterns("unit-tests").unwrap(),
            [
                "release=[0-9]+.[0-9]+=unit-tests.[0-9]+",
                "!release=*=unit-tests.*=*"
            ]
        );
        assert!(circleci_trigger_filter("a.b").is_err());
        assert!(github_trigger_patterns("").is_err());
    }

    fn arb_step() -> impl Strategy<Value = String> {
        "[A-Za-z0-9_-]{1,64}"
    }

    fn arb_train() -> impl Strategy<Value = TrainId> {
        (any::<u32>(), any::<u32>()).prop_map(|(n, p)| TrainId::new(n, p))
    }

    /// The tags that must never start `step`'s job, given one of its triggers.
    fn non_triggers(tr: &Trigger, other: &str) -> Vec<String> {
        let mut tags: Vec<Tag> = JobState::ALL.iter().map(|s| tr.state_tag(*s)).collect();
        for k in [1, 2, 17] {
            tags.extend(JobState::ALL.iter().map(|s| tr.run_state_tag(k, *s)));
        }
        for v in [StepVerb::Unblocked, StepVerb::Skipped] {
            tags.push(Tag::Step(tr.train, tr.step.clone(), v));
        }
        tags.push(Tag::Cancelled(tr.train));
        tags.push(Tag::Train(tr.train));
        let other = Trigger::new(tr.train, other, tr.job);
        tags.push(other.tag());
        tags.push(other.state_tag(JobState::Started));
        tags.iter().map(Tag::to_string).collect()
    }

    proptest! {
        #[test]
        fn printed_filters_select_exactly_the_step_triggers(
            step in arb_step(),
            other in arb_step(),
            train in arb_train(),
            job in 1u32..,
        ) {
            prop_assume!(step != other);
            let cc = CircleciFilter::new(Some(&[circleci_trigger_filter(&step).unwrap()]), &[]).unwrap();
            let patterns = github_trigger_patterns(&step).unwrap();
            let gh = GithubRefFilter::new(Some(&patterns[..]), &[]).unwrap();
            let tr = Trigger::new(train, step.clone(), job);
            let trigger = tr.tag().to_string();
            prop_assert!(cc.matches(&trigger), "circleci must match {}", trigger);
            prop_assert!(gh.matches(&trigger), "github must match {}", trigger);
            for t in non_triggers(&tr, &other) {
                prop_assert!(!cc.matches(&t), "circleci must not match {}", t);
                prop_assert!(!gh.matches(&t), "github must not match {}", t);
            }
        }

        #[test]
        fn github_patterns_never_panic(p in "[!*?+\\[\\]a-z0-9./\\\\-]{0,20}", name in "[a-z0-9./=-]{0,20}") {
            if let Ok(f) = GithubRefFilter::new(Some(&[p]), &[]) {
                let _ = f.matches(&name);
            }
        }
    }
}
