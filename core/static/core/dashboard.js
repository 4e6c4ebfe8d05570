/*
 * Charts of the quality dashboards (templates/core/dashboard.html; docs/dashboards.md).
 *
 * Each <canvas data-chart="ID"> is drawn from the JSON the server embedded in #ID
 * ({type, labels, datasets: [{label, data}], y_label, stacked}); every number is computed on the
 * server, this only draws. Chart.js is vendored (static/vendor/chart.js), never from a CDN.
 */
(function () {
  "use strict";

  var COLOURS = ["#0f3b57", "#e07b39", "#9aa5b1", "#c0392b", "#2e8b57", "#8e44ad"];
  var BY_LABEL = { Pass: "#2e8b57", Warn: "#e0a030", Fail: "#c0392b",
                   "Score 1": "#2e8b57", "Score 2": "#e0a030", "Score 3": "#c0392b",
                   "SLA (min)": "#9aa5b1" };

  function draw(canvas) {
    var source = document.getElementById(canvas.dataset.chart);
    if (!source || typeof Chart === "undefined") return;
    var spec = JSON.parse(source.textContent);
    var datasets = spec.datasets.map(function (d, i) {
      var colour = BY_LABEL[d.label] || COLOURS[i % COLOURS.length];
      return { label: d.label, data: d.data, backgroundColor: colour, borderColor: colour };
    });
    canvas.chart = new Chart(canvas, {
      type: spec.type,
      data: { labels: spec.labels, datasets: datasets },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        scales: {
          x: { stacked: spec.stacked },
          y: { stacked: spec.stacked, beginAtZero: true, title: { display: true, text: spec.y_label } }
        },
        plugins: { legend: { position: "bottom" } }
      }
    });
    canvas.closest(".dashboard-chart").dataset.drawn = "true";
  }

  document.querySelectorAll("canvas[data-chart]").forEach(draw);
})();
