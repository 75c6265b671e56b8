//! The docs match the code: every example in `docs/` is checked against the core.
//!
//! - ```` ```yaml ```` blocks in `docs/sdd.md` parse; ```` ```yaml invalid ```` blocks are
//!   rejected, with the messages of the ```` ```text ```` block right after them, if any;
//! - every line of every ```` ```tags ```` block in `docs/tag-protocol.md` (`TAG  # kind`)
//!   parses to its kind, and the documented CircleCI filter selects exactly the triggers;
//! - the table in `docs/exit-codes.md` is `exit_codes::TABLE`, row by row;
//! - the README names the two set-up commands.

use std::path::{Path, PathBuf};

use konductor_core::exit_codes;
use konductor_core::sdd::Sdd;
use konductor_core::tag::{StepVerb, Tag};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn read(rel: &str) -> String {
    let p = repo_root().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

/// A fenced block: its info string, its text, and the 1-based lines of its fences.
struct Block {
    info: String,
    text: String,
    line: usize,
    end: usize,
}

/// Every fenced block of a markdown file, in order.
fn blocks(markdown: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    for (i, l) in markdown.lines().enumerate() {
        let fence = l.trim_start().starts_with("```");
        match open.take() {
            None if fence => {
                open = Some(Block {
                    info: l.trim_start().trim_start_matches('`').trim().to_string(),
                    text: String::new(),
                    line: i + 1,
                    end: 0,
                })
            }
            None => {}
            Some(mut b) if fence && l.trim() == "```" => {
                b.end = i + 1;
                out.push(b)
            }
            Some(mut b) => {
                b.text.push_str(l);
                b.text.push('\n');
                open = Some(b);
            }
        }
    }
    assert!(open.is_none(), "a fenced block is not closed");
    out
}

#[test]
fn sdd_examples_parse_or_fail_as_marked() {
    let md = read("docs/sdd.md");
    let all = blocks(&md);
    let (mut valid, mut invalid) = (0, 0);
    for (i, b) in all.iter().enumerate() {
        let at = format!("docs/sdd.md:{}", b.line);
        match b.info.as_str() {
            "yaml" => {
                let sdd = Sdd::parse("sdd.yaml", &b.text)
                    .unwrap_or_else(|e| panic!("{at}: marked valid but rejected:\n{e}"));
                assert!(!sdd.steps().is_empty(), "{at}");
                valid += 1;
            }
            "yaml invalid" => {
                let err = match Sdd::parse("sdd.yaml", &b.text) {
                    Ok(_) => panic!("{at}: marked invalid but accepted:\n{}", b.text),
                    Err(e) => e.to_string(),
                };
                // The messages shown right after the example are the ones printed.
                if let Some(shown) = all.get(i + 1).filter(|n| n.info == "text") {
                    let adjacent = md
                        .lines()
                        .skip(b.end)
                        .take(shown.line - b.end - 1)
                        .all(|l| l.trim().is_empty());
                    if adjacent {
                        for want in shown.text.lines().filter(|l| !l.trim().is_empty()) {
                            let want = want.trim().trim_start_matches("konductor: error: ");
                            assert!(
                                err.contains(want),
                                "{at}: the error does not contain the documented line\n  \
                                 documented: {want}\n  printed: {err}"
                            );
                        }
                    }
                }
                invalid += 1;
            }
            _ => {}
        }
    }
    assert!(valid >= 5, "docs/sdd.md has {valid} valid examples");
    assert!(invalid >= 20, "docs/sdd.md has {invalid} invalid examples");
}

/// The declared kind of a tag, as `docs/tag-protocol.md` spells it.
fn kind_of(tag: &str) -> &'static str {
    match Tag::parse_any(tag) {
        Ok(Some(Tag::Train(_))) => "train",
        Ok(Some(Tag::Trigger(_))) => "trigger",
        Ok(Some(Tag::State(..))) => "state",
        Ok(Some(Tag::Rerun(..))) => "rerun",
        Ok(Some(Tag::Step(_, _, StepVerb::Unblocked))) => "unblocked",
        Ok(Some(Tag::Step(_, _, StepVerb::Skipped))) => "skipped",
        Ok(Some(Tag::Step(_, _, StepVerb::Superseded))) => "superseded",
        Ok(Some(Tag::Cancelled(_))) => "cancelled",
        Ok(None) => "not a konductor tag",
        Err(_) => "malformed",
    }
}

#[test]
fn tag_examples_parse_to_their_kind() {
    const KINDS: &[&str] = &[
        "train",
        "trigger",
        "state",
        "rerun",
        "unblocked",
        "skipped",
        "superseded",
        "cancelled",
        "malformed",
    ];
    let md = read("docs/tag-protocol.md");
    let mut tags: Vec<(String, String)> = Vec::new();
    for b in blocks(&md).iter().filter(|b| b.info == "tags") {
        for (n, l) in b.text.lines().enumerate() {
            if l.trim().is_empty() {
                continue;
            }
            let at = format!("docs/tag-protocol.md:{}", b.line + n + 1);
            let (tag, kind) = l
                .rsplit_once('#')
                .unwrap_or_else(|| panic!("{at}: expected `TAG  # kind`, got `{l}`"));
            let (tag, kind) = (tag.trim(), kind.trim());
            assert!(KINDS.contains(&kind), "{at}: unknown kind `{kind}`");
            assert_eq!(kind_of(tag), kind, "{at}: `{tag}`");
            if kind != "malformed" {
                // Examples are written the way Konductor writes them.
                let parsed = Tag::parse_any(tag).unwrap().unwrap();
                assert_eq!(
                    parsed.to_string(),
                    tag.trim_start_matches("refs/tags/"),
                    "{at}"
                );
            }
            tags.push((tag.to_string(), kind.to_string()));
        }
    }
    for k in KINDS {
        assert!(
            tags.iter().any(|(_, kind)| kind == k),
            "docs/tag-protocol.md has no `{k}` example"
        );
    }

    // The documented CircleCI filter runs the unit-tests job on its triggers only.
    let line = md
        .lines()
        .find(|l| l.contains("only: /^release="))
        .expect("docs/tag-protocol.md shows a CircleCI tag filter");
    let re = line.split_once("only: /").unwrap().1;
    let re = &re[..re.rfind('/').unwrap()];
    let re = regex::Regex::new(re).unwrap();
    let mut triggers = 0;
    for (tag, kind) in &tags {
        let name = tag.trim_start_matches("refs/tags/");
        let unit_trigger = matches!(
            Tag::parse_any(tag),
            Ok(Some(Tag::Trigger(ref t))) if t.step == "unit-tests"
        );
        if unit_trigger {
            assert!(re.is_match(name), "the CircleCI filter misses `{tag}`");
            triggers += 1;
        } else if kind != "malformed" {
            assert!(!re.is_match(name), "the CircleCI filter selects `{tag}`");
        }
    }
    assert!(triggers > 0, "no unit-tests trigger among the examples");
}

#[test]
fn exit_code_table_is_the_code_table() {
    let md = read("docs/exit-codes.md");
    let mut lines = md.lines().skip_while(|l| {
        let cells: Vec<&str> = l.split('|').map(str::trim).collect();
        cells != ["", "code", "name", "meaning", ""]
    });
    assert!(
        lines.next().is_some(),
        "docs/exit-codes.md has no `| code | name | meaning |` table"
    );
    let sep = lines.next().unwrap_or_default();
    assert!(sep.trim_start().starts_with("| ---"), "{sep}");
    let rows: Vec<(String, String, String)> = lines
        .take_while(|l| l.trim_start().starts_with('|'))
        .map(|l| {
            let c: Vec<&str> = l.split('|').map(str::trim).collect();
            assert_eq!(c.len(), 5, "not a three-column row: {l}");
            (c[1].to_string(), c[2].to_string(), c[3].to_string())
        })
        .collect();
    let want: Vec<(String, String, String)> = exit_codes::TABLE
        .iter()
        .map(|(code, name, meaning)| (code.to_string(), name.to_string(), meaning.to_string()))
        .collect();
    assert_eq!(rows, want);
}

#[test]
fn readme_names_the_two_commands() {
    let readme = read("README.md");
    for cmd in ["make demo", "make test"] {
        assert!(readme.contains(cmd), "README.md does not mention `{cmd}`");
    }
}
