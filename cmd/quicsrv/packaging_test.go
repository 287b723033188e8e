package main

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The Dockerfile's and the systemd unit's command lines stay valid as the
// flags change.

func TestDockerfileRunsQuicsrvWithValidFlagsAsNonRoot(t *testing.T) {
	data, err := os.ReadFile("../../Dockerfile")
	require.NoError(t, err)
	text := string(data)
	m := regexp.MustCompile(`(?m)^CMD (\[.*\])$`).FindStringSubmatch(text)
	require.NotNil(t, m, "the Dockerfile has a CMD in JSON form")
	var args []string
	require.NoError(t, json.Unmarshal([]byte(m[1]), &args))
	o := newOptions()
	require.NoError(t, o.flagSet().Parse(args))
	require.NoError(t, o.check())

	require.Regexp(t, `(?m)^USER 65532:65532$`, text, "the final stage runs as distroless's nonroot user")
	require.Regexp(t, `(?m)^EXPOSE 4433/udp 9464/tcp$`, text)
	require.Contains(t, o.addr, ":4433")
	require.Contains(t, o.metricsAddr, ":9464")
}

func TestSystemdUnitRunsQuicsrvWithItsConfigAndReloadsWithSIGHUP(t *testing.T) {
	data, err := os.ReadFile("../../contrib/systemd/quicsrv.service")
	require.NoError(t, err)
	text := string(data)
	m := regexp.MustCompile(`(?m)^ExecStart=(\S+) (.*)$`).FindStringSubmatch(text)
	require.NotNil(t, m)
	require.Equal(t, "/usr/local/bin/quicsrv", m[1], "where make install puts it by default")
	o := newOptions()
	require.NoError(t, o.flagSet().Parse(strings.Fields(m[2])))
	require.Equal(t, "/etc/quicsrv/quicsrv.toml", o.configFile)
	for _, line := range []string{"ExecReload=/bin/kill -HUP $MAINPID", "DynamicUser=yes", "NoNewPrivileges=yes", "ProtectSystem=strict"} {
		require.Contains(t, text, "\n"+line+"\n")
	}
}
