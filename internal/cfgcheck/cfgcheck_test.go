package cfgcheck

import (
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestNonNegativeNamesTheFirstFieldBelowZero(t *testing.T) {
	require.NoError(t, NonNegative("p: Config", Int{"A", 0}, Int{"B", 3}))
	err := NonNegative("p: Config", Int{"A", 1}, Int{"B", -2}, Int{"C", -3})
	require.EqualError(t, err, "p: Config.B -2 is negative")
}
