package testenv

import (
	"fmt"
	"testing"
)

// Figure prints one measured figure of a soak or reliability test on its own
// line, "FIGURE<TAB>test<TAB>name<TAB>value", which `make soak` collects into
// its table (and RELIABILITY.md quotes). It also logs it, for -v runs.
func Figure(t testing.TB, name string, format string, args ...any) {
	t.Helper()
	v := fmt.Sprintf(format, args...)
	fmt.Printf("FIGURE\t%s\t%s\t%s\n", t.Name(), name, v)
	t.Logf("%s: %s", name, v)
}
