//! Decoding never panics or over-allocates on truncated or corrupted replies.

use storm_controller::nimbus::codec::{SliceInputProtocol, decode_reply};
use storm_controller::nimbus::fake::{FakeComponent, FakeComponentStats, FakeTopology};
use storm_controller::nimbus::storm::{SpecificAggregateStats, TNimbusSyncClient};
use thrift::protocol::{
    TBinaryOutputProtocol, TFieldIdentifier, TMessageIdentifier, TMessageType, TOutputProtocol,
    TSerializable, TStructIdentifier, TType,
};

fn page_reply() -> Vec<u8> {
    let stats = FakeComponentStats {
        acked: 10,
        emitted: 20,
        capacity: 0.5,
        ..Default::default()
    };
    let page = FakeTopology::new("t")
        .with_spout("s", FakeComponent::new(1, 1, stats.clone()))
        .with_bolt("b", FakeComponent::new(2, 2, stats))
        .page_info("600", false);
    let mut out = Vec::new();
    {
        let mut o = TBinaryOutputProtocol::new(&mut out, true);
        o.write_message_begin(&TMessageIdentifier::new(
            "getTopologyPageInfo",
            TMessageType::Reply,
            1,
        ))
        .unwrap();
        o.write_struct_begin(&TStructIdentifier::new("result"))
            .unwrap();
        o.write_field_begin(&TFieldIdentifier::new("success", TType::Struct, 0))
            .unwrap();
        page.write_to_out_protocol(&mut o).unwrap();
        o.write_field_end().unwrap();
        o.write_field_stop().unwrap();
        o.write_struct_end().unwrap();
        o.write_message_end().unwrap();
    }
    out
}

fn call(
    c: &mut dyn TNimbusSyncClient,
) -> thrift::Result<storm_controller::nimbus::storm::TopologyPageInfo> {
    c.get_topology_page_info("t-1-1700000000".into(), "600".into(), false)
}

#[test]
fn full_reply_decodes() {
    let page = decode_reply("getTopologyPageInfo", &page_reply(), &call).unwrap();
    assert_eq!(page.id, "t-1-1700000000");
    assert_eq!(page.id_to_bolt_agg_stats.unwrap().len(), 1);
}

#[test]
fn every_truncation_is_an_error() {
    let reply = page_reply();
    for len in 0..reply.len() {
        let r = decode_reply("getTopologyPageInfo", &reply[..len], &call);
        assert!(r.is_err(), "prefix of {len} bytes decoded");
    }
}

#[test]
fn corrupted_bytes_never_panic() {
    let reply = page_reply();
    let mut errors = 0;
    for i in 0..reply.len() {
        for v in [0x00u8, 0x7f, 0xff] {
            let mut bad = reply.clone();
            bad[i] = v;
            // Must return (Ok for harmless flips, Err otherwise), never panic.
            if decode_reply("getTopologyPageInfo", &bad, &call).is_err() {
                errors += 1;
            }
        }
    }
    assert!(
        errors > 0,
        "corrupted type bytes and lengths must be detected"
    );
}

#[test]
fn union_with_an_unknown_member_is_an_error_not_a_panic() {
    // SpecificAggregateStats { 3: <struct from a newer Storm> } - the stock 0.17 generator panics here.
    let bytes = [0x0C, 0x00, 0x03, 0x00, 0x00];
    let r = SpecificAggregateStats::read_from_in_protocol(&mut SliceInputProtocol::new(&bytes));
    match r {
        Err(thrift::Error::Protocol(e)) => {
            assert_eq!(e.message, "received an unknown union member")
        }
        other => panic!("unexpected {other:?}"),
    }
    let known = [0x0C, 0x00, 0x02, 0x00, 0x00];
    assert!(matches!(
        SpecificAggregateStats::read_from_in_protocol(&mut SliceInputProtocol::new(&known)),
        Ok(SpecificAggregateStats::Spout(_))
    ));
}
