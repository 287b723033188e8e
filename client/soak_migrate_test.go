//go:build soak

package client

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/testenv"
)

const (
	// soakMigrations is how many times TestSoakMigrateUnderTraffic moves
	// the connection, back and forth between two addresses.
	soakMigrations = 100
	// soakMigrateChannels carry echo traffic meanwhile, soakMigrateRounds
	// rounds of migrateMessages each way on each.
	soakMigrateChannels = 8
	soakMigrateRounds   = 10
	soakMigrateBudget   = 5 * time.Minute
)

// TestSoakMigrateUnderTraffic moves a client's connection soakMigrations
// times between 127.0.0.2 and 127.0.0.3 while eight channels carry echo
// traffic both ways: every message arrives once and in order, the client
// never reconnects, the server keeps one session, and nothing is in doubt.
func TestSoakMigrateUnderTraffic(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), soakMigrateBudget)
	defer cancel()
	m := newMigrationSetup(t, ctx, soakMigrateChannels)
	conn := m.client.Conn()
	var took []time.Duration
	move := func() error {
		for i := range soakMigrations {
			start := time.Now()
			if err := m.client.Migrate(ctx, fmt.Sprintf("127.0.0.%d:0", 2+i%2)); err != nil {
				return fmt.Errorf("migration %d: %w", i, err)
			}
			took = append(took, time.Since(start))
		}
		return nil
	}
	start := time.Now()
	var work []func(func()) error
	for _, ch := range m.chans {
		work = append(work,
			func(func()) error {
				for range soakMigrateRounds {
					if err := sendSeqs(ctx, ch); err != nil {
						return err
					}
				}
				return nil
			},
			func(progress func()) error {
				for range soakMigrateRounds {
					if err := receiveEchoes(ctx, ch, progress); err != nil {
						return err
					}
				}
				return nil
			})
	}
	moveErr, err := testenv.Midway(ctx, work, soakMigrateChannels*migrateMessages/4, move)
	require.NoError(t, err)
	require.NoError(t, moveErr)
	elapsed := time.Since(start)

	m.requireDelivered(t, soakMigrateRounds)
	require.Same(t, conn, m.client.Conn())
	require.Len(t, m.sessions.all(), 1)
	st := m.client.Stats()
	require.Equal(t, uint64(soakMigrations), st.Migrations)
	require.Zero(t, st.Reconnects)
	require.Zero(t, st.MessagesInDoubt)
	require.NoError(t, m.client.Close())
	require.NotContains(t, m.events.types(), EventReconnected)

	slices.Sort(took)
	per := soakMigrateChannels * soakMigrateRounds * migrateMessages
	testenv.Figure(t, "migrations", "%d", st.Migrations)
	testenv.Figure(t, "messages each way", "%d (%d channels), each delivered once and in order", per, soakMigrateChannels)
	testenv.Figure(t, "reconnects", "%d", st.Reconnects)
	testenv.Figure(t, "in doubt", "%d", st.MessagesInDoubt)
	testenv.Figure(t, "server sessions", "%d", len(m.sessions.all()))
	// Back to back, a probe often waits for the connection IDs the last
	// move retired to be replaced, which quic-go's retry after 200 ms
	// then finds: hence min against p50.
	testenv.Figure(t, "Migrate min / p50 / p90 / max, back to back (race detector on)", "%s / %s / %s / %s",
		took[0].Round(time.Microsecond), took[len(took)/2].Round(time.Microsecond), took[len(took)*9/10].Round(time.Microsecond), took[len(took)-1].Round(time.Microsecond))
	testenv.Figure(t, "run time", "%s", elapsed.Round(time.Millisecond))
}
