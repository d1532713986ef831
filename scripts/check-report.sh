#!/usr/bin/env bash
# Checks that the report renders: writes it from a store, loads it in headless Chromium, and keeps a
# screenshot to look at. Chromium is not a build or CI dependency (apt-get install chromium).
#
# Usage: scripts/check-report.sh [--store FILE] [--out DIR] [--height PIXELS]
#   default store: features.sqlite, folder: report/ (report.html, report.md, report.png)
#
# Fails if the page does not load, the rendered DOM lacks the backbone table, a leaderboard row or
# an SVG plot, the page refers to anything outside itself (thumbnails are inline data: URIs), an
# error thumbnail does not decode, a confusion-matrix link has no section or does not scroll to it,
# a reliability / ROC / precision-recall diagram is missing or empty, the report is over 5 MB, or the
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
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
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

# 3. In the page as Chromium runs it (a copy with a checking script appended): every error thumbnail
#    decodes, every confusion-matrix link has its section and the first one scrolls to it, and the
#    reliability, ROC and precision-recall SVGs render with drawn marks.
CHECK="$(mktemp --suffix=.html)"; trap 'rm -f "$CHECK"' EXIT
sed 's#</body>##' "$HTML" > "$CHECK"
cat >> "$CHECK" <<'JS'
<pre id="report-check"></pre><script>
window.addEventListener('load', () => {
  const imgs = [...document.querySelectorAll('figure.thumb img')];
  const decoded = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
  const links = [...document.querySelectorAll('a[href^="#errors-"]')];
  const missing = links.filter(a => !document.getElementById(a.getAttribute('href').slice(1))).length;
  const drawn = s => { const r = s.getBoundingClientRect(); return r.width > 0 && r.height > 0 && s.querySelectorAll('path,polyline,line,rect,circle').length > 2; };
  const count = key => [...document.querySelectorAll(`svg[data-${key}]`)].filter(drawn).length;
  const report = first => { document.getElementById('report-check').textContent =
    `CHECK thumbs=${imgs.length} decoded=${decoded} links=${links.length} missing=${missing} first=${first} ` +
    `reliability=${count('reliability')} roc=${count('roc')} pr=${count('pr')}`; };
  if (!links.length) return report('none');
  window.scrollTo(0, 0);
  links[0].click();   // as a user would (Chromium runs with --disable-smooth-scrolling: the jump is immediate)
  setTimeout(() => {
    const top = document.getElementById(links[0].getAttribute('href').slice(1)).getBoundingClientRect().top;
    const atBottom = window.scrollY + window.innerHeight >= document.documentElement.scrollHeight - 2;
    report(window.scrollY > 0 && (Math.abs(top) < 60 || atBottom) ? 'landed' : `top:${Math.round(top)},scrollY:${window.scrollY}`);
  }, 2000);
});
</script></body></html>
JS
RESULT="$(timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --window-size=1280,900 --disable-smooth-scrolling --virtual-time-budget=10000 \
    --dump-dom "file://$CHECK" 2>/dev/null | grep -o 'CHECK thumbs=[0-9][^<]*' || true)"
echo "in the page: ${RESULT:-no result}"
[[ -n "$RESULT" ]] || fail "the checking script did not run in $HTML"
val() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$RESULT"; }
[[ "$(val thumbs)" -ge 1 ]] || fail "no error thumbnails (the gallery shows the best head's misclassified test images)"
[[ "$(val decoded)" == "$(val thumbs)" ]] || fail "$(( $(val thumbs) - $(val decoded) )) of $(val thumbs) thumbnails do not decode"
[[ "$(val missing)" == 0 ]] || fail "$(val missing) confusion-matrix links have no section to land on"
[[ "$(val links)" -ge 1 && "$(val first)" == landed ]] || fail "the first confusion-matrix link did not scroll to its section ($(val first))"
for kind in reliability roc pr; do [[ "$(val $kind)" -ge 1 ]] || fail "no rendered $kind diagram"; done
SIZE_HTML=$(stat -c %s "$HTML")
echo "report: $SIZE_HTML bytes"
[[ "$SIZE_HTML" -lt 5000000 ]] || fail "$HTML is $SIZE_HTML bytes, over 5 MB"

# 4. A screenshot that is not blank (a blank 1280 x HEIGHT PNG compresses to a few kB).
rm -f "$PNG"
timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1280,"$HEIGHT" \
    --screenshot="$PNG" "file://$HTML" >/dev/null 2>&1 || fail "chromium could not render $HTML"
[[ -s "$PNG" ]] || fail "no screenshot written"
SIZE=$(stat -c %s "$PNG")
[[ "$SIZE" -gt 50000 ]] || fail "screenshot $PNG is only $SIZE bytes: the page looks blank"
echo "ok: $PNG ($SIZE bytes, 1280x$HEIGHT); open it to look at the page"
