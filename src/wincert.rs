//! Windows only: the check of a server's certificate against the `--ca` roots, made by wssh with
//! the system's CryptoAPI right after schannel's handshake (which then runs with its own check
//! off), before any byte of the tunnel is sent. schannel's own check also asks whether the
//! certificate is revoked; a private CA's certificates name no revocation source, and Wine (and
//! maybe some Windows set-ups) then refuse them (CERT_E_REVOCATION_FAILURE). Here: the chain must
//! end in one of the given roots, byte for byte, and Windows' SSL policy checks the rest
//! (signatures, dates, usage, the host name) with revocation left out. Public roots (no `--ca`)
//! keep schannel's own check. It does not read files or sockets.

use std::ptr::{null, null_mut};
use windows_sys::Win32::Security::Cryptography::*;

/// `SECURITY_FLAG_IGNORE_REVOCATION` (wininet.h), for `HTTPSPolicyCallbackData::fdwChecks`.
const IGNORE_REVOCATION: u32 = 0x80;

/// Frees what CryptoAPI gave, however `verify` ends.
struct Held {
    store: HCERTSTORE,
    leaf: *const CERT_CONTEXT,
    chain: *const CERT_CHAIN_CONTEXT,
}

impl Drop for Held {
    fn drop(&mut self) {
        // SAFETY: each handle is null or was returned by CryptoAPI and is freed once, here.
        unsafe {
            if !self.chain.is_null() {
                CertFreeCertificateChain(self.chain);
            }
            if !self.leaf.is_null() {
                CertFreeCertificateContext(self.leaf);
            }
            if !self.store.is_null() {
                CertCloseStore(self.store, 0);
            }
        }
    }
}

/// Does the certificate `leaf` (DER) chain to one of `roots` (DER) and hold for `host`?
/// `Err` says why not, with Windows' error number (which `error::words` puts in words).
pub fn verify(leaf: &[u8], roots: &[Vec<u8>], host: &str) -> Result<(), String> {
    let os = || std::io::Error::last_os_error().to_string();
    let mut h = Held {
        store: null_mut(),
        leaf: null(),
        chain: null(),
    };
    // SAFETY: CryptoAPI calls on buffers that outlive them; results checked before use; the
    // chain's pointers are read only while `h` holds the chain.
    unsafe {
        h.store = CertOpenStore(CERT_STORE_PROV_MEMORY, 0, 0, 0, null());
        if h.store.is_null() {
            return Err(os());
        }
        for der in roots {
            let ok = CertAddEncodedCertificateToStore(
                h.store,
                X509_ASN_ENCODING,
                der.as_ptr(),
                der.len() as u32,
                CERT_STORE_ADD_ALWAYS,
                null_mut(),
            );
            if ok == 0 {
                return Err(os());
            }
        }
        h.leaf = CertCreateCertificateContext(X509_ASN_ENCODING, leaf.as_ptr(), leaf.len() as u32);
        if h.leaf.is_null() {
            return Err(os());
        }
        let mut para: CERT_CHAIN_PARA = std::mem::zeroed();
        para.cbSize = std::mem::size_of::<CERT_CHAIN_PARA>() as u32;
        let mut chain = null_mut();
        let ok = CertGetCertificateChain(
            null_mut(),
            h.leaf,
            null(),
            h.store,
            &para,
            0, // no revocation check
            null(),
            &mut chain,
        );
        if ok == 0 {
            return Err(os());
        }
        h.chain = chain;
        if !ends_in(&*chain, roots) {
            let why = "its chain does not end in a CA given with --ca (give the CA that signed it)";
            return Err(why.into());
        }
        let mut name: Vec<u16> = host.encode_utf16().chain([0]).collect();
        let mut ssl: HTTPSPolicyCallbackData = std::mem::zeroed();
        ssl.Anonymous.cbSize = std::mem::size_of::<HTTPSPolicyCallbackData>() as u32;
        ssl.dwAuthType = AUTHTYPE_SERVER;
        ssl.fdwChecks = IGNORE_REVOCATION;
        ssl.pwszServerName = name.as_mut_ptr();
        let policy = CERT_CHAIN_POLICY_PARA {
            cbSize: std::mem::size_of::<CERT_CHAIN_POLICY_PARA>() as u32,
            // The root is not in Windows' store: it is ours, checked above.
            dwFlags: CERT_CHAIN_POLICY_ALLOW_UNKNOWN_CA_FLAG
                | CERT_CHAIN_POLICY_IGNORE_ALL_REV_UNKNOWN_FLAGS,
            pvExtraPolicyPara: (&mut ssl as *mut HTTPSPolicyCallbackData).cast(),
        };
        let mut status: CERT_CHAIN_POLICY_STATUS = std::mem::zeroed();
        status.cbSize = std::mem::size_of::<CERT_CHAIN_POLICY_STATUS>() as u32;
        if CertVerifyCertificateChainPolicy(CERT_CHAIN_POLICY_SSL, chain, &policy, &mut status) == 0
        {
            return Err(os());
        }
        match status.dwError {
            0 => Ok(()),
            e => Err(std::io::Error::from_raw_os_error(e as i32).to_string()),
        }
    }
}

/// Is the last certificate of the chain's last simple chain one of `roots`?
///
/// # Safety
/// `chain` must come from `CertGetCertificateChain` and not be freed yet.
unsafe fn ends_in(chain: &CERT_CHAIN_CONTEXT, roots: &[Vec<u8>]) -> bool {
    if chain.cChain == 0 {
        return false;
    }
    let simple = &**chain.rgpChain.add(chain.cChain as usize - 1);
    if simple.cElement == 0 {
        return false;
    }
    let element = &**simple.rgpElement.add(simple.cElement as usize - 1);
    let cert = &*element.pCertContext;
    let der = std::slice::from_raw_parts(cert.pbCertEncoded, cert.cbCertEncoded as usize);
    roots.iter().any(|r| r.as_slice() == der)
}
