package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// connFlags are the global flags that say where the server is and how to
// trust it: each can also come from an environment variable or from the
// selected context. Precedence: flag, environment, selected context, then
// the development default (devCAFile in the current directory).
var connFlags = []struct{ name, env string }{
	{"addr", "QUICMSG_ADDR"},
	{"ca", "QUICMSG_CA"},
	{"cert", "QUICMSG_CERT"},
	{"key", "QUICMSG_KEY"},
	{"pin", "QUICMSG_PIN"},
}

// Where contexts are stored, under os.UserConfigDir (which honours
// XDG_CONFIG_HOME): one JSON file per context in contextDirName, the name
// of the selected one in selectedFileName.
const (
	configDirName    = "quicmsg"
	contextDirName   = "context"
	selectedFileName = "context.txt"
)

// profile is a named context: the connection flags it sets. File paths are
// stored absolute, so that it works from any directory.
type profile struct {
	Addr string `json:"addr,omitempty"`
	CA   string `json:"ca,omitempty"`
	Cert string `json:"cert,omitempty"`
	Key  string `json:"key,omitempty"`
	Pin  string `json:"pin,omitempty"`
}

// field returns the profile's value of the connection flag name.
func (p *profile) field(name string) *string {
	switch name {
	case "addr":
		return &p.Addr
	case "ca":
		return &p.CA
	case "cert":
		return &p.Cert
	case "key":
		return &p.Key
	}
	return &p.Pin
}

// field returns the variable of the connection flag name.
func (g *globals) field(name string) *string {
	switch name {
	case "addr":
		return &g.addr
	case "ca":
		return &g.caFile
	case "cert":
		return &g.certFile
	case "key":
		return &g.keyFile
	}
	return &g.pin
}

// loadProfile sets the connection flags from the selected context, then
// from the environment, before the command line overrides them.
func (g *globals) loadProfile() error {
	name, err := selectedContext()
	if err != nil {
		return err
	}
	if name != "" {
		p, err := readContext(name)
		if err != nil {
			return explain(exitUsage, err, "the selected context %s: %v; see 'quiccli context ls'", name, err)
		}
		for _, f := range connFlags {
			if v := *p.field(f.name); v != "" {
				*g.field(f.name) = v
				g.from[f.name] = "context " + name
			}
		}
	}
	for _, f := range connFlags {
		if v := os.Getenv(f.env); v != "" {
			*g.field(f.name) = v
			g.from[f.name] = f.env
		}
	}
	return nil
}

// origin says where the value of a connection flag came from when it was
// not given on the command line, as " (from QUICMSG_CA)", else "".
func (g *globals) origin(name string) string {
	if src := g.from[name]; src != "" && !g.set[name] {
		return " (from " + src + ")"
	}
	return ""
}

// configDir returns the directory holding quiccli's contexts.
func configDir() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no configuration directory for contexts: %w", err)
	}
	return filepath.Join(dir, configDirName), nil
}

// checkContextName rejects names that are not plain file names.
func checkContextName(name string) error {
	if name == "" || len(name) > 64 || strings.HasPrefix(name, ".") ||
		strings.IndexFunc(name, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
		}) >= 0 {
		return usageError("context name %q: want 1 to 64 letters, digits, '-', '_' or '.', not starting with '.'", name)
	}
	return nil
}

func contextFile(name string) (string, error) {
	if err := checkContextName(name); err != nil {
		return "", err
	}
	dir, err := configDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, contextDirName, name+".json"), nil
}

// errNoContext is returned for a context that does not exist.
var errNoContext = errors.New("no such context")

// readContext reads the context name.
func readContext(name string) (*profile, error) {
	file, err := contextFile(name)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errNoContext
	}
	if err != nil {
		return nil, err
	}
	var p profile
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return &p, nil
}

// writeContext stores p as the context name, readable by its owner only.
func writeContext(name string, p *profile) (string, error) {
	file, err := contextFile(name)
	if err != nil {
		return "", err
	}
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return "", err
	}
	return file, writePrivate(file, append(b, '\n'))
}

// writePrivate replaces file with data, atomically, mode 0600, creating its
// directories with mode 0700.
func writePrivate(file string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(file), ".tmp-*") // mode 0600
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), file)
	}
	if err != nil {
		_ = os.Remove(f.Name())
	}
	return err
}

// selectedContext returns the name of the selected context, or "".
func selectedContext() (string, error) {
	dir, err := configDir()
	if err != nil {
		return "", nil // no contexts without a configuration directory
	}
	b, err := os.ReadFile(filepath.Join(dir, selectedFileName))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	return strings.TrimSpace(string(b)), err
}

// selectContext selects the context name; "" selects none.
func selectContext(name string) error {
	dir, err := configDir()
	if err != nil {
		return err
	}
	file := filepath.Join(dir, selectedFileName)
	if name == "" {
		if err := os.Remove(file); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	return writePrivate(file, []byte(name+"\n"))
}

// contextNames lists the stored contexts, sorted.
func contextNames() ([]string, error) {
	dir, err := configDir()
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(filepath.Join(dir, contextDirName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	var names []string
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".json"); ok && !e.IsDir() && checkContextName(n) == nil {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names, err
}
