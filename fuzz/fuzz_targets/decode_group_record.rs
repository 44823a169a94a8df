//! Fuzz target: arbitrary bytes as the key and the values of a `__consumer_offsets`
//! record, which the group coordinator decodes when it loads a partition from disk. A
//! corrupt or foreign record must be an error: nothing may panic or allocate beyond the
//! input's size. Whatever decodes must survive a round trip through the version we
//! write: keys and group metadata values come back equal, offset commit values too but
//! for the expire timestamp only version 1 carries.
//!
//! Each input is used twice: raw (its first two bytes are the version), and steered,
//! with its first byte choosing version 0 to 5 (5 stands for the versions above 4, which
//! are read as 4), so every layout is reached.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_server::group::record::{
    OffsetCommitValue, decode_group_metadata_value, decode_key, decode_offset_commit_value,
    encode_group_metadata_value, encode_key, encode_offset_commit_value,
};

fn decode_and_round_trip(bytes: &[u8]) {
    if let Ok(key) = decode_key(bytes) {
        assert_eq!(decode_key(&encode_key(&key)), Ok(key));
    }
    if let Ok(value) = decode_offset_commit_value(bytes) {
        let again = decode_offset_commit_value(&encode_offset_commit_value(&value));
        let expected = OffsetCommitValue {
            expire_timestamp_ms: -1,
            ..value
        };
        assert_eq!(again, Ok(expected));
    }
    if let Ok(value) = decode_group_metadata_value(bytes) {
        let again = decode_group_metadata_value(&encode_group_metadata_value(&value));
        assert_eq!(again, Ok(value));
    }
}

fuzz_target!(|data: &[u8]| {
    decode_and_round_trip(data);

    if let [version_pick, rest @ ..] = data {
        let mut steered = Vec::with_capacity(2 + rest.len());
        steered.extend_from_slice(&i16::from(*version_pick % 6).to_be_bytes());
        steered.extend_from_slice(rest);
        decode_and_round_trip(&steered);
    }
});
