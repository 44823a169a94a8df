//! What real clients send that a strict reading of the schemas would refuse, over raw
//! sockets against the real binary: librdkafka 2.16's Metadata v12 with bytes after the
//! body (Kafka ignores them).

mod common;

use common::{Broker, Conn};
use kafka_protocol::messages::{ApiKey, MetadataResponse};

#[test]
fn librdkafka_2_16_metadata_v12_with_trailing_bytes_is_answered() {
    // Proves the exact 25-byte Metadata v12 frame librdkafka 2.16 sends, three bytes longer
    // than its fields, gets a Metadata v12 response listing this broker instead of a closed
    // connection, and that the connection keeps serving afterwards.
    let broker = Broker::start();
    let mut conn = broker.connect();
    let request: &[u8] = &[
        0x00, 0x03, 0x00, 0x0c, 0x00, 0x00, 0x00, 0x03, 0x00, 0x07, b'r', b'd', b'k', b'a', b'f',
        b'k', b'a', 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
    ];
    for _ in 0..2 {
        let mut frame = (request.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(request);
        conn.send_raw(&frame).unwrap();
        let out = conn
            .read_frame()
            .unwrap()
            .expect("a Metadata response, not a closed connection");
        let resp: MetadataResponse = Conn::parse(ApiKey::Metadata, 12, 3, out);
        assert_eq!(resp.brokers.len(), 1, "{resp:?}");
        assert_eq!(resp.brokers[0].host.as_str(), "127.0.0.1");
    }
}
