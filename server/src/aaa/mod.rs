//! Authentication, authorization and accounting: the [`Authenticator`]
//! implementations the workers hand the core's authentication requests to.
//!
//! * [`local`]: users from pppd's chap-secrets file and the configuration's
//!   inline entries, reloadable without dropping sessions.
//!
//! [`Authenticator`]: crate::proto::auth::Authenticator

pub mod local;
