//! Packets captured on loopback from FreeRADIUS 3.2.1 (Debian 12) and its
//! radclient, shared secret `testing123`: an independent implementation
//! of every computation in [`super::super`]. The users were `nemo` /
//! `arctangent` (PAP) and RFC 2759's `User` / `clientPass` (MS-CHAPv2 with
//! the RFC's challenges and NT-Response). The server's default site had
//! `update reply { Message-Authenticator := 0x00 }` in post-auth (3.2.1
//! sends none in Access-Accept/-Reject otherwise); the DAE requests went
//! to a listener that only recorded them.

use super::*;
use crate::proto::auth::mppe::master_keys;
use crate::proto::auth::mschapv2::nt_password_hash;
use crate::proto::Role;

const SECRET: &[u8] = b"testing123";

/// radclient: Access-Request nemo/arctangent, NAS-Identifier,
/// Message-Authenticator (last).
const PAP_REQUEST: &str = "01b3004aa0ee68f4b608e8af195d5a73772d6db401066e656d6f0212cbce5ab2b85e31031b9b7f3e386a6fe4200c73737470642d746573745012e8e3071991b6dc5f2daf372d4442ec2b";
/// FreeRADIUS: its Access-Accept, with Message-Authenticator.
const PAP_ACCEPT: &str =
    "02b30026a77c71ba37937aee9b183d848b44b88950128f43c1bf0d554f9a99fad9958f0942a9";
/// radclient: MS-CHAPv2 Access-Request, RFC 2759 9.2's values.
const MSCHAP_REQUEST: &str = "017c008a7b3ebd5072ff0bba44bc74e23e9f814e0106557365721a18000001370b125b5d7c7d7b3f2f3e3c2c6021322626281a3a000001371934010021402324255e262a28295f2b3a337c7e000000000000000082309ecd8d708b5ea08faa3981cd83544233114a3d85d6df200c73737470642d7465737450123c512c23db488b659fe21092fde87b0d";
/// FreeRADIUS: its Access-Accept with MS-CHAP2-Success, the MPPE keys,
/// policy, types and Message-Authenticator.
const MSCHAP_ACCEPT: &str = "027c00c5874b17288ee6d33cb50846a4625be8e31a33000001371a2d01533d343037413535383931313546443044363230394635313046453943303435363639333243444135361a2a0000013711248349dd80a1d82551295841cf570852251358cd3d9bc65cc31f24412f4effb3b4ce121a2a0000013710248f1ca792eb32544c884866deaaf9f3ea0dfe8d328042ec0d2cf750d89825a9394b3e1a0c000001370706000000011a0c0000013708060000000650128f855e82e68baacb0cb8de8c3ef2849e";
/// radclient: nemo with a wrong password.
const REJECTED_REQUEST: &str = "016a003eb4f0da4ac19209b29077537e4d98cab101066e656d6f0212ff8fc9fca5f3345835b74f93529f3aa250129672cf10e2d7af67dad28b2a0599f181";
/// FreeRADIUS: its Access-Reject.
const REJECT: &str = "036a0026c5d99db9951c4171d6a2799e52ed96fa50125c5a84ef9f7b4465d5f3a0c6bfee5662";
/// radclient: Accounting-Request Start with Message-Authenticator.
const ACCT_REQUEST: &str = "04190049cf1af7bd2c4b1c806971237425cdb15701066e656d6f2806000000012c05732d31200c73737470642d7465737429060000000050123fcbb25bbae65253e41ab6a653d05f56";
/// FreeRADIUS: its Accounting-Response.
const ACCT_RESPONSE: &str = "051900148e75f550f90182a7afc275971e3b7bdd";
/// radclient: Disconnect-Request with Event-Timestamp and
/// Message-Authenticator.
const DISCONNECT_REQUEST: &str = "282f0037999d92862125c15d35a0c9c791e0cc0901066e656d6f2c05732d3137066553f1005012cb3f9cca8ec39139513098fe160ae713";
/// radclient: CoA-Request without Message-Authenticator.
const COA_REQUEST: &str =
    "2bce002569772cd6e79c21dea5446e802ce85e0601066e656d6f2c05732d311b0600000258";

#[test]
fn radclient_access_requests_verify() {
    for request in [PAP_REQUEST, MSCHAP_REQUEST, REJECTED_REQUEST] {
        let bytes = unhex(request);
        assert_eq!(verify_request(&bytes, SECRET, true), Ok(()));
        assert_eq!(
            verify_request(&bytes, b"testing124", true),
            Err(VerifyError::BadMessageAuthenticator)
        );
    }
    let bytes = unhex(PAP_REQUEST);
    let packet = Packet::decode(&bytes).unwrap();
    let hidden = packet.attributes.get(attr::USER_PASSWORD).unwrap();
    let ra = authenticator_of(&bytes);
    assert_eq!(unhide_password(hidden, SECRET, &ra).unwrap(), b"arctangent");
    assert_eq!(hide_password(b"arctangent", SECRET, &ra).unwrap(), hidden);
}

#[test]
fn freeradius_responses_verify_with_message_authenticator() {
    for (request, response) in [
        (PAP_REQUEST, PAP_ACCEPT),
        (MSCHAP_REQUEST, MSCHAP_ACCEPT),
        (REJECTED_REQUEST, REJECT),
    ] {
        let ra = authenticator_of(&unhex(request));
        let bytes = unhex(response);
        assert_eq!(verify_response(&bytes, &ra, SECRET, true), Ok(()));
        // Signing our way gives FreeRADIUS's bytes.
        let mut resigned = bytes.clone();
        resigned[4..20].fill(0);
        let at = resigned.len() - 16;
        resigned[at..].fill(0);
        sign_response(&mut resigned, &ra, SECRET);
        assert_eq!(resigned, bytes);
    }
}

#[test]
fn freeradius_mschapv2_accept_carries_the_rfc_3079_keys() {
    let ra = authenticator_of(&unhex(MSCHAP_REQUEST));
    let accept = Packet::decode(&unhex(MSCHAP_ACCEPT)).unwrap();
    let attributes = &accept.attributes;
    let send_value = attributes.ms(ms::MPPE_SEND_KEY).unwrap();
    let send = decrypt_mppe_key(send_value, SECRET, &ra).unwrap();
    let receive = decrypt_mppe_key(attributes.ms(ms::MPPE_RECV_KEY).unwrap(), SECRET, &ra).unwrap();
    // RFC 2759 9.2: User / clientPass; the server's view of RFC 3079 3.4.
    let nt_response: [u8; 24] = unhex("82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF")
        .try_into()
        .unwrap();
    let expected = master_keys(&nt_password_hash(b"clientPass"), &nt_response, Role::Server);
    assert_eq!(send, expected.send);
    assert_eq!(receive, expected.receive);
    // RFC 3079 3.5.3: the server's send key is SendStartKey128.
    assert_eq!(send, unhex("8B7CDC149B993A1BA118CB153F56DCCB"));
    // With FreeRADIUS's salt our encryption gives its bytes.
    let salt = [send_value[0], send_value[1]];
    assert_eq!(
        encrypt_mppe_key(&send, SECRET, &ra, salt).unwrap(),
        send_value
    );

    let (ident, authenticator_response) =
        ms::parse_chap2_success(attributes.ms(ms::CHAP2_SUCCESS).unwrap()).unwrap();
    assert_eq!(ident, 1);
    assert_eq!(
        authenticator_response.to_vec(),
        unhex("407A5589115FD0D6209F510FE9C04566932CDA56")
    );
    assert_eq!(
        attributes.ms(ms::MPPE_ENCRYPTION_POLICY),
        Some(&[0, 0, 0, 1][..])
    );
}

#[test]
fn radclient_accounting_request_and_freeradius_response() {
    let request = unhex(ACCT_REQUEST);
    // The Message-Authenticator is over a zero Request Authenticator.
    assert_eq!(verify_request(&request, SECRET, true), Ok(()));
    let mut resigned = request.clone();
    let at = resigned.len() - 16;
    resigned[at..].fill(0);
    resigned[4..20].fill(0x55);
    sign_request(&mut resigned, SECRET);
    assert_eq!(resigned, request);

    let response = unhex(ACCT_RESPONSE);
    assert_eq!(
        verify_response(&response, &authenticator_of(&request), SECRET, false),
        Ok(())
    );
    assert_eq!(
        Packet::decode(&response).unwrap().code,
        Code::AccountingResponse
    );
}

#[test]
fn radclient_dynamic_authorization_requests() {
    let disconnect = unhex(DISCONNECT_REQUEST);
    assert_eq!(verify_request(&disconnect, SECRET, true), Ok(()));
    let coa = unhex(COA_REQUEST);
    assert_eq!(verify_request(&coa, SECRET, false), Ok(()));
    assert_eq!(
        verify_request(&coa, SECRET, true),
        Err(VerifyError::MissingMessageAuthenticator)
    );
    for bytes in [&disconnect, &coa] {
        assert_eq!(
            verify_request(bytes, b"nope", false),
            Err(VerifyError::BadAuthenticator)
        );
        let mut resigned = bytes.clone();
        resigned[4..20].fill(0);
        if bytes.len() == disconnect.len() {
            let at = resigned.len() - 16;
            resigned[at..].fill(0);
        }
        sign_request(&mut resigned, SECRET);
        assert_eq!(&resigned, bytes);
    }
    let packet = frame(&disconnect).unwrap();
    assert_eq!(packet.len(), 0x37);
}

#[test]
fn the_fuzz_seeds_are_these_captures() {
    let captures: Vec<Vec<u8>> = [
        PAP_REQUEST,
        PAP_ACCEPT,
        MSCHAP_REQUEST,
        MSCHAP_ACCEPT,
        REJECTED_REQUEST,
        REJECT,
        ACCT_REQUEST,
        ACCT_RESPONSE,
        DISCONNECT_REQUEST,
        COA_REQUEST,
    ]
    .into_iter()
    .map(unhex)
    .collect();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/radius_packet");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if !path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("seed_")
        {
            continue;
        }
        let seed = std::fs::read(&path).unwrap();
        // The target's selector octet, then the datagram.
        assert!(captures.contains(&seed[1..].to_vec()), "{}", path.display());
        seen += 1;
    }
    assert_eq!(seen, captures.len());
}
