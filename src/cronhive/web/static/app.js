// cronhive web UI: the live log tail of a run page (server-sent events). No dependencies.
"use strict";

// ANSI colour codes (SGR) become styled spans; every other escape sequence is dropped,
// so a coloured log reads as it does in a terminal, never as raw "\x1b[31m".
const Ansi = (function () {
  const SEQUENCE = /\x1b\[([0-9;:?]*)([ -\/]*)([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[ -\/]*[0-~]/g;
  const PARTIAL = /\x1b(?:\[[0-9;:?]*[ -\/]*|\][^\x07\x1b]*\x1b?|[ -\/]*)?$/;
  const PALETTE = [0, 95, 135, 175, 215, 255];

  function xterm256(n) {
    if (n < 16) return null; // the 16 base colours are classes
    if (n >= 232) { const v = 8 + (n - 232) * 10; return "rgb(" + v + "," + v + "," + v + ")"; }
    n -= 16;
    return "rgb(" + PALETTE[Math.floor(n / 36)] + "," + PALETTE[Math.floor(n / 6) % 6] + "," + PALETTE[n % 6] + ")";
  }

  function fresh() { return { fg: null, bg: null, fgRgb: null, bgRgb: null, bold: false, dim: false, italic: false, underline: false }; }

  function colour(state, which, codes, i) {
    // 38;5;n or 38;2;r;g;b (48 for the background); returns how many codes were used.
    if (codes[i + 1] === 5 && codes.length > i + 2) {
      const n = codes[i + 2];
      if (n < 16) { state[which] = n; state[which + "Rgb"] = null; }
      else { state[which] = null; state[which + "Rgb"] = xterm256(n); }
      return 2;
    }
    if (codes[i + 1] === 2 && codes.length > i + 4) {
      state[which] = null;
      state[which + "Rgb"] = "rgb(" + codes[i + 2] + "," + codes[i + 3] + "," + codes[i + 4] + ")";
      return 4;
    }
    return 0;
  }

  function apply(state, params) {
    const codes = params === "" ? [0] : params.split(/[;:]/).map(function (p) { return p === "" ? 0 : parseInt(p, 10); });
    for (let i = 0; i < codes.length; i++) {
      const c = codes[i];
      if (c === 0) Object.assign(state, fresh());
      else if (c === 1) state.bold = true;
      else if (c === 2) state.dim = true;
      else if (c === 3) state.italic = true;
      else if (c === 4) state.underline = true;
      else if (c === 22) { state.bold = false; state.dim = false; }
      else if (c === 23) state.italic = false;
      else if (c === 24) state.underline = false;
      else if (c >= 30 && c <= 37) { state.fg = c - 30; state.fgRgb = null; }
      else if (c >= 90 && c <= 97) { state.fg = c - 90 + 8; state.fgRgb = null; }
      else if (c === 39) { state.fg = null; state.fgRgb = null; }
      else if (c >= 40 && c <= 47) { state.bg = c - 40; state.bgRgb = null; }
      else if (c >= 100 && c <= 107) { state.bg = c - 100 + 8; state.bgRgb = null; }
      else if (c === 49) { state.bg = null; state.bgRgb = null; }
      else if (c === 38) i += colour(state, "fg", codes, i);
      else if (c === 48) i += colour(state, "bg", codes, i);
    }
  }

  function span(base, state, text) {
    const el = document.createElement("span");
    const classes = [base];
    if (state.fg !== null) classes.push("ansi-fg-" + state.fg);
    if (state.bg !== null) classes.push("ansi-bg-" + state.bg);
    if (state.bold) classes.push("ansi-bold");
    if (state.dim) classes.push("ansi-dim");
    if (state.italic) classes.push("ansi-italic");
    if (state.underline) classes.push("ansi-underline");
    el.className = classes.join(" ");
    if (state.fgRgb) el.style.color = state.fgRgb; // CSSOM: allowed by our CSP
    if (state.bgRgb) el.style.backgroundColor = state.bgRgb;
    el.textContent = text;
    return el;
  }

  // One renderer per stream: colour state and a sequence split across chunks carry over.
  function renderer(base) {
    const state = fresh();
    let pending = "";
    return function (text, into) {
      text = pending + text;
      const cut = text.match(PARTIAL);
      pending = cut ? cut[0] : "";
      if (cut) text = text.slice(0, text.length - pending.length);
      let last = 0;
      SEQUENCE.lastIndex = 0;
      let m;
      while ((m = SEQUENCE.exec(text)) !== null) {
        if (m.index > last) into.appendChild(span(base, state, text.slice(last, m.index)));
        if (m[3] === "m" && m[2] === "" && m[1].indexOf("?") < 0) apply(state, m[1]);
        last = SEQUENCE.lastIndex;
      }
      if (last < text.length) into.appendChild(span(base, state, text.slice(last)));
    };
  }

  return { renderer: renderer };
})();

(function () {
  const log = document.getElementById("log");
  if (!log) return;
  const status = document.getElementById("tail-status");
  const stateBox = document.getElementById("run-state");
  let source = null;

  function show(state) {
    if (!stateBox) return;
    stateBox.innerHTML = "";
    const badge = document.createElement("span");
    badge.className = "state " + state;
    badge.textContent = state;
    stateBox.appendChild(badge);
  }

  function follow(stream) {
    if (source) source.close();
    log.textContent = "";
    const renderers = { stdout: Ansi.renderer("stdout"), stderr: Ansi.renderer("stderr") };
    status.textContent = "following…";
    source = new EventSource(log.dataset.tail + "?stream=" + encodeURIComponent(stream));
    source.addEventListener("chunk", function (ev) {
      const chunk = JSON.parse(ev.data);
      // Output means it started: a page rendered while the run was queued says so.
      if (stateBox && stateBox.textContent.trim() === "queued") show("running");
      const stick = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
      (renderers[chunk.stream] || renderers.stdout)(chunk.text, log);
      if (stick) log.scrollTop = log.scrollHeight;
    });
    source.addEventListener("end", function (ev) {
      const end = JSON.parse(ev.data);
      source.close();
      status.textContent = "ended";
      show(end.state);
      const stop = document.querySelector("form[action$='/stop']");
      if (stop) stop.remove();
    });
    source.onerror = function () {
      status.textContent = "reconnecting…";
    };
  }

  document.querySelectorAll("input[name=stream]").forEach(function (radio) {
    radio.addEventListener("change", function () {
      if (radio.checked) follow(radio.value);
    });
  });
  follow("both");
})();
