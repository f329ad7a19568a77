//! Finding a path's template: the templates as a trie of segments, the recent-template shortcut
//! in front of it, and the matcher that checks one template against a path and captures its
//! user and server.

use std::borrow::Cow;
use std::sync::LazyLock;

use super::RouteInfo;
use super::percent_decode;
use super::table::{SERVER_ROOT_WORDS, Seg, Template, templates};

/// The templates as a trie of segments.
///
/// The rule it implements (the one this module has always had): a path takes the first
/// template, in table order, among those whose first two segments are the path's literally;
/// failing that, the first among those whose second segment is a placeholder. So a template's
/// priority is `(second segment is a placeholder, index)`, and the trie returns the matching
/// template of least priority, walking literal and placeholder branches alike. Only that one
/// template is then matched segment by segment to capture user and server.
pub(super) struct Trie {
    nodes: Vec<Node>,
    pub(super) templates: Vec<Template>,
    /// `unrivalled[i]`: no template of smaller priority can match a path template `i` matches,
    /// so a path template `i` matches needs no walk (see [`RECENT`]).
    pub(super) unrivalled: Vec<bool>,
}

thread_local! {
    /// The last few unrivalled templates returned, the last found first: a log repeats a
    /// handful of routes, and trying these first (a first byte or a length rejects most)
    /// skips the walk for most paths.
    static RECENT: std::cell::Cell<[usize; RECENT_LEN]> = const { std::cell::Cell::new([usize::MAX; RECENT_LEN]) };
}

const RECENT_LEN: usize = 4;

/// Can some path match both `a` and `b`? Conservative: `true` unless provably not.
fn may_overlap(a: &Template, b: &Template) -> bool {
    let fixed = |t: &Template| t.segs.len() - usize::from(t.open_ended);
    let (fa, fb) = (fixed(a), fixed(b));
    // Path lengths: exactly `fixed` segments, or at least `fixed + 1` when open-ended.
    let lengths_meet = match (a.open_ended, b.open_ended) {
        (false, false) => fa == fb,
        (true, false) => fb > fa,
        (false, true) => fa > fb,
        (true, true) => true,
    };
    let root = |s: &Seg, l: &str| *s == Seg::Server && SERVER_ROOT_WORDS.contains(&l);
    lengths_meet
        && a.segs[..fa]
            .iter()
            .zip(&b.segs[..fb])
            .all(|(x, y)| match (x, y) {
                (Seg::Lit(l), Seg::Lit(m)) => l == m,
                (Seg::Lit(l), s) | (s, Seg::Lit(l)) => !root(s, l),
                _ => true,
            })
}

#[derive(Default)]
struct Node {
    lits: Vec<(&'static str, usize)>,
    /// Placeholder children; only `Server` refuses some segments (the server root words).
    holes: Vec<(Seg, usize)>,
    /// Least priority of a template ending here.
    exact: Option<u32>,
    /// Least priority of a template ending here in `{path}` (needs one more segment at least).
    open: Option<u32>,
}

const STAR: u32 = 1 << 16;

fn least(a: Option<u32>, b: Option<u32>) -> Option<u32> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        _ => a.or(b),
    }
}

impl Trie {
    fn build() -> Trie {
        let templates = templates();
        let mut nodes = vec![Node::default()];
        for (idx, t) in templates.iter().enumerate() {
            let star = !matches!(t.segs.get(1), Some(Seg::Lit(_)) | None);
            let prio = idx as u32 | if star { STAR } else { 0 };
            let mut at = 0;
            for seg in &t.segs {
                if *seg == Seg::Path {
                    break;
                }
                let found = match seg {
                    Seg::Lit(l) => nodes[at].lits.iter().find(|(k, _)| k == l).map(|c| c.1),
                    _ => nodes[at].holes.iter().find(|(k, _)| k == seg).map(|c| c.1),
                };
                at = found.unwrap_or_else(|| {
                    nodes.push(Node::default());
                    let child = nodes.len() - 1;
                    match seg {
                        Seg::Lit(l) => nodes[at].lits.push((l, child)),
                        _ => nodes[at].holes.push((*seg, child)),
                    }
                    child
                });
            }
            let node = &mut nodes[at];
            if t.open_ended {
                node.open = least(node.open, Some(prio));
            } else {
                node.exact = least(node.exact, Some(prio));
            }
        }
        let unrivalled = (0..templates.len())
            .map(|i| {
                let prio = |j: usize| {
                    let star = !matches!(templates[j].segs.get(1), Some(Seg::Lit(_)) | None);
                    (star, j)
                };
                (0..templates.len())
                    .all(|j| prio(j) >= prio(i) || !may_overlap(&templates[j], &templates[i]))
            })
            .collect();
        Trie {
            nodes,
            templates,
            unrivalled,
        }
    }

    /// Least priority of a template matching `segs[i..]` from `node`.
    fn best(&self, node: usize, segs: &[&str], i: usize) -> Option<u32> {
        let n = &self.nodes[node];
        let Some(seg) = segs.get(i) else {
            return n.exact;
        };
        let mut best = n.open;
        for (lit, child) in &n.lits {
            if lit.len() == seg.len() && lit.as_bytes()[0] == seg.as_bytes()[0] && lit == seg {
                best = least(best, self.best(*child, segs, i + 1));
            }
        }
        for (hole, child) in &n.holes {
            if *hole != Seg::Server || !SERVER_ROOT_WORDS.contains(seg) {
                best = least(best, self.best(*child, segs, i + 1));
            }
        }
        best
    }

    /// The recent templates tried on the path in place (see [`matches_path`]); `None` sends
    /// the path to the full lookup.
    pub(super) fn recent_in_place<'a>(&self, path: &'a str) -> Option<RouteInfo<'a>> {
        let recent = RECENT.with(|r| r.get());
        for (k, &i) in recent.iter().enumerate() {
            let t = self.templates.get(i)?;
            match matches_path(t, path) {
                Direct::Yes(mut info) => {
                    // The template found first next time.
                    if k > 0 {
                        let mut next = recent;
                        next[..=k].rotate_right(1);
                        RECENT.with(|r| r.set(next));
                    }
                    if info.server.is_none() && t.server_route {
                        info.server = Some(Cow::Borrowed(""));
                    }
                    return Some(info);
                }
                Direct::No => {}
                Direct::Unsure => return None,
            }
        }
        None
    }

    pub(super) fn lookup<'a>(&self, segs: &[&'a str]) -> Option<RouteInfo<'a>> {
        let recent = RECENT.with(|r| r.get());
        for &i in &recent {
            if let Some(info) = self.templates.get(i).and_then(|t| matches(t, segs)) {
                return Some(info);
            }
        }
        let i = (self.best(0, segs, 0)? & (STAR - 1)) as usize;
        if self.unrivalled[i] {
            let mut next = [i; RECENT_LEN];
            next[1..].copy_from_slice(&recent[..RECENT_LEN - 1]);
            RECENT.with(|r| r.set(next));
        }
        matches(&self.templates[i], segs)
    }
}

pub(super) static TRIE: LazyLock<Trie> = LazyLock::new(Trie::build);

pub(super) fn matches<'a>(t: &Template, segs: &[&'a str]) -> Option<RouteInfo<'a>> {
    // Most templates of a bucket differ in length: reject them before comparing any segment.
    if (t.open_ended && segs.len() < t.segs.len()) || (!t.open_ended && segs.len() != t.segs.len())
    {
        return None;
    }
    let mut info = RouteInfo {
        route: t.route,
        user: None,
        server: None,
    };
    let mut i = 0;
    for (k, seg) in t.segs.iter().enumerate() {
        match seg {
            Seg::Path => {
                // `{path}` is last in every template and needs at least one segment.
                return (i < segs.len() && k == t.segs.len() - 1).then_some(info);
            }
            _ if i >= segs.len() => return None,
            Seg::Lit(l) => {
                if segs[i] != *l {
                    return None;
                }
            }
            Seg::User => info.user = Some(percent_decode(segs[i])),
            Seg::NamedServer => info.server = Some(percent_decode(segs[i])),
            Seg::Server => {
                if SERVER_ROOT_WORDS.contains(&segs[i]) {
                    return None;
                }
                info.server = Some(percent_decode(segs[i]));
            }
            Seg::Group | Seg::Service | Seg::Id => {}
        }
        i += 1;
    }
    (i == segs.len()).then_some(info)
}

/// What [`matches_path`] can tell without splitting the path.
enum Direct<'a> {
    Yes(RouteInfo<'a>),
    No,
    /// An empty segment (`//`, a trailing `/`) or no leading `/`: split the path and match
    /// its segments instead.
    Unsure,
}

/// [`matches`] on the path itself, for the recent-template shortcut: most paths are matched
/// by the template of the path before, and comparing it in place skips splitting the path.
/// Answers `Yes` or `No` only where `matches` over the split segments gives that answer.
fn matches_path<'a>(t: &Template, path: &'a str) -> Direct<'a> {
    let b = path.as_bytes();
    // The leading literals at once: where they are, each followed by a `/` (or the end), the
    // loop below would find each of them there and set nothing.
    let lead = t.lead.len();
    let (mut at, first) = if t.lead_segs > 0
        && b.get(1) == t.lead.as_bytes().get(1)
        && b.starts_with(t.lead.as_bytes())
        && b.get(lead).is_none_or(|&c| c == b'/')
    {
        (lead, t.lead_segs)
    } else {
        (0, 0)
    };
    let mut info = RouteInfo {
        route: t.route,
        user: None,
        server: None,
    };
    for seg in &t.segs[first..] {
        if *seg == Seg::Path {
            // At least one non-empty segment must remain.
            return if b[at..].iter().any(|&c| c != b'/') {
                Direct::Yes(info)
            } else {
                Direct::No
            };
        }
        if b.get(at) != Some(&b'/') {
            // The path ended (or, at the start, does not begin with `/`).
            return if at == 0 { Direct::Unsure } else { Direct::No };
        }
        at += 1;
        // A literal that is there: no need to look for the segment's end.
        if let Seg::Lit(l) = seg {
            let end = at + l.len();
            if b.get(at..end) == Some(l.as_bytes()) && b.get(end).is_none_or(|&c| c == b'/') {
                at = end;
                continue;
            }
        }
        let end = b[at..]
            .iter()
            .position(|&c| c == b'/')
            .map_or(b.len(), |i| at + i);
        if end == at {
            return Direct::Unsure;
        }
        // `/` is ASCII: `at` and `end` are char boundaries.
        let text = &path[at..end];
        match seg {
            Seg::Lit(l) => {
                if text != *l {
                    return Direct::No;
                }
            }
            Seg::User => info.user = Some(percent_decode(text)),
            Seg::NamedServer => info.server = Some(percent_decode(text)),
            Seg::Server => {
                if SERVER_ROOT_WORDS.contains(&text) {
                    return Direct::No;
                }
                info.server = Some(percent_decode(text));
            }
            Seg::Group | Seg::Service | Seg::Id | Seg::Path => {}
        }
        at = end;
    }
    if at == b.len() {
        Direct::Yes(info)
    } else if b[at..].iter().all(|&c| c == b'/') {
        Direct::Unsure
    } else {
        Direct::No
    }
}
