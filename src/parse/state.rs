//! The stream state a [`Parser`](super::Parser) carries from record to record, apart from
//! enrichment: the date for time-only stamps, the time for records without one, and the
//! stream's time [`Order`] that flags records stamped far before it `late`. Pieces of a stream
//! parsed in parallel hand it on with [`StreamState::then`].

use super::time::DateCarry;

/// How far before the stream's confirmed high water a stamp may be before the record is
/// flagged `late`. One file or pod log is written in time order; JupyterHub stamps each record
/// when it logs it (`log.py`, tornado's `LogFormatter`), so records of one stream are out of
/// order by the time a request took at most (the request line is logged when it ends).
pub const LATE_SLACK_US: i64 = 3_600_000_000;

/// The stream's time order, to flag records stamped far before it (`late`).
///
/// The high water rises only when two consecutive trusted records agree on it (it is the
/// smaller of the pair), so one forged record dated ahead cannot make the honest records after
/// it look late; a record more than [`LATE_SLACK_US`] before it is `late`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Order {
    pub high_water: Option<i64>,
    /// The last trusted stamp, waiting for the next to confirm it.
    pub last: Option<i64>,
    /// The earliest trusted stamp seen (for pieces parsed without the state before them).
    pub lowest: Option<i64>,
}

impl Order {
    /// Whether `t` is late; if not, it is taken into the order.
    pub(super) fn judge(&mut self, t: i64) -> bool {
        if self.high_water.is_some_and(|h| t < h - LATE_SLACK_US) {
            return true;
        }
        if let Some(p) = self.last {
            let agreed = p.min(t);
            self.high_water = Some(self.high_water.map_or(agreed, |h| h.max(agreed)));
        }
        self.last = Some(t);
        self.lowest = Some(self.lowest.map_or(t, |l| l.min(t)));
        false
    }

    /// The order after a piece that left `after`, parsed from this one.
    pub(super) fn then(&self, after: &Order) -> Order {
        let max = |a: Option<i64>, b: Option<i64>| a.max(b);
        Order {
            high_water: max(self.high_water, after.high_water),
            last: after.last.or(self.last),
            lowest: match (self.lowest, after.lowest) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
        }
    }

    /// Whether a piece parsed without this state may have records late against it that it
    /// could not flag (then parse it again with the state).
    pub fn misses_late(&self, piece: &Order) -> bool {
        matches!((self.high_water, piece.lowest), (Some(h), Some(l)) if l < h - LATE_SLACK_US)
    }
}

/// The stream state a [`Parser`] carries from one record to the next, apart from enrichment:
/// the date for time-only stamps and the time for records without one.
#[derive(Debug, Clone, Default)]
pub struct StreamState {
    pub carry: DateCarry,
    pub last_ts: Option<i64>,
    pub order: Order,
}

impl StreamState {
    /// The state after a piece whose own end state is `after`, parsed from this one.
    pub fn then(&self, after: &StreamState) -> StreamState {
        StreamState {
            carry: if after.carry.is_set() {
                after.carry.clone()
            } else {
                self.carry.clone()
            },
            last_ts: after.last_ts.or(self.last_ts),
            order: self.order.then(&after.order),
        }
    }
}
