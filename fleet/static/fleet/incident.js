/*
 * One incident's live view (templates/fleet/incident.html; docs/surge.md).
 *
 * Draws the incident, the units sent (at their last position) and the hospitals of the cancelled
 * visits from #incident-data, then follows the fleet map's feed (/ws/fleet/map/, messages
 * {"kind": "units", "units": [...]}) and moves only the units sent to this incident, updating
 * the distance still to go and the drive time left (same estimate as the ranking: 1.3 x the
 * straight-line distance at 50 km/h). Reconnects with backoff; 4401/4403 closes are final.
 */
(function () {
  "use strict";

  var FATAL = { 4401: "signed-out", 4403: "forbidden" };
  var LABELS = { connecting: "Connecting…", live: "Live", offline: "Offline, reconnecting…",
                 "signed-out": "Signed out", forbidden: "Not allowed" };
  var ROAD_FACTOR = 1.3;
  var SPEED_KMH = 50;

  var data = JSON.parse(document.getElementById("incident-data").textContent);
  var config = JSON.parse(document.getElementById("incident-config").textContent);
  var container = document.getElementById("incident-map");
  var target = [data.incident.latitude, data.incident.longitude];
  var markers = {};
  var sent = {};
  data.units.forEach(function (unit) { sent[unit.unit_id] = unit; });

  var map = L.map(container, { attributionControl: !!config.tile_url });
  if (config.tile_url) {
    L.tileLayer(config.tile_url, { attribution: config.tile_attribution || "", maxZoom: 18 }).addTo(map);
  }
  if (config.outline_url) {
    window.caravanOutline(map, config.outline_url, container);
  }
  L.circleMarker(target, { radius: 12, color: "#b71c1c", weight: 3, fillColor: "#ff5252", fillOpacity: 0.8,
                           className: "incident-marker" })
    .bindTooltip("Incident: " + data.incident.name, { permanent: true, direction: "top" }).addTo(map);

  function km(a, b) {
    var rad = Math.PI / 180;
    var dLat = (b[0] - a[0]) * rad;
    var dLng = (b[1] - a[1]) * rad;
    var h = Math.pow(Math.sin(dLat / 2), 2) +
      Math.cos(a[0] * rad) * Math.cos(b[0] * rad) * Math.pow(Math.sin(dLng / 2), 2);
    return 2 * 6371 * Math.asin(Math.sqrt(h)) * ROAD_FACTOR;
  }

  function cell(id, name, text) {
    var el = document.querySelector('#incident-units tr[data-unit="' + id + '"] [data-cell="' + name + '"]');
    if (el) { el.textContent = text; }
  }

  function drawUnit(id, latitude, longitude, status, lastSeen) {
    var latlng = [latitude, longitude];
    if (!markers[id]) {
      markers[id] = L.circleMarker(latlng, { radius: 9, weight: 2, color: "#ffffff", fillColor: "#1565c0",
                                             fillOpacity: 0.95, className: "unit-marker unit-" + id })
        .bindTooltip(sent[id].unit_name, { permanent: true, direction: "right", offset: [10, 0], className: "unit-label" })
        .addTo(map);
    } else {
      markers[id].setLatLng(latlng);
    }
    var distance = km(latlng, target);
    cell(id, "km", distance.toFixed(1));
    cell(id, "drive", Math.round(distance / SPEED_KMH * 60));
    if (status) { cell(id, "status", status); }
    if (lastSeen) { cell(id, "last-seen", lastSeen.slice(11, 19)); }
    var path = markers[id].getElement && markers[id].getElement();
    if (path) { path.setAttribute("data-lat", latitude); path.setAttribute("data-lng", longitude); }
  }

  var bounds = L.latLngBounds([target]);
  data.units.forEach(function (unit) {
    drawUnit(unit.unit_id, unit.latitude, unit.longitude, null, null);
    bounds.extend([unit.latitude, unit.longitude]);
  });
  data.visits.forEach(function (visit) {
    if (visit.hospital_latitude === null || visit.hospital_longitude === null) { return; }
    L.circleMarker([visit.hospital_latitude, visit.hospital_longitude],
                   { radius: 5, color: "#757575", weight: 2, fillColor: "#ffffff", fillOpacity: 1, dashArray: "2 2" })
      .bindTooltip("Cancelled " + visit.date + ": " + visit.hospital_name + " (" + visit.unit_name + ")")
      .addTo(map);
    bounds.extend([visit.hospital_latitude, visit.hospital_longitude]);
  });
  map.fitBounds(bounds.pad(0.2), { maxZoom: 11 });
  container.setAttribute("data-units-drawn", String(Object.keys(markers).length));

  // --- live positions (the fleet map's feed) ------------------------------------------------------
  var attempt = 0;

  function setStatus(state) {
    var el = document.querySelector("[data-live-status]");
    if (el) { el.setAttribute("data-state", state); el.textContent = LABELS[state] || state; }
  }

  function connect() {
    if (!data.units.length || data.incident.status === "closed") {
      setStatus("live");
      return;
    }
    setStatus("connecting");
    var scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    var socket;
    try {
      socket = new WebSocket(scheme + "//" + window.location.host + config.ws_path);
    } catch (e) {
      reconnectLater();
      return;
    }
    socket.onopen = function () { attempt = 0; setStatus("live"); };
    socket.onmessage = function (message) {
      var payload;
      try { payload = JSON.parse(message.data); } catch (e) { return; }
      if (payload.kind !== "units" || !payload.units) { return; }
      payload.units.forEach(function (unit) {
        if (sent[unit.id]) {
          drawUnit(unit.id, unit.latitude, unit.longitude, unit.status_label, unit.last_seen);
        }
      });
      container.setAttribute("data-last-update", payload.at || "");
    };
    socket.onclose = function (event) {
      if (FATAL[event.code]) { setStatus(FATAL[event.code]); return; }
      setStatus("offline");
      reconnectLater();
    };
  }

  function reconnectLater() {
    var delay = Math.min(30000, 500 * Math.pow(2, attempt));
    attempt += 1;
    window.setTimeout(connect, delay / 2 + Math.random() * (delay / 2));
  }

  connect();
  window.CaravanIncident = { map: map, markers: markers };
})();
