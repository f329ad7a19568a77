//! `activity` rows read back from a batch, for compaction ([`super::activity::Activity::fold_batch`])
//! and for `hubpulse migrate`'s format 2 parts ([`super::migrate_activity`]): the columns both
//! formats share, checked once per batch (a part that does not have them is an error, not a
//! panic), and each row's folded reports. The `times` list is left to the caller: format 3 lists
//! milliseconds, format 2 µs.

use arrow::array::{
    Array, ArrayRef, AsArray, GenericListArray, Int32Array, Int64Array, RecordBatch, StringArray,
};
use arrow::datatypes::{Int32Type, Int64Type};
use arrow::error::ArrowError;

use super::activity::MetaRef;

/// A folded report's fields but its time.
#[derive(Clone, Copy, Debug)]
pub struct Report<'a> {
    pub status: i32,
    pub duration: i32,
    pub client_ip: &'a str,
    pub offset: i64,
}

type List = GenericListArray<i32>;

/// A list column and its items.
struct Items<'a, T> {
    list: &'a List,
    items: &'a T,
}

impl<T> Items<'_, T> {
    /// Where row `i`'s items are.
    fn range(&self, i: usize) -> std::ops::Range<usize> {
        let o = self.list.value_offsets();
        o[i] as usize..o[i + 1] as usize
    }
}

/// An `activity` batch's columns (see [`super::heartbeat::activity_schema`]).
pub struct ActivityRows<'a> {
    pub user: &'a StringArray,
    meta: [&'a StringArray; 4],
    pub times: &'a List,
    statuses: Items<'a, Int32Array>,
    durations: Items<'a, Int32Array>,
    client_ips: Items<'a, StringArray>,
    offsets: Items<'a, Int64Array>,
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef, ArrowError> {
    Ok(batch.column(batch.schema_ref().index_of(name)?))
}

fn strings<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a StringArray, ArrowError> {
    column(batch, name)?
        .as_string_opt::<i32>()
        .ok_or_else(|| ArrowError::SchemaError(format!("activity.{name}: not Utf8")))
}

fn list<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a List, ArrowError> {
    column(batch, name)?
        .as_list_opt::<i32>()
        .ok_or_else(|| ArrowError::SchemaError(format!("activity.{name}: not a list")))
}

fn items<'a, T: 'static>(
    batch: &'a RecordBatch,
    name: &str,
    cast: impl Fn(&'a ArrayRef) -> Option<&'a T>,
) -> Result<Items<'a, T>, ArrowError> {
    let list = list(batch, name)?;
    let items = cast(list.values()).ok_or_else(|| {
        ArrowError::SchemaError(format!("activity.{name}: items of a wrong type"))
    })?;
    Ok(Items { list, items })
}

impl<'a> ActivityRows<'a> {
    /// The columns of `batch`, whose durations list is named `durations` (`durations_cs`, or
    /// format 2's `durations_us`).
    pub fn of(batch: &'a RecordBatch, durations: &str) -> Result<Self, ArrowError> {
        Ok(ActivityRows {
            user: strings(batch, "user")?,
            meta: [
                strings(batch, "logger")?,
                strings(batch, "module")?,
                strings(batch, "source_file")?,
                strings(batch, "source_fp")?,
            ],
            times: list(batch, "times")?,
            statuses: items(batch, "statuses", |a| a.as_primitive_opt::<Int32Type>())?,
            durations: items(batch, durations, |a| a.as_primitive_opt::<Int32Type>())?,
            client_ips: items(batch, "client_ips", |a| a.as_string_opt::<i32>())?,
            offsets: items(batch, "offsets", |a| a.as_primitive_opt::<Int64Type>())?,
        })
    }

    pub fn len(&self) -> usize {
        self.user.len()
    }

    pub fn is_empty(&self) -> bool {
        self.user.is_empty()
    }

    /// Row `i`'s shared fields and its reports, in the order of its times; `None` for a row
    /// that lists bare times (`offsets` null). An error when a list is not as long as `times`.
    pub fn reports(
        &self,
        i: usize,
    ) -> Result<Option<(MetaRef<'a>, impl Iterator<Item = Report<'a>> + 'a)>, ArrowError> {
        if !self.offsets.list.is_valid(i) {
            return Ok(None);
        }
        let meta = MetaRef {
            logger: self.meta[0].value(i),
            module: self.meta[1].value(i),
            source_file: self.meta[2].value(i),
            source_fp: self.meta[3].value(i),
        };
        let n = self.times.value_length(i) as usize;
        let ranges = [
            self.statuses.range(i),
            self.durations.range(i),
            self.client_ips.range(i),
            self.offsets.range(i),
        ];
        if ranges.iter().any(|r| r.len() != n) {
            return Err(ArrowError::InvalidArgumentError(format!(
                "activity row {i}: lists of other lengths than its {n} times"
            )));
        }
        let [st, du, ip, of] = ranges.map(|r| r.start);
        let (statuses, durations) = (self.statuses.items, self.durations.items);
        let (client_ips, offsets) = (self.client_ips.items, self.offsets.items);
        let reports = (0..n).map(move |k| Report {
            status: statuses.value(st + k),
            duration: durations.value(du + k),
            client_ip: client_ips.value(ip + k),
            offset: offsets.value(of + k),
        });
        Ok(Some((meta, reports)))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int32Array, ListArray};
    use arrow::buffer::OffsetBuffer;
    use arrow::datatypes::Field;

    use super::*;
    use crate::lake::activity::{Activity, Beat};

    fn one_user() -> RecordBatch {
        let mut a = Activity::default();
        for (ts, off) in [(1_000, 10), (2_000, 20)] {
            let meta = MetaRef {
                logger: "JupyterHub",
                module: "log:192",
                source_file: "hub.log",
                source_fp: "00ff",
            };
            let b = Beat {
                ts,
                status: 200,
                duration_cs: 741,
                client_ip: "10.0.0.1",
                offset: off,
            };
            a.add_beat("ana", meta, b);
        }
        a.to_batch().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_row_reads_back_its_reports_in_order() {
        let batch = one_user();
        let rows = ActivityRows::of(&batch, "durations_cs").unwrap_or_else(|e| panic!("{e}"));
        let Ok(Some((meta, reports))) = rows.reports(0) else {
            panic!("a row of reports");
        };
        assert_eq!(meta.module, "log:192");
        let got: Vec<_> = reports.map(|r| (r.offset, r.status, r.duration)).collect();
        assert_eq!(got, [(10, 200, 741), (20, 200, 741)]);
    }

    /// A part that is not what its schema promises is an error naming the column, not a panic.
    #[test]
    fn a_part_of_other_columns_is_an_error() {
        let batch = one_user();
        let err = |b: &RecordBatch| {
            ActivityRows::of(b, "durations_cs")
                .err()
                .map(|e| e.to_string())
        };
        assert!(err(&batch).is_none());
        assert!(
            ActivityRows::of(&batch, "durations_us").is_err(),
            "no such column"
        );
        // `statuses` with one item fewer than the row's times.
        let i = batch
            .schema_ref()
            .index_of("statuses")
            .unwrap_or_else(|e| panic!("{e}"));
        let item = Arc::new(Field::new_list_field(
            arrow::datatypes::DataType::Int32,
            false,
        ));
        let short = ListArray::new(
            item,
            OffsetBuffer::from_lengths([1]),
            Arc::new(Int32Array::from(vec![200])),
            None,
        );
        let mut cols = batch.columns().to_vec();
        cols[i] = Arc::new(short);
        let bad = RecordBatch::try_new(batch.schema(), cols).unwrap_or_else(|e| panic!("{e}"));
        let rows = ActivityRows::of(&bad, "durations_cs").unwrap_or_else(|e| panic!("{e}"));
        assert!(rows.reports(0).is_err());
        // `statuses` items of another type.
        let wide = ListArray::new(
            Arc::new(Field::new_list_field(
                arrow::datatypes::DataType::Int64,
                false,
            )),
            OffsetBuffer::from_lengths([2]),
            Arc::new(Int64Array::from(vec![200, 200])),
            None,
        );
        let mut cols = batch.columns().to_vec();
        cols[i] = Arc::new(wide);
        let mut fields: Vec<_> = batch.schema().fields().iter().cloned().collect();
        fields[i] = Arc::new(Field::new("statuses", cols[i].data_type().clone(), true));
        let schema = Arc::new(arrow::datatypes::Schema::new(fields));
        let bad = RecordBatch::try_new(schema, cols).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            err(&bad).is_some_and(|e| e.contains("activity.statuses")),
            "{:?}",
            err(&bad)
        );
    }
}
