//! MPPE master keys from MS-CHAPv2 ([RFC 3079] 3.4), the 16-octet
//! MasterSendKey and MasterReceiveKey of 128-bit keying, from which the
//! SSTP crypto binding builds its HLAK ([MS-SSTP] 3.2.5.2.2: client HLAK =
//! MasterSendKey ‖ MasterReceiveKey, server HLAK = MasterReceiveKey ‖
//! MasterSendKey, each in its own view, see [`MppeKeys`]).
//!
//! The client's send key is the server's receive key and the other way
//! round (Magic2 and Magic3 name both views), so the two HLAKs of one
//! session are the same 32 octets.
//!
//! [RFC 3079]: https://www.rfc-editor.org/rfc/rfc3079
//! [MS-SSTP]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-sstp/

use sha1::{Digest as _, Sha1};

use super::mschapv2::hash_nt_password_hash;
use super::MppeKeys;
use crate::proto::Role;

/// [RFC 3079] 3.4 Magic1.
const MAGIC_MASTER_KEY: &[u8; 27] = b"This is the MPPE Master Key";
/// [RFC 3079] 3.4 Magic2.
const MAGIC_CLIENT_SEND: &[u8; 84] =
    b"On the client side, this is the send key; on the server side, it is the receive key.";
/// [RFC 3079] 3.4 Magic3.
const MAGIC_CLIENT_RECEIVE: &[u8; 84] =
    b"On the client side, this is the receive key; on the server side, it is the send key.";
/// [RFC 3079] 3.4 SHSpad1.
const SHS_PAD1: [u8; 40] = [0x00; 40];
/// [RFC 3079] 3.4 SHSpad2.
const SHS_PAD2: [u8; 40] = [0xf2; 40];

/// [RFC 3079] 3.4 GetMasterKey: the first 16 octets of
/// SHA-1(PasswordHashHash ‖ NT-Response ‖ Magic1).
pub fn get_master_key(password_hash_hash: &[u8; 16], nt_response: &[u8; 24]) -> [u8; 16] {
    let digest = Sha1::new()
        .chain_update(password_hash_hash)
        .chain_update(nt_response)
        .chain_update(MAGIC_MASTER_KEY)
        .finalize();
    let mut master_key = [0u8; 16];
    master_key.copy_from_slice(&digest[..16]);
    master_key
}

/// [RFC 3079] 3.4 GetAsymmetricStartKey with SessionKeyLength 16 (128-bit
/// keys; the 40- and 56-bit variants take the first 8 octets of this).
pub fn get_asymmetric_start_key(master_key: &[u8; 16], is_send: bool, is_server: bool) -> [u8; 16] {
    let magic = if is_send == is_server {
        MAGIC_CLIENT_RECEIVE
    } else {
        MAGIC_CLIENT_SEND
    };
    let digest = Sha1::new()
        .chain_update(master_key)
        .chain_update(SHS_PAD1)
        .chain_update(magic)
        .chain_update(SHS_PAD2)
        .finalize();
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

/// MasterSendKey and MasterReceiveKey of `role` ([RFC 3079] 3.3, 128-bit)
/// from the NT password hash and the NT-Response of the exchange.
pub fn master_keys(password_hash: &[u8; 16], nt_response: &[u8; 24], role: Role) -> MppeKeys {
    let master_key = get_master_key(&hash_nt_password_hash(password_hash), nt_response);
    let is_server = role == Role::Server;
    MppeKeys {
        send: get_asymmetric_start_key(&master_key, true, is_server),
        receive: get_asymmetric_start_key(&master_key, false, is_server),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::auth::mschapv2::nt_password_hash;
    // [RFC 3079] 3.5.3 uses the [RFC 2759] 9.2 exchange (User/clientPass).
    use crate::proto::auth::tests::vectors::{
        MASTER_KEY, NT_RESPONSE, PASSWORD, PASSWORD_HASH_HASH,
        SERVER_MASTER_SEND_KEY as SEND_START_KEY_128,
    };

    #[test]
    fn magic_lengths_match_rfc3079() {
        assert_eq!(MAGIC_MASTER_KEY.len(), 27);
        assert_eq!(MAGIC_CLIENT_SEND.len(), 84);
        assert_eq!(MAGIC_CLIENT_RECEIVE.len(), 84);
    }

    #[test]
    fn rfc3079_master_key() {
        assert_eq!(
            get_master_key(&PASSWORD_HASH_HASH, &NT_RESPONSE),
            MASTER_KEY
        );
    }

    #[test]
    fn rfc3079_send_start_key() {
        assert_eq!(
            get_asymmetric_start_key(&MASTER_KEY, true, true),
            SEND_START_KEY_128
        );
        // The client receives with what the server sends.
        assert_eq!(
            get_asymmetric_start_key(&MASTER_KEY, false, false),
            SEND_START_KEY_128
        );
        assert_ne!(
            get_asymmetric_start_key(&MASTER_KEY, true, false),
            SEND_START_KEY_128
        );
    }

    #[test]
    fn views_mirror_and_hlaks_agree() {
        let password_hash = nt_password_hash(PASSWORD);
        let server = master_keys(&password_hash, &NT_RESPONSE, Role::Server);
        let client = master_keys(&password_hash, &NT_RESPONSE, Role::Client);
        assert_eq!(server.send, SEND_START_KEY_128);
        assert_eq!(server.send, client.receive);
        assert_eq!(server.receive, client.send);
        assert_ne!(server.send, server.receive);
        // [MS-SSTP] 3.2.5.2.2: both ends compute the same 32-octet HLAK.
        assert_eq!(server.server_hlak(), client.client_hlak());
        assert_eq!(server.server_hlak()[16..], SEND_START_KEY_128);
        assert_eq!(client.client_hlak()[..16], client.send);
    }
}
