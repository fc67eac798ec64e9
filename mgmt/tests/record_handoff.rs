//! How a worker's flow records reach the flow-log thread: the flows as counted, with
//! one reference to the ENIs' details (the receiver makes the records), in a vector
//! that comes back emptied and is filled again by the next flush.

#[path = "support/harness.rs"]
mod harness;
#[path = "support/three_tier.rs"]
mod three_tier;

use harness::Harness;
use three_tier::{client, tcp_conversation, web, CONFIG};

/// A whole connection from the internet client to the web server.
fn converse(h: &mut Harness, sport: u16) {
    for a in tcp_conversation(&client(), &web(), sport, 443, true) {
        h.send(a.port, &a.frame);
    }
}

#[test]
fn a_recycled_flows_vector_is_filled_again_by_the_next_flush() {
    let mut h = Harness::from_file(CONFIG);
    converse(&mut h, 40_000);
    h.pipeline.flush_accounting(&h.tables, h.now);
    let first = h.pipeline.take_records();
    let records = first.records();
    assert!(records.len() >= 2, "ingress and egress at the web ENI at least: {records:?}");
    assert_eq!(first.flows.len(), records.len(), "every flow is of a flow-logged ENI");

    let spare = first.into_spare();
    let memory = spare.as_ptr();
    assert!(h.pipeline.wants_spare_flows());
    h.pipeline.recycle_flows(spare);
    assert!(!h.pipeline.wants_spare_flows(), "one spare is held");

    h.advance_secs(61.0);
    converse(&mut h, 40_001);
    h.pipeline.flush_accounting(&h.tables, h.now);
    let second = h.pipeline.take_records();
    assert_eq!(second.flows.as_ptr(), memory, "the flush wrote into the vector that came back");
    assert_eq!(second.records().len(), records.len(), "the same connection, the same records");
    assert!(h.pipeline.wants_spare_flows());
}

#[test]
fn flows_flushed_before_a_table_change_keep_their_enis_details() {
    // What the records should be: flushed and taken under the first tables.
    let mut plain = Harness::from_file(CONFIG);
    converse(&mut plain, 40_000);
    plain.pipeline.flush_accounting(&plain.tables, plain.now);
    let want = plain.pipeline.take_records().records();
    assert!(!want.is_empty());

    // Flushed, then the flow log is deleted before the worker hands the flows on:
    // the next flush (under tables without it) must not lose or re-label them.
    let mut h = Harness::from_file(CONFIG);
    converse(&mut h, 40_000);
    h.pipeline.flush_accounting(&h.tables, h.now);
    h.update(|c| c.flow_logs.clear());
    assert!(h.tables.enis.iter().flatten().all(|e| e.flow_meta.is_none()));
    h.advance_secs(1.0);
    h.pipeline.flush_accounting(&h.tables, h.now);
    let got = h.pipeline.take_records();
    assert!(got.flows.is_empty(), "nothing accounted under the new tables");
    assert_eq!(got.records(), want);
}

#[test]
fn a_batch_the_channel_cannot_take_comes_back_as_skipdata_with_the_next() {
    use dataplane::worker::RecordHandoff;
    use flowlog::LogStatus;

    let mut h = Harness::from_file(CONFIG);
    converse(&mut h, 40_000);
    h.pipeline.flush_accounting(&h.tables, h.now);
    let mut handoff = RecordHandoff::default();
    let mut refused = Vec::new();
    assert!(!handoff.pass(&mut h.pipeline, |b| {
        refused = b.records();
        Err(b)
    }));
    assert!(!refused.is_empty());
    assert_eq!(handoff.lost, refused.len() as u64, "every flow record lost is counted");
    assert_eq!(handoff.sent, 0);

    // Nothing new was accounted: the next hand-off is the SKIPDATA alone.
    let mut next = Vec::new();
    assert!(handoff.pass(&mut h.pipeline, |b| {
        next = b.records();
        Ok(())
    }));
    let enis: std::collections::BTreeSet<_> = refused.iter().map(|r| r.eni.interface_id.clone()).collect();
    assert_eq!(next.len(), enis.len(), "one SKIPDATA per ENI that lost records: {next:?}");
    for r in &next {
        assert_eq!(r.log_status, LogStatus::SkipData);
        assert!(r.traffic.is_none());
        assert!(enis.contains(&r.eni.interface_id));
        assert_eq!(r.start, refused.iter().map(|r| r.start).min().unwrap());
        assert_eq!(r.end, refused.iter().map(|r| r.end).max().unwrap());
    }
    assert_eq!(handoff.sent, 0, "SKIPDATA for earlier losses is not counted as records sent");
}
