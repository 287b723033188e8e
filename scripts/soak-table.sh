#!/usr/bin/env bash
# soak-table.sh: prints the FIGURE lines of a soak log as one table.
#
# Soak tests print each measured figure with testenv.Figure, on a line of its
# own: "FIGURE<TAB>test<TAB>name<TAB>value". This collects every such line of
# the log (in the order the tests printed them) into a Markdown table with one
# row per figure, ready to paste into RELIABILITY.md.
#
# Usage: scripts/soak-table.sh [LOG]   (default bin/soak.log; - reads stdin)
set -euo pipefail

log=${1:-bin/soak.log}
if [[ $log != - && ! -r $log ]]; then
	echo "soak-table: cannot read $log" >&2
	exit 1
fi
[[ $log == - ]] && log=/dev/stdin

awk -F'\t' '
	# go test -v may print a FIGURE line after other output on the same line
	# when tests run in parallel; take the FIGURE part.
	{ i = index($0, "FIGURE\t"); if (i == 0) next; $0 = substr($0, i) }
	NF >= 4 {
		n++
		test[n] = $2; name[n] = $3
		v = $4
		for (j = 5; j <= NF; j++) v = v " " $j
		value[n] = v
	}
	END {
		if (n == 0) { print "soak-table: no FIGURE lines" > "/dev/stderr"; exit 1 }
		print "| test | figure | value |"
		print "|---|---|---|"
		for (k = 1; k <= n; k++) printf "| %s | %s | %s |\n", test[k], name[k], value[k]
	}
' "$log"
