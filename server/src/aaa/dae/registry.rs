//! The live sessions as a Dynamic Authorization request names them
//! ([RFC 5176] 3): by Acct-Session-Id, User-Name, Framed-IP-Address and
//! Calling-Station-Id, each mapped to where the session lives.
//!
//! The workers register a session when it is authenticated, record its
//! tunnel address while IPCP has one, and unregister it when it closes;
//! the DAE thread looks sessions up. One mutex guards the lot: it is taken
//! a few times per session (not per packet) by the workers and once per
//! request by the DAE thread, like the address pools. The registry holds
//! at most `capacity` sessions (`server.max_sessions`, so the bound is
//! reached only if unregistering were missed); one beyond it is refused
//! and counted (`dae_registry_full`), which leaves that session out of
//! reach of Disconnect and CoA but otherwise untouched.
//!
//! [RFC 5176]: https://www.rfc-editor.org/rfc/rfc5176

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::routing::session_table::SessionRef;

/// What identifies sessions in a request: every attribute given must
/// match ([RFC 5176] 3: the session identification attributes together
/// select the sessions).
///
/// [RFC 5176]: https://www.rfc-editor.org/rfc/rfc5176
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    /// Acct-Session-Id ([RFC 2866] 5.5).
    ///
    /// [RFC 2866]: https://www.rfc-editor.org/rfc/rfc2866
    pub acct_session_id: Option<String>,
    /// User-Name ([RFC 2865] 5.1): the authenticated name, exactly.
    ///
    /// [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
    pub user_name: Option<String>,
    /// Framed-IP-Address ([RFC 2865] 5.8): the session's IPv4 tunnel
    /// address.
    ///
    /// [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
    pub framed_ip: Option<Ipv4Addr>,
    /// Calling-Station-Id ([RFC 2865] 5.31): the client's IP address, as
    /// sstpd sends it in its requests; any spelling of the same address
    /// matches.
    ///
    /// [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
    pub calling_station_id: Option<String>,
}

impl Selector {
    /// Whether no session identification attribute was given.
    pub fn is_empty(&self) -> bool {
        self.acct_session_id.is_none()
            && self.user_name.is_none()
            && self.framed_ip.is_none()
            && self.calling_station_id.is_none()
    }

    /// The Calling-Station-Id as an address (`None`: absent; `Some(None)`:
    /// not an address, so it names no session of sstpd's).
    fn calling_station(&self) -> Option<Option<IpAddr>> {
        self.calling_station_id
            .as_deref()
            .map(|id| id.trim().parse::<IpAddr>().ok().map(|ip| ip.to_canonical()))
    }

    fn matches(&self, id: &str, entry: &Entry) -> bool {
        self.acct_session_id
            .as_deref()
            .is_none_or(|want| want == id)
            && self
                .user_name
                .as_deref()
                .is_none_or(|want| want == &*entry.user)
            && self
                .framed_ip
                .is_none_or(|want| entry.framed_ip == Some(want))
            && self
                .calling_station()
                .is_none_or(|want| want == Some(entry.peer))
    }
}

/// A session a [`Selector`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selected {
    /// Its Acct-Session-Id.
    pub acct_session_id: String,
    /// Its user.
    pub user: String,
    /// Where it lives.
    pub location: SessionRef,
}

/// The registry is full (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegistryFull;

impl fmt::Display for RegistryFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the dynamic authorization session registry is full")
    }
}

impl std::error::Error for RegistryFull {}

#[derive(Debug)]
struct Entry {
    user: Arc<str>,
    peer: IpAddr,
    framed_ip: Option<Ipv4Addr>,
    location: SessionRef,
}

/// Ids by a key many sessions may share.
type MultiIndex<K> = HashMap<K, HashSet<Arc<str>>>;

fn index_add<K: Hash + Eq>(index: &mut MultiIndex<K>, key: K, id: &Arc<str>) {
    index.entry(key).or_default().insert(id.clone());
}

fn index_remove<K: Hash + Eq>(index: &mut MultiIndex<K>, key: &K, id: &str) {
    if let Some(ids) = index.get_mut(key) {
        ids.remove(id);
        if ids.is_empty() {
            index.remove(key);
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    by_id: HashMap<Arc<str>, Entry>,
    by_user: MultiIndex<Arc<str>>,
    by_peer: MultiIndex<IpAddr>,
    by_ip: HashMap<Ipv4Addr, Arc<str>>,
}

impl Inner {
    fn remove(&mut self, id: &str) -> Option<Entry> {
        let (id, entry) = self.by_id.remove_entry(id)?;
        index_remove(&mut self.by_user, &entry.user, &id);
        index_remove(&mut self.by_peer, &entry.peer, &id);
        if let Some(ip) = entry.framed_ip {
            self.clear_ip(ip, &id);
        }
        Some(entry)
    }

    /// Drops `ip → id` unless a newer session took the address over.
    fn clear_ip(&mut self, ip: Ipv4Addr, id: &str) {
        if self.by_ip.get(&ip).is_some_and(|owner| &**owner == id) {
            self.by_ip.remove(&ip);
        }
    }

    /// The ids worth checking against `selector`: the smallest index
    /// that applies.
    fn candidates(&self, selector: &Selector) -> Vec<Arc<str>> {
        if let Some(id) = &selector.acct_session_id {
            return self
                .by_id
                .get_key_value(id.as_str())
                .map(|(id, _)| vec![id.clone()])
                .unwrap_or_default();
        }
        if let Some(ip) = selector.framed_ip {
            return self.by_ip.get(&ip).cloned().into_iter().collect();
        }
        if let Some(user) = &selector.user_name {
            return self
                .by_user
                .get(user.as_str())
                .map(|ids| ids.iter().cloned().collect())
                .unwrap_or_default();
        }
        match selector.calling_station() {
            Some(Some(peer)) => self
                .by_peer
                .get(&peer)
                .map(|ids| ids.iter().cloned().collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }
}

/// The live, authenticated sessions by what identifies them (see the
/// module documentation). Shared by the workers and the DAE thread.
#[derive(Debug)]
pub struct SessionRegistry {
    inner: Mutex<Inner>,
    capacity: usize,
}

impl SessionRegistry {
    /// An empty registry for at most `capacity` sessions.
    pub fn new(capacity: usize) -> Self {
        SessionRegistry {
            inner: Mutex::default(),
            capacity,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the maps consistent (every
        // update is a few inserts and removes that cannot panic midway
        // except on allocation failure): keep using them.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers an authenticated session (again: replaces what was
    /// registered under `acct_session_id`).
    pub fn register(
        &self,
        acct_session_id: &str,
        user: &str,
        peer: IpAddr,
        location: SessionRef,
    ) -> Result<(), RegistryFull> {
        let mut inner = self.lock();
        inner.remove(acct_session_id);
        if inner.by_id.len() >= self.capacity {
            return Err(RegistryFull);
        }
        let id: Arc<str> = acct_session_id.into();
        let user: Arc<str> = user.into();
        let peer = peer.to_canonical();
        index_add(&mut inner.by_user, user.clone(), &id);
        index_add(&mut inner.by_peer, peer, &id);
        inner.by_id.insert(
            id,
            Entry {
                user,
                peer,
                framed_ip: None,
                location,
            },
        );
        Ok(())
    }

    /// Records the session's IPv4 tunnel address (`None`: IPCP went down).
    /// A later session given the same address takes it over.
    pub fn set_framed_ip(&self, acct_session_id: &str, ip: Option<Ipv4Addr>) {
        let inner = &mut *self.lock();
        let Some((id, entry)) = inner.by_id.get_key_value(acct_session_id) else {
            return;
        };
        let (id, old) = (id.clone(), entry.framed_ip);
        if let Some(old) = old {
            inner.clear_ip(old, &id);
        }
        if let Some(ip) = ip {
            inner.by_ip.insert(ip, id.clone());
        }
        if let Some(entry) = inner.by_id.get_mut(&id) {
            entry.framed_ip = ip;
        }
    }

    /// Forgets a session (it closed). Unknown ids are ignored.
    pub fn unregister(&self, acct_session_id: &str) {
        self.lock().remove(acct_session_id);
    }

    /// The sessions `selector` names; none for an empty selector.
    pub fn select(&self, selector: &Selector) -> Vec<Selected> {
        let inner = self.lock();
        let mut found: Vec<Selected> = inner
            .candidates(selector)
            .into_iter()
            .filter_map(|id| {
                let entry = inner.by_id.get(&id)?;
                selector.matches(&id, entry).then(|| Selected {
                    acct_session_id: id.to_string(),
                    user: entry.user.to_string(),
                    location: entry.location,
                })
            })
            .collect();
        found.sort_by(|a, b| a.acct_session_id.cmp(&b.acct_session_id));
        found
    }

    /// Sessions registered.
    pub fn len(&self) -> usize {
        self.lock().by_id.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(slot: u32) -> SessionRef {
        SessionRef {
            worker: (slot % 2) as u16,
            slot,
            generation: 1,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Three sessions: alice twice (from one NAT address), bob once.
    fn registry() -> SessionRegistry {
        let r = SessionRegistry::new(10);
        r.register("s1", "alice", ip("198.51.100.7"), at(1))
            .unwrap();
        r.register("s2", "alice", ip("198.51.100.7"), at(2))
            .unwrap();
        r.register("s3", "bob", ip("2001:db8::5"), at(3)).unwrap();
        r.set_framed_ip("s1", Some(Ipv4Addr::new(10, 99, 0, 2)));
        r.set_framed_ip("s2", Some(Ipv4Addr::new(10, 99, 0, 3)));
        r
    }

    fn ids(r: &SessionRegistry, selector: Selector) -> Vec<String> {
        r.select(&selector)
            .into_iter()
            .map(|s| s.acct_session_id)
            .collect()
    }

    #[test]
    fn each_attribute_selects_and_all_given_must_match() {
        let r = registry();
        let by_id = Selector {
            acct_session_id: Some("s2".into()),
            ..Selector::default()
        };
        assert_eq!(ids(&r, by_id.clone()), ["s2"]);
        assert_eq!(r.select(&by_id)[0].location, at(2));
        assert_eq!(r.select(&by_id)[0].user, "alice");
        let by_user = Selector {
            user_name: Some("alice".into()),
            ..Selector::default()
        };
        assert_eq!(ids(&r, by_user), ["s1", "s2"]);
        let by_ip = Selector {
            framed_ip: Some(Ipv4Addr::new(10, 99, 0, 3)),
            ..Selector::default()
        };
        assert_eq!(ids(&r, by_ip), ["s2"]);
        let by_station = Selector {
            calling_station_id: Some("198.51.100.7".into()),
            ..Selector::default()
        };
        assert_eq!(ids(&r, by_station), ["s1", "s2"]);
        // Any spelling of the address.
        let v6 = Selector {
            calling_station_id: Some("2001:DB8:0::5".into()),
            ..Selector::default()
        };
        assert_eq!(ids(&r, v6), ["s3"]);

        // Together: every given attribute must match.
        let both = Selector {
            user_name: Some("alice".into()),
            framed_ip: Some(Ipv4Addr::new(10, 99, 0, 2)),
            ..Selector::default()
        };
        assert_eq!(ids(&r, both), ["s1"]);
        let conflicting = Selector {
            acct_session_id: Some("s3".into()),
            user_name: Some("alice".into()),
            ..Selector::default()
        };
        assert!(ids(&r, conflicting).is_empty());
        let wrong_station = Selector {
            user_name: Some("bob".into()),
            calling_station_id: Some("198.51.100.7".into()),
            ..Selector::default()
        };
        assert!(ids(&r, wrong_station).is_empty());
        let not_an_address = Selector {
            calling_station_id: Some("00-11-22-33-44-55".into()),
            ..Selector::default()
        };
        assert!(ids(&r, not_an_address).is_empty());
        assert!(Selector::default().is_empty());
        assert!(
            ids(&r, Selector::default()).is_empty(),
            "nothing selects nothing"
        );
        // Names are exact.
        let upper = Selector {
            user_name: Some("Alice".into()),
            ..Selector::default()
        };
        assert!(ids(&r, upper).is_empty());
    }

    #[test]
    fn sessions_leave_every_index_when_unregistered() {
        let r = registry();
        r.unregister("s1");
        r.unregister("no such session");
        assert_eq!(r.len(), 2);
        let alice = Selector {
            user_name: Some("alice".into()),
            ..Selector::default()
        };
        assert_eq!(ids(&r, alice.clone()), ["s2"]);
        let old_ip = Selector {
            framed_ip: Some(Ipv4Addr::new(10, 99, 0, 2)),
            ..Selector::default()
        };
        assert!(ids(&r, old_ip).is_empty());
        r.unregister("s2");
        r.unregister("s3");
        assert!(r.is_empty());
        assert!(ids(&r, alice).is_empty());
        let inner = r.lock();
        assert!(inner.by_user.is_empty() && inner.by_peer.is_empty() && inner.by_ip.is_empty());
    }

    #[test]
    fn an_address_taken_over_stays_with_the_newer_session() {
        let r = registry();
        let shared = Ipv4Addr::new(10, 99, 0, 2);
        // s2 gets s1's fixed address (a second login takes it over) ...
        r.set_framed_ip("s2", Some(shared));
        // ... and s1's IPCP going down later does not take it away.
        r.set_framed_ip("s1", None);
        let by_ip = Selector {
            framed_ip: Some(shared),
            ..Selector::default()
        };
        assert_eq!(ids(&r, by_ip.clone()), ["s2"]);
        r.unregister("s1");
        assert_eq!(ids(&r, by_ip.clone()), ["s2"]);
        // s2's old address is no longer its.
        let old = Selector {
            framed_ip: Some(Ipv4Addr::new(10, 99, 0, 3)),
            ..Selector::default()
        };
        assert!(ids(&r, old).is_empty());
        r.set_framed_ip("s2", None);
        assert!(ids(&r, by_ip).is_empty());
    }

    #[test]
    fn the_capacity_bounds_it() {
        let r = SessionRegistry::new(2);
        r.register("a", "u", ip("192.0.2.1"), at(1)).unwrap();
        r.register("b", "u", ip("192.0.2.1"), at(2)).unwrap();
        assert_eq!(
            r.register("c", "u", ip("192.0.2.1"), at(3)),
            Err(RegistryFull)
        );
        // Registering an id again replaces it, full or not.
        r.register("b", "v", ip("192.0.2.2"), at(4)).unwrap();
        assert_eq!(r.len(), 2);
        let v = Selector {
            user_name: Some("v".into()),
            ..Selector::default()
        };
        assert_eq!(r.select(&v)[0].location, at(4));
        r.unregister("a");
        r.register("c", "u", ip("192.0.2.1"), at(3)).unwrap();
    }
}
