//! ApiVersions over a raw socket: every advertised range is non-empty, and a request at a
//! version above our maximum gets the v0 fallback (error 35 plus our ranges) on a v0 body.

mod common;

use common::{Broker, Conn};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::StrBytes;

#[test]
fn advertises_ranges_and_falls_back_to_v0() {
    // Proves ApiVersions v3 lists ApiVersions and Metadata with sane ranges, and that an
    // ApiVersions v99 request is answered with UNSUPPORTED_VERSION in a v0 body listing
    // the same ranges, on the same connection that keeps working afterwards.
    let broker = Broker::start();
    let mut conn = broker.connect();
    let req = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("test"))
        .with_client_software_version(StrBytes::from_static_str("1"));
    let resp: ApiVersionsResponse = conn.call(ApiKey::ApiVersions, 3, &req);
    assert_eq!(resp.error_code, 0);
    for k in &resp.api_keys {
        assert!(k.min_version <= k.max_version, "{k:?}");
    }
    let find = |key: ApiKey| {
        resp.api_keys
            .iter()
            .find(|k| k.api_key == key as i16)
            .cloned()
    };
    assert!(find(ApiKey::ApiVersions).unwrap().max_version >= 3);
    assert!(find(ApiKey::Metadata).is_some());

    let frame = Conn::frame(ApiKey::ApiVersions, 0, 77, &ApiVersionsRequest::default());
    // Rewrite the version field (bytes 6..8 after the size prefix) to 99.
    let mut raw = frame.to_vec();
    raw[6..8].copy_from_slice(&99i16.to_be_bytes());
    conn.send_raw(&raw).unwrap();
    let out = conn.read_frame().unwrap().expect("fallback response");
    let fallback: ApiVersionsResponse = Conn::parse(ApiKey::ApiVersions, 0, 77, out);
    assert_eq!(
        fallback.error_code,
        ResponseError::UnsupportedVersion.code()
    );
    assert_eq!(fallback.api_keys.len(), resp.api_keys.len());

    let again: ApiVersionsResponse =
        conn.call(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default());
    assert_eq!(again.error_code, 0);
}
