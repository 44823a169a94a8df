//! What one shard keeps for all its client connections: its share of
//! queued.max.request.bytes (the budget frames being read reserve), the scratch buffer
//! idle connections read into, and, on `ADMISSION_SHARD`, the count of open connections
//! behind max.connections and max.connections.per.ip. Runs on its own shard; the counts
//! are reached from other shards through `ShardRequest::AdmitConnection`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;

use glommio::sync::Semaphore;
use tracing::warn;

use crate::config::BrokerArgs;
use crate::mesh::Admission;
use crate::topic_table::ShardId;

/// Most bytes asked of the socket per read, into the shard's scratch (idle connections)
/// or into the buffer of a frame in progress.
pub const READ_CHUNK: usize = 64 * 1024;
/// The shard that counts connections for max.connections and max.connections.per.ip.
pub const ADMISSION_SHARD: ShardId = ShardId(0);

/// Connection state of one shard: its share of queued.max.request.bytes, the scratch
/// idle connections read into, and, on `ADMISSION_SHARD`, the count of open connections.
pub struct ShardConnections {
    /// Bytes of frames being read; `None` when queued.max.request.bytes is -1.
    pub budget: Option<Semaphore>,
    /// This shard's share of queued.max.request.bytes.
    pub budget_bytes_max: u64,
    /// Borrowed only within one poll of a read, never across an await.
    pub scratch: RefCell<Box<[u8]>>,
    admitted: RefCell<Admitted>,
}

/// Open connections, counted on `ADMISSION_SHARD` only.
#[derive(Default)]
struct Admitted {
    total: u32,
    per_ip: HashMap<IpAddr, u32>,
}

impl ShardConnections {
    pub fn new(args: &BrokerArgs, shard: ShardId, shard_count: u16) -> ShardConnections {
        assert!(shard_count > 0);
        let share = u64::try_from(args.queued_max_request_bytes)
            .ok()
            .map(|total| total / u64::from(shard_count));
        if let Some(share) = share
            && share < u64::from(args.socket_request_max_bytes)
            && shard == ADMISSION_SHARD
        {
            warn!(
                share,
                shards = shard_count,
                socket_request_max_bytes = args.socket_request_max_bytes,
                "requests larger than one shard's share of queued.max.request.bytes close their connection"
            );
        }
        ShardConnections {
            budget: share.map(Semaphore::new),
            budget_bytes_max: share.unwrap_or(u64::MAX),
            scratch: RefCell::new(vec![0u8; READ_CHUNK].into_boxed_slice()),
            admitted: RefCell::new(Admitted::default()),
        }
    }

    /// On `ADMISSION_SHARD`: counts one more connection from `ip` unless a limit is reached.
    pub fn admit(&self, ip: IpAddr, args: &BrokerArgs) -> Admission {
        let mut a = self.admitted.borrow_mut();
        let total_max = u32::try_from(args.max_connections).unwrap_or(0);
        let per_ip_max = u32::try_from(args.max_connections_per_ip).unwrap_or(0);
        if a.total >= total_max {
            return Admission::TooManyConnections;
        }
        let from_ip = a.per_ip.entry(ip).or_insert(0);
        if *from_ip >= per_ip_max {
            if *from_ip == 0 {
                a.per_ip.remove(&ip);
            }
            return Admission::TooManyConnectionsPerIp;
        }
        *from_ip += 1;
        a.total += 1;
        Admission::Admitted
    }

    /// On `ADMISSION_SHARD`: a connection `admit` counted has closed.
    pub fn release(&self, ip: IpAddr) {
        let mut a = self.admitted.borrow_mut();
        assert!(a.total > 0, "released more connections than admitted");
        a.total -= 1;
        let from_ip = a.per_ip.get_mut(&ip);
        let from_ip = from_ip.expect("released a connection from an address never admitted");
        *from_ip -= 1;
        if *from_ip == 0 {
            a.per_ip.remove(&ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    // Proves admission counts per address and in total, refuses at each limit without
    // counting the refused connection, and gives places back on release.
    #[test]
    fn admission_counts_total_and_per_ip() {
        let args = BrokerArgs::parse_from([
            "sluice",
            "--max-connections",
            "3",
            "--max-connections-per-ip",
            "2",
        ]);
        let c = ShardConnections::new(&args, ShardId(0), 1);
        let (a, b) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        assert_eq!(c.admit(a, &args), Admission::Admitted);
        assert_eq!(c.admit(a, &args), Admission::Admitted);
        assert_eq!(c.admit(a, &args), Admission::TooManyConnectionsPerIp);
        assert_eq!(c.admit(b, &args), Admission::Admitted);
        assert_eq!(c.admit(b, &args), Admission::TooManyConnections);
        c.release(a);
        assert_eq!(c.admit(b, &args), Admission::Admitted);
        assert_eq!(c.admit(a, &args), Admission::TooManyConnections);
        c.release(b);
        c.release(b);
        c.release(a);
        assert_eq!(c.admitted.borrow().total, 0);
        assert!(c.admitted.borrow().per_ip.is_empty());
    }
}
