// Staff enrollment page: environment check, key + CSR in the browser,
// enrollment over the session (CSRF header), PKCS#12 download, and the
// "check installation" call to the proxy over mTLS. No inline script: the
// CSP allows scripts from /static only.
(function () {
  "use strict";
  var meta = function (n) { var m = document.querySelector('meta[name="' + n + '"]'); return m ? m.content : ""; };
  var $ = function (id) { return document.getElementById(id); };
  var MAX_SKEW_MS = 5 * 60 * 1000;

  function mark(id, ok) {
    var li = $(id);
    li.className = ok ? "ok" : "bad";
    if (!ok) {
      var hint = document.createElement("span");
      hint.className = "fix";
      hint.textContent = " — " + li.getAttribute("data-fix");
      li.appendChild(hint);
    }
    return ok;
  }

  function checkEnvironment() {
    var serverNow = parseInt(meta("dg-now"), 10);
    var results = [
      mark("env-secure", window.isSecureContext === true),
      mark("env-crypto", !!(window.crypto && window.crypto.subtle && window.DevicegatePKI)),
      mark("env-cookies", navigator.cookieEnabled === true),
      mark("env-clock", !isNaN(serverNow) && Math.abs(Date.now() - serverNow) < MAX_SKEW_MS),
    ];
    var ok = results.every(Boolean);
    var out = $("env-result");
    out.textContent = out.getAttribute(ok ? "data-ok" : "data-bad");
    out.className = ok ? "notice" : "error";
    return ok;
  }

  function defaultLabel() {
    var ua = navigator.userAgent, os = "Computer";
    if (/Windows/.test(ua)) os = "Windows"; else if (/Mac OS X/.test(ua)) os = "Mac"; else if (/Linux/.test(ua)) os = "Linux";
    var browser = /Edg\//.test(ua) ? "Edge" : /Firefox\//.test(ua) ? "Firefox" : /Chrome\//.test(ua) ? "Chrome" : /Safari\//.test(ua) ? "Safari" : "Browser";
    return os + " " + browser;
  }

  function say(text, isError) {
    var s = $("enroll-status");
    s.textContent = text;
    s.className = isError ? "error" : "";
  }

  // postEnroll sends the identical request again after a network error, a
  // cut answer or a 5xx: if the CA recorded the device but the answer was
  // lost, the same CSR gets the same certificate again. Three tries within
  // about four seconds; a refusal (4xx) is not retried.
  async function postEnroll(payload) {
    var delays = [1000, 3000];
    for (var i = 0; ; i++) {
      try {
        var resp = await fetch(meta("dg-enroll-api") || "/staff/api/enroll", {
          method: "POST",
          credentials: "same-origin",
          headers: { "Content-Type": "application/json", "X-CSRF-Token": meta("dg-csrf") },
          body: payload,
        });
        if (resp.status < 500 || i >= delays.length) return { resp: resp, body: await resp.json() };
      } catch (err) {
        if (i >= delays.length) throw err;
      }
      await new Promise(function (done) { setTimeout(done, delays[i]); });
    }
  }

  async function enroll(ev) {
    ev.preventDefault();
    var status = $("enroll-status");
    var pw = $("p12-password").value, pw2 = $("p12-password2").value;
    if (pw.length < 8) { say(status.getAttribute("data-short"), true); return; }
    if (pw !== pw2) { say(status.getAttribute("data-differs"), true); return; }
    $("start").disabled = true;
    say(status.getAttribute("data-working"), false);
    try {
      var pki = window.DevicegatePKI;
      var keys = await pki.generateKeyPair();
      var csr = await pki.buildCSR(keys, meta("dg-sub"));
      // A renewal names its device in the URL; its body is the CSR alone.
      var payload = meta("dg-renew") ? { csr: csr } : { csr: csr, label: $("label").value };
      var answer = await postEnroll(JSON.stringify(payload));
      var resp = answer.resp, body = answer.body;
      if (!resp.ok) {
        var e = body.error || {};
        say(status.getAttribute("data-lang") === "zh" ? (e.message_zh || e.message) : e.message, true);
        $("start").disabled = false;
        return;
      }
      var p12 = await pki.buildPKCS12({
        privateKey: keys.privateKey, certPEM: body.certificate, chainPEMs: body.chain,
        password: pw, friendlyName: meta("dg-sub") + " (" + $("label").value + ")", legacy: $("compat").checked,
      });
      var url = URL.createObjectURL(new Blob([p12], { type: "application/x-pkcs12" }));
      var link = $("download");
      link.href = url;
      // One file name per certificate, so a second computer's download
      // does not replace the first.
      link.download = "devicegate-" + String(body.serial).slice(0, 12) + ".p12";
      $("installed-count").textContent = String(body.installed);
      say("", false);
      $("enroll-form").hidden = true;
      $("result").hidden = false;
      link.click();
    } catch (err) {
      say(status.getAttribute("data-internal"), true);
      $("start").disabled = false;
    }
  }

  async function checkInstallation() {
    var out = $("check-result");
    try {
      var resp = await fetch(meta("dg-proxy").replace(/\/$/, "") + "/.well-known/devicegate/whoami",
        { credentials: "include", mode: "cors", cache: "no-store" });
      var body = await resp.json();
      if (resp.ok && body.certificate && body.status === "ok") {
        out.textContent = out.getAttribute("data-ok") + " " + body.subaccount + " — " + out.getAttribute("data-installed") +
          " (" + body.installed + "/" + body.limit + ")";
        out.className = "notice";
        return;
      }
    } catch (err) { /* no certificate presented, or the proxy is unreachable */ }
    out.textContent = out.getAttribute("data-fail");
    out.className = "error";
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (checkEnvironment()) {
      $("label").value = meta("dg-label") || defaultLabel();
      $("enroll-form").hidden = false;
      $("enroll-form").addEventListener("submit", enroll);
    }
    if ($("check-install")) $("check-install").addEventListener("click", checkInstallation);
  });
})();
