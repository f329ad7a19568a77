//! Build script: stamps the git commit into the binary (`hubpulse --version`).
//!
//! Guarantees: `HUBPULSE_COMMIT` is always set, to `git rev-parse --short HEAD` of the source
//! tree, or to `unknown` when it is not a git checkout (a source tarball, `cargo install` from a
//! copy) or git is missing. Cheap: it reruns only when HEAD or the branch it points to moves.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn main() {
    let commit = git(&["rev-parse", "--short=10", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=HUBPULSE_COMMIT={commit}");
    // Rerun when HEAD moves: HEAD itself (a checkout), the branch it names (a commit) and
    // packed-refs (a `git gc`). Paths from git, so a worktree's own HEAD is the one watched.
    // Outside git, only build.rs itself (not every source file, cargo's default).
    println!("cargo:rerun-if-changed=build.rs");
    let mut watch = vec!["HEAD".to_string(), "packed-refs".to_string()];
    if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watch.push(r);
    }
    for w in watch {
        if let Some(p) = git(&["rev-parse", "--path-format=absolute", "--git-path", &w])
            && std::path::Path::new(&p).exists()
        {
            println!("cargo:rerun-if-changed={p}");
        }
    }
}
