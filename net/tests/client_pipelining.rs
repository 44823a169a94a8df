//! The client against a scripted broker on loopback: ApiVersions fallback and pipelining.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::{ApiVersion, ApiVersionsResponse};
use kafka_protocol::messages::metadata_response::{MetadataResponse, MetadataResponseTopic};
use kafka_protocol::messages::{ApiKey, ResponseHeader, TopicName};
use kafka_protocol::protocol::{Encodable, StrBytes, decode_request_header_from_buffer};
use sluice_net::client::{Connection, ConnectionConfig, admin};

fn read_frame(stream: &mut std::net::TcpStream) -> Option<Bytes> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).ok()?;
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).ok()?;
    Some(Bytes::from(body))
}

fn respond(
    stream: &mut std::net::TcpStream,
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &impl Encodable,
) {
    let mut out = BytesMut::new();
    out.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut out, api.response_header_version(version))
        .unwrap();
    body.encode(&mut out, version).unwrap();
    let len = (out.len() - 4) as i32;
    out[..4].copy_from_slice(&len.to_be_bytes());
    stream.write_all(&out).unwrap();
}

fn range(key: ApiKey, min: i16, max: i16) -> ApiVersion {
    ApiVersion::default()
        .with_api_key(key as i16)
        .with_min_version(min)
        .with_max_version(max)
}

/// A broker that rejects ApiVersions v3 (answering with a v0 body and error 35), accepts v2,
/// then reads five Metadata requests before answering any, each with throttle_time_ms set to
/// the request's correlation id.
fn scripted_broker(listener: TcpListener) -> Vec<(i16, i16)> {
    let (mut stream, _) = listener.accept().unwrap();
    let mut seen = Vec::new();
    let mut metadata = Vec::new();
    while let Some(mut frame) = read_frame(&mut stream) {
        let header = decode_request_header_from_buffer(&mut frame).unwrap();
        let api = ApiKey::try_from(header.request_api_key).unwrap();
        let version = header.request_api_version;
        seen.push((header.request_api_key, version));
        match api {
            ApiKey::ApiVersions if version > 2 => {
                let body = ApiVersionsResponse::default()
                    .with_error_code(35)
                    .with_api_keys(vec![range(ApiKey::ApiVersions, 0, 2)]);
                respond(&mut stream, api, 0, header.correlation_id, &body);
            }
            ApiKey::ApiVersions => {
                let body = ApiVersionsResponse::default().with_api_keys(vec![
                    range(ApiKey::ApiVersions, 0, 2),
                    range(ApiKey::Metadata, 0, 9),
                ]);
                respond(&mut stream, api, version, header.correlation_id, &body);
            }
            ApiKey::Metadata => {
                metadata.push((version, header.correlation_id));
                if metadata.len() == 5 {
                    for (version, correlation_id) in metadata.drain(..) {
                        let topic = MetadataResponseTopic::default().with_name(Some(TopicName(
                            StrBytes::from_string(format!("t{correlation_id}")),
                        )));
                        let body = MetadataResponse::default()
                            .with_throttle_time_ms(correlation_id)
                            .with_topics(vec![topic]);
                        respond(&mut stream, api, version, correlation_id, &body);
                    }
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    seen
}

#[test]
fn falls_back_on_api_versions_and_matches_pipelined_responses() {
    // Proves over a real loopback socket that the client retries ApiVersions at the version a
    // broker names in its error-35 reply, negotiates Metadata down to the broker's v9, and that
    // five requests written before any response arrives are answered and matched in order.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let broker = std::thread::spawn(move || scripted_broker(listener));

    let ex = glommio::LocalExecutorBuilder::default().make().unwrap();
    ex.run(async move {
        let connection = Connection::connect(&addr, ConnectionConfig::default())
            .await
            .unwrap();
        assert_eq!(connection.versions().version(ApiKey::Metadata), Some(9));
        assert_eq!(connection.versions().version(ApiKey::Produce), None);
        let (mut writer, mut reader) = connection.split();
        let mut sent = Vec::new();
        for i in 0..5 {
            let name = format!("t{i}");
            let request = admin::metadata_request(Some(&[name.as_str()]), false);
            sent.push(writer.send(&request).await.unwrap());
        }
        assert_eq!(reader.in_flight(), 5);
        for s in sent {
            let response = glommio::future::timeout(
                Duration::from_secs(10),
                reader.recv::<kafka_protocol::messages::MetadataRequest>(),
            )
            .await
            .unwrap()
            .unwrap();
            assert_eq!(s.version, 9);
            assert_eq!(response.throttle_time_ms, s.correlation_id);
            let name = response.topics[0].name.as_ref().unwrap();
            assert_eq!(name.0.as_str(), format!("t{}", s.correlation_id));
        }
        assert_eq!(reader.in_flight(), 0);
        writer.close().await.unwrap();
    });
    let seen = broker.join().unwrap();
    assert_eq!(seen[0], (ApiKey::ApiVersions as i16, 3));
    assert_eq!(seen[1], (ApiKey::ApiVersions as i16, 2));
    assert_eq!(seen.len(), 7);
}
