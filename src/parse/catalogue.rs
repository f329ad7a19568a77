//! The message catalogue: `parsers/*.toml`, one file per log family, each listing the message
//! kinds of that family with the pattern that recognises them and the fields they yield.
//!
//! The catalogue is data, not code: the files in the repository are embedded as the default and
//! `--parsers DIR` replaces them, so an operator teaches hubpulse a new line without recompiling.
//!
//! File format:
//!
//! ```toml
//! families = ["hub"]                 # which records the file applies to
//! [[kind]]
//! name = "spawn_succeeded"           # the `kind` column
//! pattern = '^User (?P<log_name>\S+) took (?P<seconds>[\d.]+) seconds to start'
//! fields = ["log_name", "seconds"]   # exactly the named groups of the pattern
//! example = "User alice:analysis took 2.5 seconds to start"
//! ```
//!
//! Named groups map onto lake columns by name (see [`FieldTarget`]); a few names are
//! conversions (`log_name`, `culler_name`, `seconds`, `routespec`, `url`, `quoted_user`) and any
//! other name lands in the record's `attrs` JSON.
//!
//! Invariants, checked when a catalogue loads (a violation is an error naming file and entry):
//! patterns compile; `fields` equals the pattern's named groups; every `example` is classified
//! as its own kind (earlier entries win, so order matters and is checked).
//! Matching runs one compiled multi-pattern automaton per family (better than a `RegexSet`:
//! one leftmost-first search that stops at the first match, which is the earliest entry because
//! every pattern is anchored with `^`) on the first line of the message; only the winning kind's
//! own regex then runs to extract its fields.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use regex::Regex;
use regex_automata::meta;
use serde::Deserialize;

use super::ParseError;
use super::prefix::Family;

/// The default catalogue, compiled into the binary from `parsers/`.
const EMBEDDED: &[(&str, &str)] = &[
    ("hub.toml", include_str!("../../parsers/hub.toml")),
    (
        "singleuser.toml",
        include_str!("../../parsers/singleuser.toml"),
    ),
    ("culler.toml", include_str!("../../parsers/culler.toml")),
    ("chp.toml", include_str!("../../parsers/chp.toml")),
    ("python.toml", include_str!("../../parsers/python.toml")),
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    families: Vec<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default, rename = "kind")]
    kinds: Vec<KindSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct KindSpec {
    name: String,
    pattern: String,
    #[serde(default)]
    fields: Vec<String>,
    #[serde(default)]
    example: Option<String>,
    /// Documentation for people reading the catalogue; not used by the parser.
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
}

/// Where a named capture group goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldTarget {
    User,
    Actor,
    ServerName,
    Method,
    Status,
    Path,
    ClientIp,
    Target,
    Service,
    ExitCode,
    Count,
    DurationMs,
    /// `alice` or `alice:gpu` (JupyterHub's `_log_name`).
    LogName,
    /// `alice` or `alice/gpu` (the idle culler's spelling).
    CullerName,
    /// Seconds, stored as `duration_ms`.
    Seconds,
    /// A proxy routespec or URL whose path names the user and server (`/user/alice/gpu/`).
    RouteSpec,
    /// A Python repr of a user name (`'alice'`).
    QuotedUser,
    /// Anything else: kept in `attrs` under the group's name.
    Attr,
}

impl FieldTarget {
    fn of(name: &str) -> FieldTarget {
        match name {
            "user" => FieldTarget::User,
            "actor" => FieldTarget::Actor,
            "server_name" => FieldTarget::ServerName,
            "method" => FieldTarget::Method,
            "status" => FieldTarget::Status,
            "path" => FieldTarget::Path,
            "client_ip" => FieldTarget::ClientIp,
            "target" => FieldTarget::Target,
            "service" => FieldTarget::Service,
            "exit_code" => FieldTarget::ExitCode,
            "count" => FieldTarget::Count,
            "duration_ms" => FieldTarget::DurationMs,
            "log_name" => FieldTarget::LogName,
            "culler_name" => FieldTarget::CullerName,
            "seconds" => FieldTarget::Seconds,
            "routespec" | "url" => FieldTarget::RouteSpec,
            "quoted_user" => FieldTarget::QuotedUser,
            _ => FieldTarget::Attr,
        }
    }
}

#[derive(Debug)]
pub struct Kind {
    pub name: &'static str,
    pub regex: Regex,
    /// (capture group index, group name, target)
    pub groups: Vec<(usize, &'static str, FieldTarget)>,
}

#[derive(Debug)]
struct FamilySet {
    set: meta::Regex,
    kinds: Vec<Kind>,
}

/// A loaded, validated catalogue.
#[derive(Debug)]
pub struct Catalogue {
    families: HashMap<Family, FamilySet>,
    /// (file, kind) pairs in load order, for listing.
    pub entries: Vec<(String, &'static str)>,
}

fn leak(s: String) -> &'static str {
    // Kind and field names live as long as the process; the catalogue is loaded once.
    Box::leak(s.into_boxed_str())
}

impl Catalogue {
    /// The catalogue embedded in the binary.
    pub fn embedded() -> Result<Catalogue, ParseError> {
        let files = EMBEDDED
            .iter()
            .map(|(n, t)| (PathBuf::from(format!("parsers/{n}")), t.to_string()));
        Self::from_files(files.collect())
    }

    /// Every `*.toml` file in `dir`, in file-name order.
    pub fn from_dir(dir: &Path) -> Result<Catalogue, ParseError> {
        let rd = std::fs::read_dir(dir).map_err(|source| ParseError::Io {
            file: dir.into(),
            source,
        })?;
        let mut paths: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        paths.sort();
        if paths.is_empty() {
            return Err(ParseError::Empty { dir: dir.into() });
        }
        let mut files = Vec::new();
        for p in paths {
            let text = std::fs::read_to_string(&p).map_err(|source| ParseError::Io {
                file: p.clone(),
                source,
            })?;
            files.push((p, text));
        }
        Self::from_files(files)
    }

    fn from_files(files: Vec<(PathBuf, String)>) -> Result<Catalogue, ParseError> {
        let mut per_family: HashMap<Family, Vec<(PathBuf, KindSpec)>> = HashMap::new();
        for (file, text) in files {
            let spec: FileSpec = toml::from_str(&text).map_err(|e| ParseError::Toml {
                file: file.clone(),
                source: Box::new(e),
            })?;
            let _ = spec.description;
            for fam in &spec.families {
                let family = Family::from_name(fam).ok_or_else(|| ParseError::UnknownFamily {
                    file: file.clone(),
                    family: fam.clone(),
                })?;
                let list = per_family.entry(family).or_default();
                for k in &spec.kinds {
                    list.push((file.clone(), k.clone()));
                }
            }
        }
        let mut families = HashMap::new();
        let mut entries = Vec::new();
        let mut examples = Vec::new();
        for (family, specs) in per_family {
            let set = compile_family(&specs)?;
            for (file, k) in &specs {
                entries.push((file.display().to_string(), leak(k.name.clone())));
                if let Some(ex) = &k.example {
                    examples.push((family, file.clone(), leak(k.name.clone()), ex.clone()));
                }
            }
            families.insert(family, set);
        }
        entries.sort();
        entries.dedup();
        let cat = Catalogue { families, entries };
        cat.check_examples(&examples)?;
        Ok(cat)
    }

    /// Classify the first line of a message: the first kind (in file order) whose pattern matches.
    pub fn classify<'h>(
        &self,
        family: Family,
        first_line: &'h str,
    ) -> Option<(&Kind, regex::Captures<'h>)> {
        let fs = self.families.get(&family)?;
        let idx = fs.set.find(first_line)?.pattern().as_usize();
        let kind = &fs.kinds[idx];
        kind.regex.captures(first_line).map(|c| (kind, c))
    }

    fn check_examples(
        &self,
        examples: &[(Family, PathBuf, &'static str, String)],
    ) -> Result<(), ParseError> {
        for (family, file, kind, example) in examples {
            let got = self.classify(*family, example).map(|(k, _)| k.name);
            if got != Some(*kind) {
                return Err(ParseError::Entry {
                    file: file.clone(),
                    kind: kind.to_string(),
                    msg: format!(
                        "example {example:?} is classified as {got:?}, not as this kind (check the pattern, or an earlier entry shadows it)"
                    ),
                });
            }
        }
        Ok(())
    }
}

fn compile_family(specs: &[(PathBuf, KindSpec)]) -> Result<FamilySet, ParseError> {
    let mut kinds = Vec::with_capacity(specs.len());
    let mut patterns = Vec::with_capacity(specs.len());
    for (file, k) in specs {
        let err = |msg: String| ParseError::Entry {
            file: file.clone(),
            kind: k.name.clone(),
            msg,
        };
        if k.name.is_empty()
            || !k
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(err("name must be lower_snake_case".into()));
        }
        if !k.pattern.starts_with('^') {
            return Err(err(
                "pattern must start with ^ (kinds match from the start of the message)".into(),
            ));
        }
        let regex = Regex::new(&k.pattern).map_err(|e| ParseError::Pattern {
            file: file.clone(),
            kind: k.name.clone(),
            source: Box::new(e),
        })?;
        let names: BTreeSet<&str> = regex.capture_names().flatten().collect();
        let declared: BTreeSet<&str> = k.fields.iter().map(String::as_str).collect();
        if names != declared {
            return Err(err(format!(
                "fields {declared:?} do not match the pattern's named groups {names:?}"
            )));
        }
        let groups = regex
            .capture_names()
            .enumerate()
            .filter_map(|(i, n)| n.map(|n| (i, leak(n.to_string()), FieldTarget::of(n))))
            .collect();
        patterns.push(k.pattern.clone());
        kinds.push(Kind {
            name: leak(k.name.clone()),
            regex,
            groups,
        });
    }
    let set = meta::Regex::new_many(&patterns).map_err(|e| ParseError::PatternSet {
        file: specs.first().map(|(f, _)| f.clone()).unwrap_or_default(),
        source: Box::new(e),
    })?;
    Ok(FamilySet { set, kinds })
}
