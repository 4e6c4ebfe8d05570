/*
 * Live reading events: a dependency-free client for /ws/reading/ (protocol: docs/live-updates.md).
 *
 * Include it on a page (<script src="{% static 'js/reading-live.js' %}" defer></script>) and
 * listen on document.body:
 *   "reading-event"   detail = {seq, kind, at, task, ...payload}, each event once, in order
 *   "reading-resync"  detail = {kind: "resync", seq}: too much was missed; default action reloads
 *                     the page (call event.preventDefault() to handle it yourself)
 *   "reading-status"  detail = {state}: connecting | live | offline | signed-out
 * The state is also written to an element with [data-live-status] (text + data-state attribute).
 *
 * The browser's session cookie authenticates. The last seq is kept in sessionStorage (per tab)
 * and sent as ?since= on every reconnect, so events missed while offline are replayed by the
 * server. A page may render data-live-since="<seq>" (on any element; data-reading-since also works) with the
 * newest seq its own data already reflects; the client resumes from the larger of the two.
 * Opt out of auto-start with <body data-live-manual> and call window.CaravanLive.start().
 */
(function () {
  "use strict";

  var STORAGE_KEY = "caravan.reading.seq";
  var MAX_BACKOFF_MS = 30000;
  var BASE_BACKOFF_MS = 500;
  // 4401: not signed in (or a bad token); 4400: a malformed request. Retrying cannot help.
  var FATAL_CODES = { 4400: "signed-out", 4401: "signed-out" };

  var socket = null;
  var attempt = 0;
  var timer = null;
  var stopped = false;

  function readSeq(value) {
    var n = parseInt(value, 10);
    return isFinite(n) && n >= 0 ? n : 0;
  }

  function lastSeq() {
    var stored = 0;
    try {
      stored = readSeq(window.sessionStorage.getItem(STORAGE_KEY));
    } catch (e) {
      stored = 0; // storage disabled: resume from the page's own seq only
    }
    var rendered = 0;
    // data-reading-since is accepted as an alias (the worklist template uses it).
    var markers = document.querySelectorAll("[data-live-since], [data-reading-since]");
    for (var i = 0; i < markers.length; i++) {
      var value = markers[i].getAttribute("data-live-since") || markers[i].getAttribute("data-reading-since");
      rendered = Math.max(rendered, readSeq(value));
    }
    return Math.max(stored, rendered);
  }

  function saveSeq(seq) {
    try {
      if (seq > readSeq(window.sessionStorage.getItem(STORAGE_KEY))) {
        window.sessionStorage.setItem(STORAGE_KEY, String(seq));
      }
    } catch (e) {
      /* storage disabled: a reconnect then resumes from the page's seq */
    }
  }

  var LABELS = { connecting: "Connecting…", live: "Live", offline: "Offline, reconnecting…", "signed-out": "Signed out" };

  function setStatus(state) {
    var el = document.querySelector("[data-live-status]");
    if (el) {
      el.setAttribute("data-state", state);
      el.textContent = LABELS[state] || state;
    }
    document.body.dispatchEvent(new CustomEvent("reading-status", { detail: { state: state } }));
  }

  function url() {
    var scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    var since = lastSeq();
    return scheme + "//" + window.location.host + "/ws/reading/" + (since ? "?since=" + since : "");
  }

  function onMessage(message) {
    var data;
    try {
      data = JSON.parse(message.data);
    } catch (e) {
      return;
    }
    if (data.kind === "resync") {
      saveSeq(readSeq(data.seq)); // so the reloaded page does not ask for the same gap again
      var resync = new CustomEvent("reading-resync", { detail: data, cancelable: true });
      if (document.body.dispatchEvent(resync)) {
        window.location.reload();
      }
      return;
    }
    if (typeof data.seq === "number") {
      saveSeq(data.seq);
    }
    document.body.dispatchEvent(new CustomEvent("reading-event", { detail: data }));
  }

  function scheduleReconnect() {
    // Exponential backoff with jitter, capped at 30 s; reset once a connection is accepted.
    var delay = Math.min(MAX_BACKOFF_MS, BASE_BACKOFF_MS * Math.pow(2, attempt));
    attempt += 1;
    delay = delay / 2 + Math.random() * (delay / 2);
    timer = window.setTimeout(connect, delay);
  }

  function connect() {
    timer = null;
    if (stopped) {
      return;
    }
    setStatus("connecting");
    try {
      socket = new WebSocket(url());
    } catch (e) {
      setStatus("offline");
      scheduleReconnect();
      return;
    }
    socket.onopen = function () {
      attempt = 0;
      setStatus("live");
    };
    socket.onmessage = onMessage;
    socket.onclose = function (event) {
      socket = null;
      if (stopped) {
        return;
      }
      if (FATAL_CODES[event.code]) {
        setStatus(FATAL_CODES[event.code]);
        return;
      }
      setStatus("offline");
      scheduleReconnect();
    };
  }

  function start() {
    stopped = false;
    if (!socket && !timer) {
      connect();
    }
  }

  function stop() {
    stopped = true;
    if (timer) {
      window.clearTimeout(timer);
      timer = null;
    }
    if (socket) {
      socket.close(1000);
      socket = null;
    }
  }

  window.CaravanLive = { start: start, stop: stop, lastSeq: lastSeq };

  // Reconnect at once when the network or the tab comes back, instead of waiting out the backoff.
  window.addEventListener("online", function () {
    if (!stopped && !socket) {
      if (timer) {
        window.clearTimeout(timer);
      }
      attempt = 0;
      connect();
    }
  });

  function boot() {
    if (!document.body.hasAttribute("data-live-manual")) {
      start();
    }
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", boot);
  } else {
    boot();
  }
})();
