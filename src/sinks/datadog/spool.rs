//! The bounded buffer between payload building and sending: memory first, spilling to disk.
//!
//! Payloads wait here, oldest first, until the sender has delivered (or dropped) them. A long
//! Datadog outage fills memory up to `memory_limit`; past it the *oldest* payloads in memory move
//! to disk, one file each, so memory stays bounded and the order stays oldest-first (everything
//! on disk is older than everything in memory). Past `disk_limit` the oldest payloads are dropped
//! and counted; without a spill directory (dry runs) memory overflow drops the oldest.
//!
//! # Guarantees
//! * `mem_bytes() <= memory_limit` after every [`Spool::push`] (a single payload is at most
//!   512,000 bytes, far below the 1 MiB minimum limit).
//! * A payload leaves the spool only by [`Spool::ack`] (delivered, or dropped by the sender) or
//!   by a counted drop here; [`Spool::persist`] moves what is in memory to disk at shutdown, and
//!   [`Spool::open`] reads the directory back, so a restart resends what was not delivered.
//! * Files are written to `*.tmp` and renamed, so a crash leaves whole files or stray `*.tmp`
//!   files (deleted at open).
//!
//! File name: `<seq, 20 digits>.<series|dist>.<codec>.<oldest_s>.<points>.<series>.<raw bytes>.dd`,
//! the body (compressed, exactly as sent) inside.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use crate::sinks::datadog::payload::{Codec, Endpoint, Payload};

/// Bytes a payload costs in memory besides its body.
const OVERHEAD: usize = 128;

#[derive(Debug, Clone)]
pub struct SpoolConfig {
    /// `None`: no disk; memory overflow drops the oldest payload.
    pub dir: Option<PathBuf>,
    pub memory_limit: usize,
    pub disk_limit: u64,
}

/// Points dropped by the spool, with a bounded reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drop {
    pub reason: &'static str,
    pub points: u64,
}

#[derive(Debug)]
struct OnDisk {
    seq: u64,
    path: PathBuf,
    len: u64,
    points: u64,
}

#[derive(Debug)]
pub struct Spool {
    cfg: SpoolConfig,
    mem: VecDeque<(u64, Payload)>,
    mem_bytes: usize,
    disk: VecDeque<OnDisk>,
    disk_bytes: u64,
    next_seq: u64,
    /// Held for the spool's life: two agents never send one spool.
    _lock: Option<std::fs::File>,
}

fn cost(p: &Payload) -> usize {
    p.body.len() + OVERHEAD
}

fn ep_name(e: Endpoint) -> &'static str {
    match e {
        Endpoint::Series => "series",
        Endpoint::DistributionPoints => "dist",
        Endpoint::Events => "event",
        Endpoint::Logs => "logs",
    }
}

fn file_name(seq: u64, p: &Payload) -> String {
    format!(
        "{seq:020}.{}.{}.{}.{}.{}.{}.dd",
        ep_name(p.endpoint),
        p.codec.content_encoding(),
        p.oldest_s,
        p.points,
        p.series,
        p.uncompressed_len
    )
}

/// The payload's metadata from its file name (the body is read when it is sent).
fn parse_name(name: &str) -> Option<(u64, Payload)> {
    let f: Vec<&str> = name.strip_suffix(".dd")?.split('.').collect();
    let [seq, ep, codec, oldest, points, series, raw] = f.as_slice() else {
        return None;
    };
    let endpoint = match *ep {
        "series" => Endpoint::Series,
        "dist" => Endpoint::DistributionPoints,
        "event" => Endpoint::Events,
        "logs" => Endpoint::Logs,
        _ => return None,
    };
    let codec = match *codec {
        "deflate" => Codec::Deflate,
        "gzip" => Codec::Gzip,
        "zstd1" => Codec::Zstd1,
        "identity" => Codec::Identity,
        _ => return None,
    };
    Some((
        seq.parse().ok()?,
        Payload {
            endpoint,
            codec,
            body: Vec::new(),
            uncompressed_len: raw.parse().ok()?,
            series: series.parse().ok()?,
            points: points.parse().ok()?,
            oldest_s: oldest.parse().ok()?,
        },
    ))
}

impl Spool {
    /// Open the spool, reading back payloads a previous run left on disk (oldest first).
    ///
    /// # Errors
    /// The directory cannot be created or listed, or another process holds it.
    pub fn open(cfg: SpoolConfig) -> std::io::Result<Spool> {
        let mut disk = Vec::new();
        let mut disk_bytes = 0;
        let mut lock = None;
        if let Some(dir) = &cfg.dir {
            std::fs::create_dir_all(dir)?;
            let f = std::fs::File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(dir.join("lock"))?;
            if let Err(e) = f.try_lock() {
                return Err(std::io::Error::other(format!(
                    "{}: in use by another agent ({e})",
                    dir.display()
                )));
            }
            lock = Some(f);
            for e in std::fs::read_dir(dir)? {
                let e = e?;
                let name = e.file_name().to_string_lossy().into_owned();
                if name == "lock" {
                    continue;
                }
                if name.ends_with(".tmp") {
                    let _ = std::fs::remove_file(e.path());
                    continue;
                }
                let Some((seq, p)) = parse_name(&name) else {
                    tracing::warn!(file = %e.path().display(), "not a spooled payload; left alone");
                    continue;
                };
                let len = e.metadata()?.len();
                disk_bytes += len;
                disk.push(OnDisk {
                    seq,
                    path: e.path(),
                    len,
                    points: p.points as u64,
                });
            }
        }
        disk.sort_by_key(|d| d.seq);
        let next_seq = disk.last().map_or(0, |d| d.seq + 1);
        if !disk.is_empty() {
            tracing::info!(
                payloads = disk.len(),
                bytes = disk_bytes,
                "datadog: resending payloads spooled by a previous run"
            );
        }
        Ok(Spool {
            cfg,
            mem: VecDeque::new(),
            mem_bytes: 0,
            disk: disk.into(),
            disk_bytes,
            next_seq,
            _lock: lock,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.mem.is_empty() && self.disk.is_empty()
    }

    pub fn len(&self) -> usize {
        self.mem.len() + self.disk.len()
    }

    pub fn mem_bytes(&self) -> usize {
        self.mem_bytes
    }

    pub fn disk_bytes(&self) -> u64 {
        self.disk_bytes
    }

    /// Queue a payload; returns what had to be dropped to keep the bounds.
    pub fn push(&mut self, p: Payload) -> Vec<Drop> {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.mem_bytes += cost(&p);
        self.mem.push_back((seq, p));
        let mut drops = Vec::new();
        while self.mem_bytes > self.cfg.memory_limit {
            let Some((seq, p)) = self.mem.pop_front() else {
                break;
            };
            self.mem_bytes -= cost(&p);
            if let Some(d) = self.spill(seq, &p) {
                drops.push(d);
            }
        }
        drops.extend(self.trim_disk());
        drops
    }

    /// Write one payload to disk; a failed write drops it (counted).
    fn spill(&mut self, seq: u64, p: &Payload) -> Option<Drop> {
        let Some(dir) = &self.cfg.dir else {
            return Some(Drop {
                reason: "buffer_full",
                points: p.points as u64,
            });
        };
        let path = dir.join(file_name(seq, p));
        let tmp = path.with_extension("tmp");
        let r = std::fs::write(&tmp, &p.body).and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = r {
            tracing::error!(error = %e, dir = %dir.display(), "datadog: cannot spool a payload to disk; dropped");
            let _ = std::fs::remove_file(&tmp);
            return Some(Drop {
                reason: "spool_io",
                points: p.points as u64,
            });
        }
        let len = p.body.len() as u64;
        self.disk_bytes += len;
        self.disk.push_back(OnDisk {
            seq,
            path,
            len,
            points: p.points as u64,
        });
        None
    }

    fn trim_disk(&mut self) -> Vec<Drop> {
        let mut drops = Vec::new();
        while self.disk_bytes > self.cfg.disk_limit {
            let Some(d) = self.disk.pop_front() else {
                break;
            };
            self.remove(&d);
            drops.push(Drop {
                reason: "spool_full",
                points: d.points,
            });
        }
        drops
    }

    fn remove(&mut self, d: &OnDisk) {
        self.disk_bytes = self.disk_bytes.saturating_sub(d.len);
        if let Err(e) = std::fs::remove_file(&d.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(file = %d.path.display(), error = %e, "datadog: cannot remove a spooled payload");
        }
    }

    /// The oldest payload (a copy; it stays queued until [`Spool::ack`]). A spooled file that
    /// cannot be read is dropped and reported in the second value.
    pub fn front(&mut self) -> (Option<(u64, Payload)>, Vec<Drop>) {
        let mut drops = Vec::new();
        while let Some(d) = self.disk.front() {
            let name = d.path.file_name().map(|n| n.to_string_lossy().into_owned());
            let parsed = name.as_deref().and_then(parse_name);
            match (parsed, std::fs::read(&d.path)) {
                (Some((seq, mut p)), Ok(body)) => {
                    p.body = body;
                    return (Some((seq, p)), drops);
                }
                (_, r) => {
                    if let Err(e) = r {
                        tracing::error!(file = %d.path.display(), error = %e, "datadog: cannot read a spooled payload; dropped");
                    }
                    if let Some(d) = self.disk.pop_front() {
                        drops.push(Drop {
                            reason: "spool_io",
                            points: d.points,
                        });
                        self.remove(&d);
                    }
                }
            }
        }
        (self.mem.front().map(|(s, p)| (*s, p.clone())), drops)
    }

    /// Forget payload `seq` (delivered, or dropped by the sender).
    pub fn ack(&mut self, seq: u64) {
        if self.disk.front().is_some_and(|d| d.seq == seq) {
            if let Some(d) = self.disk.pop_front() {
                self.remove(&d);
            }
        } else if self.mem.front().is_some_and(|(s, _)| *s == seq)
            && let Some((_, p)) = self.mem.pop_front()
        {
            self.mem_bytes -= cost(&p);
        }
    }

    /// Move everything in memory to disk (shutdown): the next run sends it.
    pub fn persist(&mut self) -> Vec<Drop> {
        let mut drops = Vec::new();
        while let Some((seq, p)) = self.mem.pop_front() {
            self.mem_bytes -= cost(&p);
            drops.extend(self.spill(seq, &p));
        }
        drops.extend(self.trim_disk());
        drops
    }

    pub fn dir(&self) -> Option<&Path> {
        self.cfg.dir.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(n: usize, oldest_s: i64) -> Payload {
        Payload {
            endpoint: Endpoint::Series,
            codec: Codec::Deflate,
            body: vec![7u8; n],
            uncompressed_len: n * 3,
            series: 2,
            points: 5,
            oldest_s,
        }
    }

    #[test]
    fn memory_is_bounded_and_order_is_kept_across_spill_and_restart() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = SpoolConfig {
            dir: Some(dir.path().to_path_buf()),
            memory_limit: 10_000,
            disk_limit: 1 << 30,
        };
        let mut s = Spool::open(cfg.clone()).unwrap();
        for i in 0..50 {
            assert!(s.push(payload(1000, i)).is_empty());
            assert!(s.mem_bytes() <= 10_000);
        }
        assert!(s.disk_bytes() > 0);
        // The first three come back from disk, in order.
        for i in 0..3 {
            let (Some((seq, p)), d) = s.front() else {
                panic!()
            };
            assert!(d.is_empty());
            assert_eq!(p.oldest_s, i);
            assert_eq!(p.body.len(), 1000);
            s.ack(seq);
        }
        assert!(s.persist().is_empty());
        assert_eq!(s.mem_bytes(), 0);
        drop(s);
        let mut s = Spool::open(cfg).unwrap();
        assert_eq!(s.len(), 47);
        let mut seen = Vec::new();
        while let (Some((seq, p)), _) = s.front() {
            seen.push(p.oldest_s);
            s.ack(seq);
        }
        assert_eq!(seen, (3..50).collect::<Vec<_>>());
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "only the lock"
        );
        assert!(
            Spool::open(SpoolConfig {
                dir: Some(dir.path().to_path_buf()),
                memory_limit: 1 << 20,
                disk_limit: 0
            })
            .is_err(),
            "locked"
        );
    }

    #[test]
    fn overflow_drops_the_oldest_and_counts_them() {
        let mut s = Spool::open(SpoolConfig {
            dir: None,
            memory_limit: 3 * (1000 + OVERHEAD),
            disk_limit: 0,
        })
        .unwrap();
        let mut dropped = Vec::new();
        for i in 0..5 {
            dropped.extend(s.push(payload(1000, i)));
        }
        assert_eq!(dropped.len(), 2);
        assert!(
            dropped
                .iter()
                .all(|d| d.reason == "buffer_full" && d.points == 5)
        );
        assert_eq!(s.front().0.unwrap().1.oldest_s, 2);

        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(SpoolConfig {
            dir: Some(dir.path().to_path_buf()),
            memory_limit: 1000 + OVERHEAD,
            disk_limit: 2000,
        })
        .unwrap();
        let mut dropped = Vec::new();
        for i in 0..5 {
            dropped.extend(s.push(payload(1000, i)));
        }
        // One in memory, two on disk (the limit), the two oldest dropped.
        assert_eq!(
            dropped.iter().filter(|d| d.reason == "spool_full").count(),
            2
        );
        assert_eq!(s.len(), 3);
        assert_eq!(s.front().0.unwrap().1.oldest_s, 2);
    }
}
