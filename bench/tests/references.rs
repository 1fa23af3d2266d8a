//! The bare-TLS references run end to end over loopback and record what
//! they measured. Outcomes only: no figure is judged here (a timed test is
//! no performance check); each run is bounded to a fraction of a second.

use std::time::Duration;

use sstp_bench::reference::tls::{
    handshakes, paced_ping_pong, ping_pong, stream, HandshakeParams, PacedPingPongParams,
    PingPongParams, StreamParams,
};
use sstp_bench::reference::{
    handshake_reference, measure, paced_ping_pong_reference, ReferencePlan, TLS_HANDSHAKE,
    TLS_HANDSHAKE_EXCHANGES, TLS_PING_PONG, TLS_STREAM,
};

const SHORT: Duration = Duration::from_millis(200);

#[test]
fn all_three_references_measure_and_record() {
    let results = measure(&ReferencePlan::all(SHORT)).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = results.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, [TLS_STREAM, TLS_HANDSHAKE, TLS_PING_PONG]);

    let stream = &results[0];
    assert!(stream.figure("bytes").unwrap().value > 0.0);
    assert!(stream.figure("throughput").unwrap().value > 0.0);
    assert_eq!(stream.params["suite"], "TLS13_AES_128_GCM_SHA256");
    assert_eq!(stream.params["record_size"], "16384");

    let hs = &results[1];
    assert!(hs.figure("handshakes").unwrap().value >= 1.0);
    assert!(hs.figure("server_cpu_per_1000").unwrap().value > 0.0);

    let pp = &results[2];
    let latency = pp
        .latency
        .as_ref()
        .expect("ping-pong records a distribution");
    assert_eq!(
        latency.samples as f64,
        pp.figure("round_trips").unwrap().value
    );
    assert!(latency.samples >= 1);
    let p50 = pp.figure("latency_p50").unwrap().value;
    let p99 = pp.figure("latency_p99").unwrap().value;
    assert!(p50 > 0.0 && p99 >= p50);
}

#[test]
fn small_records_and_tls12_stream_every_byte() {
    let result = stream(&StreamParams {
        suite: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256".into(),
        record_size: 1400,
        write_size: 1400,
        duration: SHORT,
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    // `stream` fails unless the server received exactly what was sent.
    assert!(result.bytes > 0 && result.bytes % 1400 == 0, "{result:?}");
}

#[test]
fn a_byte_bound_stops_the_stream_before_its_duration() {
    let result = stream(&StreamParams {
        write_size: 4096,
        max_bytes: 40_960,
        duration: Duration::from_secs(30),
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(result.bytes, 40_960);
}

#[test]
fn a_count_bound_stops_handshakes_and_ping_pong() {
    let result = handshakes(&HandshakeParams {
        clients: 2,
        max_handshakes: 6,
        duration: Duration::from_secs(30),
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(result.failures, 0);
    // Both clients stop once six attempts started: at most one more each.
    assert!((6..=8).contains(&result.handshakes), "{result:?}");

    let result = ping_pong(&PingPongParams {
        warmup: 3,
        max_round_trips: 25,
        duration: Duration::from_secs(30),
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(result.round_trips, 25);
    assert_eq!(result.latency.samples, 25);
}

#[test]
fn handshakes_with_exchanges_get_every_message_echoed() {
    // A client whose message did not come back whole would wait (and the
    // test time out) or count a failure.
    let params = HandshakeParams {
        clients: 2,
        max_handshakes: 6,
        duration: Duration::from_secs(30),
        exchanges: 3,
        message_size: 100,
        ..Default::default()
    };
    let result = handshakes(&params).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(result.failures, 0);
    assert!((6..=8).contains(&result.handshakes), "{result:?}");

    let recorded = handshake_reference(&params).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(recorded.name, TLS_HANDSHAKE_EXCHANGES);
    assert_eq!(recorded.params["exchanges"], "3");
    assert_eq!(recorded.params["message_size"], "100");
    assert!(recorded.figure("server_cpu_per_1000").unwrap().value > 0.0);
}

#[test]
fn parameters_out_of_range_are_refused() {
    let error = stream(&StreamParams {
        record_size: 16,
        ..Default::default()
    })
    .unwrap_err();
    assert_eq!(error.as_str(), "params");
    assert_eq!(
        error.to_string(),
        "bad parameters: record size 16 is outside 32..=16384"
    );
    let error = stream(&StreamParams {
        write_size: 0,
        ..Default::default()
    })
    .unwrap_err();
    assert_eq!(error.as_str(), "params");
    let error = handshakes(&HandshakeParams {
        clients: 0,
        ..Default::default()
    })
    .unwrap_err();
    assert_eq!(error.as_str(), "params");
    let error = handshakes(&HandshakeParams {
        exchanges: 2,
        message_size: 0,
        ..Default::default()
    })
    .unwrap_err();
    assert_eq!(error.as_str(), "params");
    let error = stream(&StreamParams {
        suite: "TLS_NULL".into(),
        ..Default::default()
    })
    .unwrap_err();
    assert_eq!(error.as_str(), "tls");
}

#[test]
fn a_paced_ping_pong_gets_every_message_back_and_times_those_after_the_warmup() {
    // 2,000 messages a second over 4 connections for 300 ms: about 600,
    // and those of the first 100 ms are not timed.
    let params = PacedPingPongParams {
        connections: 4,
        rate: 2_000.0,
        duration: Duration::from_millis(300),
        warmup: Duration::from_millis(100),
        ..Default::default()
    };
    let result = paced_ping_pong(&params).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(result.received, result.sent, "{result:?}");
    assert!((500..=700).contains(&result.sent), "{result:?}");
    let timed = result.latency.samples;
    assert!(timed > 0 && timed < result.sent, "{result:?}");
    assert!(result.latency.min > 0.0, "{result:?}");

    let reference = paced_ping_pong_reference("tls_ping_pong_paced_test", &params)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(reference.name, "tls_ping_pong_paced_test");
    assert_eq!(reference.params["rate"], "2000");
    assert_eq!(reference.params["connections"], "4");
    assert!(reference.figure("latency_p99").unwrap().value > 0.0);
    assert!(reference.figure("round_trip_rate").unwrap().value > 0.0);
    assert!(reference.figure("sent_late").is_some());
}

#[test]
fn a_paced_ping_pong_refuses_messages_too_short_for_their_time() {
    for params in [
        PacedPingPongParams {
            message_size: 7,
            ..Default::default()
        },
        PacedPingPongParams {
            connections: 0,
            ..Default::default()
        },
        PacedPingPongParams {
            rate: 0.0,
            ..Default::default()
        },
    ] {
        assert!(paced_ping_pong(&params).is_err(), "{params:?}");
    }
}
