//! Certificates made with rcgen for the TLS tests: CAs, server certificates for
//! 127.0.0.1/localhost, client certificates with a Common Name, and the files a member
//! reads them from.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason,
    RevokedCertParams, SerialNumber,
};

/// A certificate authority that issues leaves.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, PEM-encoded, and the certificate's DER for comparisons.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: Vec<u8>,
}

/// Paths of a written certificate, key and the CA that issued it.
#[derive(Clone)]
pub struct Files {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

impl Files {
    pub fn cert(&self) -> &str {
        self.cert.to_str().unwrap()
    }

    pub fn key(&self) -> &str {
        self.key.to_str().unwrap()
    }

    pub fn ca(&self) -> &str {
        self.ca.to_str().unwrap()
    }
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Ca { issuer }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate for a server on 127.0.0.1/localhost that may also dial as a client
    /// (what a member's peer certificate is).
    pub fn server(&self, cn: &str) -> Leaf {
        self.leaf(
            cn,
            &["127.0.0.1", "localhost"],
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        )
    }

    /// A client certificate naming the user `cn`.
    pub fn client(&self, cn: &str) -> Leaf {
        self.leaf(cn, &[], vec![ExtendedKeyUsagePurpose::ClientAuth])
    }

    /// A CRL from this CA revoking the certificate with serial number `serial`.
    pub fn crl_revoking(&self, serial: u64) -> String {
        let now = time::OffsetDateTime::now_utc();
        let params = CertificateRevocationListParams {
            this_update: now - Duration::from_secs(60),
            next_update: now + Duration::from_secs(86_400),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: vec![RevokedCertParams {
                serial_number: SerialNumber::from(serial),
                revocation_time: now - Duration::from_secs(60),
                reason_code: Some(RevocationReason::KeyCompromise),
                invalidity_date: None,
            }],
            key_identifier_method: KeyIdMethod::Sha256,
        };
        params.signed_by(&self.issuer).unwrap().pem().unwrap()
    }

    fn leaf(&self, cn: &str, sans: &[&str], usages: Vec<ExtendedKeyUsagePurpose>) -> Leaf {
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(sans).unwrap();
        // Distinct serials, so that a CRL can name one.
        params.serial_number = Some(SerialNumber::from(next_serial()));
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = usages;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }

    /// Writes `leaf` and this CA under `dir` as `<name>.pem`, `<name>-key.pem` and
    /// `<name>-ca.pem`.
    pub fn write(&self, dir: &Path, name: &str, leaf: &Leaf) -> Files {
        let files = Files {
            cert: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}-key.pem")),
            ca: dir.join(format!("{name}-ca.pem")),
        };
        std::fs::write(&files.cert, &leaf.cert_pem).unwrap();
        std::fs::write(&files.key, &leaf.key_pem).unwrap();
        std::fs::write(&files.ca, self.pem()).unwrap();
        files
    }
}

/// A serial number no other certificate of this test binary has.
fn next_serial() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1000);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The serial number of `leaf`'s certificate.
pub fn serial(leaf: &Leaf) -> u64 {
    use x509_parser::prelude::FromDer;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&leaf.der).unwrap();
    u64::try_from(cert.serial.clone()).unwrap()
}

/// Replaces `path`'s contents in one step (write aside, rename), as a renewal tool does,
/// so the server never reads half a file.
pub fn replace(path: &Path, contents: &str) {
    let aside = path.with_extension("new");
    std::fs::write(&aside, contents).unwrap();
    std::fs::rename(&aside, path).unwrap();
}
