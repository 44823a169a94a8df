//! The simulated network: every message is dropped, delayed, duplicated or held back by a
//! partition according to the seed's fault mix. Delivery order follows the delays, so long
//! delays reorder. Node 0 is the controller; brokers are 1..=N.

use rand::Rng;
use rand::rngs::SmallRng;

use crate::batch::BrokerId;

/// How faulty the network is, drawn per seed.
#[derive(Debug, Clone)]
pub struct NetworkFaults {
    pub drop_probability: f64,
    pub duplicate_probability: f64,
    pub delay_ms_max: u64,
    /// Probability that a message takes up to ten times `delay_ms_max`, overtaking others.
    pub slow_probability: f64,
}

impl NetworkFaults {
    pub fn none() -> Self {
        Self {
            drop_probability: 0.0,
            duplicate_probability: 0.0,
            delay_ms_max: 2,
            slow_probability: 0.0,
        }
    }

    pub fn draw(rng: &mut SmallRng) -> Self {
        Self {
            drop_probability: rng.random_range(0.0..0.15),
            duplicate_probability: rng.random_range(0.0..0.05),
            delay_ms_max: rng.random_range(1..20),
            slow_probability: rng.random_range(0.0..0.05),
        }
    }
}

/// Which nodes can reach each other: two nodes talk only if they are on the same side.
#[derive(Debug, Clone)]
pub struct Network {
    pub faults: NetworkFaults,
    /// The side of each node, indexed by node id.
    side: Vec<u8>,
}

impl Network {
    pub fn new(nodes: usize, faults: NetworkFaults) -> Self {
        Self {
            faults,
            side: vec![0; nodes],
        }
    }

    pub fn connected(&self, from: BrokerId, to: BrokerId) -> bool {
        self.side[node(from)] == self.side[node(to)]
    }

    /// Splits the nodes into two random sides.
    pub fn partition(&mut self, rng: &mut SmallRng) {
        for side in &mut self.side {
            *side = u8::from(rng.random_bool(0.5));
        }
    }

    pub fn heal(&mut self) {
        self.side.fill(0);
    }

    pub fn is_partitioned(&self) -> bool {
        self.side.iter().any(|side| *side != self.side[0])
    }

    /// The delays after which copies of one message arrive: none if it is dropped, two if
    /// it is duplicated.
    pub fn delays(&self, rng: &mut SmallRng) -> Vec<u64> {
        let faults = &self.faults;
        if rng.random_bool(faults.drop_probability) {
            return Vec::new();
        }
        let copies = if rng.random_bool(faults.duplicate_probability) {
            2
        } else {
            1
        };
        (0..copies)
            .map(|_| {
                let max = if rng.random_bool(faults.slow_probability) {
                    faults.delay_ms_max * 10
                } else {
                    faults.delay_ms_max
                };
                rng.random_range(1..=max)
            })
            .collect()
    }
}

fn node(id: BrokerId) -> usize {
    usize::try_from(id.0).expect("node ids are not negative")
}
