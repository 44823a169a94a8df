//! Starts the real `sluice` broker for tests with `--cores 1`: a free 127.0.0.1 port, a
//! temporary data directory, killed by PID when the guard drops. The harness is
//! `sluice-testkit`'s; this wrapper only fixes the core count these tests expect.
#![allow(dead_code, unused_imports)]

use std::ops::{Deref, DerefMut};

pub use sluice_testkit::{BrokerOptions, Conn, free_port, sluice_bin, workspace_binary};

/// A `sluice_testkit::Broker` started with `--cores 1`; every method of that type is
/// reachable through this one.
pub struct Broker(sluice_testkit::Broker);

impl Broker {
    pub fn start() -> Broker {
        Broker(sluice_testkit::Broker::launch(
            BrokerOptions::default().cores(1),
        ))
    }

    // Forwarded so that they also work as paths (`Broker::log`), which deref does not.
    pub fn bootstrap(&self) -> String {
        self.0.bootstrap()
    }

    pub fn pid(&self) -> i32 {
        self.0.pid()
    }

    pub fn log(&self) -> String {
        self.0.log()
    }
}

impl Deref for Broker {
    type Target = sluice_testkit::Broker;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for Broker {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}
