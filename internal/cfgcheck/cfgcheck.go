// Package cfgcheck holds the checks the packages' Config types share, so that
// every package names a field out of range in the same words.
package cfgcheck

import "fmt"

// Int is a named integer field of a Config.
type Int struct {
	Name  string
	Value int
}

// NonNegative returns an error naming the first field below zero, as
// "<prefix>.<Name> <Value> is negative" (prefix is for example
// "transport: Config"), or nil.
func NonNegative(prefix string, fields ...Int) error {
	for _, f := range fields {
		if f.Value < 0 {
			return fmt.Errorf("%s.%s %d is negative", prefix, f.Name, f.Value)
		}
	}
	return nil
}
