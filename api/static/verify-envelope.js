// TraceHub buyer page: the checks `tracehub verify` makes on a signed reading
// (docs/reading-envelope.md §5), in the browser, before verify.js walks its Merkle path:
//   - the device certificate the envelope names (x5t#S256) is read from the ledger's device
//     registry, through a ledger witness (another organisation's peer) if one answers, else
//     through the hub; its SHA-256 must be the x5t#S256;
//   - the chain: the certificate is issued (name and signature) by the device CA recorded on the
//     ledger (GetDeviceCA, same source), which is a CA; both are valid at the reading's time;
//   - revocation: the device CA's CRL (from the hub: it is signed, so it is checked, not
//     trusted) must name the device CA as issuer and verify with its key; the certificate's
//     serial in it, or the ledger's own revocation record of the certificate, revokes the
//     reading: always for keyCompromise or cACompromise, else from the revocation time on;
//   - identity: the certificate names the reading's device (URI SAN urn:tracehub:device:<id>);
//   - the ES256 signature over the signing input, with WebCrypto. JWS carries r || s (64 bytes),
//     which is what WebCrypto's ECDSA verify takes; X.509 and CRL signatures are DER, which the
//     library (@peculiar/x509, api/static/vendor/x509.js, built from web/) converts itself.
// A failure is a Refusal naming its check: "signature", "certificate" or "revoked".
"use strict";

window.TraceHubEnvelopes = (function () {
  const DEVICE_URI = "urn:tracehub:device:";
  const ALWAYS_REVOKED = new Set(["keyCompromise", "cACompromise"]);
  const ECDSA_P256 = { name: "ECDSA", namedCurve: "P-256" };

  class Refusal extends Error {
    constructor(check, key, values) {
      super(key);
      this.check = check;
      this.key = key;
      this.values = values || {};
    }
  }

  function b64urlBytes(text) {
    if (typeof text !== "string" || !/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) {
      return null;
    }
    const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    return Uint8Array.from(atob(b64 + "===".slice((b64.length + 3) % 4)), (c) => c.charCodeAt(0));
  }

  function hex(bytes) {
    return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
  }

  // Serial numbers as the library and the ledger write them: hex, any case, maybe zero-padded.
  function serial(text) {
    return String(text).toLowerCase().replace(/^0+(?=.)/, "");
  }

  function isCa(certificate) {
    const constraints = certificate.getExtension(x509.BasicConstraintsExtension);
    return Boolean(constraints && constraints.ca);
  }

  function deviceIds(certificate) {
    const san = certificate.getExtension(x509.SubjectAlternativeNameExtension);
    if (!san) return [];
    return san.names.items
      .filter((n) => n.type === "url" && n.value.startsWith(DEVICE_URI))
      .map((n) => n.value.slice(DEVICE_URI.length));
  }

  // When a revocation takes effect for a reading at `when`: true if it is revoked then.
  function revokedAt(when, reason, revokedSince) {
    return ALWAYS_REVOKED.has(reason) || when >= revokedSince;
  }

  const CRL_REASONS = {
    1: "keyCompromise",
    2: "cACompromise",
    3: "affiliationChanged",
    4: "superseded",
    5: "cessationOfOperation",
    6: "certificateHold",
    9: "privilegeWithdrawn",
    10: "aACompromise",
  };

  // `witnesses`: base URLs of ledger witnesses, asked in order before the hub. `getJson(url)`
  // resolves to {status, body} or rejects when nothing answers.
  function create(witnesses) {
    const sources = [
      ...witnesses.map((base) => ({
        ca: base + "/device-ca",
        cert: (fp) => base + "/certificates/" + fp,
        unwrap: (body, name) => [body[name], body.msp_id || base],
      })),
      {
        ca: "/ledger/device-ca",
        cert: (fp) => "/ledger/certificates/" + encodeURIComponent(fp),
        unwrap: (body) => [body, null],
      },
    ];

    // The first source that answers (200 with the record, or 404) decides; one that cannot be
    // reached, fails (5xx) or answers something else hands over to the next. Resolves to
    // [record or null, who].
    async function fromLedger(urlOf, name) {
      for (const source of sources) {
        let reply;
        try {
          reply = await fetch(urlOf(source), { headers: { Accept: "application/json" } });
        } catch (error) {
          continue;
        }
        if (reply.status === 404) return [null, source.unwrap({}, name)[1]];
        if (!reply.ok) continue;
        const found = source.unwrap(await reply.json().catch(() => ({})), name);
        // An answer without the record (a witness that serves anchors only) is no answer.
        if (found[0] && typeof found[0].certificate_pem === "string") return found;
      }
      return [undefined, null];
    }

    async function loadCa() {
      const [record, who] = await fromLedger((s) => s.ca, "device_ca");
      const ca = record ? new x509.X509Certificate(record.certificate_pem) : null;
      if (!ca || !isCa(ca)) throw new Error("no device CA");
      return [ca, who];
    }

    // Fetched on first use only: a page without readings asks for no CA or CRL.
    let trusted = null;
    function trust() {
      if (trusted === null) trusted = loadTrust();
      return trusted;
    }

    async function loadTrust() {
      let ca, who;
      try {
        [ca, who] = await loadCa();
      } catch (error) {
        // Also when the X.509 library is missing (api/static/vendor not built: make web-deps).
        return { error: new Refusal("certificate", "reason_ca_unavailable") };
      }
      let crl = null;
      let crlError = null;
      try {
        const reply = await fetch("/pki/crls/device-ca", { headers: { Accept: "application/pkix-crl" } });
        if (!reply.ok) throw new Error("HTTP " + reply.status);
        crl = new x509.X509Crl(await reply.arrayBuffer());
        if (crl.issuer !== ca.subject || !(await crl.verify({ publicKey: ca.publicKey }))) {
          crl = null;
          crlError = new Refusal("revoked", "reason_crl_invalid");
        }
      } catch (error) {
        crlError = new Refusal("revoked", "reason_crl_unavailable");
      }
      const revoked = new Map();
      for (const entry of crl ? crl.entries : []) {
        const invalid = entry.invalidity;
        const since = invalid && invalid < entry.revocationDate ? invalid : entry.revocationDate;
        revoked.set(serial(entry.serialNumber), { since, reason: CRL_REASONS[entry.reason] || "unspecified" });
      }
      return { ca, who, revoked, crlError };
    }

    const certificates = new Map();
    function certificateOf(fingerprint) {
      if (!certificates.has(fingerprint)) certificates.set(fingerprint, loadCertificate(fingerprint));
      return certificates.get(fingerprint);
    }

    // Everything that depends only on the certificate, once per certificate.
    async function loadCertificate(fingerprint) {
      const { ca, error } = await trust();
      if (error) throw error;
      const [record] = await fromLedger((s) => s.cert(fingerprint), "certificate");
      if (!record) throw new Refusal("certificate", "reason_cert_unknown");
      let certificate;
      try {
        certificate = new x509.X509Certificate(record.certificate_pem);
      } catch (error) {
        throw new Refusal("certificate", "reason_cert_unknown");
      }
      const digest = hex(await crypto.subtle.digest("SHA-256", certificate.rawData));
      if (digest !== fingerprint) throw new Refusal("certificate", "reason_cert_unknown");
      const issued =
        certificate.issuer === ca.subject &&
        (await certificate.verify({ publicKey: ca.publicKey, signatureOnly: true }).catch(() => false));
      if (!issued) throw new Refusal("certificate", "reason_cert_not_issued");
      if (isCa(certificate)) throw new Refusal("certificate", "reason_cert_key");
      let key;
      try {
        key = await crypto.subtle.importKey("spki", certificate.publicKey.rawData, ECDSA_P256, false, ["verify"]);
      } catch (error) {
        throw new Refusal("certificate", "reason_cert_key");
      }
      const ledgerRevocation = record.revoked_at
        ? { since: new Date(record.revoked_at), reason: record.revocation_reason || "unspecified" }
        : null;
      return { ca, certificate, key, ids: deviceIds(certificate), ledgerRevocation };
    }

    // The envelope of `deviceId`'s reading: resolves when every check passes, else rejects with
    // a Refusal. `payload` is the parsed payload (verify.js parses it once).
    async function check(envelope, payload, deviceId) {
      const parts = envelope.split(".");
      const header = parts.length === 3 ? b64urlBytes(parts[0]) : null;
      const signature = parts.length === 3 ? b64urlBytes(parts[2]) : null;
      let fields = null;
      try {
        fields = header && JSON.parse(new TextDecoder().decode(header));
      } catch (error) {
        fields = null;
      }
      const x5t = fields && b64urlBytes(fields["x5t#S256"]);
      if (
        !fields ||
        fields.alg !== "ES256" ||
        fields.typ !== "tracehub-reading+jws" ||
        !x5t ||
        x5t.length !== 32 ||
        !signature ||
        signature.length !== 64
      ) {
        throw new Refusal("signature", "reason_malformed");
      }
      const { ca, certificate, key, ids, ledgerRevocation } = await certificateOf(hex(x5t));
      const when = new Date(payload.ts);
      for (const c of [certificate, ca]) {
        if (!(when >= c.notBefore && when <= c.notAfter)) {
          throw new Refusal("certificate", "reason_cert_validity", { when: payload.ts });
        }
      }
      const { revoked, crlError } = await trust();
      if (crlError) throw crlError;
      for (const entry of [revoked.get(serial(certificate.serialNumber)), ledgerRevocation]) {
        if (entry && revokedAt(when, entry.reason, entry.since)) {
          throw new Refusal("revoked", "reason_revoked", {
            reason: entry.reason,
            since: entry.since.toISOString().slice(0, 19) + "Z",
          });
        }
      }
      if (ids.length !== 1 || ids[0] !== payload.device || ids[0] !== deviceId) {
        throw new Refusal("certificate", "reason_cert_identity");
      }
      const signingInput = new TextEncoder().encode(parts[0] + "." + parts[1]);
      const ok = await crypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, key, signature, signingInput);
      if (!ok) throw new Refusal("signature", "reason_bad_signature");
    }

    // Whose ledger the device CA and certificates were read from (an MSP id), or null: the hub's.
    async function source() {
      const { who } = await trust();
      return who || null;
    }

    return { check, source };
  }

  return { create, Refusal };
})();
