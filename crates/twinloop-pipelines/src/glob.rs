//! Expands the `code:` globs of a step (`src/**/*.py`) to the repo's files. Hidden directories
//! (`.git`, the pipeline home `.twinloop`) are not walked: they are not code.

use std::path::Path;

/// Repo-relative paths (with `/`) of the files matching `pattern`, sorted.
pub fn expand(repo: &Path, pattern: &str) -> std::io::Result<Vec<String>> {
    let segments: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
    let mut out = Vec::new();
    walk(repo, "", &segments, &mut out)?;
    out.sort();
    out.dedup();
    Ok(out)
}

fn walk(dir: &Path, prefix: &str, segments: &[&str], out: &mut Vec<String>) -> std::io::Result<()> {
    let Some((first, rest)) = segments.split_first() else {
        return Ok(());
    };
    if *first == "**" {
        walk(dir, prefix, rest, out)?;
        for entry in read_dir(dir)? {
            let (name, path) = entry;
            if path.is_dir() && !name.starts_with('.') {
                walk(&path, &join(prefix, &name), segments, out)?;
            }
        }
        return Ok(());
    }
    for (name, path) in read_dir(dir)? {
        if !matches(first, &name) || (name.starts_with('.') && !first.starts_with('.')) {
            continue;
        }
        let relative = join(prefix, &name);
        if rest.is_empty() {
            if path.is_file() {
                out.push(relative);
            }
        } else if path.is_dir() {
            walk(&path, &relative, rest, out)?;
        }
    }
    Ok(())
}

fn read_dir(dir: &Path) -> std::io::Result<Vec<(String, std::path::PathBuf)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        out.push((
            entry.file_name().to_string_lossy().into_owned(),
            entry.path(),
        ));
    }
    Ok(out)
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}/{name}")
    }
}

/// `*` any run of characters, `?` one character, anything else itself.
fn matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(matches("*.py", "train.py"));
        assert!(!matches("*.py", "train.pyc"));
        assert!(matches("t?ain*", "train.py"));
        assert!(matches("train.py", "train.py"));
    }

    #[test]
    fn walks_the_tree() {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "src/a.py",
            "src/lib/b.py",
            "src/lib/c.txt",
            ".git/x.py",
            "top.py",
        ] {
            let path = dir.path().join(f);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "x").unwrap();
        }
        assert_eq!(
            expand(dir.path(), "src/**/*.py").unwrap(),
            vec!["src/a.py", "src/lib/b.py"]
        );
        assert_eq!(
            expand(dir.path(), "**/*.py").unwrap(),
            vec!["src/a.py", "src/lib/b.py", "top.py"]
        );
        assert_eq!(
            expand(dir.path(), "nope/*.py").unwrap(),
            Vec::<String>::new()
        );
    }
}
