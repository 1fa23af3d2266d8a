//! The protocol core's reasons as [`Event`]s. The core names its reasons
//! (`as_str()`, for logs) and knows nothing of metrics; these matches are
//! exhaustive, so a reason added to the core does not compile until it is
//! given an event here. Each event's label is the reason's `as_str()`
//! (the tests below check every variant).

use super::Event;
use crate::proto::auth::{AuthProtocol, FailedAuthAttempt};
use crate::proto::ppp::fsm::ControlDrop;
use crate::proto::ppp::{NegotiationFailure, PppCloseReason, PppDropReason};
use crate::proto::session::{CloseReason, DropReason, SendIpError};
use crate::proto::sstp::{
    AbortReason, BindingError, CloseReason as SstpCloseReason, DropReason as SstpDropReason,
    HttpError,
};

impl From<&FailedAuthAttempt> for Event {
    fn from(attempt: &FailedAuthAttempt) -> Event {
        match attempt.protocol {
            AuthProtocol::Pap => Event::AuthFailurePap,
            AuthProtocol::ChapMd5 => Event::AuthFailureChapMd5,
            AuthProtocol::MsChapV2 => Event::AuthFailureMsChapV2,
            AuthProtocol::EapMsChapV2 => Event::AuthFailureEapMsChapV2,
        }
    }
}

/// A successful authentication, by method.
impl From<AuthProtocol> for Event {
    fn from(protocol: AuthProtocol) -> Event {
        match protocol {
            AuthProtocol::Pap => Event::AuthSuccessPap,
            AuthProtocol::ChapMd5 => Event::AuthSuccessChapMd5,
            AuthProtocol::MsChapV2 => Event::AuthSuccessMsChapV2,
            AuthProtocol::EapMsChapV2 => Event::AuthSuccessEapMsChapV2,
        }
    }
}

impl From<&CloseReason> for Event {
    fn from(reason: &CloseReason) -> Event {
        match reason {
            CloseReason::Sstp(r) => r.into(),
            CloseReason::Ppp(r) => r.into(),
        }
    }
}

impl From<&SstpCloseReason> for Event {
    fn from(reason: &SstpCloseReason) -> Event {
        match reason {
            SstpCloseReason::LocalDisconnect => Event::LocalDisconnect,
            SstpCloseReason::PeerDisconnect { .. } => Event::PeerDisconnect,
            SstpCloseReason::LocalAbort(abort) => abort.into(),
            SstpCloseReason::PeerAbort { .. } => Event::PeerAbort,
            SstpCloseReason::HelloTimeout => Event::HelloTimeout,
            SstpCloseReason::Framing(_) => Event::Framing,
            // Counted as the refusal, not as a session: no call was made.
            SstpCloseReason::HttpRequestRejected(error) => error.into(),
            SstpCloseReason::HttpResponseRejected(_) => Event::HttpResponseRejected,
            SstpCloseReason::TransportClosed => Event::TransportClosed,
            SstpCloseReason::OutputQueueOverflow => Event::OutputQueueOverflow,
        }
    }
}

impl From<&AbortReason> for Event {
    fn from(reason: &AbortReason) -> Event {
        match reason {
            AbortReason::Local(_) => Event::LocalAbort,
            AbortReason::InvalidPacket(_) => Event::InvalidPacket,
            AbortReason::InvalidCallConnected(_) => Event::InvalidCallConnected,
            AbortReason::UnexpectedMessage(_) => Event::UnexpectedMessage,
            AbortReason::NegotiationTimeout => Event::NegotiationTimeout,
            AbortReason::RetryCountExceeded => Event::RetryCountExceeded,
            AbortReason::NoCommonHashProtocol => Event::NoCommonHashProtocol,
            AbortReason::CryptoBinding(error) => error.into(),
        }
    }
}

impl From<&BindingError> for Event {
    fn from(error: &BindingError) -> Event {
        match error {
            BindingError::HashProtocolNotOffered => Event::HashProtocolNotOffered,
            BindingError::WrongNonce => Event::WrongNonce,
            BindingError::WrongCertHash => Event::WrongCertHash,
            BindingError::WrongMac => Event::WrongMac,
        }
    }
}

/// A refused HTTP request, under its `rejection_label()`.
impl From<&HttpError> for Event {
    fn from(error: &HttpError) -> Event {
        match error {
            HttpError::Malformed => Event::HttpRejectedMalformed,
            HttpError::BadHost => Event::HttpRejectedBadHost,
            HttpError::BadContentLength => Event::HttpRejectedBadContentLength,
            HttpError::MissingContentLength => Event::HttpRejectedMissingContentLength,
            HttpError::TransferEncoding => Event::HttpRejectedTransferEncoding,
            HttpError::NotFound => Event::HttpRejectedNotFound,
            HttpError::MethodNotAllowed => Event::HttpRejectedMethodNotAllowed,
            HttpError::VersionNotSupported => Event::HttpRejectedVersionNotSupported,
            HttpError::UriTooLong => Event::HttpRejectedUriTooLong,
            HttpError::HeadTooLarge => Event::HttpRejectedHeadTooLarge,
            HttpError::Timeout => Event::HttpRejectedTimeout,
        }
    }
}

impl From<&PppCloseReason> for Event {
    fn from(reason: &PppCloseReason) -> Event {
        match reason {
            PppCloseReason::PeerTerminated => Event::PeerTerminated,
            PppCloseReason::LocalClose => Event::LocalClose,
            PppCloseReason::AuthFailed(_) => Event::AuthFailed,
            PppCloseReason::NegotiationFailed { failure, .. } => match failure {
                NegotiationFailure::MaxConfigure => Event::MaxConfigure,
                NegotiationFailure::MaxFailure => Event::MaxFailure,
                NegotiationFailure::Rejected => Event::RejectedByPeer,
                // As `PppCloseReason::as_str`: the other failures have
                // close reasons of their own.
                _ => Event::NegotiationFailed,
            },
            PppCloseReason::NoCommonAuthProtocol => Event::NoCommonAuthProtocol,
            PppCloseReason::LoopbackDetected => Event::LoopbackDetected,
            PppCloseReason::NoAddress => Event::NoAddress,
            PppCloseReason::EchoTimeout => Event::EchoTimeout,
            PppCloseReason::NoNetworkProtocol => Event::NoNetworkProtocol,
            PppCloseReason::AuthAttemptsExhausted => Event::AuthAttemptsExhausted,
            PppCloseReason::RenegotiatedAfterAuthentication => Event::RenegotiatedAfterAuth,
        }
    }
}

impl From<&DropReason> for Event {
    fn from(reason: &DropReason) -> Event {
        match reason {
            DropReason::Sstp(r) => r.into(),
            DropReason::Ppp(r) => r.into(),
            DropReason::IpBeforeCallConnected => Event::IpBeforeCallConnected,
            DropReason::SpoofedSource => Event::SpoofedSource,
            DropReason::MalformedIpPacket => Event::MalformedIpPacket,
            DropReason::IpExceedsMru => Event::IpExceedsMru,
            DropReason::StaleAuthDecision => Event::StaleAuthDecision,
            DropReason::StaleAddressAnswer => Event::StaleAddressAnswer,
        }
    }
}

impl From<&SstpDropReason> for Event {
    fn from(reason: &SstpDropReason) -> Event {
        match reason {
            SstpDropReason::PppBeforeConnect => Event::PppBeforeConnect,
            SstpDropReason::PppWhileClosing => Event::PppWhileClosing,
            SstpDropReason::EmptyDataPacket => Event::EmptyDataPacket,
            SstpDropReason::IgnoredWhileClosing => Event::IgnoredWhileClosing,
            SstpDropReason::EchoRateLimited => Event::SstpEchoRateLimited,
        }
    }
}

impl From<&PppDropReason> for Event {
    fn from(reason: &PppDropReason) -> Event {
        match reason {
            PppDropReason::Frame(_) => Event::MalformedFrame,
            PppDropReason::Control { reason, .. } => reason.into(),
            PppDropReason::UnknownProtocol(_) => Event::UnknownProtocol,
            PppDropReason::NotInPhase { .. } => Event::NotInPhase,
            PppDropReason::IpNotOpen(_) => Event::IpNotOpen,
            PppDropReason::Auth(_) => Event::BadAuthPacket,
            PppDropReason::LinkDead => Event::LinkDead,
            PppDropReason::HeldIpcpReplaced => Event::HeldIpcpReplaced,
        }
    }
}

impl From<&ControlDrop> for Event {
    fn from(reason: &ControlDrop) -> Event {
        match reason {
            ControlDrop::Malformed(_) => Event::MalformedControl,
            ControlDrop::NotRunning => Event::NotRunning,
            ControlDrop::StaleReply => Event::StaleReply,
            ControlDrop::MismatchedReply => Event::MismatchedReply,
            ControlDrop::UnknownCode(_) => Event::UnknownCode,
            ControlDrop::NotOpened => Event::NotOpened,
            ControlDrop::RateLimited => Event::EchoRateLimited,
        }
    }
}

impl From<SendIpError> for Event {
    fn from(error: SendIpError) -> Event {
        match error {
            SendIpError::NotReady => Event::SendNotReady,
            SendIpError::Closed => Event::SendClosed,
            SendIpError::TooLarge => Event::SendTooLarge,
            SendIpError::NotIp => Event::SendNotIp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::auth::{AuthFailure, AuthPacketError};
    use crate::proto::ppp::frame::FrameError;
    use crate::proto::ppp::packet::PacketError;
    use crate::proto::ppp::{IpVersion, Phase};
    use crate::proto::sstp::{DeframeError, HttpResponseError, MessageType, Status, WireError};

    /// Every reason is counted under the label it logs as.
    fn assert_labels<'a, T: std::fmt::Debug + 'a>(
        reasons: impl IntoIterator<Item = &'a T>,
        as_str: impl Fn(&T) -> &'static str,
    ) where
        &'a T: Into<Event>,
    {
        for reason in reasons {
            assert_eq!(reason.into().label(), as_str(reason), "{reason:?}");
        }
    }

    #[test]
    fn sstp_close_reasons_keep_their_labels() {
        let binding = [
            BindingError::HashProtocolNotOffered,
            BindingError::WrongNonce,
            BindingError::WrongCertHash,
            BindingError::WrongMac,
        ];
        let http = [
            HttpError::Malformed,
            HttpError::BadHost,
            HttpError::BadContentLength,
            HttpError::MissingContentLength,
            HttpError::TransferEncoding,
            HttpError::NotFound,
            HttpError::MethodNotAllowed,
            HttpError::VersionNotSupported,
            HttpError::UriTooLong,
            HttpError::HeadTooLarge,
            HttpError::Timeout,
        ];
        assert_labels(&http, HttpError::rejection_label);
        let wire = WireError::UnknownMessageType(0x99);
        let aborts = [
            AbortReason::Local(Status::NoError),
            AbortReason::InvalidPacket(wire),
            AbortReason::InvalidCallConnected(wire),
            AbortReason::UnexpectedMessage(MessageType::CallConnectRequest),
            AbortReason::NegotiationTimeout,
            AbortReason::RetryCountExceeded,
            AbortReason::NoCommonHashProtocol,
        ]
        .into_iter()
        .chain(binding.map(AbortReason::CryptoBinding));
        let reasons: Vec<CloseReason> = [
            SstpCloseReason::LocalDisconnect,
            SstpCloseReason::PeerDisconnect { status: None },
            SstpCloseReason::PeerAbort { status: None },
            SstpCloseReason::HelloTimeout,
            SstpCloseReason::Framing(DeframeError::LengthTooSmall { length: 2 }),
            SstpCloseReason::HttpResponseRejected(HttpResponseError::Timeout),
            SstpCloseReason::TransportClosed,
        ]
        .into_iter()
        .chain(aborts.map(SstpCloseReason::LocalAbort))
        .chain(http.map(SstpCloseReason::HttpRequestRejected))
        .map(CloseReason::Sstp)
        .collect();
        assert_labels(&reasons, CloseReason::as_str);
    }

    #[test]
    fn ppp_close_reasons_keep_their_labels() {
        let failures = [
            NegotiationFailure::MaxConfigure,
            NegotiationFailure::MaxFailure,
            NegotiationFailure::Rejected,
            NegotiationFailure::RequiredOptionRejected(3),
            NegotiationFailure::NoCommonAuthProtocol,
            NegotiationFailure::LoopbackDetected,
            NegotiationFailure::NoAddress,
        ];
        let reasons: Vec<CloseReason> = [
            PppCloseReason::PeerTerminated,
            PppCloseReason::LocalClose,
            PppCloseReason::AuthFailed(AuthFailure::Timeout),
            PppCloseReason::NoCommonAuthProtocol,
            PppCloseReason::LoopbackDetected,
            PppCloseReason::NoAddress,
            PppCloseReason::EchoTimeout,
            PppCloseReason::NoNetworkProtocol,
            PppCloseReason::AuthAttemptsExhausted,
            PppCloseReason::RenegotiatedAfterAuthentication,
        ]
        .into_iter()
        .chain(failures.map(|failure| PppCloseReason::NegotiationFailed {
            protocol: 0xc021,
            failure,
        }))
        .map(CloseReason::Ppp)
        .collect();
        assert_labels(&reasons, CloseReason::as_str);
    }

    #[test]
    fn drop_reasons_keep_their_labels() {
        let control = [
            ControlDrop::Malformed(PacketError::Truncated),
            ControlDrop::NotRunning,
            ControlDrop::StaleReply,
            ControlDrop::MismatchedReply,
            ControlDrop::UnknownCode(99),
            ControlDrop::NotOpened,
        ];
        let ppp = [
            PppDropReason::Frame(FrameError::Truncated),
            PppDropReason::UnknownProtocol(0x8057),
            PppDropReason::NotInPhase {
                protocol: 0x8021,
                phase: Phase::Establish,
            },
            PppDropReason::IpNotOpen(IpVersion::V6),
            PppDropReason::Auth(AuthPacketError::Malformed),
            PppDropReason::LinkDead,
            PppDropReason::HeldIpcpReplaced,
        ]
        .into_iter()
        .chain(control.map(|reason| PppDropReason::Control {
            protocol: 0xc021,
            reason,
        }));
        let sstp = [
            SstpDropReason::PppBeforeConnect,
            SstpDropReason::PppWhileClosing,
            SstpDropReason::EmptyDataPacket,
            SstpDropReason::IgnoredWhileClosing,
        ];
        let reasons: Vec<DropReason> = [
            DropReason::IpBeforeCallConnected,
            DropReason::SpoofedSource,
            DropReason::MalformedIpPacket,
            DropReason::IpExceedsMru,
            DropReason::StaleAuthDecision,
            DropReason::StaleAddressAnswer,
        ]
        .into_iter()
        .chain(ppp.map(DropReason::Ppp))
        .chain(sstp.map(DropReason::Sstp))
        .collect();
        assert_labels(&reasons, DropReason::as_str);
    }

    #[test]
    fn send_errors_keep_their_labels() {
        for error in [
            SendIpError::NotReady,
            SendIpError::Closed,
            SendIpError::TooLarge,
            SendIpError::NotIp,
        ] {
            assert_eq!(Event::from(error).label(), error.as_str());
        }
    }
}
