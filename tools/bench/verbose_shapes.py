#!/usr/bin/env python3
"""Per-shape convolution times from oneDNN's verbose log of `extract bench`.

Usage: ONEDNN_VERBOSE=1 extract bench --backbone B [...] 2>&1 | tools/bench/verbose_shapes.py

For every convolution shape (oneDNN's problem descriptor, e.g. mb16_ic256oc256_ih14oh14kh3sh1...)
prints the time it takes per forward pass (median exec time x how many times a forward runs it),
the implementation oneDNN chose, and GFLOP/s counted as a direct convolution (2 x multiply-adds /
time: a Winograd convolution does fewer multiplications, so it can show more than the CPU's peak).
A forward pass is counted by the executions of the first convolution in the log (the image's own,
which a forward pass runs once; weight reorders at compile time are logged as executions too). Standard library
only; no framework needed.
"""
import collections
import re
import statistics
import sys

SHAPE = re.compile(r"mb(\d+)_(?:g(\d+))?ic(\d+)oc(\d+)_(?:id\d+od\d+kd\d+sd\d+dd\d+pd\d+_)?"
                   r"ih(\d+)oh(\d+)kh(\d+)sh(\d+)dh\d+ph\d+_iw(\d+)ow(\d+)kw(\d+)")


def main():
    times = collections.defaultdict(list)
    impl = {}
    first = None
    forwards = 0
    for line in sys.stdin:
        p = line.strip().split(",")
        if len(p) < 6 or p[0] != "onednn_verbose" or p[1] != "exec":
            continue
        if p[3] != "convolution":
            continue
        if first is None:
            first = p[-2]
        if p[-2] == first:
            forwards += 1
        times[p[-2]].append(float(p[-1]))
        impl[p[-2]] = p[4]
    if not forwards:
        sys.exit("verbose_shapes.py: no oneDNN convolution exec lines on stdin (set ONEDNN_VERBOSE=1)")
    rows = []
    total = 0.0
    for shape, values in times.items():
        m = SHAPE.match(shape)
        if not m:
            continue
        mb, g, ic, oc, ih, oh, kh, sh, iw, ow, kw = [int(x) if x else 1 for x in m.groups()]
        macs = mb * oc * oh * ow * (ic // g) * kh * kw
        median = statistics.median(values)
        per = len(values) / forwards
        total += median * per
        rows.append((median * per, per, median, 2 * macs / median / 1e6, impl[shape], shape))
    rows.sort(reverse=True)
    print(f"{forwards} forward passes; ms per forward, count per forward, median ms, GFLOP/s (direct count), implementation, shape")
    for r in rows:
        print("%8.1f  x%-4.0f %8.2f  %6.0f  %-26s %s" % r)
    print("%8.1f ms of convolution per forward pass" % total)


if __name__ == "__main__":
    main()
