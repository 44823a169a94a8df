//! The RecordBatch v2 header view, its validation and stamping live in
//! `sluice_record::batch`; re-exported here so `sluice_engine::batch::*` paths keep
//! working.

pub use sluice_record::batch::*;
