package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"regexp"
	"strconv"

	"github.com/BurntSushi/toml"
)

// The config file (-config FILE) is TOML: one top-level key per flag, named
// as the flag without its dash, with the value the flag takes (a boolean
// for a boolean flag, an integer or a string for the others; durations and
// sizes as strings: "30s", "600MiB"). Its keys are derived from the flag
// set, so that every flag is settable in the file as soon as it exists.
// Command-line flags win over the file, the file over the defaults.

// notInFile are the flags that are not settings: -config itself, and the
// ones that do something and exit.
var notInFile = map[string]bool{"config": true, "version": true, "dev-client-cert": true}

// configFile is a config file's settings, as the text each flag's Set
// takes, by key.
type configFile map[string]string

// readConfigFile reads and checks the config file at path against
// quicsrv's flags: every key must name a flag, every value must be one
// that flag takes, which it checks by setting it on a flag set of its own
// from newFlagSet. Its errors name the file, the line and the key.
func readConfigFile(path string, newFlagSet func() *flag.FlagSet) (configFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("-config: %w", err)
	}
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, fileError(path, pe.Position.Line, pe.LastKey, errors.New(pe.Message))
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	check := newFlagSet()
	file := make(configFile, len(raw))
	for _, key := range sortedKeys(raw) {
		s, err := settingText(check, key, raw[key])
		if err == nil {
			if err = check.Set(key, s); err != nil {
				err = fmt.Errorf("invalid value %q: %w", s, err)
			}
		}
		if err != nil {
			return nil, fileError(path, keyLine(data, key), key, err)
		}
		file[key] = s
	}
	return file, nil
}

// settingText returns the text of a file value that fs's flag key takes.
func settingText(fs *flag.FlagSet, key string, v any) (string, error) {
	if _, ok := v.(map[string]any); ok {
		return "", errors.New("is a table: every setting is a top-level key")
	}
	f := fs.Lookup(key)
	if f == nil || notInFile[key] {
		return "", errors.New("unknown key: the keys are the names of quicsrv's flags without the dash (quicsrv -h)")
	}
	isBool := false
	if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok {
		isBool = b.IsBoolFlag()
	}
	switch v := v.(type) {
	case bool:
		if isBool {
			return strconv.FormatBool(v), nil
		}
	case int64:
		if !isBool {
			return strconv.FormatInt(v, 10), nil
		}
	case string:
		if !isBool {
			return v, nil
		}
	}
	if isBool {
		return "", fmt.Errorf("want true or false, not %s", tomlType(v))
	}
	return "", fmt.Errorf("want a string or an integer, not %s", tomlType(v))
}

func tomlType(v any) string {
	switch v.(type) {
	case bool:
		return "a boolean"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case string:
		return "a string"
	case []any, []map[string]any:
		return "an array"
	}
	return "a date or time"
}

// fileError is an error of the config file at path, line (0: not known)
// and key ("" if none).
func fileError(path string, line int, key string, err error) error {
	where := path
	if line > 0 {
		where += ":" + strconv.Itoa(line)
	}
	if key != "" {
		return fmt.Errorf("config file %s: %s: %w", where, key, err)
	}
	return fmt.Errorf("config file %s: %w", where, err)
}

// keyLine returns the line of data on which key is set at the top level,
// bare or quoted, or opened as a table, or 0. The TOML parser gives lines
// only for syntax errors; the file has no tables, so a scan finds a key's
// line.
func keyLine(data []byte, key string) int {
	k := regexp.QuoteMeta(key)
	re := regexp.MustCompile(`^\s*((` + k + `|"` + k + `"|'` + k + `')\s*=|\[\s*` + k + `\s*\])`)
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		if re.Match(sc.Bytes()) {
			return n
		}
	}
	return 0
}

// apply sets on fs the file's settings that the command line did not set
// (cmdline: the flags it set).
func (file configFile) apply(fs *flag.FlagSet, cmdline map[string]bool) error {
	for _, key := range sortedKeys(file) {
		if cmdline[key] {
			continue
		}
		if err := fs.Set(key, file[key]); err != nil {
			return err // readConfigFile checked the value
		}
	}
	return nil
}

// reCheckedFlag finds the flag a check error starts with ("-mode ...").
var reCheckedFlag = regexp.MustCompile(`^-([a-z0-9-]+)`)

// blame returns err, a check of the options that failed, naming the file,
// line and key when the flag it names was set by the file.
func (file configFile) blame(err error, path string, cmdline map[string]bool) error {
	m := reCheckedFlag.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	key := m[1]
	if _, ok := file[key]; !ok || cmdline[key] {
		return err
	}
	data, _ := os.ReadFile(path)
	return fileError(path, keyLine(data, key), key, err)
}

// valueText returns how a setting is shown in a reload's log: its file
// text, or "(default)" when the file does not set it.
func (file configFile) valueText(key string) string {
	if v, ok := file[key]; ok {
		return v
	}
	return "(default)"
}
