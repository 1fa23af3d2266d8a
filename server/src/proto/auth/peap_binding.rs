//! PEAPv0's cryptobinding ([MS-PEAP] 3.1.5.5): the Crypto-Binding TLV
//! (2.2.8.1.1) that Windows NPS sends with the Result TLV and expects
//! answered, proving that the TLS tunnel and the inner EAP-MSCHAPv2 ended
//! at the same two parties; and the keys that replace the tunnel's once it
//! has been exchanged (3.1.5.7).
//!
//! * PRF+ for PEAPv0 (3.1.5.5.2.2): `T1 = HMAC-SHA1(K, S ‖ 0x01 ‖ 0x00 ‖
//!   0x00)`, `Tn = HMAC-SHA1(K, Tn-1 ‖ S ‖ n ‖ 0x00 ‖ 0x00)`.
//! * TK: the first 60 octets of the tunnel's key material (the MSK's
//!   exporter, label `client EAP encryption`). ISK: the inner method's
//!   `InnerMPPESendKey ‖ InnerMPPERecvKey` as the peer names them.
//!   `IPMK ‖ CMK = PRF+(TK[0..40], "Inner Methods Compound Keys" ‖ ISK, 60)`.
//! * Compound MAC: `HMAC-SHA1(CMK, TLV with the MAC zeroed (60 octets) ‖
//!   25)`; PEAPv0's Start carries no Outer TLVs (3.1.5.5.1).
//! * Keys after the exchange: `CSK = PRF+(IPMK, "Session Key Generating
//!   Function" ‖ 0x00, 128)`; the MSK is its first 64 octets (the peer's
//!   MS-MPPE-Send-Key then Recv-Key, the server's Recv then Send: the same
//!   octets), so the HLAK is `CSK[0..32]`.
//!
//! Checked against wpa_supplicant's `eap_peap.c`/`eap_peap_common.c`
//! (peer and server), computed independently: see the tests.
//!
//! [MS-PEAP]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-peap/

use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

use super::MppeKeys;

/// The Crypto-Binding TLV's Type ([MS-PEAP] 2.2.8.1.1; the Mandatory bit
/// clear).
///
/// [MS-PEAP]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-peap/
pub(crate) const CRYPTO_BINDING_TLV: u16 = 12;
/// Its Value length: Reserved, Version, RecvVersion, SubType, Nonce (32),
/// Compound MAC (20).
pub(crate) const CRYPTO_BINDING_LEN: usize = 56;
/// SubType of the server's TLV.
const SUBTYPE_REQUEST: u8 = 0;
/// SubType of the peer's answer.
const SUBTYPE_RESPONSE: u8 = 1;
/// PEAP's EAP Type, hashed after the TLV.
const TYPE_PEAP: u8 = 25;

/// The keys of one cryptobinding: the Compound MAC Key and the
/// Intermediate PEAP MAC Key the session keys come from.
pub(crate) struct BindingKeys {
    ipmk: [u8; 40],
    cmk: [u8; 20],
}

impl BindingKeys {
    /// The keys from the tunnel's key material (`tunnel_key`, at least
    /// its first 60 octets: TK) and the inner MS-CHAPv2's keys as the peer
    /// holds them.
    pub(crate) fn derive(tunnel_key: &[u8; 64], inner: Option<&MppeKeys>) -> Self {
        let mut seed = b"Inner Methods Compound Keys".to_vec();
        match inner {
            Some(keys) => {
                seed.extend_from_slice(&keys.send);
                seed.extend_from_slice(&keys.receive);
            }
            None => seed.extend_from_slice(&[0; 32]),
        }
        let mut imck = [0u8; 60];
        prf_plus(&tunnel_key[..40], &seed, &mut imck);
        let mut ipmk = [0u8; 40];
        let mut cmk = [0u8; 20];
        ipmk.copy_from_slice(&imck[..40]);
        cmk.copy_from_slice(&imck[40..]);
        BindingKeys { ipmk, cmk }
    }

    /// The Compound MAC of a Crypto-Binding TLV (`tlv`: its four header
    /// octets and 56 of Value; its MAC field is ignored).
    pub(crate) fn compound_mac(&self, tlv: &[u8; 4 + CRYPTO_BINDING_LEN]) -> [u8; 20] {
        let mut zeroed = *tlv;
        zeroed[40..].fill(0);
        let mut mac =
            <Hmac<Sha1> as Mac>::new_from_slice(&self.cmk).expect("HMAC takes a key of any length");
        mac.update(&zeroed);
        mac.update(&[TYPE_PEAP]);
        mac.finalize().into_bytes().into()
    }

    /// Checks the server's Crypto-Binding TLV Value (56 octets): a
    /// Request of version 0 whose Compound MAC verifies. The answer to
    /// send when it does: our Response TLV, whole.
    pub(crate) fn answer(&self, value: &[u8]) -> Option<[u8; 4 + CRYPTO_BINDING_LEN]> {
        let value: &[u8; CRYPTO_BINDING_LEN] = value.try_into().ok()?;
        let [_, version, _, subtype, ..] = *value;
        if version != 0 || subtype != SUBTYPE_REQUEST {
            return None;
        }
        let mut tlv = [0u8; 4 + CRYPTO_BINDING_LEN];
        tlv[..2].copy_from_slice(&CRYPTO_BINDING_TLV.to_be_bytes());
        tlv[2..4].copy_from_slice(&(CRYPTO_BINDING_LEN as u16).to_be_bytes());
        tlv[4..].copy_from_slice(value);
        let expected = self.compound_mac(&tlv);
        if !bool::from(expected.ct_eq(&tlv[40..])) {
            return None;
        }
        // The Response: the same nonce and versions, SubType 1.
        tlv[7] = SUBTYPE_RESPONSE;
        let mac = self.compound_mac(&tlv);
        tlv[40..].copy_from_slice(&mac);
        Some(tlv)
    }

    /// The MSK once the TLVs have been exchanged: the first 64 octets of
    /// the Compound Session Key ([MS-PEAP] 3.1.5.7).
    ///
    /// [MS-PEAP]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-peap/
    pub(crate) fn session_msk(&self) -> [u8; 64] {
        let mut csk = [0u8; 128];
        prf_plus(&self.ipmk, b"Session Key Generating Function\0", &mut csk);
        let mut msk = [0u8; 64];
        msk.copy_from_slice(&csk[..64]);
        msk
    }
}

/// PEAPv0's PRF+ ([MS-PEAP] 3.1.5.5.2.2) of `key` over `seed` (the label
/// and what follows it), filling `out`.
///
/// [MS-PEAP]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-peap/
fn prf_plus(key: &[u8], seed: &[u8], out: &mut [u8]) {
    let mut previous: Vec<u8> = Vec::new();
    for (index, chunk) in out.chunks_mut(20).enumerate() {
        let mut mac =
            <Hmac<Sha1> as Mac>::new_from_slice(key).expect("HMAC takes a key of any length");
        mac.update(&previous);
        mac.update(seed);
        mac.update(&[index as u8 + 1, 0, 0]);
        let block = mac.finalize().into_bytes();
        chunk.copy_from_slice(&block[..chunk.len()]);
        previous = block.to_vec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> ([u8; 64], MppeKeys) {
        let mut tunnel_key = [0u8; 64];
        for (index, octet) in tunnel_key.iter_mut().enumerate() {
            *octet = index as u8;
        }
        let keys = MppeKeys {
            send: [0x11; 16],
            receive: [0x22; 16],
        };
        (tunnel_key, keys)
    }

    /// The server's Request TLV for `nonce`, MAC'd with `keys`.
    fn request(keys: &BindingKeys, nonce: [u8; 32]) -> [u8; 4 + CRYPTO_BINDING_LEN] {
        let mut tlv = [0u8; 4 + CRYPTO_BINDING_LEN];
        tlv[..4].copy_from_slice(&[0, 12, 0, 56]);
        tlv[8..40].copy_from_slice(&nonce);
        let mac = keys.compound_mac(&tlv);
        tlv[40..].copy_from_slice(&mac);
        tlv
    }

    // The vectors below come from a separate computation (Python's hmac and
    // hashlib) following wpa_supplicant's peap_prfplus (version 0),
    // eap_peap_derive_cmk, eap_tlv_add_cryptobinding and eap_peap_getKey
    // line by line, on the inputs above.
    const IPMK: &str =
        "321ead2f74c6e0849badf803cd184f36c9d9a023c53fa78bad3bf3a3835c7f0eb1d30fc52763d69e";
    const CMK: &str = "78e169170d01b9fbcd6e0f93b785ec294ad419b2";
    const REQUEST_MAC: &str = "00ad82b08a14d495237c25617c085e54bd0588d8";
    const RESPONSE_MAC: &str = "968365a96fd198372733edc13fc6811c6b5ba2d1";
    const SESSION_MSK: &str = "ea9308d54e903e24cab8d639c059d5547355267ce78d36ad7d20d7b4d746975e\
                               e867c430a57676061be0a2a7c1976d4ec3fc99da7d9f1387b75543eeed42ddeb";

    #[test]
    fn keys_and_the_compound_mac_match_wpa_supplicants_computation() {
        let (tunnel_key, inner) = inputs();
        let keys = BindingKeys::derive(&tunnel_key, Some(&inner));
        assert_eq!(hex::encode(keys.cmk), CMK);
        assert_eq!(hex::encode(keys.ipmk), IPMK);
        let tlv = request(&keys, [0xab; 32]);
        assert_eq!(hex::encode(&tlv[40..]), REQUEST_MAC);
        let response = keys.answer(&tlv[4..]).expect("a valid request");
        assert_eq!(response[7], SUBTYPE_RESPONSE);
        assert_eq!(response[8..40], [0xab; 32]);
        assert_eq!(hex::encode(&response[40..]), RESPONSE_MAC);
        assert_eq!(hex::encode(keys.session_msk()), SESSION_MSK);
    }

    #[test]
    fn a_request_with_another_mac_version_or_subtype_is_not_answered() {
        let (tunnel_key, inner) = inputs();
        let keys = BindingKeys::derive(&tunnel_key, Some(&inner));
        // A server holding other inner keys (it does not know the password).
        let other = BindingKeys::derive(&tunnel_key, None);
        let forged = request(&other, [1; 32]);
        assert!(keys.answer(&forged[4..]).is_none());
        let mut tlv = request(&keys, [1; 32]);
        assert!(keys.answer(&tlv[4..]).is_some());
        tlv[5] = 1;
        assert!(keys.answer(&tlv[4..]).is_none());
        let mut tlv = request(&keys, [1; 32]);
        tlv[7] = SUBTYPE_RESPONSE;
        assert!(keys.answer(&tlv[4..]).is_none());
        assert!(keys.answer(&tlv[4..50]).is_none());
    }
}
