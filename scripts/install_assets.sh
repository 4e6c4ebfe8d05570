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
)

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
fingerprint >"$STAMP"
echo "install_assets: ${#ASSETS[@]} files in static/vendor/"
