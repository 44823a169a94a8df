//! The real `sluice` broker for these tests, from `sluice-testkit`: a free 127.0.0.1 port,
//! a temporary data directory, killed by PID when dropped. These tests start it with
//! `Broker::start_single_core()`, leaving the other core to the client under test.
// Compiled into every test binary of this crate, each using only some of it.
#![allow(dead_code, unused_imports)]

pub use sluice_testkit::{Broker, BrokerOptions, Conn, free_port, sluice_bin, workspace_binary};
