// The compatibility PKCS#12 key encryption for old Windows
// (pbeWithSHAAnd3-KeyTripleDES-CBC with the PKCS#12 KDF), which WebCrypto
// and pkijs do not have. Built as a module of its own
// (../static/pki-legacy.bundle.mjs) that pki.js imports only when the user
// asks for the compatibility file: node-forge is most of its size, and the
// default enrollment never downloads it.
import forge from "node-forge/lib/forge.js";
import "node-forge/lib/pbe.js";

const binary = (bytes) => {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return s;
};

// encryptKey3DES returns the DER EncryptedPrivateKeyInfo of a PKCS#8 key
// (Uint8Array). The salt comes from randomBytes (WebCrypto), not from
// forge's own generator.
export function encryptKey3DES(pkcs8, password, iterations, randomBytes) {
  forge.random.getBytesSync = (n) => binary(randomBytes(n));
  const info = forge.asn1.fromDer(forge.util.createBuffer(binary(pkcs8)));
  const enc = forge.pki.encryptPrivateKeyInfo(info, password, { algorithm: "3des", count: iterations, saltSize: 8 });
  return Uint8Array.from(forge.asn1.toDer(enc).getBytes(), (c) => c.charCodeAt(0));
}
