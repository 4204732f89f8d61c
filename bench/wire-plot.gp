# SPDX-License-Identifier: Apache-2.0
# Latency against load for one op of the wire benchmark: median p50 (solid)
# and p99 (dashed) of each target against the number of clients.
#   gnuplot -e "data='DIR/plot'; title='...'; out='x.svg'" bench/wire-plot.gp
# reads DATA-direct.dat, DATA-changecast.dat, DATA-haproxy.dat:
# "clients p50_us p99_us" per line.
set terminal svg size 820,440 dynamic font "sans,12" background "white"
set output out
set title title
set xlabel "concurrent clients"
set ylabel "latency per operation (us)"
set logscale xy
set xtics (1, 4, 16, 64)
set xrange [0.8:80]
set grid
set key outside right top vertical Left reverse
set style line 1 lc rgb "#1b7837" lw 2 pt 7
set style line 2 lc rgb "#2166ac" lw 2 pt 5
set style line 3 lc rgb "#b2182b" lw 2 pt 9
plot data."-direct.dat" using 1:2 with linespoints ls 1 title "direct p50", \
     data."-direct.dat" using 1:3 with linespoints ls 1 dt 2 title "direct p99", \
     data."-changecast.dat" using 1:2 with linespoints ls 2 title "changecast p50", \
     data."-changecast.dat" using 1:3 with linespoints ls 2 dt 2 title "changecast p99", \
     data."-haproxy.dat" using 1:2 with linespoints ls 3 title "haproxy p50", \
     data."-haproxy.dat" using 1:3 with linespoints ls 3 dt 2 title "haproxy p99"
