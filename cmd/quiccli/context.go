package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

const contextAbout = `Named contexts, like nats context: each stores the connection flags -addr,
-ca, -cert, -key and -pin in a file of its own under the user's configuration
directory ($XDG_CONFIG_HOME/quicmsg/context/NAME.json, mode 0600). The
selected context applies to every command, below flags and QUICMSG_*
environment variables.

  context add NAME [-select] [-addr HOST:PORT] [-ca FILE] [-cert FILE -key FILE] [-pin PIN]
  context select NAME     use NAME from now on
  context unselect        use no context
  context ls              list the contexts; * marks the selected one
  context show [NAME]     print a context (default: the selected one)
  context rm NAME         remove a context`

// contextCommands are the subcommands of context.
var contextCommands = []struct {
	name string
	run  func(g *globals, args []string) error
}{
	{"add", contextAdd},
	{"select", contextSelect},
	{"unselect", contextUnselect},
	{"ls", contextList},
	{"show", contextShow},
	{"rm", contextRemove},
}

func cmdContext(_ context.Context, g *globals, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" {
		fmt.Fprintf(g.stderr, "Usage: quiccli context SUBCOMMAND [flags] [arguments]\n\n%s\n", contextAbout)
		if len(args) == 0 {
			return reported(usageError("context needs a subcommand"))
		}
		return flag.ErrHelp
	}
	for _, c := range contextCommands {
		if c.name == args[0] {
			return c.run(g, args[1:])
		}
	}
	return usageError("unknown subcommand %q of context (want add, select, unselect, ls, show or rm); see 'quiccli help context'", args[0])
}

// contextArgs parses the arguments of a context subcommand that takes
// want positional arguments (-1: 0 or 1).
func (g *globals) contextArgs(sub string, args []string, want int, define func(*flag.FlagSet)) ([]string, error) {
	pos, err := g.parseCommand("context "+sub, "", contextAbout, args, define)
	if err != nil {
		return nil, err
	}
	if len(pos) != want && !(want == -1 && len(pos) <= 1) {
		return nil, usageError("context %s takes %s; see 'quiccli help context'", sub, plural(max(want, 1), "argument"))
	}
	return pos, nil
}

func contextAdd(g *globals, args []string) error {
	var sel bool
	pos, err := g.contextArgs("add", args, 1, func(fs *flag.FlagSet) {
		fs.BoolVar(&sel, "select", false, "select the context once added")
	})
	if err != nil {
		return err
	}
	p, err := g.profileFromFlags()
	if err != nil {
		return err
	}
	file, err := writeContext(pos[0], p)
	if err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "context %s saved in %s\n", pos[0], file)
	if sel {
		return selectContext(pos[0])
	}
	return nil
}

// profileFromFlags returns the connection flags given on the command line,
// checked, with file paths made absolute.
func (g *globals) profileFromFlags() (*profile, error) {
	var p profile
	for _, f := range connFlags {
		if g.set[f.name] {
			*p.field(f.name) = *g.field(f.name)
		}
	}
	if p == (profile{}) {
		return nil, usageError("context add needs at least one of -addr, -ca, -cert and -key, -pin")
	}
	if err := g.checkConn(); err != nil {
		return nil, err
	}
	for _, file := range []*string{&p.CA, &p.Cert, &p.Key} {
		if *file == "" {
			continue
		}
		abs, err := filepath.Abs(*file)
		if err != nil {
			return nil, err
		}
		*file = abs
	}
	return &p, nil
}

func contextSelect(g *globals, args []string) error {
	pos, err := g.contextArgs("select", args, 1, nil)
	if err != nil {
		return err
	}
	if _, err := readContext(pos[0]); err != nil {
		return contextError(pos[0], err)
	}
	return selectContext(pos[0])
}

func contextUnselect(g *globals, args []string) error {
	if _, err := g.contextArgs("unselect", args, 0, nil); err != nil {
		return err
	}
	return selectContext("")
}

func contextList(g *globals, args []string) error {
	if _, err := g.contextArgs("ls", args, 0, nil); err != nil {
		return err
	}
	names, err := contextNames()
	if err != nil {
		return err
	}
	selected, err := selectedContext()
	if err != nil {
		return err
	}
	for _, n := range names {
		mark := " "
		if n == selected {
			mark = "*"
		}
		desc := ""
		if p, err := readContext(n); err == nil {
			desc = p.Addr
		}
		fmt.Fprintf(g.stdout, "%s %-20s %s\n", mark, n, desc)
	}
	return nil
}

func contextShow(g *globals, args []string) error {
	pos, err := g.contextArgs("show", args, -1, nil)
	if err != nil {
		return err
	}
	name, err := selectedContext()
	if err != nil {
		return err
	}
	if len(pos) == 1 {
		name = pos[0]
	}
	if name == "" {
		return usageError("no context is selected; name one, or see 'quiccli context ls'")
	}
	p, err := readContext(name)
	if err != nil {
		return contextError(name, err)
	}
	file, _ := contextFile(name)
	fmt.Fprintf(g.stdout, "context %s (%s)\n", name, file)
	for _, f := range connFlags {
		if v := *p.field(f.name); v != "" {
			fmt.Fprintf(g.stdout, "  -%-5s %s\n", f.name, v)
		}
	}
	return nil
}

func contextRemove(g *globals, args []string) error {
	pos, err := g.contextArgs("rm", args, 1, nil)
	if err != nil {
		return err
	}
	file, err := contextFile(pos[0])
	if err != nil {
		return err
	}
	if err := os.Remove(file); errors.Is(err, fs.ErrNotExist) {
		return contextError(pos[0], errNoContext)
	} else if err != nil {
		return err
	}
	if selected, err := selectedContext(); err == nil && selected == pos[0] {
		return selectContext("")
	}
	return nil
}

// contextError explains a context that cannot be read.
func contextError(name string, err error) error {
	if errors.Is(err, errNoContext) {
		names, _ := contextNames()
		return usageError("no context named %s (have: %s); see 'quiccli context ls'", name, orNone(names))
	}
	return err
}

func orNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
