//! Fuzz target: arbitrary bytes through the framing and request decoding a
//! connection applies to untrusted input. Nothing may panic, hang or allocate
//! beyond the input's size, and whatever decodes must survive a round trip:
//! when kafka-protocol can encode the decoded request again, decoding that
//! encoding gives the same request.
//!
//! Each input is used twice: as a raw frame, and steered, with its first two
//! bytes choosing one decodable api key and one of its versions, so most runs
//! reach a body decoder instead of stopping at an unknown api key.

#![no_main]

use bytes::{BufMut, Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use sluice_net::kafka_protocol::protocol::encode_request_header_into_buffer;
use sluice_net::{DECODABLE_API_KEYS, decodable_versions, decode_request, split_frame};

fn decode_and_round_trip(frame: Bytes) {
    let Ok(request) = decode_request(frame) else {
        return;
    };
    let mut again = BytesMut::new();
    if encode_request_header_into_buffer(&mut again, &request.header).is_err() {
        return;
    }
    // kafka-protocol refuses some values our lenient decoder accepts (null
    // where a version does not allow it); those cannot be compared.
    if request
        .body
        .encode(&mut again, request.api_version)
        .is_err()
    {
        return;
    }
    let reread = decode_request(again.freeze()).expect("our own re-encoding decodes");
    // Debug text, so that a NaN quota value compares equal to itself.
    assert_eq!(format!("{reread:?}"), format!("{request:?}"));
}

fuzz_target!(|data: &[u8]| {
    decode_and_round_trip(Bytes::copy_from_slice(data));

    let mut stream = BytesMut::from(data);
    while let Ok(Some(frame)) = split_frame(&mut stream, 1 << 20) {
        let _ = decode_request(frame);
    }

    if let [key_pick, version_pick, rest @ ..] = data {
        let api_key = DECODABLE_API_KEYS[*key_pick as usize % DECODABLE_API_KEYS.len()];
        let (min, max) = decodable_versions(api_key).expect("listed keys are decodable");
        let version = min + (*version_pick as i16 % (max - min + 1));
        let mut frame = BytesMut::with_capacity(8 + rest.len());
        frame.put_i16(api_key as i16);
        frame.put_i16(version);
        frame.put_i32(1);
        frame.put_slice(rest);
        decode_and_round_trip(frame.freeze());
    }
});
