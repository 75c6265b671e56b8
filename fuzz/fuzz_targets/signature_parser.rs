//! Fuzz the SSH signature code that reads untrusted bytes: `parse_sshsig` (armored SSHSIG),
//! `split_signed_tag` (raw tag objects) and `key_fingerprint`.
//!
//! Each input is used three ways, so one corpus serves all of them:
//! 1. as armored text (lossy UTF-8) for `parse_sshsig`;
//! 2. as a raw tag object for `split_signed_tag`, whose signature, if any, is parsed too;
//! 3. as a binary SSHSIG blob, armored here (base64, 70 columns) so the fuzzer reaches the
//!    wire-format parser without having to produce valid base64 itself.
//!
//! Invariants checked (beyond "never panics"): a parsed signature re-armors to text that
//! parses back to the same value; `split_signed_tag` returns the whole object when there is
//! no signature, and otherwise a signature that starts with a marker line.
#![no_main]

use konductor_core::sign::{key_fingerprint, parse_sshsig, split_signed_tag};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check_armored(&String::from_utf8_lossy(data));

    let (payload, signature) = split_signed_tag(data);
    assert!(payload.len() <= data.len(), "the payload grew");
    match signature {
        None => assert_eq!(payload, data, "unsigned object altered"),
        Some(sig) => {
            assert!(sig.starts_with("-----BEGIN "), "signature without a marker: {sig:?}");
            check_armored(&sig);
        }
    }

    check_armored(&armor(data));
    let _ = key_fingerprint(data);
});

fn check_armored(text: &str) {
    let Ok(sig) = parse_sshsig(text) else { return };
    let armored = sig.to_armored();
    let again = parse_sshsig(&armored)
        .unwrap_or_else(|e| panic!("{sig:?} armors to {armored:?}, which does not parse: {e}"));
    assert_eq!(again, sig, "armor round trip changed the signature");
    assert_eq!(again.to_armored(), armored, "to_armored is not stable");
    let fp = sig.fingerprint();
    assert!(fp.starts_with("SHA256:"));
}

fn armor(blob: &[u8]) -> String {
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut body = Vec::with_capacity(blob.len().div_ceil(3) * 4);
    for chunk in blob.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                body.push(B64[(n >> (18 - 6 * i)) as usize & 63]);
            } else {
                body.push(b'=');
            }
        }
    }
    let mut out = String::from("-----BEGIN SSH SIGNATURE-----\n");
    for line in body.chunks(70) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str("-----END SSH SIGNATURE-----\n");
    out
}
