//! One broker per listen address and per data directory: a second `sluice` started on a
//! running broker's port (another data directory) or on its data directory (another port)
//! exits non-zero at once with "address in use" or the directory's name, while the first
//! keeps serving. Without the checks, SO_REUSEPORT let the second share the port.

mod common;

use std::time::Duration;

use common::{Broker, BrokerOptions};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use sluice_testkit::Exit;

/// How long a refused second broker may take to exit.
const REFUSE_TIMEOUT: Duration = Duration::from_secs(20);

/// The second broker exited by itself, and not with status 0.
fn assert_refused_by_itself(out: &Exit) {
    let stderr = &out.log;
    assert!(
        out.status.is_some(),
        "second broker kept running:\n{stderr}"
    );
    assert!(!out.success(), "second broker exited 0:\n{stderr}");
}

fn assert_serves(broker: &Broker) {
    broker.assert_running();
    let mut conn = broker.connect();
    let resp: ApiVersionsResponse =
        conn.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert_eq!(resp.error_code, 0);
}

// Proves a second broker on a running broker's address (its own data directory) refuses
// to start: it exits non-zero by itself and says "address in use", and the first broker
// still serves. Before the check it bound the port beside the first (SO_REUSEPORT) and ran.
#[test]
fn second_broker_on_the_same_port_refuses_to_start() {
    let broker = Broker::start();
    let out = BrokerOptions::default()
        .listen(&broker.bootstrap())
        .spawn_expecting_exit(REFUSE_TIMEOUT);
    let stderr = &out.log;
    assert_refused_by_itself(&out);
    assert!(
        stderr.contains("address in use"),
        "no 'address in use' in:\n{stderr}"
    );
    assert!(
        stderr.contains(&broker.bootstrap()),
        "address not named:\n{stderr}"
    );
    assert_serves(&broker);
}

// Proves a second broker on a running broker's data directory (another free port) refuses
// to start: it exits non-zero by itself, naming the directory, before it opens any log,
// and the first broker still serves. Before the lock both opened the same segment files.
#[test]
fn second_broker_on_the_same_data_dir_refuses_to_start() {
    let broker = Broker::start();
    let out = BrokerOptions::default()
        .data_dir(broker.data_dir())
        .spawn_expecting_exit(REFUSE_TIMEOUT);
    let stderr = &out.log;
    assert_refused_by_itself(&out);
    assert!(
        stderr.contains(&broker.data_dir().display().to_string()),
        "data directory not named:\n{stderr}"
    );
    assert!(stderr.contains("in use"), "no 'in use' in:\n{stderr}");
    assert!(
        !stderr.contains("opened partition"),
        "second broker opened logs:\n{stderr}"
    );
    assert_serves(&broker);
}
