/*
 * The coverage map (templates/fleet/coverage.html; rules: docs/coverage-exit.md).
 *
 * One marker per contracted hospital and modality (#coverage-data), coloured by state: red
 * overdue, amber due soon, green on time. The region outline is the bundled GeoJSON, so the map
 * works without tiles; tiles are drawn only when MAP_TILE_URL is set.
 */
(function () {
  "use strict";

  var COLOURS = { overdue: "#b3261e", due_soon: "#ef8f00", ok: "#2e7d32" };
  var LABELS = { overdue: "overdue", due_soon: "due soon", ok: "on time" };
  var HUBEI = [[29.0, 108.3], [33.3, 116.2]];

  var rows = JSON.parse(document.getElementById("coverage-data").textContent);
  var config = JSON.parse(document.getElementById("coverage-config").textContent);
  var container = document.getElementById("coverage-map");

  var map = L.map(container, { zoomControl: true, attributionControl: !!config.tile_url });
  map.fitBounds(HUBEI);
  if (config.tile_url) {
    L.tileLayer(config.tile_url, { attribution: config.tile_attribution || "", maxZoom: 18 }).addTo(map);
  }
  map.createPane("hospitals").style.zIndex = 650;

  window.caravanOutline(map, config.outline_url, container);

  function describe(row) {
    var state = LABELS[row.state] || row.state;
    if (row.state === "overdue") {
      state = row.days_overdue + " days overdue";
    }
    return row.hospital_name + " — " + row.modality + " every " + row.interval_days + " days: " + state +
      " (last " + (row.last_visit || "never") + ", next " + (row.next_visit || "none booked") +
      ", due " + row.due_on + ")" + (row.will_be_late ? " — late" : "");
  }

  var drawn = 0;
  rows.forEach(function (row) {
    if (row.latitude === null || row.longitude === null) {
      return;
    }
    var marker = L.circleMarker([row.latitude, row.longitude], {
      pane: "hospitals", radius: 8, weight: 2, color: "#ffffff", fillOpacity: 0.95,
      fillColor: COLOURS[row.state] || "#607080", className: "coverage-marker state-" + row.state,
    });
    marker.bindTooltip(describe(row));
    marker.addTo(map);
    var path = marker.getElement && marker.getElement();
    if (path) {
      path.setAttribute("data-contract", row.contract_id);
      path.setAttribute("data-state", row.state);
    }
    drawn += 1;
  });
  container.setAttribute("data-markers", String(drawn));
})();
