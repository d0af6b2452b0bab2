// Browser PKI for devicegate enrollment: the key pair is made with
// WebCrypto and never leaves the browser; only the PKCS#10 CSR is sent.
// The PKCS#12 is packed here too, with the password the user types.
import * as asn1js from "asn1js";
import * as pkijs from "pkijs";
import { Convert } from "pvtsutils";

const EC_KEY = { name: "ECDSA", namedCurve: "P-256" };
const OID_CN = "2.5.4.3";
const OID_KEY_BAG = "1.2.840.113549.1.12.10.1.2";
const OID_CERT_BAG = "1.2.840.113549.1.12.10.1.3";
const OID_FRIENDLY_NAME = "1.2.840.113549.1.9.20";
const OID_LOCAL_KEY_ID = "1.2.840.113549.1.9.21";
const PBKDF2_ITERATIONS = 200000;
// Legacy mode uses what Windows 7 / Server 2008 R2 accept: the OpenSSL
// "-legacy" defaults for keys (pbeWithSHAAnd3-KeyTripleDES-CBC, 2048
// iterations) and a SHA-1 MAC. Certificates are public and stay
// unencrypted there.
const LEGACY_ITERATIONS = 2048;
// The 3DES key encryption (node-forge, see legacy.js) is a module beside
// this bundle, imported only for the compatibility file. Its address is
// taken from this script's own while it runs (document.currentScript);
// where there is no document (the Node round trip) the name is relative.
const LEGACY_MODULE = "pki-legacy.bundle.mjs";
const legacyModuleURL = globalThis.document && document.currentScript
  ? new URL(LEGACY_MODULE, document.currentScript.src).href
  : "./" + LEGACY_MODULE;

function crypto() {
  if (!globalThis.crypto || !globalThis.crypto.subtle) {
    throw new Error("WebCrypto is not available (a secure https context is required)");
  }
  return globalThis.crypto;
}

// generateKeyPair makes an ECDSA P-256 key pair. The private key is
// extractable only so that it can be packed into the password-protected
// PKCS#12 in this browser.
export async function generateKeyPair() {
  return crypto().subtle.generateKey(EC_KEY, true, ["sign", "verify"]);
}

function pem(label, der) {
  const b64 = Convert.ToBase64(der).replace(/(.{64})/g, "$1\n").replace(/\n$/, "");
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

function derOf(pemText) {
  const body = pemText.replace(/-----(BEGIN|END) [A-Z ]+-----/g, "").replace(/\s+/g, "");
  return Convert.FromBase64(body);
}

// buildCSR returns a PEM PKCS#10 request for the key pair, signed with
// ECDSA SHA-256. The CA takes the identity from the logged-in account, not
// from this subject.
export async function buildCSR(keyPair, commonName) {
  const csr = new pkijs.CertificationRequest();
  csr.version = 0;
  // PKCS#10 requires the [0] attributes field even when empty; pkijs only
  // writes it when the property exists, and strict parsers (Go's) refuse
  // a CSR without it.
  csr.attributes = [];
  csr.subject.typesAndValues.push(new pkijs.AttributeTypeAndValue({
    type: OID_CN, value: new asn1js.Utf8String({ value: commonName }),
  }));
  await csr.subjectPublicKeyInfo.importKey(keyPair.publicKey);
  await csr.sign(keyPair.privateKey, "SHA-256");
  return pem("CERTIFICATE REQUEST", csr.toSchema().toBER(false));
}

function bagAttributes(friendlyName, localKeyId) {
  return [
    new pkijs.Attribute({ type: OID_FRIENDLY_NAME, values: [new asn1js.BmpString({ value: friendlyName })] }),
    new pkijs.Attribute({ type: OID_LOCAL_KEY_ID, values: [new asn1js.OctetString({ valueHex: localKeyId })] }),
  ];
}

// legacyShroudedKey encrypts a PKCS#8 key with pbeWithSHAAnd3-KeyTripleDES-CBC.
async function legacyShroudedKey(pkcs8, password) {
  const { encryptKey3DES } = await import(legacyModuleURL);
  const der = encryptKey3DES(new Uint8Array(pkcs8), password, LEGACY_ITERATIONS, (n) => crypto().getRandomValues(new Uint8Array(n)));
  return pkijs.PKCS8ShroudedKeyBag.fromBER(der);
}

// buildPKCS12 packs the private key, the certificate and its chain into a
// PFX protected by password. By default: PBES2 (PBKDF2-HMAC-SHA256,
// AES-256-CBC) for the key and the certificates, and an HMAC-SHA256 MAC.
// legacy: 3DES key encryption and a SHA-1 MAC, for old Windows.
export async function buildPKCS12({ privateKey, certPEM, chainPEMs = [], password, friendlyName, legacy = false }) {
  if (!password) throw new Error("a password is required");
  const subtle = crypto().subtle;
  const pwd = Convert.FromUtf8String(password);
  const pkcs8 = await subtle.exportKey("pkcs8", privateKey);
  const leaf = pkijs.Certificate.fromBER(derOf(certPEM));
  const localKeyId = await subtle.digest("SHA-256", leaf.toSchema().toBER(false));
  const certBags = [new pkijs.SafeBag({
    bagId: OID_CERT_BAG,
    bagValue: new pkijs.CertBag({ parsedValue: leaf }),
    bagAttributes: bagAttributes(friendlyName, localKeyId),
  })];
  for (const c of chainPEMs) {
    certBags.push(new pkijs.SafeBag({ bagId: OID_CERT_BAG, bagValue: new pkijs.CertBag({ parsedValue: pkijs.Certificate.fromBER(derOf(c)) }) }));
  }
  const keyBag = legacy ? await legacyShroudedKey(pkcs8, password) : new pkijs.PKCS8ShroudedKeyBag({ parsedValue: pkijs.PrivateKeyInfo.fromBER(pkcs8) });
  const pbes2 = { password: pwd, contentEncryptionAlgorithm: { name: "AES-CBC", length: 256 }, hmacHashAlgorithm: "SHA-256", iterationCount: PBKDF2_ITERATIONS };
  const pfx = new pkijs.PFX({
    parsedValue: {
      integrityMode: 0,
      authenticatedSafe: new pkijs.AuthenticatedSafe({
        parsedValue: {
          safeContents: [
            {
              privacyMode: 0,
              value: new pkijs.SafeContents({
                safeBags: [new pkijs.SafeBag({ bagId: OID_KEY_BAG, bagValue: keyBag, bagAttributes: bagAttributes(friendlyName, localKeyId) })],
              }),
            },
            { privacyMode: legacy ? 0 : 1, value: new pkijs.SafeContents({ safeBags: certBags }) },
          ],
        },
      }),
    },
  });
  if (legacy) {
    await pfx.parsedValue.authenticatedSafe.makeInternalValues({ safeContents: [{}, {}] });
    await macWithShortSalt(pfx, pwd, "SHA-1", LEGACY_ITERATIONS);
  } else {
    await keyBag.makeInternalValues(pbes2);
    await pfx.parsedValue.authenticatedSafe.makeInternalValues({ safeContents: [{}, pbes2] });
    await macWithShortSalt(pfx, pwd, "SHA-256", PBKDF2_ITERATIONS);
  }
  return new Uint8Array(pfx.toSchema().toBER(false));
}

// macWithShortSalt is PFX.makeInternalValues (password integrity) with an
// 8-byte MAC salt, as OpenSSL and Windows write it: pkijs uses 64 bytes,
// and macOS's keychain is reported to refuse PKCS#12 files whose MAC salt
// is longer than 8 bytes. The MAC iterations stay high: the MAC is also
// what a password guess is checked against.
async function macWithShortSalt(pfx, pwd, hash, iterations) {
  const engine = pkijs.getCrypto(true);
  const salt = new Uint8Array(8);
  globalThis.crypto.getRandomValues(salt);
  const data = pfx.parsedValue.authenticatedSafe.toSchema().toBER(false);
  pfx.authSafe = new pkijs.ContentInfo({ contentType: pkijs.ContentInfo.DATA, content: new asn1js.OctetString({ valueHex: data }) });
  const mac = await engine.stampDataWithPassword({ password: pwd, hashAlgorithm: hash, salt: salt.buffer, iterationCount: iterations, contentToStamp: data });
  pfx.macData = new pkijs.MacData({
    mac: new pkijs.DigestInfo({
      digestAlgorithm: new pkijs.AlgorithmIdentifier({ algorithmId: engine.getOIDByAlgorithm({ name: hash }, true, "hmacHashAlgorithm") }),
      digest: new asn1js.OctetString({ valueHex: mac }),
    }),
    macSalt: new asn1js.OctetString({ valueHex: salt.buffer }),
    iterations,
  });
}
