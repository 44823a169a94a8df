//! sluice-interop holds no library code: its tests (`tests/`) start the real `sluice`
//! binary and drive it with librdkafka through the `rdkafka` crate, and with the clients
//! users have at their newest releases (`tests/clients_*.rs`): kcat, confluent-kafka and
//! kafka-python (`tests/python/`), KafkaJS (`js/`) and Debian's Sarama (`go/`), run as
//! child processes. `scripts/install-test-deps.sh` installs them. It is its own crate so
//! that building librdkafka from source stays out of the broker's build.
