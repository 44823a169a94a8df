//! sluice-interop holds no library code: its tests (`tests/`) start the real `sluice`
//! binary and drive it with librdkafka through the `rdkafka` crate. It is its own crate
//! so that building librdkafka from source stays out of the broker's build.
