// Package keylog opens the TLS key log files of quicsrv's and quiccli's
// -keylog: NSS key log format, appended, readable by the owner only.
package keylog

import (
	"fmt"
	"os"
)

// Open opens path for appending TLS secrets, creating it with mode 0600.
// An existing file that its group or others may read or write is refused
// (and left as it is): secrets appended to it would be readable by them.
func Open(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		_ = f.Close()
		return nil, fmt.Errorf("%s has mode %04o: others could read the TLS secrets; chmod 600 it or use a new file", path, perm)
	}
	return f, nil
}
