//! The events sstpd counts: one fixed table, indexed by [`Event`].
//!
//! Every event has a label (the key of [`MetricsSnapshot::events`] and of
//! the periodic log line, and the `reason` a Prometheus exposition will
//! carry) and belongs to one [`Family`] (the metric it will be exposed
//! under: `sstpd_<family>_total{reason="<label>"}`). Adding an event is
//! adding one line below; counting a label that is not listed here does not
//! compile.
//!
//! [`MetricsSnapshot::events`]: super::MetricsSnapshot::events

use std::sync::atomic::{AtomicU64, Ordering};

/// Declares the families and their events: `Family("name", "help") {
/// Variant = "label", ... }`. Generates [`Event`] (`#[repr(usize)]`, variants numbered
/// in order, so an event is its own index into [`EventCounters`]) and
/// [`Family`], each with `ALL`.
macro_rules! events {
    ($(
        $family:ident($family_name:literal, $help:literal) {
            $($variant:ident = $label:literal,)+
        }
    )+) => {
        /// A counted event. See the module documentation.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(usize)]
        pub enum Event {
            $($(#[doc = concat!("`", $label, "`")] $variant,)+)+
        }

        impl Event {
            /// Every event, in index order.
            pub const ALL: &'static [Event] = &[$($(Event::$variant,)+)+];

            /// The label: the snapshot's and log line's key, and the
            /// `reason` label of the family's metric.
            pub const fn label(self) -> &'static str {
                match self {
                    $($(Event::$variant => $label,)+)+
                }
            }

            /// The family (metric) this event is counted under.
            pub const fn family(self) -> Family {
                match self {
                    $($(Event::$variant => Family::$family,)+)+
                }
            }
        }

        /// A group of events that will be one metric, labelled by event.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Family {
            $(#[doc = $help] $family,)+
        }

        impl Family {
            /// Every family.
            pub const ALL: &'static [Family] = &[$(Family::$family,)+];

            /// The metric's name without prefix or suffix
            /// (`sstpd_<name>_total`).
            pub const fn name(self) -> &'static str {
                match self {
                    $(Family::$family => $family_name,)+
                }
            }

            /// What the metric counts (its help text).
            pub const fn help(self) -> &'static str {
                match self {
                    $(Family::$family => $help,)+
                }
            }

            /// The family's events, in index order.
            pub const fn events(self) -> &'static [Event] {
                match self {
                    $(Family::$family => &[$(Event::$variant,)+],)+
                }
            }
        }
    };
}

events! {
    SessionsClosed("sessions_closed", "Sessions that ended, by first cause.") {
        // The SSTP layer ([MS-SSTP] 3.1.5.1): disconnects, aborts (one
        // label per crypto binding failure), timeouts, transport loss.
        LocalDisconnect = "local_disconnect",
        PeerDisconnect = "peer_disconnect",
        LocalAbort = "local",
        InvalidPacket = "invalid_packet",
        InvalidCallConnected = "invalid_call_connected",
        UnexpectedMessage = "unexpected_message",
        NegotiationTimeout = "negotiation_timeout",
        RetryCountExceeded = "retry_count_exceeded",
        NoCommonHashProtocol = "no_common_hash_protocol",
        HashProtocolNotOffered = "hash_protocol_not_offered",
        WrongNonce = "wrong_nonce",
        WrongCertHash = "wrong_cert_hash",
        WrongMac = "wrong_mac",
        PeerAbort = "peer_abort",
        HelloTimeout = "hello_timeout",
        Framing = "framing",
        HttpResponseRejected = "http_response_rejected",
        TransportClosed = "transport_closed",
        OutputQueueOverflow = "output_queue_overflow",
        // The PPP link.
        PeerTerminated = "peer_terminated",
        LocalClose = "local_close",
        AuthFailed = "auth_failed",
        MaxConfigure = "max_configure",
        MaxFailure = "max_failure",
        RejectedByPeer = "rejected_by_peer",
        NegotiationFailed = "negotiation_failed",
        NoCommonAuthProtocol = "no_common_auth_protocol",
        LoopbackDetected = "loopback_detected",
        NoAddress = "no_address",
        EchoTimeout = "echo_timeout",
        NoNetworkProtocol = "no_network_protocol",
        AuthAttemptsExhausted = "auth_attempts_exhausted",
        RenegotiatedAfterAuth = "renegotiated_after_auth",
        // Closed by the runtime: the pre-authentication window ran out, a
        // newer login of the same user took the address over, the user
        // was removed from the user store.
        PreauthTimeout = "preauth_timeout",
        SessionTakenOver = "session_taken_over",
        UserRemoved = "user_removed",
        // The authenticator's Session-Timeout and Idle-Timeout (RFC 2865
        // 5.27, 5.28).
        SessionTimeout = "session_timeout",
        IdleTimeout = "idle_timeout",
        // A Disconnect-Request (RFC 5176 3); accounting's Admin-Reset.
        AdminReset = "admin_reset",
        // Still open when the shutdown timeout ran out.
        ShutdownForcedClose = "shutdown_forced_close",
        // Disconnected by `sstpctl drain`, on the drain's schedule.
        Drain = "drain",
    }

    HttpRejected("http_rejected",
        "HTTP requests refused before SSTP started, by the error answered.") {
        HttpRejectedMalformed = "http_rejected_malformed",
        HttpRejectedBadHost = "http_rejected_bad_host",
        HttpRejectedBadContentLength = "http_rejected_bad_content_length",
        HttpRejectedMissingContentLength = "http_rejected_missing_content_length",
        HttpRejectedTransferEncoding = "http_rejected_transfer_encoding",
        HttpRejectedNotFound = "http_rejected_not_found",
        HttpRejectedMethodNotAllowed = "http_rejected_method_not_allowed",
        HttpRejectedVersionNotSupported = "http_rejected_version_not_supported",
        HttpRejectedUriTooLong = "http_rejected_uri_too_long",
        HttpRejectedHeadTooLarge = "http_rejected_head_too_large",
        HttpRejectedTimeout = "http_rejected_timeout",
    }

    Drops("drops", "Packets and frames discarded without ending the session, by reason.") {
        // SSTP.
        PppBeforeConnect = "ppp_before_connect",
        PppWhileClosing = "ppp_while_closing",
        EmptyDataPacket = "empty_data_packet",
        IgnoredWhileClosing = "ignored_while_closing",
        SstpEchoRateLimited = "sstp_echo_rate_limited",
        // PPP.
        MalformedFrame = "malformed_frame",
        MalformedControl = "malformed_control",
        NotRunning = "not_running",
        StaleReply = "stale_reply",
        MismatchedReply = "mismatched_reply",
        UnknownCode = "unknown_code",
        NotOpened = "not_opened",
        EchoRateLimited = "echo_rate_limited",
        // Control frames one input made PPP answer beyond its outbox.
        PppOutboxFull = "ppp_outbox_full",
        UnknownProtocol = "unknown_protocol",
        NotInPhase = "not_in_phase",
        IpNotOpen = "ip_not_open",
        BadAuthPacket = "bad_auth_packet",
        LinkDead = "link_dead",
        HeldIpcpReplaced = "held_ipcp_replaced",
        // Answers to requests the session no longer waits for.
        StaleAuthDecision = "stale_auth_decision",
        StaleAddressAnswer = "stale_address_answer",
        // IP from the client.
        IpBeforeCallConnected = "ip_before_call_connected",
        SpoofedSource = "spoofed_source",
        MalformedIpPacket = "malformed_ip_packet",
        IpExceedsMru = "ip_exceeds_mru",
        ClientToClientDenied = "client_to_client_denied",
        // IP to the client.
        SendNotReady = "send_not_ready",
        SendClosed = "send_closed",
        SendTooLarge = "send_too_large",
        SendNotIp = "send_not_ip",
        // Handed to another worker.
        MailboxFull = "mailbox_full",
        MailboxDisconnected = "mailbox_disconnected",
    }

    ConnectionsRefused("connections_refused", "Connections refused at accept.") {
        RefusedMaxSessions = "refused_max_sessions",
        RefusedWorkerFull = "refused_worker_full",
        RefusedMaxPreauth = "refused_max_preauth",
        RefusedPreauthPerSource = "refused_preauth_per_source",
        // The node is draining (`sstpctl drain`): it takes no new sessions.
        RefusedDraining = "refused_draining",
        // A PROXY listener's connection from outside its `proxy_from`.
        ProxySourceNotAllowed = "proxy_source_not_allowed",
    }

    ConnectionErrors("connection_errors",
        "Connection failures: accept, TLS setup and handshake, socket IO.") {
        AcceptError = "accept_error",
        TlsSetupError = "tls_setup_error",
        IoError = "io_error",
        TlsError = "tls_error",
        TlsHandshakeTimeout = "tls_handshake_timeout",
        TlsClosedDuringHandshake = "tls_closed_during_handshake",
        TlsTakeOverFailed = "tls_take_over_failed",
    }

    Handshakes("handshakes",
        "SSTP handshakes: HTTP requests accepted, calls connected by binding hash.") {
        HttpAccepted = "http_accepted",
        CryptoBindingSha1 = "crypto_binding_sha1",
        CryptoBindingSha256 = "crypto_binding_sha256",
        CryptoBindingUnknown = "crypto_binding_unknown",
    }

    Ktls("ktls",
        "Kernel TLS: connections offloaded, or kept in userspace (or refused) and why.") {
        KtlsEnabled = "ktls_enabled",
        KtlsSwitchFailed = "ktls_switch_failed",
        KtlsDisabled = "ktls_disabled",
        KtlsUnavailable = "ktls_unavailable",
        KtlsCipherUnsupported = "ktls_cipher_unsupported",
    }

    KtlsFallbacks("ktls_fallbacks",
        "Connections kernel TLS refused, left in userspace TLS, by failed step.") {
        KtlsHandshakeNotComplete = "handshake_not_complete",
        KtlsPendingOutput = "pending_output",
        KtlsTls = "tls",
        KtlsPeerClosed = "peer_closed",
        KtlsExtractSecrets = "extract_secrets",
        KtlsUnsupportedCipher = "unsupported_cipher",
        KtlsUlpRefused = "ulp_refused",
        KtlsTxKeysRefused = "tx_keys_refused",
        KtlsRxKeysRefused = "rx_keys_refused",
    }

    KtlsSendFallbacks("ktls_send_fallbacks",
        "Kernel TLS batches not sent as one chain of linked sends, by reason.") {
        // The worker's private io_uring could not be set up.
        KtlsRingUnavailable = "ring_unavailable",
        // The ring had too many sends in flight.
        KtlsRingBusy = "ring_busy",
        // A send of the chain was taken in part or failed.
        KtlsChainBroken = "chain_broken",
    }

    KtlsRecordCloses("ktls_record_closes",
        "Kernel TLS sessions ended by a received record the kernel cannot act on, by record.") {
        // A TLS 1.3 KeyUpdate: the kernel (Linux before 6.13) cannot
        // install the peer's next keys.
        KtlsPeerKeyUpdate = "peer_key_update",
        // Any other post-handshake handshake message.
        KtlsPeerPostHandshake = "peer_post_handshake",
        KtlsPeerFatalAlert = "peer_fatal_alert",
        KtlsPeerUnexpectedRecord = "peer_unexpected_record",
    }

    Routing("routing",
        "Tunnel addresses: routes moved between sessions, routing and pool failures.") {
        RouteTakenOver = "route_taken_over",
        OverlappingRanges = "overlapping_ranges",
        // Both the session table's and the pools' error.
        TooLarge = "too_large",
        AddressNotCovered = "address_not_covered",
        RefOutOfRange = "ref_out_of_range",
        Occupied = "occupied",
        InvalidPrefixLength = "invalid_prefix_length",
        HostBitsSet = "host_bits_set",
        EmptyRange = "empty_range",
        NoUsableAddresses = "no_usable_addresses",
        OutOfRange = "out_of_range",
        Reserved = "reserved",
        InUse = "in_use",
        NotAllocated = "not_allocated",
        Exhausted = "exhausted",
    }

    FramedRoutes("framed_routes",
        "RADIUS Framed-Route: routes installed, refused by why, taken over; kernel route changes.") {
        // Routed to a session (table and, asynchronously, the kernel).
        FramedRouteInstalled = "framed_route_installed",
        // Refused: the default route, a prefix sharing addresses with a
        // client pool or the gateway, a gateway other than the client, a
        // prefix overlapping another user's live route.
        FramedRouteDefault = "framed_route_default",
        FramedRouteInPool = "framed_route_in_pool",
        FramedRouteForeignGateway = "framed_route_foreign_gateway",
        FramedRouteOverlap = "framed_route_overlap",
        // Moved from an older session of the same user (which is closed).
        FramedRouteTakenOver = "framed_route_taken_over",
        // rtnetlink: routes added and deleted, failures, routes of an
        // earlier run removed at start.
        KernelRouteAdded = "kernel_route_added",
        KernelRouteDeleted = "kernel_route_deleted",
        KernelRouteAddFailed = "kernel_route_add_failed",
        KernelRouteDeleteFailed = "kernel_route_delete_failed",
        KernelRouteStaleRemoved = "kernel_route_stale_removed",
    }

    Auth("auth",
        "Authentication outcomes by method and result, throttling, and answers for closed sessions.") {
        AuthSuccessPap = "auth_success_pap",
        AuthSuccessChapMd5 = "auth_success_chap_md5",
        AuthSuccessMsChapV2 = "auth_success_mschapv2",
        AuthSuccessEapMsChapV2 = "auth_success_eap_mschapv2",
        AuthFailurePap = "auth_failure_pap",
        AuthFailureChapMd5 = "auth_failure_chap_md5",
        AuthFailureMsChapV2 = "auth_failure_mschapv2",
        AuthFailureEapMsChapV2 = "auth_failure_eap_mschapv2",
        AuthThrottledSource = "auth_throttled_source",
        AuthThrottledUser = "auth_throttled_user",
        AuthThrottleEngagedSource = "auth_throttle_engaged_source",
        AuthThrottleEngagedUser = "auth_throttle_engaged_user",
        AuthThrottleEvicted = "auth_throttle_evicted",
        AuthAnswerForClosedSession = "auth_answer_for_closed_session",
    }

    Radius("radius",
        "RADIUS: answers by kind, requests refused or lost, servers down and up.") {
        RadiusAccept = "radius_accept",
        RadiusReject = "radius_reject",
        // Access-Challenge carrying the next EAP Request of a relayed EAP
        // conversation (RFC 3579).
        RadiusChallenge = "radius_challenge",
        // No server answered within the retries (or all were dead).
        RadiusTimeout = "radius_timeout",
        // An Access-Accept without what the session needs (MS-CHAP2-Success,
        // MPPE keys): the session is refused.
        RadiusAcceptUnusable = "radius_accept_unusable",
        // Access-Challenge or another code sstpd cannot use.
        RadiusUnexpectedCode = "radius_unexpected_code",
        // Accept attributes sstpd does not use (unknown or unusable).
        RadiusAttributeIgnored = "radius_attribute_ignored",
        // Requests answered "service unavailable" at once: the queue to the
        // RADIUS thread was full, the thread was gone, or the credentials
        // do not fit an Access-Request.
        RadiusQueueFull = "radius_queue_full",
        RadiusUnavailable = "radius_unavailable",
        RadiusRequestUnencodable = "radius_request_unencodable",
        // Datagrams from servers that failed validation (wrong
        // authenticator, missing Message-Authenticator, unknown identifier,
        // duplicates) or found the queue to the client full.
        RadiusResponseDropped = "radius_response_dropped",
        RadiusRxDropped = "radius_rx_dropped",
        RadiusSendError = "radius_send_error",
        RadiusServerDown = "radius_server_down",
        RadiusServerUp = "radius_server_up",
    }

    RadiusAccounting("radius_accounting",
        "RADIUS accounting records: spooled, acknowledged, retried, replayed, lost.") {
        // Written to the spool before the first send.
        RadiusAcctSpooled = "radius_acct_spooled",
        // A server acknowledged a record (and it left the spool).
        RadiusAcctAcknowledged = "radius_acct_acknowledged",
        // A record's request failed on every server; spooled ones wait and
        // are sent again.
        RadiusAcctFailed = "radius_acct_failed",
        // Records found in the spool at start and sent again.
        RadiusAcctReplayed = "radius_acct_replayed",
        // The spool was full: the record was sent without a copy on disk.
        RadiusAcctSpoolFull = "radius_acct_spool_full",
        RadiusAcctSpoolError = "radius_acct_spool_error",
        RadiusAcctSpoolUnreadable = "radius_acct_spool_unreadable",
        // Lost: not spooled and not delivered, or the queue to the RADIUS
        // thread was full.
        RadiusAcctLost = "radius_acct_lost",
        RadiusAcctQueueFull = "radius_acct_queue_full",
        // Accounting-On/Off that no server answered (never spooled).
        RadiusAcctNasUnanswered = "radius_acct_nas_unanswered",
    }

    Sessions("session_events",
        "Session conditions: reads paused for backpressure, writes stalled at close, panics.") {
        SessionReadPaused = "session_read_paused",
        WriteStalledAtClose = "write_stalled_at_close",
        SessionPanicked = "session_panicked",
    }

    DaeAnswers("dae_answers",
        "Dynamic authorization (RFC 5176) requests answered, by answer and Error-Cause.") {
        DaeDisconnectAck = "dae_disconnect_ack",
        DaeCoaAck = "dae_coa_ack",
        DaeNakUnsupportedAttribute = "dae_nak_unsupported_attribute",
        DaeNakMissingAttribute = "dae_nak_missing_attribute",
        DaeNakNasIdentificationMismatch = "dae_nak_nas_identification_mismatch",
        DaeNakInvalidRequest = "dae_nak_invalid_request",
        DaeNakUnsupportedService = "dae_nak_unsupported_service",
        DaeNakInvalidAttributeValue = "dae_nak_invalid_attribute_value",
        DaeNakSessionContextNotFound = "dae_nak_session_context_not_found",
        DaeNakResourcesUnavailable = "dae_nak_resources_unavailable",
        // A retransmission answered again from the duplicate cache.
        DaeDuplicateAnswered = "dae_duplicate_answered",
    }

    DaeDropped("dae_dropped",
        "Dynamic authorization requests dropped without an answer, by reason.") {
        DaeUnknownClient = "dae_unknown_client",
        DaeMalformed = "dae_malformed",
        DaeUnexpectedCode = "dae_unexpected_code",
        DaeBadAuthenticator = "dae_bad_authenticator",
        DaeMissingMessageAuthenticator = "dae_missing_message_authenticator",
        DaeBadMessageAuthenticator = "dae_bad_message_authenticator",
        DaeMissingEventTimestamp = "dae_missing_event_timestamp",
        DaeStaleEventTimestamp = "dae_stale_event_timestamp",
        // A retransmission of a request the workers are still acting on.
        DaeDuplicateInProgress = "dae_duplicate_in_progress",
        // The answer would exceed 4096 octets (Proxy-State fills the request).
        DaeAnswerTooLong = "dae_answer_too_long",
        DaeSendFailed = "dae_send_failed",
    }

    DaeBookkeeping("dae_bookkeeping",
        "Dynamic authorization bounds reached: cached answers evicted, sessions not registered.") {
        DaeCacheEvicted = "dae_cache_evicted",
        DaeRegistryFull = "dae_registry_full",
    }

    TunErrors("tun_errors", "TUN device reads and writes that failed.") {
        TunReadError = "tun_read_error",
        TunWriteError = "tun_write_error",
    }

    TunOffloadFallbacks("tun_offload_fallbacks",
        "tun.offload = \"auto\" refused by the kernel at startup (the plain path runs), by step.") {
        TunOffloadVnetHdrRefused = "vnet_hdr",
        TunOffloadFeaturesRefused = "tunsetoffload",
    }

    IoUringSetupFallbacks("io_uring_setup_fallbacks",
        "io_uring ring flags refused by the kernel at startup (every ring is set up without them), by flag.") {
        IoUringCoopTaskrunRefused = "coop_taskrun",
    }

    TunDropFilterUnavailable("tun_drop_filter_unavailable",
        "tun.drop_filter refused by the kernel at startup (sstpd drops at a full session queue itself), by step.") {
        TunDropFilterMapRefused = "map",
        TunDropFilterProgramRefused = "program",
        TunDropFilterAttachRefused = "attach",
    }

    TunDropFilter("tun_drop_filter",
        "Sessions whose full queue the kernel's drop filter took over (marked), and updates of its map that failed.") {
        TunDropFilterMarked = "marked",
        TunDropFilterMarkFailed = "mark_failed",
        TunDropFilterClearFailed = "clear_failed",
    }

    TunSteeringUnavailable("tun_steering_unavailable",
        "tun.steering refused by the kernel at startup (the tun driver's flow table picks each packet's queue), by step.") {
        TunSteeringMapRefused = "steering_map",
        TunSteeringProgramRefused = "steering_program",
        TunSteeringAttachRefused = "steering_attach",
    }

    TunSteeringUpdateFailed("tun_steering_update_failed",
        "Updates of the TUN steering map that failed (the destination's packets then go by the kernel's choice of queue and may be handed over), by kind.") {
        TunSteeringSteerFailed = "steer",
        TunSteeringForgetFailed = "forget",
    }

    TunOffloadPackets("tun_offload_packets",
        "Packets through the TUN offload path: super-packets read and the segments cut from them, packets merged into super-packets written.") {
        TunSuperPacketsRead = "super_packets_read",
        TunSegmentsCut = "segments_cut",
        TunPacketsCoalesced = "packets_coalesced",
        TunSuperPacketsWritten = "super_packets_written",
    }

    TunOffloadErrors("tun_offload_errors",
        "Packets from TUN dropped: the virtio-net header contradicts the packet, or it cannot be cut to the client's MRU.") {
        TunOffloadShortHeader = "short_header",
        TunOffloadUnknownFlags = "unknown_flags",
        TunOffloadUnsupportedGsoType = "unsupported_gso_type",
        TunOffloadGsoTypeMismatch = "gso_type_mismatch",
        TunOffloadZeroSegmentSize = "zero_segment_size",
        TunOffloadBadIpHeader = "bad_ip_header",
        TunOffloadBadTransportHeader = "bad_transport_header",
        TunOffloadEmptyPayload = "empty_payload",
        TunOffloadChecksumNotTransport = "checksum_not_transport",
        TunOffloadChecksumOutOfPacket = "checksum_out_of_packet",
        TunOffloadLimitBelowHeaders = "limit_below_headers",
        TunOffloadDatagramTooLarge = "datagram_too_large",
        TunOffloadOutputTooSmall = "output_too_small",
    }

    TlsVersions("tls_versions", "TLS handshakes completed, by protocol version.") {
        TlsVersion12 = "tls12",
        TlsVersion13 = "tls13",
    }

    // Labelled by the IANA name as rustls spells it, in lower case.
    TlsCipherSuites("tls_cipher_suites", "TLS handshakes completed, by cipher suite.") {
        Tls13Aes128GcmSha256 = "tls13_aes_128_gcm_sha256",
        Tls13Aes256GcmSha384 = "tls13_aes_256_gcm_sha384",
        Tls13Chacha20Poly1305Sha256 = "tls13_chacha20_poly1305_sha256",
        TlsEcdheEcdsaAes128GcmSha256 = "tls_ecdhe_ecdsa_with_aes_128_gcm_sha256",
        TlsEcdheEcdsaAes256GcmSha384 = "tls_ecdhe_ecdsa_with_aes_256_gcm_sha384",
        TlsEcdheEcdsaChacha20Poly1305Sha256 = "tls_ecdhe_ecdsa_with_chacha20_poly1305_sha256",
        TlsEcdheRsaAes128GcmSha256 = "tls_ecdhe_rsa_with_aes_128_gcm_sha256",
        TlsEcdheRsaAes256GcmSha384 = "tls_ecdhe_rsa_with_aes_256_gcm_sha384",
        TlsEcdheRsaChacha20Poly1305Sha256 = "tls_ecdhe_rsa_with_chacha20_poly1305_sha256",
        TlsOtherCipherSuite = "other_cipher_suite",
    }

    MetricsRequests("metrics_requests",
        "Requests to the Prometheus endpoint (`[metrics] listen`), by answer.") {
        MetricsScraped = "metrics_scraped",
        // `GET /health` answered (200 serving, 503 draining).
        MetricsHealthChecked = "metrics_health_checked",
        MetricsBadRequest = "metrics_bad_request",
        MetricsHeadTooLarge = "metrics_head_too_large",
        MetricsNotFound = "metrics_not_found",
        MetricsMethodNotAllowed = "metrics_method_not_allowed",
        // The request did not arrive within the read timeout, or the
        // connection failed before the answer was written.
        MetricsTimeout = "metrics_timeout",
        MetricsIoError = "metrics_io_error",
    }

    ControlRequests("control_requests",
        "Requests on the control socket (sstpctl), by outcome.") {
        ControlAnswered = "control_answered",
        // Not JSON, not a request, or longer than the limit.
        ControlBadRequest = "control_bad_request",
        // Neither root nor the server's user (SO_PEERCRED).
        ControlRefusedPeer = "control_refused_peer",
        ControlTimeout = "control_timeout",
        ControlIoError = "control_io_error",
    }

    ProxyHeaders("proxy_headers",
        "PROXY protocol headers on listeners behind a load balancer, by outcome.") {
        ProxyHeaderAccepted = "proxy_header_accepted",
        // No client address: the load balancer's is used.
        ProxyHeaderLocal = "proxy_header_local",
        ProxyHeaderUnknown = "proxy_header_unknown",
        // Refused: the connection is closed.
        ProxyHeaderTimeout = "proxy_header_timeout",
        ProxyHeaderClosed = "proxy_header_closed",
        ProxyHeaderIoError = "proxy_header_io_error",
        ProxyHeaderMissing = "proxy_header_missing",
        ProxyHeaderWrongVersion = "proxy_header_wrong_version",
        ProxyHeaderOversized = "proxy_header_oversized",
        ProxyHeaderMalformed = "proxy_header_malformed",
        ProxyHeaderNotStream = "proxy_header_not_stream",
    }
}

impl Event {
    /// The number of events.
    pub const COUNT: usize = Event::ALL.len();

    /// The event with this label.
    pub fn from_label(label: &str) -> Option<Event> {
        Event::ALL.iter().copied().find(|e| e.label() == label)
    }
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// One relaxed counter per event. Each worker owns one table; no locks, no
/// allocation, nothing to insert.
#[derive(Debug)]
pub(super) struct EventCounters([AtomicU64; Event::COUNT]);

impl Default for EventCounters {
    fn default() -> Self {
        EventCounters([const { AtomicU64::new(0) }; Event::COUNT])
    }
}

impl EventCounters {
    #[inline]
    pub(super) fn add(&self, event: Event, n: u64) {
        self.0[event as usize].fetch_add(n, Ordering::Relaxed);
    }

    pub(super) fn get(&self, event: Event) -> u64 {
        self.0[event as usize].load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn labels_are_unique_and_non_empty() {
        let mut seen = HashSet::new();
        for event in Event::ALL {
            let label = event.label();
            assert!(!label.is_empty(), "{event:?} has an empty label");
            assert!(
                label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{label:?} is not snake_case (a Prometheus label value may be anything, but the \
                 log line is key=value)"
            );
            assert!(seen.insert(label), "{label:?} is used twice");
        }
    }

    #[test]
    fn events_are_their_own_index_and_each_in_one_family() {
        for (index, event) in Event::ALL.iter().enumerate() {
            assert_eq!(*event as usize, index);
            assert_eq!(Event::from_label(event.label()), Some(*event));
        }
        let mut in_families: Vec<Event> = Family::ALL
            .iter()
            .flat_map(|family| {
                assert!(!family.name().is_empty() && !family.help().is_empty());
                family.events().iter().inspect(move |e| {
                    assert_eq!(e.family(), *family, "{e:?}");
                })
            })
            .copied()
            .collect();
        in_families.sort();
        assert_eq!(in_families, Event::ALL);
        let names: HashSet<_> = Family::ALL.iter().map(|f| f.name()).collect();
        assert_eq!(names.len(), Family::ALL.len(), "family names are unique");
    }

    #[test]
    fn unknown_labels_are_not_events() {
        assert_eq!(Event::from_label("never"), None);
        assert_eq!(Event::from_label(""), None);
    }
}
