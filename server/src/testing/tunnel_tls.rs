//! A stand-in for the TLS inside the EAP-TLS family
//! ([`crate::proto::auth::tls_framing::TunnelTls`]), for unit tests and
//! fuzz targets that drive the PEAP and EAP-TLS peers without a real
//! handshake: records pass through as plaintext.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::proto::auth::tls_framing::{EapTlsError, TunnelTls, TunnelTlsConnector};

/// Passes records through as plaintext, counting what it is fed. Its
/// handshake ends with the first records received (the MSK is then 64
/// octets of 7); records starting with 0x15 (an alert) are the
/// authenticator's refusal, with 0xff our own.
#[derive(Debug, Default)]
pub struct TransparentTls {
    received: Vec<u8>,
    sent: Vec<u8>,
    fed: Arc<AtomicUsize>,
    done: bool,
}

impl TunnelTls for TransparentTls {
    fn receive(&mut self, records: &[u8]) -> Result<(), EapTlsError> {
        self.fed.fetch_add(1, Ordering::Relaxed);
        match records.first() {
            Some(0x15) => return Err(EapTlsError::TlsAlert),
            Some(0xff) => return Err(EapTlsError::Tls),
            _ => {}
        }
        self.done = true;
        self.received.extend_from_slice(records);
        Ok(())
    }
    fn transmit(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.sent);
    }
    fn is_handshaking(&self) -> bool {
        !self.done
    }
    fn read_plaintext(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.received);
    }
    fn write_plaintext(&mut self, plaintext: &[u8]) {
        self.sent.extend_from_slice(plaintext);
    }
    fn export_msk(&self) -> Option<[u8; 64]> {
        self.done.then_some([7; 64])
    }
}

/// Starts [`TransparentTls`] tunnels whose ClientHello is "hello", or
/// `hello_len` octets when that is not zero; `fed` counts the records
/// they receive.
#[derive(Debug, Default)]
pub struct TransparentConnector {
    pub fed: Arc<AtomicUsize>,
    pub hello_len: usize,
}

impl TunnelTlsConnector for TransparentConnector {
    fn connect(&self) -> Result<Box<dyn TunnelTls>, EapTlsError> {
        let hello = match self.hello_len {
            0 => b"hello".to_vec(),
            len => vec![0xab; len],
        };
        Ok(Box::new(TransparentTls {
            sent: hello,
            fed: self.fed.clone(),
            ..TransparentTls::default()
        }))
    }
}
