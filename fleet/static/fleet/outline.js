/*
 * The region outline under every fleet map (the bundled hubei.geojson: no tiles, works offline).
 * caravanOutline(map, url, container, {fit}) draws it behind the other layers and marks the
 * container data-outline="drawn" (or "failed"); with fit, the map is fitted to the outline.
 */
(function () {
  "use strict";

  window.caravanOutline = function (map, url, container, options) {
    var fit = options && options.fit;
    return fetch(url, { credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("outline " + response.status);
        }
        return response.json();
      })
      .then(function (geojson) {
        var layer = L.geoJSON(geojson, {
          style: { className: "region-outline", color: "#4f6b7d", weight: 2, fillColor: "#ffffff", fillOpacity: 0.7 },
          interactive: false,
        }).addTo(map);
        layer.bringToBack();
        if (fit) {
          map.fitBounds(layer.getBounds(), { padding: [12, 12] });
        }
        container.setAttribute("data-outline", "drawn");
        return layer;
      })
      .catch(function () {
        container.setAttribute("data-outline", "failed");
      });
  };
})();
