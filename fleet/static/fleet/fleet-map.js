/*
 * The dispatcher's live fleet map (templates/fleet/map.html; protocol: docs/fleet-map.md).
 *
 * Draws the snapshot the page embeds (#fleet-map-snapshot): the region outline (a bundled
 * GeoJSON, so it works with no tiles and no network), depots, hospitals and units coloured by
 * status. Tiles are drawn only when the MAP_TILE_URL setting gives a URL.
 *
 * Live: /ws/fleet/map/ sends {"kind": "units", "units": [...]}; markers and table rows move
 * without a reload. On a dropped link it reconnects with backoff and then fetches the snapshot
 * again (updates sent while offline are not replayed). 4401/4403 closes are final.
 */
(function () {
  "use strict";

  var FATAL = { 4401: "signed-out", 4403: "forbidden" };
  var LABELS = { connecting: "Connecting…", live: "Live", offline: "Offline, reconnecting…",
                 "signed-out": "Signed out", forbidden: "Not allowed" };
  var REFRESH_MS = 60000;
  var HUBEI = [[29.0, 108.3], [33.3, 116.2]];

  var snapshot = JSON.parse(document.getElementById("fleet-map-snapshot").textContent);
  var config = JSON.parse(document.getElementById("fleet-map-config").textContent);
  var container = document.getElementById("fleet-map");
  var details = document.getElementById("unit-details");
  var units = {};   // id -> unit row (merged with live updates)
  var markers = {}; // id -> L.circleMarker
  var selected = null;

  var map = L.map(container, { zoomControl: true, attributionControl: !!config.tile_url, preferCanvas: false });
  map.fitBounds(HUBEI);
  if (config.tile_url) {
    L.tileLayer(config.tile_url, { attribution: config.tile_attribution || "", maxZoom: 18 }).addTo(map);
  }
  map.createPane("places").style.zIndex = 610;
  map.createPane("units").style.zIndex = 650;

  function ageText(iso) {
    if (!iso) {
      return "never (at depot)";
    }
    var seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    if (seconds < 90) {
      return seconds + " s ago";
    }
    if (seconds < 5400) {
      return Math.round(seconds / 60) + " min ago";
    }
    if (seconds < 172800) {
      return Math.round(seconds / 3600) + " h ago";
    }
    return Math.round(seconds / 86400) + " days ago";
  }

  function element(tag, text, className) {
    var el = document.createElement(tag);
    if (text !== undefined && text !== null) {
      el.textContent = text;
    }
    if (className) {
      el.className = className;
    }
    return el;
  }

  function drawOutline() {
    window.caravanOutline(map, config.outline_url, container, { fit: true });
  }

  function drawPlaces(list, kind) {
    var style = kind === "hospital"
      ? { radius: 5, color: "#c62828", weight: 2, fillColor: "#ffffff", fillOpacity: 1 }
      : { radius: 6, color: "#263238", weight: 1, fillColor: "#37474f", fillOpacity: 0.9 };
    list.forEach(function (place) {
      var options = Object.assign({ pane: "places", className: kind + "-marker" }, style);
      L.circleMarker([place.latitude, place.longitude], options)
        .bindTooltip((kind === "hospital" ? "Hospital: " : "Depot: ") + place.name)
        .addTo(map);
    });
  }

  function renderDetails(unit) {
    details.textContent = "";
    details.setAttribute("data-unit", unit.id);
    details.appendChild(element("h3", unit.name));
    var dl = element("dl");
    [["Modality", unit.modality_label], ["Status", unit.status_label],
     ["Last seen", ageText(unit.last_seen)],
     ["Position", unit.latitude.toFixed(4) + ", " + unit.longitude.toFixed(4) + (unit.source === "depot" ? " (depot)" : "")],
     ["Depot", unit.depot]].forEach(function (pair) {
      dl.appendChild(element("dt", pair[0]));
      var dd = element("dd", pair[1]);
      if (pair[0] === "Last seen") {
        dd.setAttribute("data-last-seen", unit.last_seen || "");
      }
      dl.appendChild(dd);
    });
    details.appendChild(dl);
    details.appendChild(element("h4", "Today's visits"));
    var visits = unit.visits_today || [];
    if (!visits.length) {
      details.appendChild(element("p", "No visits today.", "muted"));
    } else {
      var ol = element("ol");
      visits.forEach(function (visit) {
        ol.appendChild(element("li", visit.hospital + " — " + visit.status_label));
      });
      details.appendChild(ol);
    }
    if (unit.day_url) {
      var link = element("a", "Open the day view");
      link.href = unit.day_url;
      link.setAttribute("data-day-link", "");
      details.appendChild(link);
    }
  }

  function select(id) {
    selected = id;
    var rows = document.querySelectorAll("#fleet-table tr[data-unit]");
    for (var i = 0; i < rows.length; i++) {
      rows[i].classList.toggle("selected", rows[i].getAttribute("data-unit") === String(id));
    }
    if (units[id]) {
      renderDetails(units[id]);
      // Chosen from the table: bring the marker into view, but do not move a map the user is looking at.
      if (markers[id] && !map.getBounds().contains(markers[id].getLatLng())) {
        map.panTo(markers[id].getLatLng());
      }
    }
  }

  function updateRow(unit) {
    var row = document.querySelector('#fleet-table tr[data-unit="' + unit.id + '"]');
    if (!row) {
      return;
    }
    row.setAttribute("data-status", unit.status);
    var status = row.querySelector('[data-cell="status"]');
    status.textContent = "";
    var swatch = element("span", null, "swatch");
    swatch.style.background = unit.colour;
    status.appendChild(swatch);
    status.appendChild(document.createTextNode(unit.status_label));
    row.querySelector('[data-cell="position"]').textContent =
      unit.latitude.toFixed(4) + ", " + unit.longitude.toFixed(4) + (unit.source === "depot" ? " (depot)" : "");
    var seen = row.querySelector('[data-cell="last-seen"]');
    seen.setAttribute("data-last-seen", unit.last_seen || "");
    seen.textContent = ageText(unit.last_seen);
  }

  function drawUnit(unit) {
    var merged = Object.assign({}, units[unit.id] || {}, unit);
    units[unit.id] = merged;
    var latlng = [merged.latitude, merged.longitude];
    var marker = markers[unit.id];
    if (!marker) {
      marker = L.circleMarker(latlng, {
        pane: "units", radius: 9, weight: 2, color: "#ffffff", fillOpacity: 0.95,
        fillColor: merged.colour, className: "unit-marker unit-" + merged.id,
      });
      marker.bindTooltip(merged.name, { permanent: true, direction: "right", offset: [10, 0], className: "unit-label" });
      marker.on("click", function () { select(merged.id); });
      marker.addTo(map);
      markers[unit.id] = marker;
    } else {
      marker.setLatLng(latlng);
      marker.setStyle({ fillColor: merged.colour });
    }
    var path = marker.getElement && marker.getElement();
    if (path) {
      path.setAttribute("data-unit", merged.id);
      path.setAttribute("data-status", merged.status);
      path.setAttribute("data-lat", merged.latitude);
      path.setAttribute("data-lng", merged.longitude);
    }
    updateRow(merged);
    if (selected === merged.id) {
      renderDetails(merged);
    }
  }

  function applySnapshot(data) {
    data.units.forEach(drawUnit);
    container.setAttribute("data-units-drawn", String(Object.keys(markers).length));
  }

  function refresh() {
    if (!config.data_url) {
      return;
    }
    fetch(config.data_url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) { if (data) { applySnapshot(data); } })
      .catch(function () { /* offline: the next refresh or reconnect catches up */ });
  }

  // --- live updates ------------------------------------------------------------------------------
  var socket = null;
  var attempt = 0;
  var everConnected = false;

  function setStatus(state) {
    var el = document.querySelector("[data-live-status]");
    if (el) {
      el.setAttribute("data-state", state);
      el.textContent = LABELS[state] || state;
    }
  }

  function connect() {
    setStatus("connecting");
    var scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    try {
      socket = new WebSocket(scheme + "//" + window.location.host + config.ws_path);
    } catch (e) {
      reconnectLater();
      return;
    }
    socket.onopen = function () {
      attempt = 0;
      setStatus("live");
      if (everConnected) {
        refresh(); // what moved while the link was down
      }
      everConnected = true;
    };
    socket.onmessage = function (message) {
      var data;
      try {
        data = JSON.parse(message.data);
      } catch (e) {
        return;
      }
      if (data.kind === "units" && data.units) {
        data.units.forEach(drawUnit);
        container.setAttribute("data-last-update", data.at || "");
      }
    };
    socket.onclose = function (event) {
      socket = null;
      if (FATAL[event.code]) {
        setStatus(FATAL[event.code]);
        return;
      }
      setStatus("offline");
      reconnectLater();
    };
  }

  function reconnectLater() {
    var delay = Math.min(30000, 500 * Math.pow(2, attempt));
    attempt += 1;
    window.setTimeout(connect, delay / 2 + Math.random() * (delay / 2));
  }

  document.getElementById("fleet-table").addEventListener("click", function (event) {
    var button = event.target.closest("[data-select-unit]");
    if (button) {
      select(parseInt(button.getAttribute("data-select-unit"), 10));
    }
  });

  // "Last seen" ages tick on the client; the timestamps come from the server.
  window.setInterval(function () {
    var cells = document.querySelectorAll("[data-last-seen]");
    for (var i = 0; i < cells.length; i++) {
      cells[i].textContent = ageText(cells[i].getAttribute("data-last-seen"));
    }
  }, 10000);
  window.setInterval(refresh, REFRESH_MS);

  drawOutline();
  drawPlaces(snapshot.hospitals, "hospital");
  drawPlaces(snapshot.depots, "depot");
  applySnapshot(snapshot);
  var cells = document.querySelectorAll("#fleet-table [data-last-seen]");
  for (var i = 0; i < cells.length; i++) {
    cells[i].textContent = ageText(cells[i].getAttribute("data-last-seen"));
  }
  connect();
  window.CaravanFleetMap = { map: map, units: units, markers: markers, select: select, refresh: refresh };
})();
