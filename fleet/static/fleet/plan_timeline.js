/* The plan review page (templates/fleet/plan_detail.html): the visits as a vis-timeline (one row
 * per unit) and the routes on a small Leaflet map, both drawn from the page's json_script
 * (fleet.selectors_plans.plan_timeline). The page's body is replaced by htmx while the plan
 * runs and after each lock or publish; every swap draws the new data. No inline script. */
(function () {
  "use strict";

  const DAY_OPENS = "07:00:00";
  const NIGHT = { start: "2000-01-01T19:00:00", end: "2000-01-02T" + DAY_OPENS, repeat: "daily" };
  const FIRST_DAYS = 3;
  const DAY_MS = 24 * 60 * 60 * 1000;
  const ROUTE_COLOURS = ["#1565c0", "#2e7d32", "#6a1b9a", "#ef6c00", "#00838f", "#c62828", "#5c6bc0", "#8d6e63"];
  let timeline = null;
  let routeMap = null;

  function readData(el) {
    const source = document.getElementById(el.dataset.source);
    return source ? JSON.parse(source.textContent) : null;
  }

  function text(tag, value, className) {
    const node = document.createElement(tag);
    node.textContent = value;
    if (className) node.className = className;
    return node;
  }

  function itemContent(item) {
    const box = document.createElement("div");
    box.className = "plan-item-content";
    const name = text("strong", item.hospital);
    if (item.locked) name.prepend(text("span", "Locked", "lock-badge"));
    box.append(name);
    const patients = item.patients === null ? "?" : item.patients;
    box.append(text("small", `${item.modality} · ${patients} patients · ${item.arrive}–${item.depart}`));
    return box;
  }

  function groupContent(group) {
    const box = document.createElement("div");
    box.className = "plan-group";
    box.append(text("strong", group.name));
    box.append(text("small", `${group.modality} · ${group.visits} visit${group.visits === 1 ? "" : "s"}`));
    return box;
  }

  function drawTimeline(el) {
    const data = readData(el);
    if (!data || typeof vis === "undefined") return;
    if (timeline) {
      timeline.destroy();
      timeline = null;
    }
    const groups = new vis.DataSet(
      data.groups.map((group, index) => ({ id: group.id, content: groupContent(group), order: index }))
    );
    const items = new vis.DataSet(
      data.items.map((item) => ({
        id: item.request_id,
        group: item.unit_id,
        start: item.start,
        end: item.end,
        type: "range",
        content: itemContent(item),
        title: `${item.hospital}, ${item.date} ${item.arrive}–${item.depart} (${item.unit}, stop ${item.sequence})` +
          (item.locked ? ", locked" : ""),
        className: ["plan-item", item.priority_class, item.locked ? "locked" : ""].join(" ").trim(),
      }))
    );
    // The first days of the horizon (the dispatcher scrolls and zooms for the rest). Not as the
    // start/end options: with them vis-timeline stays hidden until a first "rangechanged" that a
    // window equal to min/max never emits. It is set once the first draw (a fit) is done.
    const first = new Date(data.window.start);
    const last = new Date(Math.min(new Date(data.window.end).getTime(), first.getTime() + FIRST_DAYS * DAY_MS));
    const drawn = timeline = new vis.Timeline(el, items, groups, {
      min: data.window.start,
      max: data.window.end,
      orientation: "top",
      stack: true,
      groupOrder: "order",
      zoomMin: 60 * 60 * 1000,
      hiddenDates: [NIGHT],
      selectable: true,
      margin: { item: 4, axis: 4 },
      tooltip: { followMouse: true },
      showCurrentTime: false,
      onInitialDrawComplete: () => {
        if (timeline !== drawn) return;
        drawn.setWindow(first, last, { animation: false });
        el.dataset.drawn = "yes";
      },
    });
    // A visit picked on the timeline is shown in the table below.
    timeline.on("select", (event) => {
      document.querySelectorAll("#plan-visits tr.selected").forEach((row) => row.classList.remove("selected"));
      for (const id of event.items) {
        const row = document.querySelector(`#plan-visits tr[data-visit="${CSS.escape(String(id))}"]`);
        if (row) row.classList.add("selected");
      }
    });
    el.dataset.items = String(items.length);
    el.dataset.groups = String(groups.length);
    el.dataset.drawing = "yes";
  }

  function drawMap(el) {
    const data = readData(el);
    if (!data || typeof L === "undefined") return;
    if (routeMap) {
      routeMap.remove();
      routeMap = null;
    }
    // No tiles: the page works offline (vans and hospital networks often are).
    routeMap = L.map(el, { attributionControl: false, zoomSnap: 0.25 });
    if (el.dataset.outlineUrl) {
      window.caravanOutline(routeMap, el.dataset.outlineUrl, el);
    }
    const colours = {};
    data.groups.forEach((group, index) => {
      colours[group.id] = ROUTE_COLOURS[index % ROUTE_COLOURS.length];
    });
    const bounds = [];
    for (const group of data.groups) {
      if (group.depot_latitude === null || group.depot_longitude === null) continue;
      const at = [group.depot_latitude, group.depot_longitude];
      bounds.push(at);
      L.circleMarker(at, { radius: 6, color: "#37474f", fillColor: "#37474f", fillOpacity: 1, className: "depot-marker" })
        .bindTooltip(`${group.depot} (${group.name})`)
        .addTo(routeMap);
    }
    for (const route of data.routes) {
      if (route.points.length < 2) continue;
      L.polyline(route.points, { color: colours[route.unit_id] || "#1565c0", weight: 3, opacity: 0.75, className: "route-line" })
        .addTo(routeMap);
      bounds.push(...route.points);
    }
    for (const item of data.items) {
      if (item.latitude === null || item.longitude === null) continue;
      L.circleMarker([item.latitude, item.longitude], {
        radius: 5, color: "#c62828", fillColor: "#ffffff", fillOpacity: 1, weight: 2, className: "hospital-marker",
      })
        .bindTooltip(`${item.hospital}: ${item.unit}, ${item.date} ${item.arrive}`)
        .addTo(routeMap);
    }
    if (bounds.length) {
      routeMap.fitBounds(bounds, { padding: [20, 20], maxZoom: 10 });
    } else {
      routeMap.setView([30.9, 112.3], 6);
    }
    el.dataset.drawn = "yes";
  }

  function draw() {
    document.querySelectorAll("[data-plan-timeline]:not([data-drawing])").forEach(drawTimeline);
    document.querySelectorAll("[data-plan-map]:not([data-drawn])").forEach(drawMap);
  }

  draw();
  // The polled body (progress, then the result) and the lock/publish answers replace #plan-body.
  document.addEventListener("htmx:afterSettle", draw);
})();
