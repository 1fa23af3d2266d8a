//! The user store order of `users.backends`: local users, RADIUS, or local
//! users first and RADIUS for the names the local store does not know.
//!
//! RADIUS cannot say "no such user", only reject, so the order is fixed:
//! local first. A user the local store knows is judged by it alone (a
//! wrong local password is not retried against RADIUS, which would double
//! the guesses per attempt). Whether a name is local shows in the answer's
//! latency (local answers at once); local names are operator accounts,
//! not secrets. Relayed EAP ([`Credentials::Eap`]) goes to RADIUS only:
//! the local store cannot run the method the RADIUS server chose.

use std::fmt;
use std::sync::Arc;

use crate::proto::auth::verify::{LocalAuthenticator, REJECT_MESSAGE};
use crate::proto::auth::{
    AuthContext, AuthDecision, AuthReject, AuthReply, AuthRequest, Authenticator, Credentials,
    PasswordStore, RejectReason,
};

/// Local users, then a remote authenticator (RADIUS); either may be left
/// out.
pub struct AaaChain<S: PasswordStore> {
    local: Option<LocalAuthenticator<S>>,
    remote: Option<Arc<dyn Authenticator>>,
}

impl<S: PasswordStore> fmt::Debug for AaaChain<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AaaChain")
            .field("local", &self.local.is_some())
            .field("remote", &self.remote.is_some())
            .finish()
    }
}

impl<S: PasswordStore> AaaChain<S> {
    /// `local` first (if any), then `remote` (if any) for the users
    /// `local` does not know. With neither, everyone is rejected.
    pub fn new(local: Option<S>, remote: Option<Arc<dyn Authenticator>>) -> Self {
        AaaChain {
            local: local.map(LocalAuthenticator::new),
            remote,
        }
    }
}

impl<S: PasswordStore> Authenticator for AaaChain<S> {
    fn authenticate(&self, request: AuthRequest, context: AuthContext, reply: AuthReply) {
        let relayed = matches!(request.credentials, Credentials::Eap { .. });
        if let Some(local) = self.local.as_ref().filter(|_| !relayed) {
            let known = local.store().lookup(&request.username).is_some();
            if known || self.remote.is_none() {
                return local.authenticate(request, context, reply);
            }
        }
        match &self.remote {
            Some(remote) => remote.authenticate(request, context, reply),
            None => reply.send(AuthDecision::Reject(AuthReject {
                reason: RejectReason::AuthenticationFailure,
                message: REJECT_MESSAGE.into(),
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::proto::auth::{AuthAccept, AuthRequestId};
    use crate::testing::StaticPasswords;

    /// Records the names it is asked about and accepts them: stands for
    /// RADIUS in this unit test of the ordering (the real one is tested
    /// against FreeRADIUS in tests/radius.rs).
    #[derive(Default)]
    struct Recorder(Mutex<Vec<String>>);

    impl Authenticator for Recorder {
        fn authenticate(&self, request: AuthRequest, _: AuthContext, reply: AuthReply) {
            self.0.lock().unwrap().push(request.username);
            reply.send(AuthDecision::Accept(AuthAccept::default()));
        }
    }

    fn pap(user: &str, password: &str) -> AuthRequest {
        AuthRequest {
            id: AuthRequestId::from_raw(1),
            username: user.into(),
            credentials: Credentials::Pap {
                password: password.as_bytes().to_vec(),
            },
        }
    }

    fn ask(chain: &dyn Authenticator, user: &str, password: &str) -> AuthDecision {
        let answer = Arc::new(Mutex::new(None));
        let slot = answer.clone();
        chain.authenticate(
            pap(user, password),
            AuthContext::default(),
            AuthReply::new(move |d| *slot.lock().unwrap() = Some(d)),
        );
        let decision = answer.lock().unwrap().take();
        decision.expect("answered at once")
    }

    fn local() -> StaticPasswords {
        let mut users = StaticPasswords::new();
        users.insert("alice", "alice-pw");
        users
    }

    #[test]
    fn local_users_are_judged_locally_and_the_rest_go_to_the_remote() {
        let remote = Arc::new(Recorder::default());
        let chain = AaaChain::new(
            Some(local()),
            Some(remote.clone() as Arc<dyn Authenticator>),
        );
        assert!(matches!(
            ask(&chain, "alice", "alice-pw"),
            AuthDecision::Accept(_)
        ));
        // A wrong local password is not retried remotely.
        assert!(matches!(
            ask(&chain, "alice", "wrong"),
            AuthDecision::Reject(_)
        ));
        assert!(matches!(ask(&chain, "bob", "x"), AuthDecision::Accept(_)));
        assert_eq!(*remote.0.lock().unwrap(), ["bob"]);
    }

    #[test]
    fn one_backend_alone() {
        let chain = AaaChain::new(Some(local()), None);
        assert!(matches!(ask(&chain, "bob", "x"), AuthDecision::Reject(_)));
        let remote = Arc::new(Recorder::default());
        let chain = AaaChain::<StaticPasswords>::new(None, Some(remote.clone() as _));
        assert!(matches!(ask(&chain, "alice", "x"), AuthDecision::Accept(_)));
        assert_eq!(*remote.0.lock().unwrap(), ["alice"]);
        let nobody = AaaChain::<StaticPasswords>::new(None, None);
        assert!(matches!(
            ask(&nobody, "alice", "alice-pw"),
            AuthDecision::Reject(_)
        ));
    }
}
