//! Changed-file conditions (`if_changed`): glob compilation and matching.

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

/// Compile one `if_changed` glob. `*` does not cross `/`; `**` does.
pub fn compile_glob(pattern: &str) -> Result<Glob, String> {
    if pattern.trim().is_empty() {
        return Err("empty pattern".into());
    }
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map_err(|e| e.kind().to_string())
}

/// The first changed path matched by any of `globs`, if any.
pub fn first_match<'a>(globs: &[String], changed: &'a [String]) -> Result<Option<&'a str>, String> {
    let mut b = GlobSetBuilder::new();
    for g in globs {
        b.add(compile_glob(g)?);
    }
    let set: GlobSet = b.build().map_err(|e| e.to_string())?;
    Ok(changed
        .iter()
        .find(|p| set.is_match(p.as_str()))
        .map(String::as_str))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_gitignore_paths() {
        let changed = vec!["src/main.rs".to_string(), "k8s/prod/app.yaml".to_string()];
        assert_eq!(
            first_match(&["flavors.yaml".into()], &changed).unwrap(),
            None
        );
        assert_eq!(
            first_match(&["k8s/**".into()], &changed).unwrap(),
            Some("k8s/prod/app.yaml")
        );
        assert_eq!(first_match(&["k8s/*.yaml".into()], &changed).unwrap(), None);
        assert!(compile_glob("a[").is_err());
    }
}
