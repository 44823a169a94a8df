//! sluice-engine owns the partition log: segments of Kafka RecordBatch v2 bytes on
//! O_DIRECT files, their offset and time indexes, recovery after an unclean stop,
//! retention and compaction. It knows nothing of the network.

#[cfg(test)]
mod tests {
    use glommio::LocalExecutorBuilder;
    use glommio::io::DmaFile;

    // Proves that DMA writes and reads work on this machine's disk with the pinned glommio.
    #[test]
    fn dma_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("probe");
        LocalExecutorBuilder::default()
            .spawn(move || async move {
                let file: DmaFile = glommio::io::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .dma_open(&path)
                    .await
                    .unwrap();
                let mut buf = file.alloc_dma_buffer(4096);
                buf.as_bytes_mut().fill(7);
                let n = file.write_at(buf, 0).await.unwrap();
                assert_eq!(n, 4096);
                file.fdatasync().await.unwrap();
                let read = file.read_at_aligned(0, 4096).await.unwrap();
                assert!(read.iter().all(|b| *b == 7));
                file.close().await.unwrap();
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
