//! Certificates made at test time with rcgen (ECDSA P-256), as envtest's TinyCA does: a CA
//! that signs the kube-apiserver's serving certificate, a client CA (`--client-ca-file`) that
//! signs client certificates whose CN is the user and whose O entries are the groups, and the
//! service-account token signing key pair.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};

/// A certificate and its private key, PEM-encoded.
pub struct Pem {
    pub cert: String,
    pub key: String,
}

/// A certificate authority.
pub struct Authority {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Authority {
    pub fn new(common_name: &str) -> Authority {
        let mut params = CertificateParams::default();
        params.distinguished_name = name(common_name, None);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap_or_else(|e| panic!("CA key: {e}"));
        let issuer = CertifiedIssuer::self_signed(params, key)
            .unwrap_or_else(|e| panic!("CA certificate {common_name}: {e}"));
        Authority { issuer }
    }

    /// The CA certificate (what clients trust, or what the API server trusts for clients).
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// A serving certificate for `names` (IP addresses become IP SANs, the rest DNS SANs).
    pub fn serving(&self, names: &[&str]) -> Pem {
        let sans: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params =
            CertificateParams::new(sans).unwrap_or_else(|e| panic!("serving SANs {names:?}: {e}"));
        params.distinguished_name = name("kube-apiserver", None);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        self.sign(params)
    }

    /// A client certificate for `user` in `group` (how kube-apiserver reads a client
    /// certificate: CN is the user name, O the group; rcgen keeps one value per attribute).
    pub fn client(&self, user: &str, group: &str) -> Pem {
        let mut params = CertificateParams::default();
        params.distinguished_name = name(user, Some(group));
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        self.sign(params)
    }

    fn sign(&self, params: CertificateParams) -> Pem {
        let key = KeyPair::generate().unwrap_or_else(|e| panic!("key: {e}"));
        let cert = params
            .signed_by(&key, &self.issuer)
            .unwrap_or_else(|e| panic!("sign certificate: {e}"));
        Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

fn name(common_name: &str, organization: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    if let Some(organization) = organization {
        dn.push(DnType::OrganizationName, organization);
    }
    dn.push(DnType::CommonName, common_name);
    dn
}

/// The service-account token signing key: the private key (PKCS#8 PEM) for
/// `--service-account-signing-key-file`, the public key (PKIX PEM) for
/// `--service-account-key-file`.
pub struct SigningKey {
    pub private_pem: String,
    pub public_pem: String,
}

pub fn service_account_key() -> SigningKey {
    let key = KeyPair::generate().unwrap_or_else(|e| panic!("service account key: {e}"));
    SigningKey {
        private_pem: key.serialize_pem(),
        public_pem: key.public_key_pem(),
    }
}
