//! The account key and the JSON Web Signatures that carry every ACME request (RFC 8555 §6.2,
//! RFC 7515 flattened JSON serialization, RFC 7518 §3.4 ES256/ES384), and the key's JWK
//! thumbprint (RFC 7638) that key authorizations are made of (RFC 8555 §8.1).

use openssl::bn::{BigNum, BigNumContext};
use openssl::ec::{EcGroup, EcKey};
use openssl::ecdsa::EcdsaSig;
use openssl::hash::{MessageDigest, hash};
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};

use crate::AcmeError;

/// base64url without padding (RFC 7515 §2, RFC 4648 §5).
pub fn b64u(data: &[u8]) -> String {
    openssl::base64::encode_block(data)
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

/// An ECDSA account key: P-256 signs with ES256, P-384 with ES384 (RFC 7518 §3.4). RSA is
/// not offered: RFC 8555 allows it, TR-03116-4 would ask for 3072 bits, and EC is smaller.
pub struct AccountKey {
    key: EcKey<Private>,
    curve: Curve,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
}

impl Curve {
    fn nid(self) -> Nid {
        match self {
            Curve::P256 => Nid::X9_62_PRIME256V1,
            Curve::P384 => Nid::SECP384R1,
        }
    }
    /// Bytes of a coordinate, and of each half of a JOSE signature.
    fn size(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
        }
    }
    fn alg(self) -> &'static str {
        match self {
            Curve::P256 => "ES256",
            Curve::P384 => "ES384",
        }
    }
    fn crv(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
        }
    }
    fn digest(self) -> MessageDigest {
        match self {
            Curve::P256 => MessageDigest::sha256(),
            Curve::P384 => MessageDigest::sha384(),
        }
    }
}

fn ssl(what: &'static str) -> impl Fn(openssl::error::ErrorStack) -> AcmeError {
    move |e| AcmeError::Crypto(format!("{what}: {e}"))
}

impl AccountKey {
    pub fn generate(curve: Curve) -> Result<AccountKey, AcmeError> {
        let group = EcGroup::from_curve_name(curve.nid()).map_err(ssl("curve"))?;
        let key = EcKey::generate(&group).map_err(ssl("generate the account key"))?;
        Ok(AccountKey { key, curve })
    }

    /// A PEM private key (PKCS#8 or SEC1) of curve P-256 or P-384.
    pub fn from_pem(pem: &[u8]) -> Result<AccountKey, AcmeError> {
        let pkey = PKey::private_key_from_pem(pem).map_err(ssl("read the account key"))?;
        let key = pkey
            .ec_key()
            .map_err(|_| AcmeError::Crypto("the account key is not an EC key".into()))?;
        let curve = match key.group().curve_name() {
            Some(Nid::X9_62_PRIME256V1) => Curve::P256,
            Some(Nid::SECP384R1) => Curve::P384,
            _ => {
                return Err(AcmeError::Crypto(
                    "the account key must be on P-256 or P-384".into(),
                ));
            }
        };
        Ok(AccountKey { key, curve })
    }

    pub fn to_pem(&self) -> Result<Vec<u8>, AcmeError> {
        PKey::from_ec_key(self.key.clone())
            .and_then(|k| k.private_key_to_pem_pkcs8())
            .map_err(ssl("encode the account key"))
    }

    /// The public key as a JWK with exactly the members RFC 7638 §3.2 hashes, in
    /// lexicographic order and without white space: also its canonical form.
    pub fn jwk(&self) -> Result<String, AcmeError> {
        let mut ctx = BigNumContext::new().map_err(ssl("bignum"))?;
        let (mut x, mut y) = (
            BigNum::new().map_err(ssl("bignum"))?,
            BigNum::new().map_err(ssl("bignum"))?,
        );
        self.key
            .public_key()
            .affine_coordinates(self.key.group(), &mut x, &mut y, &mut ctx)
            .map_err(ssl("public key coordinates"))?;
        let n = self.curve.size() as i32;
        let x = x.to_vec_padded(n).map_err(ssl("coordinate"))?;
        let y = y.to_vec_padded(n).map_err(ssl("coordinate"))?;
        Ok(format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            self.curve.crv(),
            b64u(&x),
            b64u(&y)
        ))
    }

    /// RFC 7638: base64url(SHA-256(canonical JWK)).
    pub fn thumbprint(&self) -> Result<String, AcmeError> {
        let jwk = self.jwk()?;
        let digest = hash(MessageDigest::sha256(), jwk.as_bytes()).map_err(ssl("hash"))?;
        Ok(b64u(&digest))
    }

    /// The key authorization for a challenge token (RFC 8555 §8.1).
    pub fn key_authorization(&self, token: &str) -> Result<String, AcmeError> {
        Ok(format!("{token}.{}", self.thumbprint()?))
    }

    /// One signed request body (RFC 8555 §6.2): the protected header names the algorithm, the
    /// nonce, the URL and either the account URL (`kid`) or, before there is one, the key
    /// itself (`jwk`, for newAccount only). `payload: None` is a POST-as-GET (§6.3): an
    /// empty payload, not `{}`.
    pub fn sign(
        &self,
        url: &str,
        nonce: &str,
        kid: Option<&str>,
        payload: Option<&serde_json::Value>,
    ) -> Result<Vec<u8>, AcmeError> {
        let key_member = match kid {
            Some(k) => format!(r#""kid":{}"#, serde_json::Value::from(k)),
            None => format!(r#""jwk":{}"#, self.jwk()?),
        };
        let protected = format!(
            r#"{{"alg":"{}",{key_member},"nonce":{},"url":{}}}"#,
            self.curve.alg(),
            serde_json::Value::from(nonce),
            serde_json::Value::from(url)
        );
        let protected = b64u(protected.as_bytes());
        let payload = match payload {
            Some(p) => b64u(p.to_string().as_bytes()),
            None => String::new(),
        };
        let signing_input = format!("{protected}.{payload}");
        let digest = hash(self.curve.digest(), signing_input.as_bytes()).map_err(ssl("hash"))?;
        let sig = EcdsaSig::sign(&digest, &self.key).map_err(ssl("sign"))?;
        // JOSE wants R || S, each padded to the curve size (RFC 7518 §3.4), not DER.
        let n = self.curve.size() as i32;
        let mut raw = sig.r().to_vec_padded(n).map_err(ssl("signature"))?;
        raw.extend(sig.s().to_vec_padded(n).map_err(ssl("signature"))?);
        let body = serde_json::json!({
            "protected": protected,
            "payload": payload,
            "signature": b64u(&raw),
        });
        Ok(body.to_string().into_bytes())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly by design
    use super::*;

    fn b64u_decode(s: &str) -> Vec<u8> {
        let mut std = s.replace('-', "+").replace('_', "/");
        while !std.len().is_multiple_of(4) {
            std.push('=');
        }
        openssl::base64::decode_block(&std).unwrap()
    }

    #[test]
    fn base64url_has_no_padding_and_the_url_alphabet() {
        assert_eq!(b64u(b"\xfb\xff"), "-_8");
        assert_eq!(b64u(b""), "");
        assert_eq!(b64u(b"f"), "Zg");
    }

    /// RFC 7638 §3.1's example is RSA; for EC the canonical form is fixed by §3.2 — the same
    /// key must give the same JWK after a PEM round trip, and the thumbprint is its SHA-256.
    #[test]
    fn the_jwk_is_canonical_and_the_thumbprint_its_sha256() {
        let key = AccountKey::generate(Curve::P256).unwrap();
        let jwk = key.jwk().unwrap();
        let v: serde_json::Value = serde_json::from_str(&jwk).unwrap();
        let members: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(members, ["crv", "kty", "x", "y"]);
        assert!(!jwk.contains(' '));
        assert_eq!(b64u_decode(v["x"].as_str().unwrap()).len(), 32);
        let again = AccountKey::from_pem(&key.to_pem().unwrap()).unwrap();
        assert_eq!(again.jwk().unwrap(), jwk);
        let digest = hash(MessageDigest::sha256(), jwk.as_bytes()).unwrap();
        assert_eq!(key.thumbprint().unwrap(), b64u(&digest));
        assert_eq!(
            key.key_authorization("tok-1").unwrap(),
            format!("tok-1.{}", b64u(&digest))
        );
    }

    /// RFC 8555 §6.2: alg is an asymmetric algorithm, nonce and url are in the protected
    /// header, exactly one of jwk and kid; the signature verifies over `protected.payload`.
    #[test]
    fn requests_are_signed_as_rfc_8555_asks() {
        for curve in [Curve::P256, Curve::P384] {
            let key = AccountKey::generate(curve).unwrap();
            let payload = serde_json::json!({"termsOfServiceAgreed": true});
            for kid in [None, Some("https://ca.test/acct/1")] {
                let body = key
                    .sign("https://ca.test/new-acct", "n0nce", kid, Some(&payload))
                    .unwrap();
                let jws: serde_json::Value = serde_json::from_slice(&body).unwrap();
                let protected: serde_json::Value =
                    serde_json::from_slice(&b64u_decode(jws["protected"].as_str().unwrap()))
                        .unwrap();
                assert_eq!(protected["alg"], curve.alg());
                assert_eq!(protected["nonce"], "n0nce");
                assert_eq!(protected["url"], "https://ca.test/new-acct");
                assert_eq!(protected.get("jwk").is_some(), kid.is_none());
                assert_eq!(protected.get("kid").is_some(), kid.is_some());
                let decoded: serde_json::Value =
                    serde_json::from_slice(&b64u_decode(jws["payload"].as_str().unwrap())).unwrap();
                assert_eq!(decoded, payload);
                // Verify R || S with OpenSSL.
                let raw = b64u_decode(jws["signature"].as_str().unwrap());
                assert_eq!(raw.len(), 2 * curve.size());
                let (r, s) = raw.split_at(curve.size());
                let sig = EcdsaSig::from_private_components(
                    BigNum::from_slice(r).unwrap(),
                    BigNum::from_slice(s).unwrap(),
                )
                .unwrap();
                let input = format!(
                    "{}.{}",
                    jws["protected"].as_str().unwrap(),
                    jws["payload"].as_str().unwrap()
                );
                let digest = hash(curve.digest(), input.as_bytes()).unwrap();
                assert!(sig.verify(&digest, &key.key).unwrap());
            }
        }
    }

    #[test]
    fn post_as_get_has_an_empty_payload() {
        let key = AccountKey::generate(Curve::P256).unwrap();
        let body = key
            .sign("https://ca.test/order/1", "n", Some("k"), None)
            .unwrap();
        let jws: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(jws["payload"], "");
    }

    #[test]
    fn only_p256_and_p384_account_keys() {
        let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
        let pem = PKey::from_rsa(rsa)
            .unwrap()
            .private_key_to_pem_pkcs8()
            .unwrap();
        assert!(AccountKey::from_pem(&pem).is_err());
        assert!(AccountKey::from_pem(b"garbage").is_err());
        let p521 = EcKey::generate(&EcGroup::from_curve_name(Nid::SECP521R1).unwrap()).unwrap();
        let pem = PKey::from_ec_key(p521)
            .unwrap()
            .private_key_to_pem_pkcs8()
            .unwrap();
        assert!(AccountKey::from_pem(&pem).is_err());
    }
}
