// cronhive web UI: the live log tail of a run page (server-sent events). No dependencies.
"use strict";

(function () {
  const log = document.getElementById("log");
  if (!log) return;
  const status = document.getElementById("tail-status");
  const stateBox = document.getElementById("run-state");
  let source = null;

  function follow(stream) {
    if (source) source.close();
    log.textContent = "";
    status.textContent = "following…";
    source = new EventSource(log.dataset.tail + "?stream=" + encodeURIComponent(stream));
    source.addEventListener("chunk", function (ev) {
      const chunk = JSON.parse(ev.data);
      const stick = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
      const span = document.createElement("span");
      span.className = chunk.stream;
      span.textContent = chunk.text;
      log.appendChild(span);
      if (stick) log.scrollTop = log.scrollHeight;
    });
    source.addEventListener("end", function (ev) {
      const end = JSON.parse(ev.data);
      source.close();
      status.textContent = "ended";
      if (stateBox) {
        stateBox.innerHTML = "";
        const badge = document.createElement("span");
        badge.className = "state " + end.state;
        badge.textContent = end.state;
        stateBox.appendChild(badge);
        const stop = document.querySelector("form[action$='/stop']");
        if (stop) stop.remove();
      }
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
