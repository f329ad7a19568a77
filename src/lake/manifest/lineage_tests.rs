//! Lineage: same-head files, growing copies, rewrites, identities that survive growth.

use super::*;
use std::io::Write;

/// Z2JH's hub starts every log with these untimestamped lines (`jupyterhub_config.py` loading
/// the chart's values): two files of two hub starts begin with the same bytes.
const BANNER: &str = "Loading /usr/local/etc/jupyterhub/secret/values.yaml\nNo config at /usr/local/etc/jupyterhub/existing-secret/values.yaml\n";

fn lines(tag: &str, from: u64, n: u64) -> String {
    (from..from + n)
        .map(|i| {
            format!(
                "[I 2026-11-28 12:00:{:02}.{:03} JupyterHub app:1] {tag} seq={i}\n",
                i % 60,
                i % 1000
            )
        })
        .collect()
}

fn write(dir: &Path, name: &str, body: &str) -> (PathBuf, File) {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    let f = File::open(&p).unwrap();
    (p, f)
}

/// What a reader that identified `body` when it held `head_len` bytes and read to `offset`
/// (marks at `marks`) knows.
fn known(body: &[u8], head_len: usize, offset: usize, marks: &[usize], path: &Path) -> Known {
    let head_fp = xxh3_64(&body[..head_len]);
    Known {
        identity: hex(head_fp),
        head_fp,
        head_len: head_len as u64,
        offset: offset as u64,
        hash: xxh3_64(&body[..offset]),
        marks: marks
            .iter()
            .map(|&m| (m as u64, xxh3_64(&body[..m])))
            .collect(),
        path: path.to_path_buf(),
        file_id: None,
    }
}

fn no_ref(_: &Known, _: u64, _: u64) -> Option<bool> {
    None
}

fn len(f: &File) -> u64 {
    f.metadata().unwrap().len()
}

#[test]
fn files_with_the_same_banner_are_different_sources() {
    let dir = tempfile::tempdir().unwrap();
    let a = format!("{BANNER}{}", lines("a", 0, 200));
    let b = format!("{BANNER}{}", lines("b", 0, 300));
    // `a` was identified when it held only its first line (the banner), and read to its end.
    let first = BANNER.find('\n').unwrap() + 1;
    let (pa, _) = write(dir.path(), "hub.log.1", &a);
    let ka = known(a.as_bytes(), first, a.len(), &[first + 10, 2000], &pa);
    let (_, fb) = write(dir.path(), "hub.log", &b);
    let got = resolve(
        &fb,
        len(&fb),
        std::slice::from_ref(&ka),
        (1, 2),
        &mut no_ref,
    )
    .unwrap();
    let Lineage::New { identity, head_len } = got else {
        panic!("a same-banner file taken as {got:?}");
    };
    assert_ne!(identity, ka.identity, "two sources under one name");
    assert_eq!(head_len, FP_BYTES.min(b.len() as u64));
    // Banners longer than the head: the same 4 KiB, so the same head fingerprint, yet another
    // source, under a suffixed name.
    let long = BANNER.repeat(40);
    let (a, b) = (
        format!("{long}{}", lines("a", 0, 50)),
        format!("{long}{}", lines("b", 0, 60)),
    );
    let (pa, _) = write(dir.path(), "hub.log.2", &a);
    let ka = known(a.as_bytes(), 4096, a.len(), &[], &pa);
    let (_, fb) = write(dir.path(), "hub.log", &b);
    let got = resolve(
        &fb,
        len(&fb),
        std::slice::from_ref(&ka),
        (1, 2),
        &mut no_ref,
    )
    .unwrap();
    let Lineage::New { identity, .. } = got else {
        panic!("a same-head file taken as {got:?}");
    };
    assert!(
        identity.starts_with(&format!("{}-", ka.identity)),
        "{identity}"
    );
}

#[test]
fn a_new_identity_stays_the_same_as_its_file_grows() {
    let dir = tempfile::tempdir().unwrap();
    let first = BANNER.find('\n').unwrap() + 1;
    let a = format!("{BANNER}{}", lines("a", 0, 200));
    let (pa, _) = write(dir.path(), "a.log", &a);
    let ka = known(a.as_bytes(), first, a.len(), &[1000, 2000], &pa);
    let b0 = format!("{BANNER}{}", lines("b", 0, 50));
    let (pb, fb) = write(dir.path(), "b.log", &b0);
    let Lineage::New { identity, head_len } = resolve(
        &fb,
        len(&fb),
        std::slice::from_ref(&ka),
        (1, 9),
        &mut no_ref,
    )
    .unwrap() else {
        panic!("b is new");
    };
    // `b` read to its end, then it grows: it continues under the same name at the same offset.
    let kb = Known {
        identity: identity.clone(),
        head_fp: xxh3_64(&b0.as_bytes()[..head_len as usize]),
        head_len,
        offset: b0.len() as u64,
        hash: xxh3_64(b0.as_bytes()),
        marks: Vec::new(),
        path: pb.clone(),
        file_id: None,
    };
    let mut f = std::fs::OpenOptions::new().append(true).open(&pb).unwrap();
    f.write_all(lines("b", 50, 500).as_bytes()).unwrap();
    let fb = File::open(&pb).unwrap();
    let all = [ka, kb];
    assert_eq!(
        resolve(&fb, len(&fb), &all, (1, 9), &mut no_ref).unwrap(),
        Lineage::Continues(1)
    );
}

#[test]
fn a_copy_being_written_is_a_copy_until_it_passes_the_offset_then_continues_there() {
    let dir = tempfile::tempdir().unwrap();
    let a = format!("{BANNER}{}", lines("a", 0, 400));
    let (pa, _) = write(dir.path(), "hub.log", &a);
    let read_to = a.len() - 1000 - (a.len() - 1000) % 10; // not on a line end: only hashes matter
    let ka = known(a.as_bytes(), 4096, read_to, &[5000, 9000], &pa);
    // 6 KiB copied so far: the mark at 5000 says it is the beginning of `a`.
    let (pc, fc) = write(dir.path(), "hub.log.1", &a[..6000]);
    let ks = std::slice::from_ref(&ka);
    assert_eq!(
        resolve(&fc, 6000, ks, (1, 3), &mut no_ref).unwrap(),
        Lineage::CopyOf(0)
    );
    // The copy passes the offset: it continues `a` there, never from 0.
    std::fs::write(&pc, &a).unwrap();
    let fc = File::open(&pc).unwrap();
    assert_eq!(
        resolve(&fc, len(&fc), ks, (1, 3), &mut no_ref).unwrap(),
        Lineage::Continues(0)
    );
}

#[test]
fn a_rewrite_with_the_same_head_is_new_when_a_mark_or_the_original_disagrees() {
    let dir = tempfile::tempdir().unwrap();
    let a = format!("{BANNER}{}", lines("a", 0, 400));
    let (pa, _) = write(dir.path(), "hub.log.1", &a);
    let first = BANNER.find('\n').unwrap() + 1;
    let ka = known(a.as_bytes(), first, a.len(), &[3000], &pa);
    let r = format!("{BANNER}{}", lines("r", 0, 60));
    assert!(r.len() > 3000 && r.len() < a.len());
    let (pr, fr) = write(dir.path(), "hub.log", &r);
    let ks = std::slice::from_ref(&ka);
    let got = resolve(&fr, len(&fr), ks, (1, 4), &mut no_ref).unwrap();
    assert!(matches!(got, Lineage::New { .. }), "{got:?}");
    // No mark below its length, but the original is there to compare with.
    let ka = known(a.as_bytes(), first, a.len(), &[], &pa);
    let ks = std::slice::from_ref(&ka);
    let mut by_path = |k: &Known, n: u64, d: u64| reference_by_path(k, &pr, (0, 0), n, d);
    let got = resolve(&fr, len(&fr), ks, (1, 4), &mut by_path).unwrap();
    assert!(matches!(got, Lineage::New { .. }), "{got:?}");
    // With neither, it is taken as a copy (nothing read) until it grows past evidence.
    assert_eq!(
        resolve(&fr, len(&fr), ks, (1, 4), &mut no_ref).unwrap(),
        Lineage::CopyOf(0)
    );
}

#[test]
fn a_copy_shorter_than_the_head_is_known_by_comparing_with_the_original() {
    let dir = tempfile::tempdir().unwrap();
    let a = format!("{BANNER}{}", lines("a", 0, 400));
    let (pa, _) = write(dir.path(), "hub.log", &a);
    let ka = known(a.as_bytes(), 4096, a.len(), &[], &pa);
    let (pc, fc) = write(dir.path(), "hub.log.1", &a[..2000]);
    let ks = std::slice::from_ref(&ka);
    let mut by_path = |k: &Known, n: u64, d: u64| reference_by_path(k, &pc, (0, 0), n, d);
    assert_eq!(
        resolve(&fc, 2000, ks, (1, 5), &mut by_path).unwrap(),
        Lineage::CopyOf(0)
    );
}

#[test]
fn marks_stay_bounded_and_keep_both_ends() {
    let mut marks = Vec::new();
    for i in 1..=100_000u64 {
        push_mark(&mut marks, i * 100, i);
        push_mark(&mut marks, i * 100, i); // not beyond the last: ignored
    }
    assert!(marks.len() <= 2 * RECENT_MARKS + 64, "{}", marks.len());
    assert_eq!(marks.first().unwrap().0, 100);
    assert_eq!(marks.last().unwrap().0, 10_000_000);
    assert!(marks.windows(2).all(|w| w[0].0 < w[1].0));
}
