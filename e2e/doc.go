// Package e2e holds the end-to-end tests of quicsrv and quiccli: it has no
// code of its own, only tests.
//
// TestMain builds both commands once, from the module root, into a temporary
// directory; every test then runs them as separate processes talking QUIC
// over real UDP on 127.0.0.1, with ephemeral ports, its own development
// certificates in a temporary directory, and -ca (or -pin) given to every
// quiccli. The tests read what the processes print and what quicsrv's
// Prometheus endpoint reports, send signals (SIGTERM, SIGHUP, SIGSTOP and
// SIGCONT) as an operator would, and kill whatever is still running when a
// test ends. Every wait is bounded, and no test asserts how long anything
// took.
//
// Run them with
//
//	go test -race -count=1 ./e2e/
//
// The race detector applies to the test process; the commands are built
// without it.
//
// The netns tests run the commands in network namespaces joined by veth
// pairs (path MTU, a tc tbf rate limit, a client that changes address); they
// need root and skip without it. The longer of them carry the soak build tag
// and run in make soak.
package e2e
