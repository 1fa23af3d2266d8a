//! Authentication, authorization and accounting: the [`Authenticator`]
//! implementations the workers hand the core's authentication requests to.
//!
//! * [`local`]: users from pppd's chap-secrets file and the configuration's
//!   inline entries, reloadable without dropping sessions.
//! * [`throttle`]: back-off for password guessing, per source address and
//!   per user name, in bounded memory.
//! * [`radius`]: authentication through RADIUS servers (the runtime
//!   around the sans-IO [`crate::radius`] codec).
//! * [`chain`]: the user store order (`users.backends`): local users, then
//!   RADIUS.
//! * [`session_id`]: Acct-Session-Ids, unique across restarts and nodes.
//!
//! [`Authenticator`]: crate::proto::auth::Authenticator

pub mod chain;
pub mod local;
pub mod radius;
pub mod session_id;
pub mod throttle;
