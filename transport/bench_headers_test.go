package transport

import (
	"fmt"
	"testing"
)

// BenchmarkHeaders: one-way rate of 64-byte messages without headers
// (Send, ReceiveBuf), with a subject other than the channel's name, and
// with a subject, a msg-id and a traceparent (SendMsg, ReceiveMsg): what
// headers cost next to the plain path in the same run.
func BenchmarkHeaders(b *testing.B) {
	body := payload(64)
	for _, tc := range []struct {
		name string
		m    *Message
	}{
		{"plain", nil},
		{"subject", &Message{Subject: "bench.eu", Data: body}},
		{"three", &Message{Subject: "bench.eu", Data: body, Header: Header{
			{HeaderMsgID, "1234567"},
			{HeaderTraceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			cli, srv, ctx := quicmsgChannels(b, "quicmsg")
			done := make(chan error, 1)
			b.ResetTimer()
			go func() {
				var buf []byte
				for i := 0; i < b.N; i++ {
					var err error
					if tc.m == nil {
						buf, err = srv.ReceiveBuf(ctx, buf)
					} else {
						var m *Message
						if m, err = srv.ReceiveMsg(ctx); err == nil && m.Subject != tc.m.Subject {
							err = fmt.Errorf("message %d has subject %q", i, m.Subject)
						}
					}
					if err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
			for i := 0; i < b.N; i++ {
				var err error
				if tc.m == nil {
					err = cli.Send(ctx, body)
				} else {
					err = cli.SendMsg(ctx, tc.m)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
