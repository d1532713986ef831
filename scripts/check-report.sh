#!/usr/bin/env bash
# Checks that the report renders: writes it from a store, loads it in headless Chromium, and keeps a
# screenshot to look at. Chromium is not a build or CI dependency (apt-get install chromium).
#
# Usage: scripts/check-report.sh [--store FILE] [--out DIR] [--height PIXELS]
#   default store: features.sqlite, folder: report/ (report.html, report.md, report.png)
#
# Fails if the page does not load, the rendered DOM lacks the backbone table, a leaderboard row or
# an SVG plot, the page refers to anything outside itself (thumbnails are inline data: URIs), or the
# screenshot is (nearly) blank.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
STORE=features.sqlite
OUT=report
HEIGHT=5000
while [[ $# -gt 0 ]]; do
    case "$1" in
        --store) STORE="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        --height) HEIGHT="$2"; shift 2 ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        *) echo "check-report.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done
CHROMIUM="$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)"
if [[ -z "$CHROMIUM" ]]; then
    echo "check-report.sh: no chromium; install it with: apt-get install chromium" >&2
    exit 1
fi
BIN="${BIN:-.build/release}"
[[ -x "$BIN/train-head" ]] || swift build -c release >&2

"$BIN/train-head" report --store "$STORE" --out "$OUT"
HTML="$(cd "$OUT" && pwd)/report.html"
PNG="$(cd "$OUT" && pwd)/report.png"
fail() { echo "check-report.sh: FAIL: $*" >&2; exit 1; }

# 1. Self-contained: no script files, stylesheets or fonts; images only as inline data: URIs (the
#    error gallery's thumbnails); the only script is inline.
if grep -Eq '<link|<iframe|<script[^>]*src|@import|url\(' "$HTML"; then fail "$HTML refers to outside resources"; fi
if grep -Eo 'src="[^"]{0,15}' "$HTML" | grep -vq '^src="data:image/jpeg'; then fail "$HTML has an image that is not a data: URI"; fi

# 2. The DOM as Chromium built it (after parsing): tables, leaderboard rows and SVG plots are there.
DOM="$(timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --dump-dom "file://$HTML" 2>/dev/null)"
grep -q 'id="backbones"' <<<"$DOM" || fail "no backbone table in the rendered page"
count() { grep -o "$1" <<<"$DOM" | wc -l || true; }   # 0 (not a failure) when there is none
SVGS=$(count '<svg')
ROWS=$(count '<tr data-trial=')
CELLS=$(count 'data-value=')
THUMBS=$(count '<figure class="thumb"')
RELIABILITY=$(count 'data-reliability=')
echo "rendered DOM: $SVGS SVG plots ($RELIABILITY reliability diagrams), $ROWS leaderboard rows, $CELLS metric cells, $THUMBS error thumbnails"
[[ "$SVGS" -ge 1 ]] || fail "no SVG plot (train a head first: train-head sweep configs/scenes-experiment.yaml)"

# 3. A screenshot that is not blank (a blank 1280 x HEIGHT PNG compresses to a few kB).
rm -f "$PNG"
timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1280,"$HEIGHT" \
    --screenshot="$PNG" "file://$HTML" >/dev/null 2>&1 || fail "chromium could not render $HTML"
[[ -s "$PNG" ]] || fail "no screenshot written"
SIZE=$(stat -c %s "$PNG")
[[ "$SIZE" -gt 50000 ]] || fail "screenshot $PNG is only $SIZE bytes: the page looks blank"
echo "ok: $PNG ($SIZE bytes, 1280x$HEIGHT); open it to look at the page"
