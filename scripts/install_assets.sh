#!/usr/bin/env bash
# Vendor the browser assets from npm into static/vendor/, so no page depends on a CDN
# (vans and hospital networks are often offline or filtered).
#
# Idempotent: when package-lock.json and this script are unchanged since the last run and every
# file is in place, it exits without touching npm.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FRONTEND="$ROOT/frontend"
MODULES="$FRONTEND/node_modules"
VENDOR="$ROOT/static/vendor"
STAMP="$VENDOR/.install-stamp"
# npm's cache keeps packed tarballs too, so a re-install works offline once fetched.
PACKS="$FRONTEND/node_modules/.caravan-tarballs"

# What the pages load: "<path under node_modules> <path under static/vendor>".
# Add a line per file when a package joins frontend/package.json; keep <package>/ as the
# first directory of the destination so each library's files (and its licence) stay together.
ASSETS=(
  "htmx.org/dist/htmx.min.js                      htmx.org/htmx.min.js"
  "htmx.org/LICENSE                               htmx.org/LICENSE"
  "@picocss/pico/css/pico.min.css                 pico/pico.min.css"
  "@picocss/pico/LICENSE.md                       pico/LICENSE.md"
  "swagger-ui-dist/swagger-ui-bundle.js           swagger-ui-dist/swagger-ui-bundle.js"
  "swagger-ui-dist/swagger-ui-standalone-preset.js swagger-ui-dist/swagger-ui-standalone-preset.js"
  "swagger-ui-dist/swagger-ui.css                 swagger-ui-dist/swagger-ui.css"
  "swagger-ui-dist/favicon-32x32.png              swagger-ui-dist/favicon-32x32.png"
  "swagger-ui-dist/LICENSE                        swagger-ui-dist/LICENSE"
  "swagger-ui-dist/NOTICE                         swagger-ui-dist/NOTICE"
  "leaflet/dist/leaflet.js                        leaflet/leaflet.js"
  "leaflet/dist/leaflet.css                       leaflet/leaflet.css"
  "leaflet/dist/images/layers.png                 leaflet/images/layers.png"
  "leaflet/dist/images/layers-2x.png              leaflet/images/layers-2x.png"
  "leaflet/dist/images/marker-icon.png            leaflet/images/marker-icon.png"
  "leaflet/dist/images/marker-icon-2x.png         leaflet/images/marker-icon-2x.png"
  "leaflet/dist/images/marker-shadow.png          leaflet/images/marker-shadow.png"
  "leaflet/LICENSE                                leaflet/LICENSE"
  # The standalone build bundles its vis-data/vis-util/moment peers: one script, one stylesheet.
  "vis-timeline/standalone/umd/vis-timeline-graph2d.min.js vis-timeline/vis-timeline-graph2d.min.js"
  "vis-timeline/styles/vis-timeline-graph2d.min.css vis-timeline/vis-timeline-graph2d.min.css"
  "vis-timeline/LICENSE.md                        vis-timeline/LICENSE.md"
  # The UMD build bundles its one dependency (@kurkle/color) and registers every chart type.
  "chart.js/dist/chart.umd.min.js                 chart.js/chart.umd.min.js"
  "chart.js/LICENSE.md                            chart.js/LICENSE.md"
)

# Whole prebuilt applications (OHIF): "caravanTarballs" in package.json lists, per package,
# version, sha512 integrity, the directory to copy, the destination under static/vendor/ and
# what to leave out. They are fetched with `npm pack` (the registry through npm, checked against
# the pinned integrity), not `npm install`: see the "_comment" there.
tarballs() {
  # One line per tarball: name version integrity from to licence exclude1,exclude2,...
  node -e '
    const t = require(process.argv[1]).caravanTarballs || {};
    for (const [name, e] of Object.entries(t)) {
      if (name.startsWith("_")) continue;
      console.log([name, e.version, e.integrity, e.from, e.to, e.licence || "-", (e.exclude || []).join(",") || "-"].join(" "));
    }' "$FRONTEND/package.json"
}

relocate() {
  # Webpack builds (OHIF) hard-code their public path "/" in every runtime and their CSS uses
  # root-relative url(/...). Served from static/vendor/<dir>/, they must resolve against
  # window.PUBLIC_URL (set by the page that loads them) or, in a web worker, against the
  # worker script's own directory; CSS urls become relative to the stylesheet.
  node -e '
    const fs = require("fs"), path = require("path");
    const JS_FROM = "__webpack_require__.p = \"/\";";
    const JS_TO = "__webpack_require__.p = (self.PUBLIC_URL || (typeof document === \"undefined\" ? self.location.href.replace(/[^/]*$/, \"\") : \"/\"));";
    const walk = (dir) => fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)]);
    let patched = 0;
    for (const file of walk(process.argv[1])) {
      if (!/\.(js|css)$/.test(file)) continue;
      const text = fs.readFileSync(file, "utf8");
      const out = file.endsWith(".css") ? text.split("url(/").join("url(") : text.split(JS_FROM).join(JS_TO);
      if (out !== text) { fs.writeFileSync(file, out); patched++; }
    }
    if (patched === 0) { console.error("install_assets: nothing to relocate in " + process.argv[1]); process.exit(1); }
  ' "$1"
}

install_tarball() {
  local name="$1" version="$2" integrity="$3" from="$4" to="$5" licence="$6" exclude="$7"
  local file actual tmp item
  mkdir -p "$PACKS"
  file="$(cd "$PACKS" && npm pack "$name@$version" --silent --loglevel=error </dev/null | tail -n 1)"
  # Node rather than openssl, which the node:20-slim image (docker/Dockerfile) lacks.
  actual="$(node -e '
    const data = require("fs").readFileSync(process.argv[1]);
    process.stdout.write("sha512-" + require("crypto").createHash("sha512").update(data).digest("base64"));
  ' "$PACKS/$file")"
  if [ "$actual" != "$integrity" ]; then
    echo "install_assets: $name@$version integrity mismatch ($actual, expected $integrity)" >&2
    rm -f "$PACKS/$file"
    exit 1
  fi
  tmp="$(mktemp -d)"
  tar -xzf "$PACKS/$file" -C "$tmp"
  if [ ! -d "$tmp/$from" ]; then
    echo "install_assets: $name@$version has no $from" >&2
    rm -rf "$tmp"
    exit 1
  fi
  if [ "$exclude" != "-" ]; then
    IFS=',' read -r -a items <<<"$exclude"
    for item in "${items[@]}"; do rm -rf "${tmp:?}/$from/$item"; done
  fi
  relocate "$tmp/$from"
  mkdir -p "$(dirname "$VENDOR/$to")"
  mv "$tmp/$from" "$VENDOR/$to"
  if [ "$licence" != "-" ]; then cp "$tmp/$licence" "$VENDOR/$to/LICENSE"; fi
  rm -rf "$tmp"
  echo "$name@$version" >"$VENDOR/$to/.caravan-version"
}

fingerprint() {
  # The script is part of the fingerprint so that editing ASSETS re-copies.
  cat "$FRONTEND/package.json" "$FRONTEND/package-lock.json" "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1
}

all_present() {
  local entry dest
  for entry in "${ASSETS[@]}"; do
    read -r _ dest <<<"$entry"
    [ -f "$VENDOR/$dest" ] || return 1
  done
  local name version to
  while read -r name version _ _ to _ _; do
    [ "$(cat "$VENDOR/$to/.caravan-version" 2>/dev/null)" = "$name@$version" ] || return 1
  done < <(tarballs)
}

if [ -f "$FRONTEND/package-lock.json" ] && [ -f "$STAMP" ] \
  && [ "$(cat "$STAMP")" = "$(fingerprint)" ] && all_present; then
  exit 0
fi

command -v npm >/dev/null || { echo "install_assets: npm not found (Node.js 20+ is required)" >&2; exit 1; }

# --ignore-scripts: none of these packages needs a build step, and swagger-ui-dist pulls in
# @scarf/scarf, whose install script reports usage analytics over the network.
NPM_FLAGS=(--ignore-scripts --no-audit --no-fund --loglevel=error)
if [ -f "$FRONTEND/package-lock.json" ]; then
  (cd "$FRONTEND" && npm ci "${NPM_FLAGS[@]}" >/dev/null)
else
  (cd "$FRONTEND" && npm install "${NPM_FLAGS[@]}" >/dev/null)
  echo "install_assets: created frontend/package-lock.json; commit it"
fi

# Rebuild from scratch so files dropped from ASSETS do not linger; the stamp is written last,
# so an interrupted run is retried next time.
rm -rf "$VENDOR"
for entry in "${ASSETS[@]}"; do
  read -r src dest <<<"$entry"
  if [ ! -f "$MODULES/$src" ]; then
    echo "install_assets: $src is not in node_modules (check frontend/package.json)" >&2
    exit 1
  fi
  mkdir -p "$(dirname "$VENDOR/$dest")"
  cp "$MODULES/$src" "$VENDOR/$dest"
done
count=0
while read -r name version integrity from to licence exclude; do
  install_tarball "$name" "$version" "$integrity" "$from" "$to" "$licence" "$exclude"
  count=$((count + 1))
done < <(tarballs)
fingerprint >"$STAMP"
echo "install_assets: ${#ASSETS[@]} files and $count prebuilt app(s) in static/vendor/"
