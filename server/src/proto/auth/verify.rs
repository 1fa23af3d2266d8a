//! Deciding with locally stored cleartext passwords: [`LocalAuthenticator`]
//! over a [`PasswordStore`] (the server's is `sstpd::aaa::local::LocalUsers`;
//! tests use `sstpd::testing::StaticPasswords`).
//!
//! An unknown user and a wrong password get the same answer
//! ([`RejectReason::AuthenticationFailure`], same message) after the same
//! work: an unknown user is checked against a dummy password, so the
//! response time does not tell whether a name exists. Comparisons are
//! constant-time (`subtle`); PAP passwords are compared as SHA-256 digests
//! so that their lengths do not show either.

use std::fmt;

use sha2::{Digest as _, Sha256};
use subtle::{Choice, ConstantTimeEq};

use super::chap::md5_response;
use super::{
    mppe, mschapv2, AuthAccept, AuthContext, AuthDecision, AuthReject, AuthReply, AuthRequest,
    Authenticator, Credentials, LocalUser, MsChapV2Proof, PasswordStore, RejectReason,
};
use crate::proto::Role;

/// The one message every local rejection carries.
pub const REJECT_MESSAGE: &str = "Authentication failed";

/// Checked instead of a password when the user is unknown.
const DUMMY_PASSWORD: &[u8] = b"sstpd-no-such-user-dummy-password";

/// Decides with passwords from a [`PasswordStore`], synchronously.
pub struct LocalAuthenticator<S: PasswordStore> {
    store: S,
}

impl<S: PasswordStore> fmt::Debug for LocalAuthenticator<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LocalAuthenticator(..)")
    }
}

impl<S: PasswordStore> LocalAuthenticator<S> {
    /// An authenticator that looks users up in `store`.
    pub fn new(store: S) -> Self {
        LocalAuthenticator { store }
    }

    /// The store users are looked up in.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Judges `request`: the answer [`Authenticator::authenticate`] sends.
    #[must_use]
    pub fn decide(&self, request: &AuthRequest) -> AuthDecision {
        let user = self.store.lookup(&request.username);
        let known = Choice::from(u8::from(user.is_some()));
        let password = user
            .as_ref()
            .map_or(DUMMY_PASSWORD, |user| user.password.as_slice());
        let (matches, mschapv2) = match &request.credentials {
            Credentials::Pap { password: given } => {
                (Sha256::digest(given).ct_eq(&Sha256::digest(password)), None)
            }
            Credentials::ChapMd5 {
                identifier,
                challenge,
                response,
            } => (
                md5_response(*identifier, password, challenge).ct_eq(response),
                None,
            ),
            Credentials::MsChapV2 {
                authenticator_challenge,
                peer_challenge,
                nt_response,
                ..
            } => {
                let username = request.username.as_bytes();
                let password_hash = mschapv2::nt_password_hash(password);
                let expected = mschapv2::generate_nt_response_from_hash(
                    authenticator_challenge,
                    peer_challenge,
                    username,
                    &password_hash,
                );
                let proof = || MsChapV2Proof {
                    authenticator_response: mschapv2::generate_authenticator_response(
                        &password_hash,
                        nt_response,
                        peer_challenge,
                        authenticator_challenge,
                        username,
                    ),
                    keys: mppe::master_keys(&password_hash, nt_response, Role::Server),
                };
                let matches = expected.ct_eq(nt_response);
                let proof = bool::from(matches & known).then(proof);
                (matches, proof)
            }
            // Relayed EAP runs its method elsewhere: nothing to verify here.
            Credentials::Eap { .. } => (Choice::from(0), None),
        };
        match (user, bool::from(matches & known)) {
            (Some(LocalUser { framed_ipv4, .. }), true) => AuthDecision::Accept(AuthAccept {
                mschapv2,
                framed_ipv4,
                ..AuthAccept::default()
            }),
            _ => AuthDecision::Reject(AuthReject {
                reason: RejectReason::AuthenticationFailure,
                message: REJECT_MESSAGE.into(),
            }),
        }
    }
}

impl<S: PasswordStore> Authenticator for LocalAuthenticator<S> {
    fn authenticate(&self, request: AuthRequest, _context: AuthContext, reply: AuthReply) {
        reply.send(self.decide(&request));
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::proto::auth::tests::vectors as rfc;
    use crate::testing::StaticPasswords;

    fn authenticator() -> LocalAuthenticator<StaticPasswords> {
        let mut store = StaticPasswords::new();
        store.insert("User", "clientPass");
        store.insert_user(
            "pinned",
            LocalUser {
                password: b"pw".to_vec(),
                framed_ipv4: Some(Ipv4Addr::new(10, 0, 0, 7)),
            },
        );
        LocalAuthenticator::new(store)
    }

    fn rejected() -> AuthDecision {
        AuthDecision::Reject(AuthReject {
            reason: RejectReason::AuthenticationFailure,
            message: REJECT_MESSAGE.into(),
        })
    }

    fn pap(username: &str, password: &[u8]) -> AuthRequest {
        AuthRequest {
            id: super::super::AuthRequestId::UNASSIGNED,
            username: username.into(),
            credentials: Credentials::Pap {
                password: password.to_vec(),
            },
        }
    }

    #[test]
    fn pap_accepts_the_right_password_only() {
        let auth = authenticator();
        assert_eq!(
            auth.decide(&pap("User", b"clientPass")),
            AuthDecision::Accept(AuthAccept::default())
        );
        assert_eq!(auth.decide(&pap("User", b"clientPas")), rejected());
        assert_eq!(auth.decide(&pap("User", b"clientPass\0")), rejected());
        assert_eq!(auth.decide(&pap("user", b"clientPass")), rejected());
        // Unknown user: the very same answer.
        assert_eq!(auth.decide(&pap("nobody", b"clientPass")), rejected());
        // Even with the dummy password.
        assert_eq!(auth.decide(&pap("nobody", DUMMY_PASSWORD)), rejected());
    }

    #[test]
    fn framed_address_is_passed_on() {
        assert_eq!(
            authenticator().decide(&pap("pinned", b"pw")),
            AuthDecision::Accept(AuthAccept {
                mschapv2: None,
                framed_ipv4: Some(Ipv4Addr::new(10, 0, 0, 7)),
                ..AuthAccept::default()
            })
        );
    }

    #[test]
    fn chap_md5() {
        let auth = authenticator();
        let challenge = vec![9u8; 16];
        let request = |username: &str, secret: &[u8]| AuthRequest {
            id: super::super::AuthRequestId::UNASSIGNED,
            username: username.into(),
            credentials: Credentials::ChapMd5 {
                identifier: 3,
                challenge: challenge.clone(),
                response: md5_response(3, secret, &challenge),
            },
        };
        assert_eq!(
            auth.decide(&request("User", b"clientPass")),
            AuthDecision::Accept(AuthAccept::default())
        );
        assert_eq!(auth.decide(&request("User", b"wrong")), rejected());
        assert_eq!(auth.decide(&request("nobody", b"clientPass")), rejected());
    }

    #[test]
    fn mschapv2_with_rfc2759_vectors() {
        let auth = authenticator();
        let request = |username: &str, nt_response: [u8; 24]| AuthRequest {
            id: super::super::AuthRequestId::UNASSIGNED,
            username: username.into(),
            credentials: Credentials::MsChapV2 {
                identifier: 1,
                authenticator_challenge: rfc::AUTHENTICATOR_CHALLENGE,
                peer_challenge: rfc::PEER_CHALLENGE,
                nt_response,
            },
        };
        let AuthDecision::Accept(accept) = auth.decide(&request("User", rfc::NT_RESPONSE)) else {
            panic!("RFC 2759 response rejected");
        };
        let proof = accept.mschapv2.expect("MS-CHAPv2 accept carries the proof");
        assert_eq!(proof.authenticator_response, rfc::AUTHENTICATOR_RESPONSE);
        assert_eq!(proof.keys.send, rfc::SERVER_MASTER_SEND_KEY);
        let mut wrong = rfc::NT_RESPONSE;
        wrong[0] ^= 0x80;
        assert_eq!(auth.decide(&request("User", wrong)), rejected());
        assert_eq!(
            auth.decide(&request("nobody", rfc::NT_RESPONSE)),
            rejected()
        );
    }

    #[test]
    fn answers_through_the_reply() {
        let answer = Arc::new(Mutex::new(None));
        let slot = answer.clone();
        authenticator().authenticate(
            pap("User", b"clientPass"),
            AuthContext::default(),
            AuthReply::new(move |decision| *slot.lock().unwrap() = Some(decision)),
        );
        assert_eq!(
            answer.lock().unwrap().take(),
            Some(AuthDecision::Accept(AuthAccept::default()))
        );
    }

    #[test]
    fn store_basics() {
        let mut store = StaticPasswords::new();
        assert!(store.is_empty());
        store.insert("a", "1");
        store.insert("a", "2");
        assert_eq!(store.len(), 1);
        assert_eq!(store.lookup("a").unwrap().password, b"2");
        assert!(store.lookup("b").is_none());
        assert!(!format!("{store:?}").contains('2'));
    }
}
